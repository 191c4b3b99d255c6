//! Calls and visits, with the promise obtained during one.
//!
//! Decisions:
//! - The agent is the caller, or (admins only, back-office entry) the user named, who must
//!   exist and have the agent role ([`AppError::NotFound`] `agent` otherwise).
//! - A mission named must be the agent's, for this tenant (`domain::mission`).
//! - A visit's fix is checked against the tenant's home (`domain::presence`); the verdict is
//!   stored with the visit.
//! - The promise supersedes the tenant's pending one (`promises::make`).
//! - Only users with the agent role score (score events and `agent_daily_scores`), as for
//!   payments; without a promise the interaction's INSERT writes its score in the same
//!   statement.
//! - The interaction's `request_id` is stored for good: a retry after its idempotency key
//!   expired (even with an `occurred_at` now older than the offline window) answers the stored
//!   interaction; the same request_id used for another tenant, agent or kind answers
//!   [`AppError::RequestIdReused`].

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Act, AppError, ensure_covers, promises};
use crate::auth::caller::Caller;
use crate::auth::rbac::Role;
use crate::domain::{
    Accuracy, FixTiming, InteractionKind, InteractionOutcome, LatLng, MaxDistance, NewPromise,
    ScoreEventKind, check_timed_visit, conakry_day, events_for_interaction,
};
use crate::store::audit::AuditEvent;
use crate::store::interactions::{self as store, InteractionRow, NewInteraction};
use crate::store::promises::{self as promise_store, PromiseView};
use crate::store::tenants::{self as tenant_store, LockedTenant};
use crate::store::{agents, missions, scores};

/// Call or visit specifics.
#[derive(Debug, Clone)]
pub enum Details {
    Call {
        phone: Option<String>,
        duration_secs: Option<i32>,
    },
    Visit {
        location: Option<LatLng>,
        accuracy: Accuracy,
        is_mock: bool,
        fix_time: Option<DateTime<Utc>>,
    },
}

impl Details {
    pub fn kind(&self) -> InteractionKind {
        match self {
            Details::Call { .. } => InteractionKind::Call,
            Details::Visit { .. } => InteractionKind::Visit,
        }
    }
}

/// A call or visit to record, parsed.
#[derive(Debug, Clone)]
pub struct Action {
    pub tenant_id: Uuid,
    /// Device time; its bounds were checked by the caller (a late retry may carry an old one).
    pub occurred_at: DateTime<Utc>,
    pub outcome: InteractionOutcome,
    pub notes: String,
    pub mission_id: Option<Uuid>,
    /// Another user named as the agent (`None`: the caller).
    pub agent_id: Option<Uuid>,
    pub promise: Option<NewPromise>,
    pub details: Details,
}

/// The stored interaction (new, or found by its request_id) and its promise, with the audit
/// event of a new one.
#[derive(Debug)]
pub struct Recorded {
    pub interaction: InteractionRow,
    pub promise: Option<PromiseView>,
    pub audit: Option<AuditEvent>,
}

/// The agent of an action: the caller, or (admins only) the user named in `agent_id`.
pub fn agent(caller: &Caller, named: Option<Uuid>) -> Result<Uuid, AppError> {
    match named {
        None => Ok(caller.user_id),
        Some(other) if caller.role == Role::Admin => Ok(other),
        Some(_) => Err(AppError::NotAllowed(
            "only an admin may record a call or visit for another agent",
        )),
    }
}

/// Whether an interaction is stored under this request_id (a retry may then go on with an
/// `occurred_at` older than the offline window).
pub async fn is_stored(pool: &PgPool, request_id: Uuid) -> Result<bool, AppError> {
    Ok(store::by_request_id(pool, request_id).await?.is_some())
}

/// Writes a call or visit, its promise and its score events in the caller's transaction, and
/// answers them with the audit event of the action. `far`: how far from the tenant's home a
/// visit may be.
pub async fn record(
    conn: &mut PgConnection,
    act: &Act<'_>,
    action: &Action,
    far: MaxDistance,
) -> Result<Recorded, AppError> {
    let recording = Recording {
        act,
        action,
        agent_id: agent(act.caller, action.agent_id)?,
    };
    let tenant = tenant_store::lock(conn, action.tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    ensure_covers(act.caller, tenant.site_id)?;
    // The stored interaction of the request_id is looked for only when a check refuses the
    // action (a late retry may be refused by what changed since) or the insert finds the
    // request_id taken.
    match check(conn, act.caller, action, &tenant, recording.agent_id).await {
        Ok(agent_scores) => recording.write(conn, tenant, agent_scores, far).await,
        Err(error) if error.is_fault() => Err(error),
        Err(error) => recording.stored(conn).await?.ok_or(error),
    }
}

/// A call or visit being recorded by `agent_id`.
struct Recording<'a> {
    act: &'a Act<'a>,
    action: &'a Action,
    agent_id: Uuid,
}

