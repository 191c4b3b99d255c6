//! Brute-force guard for Login: limits FAILED attempts per account and per client address.
//!
//! Decisions:
//! - Checked before the password is verified, so a flood of guesses costs no argon2 hash.
//! - A wrong password and an unknown account count alike, so the answer does not tell whether
//!   the account exists.
//! - With Redis ([`LoginThrottle::shared_through`]) the state is shared by the replicas
//!   (`limits::shared_login`), so N replicas do not allow N times the guesses. Failures are
//!   recorded in this process too, and its state answers whenever Redis does not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::shared_login::{FailureRate, SharedLogin};
use super::{address_key, every_purge_interval};
use crate::redis::Redis;

/// Longest account name kept as a LoginThrottle key (login names are at most 64 characters).
const MAX_ACCOUNT_KEY_CHARS: usize = 128;

/// At most `failures` failed logins at once, then one more every `period / failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub failures: NonZeroU32,
    pub period: Duration,
}

/// Brute-force guard for Login: limits FAILED attempts per account and per client address.
///
/// Use: `check` before verifying the password (Err = refuse with RESOURCE_EXHAUSTED,
/// ERROR_REASON_ACCOUNT_LOCKED and the wait as RetryInfo); on a wrong password or an unknown
/// account, `record_failure` (both alike, so the answer does not tell whether the account
/// exists); on success, `record_success`.
///
/// Design: `check` must not consume, which governor's `check_key` does, so this keeps its own
/// GCRA state: per key, the theoretical arrival time (`tat`) of the next failure. A failure
/// moves it one interval (`period / failures`) ahead; a key is refused while its `tat` is more
/// than `failures - 1` intervals ahead of now. Peeking is then a plain read. `tat` is capped at
/// a full budget ahead, so failures recorded while refused cannot stretch the wait beyond one
/// interval: someone failing on purpose can hold an account at that rate, no longer. A key
/// whose `tat` has passed is no different from an absent one and is dropped by `purge`.
/// Failures are rare, so one mutex over two small maps is enough.
#[derive(Clone)]
pub struct LoginThrottle {
    inner: Arc<Throttle>,
}

struct Throttle {
    per_account: Gcra,
    per_ip: Gcra,
    failures: Mutex<Failures>,
    /// The state shared through Redis; `None` without Redis.
    shared: Option<SharedLogin>,
}

#[derive(Default)]
struct Failures {
    accounts: HashMap<String, Instant>,
    ips: HashMap<IpAddr, Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
}

impl Gcra {
    fn new(limit: FailureLimit) -> Self {
        let interval = limit.period / limit.failures.get();
        Self {
            interval,
            tolerance: interval * (limit.failures.get() - 1),
        }
    }

    /// How long until one more failure would be allowed; zero when it is now.
    fn wait(&self, tat: Option<&Instant>, now: Instant) -> Duration {
        tat.map_or(Duration::ZERO, |tat| {
            tat.saturating_duration_since(now)
                .saturating_sub(self.tolerance)
        })
    }

    fn rate(&self) -> FailureRate {
        FailureRate {
            interval: self.interval,
            tolerance: self.tolerance,
        }
    }

    fn after_failure(&self, tat: Option<&Instant>, now: Instant) -> Instant {
        let from = tat.map_or(now, |tat| (*tat).max(now));
        (from + self.interval).min(now + self.tolerance + self.interval)
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let quarter_hour = Duration::from_secs(15 * 60);
        Self::new(
            FailureLimit {
                failures: NonZeroU32::new(5).expect("non-zero"),
                period: quarter_hour,
            },
            // An address may be a carrier NAT shared by many agents.
            FailureLimit {
                failures: NonZeroU32::new(20).expect("non-zero"),
                period: quarter_hour,
            },
        )
    }
}

impl LoginThrottle {
    pub fn new(per_account: FailureLimit, per_ip: FailureLimit) -> Self {
        Self {
            inner: Arc::new(Throttle {
                per_account: Gcra::new(per_account),
                per_ip: Gcra::new(per_ip),
                failures: Mutex::new(Failures::default()),
                shared: None,
            }),
        }
    }

    /// The same limits, their state shared by the replicas through `redis` (when given).
    #[must_use]
    pub fn shared_through(self, redis: Option<Redis>) -> Self {
        let (per_account, per_ip) = (self.inner.per_account, self.inner.per_ip);
        Self {
            inner: Arc::new(Throttle {
                per_account,
                per_ip,
                failures: Mutex::new(Failures::default()),
                shared: redis
                    .map(|redis| SharedLogin::new(redis, per_account.rate(), per_ip.rate())),
            }),
        }
    }

