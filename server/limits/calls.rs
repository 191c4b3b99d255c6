//! Call limits: per authenticated user and per client address. Over a limit the call is refused
//! at once with RESOURCE_EXHAUSTED and a RetryInfo saying when to retry ([`Limited`]).
//!
//! Decisions:
//! - An authenticated call is limited by the authentication layer right after the token's
//!   signature, before any database work, so a client over its limit costs no query; it marks
//!   the call [`RateLimitChecked`]. Other calls (Login, Refresh, unknown paths) are limited per
//!   address by the layer behind it. Health and reflection are never limited.
//! - The user is checked before the address: a user over their own limit then spends nothing of
//!   their address's budget, which other agents behind the same carrier NAT share.
//! - With Redis ([`RateLimits::shared_through`]) both budgets are shared by the replicas
//!   (`limits::shared_calls`): an authenticated call's spend rides in the pipeline that reads
//!   its standing ([`RateLimits::shared_spend`], [`RateLimits::conclude`]), so the call costs
//!   at most one Redis round trip; calls are taken from Redis a few at a time (ADR 0015), so
//!   most calls spend calls this replica holds and ask nothing. Whenever Redis does not
//!   answer, this process's limiters do.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::shared_calls::{CallSpend, SharedCalls, Verdict, Whose};
use super::{StreamLimiter, address_key, every_purge_interval};
use crate::limits::{Limit, RateLimitConfig};
use crate::metrics::RATE_LIMITED;

pub(super) type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Load balancers probe health often, and tools list services: neither is limited.
const EXEMPT_PATH_PREFIXES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Put in the request extensions by the authentication layer once it has spent the per-user
/// and per-address budgets of an authenticated call, so that the layer behind it does not
/// spend the address's again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitChecked;

/// A call over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whose budget is spent: "this user" or "this address".
    pub whose: &'static str,
    /// How long until the next call is allowed (never zero: a client would retry at once).
    pub wait: Duration,
}

impl Limited {
    pub fn message(&self) -> String {
        format!(
            "too many calls from {}; retry in {} ms",
            self.whose,
            self.wait.as_millis()
        )
    }
}

/// The GCRA quota of a limit.
pub(super) fn quota(limit: Limit) -> Quota {
    Quota::per_second(limit.per_second).allow_burst(limit.burst)
}

/// Whether calls to `path` are never limited (health, reflection).
pub fn is_exempt(path: &str) -> bool {
    EXEMPT_PATH_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// The limiters of one server process. Cheap to clone: the clones share the same state.
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Limiters>,
}

