//! Read cache shared by server replicas through Redis, with an in-process cache as the default
//! (no `REDIS_URL`) and as the fallback while Redis is unreachable: no RPC fails because Redis
//! is down. A background task connects, watches the link and reconnects.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::config::RedisConfig;
use crate::metrics::{CACHE_REQUESTS, REDIS_UP};

/// Largest number of in-process entries kept (each entry is one cached response).
const LOCAL_CAPACITY: u64 = 50_000;
/// Keys whose deletion could not reach Redis, replayed when it is back; bounded.
const PENDING_DELETES_CAP: usize = 10_000;
/// How often the link is probed (and a reconnection tried).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// A Redis call slower than this counts as a failure: the caller falls back to local.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    local: moka::future::Cache<String, LocalEntry>,
    redis: Option<RedisLink>,
}

#[derive(Clone)]
struct LocalEntry {
    value: Bytes,
    expires_at: Instant,
}

struct RedisLink {
    client: redis::Client,
    prefix: String,
    manager: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    pending_deletes: Mutex<HashSet<String>>,
}

impl Cache {
    /// The embedded cache alone.
    pub fn in_process() -> Self {
        Self::build(None)
    }

    /// Redis-backed cache. Connection happens in [`Cache::run_link`]; until then, and whenever
    /// Redis is down, the in-process cache answers.
    pub fn with_redis(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(config.url.as_str())?;
        Ok(Self::build(Some(RedisLink {
            client,
            prefix: config.key_prefix.clone(),
            manager: Mutex::new(None),
            up: AtomicBool::new(false),
            pending_deletes: Mutex::new(HashSet::new()),
        })))
    }

    fn build(redis: Option<RedisLink>) -> Self {
        let local = moka::future::Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            // Per-entry TTLs are checked on read; this bounds how long any entry can linger.
            .time_to_live(Duration::from_secs(3600))
            .build();
        Self {
            inner: Arc::new(Inner { local, redis }),
        }
    }

    pub fn is_redis_configured(&self) -> bool {
        self.inner.redis.is_some()
    }

    pub fn is_redis_up(&self) -> bool {
        self.inner
            .redis
            .as_ref()
            .is_some_and(|link| link.up.load(Ordering::Relaxed))
    }

