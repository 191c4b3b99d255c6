//! The settings of the limits (`AKIG_RATE_*`, `AKIG_TRUSTED_PROXIES`; read by `crate::config`).

use std::num::NonZeroU32;

use ipnet::IpNet;

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
