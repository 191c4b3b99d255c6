//! The live hub: every agent's last known position and presence in memory, the fan-out of
//! changes to watchers (dashboards), the one-session-per-agent rule, and the channel that
//! pushes mission changes to an agent's open session. Shared with the other replicas through
//! Redis ([`relay`], ADR 0013).
//!
//! Decisions:
//! - One `tokio::sync::broadcast` channel carries every change; each watcher reads it at its
//!   own pace. Sending never waits, so ingest is never slowed by a watcher; a watcher that
//!   falls more than `watch_buffer` updates behind gets `Lagged(n)` on its next read, which
//!   becomes a resync and a fresh snapshot (`api::geo::watch`).
//! - A watcher subscribes before it reads the snapshot: an update may then appear in both
//!   (harmless, it is the same state), never in neither.
//! - State changes in one place ([`LiveHub::apply`]): local batches after their commit, and
//!   the same records relayed from other replicas; a record older (by fix time) than the
//!   known one is ignored, so the order of arrival does not matter.
//! - Presence is derived (`domain::position::is_online`) and re-checked every few seconds;
//!   a change is one event.
//! - Sessions: a new session of an agent replaces the open one, here and (through the relay)
//!   on other replicas; the replaced session is told through its [`SessionHandle`].
//! - Mission pushes ([`LiveHub::push_mission`]) go to the agent's open session on whichever
//!   replica holds it; with none open they are dropped (the phone reloads its day on the next
//!   hello).
//! - Each agent's mission in progress (`current_mission`: today's, Conakry day, the one
//!   started last) is read from PostgreSQL with presence, every few seconds, so that every
//!   way a mission changes (UpdateMission, a visit or payment closing it, plain SQL, another
//!   replica) reaches the map within that time; a change is one event.

pub mod config;
pub mod relay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::LiveConfig;

use crate::auth::caller::Scope;
use crate::domain::map::GeoBox;
use crate::domain::position::is_online;
use crate::domain::presence::LatLng;
use crate::proto::v1 as pb;
use crate::store::StoreError;
use crate::store::positions::{self as store, LastPosition};

/// How often presence and the missions in progress are re-checked.
const PRESENCE_EVERY: Duration = Duration::from_secs(5);
/// Mission pushes waiting for a session, at most.
const PUSH_BUFFER: usize = 64;

/// Who an agent is, for watchers: name, sites and supervisor (for scopes).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentInfo {
    pub id: Uuid,
    pub full_name: String,
    pub supervisor_id: Option<Uuid>,
    pub site_ids: Vec<Uuid>,
}

/// An agent as watchers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    pub info: Arc<AgentInfo>,
    pub last: LastPosition,
    /// Last message of any kind from the phone (any replica).
    pub last_seen: DateTime<Utc>,
    pub online: bool,
    /// The agent's mission in progress today, if any.
    pub current_mission: Option<Uuid>,
}

impl AgentState {
    pub fn location(&self) -> Option<LatLng> {
        LatLng::parse(self.last.latitude, self.last.longitude).ok()
    }
}

/// A change watchers are told about.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// A new last known position.
    Position(AgentState),
    /// An agent went online or offline at the given time.
    Presence {
        info: Arc<AgentInfo>,
        online: bool,
        at: DateTime<Utc>,
    },
}

impl LiveEvent {
    pub fn agent(&self) -> &AgentInfo {
        match self {
            LiveEvent::Position(state) => &state.info,
            LiveEvent::Presence { info, .. } => info,
        }
    }
}

/// What a watcher may see and asked to see: its scope, then the request's filters.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub scope: Scope,
    /// Empty: any site.
    pub site_ids: Vec<Uuid>,
    /// Empty: any agent.
    pub agent_ids: Vec<Uuid>,
    pub bounds: Option<GeoBox>,
    pub online_only: bool,
}

impl WatchFilter {
    /// Whether the scope and the site and agent filters let `agent` through (the box and
    /// presence are checked per position).
    pub fn admits(&self, agent: &AgentInfo) -> bool {
        let in_scope = match &self.scope {
            Scope::Company => true,
            Scope::Sites(sites) => agent.site_ids.iter().any(|s| sites.contains(s)),
            Scope::Team { supervisor_id, .. } => agent.supervisor_id == Some(*supervisor_id),
            Scope::Own { agent_id, .. } => agent.id == *agent_id,
        };
        in_scope
            && (self.site_ids.is_empty()
                || agent.site_ids.iter().any(|s| self.site_ids.contains(s)))
            && (self.agent_ids.is_empty() || self.agent_ids.contains(&agent.id))
    }