    /// The value of `key`, counted in [`CACHE_REQUESTS`] under the key's first segment
    /// (`rbac:role:admin` is of kind `rbac`).
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        let value = self.lookup(key).await;
        let kind = key.split(':').next().unwrap_or_default().to_owned();
        let result = if value.is_some() { "hit" } else { "miss" };
        metrics::counter!(CACHE_REQUESTS, "kind" => kind, "result" => result).increment(1);
        value
    }

    async fn lookup(&self, key: &str) -> Option<Bytes> {
        if let Some(conn) = self.redis_connection() {
            let link = self.link();
            let mut conn = conn;
            let result: Result<Option<Vec<u8>>, _> = with_timeout(conn.get(link.key(key))).await;
            match result {
                Ok(value) => return value.map(Bytes::from),
                Err(e) => link.mark_down(&e),
            }
        }
        let entry = self.inner.local.get(key).await?;
        if entry.expires_at <= Instant::now() {
            self.inner.local.invalidate(key).await;
            return None;
        }
        Some(entry.value)
    }

    pub async fn set(&self, key: &str, value: Bytes, ttl: Duration) {
        if let Some(mut conn) = self.redis_connection() {
            let link = self.link();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let result: Result<(), _> =
                with_timeout(conn.pset_ex(link.key(key), value.as_ref(), millis)).await;
            match result {
                Ok(()) => return,
                Err(e) => link.mark_down(&e),
            }
        }
        let entry = LocalEntry {
            value,
            expires_at: Instant::now() + ttl,
        };
        self.inner.local.insert(key.to_owned(), entry).await;
    }

    /// Removes a key everywhere. When Redis cannot be reached the deletion is remembered and
    /// replayed on reconnection, so a value cached before the outage is not served stale after.
    pub async fn delete(&self, key: &str) {
        self.inner.local.invalidate(key).await;
        let Some(link) = self.inner.redis.as_ref() else {
            return;
        };
        if let Some(mut conn) = self.redis_connection() {
            let result: Result<(), _> = with_timeout(conn.del(link.key(key))).await;
            match result {
                Ok(()) => return,
                Err(e) => link.mark_down(&e),
            }
        }
        let mut pending = link.pending_deletes.lock().expect("cache lock poisoned");
        if pending.len() < PENDING_DELETES_CAP {
            pending.insert(key.to_owned());
        }
    }

    /// Keeps the Redis link alive until `shutdown`: connects, probes, reconnects, replays
    /// deletions missed during an outage. Returns at once when Redis is not configured.
    pub async fn run_link(self, shutdown: CancellationToken) {
        let Some(link) = self.inner.redis.as_ref() else {
            metrics::gauge!(REDIS_UP).set(0.0);
            return;
        };
        let mut interval = tokio::time::interval(PROBE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let was_up = link.up.load(Ordering::Relaxed);
            let is_up = link.probe().await;
            if is_up && !was_up {
                if link.replay_pending_deletes().await {
                    // Local entries were written while Redis was away; drop them so reads
                    // go back to the shared cache.
                    self.inner.local.invalidate_all();
                    link.up.store(true, Ordering::Relaxed);
                    tracing::info!("redis connected; the cache is shared");
                }
            } else if !is_up && was_up {
                link.up.store(false, Ordering::Relaxed);
                tracing::warn!("redis unreachable; serving from the in-process cache");
            }
            metrics::gauge!(REDIS_UP).set(if link.up.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            });
        }
    }

    fn link(&self) -> &RedisLink {
        self.inner
            .redis
            .as_ref()
            .expect("checked by redis_connection")
    }

    fn redis_connection(&self) -> Option<ConnectionManager> {
        let link = self.inner.redis.as_ref()?;
        if !link.up.load(Ordering::Relaxed) {
            return None;
        }
        link.manager.lock().expect("cache lock poisoned").clone()
    }
}

impl RedisLink {
    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    fn mark_down(&self, error: &redis::RedisError) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %error, "redis call failed; serving from the in-process cache");
        }
    }

    /// Pings Redis, connecting first when there is no connection yet.
    async fn probe(&self) -> bool {
        let existing = self.manager.lock().expect("cache lock poisoned").clone();
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT * 4))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                match self.client.get_connection_manager_with_config(config).await {
                    Ok(conn) => {
                        *self.manager.lock().expect("cache lock poisoned") = Some(conn.clone());
                        conn
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "redis connection attempt failed");
                        return false;
                    }
                }
            }
        };
        with_timeout(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .is_ok()
    }

    /// Returns false when Redis failed again during the replay (then it stays marked down).
    async fn replay_pending_deletes(&self) -> bool {
        let keys: Vec<String> = self
            .pending_deletes
            .lock()
            .expect("cache lock poisoned")
            .drain()
            .collect();
        if keys.is_empty() {
            return true;
        }
        let Some(mut conn) = self.manager.lock().expect("cache lock poisoned").clone() else {
            return false;
        };
        let redis_keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let result: Result<(), _> = with_timeout(conn.del(redis_keys)).await;
        if result.is_err() {
            self.pending_deletes
                .lock()
                .expect("cache lock poisoned")
                .extend(keys);
            return false;
        }
        true
    }
}

async fn with_timeout<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "redis call timed out",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_cache_honours_ttl() {
        let cache = Cache::in_process();
        cache
            .set("a", Bytes::from_static(b"1"), Duration::from_millis(50))
            .await;
        assert_eq!(cache.get("a").await, Some(Bytes::from_static(b"1")));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get("a").await, None);
    }

    #[tokio::test]
    async fn delete_removes_local_entry() {
        let cache = Cache::in_process();
        cache
            .set("k", Bytes::from_static(b"v"), Duration::from_secs(60))
            .await;
        cache.delete("k").await;
        assert_eq!(cache.get("k").await, None);
        assert!(!cache.is_redis_up());
    }
}