struct Limiters {
    per_user: Keyed<Uuid>,
    per_ip: Keyed<IpAddr>,
    stream: StreamLimiter,
    /// The budgets shared through Redis; `None` without Redis.
    shared: Option<SharedCalls>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            inner: Arc::new(Limiters {
                per_user: RateLimiter::keyed(quota(config.per_user)),
                per_ip: RateLimiter::keyed(quota(config.per_ip)),
                stream: StreamLimiter::new(config.stream_messages),
                shared: None,
            }),
        }
    }

    /// The same limits, shared by the replicas through `redis` (calls and stream messages),
    /// with this process's limiters answering whenever Redis does not.
    pub fn shared_through(config: &RateLimitConfig, redis: Option<crate::redis::Redis>) -> Self {
        let Some(redis) = redis else {
            return Self::new(config);
        };
        Self {
            inner: Arc::new(Limiters {
                per_user: RateLimiter::keyed(quota(config.per_user)),
                per_ip: RateLimiter::keyed(quota(config.per_ip)),
                stream: StreamLimiter::shared_through(config.stream_messages, redis.clone()),
                shared: Some(SharedCalls::new(redis, config.per_user, config.per_ip)),
            }),
        }
    }

    /// For handlers that read inbound streams (see [`StreamLimiter::limit`]).
    pub fn stream_limiter(&self) -> StreamLimiter {
        self.inner.stream.clone()
    }

    /// The shared spend of a call by `user` from `ip`, to run in a pipeline of the caller's
    /// (`redis::Pipeline::invoke_script` with [`CallSpend::invocation`]); `None` without Redis.
    /// Its reply goes to [`RateLimits::conclude`].
    pub fn shared_spend(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Option<CallSpend> {
        self.inner.shared.as_ref()?.spend(user, ip)
    }

    /// Whether the call `spend` was made for may go on: from the script's `reply` when the
    /// pipeline ran it; else from a round trip of its own; else (no Redis, Redis down or slow,
    /// a reply not understood) from this process's limiters, as [`RateLimits::check`].
    /// A refill the call carries ([`CallSpend::take_refill`]) is asked of Redis in a task of
    /// its own, which the call does not wait for.
    pub async fn conclude(
        &self,
        user: Option<Uuid>,
        ip: Option<IpAddr>,
        mut spend: Option<CallSpend>,
        reply: Option<redis::Value>,
    ) -> Result<(), Limited> {
        if let (Some(shared), Some(refill)) = (
            &self.inner.shared,
            spend.as_mut().and_then(CallSpend::take_refill),
        ) {
            let shared = shared.clone();
            tokio::spawn(async move { shared.spend_alone(&refill).await });
        }
        let verdict = match (&self.inner.shared, spend.as_ref(), reply) {
            (Some(shared), Some(spend), Some(reply)) => shared.settle(spend, Some(reply)),
            (Some(shared), Some(spend), None) => shared.spend_alone(spend).await,
            _ => None,
        };
        match verdict {
            Some(Verdict::Allowed) => Ok(()),
            Some(Verdict::Refused { whose, wait }) => Err(match whose {
                Whose::User => limited("user", "this user", wait),
                Whose::Address => limited("ip", "this address", wait),
            }),
            None => self.check(user, ip),
        }
    }

    /// [`RateLimits::conclude`] for a call that has no pipeline to ride: shared through Redis
    /// in a round trip of its own when there is Redis, else this process's limiters.
    pub async fn check_shared(
        &self,
        user: Option<Uuid>,
        ip: Option<IpAddr>,
    ) -> Result<(), Limited> {
        let spend = self.shared_spend(user, ip);
        self.conclude(user, ip, spend, None).await
    }

    /// Spends one call of `user`'s budget (when known) and of `ip`'s in this process's
    /// limiters, or says which is spent.
    pub fn check(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Result<(), Limited> {
        let limits = &self.inner;
        if let Some(user) = user
            && let Err(not_until) = limits.per_user.check_key(&user)
        {
            let wait = not_until.wait_time_from(limits.per_user.clock().now());
            return Err(limited("user", "this user", wait));
        }
        // No address (no TCP peer, as in-process): nothing to key on.
        if let Some(ip) = ip
            && let Err(not_until) = limits.per_ip.check_key(&address_key(ip))
        {
            let wait = not_until.wait_time_from(limits.per_ip.clock().now());
            return Err(limited("ip", "this address", wait));
        }
        Ok(())
    }

    /// Drops the keys whose state is back to fresh, so that memory follows the active clients.
    pub fn purge(&self) {
        purge_keyed(&self.inner.per_user);
        purge_keyed(&self.inner.per_ip);
        if let Some(shared) = &self.inner.shared {
            shared.purge();
        }
        self.inner.stream.purge();
    }

    /// Purges every minute until `shutdown`.
    pub async fn run_purge(self, shutdown: CancellationToken) {
        every_purge_interval(shutdown, || self.purge()).await;
    }
}

pub(super) fn purge_keyed<K: Hash + Eq + Clone>(limiter: &Keyed<K>) {
    limiter.retain_recent();
    limiter.shrink_to_fit();
}

fn limited(limit: &'static str, whose: &'static str, wait: Duration) -> Limited {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
    tracing::debug!(limit, ?wait, "rate limited");
    Limited {
        whose,
        wait: wait.max(Duration::from_millis(1)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn limit(per_second: u32, burst: u32) -> Limit {
        Limit {
            per_second: per_second.try_into().unwrap(),
            burst: burst.try_into().unwrap(),
        }
    }

    fn config(per_user: Limit, per_ip: Limit) -> RateLimitConfig {
        RateLimitConfig {
            per_user,
            per_ip,
            stream_messages: limit(20, 2),
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    #[test]
    fn per_user_limit_applies_across_addresses_and_comes_first() {
        let limits = RateLimits::new(&config(limit(1, 2), limit(100, 100)));
        let user = Uuid::new_v4();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for peer in ["198.51.100.1", "198.51.100.2"] {
            assert_eq!(limits.check(Some(user), ip(peer)), Ok(()));
        }
        let limited = limits
            .check(Some(user), ip("198.51.100.3"))
            .expect_err("over the user's limit");
        assert_eq!(limited.whose, "this user");
        assert!(limited.wait > Duration::ZERO, "{limited:?}");
        // Another user on the same address is not affected, nor is an anonymous call.
        assert_eq!(
            limits.check(Some(Uuid::new_v4()), ip("198.51.100.3")),
            Ok(())
        );
        assert_eq!(limits.check(None, ip("198.51.100.3")), Ok(()));

        // The user is checked first: refused calls spend nothing of the address's budget.
        let tight = RateLimits::new(&config(limit(1, 1), limit(1, 2)));
        let user = Uuid::new_v4();
        assert_eq!(tight.check(Some(user), ip("198.51.100.9")), Ok(()));
        for _ in 0..3 {
            assert!(tight.check(Some(user), ip("198.51.100.9")).is_err());
        }
        assert_eq!(
            tight.check(Some(Uuid::new_v4()), ip("198.51.100.9")),
            Ok(())
        );
    }

    #[tokio::test]
    async fn purge_drops_idle_keys() {
        // 5/s, burst 1: a key is back to fresh 2 × 200 ms after its call.
        let limits = RateLimits::new(&config(limit(5, 1), limit(5, 1)));
        for peer in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            let ip = Some(peer.parse().unwrap());
            assert_eq!(limits.check(Some(Uuid::new_v4()), ip), Ok(()));
        }
        assert_eq!(limits.inner.per_ip.len(), 3);
        assert_eq!(limits.inner.per_user.len(), 3);
        limits.purge();
        assert_eq!(limits.inner.per_ip.len(), 3, "recent keys stay");
        tokio::time::sleep(Duration::from_millis(450)).await;
        limits.purge();
        assert_eq!(limits.inner.per_ip.len(), 0);
        assert_eq!(limits.inner.per_user.len(), 0);
    }
}
