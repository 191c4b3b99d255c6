//! The failed-login guard's state shared by the replicas through Redis: N replicas do not
//! allow N times the guesses. [`crate::limits::LoginThrottle`] answers from its own state
//! whenever Redis does not.
//!
//! Decisions:
//! - The GCRA of `limits::login` (per key, the theoretical arrival time of the next failure,
//!   capped at a full budget ahead), kept in Redis in milliseconds of Redis' own clock (`TIME`),
//!   so that the replicas' clocks do not matter: [`CHECK`] peeks (spends nothing), [`FAIL`]
//!   records a failure, a success deletes the account's key. Each is one round trip; a login
//!   costs an argon2 hash anyway.
//! - A key expires once its TAT is past: failures paid back cost nothing.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script, ScriptInvocation};

use super::address_key;
use crate::redis::{Redis, timed};

/// KEYS: the account's key, then the address's (optional); ARGV: per key, the interval between
/// failures and the tolerance (ms). Returns how long until one more failure is allowed (ms,
/// 0 when it is now); spends nothing.
pub const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait = 0
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    local w = tat - now - tonumber(ARGV[2 * i])
    if w > wait then wait = w end
  end
end
return math.ceil(wait)
";

/// KEYS and ARGV as [`CHECK`]: records one failure on every key.
pub const FAIL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = math.min(tat + interval, now + tolerance + interval)
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
end
return 0
";

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK));
static FAIL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FAIL));

/// A failure limit's GCRA parameters: the interval between failures and the burst tolerance.
#[derive(Debug, Clone, Copy)]
pub struct FailureRate {
    pub interval: Duration,
    pub tolerance: Duration,
}

/// The shared failed-login state of a deployment. Cheap to clone.
#[derive(Clone)]
pub struct SharedLogin {
    redis: Redis,
    per_account: FailureRate,
    per_ip: FailureRate,
}

impl SharedLogin {
    pub fn new(redis: Redis, per_account: FailureRate, per_ip: FailureRate) -> Self {
        Self {
            redis,
            per_account,
            per_ip,
        }
    }

    /// How long until a login of `account` (its normalised key) from `ip` may be tried; `None`
    /// when Redis did not answer.
    pub async fn wait(&self, account: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let wait_ms: u64 = self.run(&CHECK_SCRIPT, account, ip).await?;
        Some(Duration::from_millis(wait_ms))
    }

    /// Records a failed login of `account` from `ip`; false when Redis did not answer.
    pub async fn record_failure(&self, account: &str, ip: Option<IpAddr>) -> bool {
        self.run::<i64>(&FAIL_SCRIPT, account, ip).await.is_some()
    }

    /// Forgets the failures of `account` (not of its addresses).
    pub async fn forget(&self, account: &str) {
        let Some(mut conn) = self.redis.connection() else {
            return;
        };
        let result: redis::RedisResult<i64> = timed(conn.del(self.account_key(account))).await;
        if let Err(error) = result {
            self.redis.failed(&error);
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &'static Script,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Option<T> {
        let mut conn = self.redis.connection()?;
        let invocation = self.invocation(script, account, ip);
        // `invoke_async` loads the script when Redis does not know it.
        match timed(invocation.invoke_async(&mut conn)).await {
            Ok(reply) => Some(reply),
            Err(error) => {
                self.redis.failed(&error);
                None
            }
        }
    }

    fn invocation(
        &self,
        script: &'static Script,
        account: &str,
        ip: Option<IpAddr>,
    ) -> ScriptInvocation<'static> {
        let mut invocation = script.prepare_invoke();
        let millis = |d: Duration| d.as_secs_f64() * 1000.0;
        invocation
            .key(self.account_key(account))
            .arg(millis(self.per_account.interval))
            .arg(millis(self.per_account.tolerance));
        if let Some(ip) = ip {
            invocation
                .key(self.redis.key(&format!("lf:ip:{}", address_key(ip))))
                .arg(millis(self.per_ip.interval))
                .arg(millis(self.per_ip.tolerance));
        }
        invocation
    }

    fn account_key(&self, account: &str) -> String {
        self.redis.key(&format!("lf:account:{account}"))
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;
    use uuid::Uuid;

    use super::*;
    use crate::limits::shared::tests::replica;

    #[tokio::test]
    async fn two_replicas_count_one_accounts_failures_together() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        // 3 failures per 30 s per account (one back every 10 s), 4 per address.
        let rate = |interval: u64, tolerance: u64| FailureRate {
            interval: Duration::from_secs(interval),
            tolerance: Duration::from_secs(tolerance),
        };
        let replicas = [
            SharedLogin::new(replica(&prefix, &shutdown).await, rate(10, 20), rate(5, 15)),
            SharedLogin::new(replica(&prefix, &shutdown).await, rate(10, 20), rate(5, 15)),
        ];
        let ip = Some("198.51.100.4".parse().unwrap());
        for n in 0..3 {
            let replica = &replicas[n % 2];
            assert_eq!(replica.wait("awa", ip).await, Some(Duration::ZERO));
            assert!(replica.record_failure("awa", ip).await);
        }
        for replica in &replicas {
            let wait = replica.wait("awa", None).await.expect("Redis answers");
            assert!(
                wait > Duration::from_millis(9_900) && wait <= Duration::from_secs(10),
                "{wait:?}"
            );
        }
        // Checking spent nothing; another account from the address has one failure left.
        assert_eq!(replicas[0].wait("binta", ip).await, Some(Duration::ZERO));
        assert!(replicas[1].record_failure("binta", ip).await);
        let by_address = replicas[0].wait("binta", ip).await.expect("answers");
        assert!(by_address > Duration::from_millis(4_900), "{by_address:?}");
        assert_eq!(replicas[0].wait("binta", None).await, Some(Duration::ZERO));
        // A success forgets the account's failures on every replica, not the address's.
        replicas[1].forget("awa").await;
        assert_eq!(replicas[0].wait("awa", None).await, Some(Duration::ZERO));
        assert!(replicas[0].wait("awa", ip).await.expect("answers") > Duration::ZERO);
        shutdown.cancel();
    }
}
