//! The per-user and per-address call limits shared by the replicas through Redis: N replicas do
//! not allow N times the limit. [`crate::limits::RateLimits`] falls back to its per-process
//! limiters whenever Redis does not answer.
//!
//! Decisions:
//! - One Lua script spends a call of every budget it is given ([`CALLS_GCRA`]), atomically in
//!   Redis, on Redis' own clock (`TIME`), so that the replicas' clocks do not matter. The GCRA
//!   is the one of `limits::shared` (T = 1/rate, τ = T × (burst − 1), conforming when
//!   t ≥ TAT − τ), with `governor`'s rule for calls: a refused call spends nothing.
//! - The budgets are checked in order, user first: a user over their own limit spends nothing
//!   of their address's budget, which other agents behind the same carrier NAT share.
//! - An authenticated call does not pay a round trip of its own: its [`CallSpend`] rides in the
//!   pipeline that reads the caller's standing (`crate::auth::standing`). Calls without a
//!   caller (Login, Refresh) run it alone ([`SharedCalls::spend_alone`]).
//! - The script is invoked by its SHA (`EVALSHA`); a Redis that does not know it yet (restart,
//!   `SCRIPT FLUSH`) answers NOSCRIPT, and the pipeline loads it and runs again, once.
//! - The TAT is kept to the microsecond in milliseconds (`%.3f`); a key expires once its TAT is
//!   past, so idle users and addresses cost nothing.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, ScriptInvocation};
use uuid::Uuid;

use super::address_key;
use crate::limits::Limit;
use crate::redis::{Redis, timed};

/// KEYS: the budgets, in order; ARGV: per key, its emission interval and tolerance (ms).
/// Returns `{0, 0}` when the call conforms to every budget (each one spent), else
/// `{i, wait_ms}` for the first budget `i` (1-based) it does not conform to (those before it
/// spent, none after).
pub const CALLS_GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i, key in ipairs(KEYS) do
  local emission = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait > 0 then return {i, math.ceil(wait)} end
  local new_tat = tat + emission
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
return {0, 0}
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CALLS_GCRA));

/// Whose budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    User,
    Address,
}

/// What Redis said of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over `whose` budget; conforming again in `wait`.
    Refused {
        whose: Whose,
        wait: Duration,
    },
}

/// The GCRA parameters of one limit, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Rate {
    emission_ms: f64,
    tolerance_ms: f64,
}

impl Rate {
    fn of(limit: Limit) -> Self {
        let emission_ms = 1000.0 / f64::from(limit.per_second.get());
        Self {
            emission_ms,
            tolerance_ms: emission_ms * f64::from(limit.burst.get() - 1),
        }
    }
}

/// The shared call limits of a deployment. Cheap to clone.
#[derive(Clone)]
pub struct SharedCalls {
    redis: Redis,
    per_user: Rate,
    per_ip: Rate,
}

/// One call's spend of its budgets, ready to run alone or in a pipeline.
pub struct CallSpend {
    invocation: ScriptInvocation<'static>,
    /// The budgets, in the order of the script's keys.
    whose: Vec<Whose>,
}

impl SharedCalls {
    pub fn new(redis: Redis, per_user: Limit, per_ip: Limit) -> Self {
        Self {
            redis,
            per_user: Rate::of(per_user),
            per_ip: Rate::of(per_ip),
        }
    }

    /// The spend of a call by `user` (when known) from `ip` (when known); `None` when there is
    /// nothing to key on.
    pub fn spend(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Option<CallSpend> {
        let mut invocation = SCRIPT.prepare_invoke();
        let mut whose = Vec::with_capacity(2);
        if let Some(user) = user {
            invocation
                .key(self.redis.key(&format!("rl:user:{user}")))
                .arg(self.per_user.emission_ms)
                .arg(self.per_user.tolerance_ms);
            whose.push(Whose::User);
        }
        if let Some(ip) = ip {
            invocation
                .key(self.redis.key(&format!("rl:ip:{}", address_key(ip))))
                .arg(self.per_ip.emission_ms)
                .arg(self.per_ip.tolerance_ms);
            whose.push(Whose::Address);
        }
        (!whose.is_empty()).then_some(CallSpend { invocation, whose })
    }

    /// Runs `spend` in a round trip of its own; `None` when Redis did not answer (down, slower
    /// than [`crate::redis::REDIS_TIMEOUT`]).
    pub async fn spend_alone(&self, spend: &CallSpend) -> Option<Verdict> {
        let mut conn = self.redis.connection()?;
        // `invoke_async` loads the script when Redis does not know it.
        let result: redis::RedisResult<redis::Value> =
            timed(spend.invocation.invoke_async(&mut conn)).await;
        match result {
            Ok(reply) => spend.verdict(reply),
            Err(error) => {
                self.redis.failed(&error);
                None
            }
        }
    }
}

impl CallSpend {
    /// The script invocation, for a pipeline (`redis::Pipeline::invoke_script`).
    pub fn invocation(&self) -> &ScriptInvocation<'static> {
        &self.invocation
    }

