//! The standing of a caller — token version, disabled flag, role, sites, whether the session
//! was issued and is not revoked — as the authentication layer checks it on every call, served from the shared
//! cache, with a revocation still taking effect on the next call on every replica.
//!
//! Decisions:
//! - The entry carries the user's profile as well (`UserRow`, read by the same statement), so
//!   that WhoAmI needs no PostgreSQL; its columns are announced like the standing's.
//! - An entry per user and session, in Redis (shared by the replicas, TTL [`ENTRY_TTL`]),
//!   tagged with two epochs read from Redis before PostgreSQL was read: the fleet's and the
//!   user's. It is served only while both are unchanged: one `MGET` per call, no PostgreSQL.
//! - A reader takes the epochs before it reads PostgreSQL; an epoch moves (`INCR`) after the
//!   change committed. So an entry read before a change always carries the epoch the change
//!   moved, and is never served after it.
//! - PostgreSQL announces every change of a standing itself: triggers NOTIFY the user's id on
//!   [`CHANNEL`] (migration `20261126000020`), whoever made it — a handler, the command line,
//!   plain SQL. Every replica LISTENs and moves the user's epoch ([`StandingCache::run_listener`]).
//! - The next call, on any replica: a call that may change standings (an AuthService call that
//!   is not a read) answers only once its replica's listener has moved the epochs of what it
//!   committed ([`StandingCache::sync`]: a NOTIFY of our own, queued behind the call's in commit
//!   order, and a wait until the listener reaches it; [`sync_after_writes`] wraps the
//!   AuthService with it). So the client's next call finds the epoch moved, whichever replica
//!   answers it. Writers call nothing; [`StandingCache::invalidate_user`] is there for code
//!   that changes a standing outside PostgreSQL.
//! - Never stale without Redis: with no Redis, with Redis down, while this replica is not
//!   listening, or while a move of an epoch could not be written, every call reads PostgreSQL,
//!   as it did before this cache. Each time the listener (re)connects, changes may have been
//!   missed meanwhile: the fleet epoch moves (every entry is dropped) before the cache is used
//!   again; the same when a sync cannot complete.
//! - An epoch that is missing (evicted, flushed) is created with a random value, never a
//!   reused one, so that an entry tagged before cannot match it by chance; and the fleet epoch
//!   moves whenever the Redis link comes back, in case a failover lost a move.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{Request, Response};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::LayerExt;
use tower::{Service, ServiceExt};
use uuid::Uuid;

use crate::auth::rbac::Role;
use crate::metrics::CACHE_REQUESTS;
use crate::redis::{Redis, timed};
use crate::store::sessions::{self, Standing};
use crate::store::users::UserRow;

/// The PostgreSQL channel of standing changes: payload a user id, or `sync:<uuid>`.
pub const CHANNEL: &str = "akig_standing";
const SYNC_PREFIX: &str = "sync:";
/// How long a cached standing lives at most (its epochs end it earlier on a change).
pub const ENTRY_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a write waits for its replica's listener before moving the fleet epoch instead.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before listening again after the listening connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// The per-call standing check, through the shared cache. Cheap to clone.
#[derive(Clone)]
pub struct StandingCache {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    redis: Option<Redis>,
    /// This replica's listener is connected (set once the fleet epoch was moved after it).
    listening: AtomicBool,
    /// Moves of the fleet epoch this replica owes (counted), and the count it has made good.
    /// The cache is used only while they are equal.
    fleet_moves_owed: AtomicU64,
    fleet_moves_made: AtomicU64,
    /// Writes waiting for the listener, by the token of their sync notification.
    syncs: Mutex<HashMap<Uuid, oneshot::Sender<()>>>,
}

/// A cached standing and the epochs it was read under.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    fleet: i64,
    user: i64,
    token_version: i32,
    disabled: bool,
    role_id: String,
    site_ids: Vec<Uuid>,
    session_active: bool,
    profile: Profile,
}

/// The user's profile in a cached standing ([`UserRow`] without what [`Entry`] holds).
#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    username: String,
    full_name: String,
    phone: Option<String>,
    supervisor_id: Option<Uuid>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    must_change_password: bool,
    own_site_ids: Vec<Uuid>,
}

impl Entry {
    fn of(fleet: i64, user: i64, standing: &Standing) -> Self {
        let row = &standing.user;
        Self {
            fleet,
            user,
            token_version: standing.token_version,
            disabled: row.disabled,
            role_id: row.role.as_str().to_owned(),
            site_ids: standing.site_ids.clone(),
            session_active: standing.session_active,
            profile: Profile {
                username: row.username.clone(),
                full_name: row.full_name.clone(),
                phone: row.phone.clone(),
                supervisor_id: row.supervisor_id,
                last_login_at: row.last_login_at,
                created_at: row.created_at,
                must_change_password: row.must_change_password,
                own_site_ids: row.site_ids.clone(),
            },
        }
    }

