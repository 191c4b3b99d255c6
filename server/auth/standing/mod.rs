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
//! - The call's other reads of Redis ride in the same round trip ([`StandingCache::peek`]): the
//!   read cache's versions (`crate::cache::ahead`) and the rate limits' script
//!   (`crate::limits::shared_calls`). PostgreSQL is read only after it
//!   ([`StandingCache::resolve`]), so a call the limits refuse costs no query.
//! - Standings are also held in this process between calls, under a lease and a generation
//!   the listener moves on every change (`local`, ADR 0015): a call whose standing is held
//!   reads neither Redis nor PostgreSQL, and [`StandingCache::sync`] waits until every
//!   replica holding standings has passed the sync or lost its lease.
//! - An epoch that is missing (evicted, flushed) is created with a random value, never a
//!   reused one, so that an entry tagged before cannot match it by chance; and the fleet epoch
//!   moves whenever the Redis link comes back, in case a failover lost a move.

mod entry;
mod local;
mod peek;
mod sync_layer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use local::LocalStandings;
pub use local::{LEASE, LOCAL_TTL};
pub use peek::{Peeked, Pending};
pub use sync_layer::sync_after_writes;

use crate::metrics::CACHE_REQUESTS;
use crate::redis::{Redis, timed};
use crate::store::replicas;

