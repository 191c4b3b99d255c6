//! The typed read cache: get-or-compute of a read's answer, under a key naming what the
//! caller may see and the versions of the sites the answer covers.
//!
//! Decisions (ADR 0014):
//! - An answer is stored encoded as protobuf ([`CacheValue`]): the answers are the API's own
//!   messages, whose encoding is compact and tolerant of added fields.
//! - Key: `<kind>:<Conakry day>:<audience>:<request digest>:<coverage>:<versions>`. The audience
//!   ([`Audience`]) is the caller's role, permissions, sites and, for supervisors and agents,
//!   their id: two callers who may see different things never share an entry. The day is
//!   there because answers default their periods to "today".
//! - Invalidation by versioned namespaces: every site has a version, and so has "every
//!   site" (`all`), which any write moves. An answer covering given sites embeds their
//!   versions, any other answer embeds `all`'s; a write moves the versions of the sites it
//!   touched after its commit ([`Cache::written`]). Old entries are never looked for again
//!   and expire by TTL: no `KEYS`, no `SCAN`, one `MGET` per read.
//! - Versions are read before the answer is computed: a write committed meanwhile moves a
//!   version the entry already embeds, so the entry is never served after the write.
//! - A missing version (Redis restarted, evicted) is recreated at a random value, so an old
//!   entry cannot match it by chance. All keys also embed a fleet `epoch`, moved when this
//!   process reconnects after writes it could not announce while Redis was down.
//! - Redis down: versions are this process's own and entries go to the in-process cache only;
//!   a Redis failure in the middle of a read makes that read compute without the cache. No
//!   read fails because of Redis.
//! - Single flight: concurrent misses of one key in a process wait for the first one's
//!   computation, then read its entry.
//! - Hits: the versions come from the process while it holds them (`super::held`, ADR 0017:
//!   kept 1 s at most, dropped when a write's announcement arrives), else from Redis (one
//!   `MGET`, or read ahead with the caller's standing); the answer itself comes from the
//!   process's decoded copy of the key when there is one (`Inner::hot`), kept no longer than
//!   its shared entry (Redis' `PTTL`, read with the entry), else from Redis. A steady hit is
//!   no round trip and no decoding.
//! - Writes move their versions and announce them in one pipeline (`announce`).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ahead::VersionsAhead;
use super::held::announcement;
use super::{Cache, CacheKind, Inner};
use crate::auth::caller::{Caller, Scope};
use crate::auth::rbac::Permission;
use crate::metrics::CACHE_REQUESTS;
use crate::redis::timed;

/// A value the read cache can hold: encoded to bytes and back.
pub trait CacheValue: Sized {
    fn encode_value(&self) -> Vec<u8>;
    /// `None` when the bytes are not a value of this type (an older binary's entry).
    fn decode_value(bytes: &[u8]) -> Option<Self>;
}

impl<T: prost::Message + Default> CacheValue for T {
    fn encode_value(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    fn decode_value(bytes: &[u8]) -> Option<Self> {
        T::decode(bytes).ok()
    }
}

/// The protobuf encoding of a unary call's answer, in the response's extensions: a cached
/// read (`crate::api::cached`) answers an empty message with this beside it, and the observe
/// layer (`crate::layers::observe`) sends these bytes as the response's one message. So a hit
/// is sent as the cache holds it, neither copied nor encoded again.
#[derive(Debug, Clone)]
pub struct PreEncoded(pub Bytes);

/// Whether an answer came from the cache (`x-cache: HIT`) or was computed (`MISS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
        }
    }
}

/// The sites an answer is computed from, whose writes must drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Any site (company-wide answers, or answers whose sites are not known in advance).
    Everything,
    /// Only these sites (sorted, without duplicates).
    Sites(Vec<Uuid>),
}