    /// The standing cached of user `user_id`; `None` for a role this binary does not know
    /// (read afresh).
    fn standing(self, user_id: Uuid) -> Option<Standing> {
        let profile = self.profile;
        Some(Standing {
            token_version: self.token_version,
            user: UserRow {
                id: user_id,
                username: profile.username,
                full_name: profile.full_name,
                phone: profile.phone,
                role: self.role_id.parse::<Role>().ok()?,
                supervisor_id: profile.supervisor_id,
                disabled: self.disabled,
                last_login_at: profile.last_login_at,
                created_at: profile.created_at,
                must_change_password: profile.must_change_password,
                site_ids: profile.own_site_ids,
            },
            site_ids: self.site_ids,
            session_active: self.session_active,
        })
    }
}

/// The fleet's and the user's epochs, and the cached entry, as one `MGET` reads them.
type Epochs = (Option<i64>, Option<i64>, Option<Vec<u8>>);

enum Lookup {
    Hit(Standing),
    /// Not cached (or cached under older epochs): the current epochs, to tag a fresh read.
    Miss {
        fleet: i64,
        user: i64,
    },
}

impl StandingCache {
    /// Without Redis, every call reads PostgreSQL.
    pub fn new(pool: PgPool, redis: Option<Redis>) -> Self {
        if let Some(redis) = &redis {
            // Whatever happened while the link was down (a failover may have lost moves of
            // epochs), entries written before are dropped before the link is used again.
            let fleet_key = fleet_key(redis);
            redis.on_reconnect(Box::new(move |mut conn| {
                let fleet_key = fleet_key.clone();
                Box::pin(async move {
                    let moved: redis::RedisResult<i64> = timed(conn.incr(fleet_key, 1)).await;
                    moved.is_ok()
                })
            }));
        }
        Self {
            inner: Arc::new(Inner {
                pool,
                redis,
                listening: AtomicBool::new(false),
                fleet_moves_owed: AtomicU64::new(0),
                fleet_moves_made: AtomicU64::new(0),
                syncs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The standing of `user_id` in session `session_id`; `None` when there is no such user.
    /// Errors are PostgreSQL's: Redis failing only sends the read to PostgreSQL.
    pub async fn get(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Standing>, sqlx::Error> {
        Ok(self.get_with(user_id, session_id, &[]).await?.0)
    }

    /// [`StandingCache::get`], reading the Redis keys `extra` (integers) in the same round
    /// trip: their values in order, or an empty list when Redis was not read.
    pub async fn get_with(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        extra: &[String],
    ) -> Result<(Option<Standing>, Vec<Option<u64>>), sqlx::Error> {
        let Some((redis, conn)) = self.usable().await else {
            count("miss");
            let standing = sessions::standing(&self.inner.pool, user_id, session_id).await?;
            return Ok((standing, Vec::new()));
        };
        match self
            .lookup(redis, conn.clone(), user_id, session_id, extra)
            .await
        {
            Ok((Lookup::Hit(standing), values)) => {
                count("hit");
                Ok((Some(standing), values))
            }
            Ok((Lookup::Miss { fleet, user }, values)) => {
                count("miss");
                let standing = sessions::standing(&self.inner.pool, user_id, session_id).await?;
                if let Some(standing) = &standing {
                    self.store(redis, conn, user_id, session_id, fleet, user, standing)
                        .await;
                }
                Ok((standing, values))
            }
            Err(error) => {
                redis.failed(&error);
                count("miss");
                let standing = sessions::standing(&self.inner.pool, user_id, session_id).await?;
                Ok((standing, Vec::new()))
            }
        }
    }

    /// Whether calls are now served from the shared cache (else from PostgreSQL).
    pub async fn is_shared(&self) -> bool {
        self.usable().await.is_some()
    }

    /// Drops every cached standing of `user_id`, on every replica. Changes made in PostgreSQL
    /// do this by themselves (through the listener); this is for changes made elsewhere.
    pub async fn invalidate_user(&self, user_id: Uuid) {
        let Some(redis) = &self.inner.redis else {
            return;
        };
        let moved = match redis.connection() {
            Some(mut conn) => {
                let result: redis::RedisResult<i64> =
                    timed(conn.incr(user_key(redis, user_id), 1)).await;
                result.inspect_err(|error| redis.failed(error)).is_ok()
            }
            None => false,
        };
        if !moved {
            self.owe_fleet_move().await;
        }
    }

    /// Returns once every standing change committed before the call has moved its epoch in
    /// Redis, through this replica's listener; when that cannot be known within
    /// `SYNC_TIMEOUT`, once the fleet epoch has moved instead. Without Redis, at once.
    pub async fn sync(&self) {
        if self.inner.redis.is_none() {
            return;
        }
        if !self.inner.listening.load(Ordering::Acquire) {
            self.owe_fleet_move().await;
            return;
        }
        let token = Uuid::new_v4();
        let (reached, reached_rx) = oneshot::channel();
        self.syncs().insert(token, reached);
        let notified = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{SYNC_PREFIX}{token}"))
            .execute(&self.inner.pool)
            .await;
        let synced = match notified {
            Ok(_) => matches!(
                tokio::time::timeout(SYNC_TIMEOUT, reached_rx).await,
                Ok(Ok(()))
            ),
            Err(error) => {
                tracing::warn!(error = %error, "standing sync not sent");
                false
            }
        };
        self.syncs().remove(&token);
        if synced {
            // A move the listener could not write is made good here, or the cache stays off.
            self.settle().await;
        } else {
            tracing::warn!("standing sync not reached; every cached standing is dropped");
            self.owe_fleet_move().await;
        }
    }

    /// Listens to [`CHANNEL`] until `shutdown`, moving the epoch of each user announced and
    /// answering syncs; reconnects after a failure. Returns at once without Redis.
    pub async fn run_listener(self, shutdown: CancellationToken) {
        if self.inner.redis.is_none() {
            return;
        }
        loop {
            let connected = tokio::select! {
                () = shutdown.cancelled() => return,
                connected = self.listen() => connected,
            };
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot listen to standing changes; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RELISTEN_AFTER) => continue,
                    }
                }
            };
            // Changes made while nobody here listened are unknown: every entry is dropped
            // before the cache is used again.
            self.inner.fleet_moves_owed.fetch_add(1, Ordering::AcqRel);
            self.inner.listening.store(true, Ordering::Release);
            self.settle().await;
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) => self.on_notification(notification.payload()).await,
                    Ok(None) | Err(_) => {
                        self.inner.listening.store(false, Ordering::Release);
                        tracing::warn!(
                            "lost the listening connection; standing read from the database"
                        );
                        break;
                    }
                }
            }
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.inner.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    async fn on_notification(&self, payload: &str) {
        if let Some(token) = payload.strip_prefix(SYNC_PREFIX) {
            if let Ok(token) = Uuid::parse_str(token)
                && let Some(reached) = self.syncs().remove(&token)
            {
                let _ = reached.send(());
            }
            return;
        }
        match Uuid::parse_str(payload) {
            Ok(user_id) => self.invalidate_user(user_id).await,
            Err(_) => tracing::warn!(payload, "unexpected standing notification"),
        }
    }