    /// Whether a login may be tried now; Err holds how long to wait. Consumes nothing. From
    /// Redis when shared and Redis answers, else from this process's state.
    pub async fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        if let Some(shared) = &self.inner.shared
            && let Some(wait) = shared.wait(&account_key(account), ip).await
        {
            return if wait.is_zero() { Ok(()) } else { Err(wait) };
        }
        self.check_at(account, ip, Instant::now())
    }

    /// Records a failed login, in this process and (when shared) in Redis.
    pub async fn record_failure(&self, account: &str, ip: Option<IpAddr>) {
        self.record_failure_at(account, ip, Instant::now());
        if let Some(shared) = &self.inner.shared {
            shared.record_failure(&account_key(account), ip).await;
        }
    }

    /// Forgets the account's failures (not the address's): a user who mistyped, then got in,
    /// starts afresh.
    pub async fn record_success(&self, account: &str) {
        let account = account_key(account);
        self.lock().accounts.remove(&account);
        if let Some(shared) = &self.inner.shared {
            shared.forget(&account).await;
        }
    }

    /// Drops the keys whose failures have all been paid back.
    pub fn purge(&self) {
        self.purge_at(Instant::now());
    }

    /// Purges every minute until `shutdown`.
    pub async fn run_purge(self, shutdown: CancellationToken) {
        every_purge_interval(shutdown, || self.purge()).await;
    }

    // The clock is a parameter so that tests run the real 15-minute windows without waiting.

    fn check_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let account = account_key(account);
        let failures = self.lock();
        let by_account = self
            .inner
            .per_account
            .wait(failures.accounts.get(&account), now);
        let by_ip = ip.map_or(Duration::ZERO, |ip| {
            self.inner
                .per_ip
                .wait(failures.ips.get(&address_key(ip)), now)
        });
        let wait = by_account.max(by_ip);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    fn record_failure_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        let account = account_key(account);
        let mut failures = self.lock();
        let tat = self
            .inner
            .per_account
            .after_failure(failures.accounts.get(&account), now);
        failures.accounts.insert(account, tat);
        if let Some(ip) = ip {
            let ip = address_key(ip);
            let tat = self.inner.per_ip.after_failure(failures.ips.get(&ip), now);
            failures.ips.insert(ip, tat);
        }
    }

    fn purge_at(&self, now: Instant) {
        let mut failures = self.lock();
        failures.accounts.retain(|_, tat| *tat > now);
        failures.ips.retain(|_, tat| *tat > now);
        failures.accounts.shrink_to_fit();
        failures.ips.shrink_to_fit();
    }

    fn lock(&self) -> MutexGuard<'_, Failures> {
        // The maps are consistent after any panic (single inserts and removes).
        self.inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Login names are lower-case; a phone number has no case. Bounded so that a huge name sent
/// before validation cannot grow the map.
fn account_key(account: &str) -> String {
    account
        .trim()
        .chars()
        .take(MAX_ACCOUNT_KEY_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_throttle_blocks_after_failures_and_recovers() {
        // The defaults: 5 failures per 15 min per account, 20 per address.
        let throttle = LoginThrottle::default();
        let ip = Some("198.51.100.1".parse().unwrap());
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        for _ in 0..5 {
            assert_eq!(throttle.check_at("alice", ip, t0), Ok(()));
            throttle.record_failure_at("alice", ip, t0);
        }
        // Names are compared trimmed and lower-case.
        let wait = throttle.check_at(" Alice ", ip, t0).expect_err("locked");
        assert_eq!(wait, Duration::from_secs(180));
        // Checking consumes nothing; failures while locked do not stretch the wait.
        for _ in 0..10 {
            assert!(throttle.check_at("alice", ip, at(60)).is_err());
            throttle.record_failure_at("alice", None, at(60));
        }
        assert_eq!(
            throttle.check_at("alice", None, at(60)),
            Err(Duration::from_secs(180))
        );
        // One attempt back every 3 minutes.
        assert_eq!(throttle.check_at("alice", ip, at(240)), Ok(()));
        throttle.record_failure_at("alice", ip, at(240));
        assert!(throttle.check_at("alice", ip, at(240)).is_err());

        // An address: 20 failures whatever the accounts, then everyone behind it waits.
        let nat = Some("198.51.100.9".parse().unwrap());
        for n in 0..20 {
            let account = format!("user{n}");
            assert_eq!(throttle.check_at(&account, nat, t0), Ok(()), "{n}");
            throttle.record_failure_at(&account, nat, t0);
        }
        let wait = throttle
            .check_at("bob", nat, t0)
            .expect_err("address locked");
        assert_eq!(wait, Duration::from_secs(45));
        assert_eq!(throttle.check_at("bob", None, t0), Ok(()));
        assert_eq!(throttle.check_at("bob", nat, at(45)), Ok(()));

        // A success forgets the account's failures, not the address's.
        throttle.lock().accounts.remove(&account_key("ALICE"));
        assert_eq!(throttle.check_at("alice", None, at(240)), Ok(()));
        assert!(throttle.check_at("alice", nat, t0).is_err());
    }

    #[tokio::test]
    async fn the_public_methods_run_on_the_real_clock() {
        let throttle = LoginThrottle::default().shared_through(None);
        let ip = Some("198.51.100.1".parse().unwrap());
        for _ in 0..5 {
            assert_eq!(throttle.check("carol", ip).await, Ok(()));
            throttle.record_failure("Carol", ip).await;
        }
        let wait = throttle.check("carol", ip).await.expect_err("locked");
        assert!(wait > Duration::from_secs(179), "{wait:?}");
        throttle.record_success("CAROL").await;
        assert_eq!(throttle.check("carol", ip).await, Ok(()));
    }

    #[test]
    fn purge_drops_paid_back_failures() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        throttle.record_failure_at("alice", Some("198.51.100.1".parse().unwrap()), t0);
        throttle.purge_at(t0 + Duration::from_secs(179));
        assert_eq!(throttle.lock().accounts.len(), 1, "recent keys stay");
        // One failure is paid back after 3 min (account) and 45 s (address).
        throttle.purge_at(t0 + Duration::from_secs(181));
        assert_eq!(throttle.lock().accounts.len(), 0);
        assert_eq!(throttle.lock().ips.len(), 0);
    }
}