impl Coverage {
    /// The sites of a read filtered by `requested` sites (empty: no filter) within the
    /// caller's scope: a site manager's reads cover their sites; a company-wide caller's
    /// cover the requested sites, or everything. Supervisors and agents see agents' work,
    /// which may lie on any site: everything.
    pub fn of(caller: &Caller, requested: &[Uuid]) -> Self {
        let sites: Vec<Uuid> = match caller.scope() {
            Scope::Company if requested.is_empty() => return Coverage::Everything,
            Scope::Company => requested.to_vec(),
            Scope::Sites(own) if requested.is_empty() => own.to_vec(),
            Scope::Sites(own) => requested
                .iter()
                .filter(|s| own.contains(s))
                .copied()
                .collect(),
            Scope::Team { .. } | Scope::Own { .. } => return Coverage::Everything,
        };
        Coverage::sites(sites)
    }

    /// [`Coverage::of`] the caller and the site ids of a request (`field` of the message);
    /// ids that do not parse leave the read covering everything (it will be refused anyway).
    pub fn requested(caller: &Caller, site_ids: &[String]) -> Coverage {
        let parsed: Result<Vec<Uuid>, _> = site_ids.iter().map(|s| s.parse::<Uuid>()).collect();
        match parsed {
            Ok(sites) => Coverage::of(caller, &sites),
            Err(_) => Coverage::Everything,
        }
    }

    pub fn sites(mut sites: Vec<Uuid>) -> Self {
        sites.sort_unstable();
        sites.dedup();
        Coverage::Sites(sites)
    }

    /// A key segment naming the coverage: `all`, or a digest of the sites.
    fn id(&self) -> String {
        match self {
            Coverage::Everything => ALL.to_owned(),
            Coverage::Sites(sites) => {
                let mut hasher = Sha256::new();
                for site in sites {
                    hasher.update(site.as_bytes());
                }
                short_digest(hasher)
            }
        }
    }

    /// The version names: `all`, or `site:<id>` per site.
    pub(super) fn names(&self) -> Vec<String> {
        match self {
            Coverage::Everything => vec![ALL.to_owned()],
            Coverage::Sites(sites) => sites.iter().map(|s| format!("site:{s}")).collect(),
        }
    }
}

/// What a caller may see, as a key segment: two callers with different audiences never share
/// an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(String);

impl Audience {
    /// Role, permissions (as a set of bits), sites (sorted) and, for supervisors and agents,
    /// their id, under SHA-256.
    pub fn of(caller: &Caller) -> Self {
        const _: () = assert!(Permission::ALL.len() <= 64, "permissions fit a u64");
        let mut hasher = Sha256::new();
        hasher.update(caller.role.as_str());
        let granted = caller
            .permissions
            .iter()
            .fold(0u64, |bits, permission| bits | 1 << (*permission as u32));
        hasher.update(b"\x1fp");
        hasher.update(granted.to_be_bytes());
        let mut sites = caller.site_ids.to_vec();
        sites.sort_unstable();
        for site in sites {
            hasher.update(b"\x1fs");
            hasher.update(site.as_bytes());
        }
        match caller.scope() {
            Scope::Team {
                supervisor_id: id, ..
            }
            | Scope::Own { agent_id: id, .. } => {
                hasher.update(b"\x1fu");
                hasher.update(id.as_bytes());
            }
            Scope::Company | Scope::Sites(_) => {}
        }
        Audience(short_digest(hasher))
    }
}

/// The digest of a request message and its type, a key segment. The type is part of it: two
/// methods cached under one kind (GetSummary and GetDailyStats are both `statistics`) may be
/// asked with messages that encode to the same bytes (both empty, say).
pub fn request_digest<M: prost::Message>(request: &M) -> String {
    let mut hasher = Sha256::new();
    hasher.update(std::any::type_name::<M>());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    short_digest(hasher)
}