    /// The Redis connection when the cache may be used: Redis up, this replica listening, and
    /// no move of the fleet epoch owed (made now if it can be).
    async fn usable(&self) -> Option<(&Redis, ConnectionManager)> {
        let redis = self.inner.redis.as_ref()?;
        if !self.inner.listening.load(Ordering::Acquire) || !self.settle().await {
            return None;
        }
        Some((redis, redis.connection()?))
    }

    async fn lookup(
        &self,
        redis: &Redis,
        mut conn: ConnectionManager,
        user_id: Uuid,
        session_id: Uuid,
        extra: &[String],
    ) -> redis::RedisResult<(Lookup, Vec<Option<u64>>)> {
        let fleet_key = fleet_key(redis);
        let user_key = user_key(redis, user_id);
        let entry_key = entry_key(redis, user_id, session_id);
        let ((fleet, user, entry), values): (Epochs, Vec<Option<u64>>) = if extra.is_empty() {
            let read = timed(conn.mget(&[&fleet_key, &user_key, &entry_key])).await?;
            (read, Vec::new())
        } else {
            // Two MGETs in one pipeline: one round trip.
            timed(
                redis::pipe()
                    .mget(&[&fleet_key, &user_key, &entry_key])
                    .mget(extra)
                    .query_async(&mut conn),
            )
            .await?
        };
        if let (Some(fleet), Some(user), Some(entry)) = (fleet, user, entry)
            && let Ok(entry) = serde_json::from_slice::<Entry>(&entry)
            && entry.fleet == fleet
            && entry.user == user
            && let Some(standing) = entry.standing(user_id)
        {
            return Ok((Lookup::Hit(standing), values));
        }
        if let (Some(fleet), Some(user)) = (fleet, user) {
            return Ok((Lookup::Miss { fleet, user }, values));
        }
        // A fresh (or evicted) epoch starts at a random value, never at a reused one.
        let (fleet, user): (i64, i64) = timed(
            redis::pipe()
                .atomic()
                .set_nx(&fleet_key, random_epoch())
                .ignore()
                .set_nx(&user_key, random_epoch())
                .ignore()
                .mget(&[&fleet_key, &user_key])
                .query_async::<((i64, i64),)>(&mut conn),
        )
        .await?
        .0;
        Ok((Lookup::Miss { fleet, user }, values))
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        redis: &Redis,
        mut conn: ConnectionManager,
        user_id: Uuid,
        session_id: Uuid,
        fleet: i64,
        user: i64,
        standing: &Standing,
    ) {
        let Ok(bytes) = serde_json::to_vec(&Entry::of(fleet, user, standing)) else {
            return;
        };
        let key = entry_key(redis, user_id, session_id);
        let millis = u64::try_from(ENTRY_TTL.as_millis()).unwrap_or(u64::MAX);
        let result: redis::RedisResult<()> = timed(conn.pset_ex(key, bytes, millis)).await;
        if let Err(error) = result {
            redis.failed(&error);
        }
    }