    /// Whether `state` belongs in a snapshot.
    pub fn shows(&self, state: &AgentState) -> bool {
        self.admits(&state.info) && (!self.online_only || state.online) && self.in_bounds(state)
    }

    pub fn in_bounds(&self, state: &AgentState) -> bool {
        match (&self.bounds, state.location()) {
            (None, _) => true,
            (Some(bounds), Some(at)) => bounds.contains(at),
            (Some(_), None) => false,
        }
    }
}

/// An open agent session, as the hub knows it. Dropping it closes the session in the hub.
pub struct SessionHandle {
    hub: LiveHub,
    pub agent_id: Uuid,
    pub session_id: Uuid,
    /// Cancelled when a newer session of the agent replaced this one.
    pub replaced: CancellationToken,
    /// Mission changes of the agent.
    /// Boxed, as the agent session's replies (`api::geo::agent_session`).
    pub pushes: mpsc::Receiver<Box<pb::MissionPush>>,
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.hub.close_session(self.agent_id, self.session_id);
    }
}

struct LocalSession {
    session_id: Uuid,
    replaced: CancellationToken,
    pushes: mpsc::Sender<Box<pb::MissionPush>>,
}

struct Entry {
    info: Arc<AgentInfo>,
    last: Option<LastPosition>,
    last_seen: Option<DateTime<Utc>>,
    /// A session is open on this replica.
    local_session: bool,
    /// A session is open on another replica (as last relayed).
    remote_session: bool,
    online: bool,
    current_mission: Option<Uuid>,
}

impl Entry {
    fn state(&self) -> Option<AgentState> {
        Some(AgentState {
            info: self.info.clone(),
            last: self.last?,
            last_seen: self.last_seen.unwrap_or(self.last?.received_at),
            online: self.online,
            current_mission: self.current_mission,
        })
    }
}

/// The hub. Cheap to clone: the clones share one state.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    config: LiveConfig,
    agents: RwLock<HashMap<Uuid, Entry>>,
    sessions: Mutex<HashMap<Uuid, LocalSession>>,
    events: broadcast::Sender<LiveEvent>,
    relay: relay::Relay,
}