fn short_digest(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of every site together.
const ALL: &str = "all";
/// Moved when a process comes back to Redis after writes it could not announce.
pub(super) const EPOCH: &str = "epoch";

/// Where one read looks: Redis (with the connection it started on) or this process.
enum Backend {
    Redis(ConnectionManager),
    Local,
}

impl Cache {
    /// The answer of a read: from the cache when an entry for (`kind`, `audience`, `request`,
    /// `coverage`'s versions) is there, else `compute`d, stored for the kind's TTL, and
    /// returned. Errors of `compute` are returned and never cached. Concurrent misses of one
    /// key in this process compute once.
    pub async fn get_or_compute<T, E>(
        &self,
        kind: CacheKind,
        audience: &Audience,
        request: &str,
        coverage: &Coverage,
        compute: impl Future<Output = Result<T, E>>,
    ) -> Result<(T, Outcome), E>
    where
        T: CacheValue + Clone + Send + Sync + 'static,
    {
        let (found, outcome) = self
            .get_or_compute_ahead(kind, audience, request, coverage, None, compute)
            .await?;
        Ok((found.into_value(), outcome))
    }

    /// [`Cache::get_or_compute`] with the versions `ahead` of the call (read with the
    /// caller's standing, `super::ahead`): when they hold every version the coverage needs,
    /// the read does not read them again. The answer comes as [`Found`]: the value, or its
    /// encoding ([`Found::into_encoded`]) without a copy or an encoding for a hit.
    pub async fn get_or_compute_ahead<T, E>(
        &self,
        kind: CacheKind,
        audience: &Audience,
        request: &str,
        coverage: &Coverage,
        ahead: Option<&VersionsAhead>,
        compute: impl Future<Output = Result<T, E>>,
    ) -> Result<(Found<T>, Outcome), E>
    where
        T: CacheValue + Clone + Send + Sync + 'static,
    {
        let ttl = self.inner.config.ttl(kind);
        if ttl.is_zero() {
            let value = self.computed(kind, compute).await?;
            return Ok((Found::Fresh(value, None), Outcome::Miss));
        }
        let mut backend = match self.redis_connection() {
            Some((_, conn)) => Backend::Redis(conn),
            None => Backend::Local,
        };
        let Some(versions) = self.versions(&mut backend, coverage, ahead).await else {
            count(kind, Outcome::Miss);
            let value = self.computed(kind, compute).await?;
            return Ok((Found::Fresh(value, None), Outcome::Miss));
        };
        let day = crate::domain::conakry_day(chrono::Utc::now());
        let key = format!(
            "{}:{day}:{}:{request}:{versions}",
            kind.as_str(),
            audience.0
        );
        if let Some(value) = self.read_entry(&mut backend, &key).await {
            count(kind, Outcome::Hit);
            return Ok((value, Outcome::Hit));
        }
        let flight = self.inner.flight(&key);
        let answer = {
            let _turn = flight.lock().await;
            match self.read_entry(&mut backend, &key).await {
                Some(value) => Ok((value, Outcome::Hit)),
                None => match self.computed(kind, compute).await {
                    Ok(value) => {
                        let bytes = Bytes::from(value.encode_value());
                        self.write_entry(&mut backend, &key, bytes.clone(), ttl)
                            .await;
                        self.inner.keep_hot(&key, &value, bytes.clone(), ttl);
                        Ok((Found::Fresh(value, Some(bytes)), Outcome::Miss))
                    }
                    Err(e) => Err(e),
                },
            }
        };
        self.inner.land(&key, flight);
        if let Ok((_, outcome)) = &answer {
            count(kind, *outcome);
        }
        answer
    }

    /// How many reads found every version they needed read ahead with the caller's standing
    /// (and so made no round trip of their own for them).
    pub fn reads_ahead(&self) -> u64 {
        self.inner.read_ahead.load(Ordering::Relaxed)
    }

    /// How many reads found every version they needed held in the process (and so made no
    /// Redis round trip for them).
    pub fn reads_held(&self) -> u64 {
        self.inner.read_held.load(Ordering::Relaxed)
    }

    /// How many answers of `kind` this process computed for the read cache.
    pub fn computations(&self, kind: CacheKind) -> u64 {
        self.inner.computations[kind as usize].load(Ordering::Relaxed)
    }

    /// After the commit of a write that touched `sites`: moves their versions and the
    /// company-wide one, here and in Redis, so the next read of any answer covering them
    /// computes afresh. When Redis cannot be reached, the fleet epoch moves at reconnection.
    pub async fn written(&self, sites: &[Uuid]) {
        let mut names: Vec<String> = sites.iter().map(|s| format!("site:{s}")).collect();
        names.push(ALL.to_owned());
        names.sort_unstable();
        names.dedup();
        {
            let mut local = self.inner.local_versions();
            for name in &names {
                *local.entry(name.clone()).or_default() += 1;
            }
        }
        let Some(redis) = self.inner.redis.as_ref() else {
            return;
        };
        self.move_versions(redis, &names).await;
    }

    /// After a write whose sites are not known: every entry of the fleet is dropped (the
    /// epoch moves), and this process's own entries (every local version moves).
    pub(super) async fn written_everywhere(&self) {
        {
            let mut local = self.inner.local_versions();
            *local.entry(EPOCH.to_owned()).or_default() += 1;
        }
        let Some(redis) = self.inner.redis.as_ref() else {
            return;
        };
        self.move_versions(redis, &[EPOCH]).await;
    }

    /// Moves the versions `names` in Redis and announces them ([`announce`]), then drops the
    /// held ones (after the round trip: a read that took the old values meanwhile keeps
    /// nothing). When they could not be moved, the fleet epoch moves at reconnection.
    async fn move_versions<S: AsRef<str>>(&self, redis: &crate::redis::Redis, names: &[S]) {
        let moved = match self.redis_connection() {
            Some((_, mut conn)) => announce(redis, &mut conn, names).await,
            None => Err(None),
        };
        self.inner.held.forget(names);
        if let Err(error) = moved {
            // Owed before the link is marked down, so that a reconnection cannot slip between.
            self.inner.missed_bumps.store(true, Ordering::Relaxed);
            if let Some(error) = error {
                redis.failed(&error);
            }
        }
    }

    async fn computed<T, E>(
        &self,
        kind: CacheKind,
        compute: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let value = compute.await?;
        self.inner.computations[kind as usize].fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// The versions segment of a key; `None` when Redis failed (the read skips the cache).
    async fn versions(
        &self,
        backend: &mut Backend,
        coverage: &Coverage,
        ahead: Option<&VersionsAhead>,
    ) -> Option<String> {
        let mut names = vec![EPOCH.to_owned()];
        names.extend(coverage.names());
        let id = coverage.id();
        let shared = |values: &[u64]| {
            let values: Vec<String> = values.iter().map(u64::to_string).collect();
            format!("{id}:r{}", values.join("."))
        };
        if let Backend::Redis(_) = backend
            && let Some(values) = self.inner.held.get(&names, Instant::now())
        {
            self.inner.read_held.fetch_add(1, Ordering::Relaxed);
            return Some(shared(&values));
        }
        if let (Backend::Redis(_), Some(ahead)) = (&*backend, ahead)
            && let Some(values) = names
                .iter()
                .map(|name| ahead.get(name))
                .collect::<Option<Vec<u64>>>()
        {
            self.inner.read_ahead.fetch_add(1, Ordering::Relaxed);
            let (generation, read_at) = ahead.taken();
            self.inner.held.keep(generation, read_at, &names, &values);
            return Some(shared(&values));
        }
        let conn = match backend {
            Backend::Local => {
                let local = self.inner.local_versions();
                let values: Vec<String> = names
                    .iter()
                    .map(|n| local.get(n).copied().unwrap_or(0).to_string())
                    .collect();
                return Some(format!("{id}:l{}", values.join(".")));
            }
            Backend::Redis(conn) => conn,
        };
        let redis = self.inner.redis.as_ref()?;
        let keys: Vec<String> = names.iter().map(|n| version_key(redis, n)).collect();
        let (generation, read_at) = (self.inner.held.generation(), Instant::now());
        for attempt in 0..2 {
            let values: Vec<Option<u64>> = match timed(conn.mget(&keys)).await {
                Ok(values) => values,
                Err(e) => {
                    redis.failed(&e);
                    return None;
                }
            };
            if let Some(values) = values.iter().copied().collect::<Option<Vec<u64>>>() {
                self.inner.held.keep(generation, read_at, &names, &values);
                return Some(shared(&values));
            }
            if attempt == 1 {
                break;
            }
            let mut pipe = redis::pipe();
            for (key, value) in keys.iter().zip(&values) {
                if value.is_none() {
                    pipe.set_nx(key, random_start()).ignore();
                }
            }
            if let Err(e) = timed(pipe.query_async::<()>(&mut *conn)).await {
                redis.failed(&e);
                return None;
            }
        }
        None
    }

    /// The entry of `key`: the process's decoded copy while there is one, else the stored
    /// bytes (with the time they have left, in one round trip), decoded and kept hot.
    async fn read_entry<T>(&self, backend: &mut Backend, key: &str) -> Option<Found<T>>
    where
        T: CacheValue + Clone + Send + Sync + 'static,
    {
        // A kept answer of another type (a bug: keys name their kind and request type) is
        // read again from the shared entry.
        if let Some(entry) = self.inner.hot_entry(key)
            && let Ok(value) = Arc::downcast::<T>(entry.value)
        {
            return Some(Found::Hot(value, entry.encoded));
        }
        let (bytes, left) = match backend {
            Backend::Local => {
                let entry = self.local_entry(key).await?;
                let left = entry.expires_at.saturating_duration_since(Instant::now());
                (entry.value, left)
            }
            Backend::Redis(conn) => {
                let redis = self.inner.redis.as_ref()?;
                let stored = redis.key(key);
                let mut pipe = redis::pipe();
                pipe.get(&stored).pttl(&stored);
                let result: Result<(Option<Vec<u8>>, i64), _> =
                    timed(pipe.query_async(&mut *conn)).await;
                match result {
                    // PTTL is negative for a key without expiry or gone: not kept hot.
                    Ok((value, millis)) => (
                        Bytes::from(value?),
                        Duration::from_millis(u64::try_from(millis).unwrap_or(0)),
                    ),
                    Err(e) => {
                        redis.failed(&e);
                        return None;
                    }
                }
            }
        };
        let value = T::decode_value(&bytes)?;
        self.inner.keep_hot(key, &value, bytes.clone(), left);
        Some(Found::Fresh(value, Some(bytes)))
    }

    async fn write_entry(
        &self,
        backend: &mut Backend,
        key: &str,
        value: Bytes,
        ttl: std::time::Duration,
    ) {
        match backend {
            Backend::Local => self.local_store(key, value, ttl).await,
            Backend::Redis(conn) => {
                let Some(redis) = self.inner.redis.as_ref() else {
                    return;
                };
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let result: Result<(), _> =
                    timed(conn.pset_ex(redis.key(key), value.as_ref(), millis)).await;
                if let Err(e) = result {
                    redis.failed(&e);
                }
            }
        }
    }
}

pub(super) fn version_key(redis: &crate::redis::Redis, name: &str) -> String {
    redis.key(&format!("cv:{name}"))
}

/// Moves the versions `names` in Redis and announces them to every replica (`super::held`), in
/// one pipeline: per name a `SET NX` at a random start (a version lost to an eviction or a
/// `DEL` must not restart at 1, where entries of its earlier life may still be) and an `INCR`,
/// then one `PUBLISH` of their names. `Err` when a version did not move (`Some`: what Redis or
/// the link said). A refused `PUBLISH` (an ACL without the channel) costs the other replicas
/// [`super::HELD_FOR`] of staleness at most: it is logged (once a minute at most) and does not
/// count as a failure of the link.
async fn announce<S: AsRef<str>>(
    redis: &crate::redis::Redis,
    conn: &mut ConnectionManager,
    names: &[S],
) -> Result<(), Option<redis::RedisError>> {
    let mut pipe = redis::pipe();
    for name in names {
        let key = version_key(redis, name.as_ref());
        pipe.set_nx(&key, random_start()).ignore();
        pipe.incr(&key, 1);
    }
    pipe.publish(redis.key(super::held::CHANNEL), announcement(names));
    pipe.ignore_errors();
    let replies: Vec<redis::RedisResult<redis::Value>> =
        timed(pipe.query_async(conn)).await.map_err(Some)?;
    let (moved, published) = replies.split_at(replies.len().saturating_sub(1));
    if moved.len() != names.len() {
        return Err(None);
    }
    for reply in moved {
        reply.as_ref().map_err(|e| Some(e.clone()))?;
    }
    if let Some(Err(error)) = published.first() {
        refused_announcement(error);
    }
    Ok(())
}

/// Where a missing version starts: at random, so that no entry of an earlier life of the
/// version can match it again (ADR 0014, 0017).
fn random_start() -> u64 {
    u64::from(rand::random::<u32>())
}

/// Logs a refused announcement, once a minute at most.
fn refused_announcement(error: &redis::RedisError) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::warn!(
            %error,
            "read cache: a write's announcement was refused; other replicas see it within 1 s"
        );
    }
}