impl Recording<'_> {
    fn kind(&self) -> InteractionKind {
        self.action.details.kind()
    }

    /// The answer to a retry: the interaction stored under the request_id, if it is this
    /// request's (same kind, tenant and agent; RequestIdReused otherwise); `None` when nothing
    /// is stored.
    async fn stored(&self, conn: &mut PgConnection) -> Result<Option<Recorded>, AppError> {
        let Some(existing) = store::by_request_id(&mut *conn, self.act.request_id).await? else {
            return Ok(None);
        };
        if existing.kind != self.kind()
            || existing.tenant_id != self.action.tenant_id
            || existing.agent_id != self.agent_id
        {
            return Err(AppError::RequestIdReused);
        }
        let promise = promise_of(conn, &existing, self.act).await?;
        Ok(Some(Recorded {
            interaction: existing,
            promise,
            audit: None,
        }))
    }

    /// The daily counters the action moves (promises apart).
    fn counters(&self) -> scores::Counters {
        scores::Counters {
            calls: i32::from(self.kind() == InteractionKind::Call),
            visits: i32::from(self.kind() == InteractionKind::Visit),
            refusals: i32::from(self.action.outcome == InteractionOutcome::Refused),
            ..Default::default()
        }
    }

    /// Inserts the interaction, its promise and its score, and answers from what was written.
    async fn write(
        &self,
        conn: &mut PgConnection,
        tenant: LockedTenant,
        agent_scores: bool,
        far: MaxDistance,
    ) -> Result<Recorded, AppError> {
        let action = self.action;
        let (new, far_away) = to_store(self.act, action, self.agent_id, &tenant, far);
        // Without a promise the score needs only the interaction: its INSERT writes it.
        let counters = self.counters();
        let insert_score = (agent_scores && action.promise.is_none()).then(|| store::InsertScore {
            day: conakry_day(action.occurred_at),
            events: events_for_interaction(self.kind(), action.outcome, false),
            calls: counters.calls,
            visits: counters.visits,
            refusals: counters.refusals,
        });
        let Some(inserted) = store::insert(conn, &new, insert_score.as_ref()).await? else {
            // Stored meanwhile under the same request_id by a call that held another key.
            return self.stored(conn).await?.ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("interaction request_id vanished"))
            });
        };
        let promise_id = match &action.promise {
            Some(promise) => Some(
                promises::make(
                    conn,
                    promise,
                    action.tenant_id,
                    self.agent_id,
                    inserted.id,
                    action.occurred_at,
                    self.act.now,
                )
                .await?,
            ),
            None => None,
        };
        let score_points = if agent_scores && insert_score.is_none() {
            self.score(conn, inserted.id, promise_id).await?
        } else {
            inserted.score_points
        };
        if let Some(mission_id) = action.mission_id {
            super::missions::on_action(
                conn,
                mission_id,
                crate::store::missions::Closing::Interaction(inserted.id),
                action.occurred_at,
            )
            .await?;
        }
        let audit = self.audit(inserted.id, promise_id, far_away);

        // The answer from what this transaction wrote, as a read of it would show it.
        let row = InteractionRow {
            id: inserted.id,
            kind: self.kind(),
            tenant_id: tenant.id,
            tenant_name: tenant.full_name,
            site_id: tenant.site_id,
            site_name: tenant.site_name,
            unit_label: tenant.unit,
            agent_id: self.agent_id,
            agent_name: inserted.agent_name,
            outcome: action.outcome,
            notes: action.notes.clone(),
            occurred_at: inserted.occurred_at,
            received_at: inserted.received_at,
            mission_id: action.mission_id,
            promise_id,
            score_points,
            call_phone: new.call_phone.map(str::to_owned),
            call_duration_secs: new.call_duration_secs,
            latitude: new.latitude,
            longitude: new.longitude,
            accuracy_m: new.accuracy_m,
            fix_time: inserted.fix_time,
            distance_to_tenant_m: new.distance_to_tenant_m,
            is_far_from_tenant: new.is_far_from_tenant,
            is_mock_location: new.is_mock_location,
            request_id: self.act.request_id,
        };
        let promise = promise_of(conn, &row, self.act).await?;
        Ok(Recorded {
            interaction: row,
            promise,
            audit: Some(audit),
        })
    }

    /// Writes the score of an action with a promise (the promise's event comes from the
    /// promise); answers the points written.
    async fn score(
        &self,
        conn: &mut PgConnection,
        interaction_id: Uuid,
        promise_id: Option<Uuid>,
    ) -> Result<i64, AppError> {
        let events: Vec<scores::Event> =
            events_for_interaction(self.kind(), self.action.outcome, promise_id.is_some())
                .into_iter()
                .map(|kind| scores::Event {
                    kind,
                    source_id: match (kind, promise_id) {
                        (ScoreEventKind::Promise, Some(promise_id)) => promise_id,
                        _ => interaction_id,
                    },
                })
                .collect();
        Ok(scores::add(
            conn,
            &scores::Scored {
                agent_id: self.agent_id,
                day: conakry_day(self.action.occurred_at),
                occurred_at: self.action.occurred_at,
                events: &events,
                counters: scores::Counters {
                    promises: i32::from(promise_id.is_some()),
                    ..self.counters()
                },
            },
        )
        .await?)
    }

    /// The audit event of a new interaction (its permission's name is the action).
    fn audit(
        &self,
        interaction_id: Uuid,
        promise_id: Option<Uuid>,
        far_away: Option<bool>,
    ) -> AuditEvent {
        let permission = match self.kind() {
            InteractionKind::Call => "collections.calls.record",
            InteractionKind::Visit => "collections.visits.record",
        };
        let mut audit = self
            .act
            .audit(permission)
            .target("interaction", interaction_id)
            .detail("tenant_id", self.action.tenant_id.to_string())
            .detail("agent_id", self.agent_id.to_string())
            .detail("outcome", self.action.outcome.as_str());
        if let Some(promise_id) = promise_id {
            audit = audit.detail("promise_id", promise_id.to_string());
        }
        if let Some(far_away) = far_away {
            audit = audit.detail("far_away", far_away);
        }
        audit
    }
}

