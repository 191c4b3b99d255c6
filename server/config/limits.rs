//! Call and stream rate limits, and the trusted reverse proxies.

use std::num::NonZeroU32;

use clap::Args;
use ipnet::IpNet;

use crate::limits::{Limit, RateLimitConfig};
use crate::setting::ConfigError;

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
