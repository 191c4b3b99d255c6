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
//! - Calls are taken from Redis a few at a time (ADR 0015): a budget of burst B hands this
//!   replica up to [`grant_of`] = B / 8 calls at once (at least 1, at most 1,000), whatever of
//!   them is left, and the replica spends them over the next [`GRANT_TTL`] without asking
//!   again. What Redis granted is spent in Redis, so the replicas together never exceed the
//!   shared limit; a replica holding calls it does not use makes the others refuse a little
//!   sooner, for one second at most. While one call asks Redis for a budget's calls, the
//!   others of this replica ask for their own call alone, so that concurrent calls do not take
//!   the whole burst between them. A budget of burst below 16 is asked call by call, as before.
//! - Calls are asked for before they run out: the call that leaves a budget's held calls at
//!   [`low_water_of`] (half a grant) or fewer spends one of them and asks Redis for another
//!   grant in a task of its own ([`CallSpend::take_refill`]), so that calls keep spending held
//!   calls while the grant is on its way instead of each asking Redis alone. A replica then
//!   holds at most one and a half grants of a budget. Under steady load a budget costs one
//!   round trip per grant (with the defaults, one call in five; with burst 8,000 or more, one
//!   in 1,000), and no call waits for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::{Script, ScriptInvocation};
use uuid::Uuid;

use super::address_key;
use crate::limits::Limit;
use crate::redis::{Redis, timed};

/// KEYS: the budgets, in order; ARGV: per key, its emission interval and tolerance (ms) and
/// the calls wanted. Returns `{0, 0, g1, g2, ...}` when the call conforms to every budget,
/// `g` the calls granted of each (at least 1, at most those wanted: as many as conform);
/// else `{i, wait_ms, g1, ...}` for the first budget `i` (1-based) it does not conform to,
/// those before it granted, none after.
pub const CALLS_GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local granted = {}
for i, key in ipairs(KEYS) do
  local emission = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local wanted = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait > 0 then
    local reply = {i, math.ceil(wait)}
    for _, g in ipairs(granted) do table.insert(reply, g) end
    return reply
  end
  local n = math.min(wanted, math.floor((now + tolerance - tat) / emission) + 1)
  if n < 1 then n = 1 end
  local new_tat = tat + n * emission
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
  table.insert(granted, n)
end
local reply = {0, 0}
for _, g in ipairs(granted) do table.insert(reply, g) end
return reply
";

/// How long calls granted by Redis may be spent by this replica.
pub const GRANT_TTL: Duration = Duration::from_secs(1);

/// The calls a replica takes from Redis at once for a budget of `limit`: an eighth of the
/// burst, at least 1, at most 1,000.
pub fn grant_of(limit: Limit) -> u32 {
    (limit.burst.get() / 8).clamp(1, 1000)
}

/// The held calls of a budget at or below which a call asks Redis for the next grant ahead of
/// need: half a grant. Zero for a budget asked call by call (grant 1), which never holds calls.
pub fn low_water_of(grant: u32) -> u32 {
    if grant > 1 { grant / 2 } else { 0 }
}

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

/// The GCRA parameters of one limit, in milliseconds, and the calls taken at once.
#[derive(Debug, Clone, Copy)]
struct Rate {
    emission_ms: f64,
    tolerance_ms: f64,
    grant: u32,
}

impl Rate {
    fn of(limit: Limit) -> Self {
        let emission_ms = 1000.0 / f64::from(limit.per_second.get());
        Self {
            emission_ms,
            tolerance_ms: emission_ms * f64::from(limit.burst.get() - 1),
            grant: grant_of(limit),
        }
    }
}

/// Calls granted by Redis and not yet spent, of one budget.
struct Held {
    calls: u32,
    until: Instant,
    /// Since when a call has been asking Redis for a grant of this budget.
    asking_since: Option<Instant>,
}

/// The shared call limits of a deployment. Cheap to clone.
#[derive(Clone)]
pub struct SharedCalls {
    redis: Redis,
    per_user: Rate,
    per_ip: Rate,
    /// Calls granted by Redis, by budget key.
    held: Arc<Mutex<HashMap<String, Held>>>,
}