    /// Records that the fleet epoch must move, and moves it if Redis answers.
    async fn owe_fleet_move(&self) {
        self.inner.fleet_moves_owed.fetch_add(1, Ordering::AcqRel);
        self.settle().await;
    }

    /// Makes good the moves of the fleet epoch owed so far; true when none is left.
    async fn settle(&self) -> bool {
        let owed = self.inner.fleet_moves_owed.load(Ordering::Acquire);
        if self.inner.fleet_moves_made.load(Ordering::Acquire) >= owed {
            return true;
        }
        let Some(redis) = &self.inner.redis else {
            return true;
        };
        let Some(mut conn) = redis.connection() else {
            return false;
        };
        let result: redis::RedisResult<i64> = timed(conn.incr(fleet_key(redis), 1)).await;
        match result {
            Ok(_) => {
                self.inner
                    .fleet_moves_made
                    .fetch_max(owed, Ordering::AcqRel);
                self.inner.fleet_moves_made.load(Ordering::Acquire)
                    >= self.inner.fleet_moves_owed.load(Ordering::Acquire)
            }
            Err(error) => {
                redis.failed(&error);
                false
            }
        }
    }

    fn syncs(&self) -> MutexGuard<'_, HashMap<Uuid, oneshot::Sender<()>>> {
        // The map is consistent after any panic (single inserts and removes).
        self.inner
            .syncs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn fleet_key(redis: &Redis) -> String {
    redis.key("standing:epoch")
}

fn user_key(redis: &Redis, user_id: Uuid) -> String {
    redis.key(&format!("standing:epoch:{user_id}"))
}

fn entry_key(redis: &Redis, user_id: Uuid, session_id: Uuid) -> String {
    redis.key(&format!("standing:{user_id}:{session_id}"))
}

fn count(result: &'static str) {
    metrics::counter!(CACHE_REQUESTS, "kind" => "standing", "result" => result).increment(1);
}

/// Below 2^52, so that increments never overflow.
fn random_epoch() -> i64 {
    rand::random_range(0..1_i64 << 52)
}

/// Whether an AuthService method may change a standing: every one but the reads.
fn may_change_standing(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    !(method == "WhoAmI" || method.starts_with("Get") || method.starts_with("List"))
}

/// The AuthService, wrapped so that a call which may change a standing answers only after
/// [`StandingCache::sync`], whatever its outcome (a refused refresh may have revoked a
/// session).
pub fn sync_after_writes<S>(
    standing: StandingCache,
    service: S,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + NamedService
+ Clone
+ Send
+ Sync
+ 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let layer = tower::layer::layer_fn(move |inner: S| {
        let standing = standing.clone();
        tower::service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            let standing = standing.clone();
            async move {
                let writes = may_change_standing(request.uri().path());
                let response = inner.oneshot(request).await?;
                if writes {
                    standing.sync().await;
                }
                Ok(response)
            }
        })
    });
    layer.named_layer(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_the_auth_service_change_no_standing() {
        for read in [
            "WhoAmI",
            "GetUser",
            "ListUsers",
            "ListRoles",
            "ListAuditEntries",
        ] {
            assert!(!may_change_standing(&format!(
                "/akig.v1.AuthService/{read}"
            )));
        }
        for write in [
            "Login",
            "Refresh",
            "Logout",
            "ChangePassword",
            "CreateUser",
            "UpdateUser",
            "ResetPassword",
            "UpdateRolePermissions",
        ] {
            assert!(may_change_standing(&format!(
                "/akig.v1.AuthService/{write}"
            )));
        }
    }

    #[test]
    fn random_epochs_leave_room_to_count() {
        for _ in 0..1000 {
            let epoch = random_epoch();
            assert!((0..1 << 52).contains(&epoch));
        }
    }
}
