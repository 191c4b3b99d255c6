//! Rate limits of one server process: per user and per client address on every call
//! ([`calls`]), backpressure on the messages of inbound streams ([`stream`]), and a brute-force
//! guard for Login ([`login`]).
//!
//! Decisions:
//! - GCRA everywhere: `governor`'s keyed limiters for calls and stream messages; a GCRA state of
//!   our own for failed logins, which must be checked without being spent.
//! - Shared by the replicas: with Redis, the call limits ([`shared_calls`]) and the stream
//!   message limit ([`shared`]) keep their GCRA state in Redis, so N replicas do not allow N
//!   times the limit. Each process keeps its own limiters too, in memory, one state per key,
//!   and they answer whenever Redis does not (no Redis, Redis down or slower than
//!   `crate::redis::REDIS_TIMEOUT`): no call fails because of Redis; meanwhile each replica
//!   limits on its own. Idle keys are dropped every minute (in Redis, they expire), so memory
//!   follows the active clients.
//! - An IPv6 client is counted per /64 (`address_key`): it usually holds a whole /64 and
//!   could rotate through it.
//! - The settings live here ([`RateLimitConfig`]; `crate::config` reads them from the
//!   environment); how a refused call is answered lives with the middleware (`crate::layers`) and `crate::api::error`.

pub mod calls;
mod config;
pub mod login;
pub mod shared;
pub mod shared_calls;
pub mod shared_login;
pub mod stream;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use calls::{Limited, RateLimitChecked, RateLimits};
pub use config::{Limit, RateLimitConfig};
pub use login::{FailureLimit, LoginThrottle};
pub use stream::StreamLimiter;

/// How often idle keys are dropped from the limiters.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// The per-address limiter key: the address itself, or its /64 for IPv6.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

/// Runs `purge` every [`PURGE_INTERVAL`] until `shutdown`.
async fn every_purge_interval(shutdown: CancellationToken, purge: impl Fn()) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => purge(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RateLimitConfig;

    #[tokio::test]
    async fn purge_task_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let limits = RateLimits::new(&RateLimitConfig::default());
        let task = tokio::spawn(limits.run_purge(shutdown.clone()));
        let throttle = tokio::spawn(LoginThrottle::default().run_purge(shutdown.clone()));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), async {
            task.await.unwrap();
            throttle.await.unwrap();
        })
        .await
        .expect("purge tasks stop");
    }
}
