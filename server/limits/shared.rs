//! A GCRA shared by the replicas through Redis, for the stream message limit: N replicas do not
//! allow N times the limit. The per-process limiter answers whenever Redis does not.
//!
//! Decisions:
//! - One Lua script per check (atomic in Redis): the key holds the theoretical arrival time
//!   (TAT) in milliseconds of Redis' own clock (`TIME`), so the replicas' clocks do not matter.
//!   Algorithm: the generic cell rate algorithm (ITU-T I.371; as in `governor`): emission
//!   interval T = 1/rate, tolerance τ = T × (burst − 1); a message at time t is conforming when
//!   t ≥ TAT − τ, and TAT becomes max(TAT, t) + T.
//! - A message over the limit is spent anyway and told how long to wait (as the local
//!   limiter delays, never drops): the stream's reader sleeps that long before handing it on.
//! - The key expires once the TAT is past, so idle users cost nothing.

use std::time::Duration;

use redis::Script;
use uuid::Uuid;

use crate::limits::Limit;
use crate::redis::{Redis, timed};

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + emission
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return wait
";

/// The shared limiter of one kind of message.
#[derive(Clone)]
pub struct SharedGcra {
    redis: Redis,
    script: std::sync::Arc<Script>,
    /// Milliseconds per message.
    emission_ms: f64,
    /// Milliseconds of burst tolerance.
    tolerance_ms: f64,
    kind: &'static str,
}

impl SharedGcra {
    pub fn new(redis: Redis, limit: Limit, kind: &'static str) -> Self {
        let emission_ms = 1000.0 / f64::from(limit.per_second.get());
        Self {
            redis,
            script: std::sync::Arc::new(Script::new(GCRA)),
            emission_ms,
            tolerance_ms: emission_ms * f64::from(limit.burst.get() - 1),
            kind,
        }
    }

    /// Spends one message of `user`: how long to wait before it conforms, or `None` when Redis
    /// did not answer (the caller falls back to its own limiter).
    pub async fn spend(&self, user: Uuid) -> Option<Duration> {
        let mut conn = self.redis.connection()?;
        let key = self.redis.key(&format!("rl:{}:{user}", self.kind));
        let mut invocation = self.script.key(key);
        invocation.arg(self.emission_ms).arg(self.tolerance_ms);
        let result: redis::RedisResult<i64> = timed(invocation.invoke_async(&mut conn)).await;
        match result {
            Ok(wait_ms) => Some(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))),
            Err(error) => {
                self.redis.failed(&error);
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use futures::StreamExt;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::limits::StreamLimiter;
    use crate::redis::RedisConfig;

    /// A replica's link to the Redis of `REDIS_URL` (default 127.0.0.1:6379), once up.
    pub(crate) async fn replica(prefix: &str, shutdown: &CancellationToken) -> Redis {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis = Redis::open(&RedisConfig {
            url,
            key_prefix: prefix.to_owned(),
        })
        .expect("redis url");
        tokio::spawn(redis.clone().run_link(shutdown.clone()));
        for _ in 0..100 {
            if redis.is_up() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("Redis is not reachable");
    }

    #[tokio::test]
    async fn two_replicas_share_one_budget() {
        let shutdown = CancellationToken::new();
        let prefix = format!("akig-test-{}", Uuid::new_v4());
        let limit = Limit {
            per_second: 20.try_into().unwrap(),
            burst: 2.try_into().unwrap(),
        };
        let a = StreamLimiter::shared_through(limit, replica(&prefix, &shutdown).await);
        let b = StreamLimiter::shared_through(limit, replica(&prefix, &shutdown).await);
        let user = Uuid::new_v4();
        // Alone, each replica would pass 3 messages in 1 × 50 ms; sharing the budget, the 6
        // take at least 4 × 50 ms (a burst of 2, then one every 50 ms).
        let started = Instant::now();
        let (x, y) = tokio::join!(
            a.limit(user, futures::stream::iter(0..3)).count(),
            b.limit(user, futures::stream::iter(0..3)).count(),
        );
        assert_eq!(x + y, 6);
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
        shutdown.cancel();
    }
}