/// One call's spend of its budgets, ready to run alone or in a pipeline.
pub struct CallSpend {
    invocation: ScriptInvocation<'static>,
    /// The budgets asked of Redis, in the order of the script's keys, with their keys.
    whose: Vec<Whose>,
    keys: Vec<String>,
    /// Whether each budget asked is asked for a grant (else for this call alone).
    granting: Vec<bool>,
    /// The budgets spent from calls this replica held, given back if the call is refused.
    taken: Vec<String>,
    /// Set on a refill: the call has its calls already, so every call granted is held and
    /// Redis' verdict decides nothing.
    ahead: bool,
    /// The grants to ask for ahead of need, for budgets this call left at their low water.
    refill: Option<Box<CallSpend>>,
}

impl SharedCalls {
    pub fn new(redis: Redis, per_user: Limit, per_ip: Limit) -> Self {
        Self {
            redis,
            per_user: Rate::of(per_user),
            per_ip: Rate::of(per_ip),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The spend of a call by `user` (when known) from `ip` (when known); `None` when there is
    /// nothing to key on. A budget of which this replica holds calls is spent here at once;
    /// the others are asked of Redis ([`CallSpend::is_remote`]).
    pub fn spend(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Option<CallSpend> {
        let mut spend = CallSpend::new(false);
        // Built only when a budget reaches its low water (rare next to calls).
        let mut refill: Option<Box<CallSpend>> = None;
        let budgets = [
            user.map(|user| (Whose::User, format!("rl:user:{user}"), self.per_user)),
            ip.map(|ip| {
                (
                    Whose::Address,
                    format!("rl:ip:{}", address_key(ip)),
                    self.per_ip,
                )
            }),
        ];
        let now = Instant::now();
        let mut held = self.held();
        for (whose, name, rate) in budgets.into_iter().flatten() {
            let key = self.redis.key(&name);
            let entry = held.entry(key.clone()).or_insert(Held {
                calls: 0,
                until: now,
                asking_since: None,
            });
            // Nobody of this replica is asking Redis for a grant of this budget.
            let free = entry
                .asking_since
                .is_none_or(|since| now.duration_since(since) > GRANT_TTL);
            if entry.calls > 0 && entry.until > now {
                entry.calls -= 1;
                if free && entry.calls <= low_water_of(rate.grant) {
                    entry.asking_since = Some(now);
                    refill
                        .get_or_insert_with(|| Box::new(CallSpend::new(true)))
                        .ask(whose, key.clone(), rate, rate.grant, true);
                }
                spend.taken.push(key);
                continue;
            }
            // Another call of this replica is asking for a grant: this one asks for itself.
            let granting = rate.grant > 1 && free;
            if granting {
                entry.asking_since = Some(now);
            }
            let wanted = if granting { rate.grant } else { 1 };
            spend.ask(whose, key, rate, wanted, granting);
        }
        drop(held);
        spend.refill = refill;
        (!spend.whose.is_empty() || !spend.taken.is_empty()).then_some(spend)
    }

    /// Runs `spend` in a round trip of its own when it needs Redis; `None` when Redis did not
    /// answer (down, slower than [`crate::redis::REDIS_TIMEOUT`]).
    pub async fn spend_alone(&self, spend: &CallSpend) -> Option<Verdict> {
        if !spend.is_remote() {
            return self.settle(spend, None);
        }
        let Some(mut conn) = self.redis.connection() else {
            return self.settle(spend, None);
        };
        // `invoke_async` loads the script when Redis does not know it.
        let result: redis::RedisResult<redis::Value> =
            timed(spend.invocation.invoke_async(&mut conn)).await;
        match result {
            Ok(reply) => self.settle(spend, Some(reply)),
            Err(error) => {
                self.redis.failed(&error);
                self.settle(spend, None)
            }
        }
    }

    /// The verdict on `spend`, from Redis' `reply` when it was asked: the calls Redis granted
    /// beyond this one are kept (all of them for a refill), the calls taken from those held
    /// are given back when the call is refused or cannot be decided (`None`: Redis did not
    /// answer, or not as the script).
    pub fn settle(&self, spend: &CallSpend, reply: Option<redis::Value>) -> Option<Verdict> {
        let (verdict, granted) = if spend.is_remote() {
            reply
                .and_then(|reply| spend.read(reply))
                .unwrap_or_default()
        } else {
            (Some(Verdict::Allowed), Vec::new())
        };
        let until = Instant::now() + GRANT_TTL;
        let mut held = self.held();
        for (key, _) in spend.keys.iter().zip(&spend.granting).filter(|(_, g)| **g) {
            if let Some(entry) = held.get_mut(key) {
                entry.asking_since = None;
            }
        }
        for (key, calls) in spend.keys.iter().zip(granted) {
            // The call spends one of those granted, unless refused or asking ahead.
            let kept = if verdict == Some(Verdict::Allowed) && !spend.ahead {
                calls.saturating_sub(1)
            } else {
                calls
            };
            if kept > 0 {
                let entry = held.entry(key.clone()).or_insert(Held {
                    calls: 0,
                    until,
                    asking_since: None,
                });
                entry.calls = if entry.until > Instant::now() {
                    entry.calls + kept
                } else {
                    kept
                };
                entry.until = until;
            }
        }
        if verdict != Some(Verdict::Allowed) {
            for key in &spend.taken {
                if let Some(entry) = held.get_mut(key) {
                    entry.calls += 1;
                }
            }
        }
        verdict
    }

    /// Drops the calls held past their time.
    pub fn purge(&self) {
        let now = Instant::now();
        self.held()
            .retain(|_, held| held.until > now || held.asking_since.is_some());
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        // The map is consistent after any panic (plain counts).
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CallSpend {
    fn new(ahead: bool) -> Self {
        Self {
            invocation: SCRIPT.prepare_invoke(),
            whose: Vec::with_capacity(2),
            keys: Vec::with_capacity(2),
            granting: Vec::with_capacity(2),
            taken: Vec::new(),
            ahead,
            refill: None,
        }
    }

    /// Adds the budget `key` to the script's keys, asking for `wanted` calls of it.
    fn ask(&mut self, whose: Whose, key: String, rate: Rate, wanted: u32, granting: bool) {
        self.invocation
            .key(&key)
            .arg(rate.emission_ms)
            .arg(rate.tolerance_ms)
            .arg(wanted);
        self.granting.push(granting);
        self.whose.push(whose);
        self.keys.push(key);
    }

    /// The grants this call asks for ahead of need, to run apart from the call
    /// ([`SharedCalls::spend_alone`], whose verdict then decides nothing): the call never
    /// waits for them.
    pub fn take_refill(&mut self) -> Option<CallSpend> {
        self.refill.take().map(|refill| *refill)
    }

    /// The script invocation, for a pipeline (`redis::Pipeline::invoke_script`).
    pub fn invocation(&self) -> &ScriptInvocation<'static> {
        &self.invocation
    }

    /// Whether Redis must be asked: some budget has no call held by this replica.
    pub fn is_remote(&self) -> bool {
        !self.whose.is_empty()
    }

    /// The verdict in the script's `reply`; `None` when the reply is not the script's.
    pub fn verdict(&self, reply: redis::Value) -> Option<Verdict> {
        self.read(reply)?.0
    }

    /// The verdict in the script's `reply` and the calls granted of each budget asked.
    fn read(&self, reply: redis::Value) -> Option<(Option<Verdict>, Vec<u32>)> {
        let reply: Vec<u64> = redis::from_redis_value(reply).ok()?;
        let (&index, rest) = reply.split_first()?;
        let (&wait_ms, granted) = rest.split_first()?;
        let granted = granted
            .iter()
            .map(|&calls| u32::try_from(calls).unwrap_or(u32::MAX))
            .collect();
        if index == 0 {
            return Some((Some(Verdict::Allowed), granted));
        }
        let whose = *self.whose.get(usize::try_from(index).ok()? - 1)?;
        let verdict = Verdict::Refused {
            whose,
            wait: Duration::from_millis(wait_ms),
        };
        Some((Some(verdict), granted))
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

    #[tokio::test]
    async fn calls_taken_a_few_at_a_time_never_exceed_the_shared_budget() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        // Users: 1/s, burst 24: each replica takes 3 calls at a time.
        assert_eq!(grant_of(limit(1, 24)), 3);
        let replicas = [
            SharedCalls::new(
                replica(&prefix, &shutdown).await,
                limit(1, 24),
                limit(1000, 1000),
            ),
            SharedCalls::new(
                replica(&prefix, &shutdown).await,
                limit(1, 24),
                limit(1000, 1000),
            ),
        ];
        let user = Some(Uuid::new_v4());
        let (mut allowed, mut asked) = (0, 0);
        for round in 0..60 {
            let limits = &replicas[round % 2];
            let mut spend = limits.spend(user, None).expect("a user");
            asked += usize::from(spend.is_remote());
            let refill = spend.take_refill();
            if limits.spend_alone(&spend).await == Some(Verdict::Allowed) {
                allowed += 1;
            }
            if let Some(refill) = refill {
                asked += 1;
                limits.spend_alone(&refill).await;
            }
        }
        // The burst, one more for the second that may have passed; at most the calls each
        // replica may hold unspent (a grant less one, and a grant asked ahead) are lost to the
        // others.
        assert!((24 - 2 * 5..=25).contains(&allowed), "{allowed} allowed");
        // Until the budget is spent, Redis is asked about once for every 2 calls.
        assert!(asked < 60 - 24 / 3, "{asked} round trips");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn calls_are_asked_for_before_they_run_out() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        // Users: 1,000/s, burst 800: grants of 100, the next asked for at 50 held.
        assert_eq!((grant_of(limit(1000, 800)), low_water_of(100)), (100, 50));
        let limits = SharedCalls::new(
            replica(&prefix, &shutdown).await,
            limit(1000, 800),
            limit(1000, 800),
        );
        let id = Uuid::new_v4();
        let user = Some(id);
        let (mut remote, mut refills) = (0, Vec::new());
        for call in 1..=400 {
            let mut spend = limits.spend(user, None).expect("a user");
            remote += usize::from(spend.is_remote());
            let refill = spend.take_refill();
            assert_eq!(limits.spend_alone(&spend).await, Some(Verdict::Allowed));
            if let Some(refill) = refill {
                refills.push(call);
                assert_eq!(limits.spend_alone(&refill).await, Some(Verdict::Allowed));
            }
        }
        // The first call asks for a grant; every other is served from held calls, the next
        // grant asked for by the call that leaves 50: calls 50, 150, 250 and 350.
        assert_eq!(remote, 1);
        assert_eq!(refills, [50, 150, 250, 350]);
        let key = limits.redis.key(&format!("rl:user:{id}"));
        assert_eq!(limits.held()[&key].calls, 500 - 400, "granted less spent");

        // While a refill is on its way, the calls go on spending what is held.
        let mut spend = limits.spend(user, None).expect("a user");
        assert!(!spend.is_remote() && spend.take_refill().is_none());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_refill_redis_refuses_refuses_no_call_and_holds_nothing() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        // Users: 1/s, burst 16: grants of 2, the next asked for at 1 held.
        let a = SharedCalls::new(
            replica(&prefix, &shutdown).await,
            limit(1, 16),
            limit(1000, 1000),
        );
        let b = SharedCalls::new(
            replica(&prefix, &shutdown).await,
            limit(1, 16),
            limit(1000, 1000),
        );
        let id = Uuid::new_v4();
        let user = Some(id);
        let first = a.spend(user, None).expect("a user");
        assert!(first.is_remote());
        assert_eq!(a.spend_alone(&first).await, Some(Verdict::Allowed));
        // The other replica spends the rest of the budget.
        let mut spent_by_b = 0;
        loop {
            let mut spend = b.spend(user, None).expect("a user");
            let refill = spend.take_refill();
            if b.spend_alone(&spend).await != Some(Verdict::Allowed) {
                break;
            }
            spent_by_b += 1;
            if let Some(refill) = refill {
                b.spend_alone(&refill).await;
            }
        }
        assert!(spent_by_b >= 12, "{spent_by_b}");
        // A's held call is spent, and the grant it asks for ahead is refused.
        let mut spend = a.spend(user, None).expect("a user");
        assert!(!spend.is_remote());
        let refill = spend.take_refill().expect("at the low water");
        assert_eq!(a.spend_alone(&spend).await, Some(Verdict::Allowed));
        assert!(matches!(
            a.spend_alone(&refill).await,
            Some(Verdict::Refused {
                whose: Whose::User,
                ..
            })
        ));
        let key = a.redis.key(&format!("rl:user:{id}"));
        assert_eq!(a.held()[&key].calls, 0);
        assert_eq!(a.held()[&key].asking_since, None);
        // The next call asks Redis and is refused.
        let next = a.spend(user, None).expect("a user");
        assert!(next.is_remote());
        assert!(matches!(
            a.spend_alone(&next).await,
            Some(Verdict::Refused {
                whose: Whose::User,
                ..
            })
        ));
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
