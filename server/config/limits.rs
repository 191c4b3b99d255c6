//! Call and stream rate limits, and the trusted reverse proxies.

use std::num::NonZeroU32;

use clap::Args;
use ipnet::IpNet;

use super::ConfigError;

/// Rate limits (GCRA): a sustained rate per second and a burst.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    #[arg(long, env = "AKIG_RATE_USER_PER_SEC", default_value_t = 20)]
    pub rate_user_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_USER_BURST", default_value_t = 40)]
    pub rate_user_burst: u32,
    #[arg(long, env = "AKIG_RATE_IP_PER_SEC", default_value_t = 50)]
    pub rate_ip_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_IP_BURST", default_value_t = 100)]
    pub rate_ip_burst: u32,
    /// Messages per second one user may send on streams (positions, heartbeats).
    #[arg(long, env = "AKIG_RATE_STREAM_PER_SEC", default_value_t = 10)]
    pub rate_stream_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_STREAM_BURST", default_value_t = 50)]
    pub rate_stream_burst: u32,
    /// Reverse proxies (CIDR list) whose `x-forwarded-for` header is believed.
    #[arg(long, env = "AKIG_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
}

/// A sustained rate and the burst allowed on top of it (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

const fn limit(per_second: u32, burst: u32) -> Limit {
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (Some(per_second), Some(burst)) => Limit { per_second, burst },
        _ => panic!("a limit must be at least 1"),
    }
}

/// Call and stream limits of one server process (`crate::limits`), and the proxies whose
/// `x-forwarded-for` names the client (`crate::client_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Calls of one authenticated user, whatever their address.
    pub per_user: Limit,
    /// Calls from one client address (an IPv6 client is counted per /64).
    pub per_ip: Limit,
    /// Messages one user sends on inbound streams, all their streams together.
    pub stream_messages: Limit,
    /// Reverse proxies whose `x-forwarded-for` is believed. Empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_user: limit(20, 40),
            // Higher than per user: agents on one mobile carrier share its NAT addresses.
            per_ip: limit(50, 100),
            // A phone flushing its offline buffer sends a burst, then is slowed to the rate.
            stream_messages: limit(10, 50),
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitArgs {
    pub fn parse(&self) -> Result<RateLimitConfig, ConfigError> {
        let limit = |(rate_setting, per_second): (&'static str, u32),
                     (burst_setting, burst): (&'static str, u32)| {
            let nonzero = |setting, value| {
                NonZeroU32::new(value)
                    .ok_or_else(|| ConfigError::new(setting, "must be at least 1"))
            };
            Ok::<_, ConfigError>(Limit {
                per_second: nonzero(rate_setting, per_second)?,
                burst: nonzero(burst_setting, burst)?,
            })
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new("AKIG_TRUSTED_PROXIES", format!("{p:?} is not a CIDR"))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(RateLimitConfig {
            per_user: limit(
                ("AKIG_RATE_USER_PER_SEC", self.rate_user_per_sec),
                ("AKIG_RATE_USER_BURST", self.rate_user_burst),
            )?,
            per_ip: limit(
                ("AKIG_RATE_IP_PER_SEC", self.rate_ip_per_sec),
                ("AKIG_RATE_IP_BURST", self.rate_ip_burst),
            )?,
            stream_messages: limit(
                ("AKIG_RATE_STREAM_PER_SEC", self.rate_stream_per_sec),
                ("AKIG_RATE_STREAM_BURST", self.rate_stream_burst),
            )?,
            trusted_proxies,
        })
    }
}