fn count(kind: CacheKind, outcome: Outcome) {
    let result = match outcome {
        Outcome::Hit => "hit",
        Outcome::Miss => "miss",
    };
    metrics::counter!(CACHE_REQUESTS, "kind" => kind.as_str(), "result" => result).increment(1);
}

/// A decoded answer kept in the process (`Inner::hot`), with its encoding, until its shared
/// entry's end.
#[derive(Clone)]
pub(super) struct HotEntry {
    value: Arc<dyn Any + Send + Sync>,
    encoded: Bytes,
    expires_at: Instant,
}

/// An answer as a read found it: kept in the process, or just read or computed (with its
/// encoding when the cache has it).
pub enum Found<T> {
    Hot(Arc<T>, Bytes),
    Fresh(T, Option<Bytes>),
}

impl<T: CacheValue + Clone + Send + Sync + 'static> Found<T> {
    /// The answer (a copy of a kept one).
    pub fn into_value(self) -> T {
        match self {
            Found::Hot(value, _) => Arc::unwrap_or_clone(value),
            Found::Fresh(value, _) => value,
        }
    }

    /// The answer's encoding (`T::encode_value`): a kept one's as kept, a read one's as Redis
    /// held it, a computed one's as stored.
    pub fn into_encoded(self) -> Bytes {
        match self {
            Found::Hot(_, encoded) => encoded,
            Found::Fresh(_, Some(bytes)) => bytes,
            Found::Fresh(value, None) => Bytes::from(value.encode_value()),
        }
    }
}

