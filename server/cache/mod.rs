//! Read cache shared by server replicas through Redis, with an in-process cache as the default
//! (no `REDIS_URL`) and as the fallback while Redis is unreachable: no RPC fails because Redis
//! is down.
//!
//! Decisions (ADR 0005, ADR 0014):
//! - One interface for handlers, whichever backend answers: Redis while the shared link
//!   (`crate::redis`) is up, else an in-process moka cache.
//! - Reads are cached through the typed get-or-compute of [`read`] (by [`CacheKind`], with a
//!   TTL per kind, keys scoped by what the caller may see, versioned per site); the adapters
//!   wrap a use case with `crate::api::cached`. The byte get/set/delete below serve the role
//!   permissions.
//! - Read-cache answers are also kept decoded in the process, under their full key (whose
//!   versions are held in the process between reads while it listens to the writes'
//!   announcements, `held`, else read from Redis) and never past their shared entry's end.
//! - A deletion that cannot reach Redis is remembered (bounded) and replayed when the link is
//!   back, before Redis is read again; entries written locally during the outage are dropped
//!   then, so reads go back to the shared values.

mod ahead;
mod held;
mod kind;
mod read;
mod touch;

pub use ahead::{AheadKeys, CallPath, VersionsAhead};
pub use held::HELD_FOR;
pub use kind::{CacheConfig, CacheKind};
pub use read::{Audience, CacheValue, Coverage, Found, Outcome, PreEncoded, request_digest};
pub use touch::TouchesSites;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::metrics::CACHE_REQUESTS;
use crate::redis::{Redis, timed};

/// Largest number of in-process entries kept (each entry is one cached response).
const LOCAL_CAPACITY: u64 = 50_000;
/// Keys whose deletion could not reach Redis, replayed when it is back; bounded.
const PENDING_DELETES_CAP: usize = 10_000;
/// Largest number of decoded read-cache answers kept in the process ([`read`]).
const HOT_CAPACITY: u64 = 1_024;

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    local: moka::future::Cache<String, LocalEntry>,
    /// Decoded read-cache answers by their full key (versions included), each until its
    /// shared entry's end: a hit on one costs the versions' round trip alone (`read`).
    hot: moka::sync::Cache<String, read::HotEntry>,
    redis: Option<Redis>,
    pending_deletes: Mutex<HashSet<String>>,
    config: CacheConfig,
    /// This process's site versions, used while Redis is down (`read`).
    versions: Mutex<HashMap<String, u64>>,
    /// A write could not move its versions in Redis: the epoch moves at reconnection.
    missed_bumps: AtomicBool,
    /// Per user, the version names their cached reads covered lately, read ahead with their
    /// standing (`ahead`).
    ahead: moka::sync::Cache<uuid::Uuid, Arc<[String]>>,
    /// The methods (HTTP paths) that read through the cache: only their calls read ahead.
    reading_methods: std::sync::RwLock<HashSet<String>>,
    /// Single-flight locks of the keys being computed.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Reads whose versions all came ahead, with the caller's standing (`ahead`).
    read_ahead: AtomicU64,
    /// The versions held between reads while this process listens to the writes'
    /// announcements (`held`).
    held: held::HeldVersions,
    /// Reads whose versions were all held (no Redis round trip for them).
    read_held: AtomicU64,
    /// Answers computed, by kind (`CacheKind as usize`).
    computations: [AtomicU64; CacheKind::ALL.len()],
}

#[derive(Clone)]
struct LocalEntry {
    value: Bytes,
    expires_at: Instant,
}

impl Cache {
    /// The embedded cache alone.
    pub fn in_process() -> Self {
        Self::new(None)
    }

    /// [`Cache::with_config`] with the seed's TTLs.
    pub fn new(redis: Option<Redis>) -> Self {
        Self::with_config(redis, CacheConfig::default())
    }

