//! Standings held in this process between calls, under a lease (ADR 0015): a call whose
//! standing is here costs neither Redis nor PostgreSQL.
//!
//! Decisions:
//! - An entry is served only while this replica holds its lease and the entry was read under
//!   the current generation. The listener moves the generation on every standing change it
//!   receives, before anything else, and whenever it stops listening; so an entry read before
//!   a change is never served after the listener has passed it.
//! - The lease is renewed by the listener itself (`StandingCache::run_listener`), only once a
//!   probe it sent through PostgreSQL (`ping:<replica>` on the channel) came back on the
//!   listening connection, and counted from the probe's sending: a replica whose listening
//!   connection is gone, stuck or half-open stops renewing, and stops serving its entries when
//!   the lease ends, by its own monotonic clock, [`LEASE_MARGIN`] before the database's record
//!   of it ends.
//! - A write that may change standings waits until every replica holding a lease has
//!   acknowledged its sync (its listener passed it) or has lost its lease
//!   (`StandingCache::sync`): the next call sees the change on every replica.
//! - Entries live [`LOCAL_TTL`] at most, whatever the generation: a bound on what a fault in
//!   this reasoning could cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::replicas;
use crate::store::sessions::Standing;

/// How long a renewed lease lasts in the database.
pub const LEASE: Duration = Duration::from_secs(3);
/// How much sooner than the database this replica considers its lease ended (for clock rate
/// differences and the renewal's own travel time, which this replica counts from the send).
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// How often the listener renews the lease.
pub const RENEW_EVERY: Duration = Duration::from_millis(500);
/// How long an entry is served at most.
pub const LOCAL_TTL: Duration = Duration::from_secs(2);
/// Most entries kept (one per user and session).
const CAPACITY: u64 = 100_000;

/// The in-process standings of this replica and its lease.
pub(super) struct LocalStandings {
    pub(super) replica_id: Uuid,
    started: Instant,
    /// Milliseconds since `started` until which the lease may be used; 0: no lease.
    lease_until_ms: AtomicU64,
    generation: AtomicU64,
    entries: moka::sync::Cache<(Uuid, Uuid), (u64, Standing)>,
}

impl LocalStandings {
    pub(super) fn new() -> Self {
        Self {
            replica_id: Uuid::new_v4(),
            started: Instant::now(),
            lease_until_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(LOCAL_TTL)
                .build(),
        }
    }

    /// Milliseconds since this replica's standings were set up (monotonic).
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The generation to read and tag entries with, while the lease holds; else `None`.
    pub(super) fn usable(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::Acquire);
        (self.now_ms() < self.lease_until_ms.load(Ordering::Acquire)).then_some(generation)
    }

    /// The standing of `user_id` in `session_id`, when held under `generation`.
    pub(super) fn get(&self, user_id: Uuid, session_id: Uuid, generation: u64) -> Option<Standing> {
        let (tagged, standing) = self.entries.get(&(user_id, session_id))?;
        (tagged == generation && self.generation.load(Ordering::Acquire) == generation)
            .then_some(standing)
    }

    /// Keeps `standing`, read after `generation` was taken; dropped at once if a change
    /// arrived since.
    pub(super) fn put(&self, user_id: Uuid, session_id: Uuid, generation: u64, standing: Standing) {
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries
                .insert((user_id, session_id), (generation, standing));
        }
    }

    /// Every entry held is stale: none is served again.
    pub(super) fn drop_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// The listener stopped: no entry is served until it listens and renews again.
    pub(super) fn lapse(&self) {
        self.lease_until_ms.store(0, Ordering::Release);
        self.drop_all();
    }

    /// Renews the lease in the database, counted from `sent` ([`LocalStandings::now_ms`] when
    /// the probe that proved the listener alive was sent); on failure the lease runs out by
    /// itself.
    pub(super) async fn renew(&self, pool: &PgPool, sent: u64) {
        match replicas::renew_lease(pool, self.replica_id, LEASE).await {
            Ok(()) => {
                if self.lease_until_ms.load(Ordering::Acquire) <= sent {
                    // The lease had run out: whatever was held before is not trusted.
                    self.drop_all();
                }
                let usable = LEASE.saturating_sub(LEASE_MARGIN);
                let until = sent + u64::try_from(usable.as_millis()).unwrap_or(0);
                self.lease_until_ms.fetch_max(until, Ordering::AcqRel);
            }
            Err(error) => tracing::warn!(error = %error, "standing lease not renewed"),
        }
    }

    /// Gives the lease up (shutting down), so that syncs stop waiting for this replica.
    pub(super) async fn end(&self, pool: &PgPool) {
        self.lapse();
        if let Err(error) = replicas::end_lease(pool, self.replica_id).await {
            tracing::warn!(error = %error, "standing lease not given up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::Role;
    use crate::store::users::UserRow;

    fn standing() -> Standing {
        Standing {
            token_version: 1,
            user: UserRow {
                id: Uuid::new_v4(),
                username: "agent".into(),
                full_name: "Agent".into(),
                phone: None,
                role: Role::Agent,
                supervisor_id: None,
                disabled: false,
                last_login_at: None,
                created_at: chrono::Utc::now(),
                must_change_password: false,
                site_ids: Vec::new(),
            },
            site_ids: Vec::new(),
            session_active: true,
        }
    }

    fn leased() -> LocalStandings {
        let local = LocalStandings::new();
        local.lease_until_ms.store(u64::MAX, Ordering::Release);
        local
    }

    #[test]
    fn nothing_is_served_without_a_lease() {
        let local = LocalStandings::new();
        assert_eq!(local.usable(), None);
        let local = leased();
        let generation = local.usable().expect("leased");
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        local.put(user, session, generation, standing());
        assert!(local.get(user, session, generation).is_some());
        local.lapse();
        assert_eq!(local.usable(), None);
    }

    #[test]
    fn a_change_drops_entries_read_before_it_even_when_stored_after_it() {
        let local = leased();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let before = local.usable().expect("leased");
        // A change arrives while the standing is being read...
        local.drop_all();
        // ...and the read, finished, is stored under the generation it started with.
        local.put(user, session, before, standing());
        let now = local.usable().expect("leased");
        assert_ne!(now, before);
        assert!(local.get(user, session, now).is_none());
        assert!(local.get(user, session, before).is_none());
        // Read afresh, it is served.
        local.put(user, session, now, standing());
        assert!(local.get(user, session, now).is_some());
        local.drop_all();
        assert!(local.get(user, session, now).is_none());
    }
}