/// The checks of an action on its locked tenant; answers whether the agent scores.
async fn check(
    conn: &mut PgConnection,
    caller: &Caller,
    action: &Action,
    tenant: &LockedTenant,
    agent_id: Uuid,
) -> Result<bool, AppError> {
    if !tenant.active {
        return Err(AppError::TenantInactive);
    }
    // The caller's role is read fresh on every call; another agent is looked up.
    let agent_scores = if agent_id == caller.user_id {
        caller.role == Role::Agent
    } else {
        match agents::get(&mut *conn, agent_id).await? {
            Some(agent) if agent.role == Role::Agent => true,
            _ => return Err(AppError::NotFound("agent")),
        }
    };
    if let Some(mission_id) = action.mission_id {
        missions::link(conn, mission_id)
            .await?
            .ok_or(AppError::NotFound("mission"))?
            .check(agent_id, action.tenant_id)?;
    }
    Ok(agent_scores)
}

/// The row to insert, with the proof of presence of a visit (and its verdict, for the audit).
fn to_store<'a>(
    act: &Act<'_>,
    action: &'a Action,
    agent_id: Uuid,
    tenant: &LockedTenant,
    far: MaxDistance,
) -> (NewInteraction<'a>, Option<bool>) {
    let mut new = NewInteraction {
        kind: action.details.kind(),
        tenant_id: action.tenant_id,
        agent_id,
        outcome: action.outcome,
        notes: &action.notes,
        occurred_at: action.occurred_at,
        mission_id: action.mission_id,
        request_id: act.request_id,
        call_phone: None,
        call_duration_secs: None,
        latitude: None,
        longitude: None,
        accuracy_m: None,
        fix_time: None,
        distance_to_tenant_m: None,
        is_far_from_tenant: false,
        is_mock_location: false,
    };
    match &action.details {
        Details::Call {
            phone,
            duration_secs,
        } => {
            new.call_phone = phone.as_deref();
            new.call_duration_secs = *duration_secs;
            (new, None)
        }
        Details::Visit {
            location,
            accuracy,
            is_mock,
            fix_time,
        } => {
            let home = tenant
                .home_latitude
                .zip(tenant.home_longitude)
                .and_then(|(lat, lng)| LatLng::parse(lat, lng).ok());
            let timing = FixTiming {
                fix_time: *fix_time,
                occurred_at: action.occurred_at,
            };
            let presence =
                check_timed_visit(*location, *accuracy, *is_mock, Some(timing), home, far);
            new.latitude = location.map(LatLng::latitude);
            new.longitude = location.map(LatLng::longitude);
            new.accuracy_m = location.map(|_| accuracy.metres());
            new.fix_time = *fix_time;
            new.distance_to_tenant_m = presence.distance_m;
            new.is_far_from_tenant = presence.far_away;
            new.is_mock_location = *is_mock;
            (new, Some(presence.far_away))
        }
    }
}

/// The promise made in an interaction, as it reads today.
async fn promise_of(
    conn: &mut PgConnection,
    row: &InteractionRow,
    act: &Act<'_>,
) -> Result<Option<PromiseView>, AppError> {
    Ok(match row.promise_id {
        Some(id) => promise_store::get(&mut *conn, id, conakry_day(act.now)).await?,
        None => None,
    })
}