    /// A cache on the shared Redis link when there is one. Until the link is up, and whenever
    /// it is down, the in-process cache answers.
    pub fn with_config(redis: Option<Redis>, config: CacheConfig) -> Self {
        let local = moka::future::Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            // Per-entry TTLs are checked on read; this bounds how long any entry can linger.
            .time_to_live(Duration::from_secs(3600))
            .build();
        let hot = moka::sync::Cache::builder()
            .max_capacity(HOT_CAPACITY)
            .time_to_live(Duration::from_secs(3600))
            .build();
        let ahead = moka::sync::Cache::builder()
            .max_capacity(ahead::USERS)
            .time_to_idle(ahead::REMEMBERED_FOR)
            .build();
        let inner = Arc::new(Inner {
            local,
            hot,
            ahead,
            redis,
            pending_deletes: Mutex::new(HashSet::new()),
            config,
            versions: Mutex::new(HashMap::new()),
            missed_bumps: AtomicBool::new(false),
            flights: Mutex::new(HashMap::new()),
            read_ahead: AtomicU64::new(0),
            held: held::HeldVersions::default(),
            read_held: AtomicU64::new(0),
            reading_methods: std::sync::RwLock::new(HashSet::new()),
            computations: Default::default(),
        });
        if let Some(redis) = &inner.redis {
            let cache = Arc::downgrade(&inner);
            redis.on_reconnect(Box::new(move |conn| {
                let cache: Weak<Inner> = cache.clone();
                Box::pin(async move {
                    match cache.upgrade() {
                        Some(inner) => inner.catch_up(conn).await,
                        None => true,
                    }
                })
            }));
        }
        Self { inner }
    }

    pub fn is_redis_configured(&self) -> bool {
        self.inner.redis.is_some()
    }

    pub fn is_redis_up(&self) -> bool {
        self.inner.redis.as_ref().is_some_and(Redis::is_up)
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
        if let Some((redis, mut conn)) = self.redis_connection() {
            let result: Result<Option<Vec<u8>>, _> = timed(conn.get(redis.key(key))).await;
            match result {
                Ok(value) => return value.map(Bytes::from),
                Err(e) => redis.failed(&e),
            }
        }
        self.local_lookup(key).await
    }

    async fn local_lookup(&self, key: &str) -> Option<Bytes> {
        Some(self.local_entry(key).await?.value)
    }

    async fn local_entry(&self, key: &str) -> Option<LocalEntry> {
        let entry = self.inner.local.get(key).await?;
        if entry.expires_at <= Instant::now() {
            self.inner.local.invalidate(key).await;
            return None;
        }
        Some(entry)
    }

    async fn local_store(&self, key: &str, value: Bytes, ttl: Duration) {
        let entry = LocalEntry {
            value,
            expires_at: Instant::now() + ttl,
        };
        self.inner.local.insert(key.to_owned(), entry).await;
    }

    pub async fn set(&self, key: &str, value: Bytes, ttl: Duration) {
        if let Some((redis, mut conn)) = self.redis_connection() {
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let result: Result<(), _> =
                timed(conn.pset_ex(redis.key(key), value.as_ref(), millis)).await;
            match result {
                Ok(()) => return,
                Err(e) => redis.failed(&e),
            }
        }
        self.local_store(key, value, ttl).await;
    }

    /// Removes a key everywhere. When Redis cannot be reached the deletion is remembered and
    /// replayed on reconnection, so a value cached before the outage is not served stale after.
    pub async fn delete(&self, key: &str) {
        self.inner.local.invalidate(key).await;
        if self.inner.redis.is_none() {
            return;
        }
        if let Some((redis, mut conn)) = self.redis_connection() {
            let result: Result<(), _> = timed(conn.del(redis.key(key))).await;
            match result {
                Ok(()) => return,
                Err(e) => redis.failed(&e),
            }
        }
        let mut pending = self.inner.pending();
        if pending.len() < PENDING_DELETES_CAP {
            pending.insert(key.to_owned());
        }
    }

    fn redis_connection(&self) -> Option<(&Redis, ConnectionManager)> {
        let redis = self.inner.redis.as_ref()?;
        Some((redis, redis.connection()?))
    }
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set is consistent after any panic (single inserts and drains).
        self.pending_deletes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Before Redis is read again: replays the deletions missed during the outage, moves the
    /// epoch if writes could not move their versions, then drops the entries written locally
    /// meanwhile. False when Redis failed again.
    async fn catch_up(&self, mut conn: ConnectionManager) -> bool {
        let Some(redis) = &self.redis else {
            return true;
        };
        if !self.move_epoch_if_owed(&mut conn).await {
            return false;
        }
        let keys: Vec<String> = self.pending().drain().collect();
        if !keys.is_empty() {
            let redis_keys: Vec<String> = keys.iter().map(|k| redis.key(k)).collect();
            let result: Result<(), _> = timed(conn.del(redis_keys)).await;
            if result.is_err() {
                self.pending().extend(keys);
                return false;
            }
        }
        self.local.invalidate_all();
        self.hot.invalidate_all();
        true
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