impl LiveHub {
    /// An empty hub; [`LiveHub::run`] loads the stored last positions and keeps presence.
    pub fn new(pool: PgPool, config: LiveConfig, redis: Option<crate::redis::Redis>) -> Self {
        let (events, _) = broadcast::channel(config.watch_buffer);
        Self {
            inner: Arc::new(Inner {
                pool,
                config,
                agents: RwLock::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                events,
                relay: relay::Relay::new(redis),
            }),
        }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// Loads every stored last position (and the agents' names and sites), then the
    /// missions in progress.
    pub async fn load(&self) -> Result<(), StoreError> {
        let all = store::all_last(&self.inner.pool).await?;
        self.apply(all, true).await?;
        self.refresh_missions(crate::domain::clock::conakry_day(Utc::now()))
            .await
    }

    /// Reads every agent's mission in progress of `day` and tells watchers of the changes.
    pub async fn refresh_missions(&self, day: chrono::NaiveDate) -> Result<(), StoreError> {
        let current: HashMap<Uuid, Uuid> =
            crate::store::missions::in_progress(&self.inner.pool, day)
                .await?
                .into_iter()
                .collect();
        let mut events = Vec::new();
        {
            let mut agents = self.write_agents();
            for (id, entry) in agents.iter_mut() {
                let now = current.get(id).copied();
                if now != entry.current_mission {
                    entry.current_mission = now;
                    events.extend(entry.state().map(LiveEvent::Position));
                }
            }
        }
        for event in events {
            let _ = self.inner.events.send(event);
        }
        Ok(())
    }

    /// Records last positions (after their commit, or relayed from another replica when
    /// `relayed`) and tells the watchers; local ones are relayed to the other replicas.
    pub async fn apply(&self, changed: Vec<LastPosition>, relayed: bool) -> Result<(), StoreError> {
        if changed.is_empty() {
            return Ok(());
        }
        self.ensure_infos(changed.iter().map(|c| c.agent_id))
            .await?;
        if !relayed {
            self.inner.relay.positions(&changed);
        }
        let now = Utc::now();
        let mut events = Vec::with_capacity(changed.len());
        {
            let mut agents = self.write_agents();
            for last in changed {
                let Some(entry) = agents.get_mut(&last.agent_id) else {
                    continue;
                };
                let newer = entry.last.is_none_or(|known| {
                    last.fix_time > known.fix_time
                        || (last.fix_time == known.fix_time && last.sequence >= known.sequence)
                });
                entry.last_seen = Some(
                    entry
                        .last_seen
                        .map_or(last.received_at, |s| s.max(last.received_at)),
                );
                match &mut entry.last {
                    Some(known) if !newer => {
                        known.max_sequence = known.max_sequence.max(last.max_sequence)
                    }
                    slot => *slot = Some(last),
                }
                let online = is_online(
                    entry.local_session || entry.remote_session,
                    entry.last_seen,
                    now,
                    self.inner.config.offline_after,
                );
                if online != entry.online {
                    entry.online = online;
                    events.push(LiveEvent::Presence {
                        info: entry.info.clone(),
                        online,
                        at: now,
                    });
                }
                if newer && let Some(state) = entry.state() {
                    events.push(LiveEvent::Position(state));
                }
            }
        }
        for event in events {
            // No watcher: nothing to do.
            let _ = self.inner.events.send(event);
        }
        Ok(())
    }

    /// Loads the names and sites of agents not known yet.
    async fn ensure_infos(&self, ids: impl Iterator<Item = Uuid>) -> Result<(), StoreError> {
        let missing: Vec<Uuid> = {
            let agents = self.read_agents();
            let mut missing: Vec<Uuid> = ids.filter(|id| !agents.contains_key(id)).collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        let infos: Vec<AgentInfo> = sqlx::query_as(
            "SELECT u.id, u.full_name, u.supervisor_id,
                    ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id
                          ORDER BY us.site_id) AS site_ids
             FROM users u WHERE u.id = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut agents = self.write_agents();
        for info in infos {
            agents.entry(info.id).or_insert_with(|| Entry {
                info: Arc::new(info),
                last: None,
                last_seen: None,
                local_session: false,
                remote_session: false,
                online: false,
                current_mission: None,
            });
        }
        Ok(())
    }

    /// The name, sites and supervisor of user `id`; `None` for an unknown user.
    pub async fn agent_info(&self, id: Uuid) -> Result<Option<Arc<AgentInfo>>, StoreError> {
        self.ensure_infos(std::iter::once(id)).await?;
        Ok(self.read_agents().get(&id).map(|e| e.info.clone()))
    }

    /// A message (heartbeat) came from the agent's phone at `at`.
    pub fn seen(&self, agent_id: Uuid, at: DateTime<Utc>) {
        if let Some(entry) = self.write_agents().get_mut(&agent_id) {
            entry.last_seen = Some(entry.last_seen.map_or(at, |s| s.max(at)));
        }
    }

    /// Every agent with a known position that `filter` shows, by name, and a receiver of the
    /// changes that follow (subscribed before the snapshot was read).
    pub fn subscribe(
        &self,
        filter: &WatchFilter,
    ) -> (Vec<AgentState>, broadcast::Receiver<LiveEvent>) {
        let receiver = self.inner.events.subscribe();
        (self.snapshot(filter), receiver)
    }

    /// Every agent with a known position that `filter` shows, by name then id.
    pub fn snapshot(&self, filter: &WatchFilter) -> Vec<AgentState> {
        let mut states: Vec<AgentState> = self
            .read_agents()
            .values()
            .filter_map(Entry::state)
            .filter(|state| filter.shows(state))
            .collect();
        states.sort_by(|a, b| (&a.info.full_name, a.info.id).cmp(&(&b.info.full_name, b.info.id)));
        states
    }

    /// How many of `sorted_ids` (sorted, without duplicates) are online now (an open session,
    /// here or on another replica, or a message within the offline delay, for an agent whose
    /// position is known). One pass over the hub's agents, a binary search for each online one.
    pub fn online_count(&self, sorted_ids: &[Uuid]) -> usize {
        self.read_agents()
            .iter()
            .filter(|(id, entry)| entry.online && sorted_ids.binary_search(id).is_ok())
            .count()
    }

    /// Opens a session of `agent_id`, replacing (here and on other replicas) the open one.
    pub async fn open_session(&self, agent_id: Uuid) -> Result<SessionHandle, StoreError> {
        self.ensure_infos(std::iter::once(agent_id)).await?;
        let session_id = Uuid::now_v7();
        let replaced = CancellationToken::new();
        let (pushes_tx, pushes) = mpsc::channel(PUSH_BUFFER);
        let previous = self.lock_sessions().insert(
            agent_id,
            LocalSession {
                session_id,
                replaced: replaced.clone(),
                pushes: pushes_tx,
            },
        );
        if let Some(previous) = previous {
            previous.replaced.cancel();
        }
        self.inner.relay.session_opened(agent_id, session_id);
        self.set_session(agent_id, true, false);
        Ok(SessionHandle {
            hub: self.clone(),
            agent_id,
            session_id,
            replaced,
            pushes,
        })
    }

    fn close_session(&self, agent_id: Uuid, session_id: Uuid) {
        let mut sessions = self.lock_sessions();
        if sessions
            .get(&agent_id)
            .is_some_and(|s| s.session_id == session_id)
        {
            sessions.remove(&agent_id);
            drop(sessions);
            self.inner.relay.session_closed(agent_id, session_id);
            self.set_session(agent_id, false, false);
        }
    }

    /// Another replica opened (`open`) or closed a session of `agent_id`: a local session
    /// other than `session_id` is replaced.
    pub fn remote_session(&self, agent_id: Uuid, session_id: Uuid, open: bool) {
        if open {
            let local = self.lock_sessions().remove(&agent_id);
            if let Some(local) = local
                && local.session_id != session_id
            {
                local.replaced.cancel();
            }
        }
        self.set_session(agent_id, open, true);
    }

    fn set_session(&self, agent_id: Uuid, open: bool, remote: bool) {
        let now = Utc::now();
        let event = {
            let mut agents = self.write_agents();
            let Some(entry) = agents.get_mut(&agent_id) else {
                return;
            };
            if remote {
                entry.remote_session = open;
            } else {
                entry.local_session = open;
            }
            entry.last_seen = Some(now);
            let online = entry.local_session || entry.remote_session || {
                is_online(false, entry.last_seen, now, self.inner.config.offline_after)
            };
            (online != entry.online && entry.last.is_some()).then(|| {
                entry.online = online;
                LiveEvent::Presence {
                    info: entry.info.clone(),
                    online,
                    at: now,
                }
            })
        };
        if let Some(event) = event {
            let _ = self.inner.events.send(event);
        }
    }

    /// Pushes a mission change to the open session of `agent_id`, on this replica or another
    /// one. For the missions feature to call after a change is committed (generation,
    /// reassignment, cancellation); with no session open it is dropped, since the phone
    /// reloads its day at its next hello. Never waits: a session with 64 pushes unread loses
    /// the newest.
    pub fn push_mission(&self, agent_id: Uuid, push: pb::MissionPush) {
        if !self.push_local(agent_id, push.clone()) {
            self.inner.relay.mission_push(agent_id, &push);
        }
    }

    /// Delivers `push` to a session open on this replica; false when there is none.
    pub fn push_local(&self, agent_id: Uuid, push: pb::MissionPush) -> bool {
        let sessions = self.lock_sessions();
        match sessions.get(&agent_id) {
            Some(session) => {
                let _ = session.pushes.try_send(Box::new(push));
                true
            }
            None => false,
        }
    }

    /// Re-checks every agent's presence and tells watchers of the changes.
    pub fn refresh_presence(&self, now: DateTime<Utc>) {
        let mut events = Vec::new();
        {
            let mut agents = self.write_agents();
            for entry in agents.values_mut() {
                let online = is_online(
                    entry.local_session || entry.remote_session,
                    entry.last_seen,
                    now,
                    self.inner.config.offline_after,
                );
                if online != entry.online && entry.last.is_some() {
                    entry.online = online;
                    events.push(LiveEvent::Presence {
                        info: entry.info.clone(),
                        online,
                        at: now,
                    });
                }
            }
        }
        for event in events {
            let _ = self.inner.events.send(event);
        }
    }

    /// Loads the stored positions (retrying until the database answers), then keeps presence
    /// up to date and relays with the other replicas, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.load().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "live hub: cannot load last positions; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
        let relay = tokio::spawn(relay::run(self.clone(), shutdown.clone()));
        let mut tick = tokio::time::interval(PRESENCE_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let now = Utc::now();
                    self.refresh_presence(now);
                    let today = crate::domain::clock::conakry_day(now);
                    if let Err(error) = self.refresh_missions(today).await {
                        tracing::warn!(%error, "live hub: cannot read the missions in progress");
                    }
                }
            }
        }
        let _ = relay.await;
    }

    fn read_agents(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Entry>> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_agents(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Entry>> {
        self.inner
            .agents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, LocalSession>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