/// The PostgreSQL channel of standing changes: payload a user id, or `sync:<uuid>`.
pub const CHANNEL: &str = "akig_standing";
const SYNC_PREFIX: &str = "sync:";
/// A replica's own liveness probe through its listener: `ping:<replica id>`.
const PING_PREFIX: &str = "ping:";
/// How often a sync first asks whether every replica holding standings has passed it; the
/// pause doubles up to [`ACK_POLL_MAX`] while some replica has not.
const ACK_POLL: Duration = Duration::from_millis(2);
const ACK_POLL_MAX: Duration = Duration::from_millis(50);
/// [`LEASE`] in milliseconds.
#[allow(clippy::cast_possible_truncation)]
const LEASE_MS: u64 = LEASE.as_millis() as u64;
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
    /// Standings held in this process between calls (ADR 0015).
    local: LocalStandings,
    /// Counts the standing changes this replica learnt of (and the times it may have missed
    /// some): what open streams watch to check their caller again ([`StandingCache::changes`]).
    changes: watch::Sender<u64>,
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
                local: LocalStandings::new(),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Moves on every standing change this replica learns of, once the change can be read
    /// ([`StandingCache::get`] gives the new standing), and whenever changes may have been
    /// missed (the listener reconnected). Open streams watch it to check their caller again;
    /// without Redis nothing listens and it never moves.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn announce_change(&self) {
        self.inner
            .changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Whether calls are now served from the shared cache (else from PostgreSQL).
    pub async fn is_shared(&self) -> bool {
        self.usable().await.is_some()
    }

    /// Drops every cached standing of `user_id`, on every replica, shared or in process, before
    /// it returns. Changes made in PostgreSQL do this by themselves (through the listener);
    /// this is for changes made elsewhere. It announces the user on [`CHANNEL`] as the
    /// triggers do, then syncs.
    pub async fn invalidate_user(&self, user_id: Uuid) {
        if self.inner.redis.is_none() {
            return;
        }
        let announced = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(user_id.to_string())
            .execute(&self.inner.pool)
            .await;
        if let Err(error) = announced {
            tracing::warn!(error = %error, "standing change not announced");
            self.inner.local.drop_all();
            self.move_user_epoch(user_id).await;
        }
        self.sync().await;
    }

    /// Moves `user_id`'s epoch in Redis: the shared entries of the user are not served again.
    async fn move_user_epoch(&self, user_id: Uuid) {
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
        self.announce_change();
    }

    /// Returns once every standing change committed before the call has moved its epoch in
    /// Redis, through this replica's listener (when that cannot be known within
    /// `SYNC_TIMEOUT`, once the fleet epoch has moved instead), and once every replica holding
    /// standings in process has passed it too or lost its lease (ADR 0015; at most
    /// `SYNC_TIMEOUT` + [`LEASE`]). Without Redis, at once.
    pub async fn sync(&self) {
        let token = Uuid::new_v4();
        if self.inner.redis.is_none() {
            // Nothing cached here; but replicas of the same database that do hold standings
            // (a fleet configured unevenly) are still waited for.
            if self.notify_sync(token).await {
                self.until_every_replica_passed(token).await;
            }
            return;
        }
        let listening = self.inner.listening.load(Ordering::Acquire);
        let (reached, reached_rx) = oneshot::channel();
        if listening {
            self.syncs().insert(token, reached);
        }
        let notified = self.notify_sync(token).await;
        let synced = listening
            && notified
            && matches!(
                tokio::time::timeout(SYNC_TIMEOUT, reached_rx).await,
                Ok(Ok(()))
            );
        self.syncs().remove(&token);
        if synced {
            // A move the listener could not write is made good here, or the cache stays off.
            self.settle().await;
        } else {
            if listening {
                tracing::warn!("standing sync not reached; every cached standing is dropped");
            }
            self.owe_fleet_move().await;
        }
        if notified {
            self.until_every_replica_passed(token).await;
        }
    }

    /// Sends the sync notification `token` on [`CHANNEL`]; false when it could not be sent.
    async fn notify_sync(&self, token: Uuid) -> bool {
        self.notify(&format!("{SYNC_PREFIX}{token}")).await
    }

    /// Sends `payload` on [`CHANNEL`]; false when it could not be sent.
    async fn notify(&self, payload: &str) -> bool {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.inner.pool)
            .await
            .inspect_err(|error| tracing::warn!(error = %error, "standing notification not sent"))
            .is_ok()
    }

    /// Waits until no replica holds a lease without having acknowledged the sync `token`: each
    /// one's listener has passed it, or its lease has ended.
    async fn until_every_replica_passed(&self, token: Uuid) {
        let pool = &self.inner.pool;
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT + LEASE;
        let mut pause = ACK_POLL;
        loop {
            match replicas::unacknowledged(pool, token).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "standing sync acks not read"),
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!("a replica still holds standings it may not have updated");
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(ACK_POLL_MAX);
        }
        if let Err(error) = replicas::forget_sync(pool, token).await {
            tracing::warn!(error = %error, "standing sync acks not dropped");
        }
    }

    /// Listens to [`CHANNEL`] until `shutdown`, moving the epoch of each user announced and
    /// answering syncs, and renews this replica's lease on in-process standings while it
    /// listens; reconnects after a failure. Returns at once without Redis.
    pub async fn run_listener(self, shutdown: CancellationToken) {
        if self.inner.redis.is_none() {
            return;
        }
        loop {
            let connected = tokio::select! {
                () = shutdown.cancelled() => {
                    self.inner.local.end(&self.inner.pool).await;
                    return;
                }
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
            self.inner.local.drop_all();
            self.settle().await;
            self.announce_change();
            let mut renew = tokio::time::interval(local::RENEW_EVERY);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The lease is renewed only once a probe sent through PostgreSQL came back on the
            // listening connection: a connection that hangs renews nothing.
            let ping = format!("{PING_PREFIX}{}", self.inner.local.replica_id);
            let mut probe_sent: Option<u64> = None;
            loop {
                // Notifications first: the lease is renewed only with none waiting.
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => {
                        self.inner.local.end(&self.inner.pool).await;
                        return;
                    }
                    next = listener.try_recv() => next,
                    _ = renew.tick() => {
                        // One probe at a time; sent again if it never came back.
                        let now = self.inner.local.now_ms();
                        let lost = probe_sent.is_some_and(|sent| now.saturating_sub(sent) > LEASE_MS);
                        if probe_sent.is_none() || lost {
                            probe_sent = self.notify(&ping).await.then_some(now);
                        }
                        continue;
                    }
                };
                match next {
                    Ok(Some(notification)) if notification.payload() == ping => {
                        if let Some(sent) = probe_sent.take() {
                            self.inner.local.renew(&self.inner.pool, sent).await;
                        }
                    }
                    Ok(Some(notification)) => self.on_notification(notification.payload()).await,
                    Ok(None) | Err(_) => {
                        self.inner.local.lapse();
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
        if payload.starts_with(PING_PREFIX) {
            // Another replica's probe.
            return;
        }
        if let Some(token) = payload.strip_prefix(SYNC_PREFIX) {
            if let Ok(token) = Uuid::parse_str(token) {
                if let Some(reached) = self.syncs().remove(&token) {
                    let _ = reached.send(());
                }
                // Every change announced before the sync has reached this replica's standings.
                let replica = self.inner.local.replica_id;
                if let Err(error) = replicas::ack_sync(&self.inner.pool, token, replica).await {
                    tracing::warn!(error = %error, "standing sync not acknowledged");
                }
            }
            return;
        }
        match Uuid::parse_str(payload) {
            Ok(user_id) => {
                self.inner.local.drop_all();
                self.move_user_epoch(user_id).await;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_epochs_leave_room_to_count() {
        for _ in 0..1000 {
            let epoch = random_epoch();
            assert!((0..1 << 52).contains(&epoch));
        }
    }
}