    /// The verdict in the script's `reply`; `None` when the reply is not the script's.
    pub fn verdict(&self, reply: redis::Value) -> Option<Verdict> {
        let (index, wait_ms): (usize, u64) = redis::from_redis_value(reply).ok()?;
        if index == 0 {
            return Some(Verdict::Allowed);
        }
        let whose = *self.whose.get(index - 1)?;
        Some(Verdict::Refused {
            whose,
            wait: Duration::from_millis(wait_ms),
        })
    }
}

/// Whether `error` is Redis not knowing a script (to load it and run again).
pub fn is_no_script(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::limits::calls::tests::limit;
    use crate::limits::shared::tests::replica;

    #[tokio::test]
    async fn budgets_are_spent_in_order_and_a_refused_call_spends_nothing() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        let redis = replica(&prefix, &shutdown).await;
        // Users: 1/s, burst 2; addresses: 1/s, burst 3.
        let a = SharedCalls::new(redis.clone(), limit(1, 2), limit(1, 3));
        let b = SharedCalls::new(replica(&prefix, &shutdown).await, limit(1, 2), limit(1, 3));
        let (user, ip) = (Uuid::new_v4(), Some("198.51.100.7".parse().unwrap()));
        let spend = |limits: &SharedCalls, user| limits.spend(user, ip).expect("keys");

        // Two replicas, one budget: the user's third call is refused, with about 1 s to wait.
        assert_eq!(
            a.spend_alone(&spend(&a, Some(user))).await,
            Some(Verdict::Allowed)
        );
        assert_eq!(
            b.spend_alone(&spend(&b, Some(user))).await,
            Some(Verdict::Allowed)
        );
        let Some(Verdict::Refused { whose, wait }) = a.spend_alone(&spend(&a, Some(user))).await
        else {
            panic!("the user's budget is spent");
        };
        assert_eq!(whose, Whose::User);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Refused calls spent nothing of the address's budget: one call is left on it.
        for _ in 0..3 {
            assert!(matches!(
                b.spend_alone(&spend(&b, Some(user))).await,
                Some(Verdict::Refused {
                    whose: Whose::User,
                    ..
                })
            ));
        }
        assert_eq!(
            b.spend_alone(&spend(&b, None)).await,
            Some(Verdict::Allowed)
        );
        let refused = a.spend_alone(&spend(&a, Some(Uuid::new_v4()))).await;
        assert!(
            matches!(
                refused,
                Some(Verdict::Refused {
                    whose: Whose::Address,
                    ..
                })
            ),
            "{refused:?}"
        );

        // Redis forgot the script: it is loaded again.
        let mut conn = redis.connection().expect("linked");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .expect("flush scripts");
        let other = Some("198.51.100.8".parse().unwrap());
        let fresh = a.spend(Some(Uuid::new_v4()), other).expect("keys");
        assert_eq!(a.spend_alone(&fresh).await, Some(Verdict::Allowed));
        shutdown.cancel();
    }

    #[test]
    fn nothing_to_key_on_spends_nothing() {
        let redis = Redis::open(&crate::redis::RedisConfig {
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "p".into(),
        })
        .expect("url");
        let limits = SharedCalls::new(redis, limit(1, 1), limit(1, 1));
        assert!(limits.spend(None, None).is_none());
        let spend = limits.spend(Some(Uuid::nil()), None).expect("a user");
        assert_eq!(spend.whose, [Whose::User]);
        assert_eq!(
            spend.verdict(redis::Value::Array(vec![
                redis::Value::Int(1),
                redis::Value::Int(250)
            ])),
            Some(Verdict::Refused {
                whose: Whose::User,
                wait: Duration::from_millis(250)
            })
        );
        assert_eq!(
            spend.verdict(redis::Value::Array(vec![
                redis::Value::Int(2),
                redis::Value::Int(250)
            ])),
            None,
            "no second key"
        );
    }
}