impl Inner {
    /// The decoded copy of `key`'s answer, while its entry lasts.
    fn hot_entry(&self, key: &str) -> Option<HotEntry> {
        let entry = self.hot.get(key)?;
        if entry.expires_at <= Instant::now() {
            self.hot.invalidate(key);
            return None;
        }
        Some(entry)
    }

    /// Keeps a decoded copy of `key`'s answer for the `left` its entry has to live.
    fn keep_hot<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        value: &T,
        encoded: Bytes,
        left: Duration,
    ) {
        if left.is_zero() {
            return;
        }
        let entry = HotEntry {
            value: Arc::new(value.clone()),
            encoded,
            expires_at: Instant::now() + left,
        };
        self.hot.insert(key.to_owned(), entry);
    }

    pub(super) fn local_versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Single increments and reads: consistent after any panic.
        self.versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The single-flight lock of `key`, shared by the reads of the key in flight.
    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets `key`'s lock when no other read holds it.
    fn land(&self, key: &str, flight: Arc<tokio::sync::Mutex<()>>) {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Ours and the map's: nobody else waits.
        if Arc::strong_count(&flight) <= 2 {
            flights.remove(key);
        }
    }

    /// On reconnection: if writes could not announce themselves meanwhile, moves the fleet
    /// epoch, which drops every shared entry. False when Redis failed again.
    pub(super) async fn move_epoch_if_owed(&self, conn: &mut ConnectionManager) -> bool {
        let Some(redis) = &self.redis else {
            return true;
        };
        if !self.missed_bumps.swap(false, Ordering::Relaxed) {
            return true;
        }
        let result = announce(redis, conn, &[EPOCH]).await;
        self.held.forget(&[EPOCH]);
        if result.is_err() {
            self.missed_bumps.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::auth::rbac::Role;
    use crate::proto::v1 as pb;

    #[test]
    fn requests_of_two_methods_never_share_a_digest() {
        let summary = pb::GetSummaryRequest::default();
        let stats = pb::GetDailyStatsRequest::default();
        assert_eq!(
            prost::Message::encode_to_vec(&summary),
            prost::Message::encode_to_vec(&stats),
            "same bytes"
        );
        assert_ne!(request_digest(&summary), request_digest(&stats));
        assert_eq!(request_digest(&summary), request_digest(&summary.clone()));
    }

    fn caller(role: Role, user: u128, sites: &[u128]) -> Caller {
        Caller {
            user_id: Uuid::from_u128(user),
            role,
            session_id: Uuid::from_u128(99),
            permissions: Arc::new(HashSet::new()),
            site_ids: sites.iter().map(|s| Uuid::from_u128(*s)).collect(),
            client_ip: None,
            token_expires_at: 0,
            token_version: 0,
        }
    }

    #[test]
    fn audiences_differ_by_sites_and_by_person_where_scope_is_personal() {
        let manager_a = Audience::of(&caller(Role::SiteManager, 1, &[10]));
        let manager_b = Audience::of(&caller(Role::SiteManager, 2, &[11]));
        let manager_a2 = Audience::of(&caller(Role::SiteManager, 3, &[10]));
        assert_ne!(manager_a, manager_b);
        assert_eq!(manager_a, manager_a2, "same sites, same view");
        let agent_1 = Audience::of(&caller(Role::Agent, 1, &[10]));
        let agent_2 = Audience::of(&caller(Role::Agent, 2, &[10]));
        assert_ne!(agent_1, agent_2);
        assert_ne!(
            Audience::of(&caller(Role::Director, 1, &[])),
            Audience::of(&caller(Role::Accountant, 1, &[]))
        );
        // Permissions count, each one, whatever the order they were granted in.
        let with = |granted: &[Permission]| {
            let mut director = caller(Role::Director, 1, &[]);
            director.permissions = Arc::new(granted.iter().copied().collect());
            Audience::of(&director)
        };
        let [first, second, .., last] = Permission::ALL else {
            panic!("a catalogue of permissions");
        };
        assert_ne!(with(&[*first]), with(&[*second]));
        assert_ne!(with(&[*first]), with(&[*first, *last]));
        assert_ne!(with(&[]), with(&[*last]));
        assert_eq!(with(&[*first, *last]), with(&[*last, *first]));
    }

    #[test]
    fn coverage_stays_within_a_site_managers_sites() {
        let manager = caller(Role::SiteManager, 1, &[10, 11]);
        let s = Uuid::from_u128;
        assert_eq!(
            Coverage::of(&manager, &[]),
            Coverage::Sites(vec![s(10), s(11)])
        );
        assert_eq!(
            Coverage::of(&manager, &[s(11), s(12)]),
            Coverage::Sites(vec![s(11)])
        );
        let director = caller(Role::Director, 1, &[]);
        assert_eq!(Coverage::of(&director, &[]), Coverage::Everything);
        assert_eq!(
            Coverage::of(&director, &[s(12), s(12)]),
            Coverage::Sites(vec![s(12)])
        );
        let agent = caller(Role::Agent, 1, &[10]);
        assert_eq!(Coverage::of(&agent, &[s(10)]), Coverage::Everything);
    }

    #[tokio::test]
    async fn in_process_reads_hit_until_a_write_on_a_covered_site() {
        let cache = Cache::in_process();
        let audience = Audience::of(&caller(Role::Director, 1, &[]));
        let kaloum = Coverage::sites(vec![Uuid::from_u128(10)]);
        let computed = AtomicU64::new(0);
        let read = |coverage: Coverage| {
            counted_read(
                &cache,
                CacheKind::GoodPayers,
                &audience,
                coverage,
                &computed,
            )
        };
        assert_eq!(read(kaloum.clone()).await, (1, Outcome::Miss));
        assert_eq!(read(kaloum.clone()).await, (1, Outcome::Hit));
        // A write elsewhere leaves Kaloum's answer; everything-answers move with any write.
        assert_eq!(read(Coverage::Everything).await, (2, Outcome::Miss));
        cache.written(&[Uuid::from_u128(11)]).await;
        assert_eq!(read(kaloum.clone()).await, (1, Outcome::Hit));
        assert_eq!(read(Coverage::Everything).await, (3, Outcome::Miss));
        cache.written(&[Uuid::from_u128(10)]).await;
        assert_eq!(read(kaloum).await, (4, Outcome::Miss));
        assert_eq!(cache.computations(CacheKind::GoodPayers), 4);
    }

    /// A read of `kind` whose computation answers the number of computations so far (as a
    /// day), with its outcome.
    async fn counted_read(
        cache: &Cache,
        kind: CacheKind,
        audience: &Audience,
        coverage: Coverage,
        computed: &AtomicU64,
    ) -> (i32, Outcome) {
        let (value, outcome) = cache
            .get_or_compute(kind, audience, "r", &coverage, async {
                let n = computed.fetch_add(1, Ordering::Relaxed) + 1;
                Ok::<_, Infallible>(pb::Date {
                    year: 2026,
                    month: 11,
                    day: i32::try_from(n).unwrap_or(0),
                })
            })
            .await
            .unwrap_or_else(|e| match e {});
        (value.day, outcome)
    }

    #[tokio::test]
    async fn an_announcement_heard_moves_the_process_own_versions_too() {
        // Without a link to Redis, reads go by the process's own versions; an announcement
        // heard (through a subscription still up) must still drop what they cover.
        let cache = Cache::in_process();
        let audience = Audience::of(&caller(Role::Director, 1, &[]));
        let kaloum = Uuid::from_u128(10);
        let computed = AtomicU64::new(0);
        let read = || {
            counted_read(
                &cache,
                CacheKind::Rankings,
                &audience,
                Coverage::sites(vec![kaloum]),
                &computed,
            )
        };
        assert_eq!(read().await, (1, Outcome::Miss));
        assert_eq!(read().await, (1, Outcome::Hit));
        cache
            .inner
            .heard(&[format!("site:{}", Uuid::from_u128(11))]);
        assert_eq!(read().await, (1, Outcome::Hit), "another site");
        cache.inner.heard(&[format!("site:{kaloum}")]);
        assert_eq!(read().await, (2, Outcome::Miss));
        cache.inner.heard(&[EPOCH]);
        assert_eq!(read().await, (3, Outcome::Miss));
    }

    #[tokio::test]
    async fn a_decoded_copy_is_served_no_longer_than_its_entry() {
        let mut config = super::super::CacheConfig::default();
        config.set_ttl(CacheKind::Rankings, Duration::from_millis(300));
        let cache = Cache::with_config(None, config);
        let audience = Audience::of(&caller(Role::Director, 1, &[]));
        let computed = AtomicU64::new(0);
        let read = || {
            counted_read(
                &cache,
                CacheKind::Rankings,
                &audience,
                Coverage::Everything,
                &computed,
            )
        };
        assert_eq!(read().await, (1, Outcome::Miss));
        assert_eq!(read().await, (1, Outcome::Hit));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(read().await, (2, Outcome::Miss));
        assert_eq!(read().await, (2, Outcome::Hit));
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let cache = Cache::in_process();
        let audience = Audience::of(&caller(Role::Director, 1, &[]));
        let reads = (0..16).map(|_| {
            let cache = cache.clone();
            let audience = audience.clone();
            async move {
                cache
                    .get_or_compute(
                        CacheKind::Rankings,
                        &audience,
                        "same",
                        &Coverage::Everything,
                        async {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok::<_, Infallible>(pb::Date::default())
                        },
                    )
                    .await
            }
        });
        let outcomes: Vec<Outcome> = futures::future::join_all(reads)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| match e {}).1)
            .collect();
        assert_eq!(cache.computations(CacheKind::Rankings), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = Cache::in_process();
        let audience = Audience::of(&caller(Role::Director, 1, &[]));
        let failed: Result<(pb::Date, Outcome), &str> = cache
            .get_or_compute(
                CacheKind::Missions,
                &audience,
                "e",
                &Coverage::Everything,
                async { Err("down") },
            )
            .await;
        assert_eq!(failed, Err("down"));
        let ok = cache
            .get_or_compute(
                CacheKind::Missions,
                &audience,
                "e",
                &Coverage::Everything,
                async { Ok::<_, &str>(pb::Date::default()) },
            )
            .await;
        assert_eq!(ok.map(|(_, o)| o), Ok(Outcome::Miss));
    }
}
