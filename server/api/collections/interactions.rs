//! Calls, visits and promises.
//!
//! Rules beyond the proto comments:
//! - `agent_id` names the agent who called or visited. Empty or the caller: the caller. Another
//!   user: only an admin may record for someone else (back-office entry); anyone else gets
//!   PERMISSION_DENIED. The named user must exist and have the agent role (NOT_FOUND `agent`).
//! - `mission_id`: an unknown mission is NOT_FOUND; a mission of another agent or of another
//!   tenant is INVALID_ARGUMENT on `mission_id` (ErrorInfo reason
//!   ERROR_REASON_MISSION_MISMATCH), as for payments.
//! - A new promise supersedes the tenant's pending one (cancelled, reason "superseded"). When
//!   that pending promise is already final by the payments (its date passed, or it is covered),
//!   it is settled with that status instead. A promise made *before* the tenant's latest one
//!   (an offline phone syncing late) is stored already superseded.
//! - Only users with the agent role score (score events and `agent_daily_scores`), as for
//!   payments.
//! - The interaction's `request_id` is stored for good: a retry after its idempotency key
//!   expired (even with an `occurred_at` now older than the offline window) answers the stored
//!   interaction; the same request_id used for another tenant, agent or kind answers
//!   FAILED_PRECONDITION (ERROR_REASON_REQUEST_ID_REUSED).
//! - Promise statuses are shown as the payments make them on the day of the read (see
//!   `store::promises`), whether or not the settlement job has stored them yet.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;
use uuid::Uuid;

use super::tenant_in_scope;
use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations, WireReason};
use crate::auth::caller::{Caller, Scope};
use crate::auth::rbac::Role;
use crate::domain::scoring::ScoreEventKind;
use crate::domain::{
    Accuracy, InteractionKind, InteractionOutcome, LatLng, LocationCheck, MaxDistance, NewPromise,
    OccurredAt, OccurredAtError, PaymentAmount, PromiseStatus, PromisedDate, TimeBounds,
    check_outcome_promise, check_visit, conakry_day, ensure_pending, events_for_interaction,
};
use crate::idempotency::IdempotencyKey;
use crate::proto::v1 as pb;
use crate::startup::AppState;
use crate::store::audit::{AuditEvent, Outcome};
use crate::store::interactions::{self as store, InteractionRow, NewInteraction};
use crate::store::promises::{self as promise_store, PromiseView};

const RECORD_CALL: &str = "/akig.v1.CollectionsService/RecordCall";
const RECORD_VISIT: &str = "/akig.v1.CollectionsService/RecordVisit";
const UPDATE_PROMISE: &str = "/akig.v1.CollectionsService/UpdatePromise";

const NOTES_MAX: usize = 2000;
const REASON_MIN: usize = 3;
const REASON_MAX: usize = 500;
/// A call longer than a day is a device error.
const CALL_DURATION_MAX_SECS: i64 = 24 * 3600;
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 500;
const STATUSES_MAX: usize = 10;

// ---------------------------------------------------------------------------------------------
// Parsing

/// A calendar day of the API (`Date`: year 2000..2100, valid for the month).
fn parse_date(field: &str, date: &pb::Date) -> Result<NaiveDate, ApiError> {
    let valid = (2000..=2100).contains(&date.year);
    u32::try_from(date.month)
        .ok()
        .zip(u32::try_from(date.day).ok())
        .filter(|_| valid)
        .and_then(|(month, day)| NaiveDate::from_ymd_opt(date.year, month, day))
        .ok_or_else(|| ApiError::invalid(field, "must be a valid date between 2000 and 2100"))
}

fn to_date(day: NaiveDate) -> pb::Date {
    use chrono::Datelike;
    pb::Date {
        year: day.year(),
        month: i32::try_from(day.month()).unwrap_or(0),
        day: i32::try_from(day.day()).unwrap_or(0),
    }
}

fn time_bounds(state: &AppState) -> TimeBounds {
    let config = &state.collections;
    TimeBounds {
        max_skew: TimeDelta::from_std(config.max_clock_skew).unwrap_or(TimeDelta::MAX),
        max_age: TimeDelta::from_std(config.max_offline_age).unwrap_or(TimeDelta::MAX),
    }
}

/// `occurred_at`: required, a valid timestamp. The bounds check is the caller's (a too-old
/// time is accepted for the retry of an action stored already).
fn device_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    convert::from_timestamp(field, value)
}

/// The free-text reason of a change: trimmed, 3..500 characters.
fn parse_reason(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let chars = value.chars().count();
    if (REASON_MIN..=REASON_MAX).contains(&chars) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            format!("is required, {REASON_MIN} to {REASON_MAX} characters"),
        ))
    }
}

/// What a call and a visit have in common, parsed.
struct Action {
    request_id: Uuid,
    tenant_id: Uuid,
    occurred_at: DateTime<Utc>,
    outcome: InteractionOutcome,
    notes: String,
    mission_id: Option<Uuid>,
    /// Another user named as the agent (None: the caller).
    agent_id: Option<Uuid>,
    promise: Option<NewPromise>,
}

/// The fields of RecordCallRequest / RecordVisitRequest shared by both.
struct RawAction<'a> {
    request_id: &'a str,
    tenant_id: &'a str,
    occurred_at: Option<&'a prost_types::Timestamp>,
    outcome: i32,
    notes: &'a str,
    mission_id: &'a str,
    agent_id: &'a str,
    promise: Option<&'a pb::NewPromise>,
}

/// Parses the shared fields, reporting every bad one in `violations`. Answers the action when
/// all are valid, and separately the `occurred_at` bounds error, if any.
fn parse_action(
    state: &AppState,
    caller: &Caller,
    raw: &RawAction<'_>,
    violations: &mut Violations,
) -> (Option<Action>, Option<OccurredAtError>) {
    let request_id = violations.absorb(convert::request_id(raw.request_id));
    let tenant_id = violations.absorb(convert::uuid("tenant_id", raw.tenant_id));
    let occurred_at = violations.absorb(device_time("occurred_at", raw.occurred_at));
    let bounds_error =
        occurred_at.and_then(|at| OccurredAt::parse(at, Utc::now(), time_bounds(state)).err());
    let outcome = violations.check("outcome", super::wire::outcome(raw.outcome));
    let notes = if raw.notes.chars().count() > NOTES_MAX {
        violations.add("notes", format!("must be at most {NOTES_MAX} characters"));
        None
    } else {
        Some(raw.notes.trim().to_owned())
    };
    let mission_id = violations.absorb(convert::optional_uuid("mission_id", raw.mission_id));
    let agent_id = violations
        .absorb(convert::optional_uuid("agent_id", raw.agent_id))
        .map(|id| id.filter(|id| *id != caller.user_id));

    let promise = raw.promise.and_then(|promise| {
        let amount = violations.check(
            "promise.amount_gnf",
            PaymentAmount::parse(promise.amount_gnf),
        );
        let date = match &promise.promised_date {
            Some(date) => violations.absorb(parse_date("promise.promised_date", date)),
            None => {
                violations.add("promise.promised_date", "is required");
                None
            }
        };
        // The window is counted from the day of the call or visit.
        let date = date.zip(occurred_at).and_then(|(date, at)| {
            violations.check_reasoned(
                "promise.promised_date",
                PromisedDate::parse(
                    date,
                    conakry_day(at),
                    state.collections.promise_horizon_days,
                ),
            )
        });
        Some(NewPromise::new(amount?, date?))
    });
    if let Some(outcome) = outcome
        && let Err(mismatch) = check_outcome_promise(outcome, raw.promise.is_some())
    {
        violations.add("promise", mismatch.to_string());
    }

    let action = (|| {
        Some(Action {
            request_id: request_id?,
            tenant_id: tenant_id?,
            occurred_at: occurred_at?,
            outcome: outcome?,
            notes: notes?,
            mission_id: mission_id?,
            agent_id: agent_id?,
            promise: if raw.promise.is_some() {
                Some(promise?)
            } else {
                None
            },
        })
    })();
    (action, bounds_error)
}

/// Ends validation: every violation, with the `occurred_at` bounds error among them. A
/// request whose only fault is an `occurred_at` older than the offline window goes on when
/// its interaction is stored already (a very late retry).
async fn finish_validation(
    state: &AppState,
    violations: Violations,
    action: Option<Action>,
    bounds_error: Option<OccurredAtError>,
) -> Result<Action, ApiError> {
    let bounds_violation = bounds_error.map(|e| FieldViolation::new("occurred_at", e.to_string()));
    let bounds_reason = bounds_error.as_ref().and_then(WireReason::wire_reason);
    let with_bounds = |mut list: Vec<FieldViolation>, reason: Option<&'static str>| {
        list.extend(bounds_violation.clone());
        match reason.or(bounds_reason) {
            Some(reason) => ApiError::InvalidArgumentBecause {
                violations: list,
                reason,
            },
            None => ApiError::InvalidArgument(list),
        }
    };
    match (violations.into_result(), action) {
        (Err(ApiError::InvalidArgument(list)), _) => Err(with_bounds(list, None)),
        (Err(ApiError::InvalidArgumentBecause { violations, reason }), _) => {
            Err(with_bounds(violations, Some(reason)))
        }
        (Err(other), _) => Err(other),
        (Ok(()), None) => Err(with_bounds(Vec::new(), None)),
        (Ok(()), Some(action)) => match bounds_error {
            None => Ok(action),
            Some(OccurredAtError::TooOld { .. })
                if store::by_request_id(&state.pool, action.request_id)
                    .await?
                    .is_some() =>
            {
                Ok(action)
            }
            Some(_) => Err(ApiError::InvalidArgument(
                bounds_violation.into_iter().collect(),
            )),
        },
    }
}

/// The agent of an action: the caller, or (admins only) the user named in `agent_id`.
fn agent_of(caller: &Caller, named: Option<Uuid>) -> Result<Uuid, ApiError> {
    match named {
        None => Ok(caller.user_id),
        Some(other) if caller.role == Role::Admin => Ok(other),
        Some(_) => Err(ApiError::permission_denied(
            "only an admin may record a call or visit for another agent",
        )),
    }
}

/// Call or visit specifics.
enum Details {
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
    fn kind(&self) -> InteractionKind {
        match self {
            Details::Call { .. } => InteractionKind::Call,
            Details::Visit { .. } => InteractionKind::Visit,
        }
    }
}

fn parse_call(call: Option<&pb::CallDetails>, violations: &mut Violations) -> Option<Details> {
    let Some(call) = call else {
        return Some(Details::Call {
            phone: None,
            duration_secs: None,
        });
    };
    let phone = if call.phone.trim().is_empty() {
        Some(None)
    } else {
        violations
            .absorb(convert::phone("call.phone", &call.phone))
            .map(Some)
    };
    let duration_secs = match &call.duration {
        None => Some(None),
        Some(d) if d.seconds >= 0 && d.nanos >= 0 && d.seconds <= CALL_DURATION_MAX_SECS => {
            i32::try_from(d.seconds).ok().map(Some)
        }
        Some(_) => {
            violations.add("call.duration", "must be between 0 and 24 hours");
            None
        }
    };
    Some(Details::Call {
        phone: phone?,
        duration_secs: duration_secs?,
    })
}

fn parse_visit(visit: Option<&pb::VisitDetails>, violations: &mut Violations) -> Option<Details> {
    let Some(visit) = visit else {
        return Some(Details::Visit {
            location: None,
            accuracy: Accuracy::default(),
            is_mock: false,
            fix_time: None,
        });
    };
    let location = match &visit.location {
        None => Some(None),
        Some(position) => match super::wire::lat_lng(position) {
            Ok(location) => Some(Some(location)),
            Err(e) => {
                violations.add(format!("visit.location.{}", e.field()), e.to_string());
                None
            }
        },
    };
    let accuracy = violations.check("visit.accuracy_m", Accuracy::parse(visit.accuracy_m));
    let fix_time = match &visit.fix_time {
        None => Some(None),
        Some(ts) => violations
            .absorb(convert::from_timestamp("visit.fix_time", ts))
            .map(Some),
    };
    Some(Details::Visit {
        location: location?,
        accuracy: accuracy?,
        is_mock: visit.is_mock_location,
        fix_time: fix_time?,
    })
}

// ---------------------------------------------------------------------------------------------
// Responses

fn tenant_ref(id: Uuid, name: &str, site_id: Uuid, site_name: &str, unit: &str) -> pb::TenantRef {
    pb::TenantRef {
        tenant_id: id.to_string(),
        full_name: name.to_owned(),
        site_id: site_id.to_string(),
        site_name: site_name.to_owned(),
        unit_label: unit.to_owned(),
    }
}

fn user_ref(id: Uuid, name: &str) -> pb::UserRef {
    pb::UserRef {
        user_id: id.to_string(),
        full_name: name.to_owned(),
    }
}

fn opt_id(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// The location check of a stored visit, from the flags the server stored with it.
fn location_check(row: &InteractionRow) -> LocationCheck {
    if row.is_mock_location {
        LocationCheck::MockLocation
    } else if row.latitude.is_none() {
        LocationCheck::NoFix
    } else if row.distance_to_tenant_m.is_none() {
        LocationCheck::NoHomeLocation
    } else if row.is_far_from_tenant {
        LocationCheck::FarAway
    } else {
        LocationCheck::Near
    }
}

/// The API's view of a call or visit; the one every answer that shows an interaction uses
/// (RecordCall, RecordVisit and the tenant timeline).
pub(super) fn interaction_to_proto(row: &InteractionRow) -> pb::Interaction {
    let details = if row.kind == InteractionKind::Visit.as_str() {
        pb::interaction::Details::Visit(pb::VisitDetails {
            location: row
                .latitude
                .zip(row.longitude)
                .map(|(latitude, longitude)| pb::LatLng {
                    latitude,
                    longitude,
                }),
            accuracy_m: row.accuracy_m.unwrap_or(0.0),
            is_mock_location: row.is_mock_location,
            fix_time: row.fix_time.map(timestamp),
            distance_to_home_m: row.distance_to_tenant_m,
            // A mocked fix counts as far away (`domain::presence`); the API stores it so, rows
            // written otherwise (the seeded data sets) may carry the mock flag alone.
            far_away: row.is_far_from_tenant || row.is_mock_location,
            location_check: pb::LocationCheck::from(location_check(row)).into(),
        })
    } else {
        pb::interaction::Details::Call(pb::CallDetails {
            phone: row.call_phone.clone().unwrap_or_default(),
            duration: row.call_duration_secs.map(|secs| prost_types::Duration {
                seconds: i64::from(secs),
                nanos: 0,
            }),
        })
    };
    pb::Interaction {
        interaction_id: row.id.to_string(),
        tenant: Some(tenant_ref(
            row.tenant_id,
            &row.tenant_name,
            row.site_id,
            &row.site_name,
            &row.unit_label,
        )),
        agent: Some(user_ref(row.agent_id, &row.agent_name)),
        outcome: row
            .outcome
            .parse::<InteractionOutcome>()
            .map_or(0, |o| pb::InteractionOutcome::from(o).into()),
        notes: row.notes.clone(),
        occurred_at: Some(timestamp(row.occurred_at)),
        received_at: Some(timestamp(row.received_at)),
        mission_id: opt_id(row.mission_id),
        promise_id: opt_id(row.promise_id),
        score_points: row.score_points,
        details: Some(details),
    }
}

/// A promise as shown, with its status derived on `today`. A status final by the payments but
/// not stored yet reads with the time it took effect when that is known (the end of the
/// promised date for partially kept and broken).
pub(super) fn promise_to_proto(view: &PromiseView) -> pb::PaymentPromise {
    let status = view
        .status
        .parse::<PromiseStatus>()
        .unwrap_or(PromiseStatus::Pending);
    let resolve_time = if view.stored_status != PromiseStatus::Pending.as_str() {
        view.status_changed_at
    } else {
        match status {
            PromiseStatus::PartiallyKept | PromiseStatus::Broken => Some(
                crate::domain::settled_at(status, view.promised_date, Utc::now()),
            ),
            _ => None,
        }
    };
    pb::PaymentPromise {
        promise_id: view.id.to_string(),
        tenant: Some(tenant_ref(
            view.tenant_id,
            &view.tenant_name,
            view.site_id,
            &view.site_name,
            &view.unit_label,
        )),
        agent: Some(user_ref(view.agent_id, &view.agent_name)),
        amount_gnf: view.amount_gnf,
        promised_date: Some(to_date(view.promised_date)),
        status: pb::PromiseStatus::from(status).into(),
        paid_gnf: view.paid_gnf,
        interaction_id: opt_id(view.interaction_id),
        occurred_at: Some(timestamp(view.made_at)),
        received_at: Some(timestamp(view.received_at)),
        original_promised_date: Some(to_date(view.original_promised_date)),
        reschedule_count: view.reschedule_count,
        last_change_reason: view.last_change_reason.clone().unwrap_or_default(),
        resolve_time: resolve_time.map(timestamp),
    }
}

fn today() -> NaiveDate {
    conakry_day(Utc::now())
}

// ---------------------------------------------------------------------------------------------
// RecordCall, RecordVisit

/// The stored interaction (new or found by its request_id) and its promise; the audit event
/// of a new one (written when the idempotency key is completed).
struct Recorded {
    interaction: pb::Interaction,
    promise: Option<pb::PaymentPromise>,
    score_points: i64,
    audit: Option<AuditEvent>,
}

async fn recorded(conn: &mut PgConnection, row: &InteractionRow) -> Result<Recorded, ApiError> {
    let promise = match row.promise_id {
        Some(id) => promise_store::get(&mut *conn, id, today())
            .await?
            .map(|view| promise_to_proto(&view)),
        None => None,
    };
    Ok(Recorded {
        interaction: interaction_to_proto(row),
        promise,
        score_points: row.score_points,
        audit: None,
    })
}

/// The interaction a request_id already stored, if it is this request's: a retry.
fn replay_of(
    existing: &InteractionRow,
    kind: InteractionKind,
    tenant_id: Uuid,
    agent_id: Uuid,
) -> Result<(), ApiError> {
    if existing.kind == kind.as_str()
        && existing.tenant_id == tenant_id
        && existing.agent_id == agent_id
    {
        Ok(())
    } else {
        Err(ApiError::FailedPrecondition {
            reason: "ERROR_REASON_REQUEST_ID_REUSED",
            message: "request_id was already used for a different request".into(),
        })
    }
}

/// Writes a call or visit, its promise and its score events, in the transaction of the
/// idempotent call, and answers them with the audit event of the action.
async fn record(
    conn: &mut PgConnection,
    state: &AppState,
    caller: &Caller,
    action: &Action,
    details: &Details,
) -> Result<Recorded, ApiError> {
    let kind = details.kind();
    let agent_id = agent_of(caller, action.agent_id)?;
    let tenant = store::lock_tenant(conn, action.tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    if !caller.scope().covers_site(tenant.site_id) {
        return Err(ApiError::permission_denied(
            "this tenant is outside your sites",
        ));
    }
    // The stored interaction of the request_id is looked for only when a check refuses the
    // action (a late retry may be refused by what changed since) or the insert finds the
    // request_id taken.
    let agent_scores = match check(conn, caller, action, &tenant, agent_id).await {
        Ok(agent_scores) => agent_scores,
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable)) => return Err(error),
        Err(error) => {
            return match store::by_request_id(&mut *conn, action.request_id).await? {
                Some(existing) => {
                    replay_of(&existing, kind, action.tenant_id, agent_id)?;
                    recorded(conn, &existing).await
                }
                None => Err(error),
            };
        }
    };

    let mut new = NewInteraction {
        kind: kind.as_str(),
        tenant_id: action.tenant_id,
        agent_id,
        outcome: action.outcome.as_str(),
        notes: &action.notes,
        occurred_at: action.occurred_at,
        mission_id: action.mission_id,
        request_id: action.request_id,
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
    let mut far_away = None;
    match details {
        Details::Call {
            phone,
            duration_secs,
        } => {
            new.call_phone = phone.as_deref();
            new.call_duration_secs = *duration_secs;
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
            let max = MaxDistance::parse(state.collections.far_visit_meters).unwrap_or_default();
            let presence = check_visit(*location, *accuracy, *is_mock, home, max);
            new.latitude = location.map(LatLng::latitude);
            new.longitude = location.map(LatLng::longitude);
            new.accuracy_m = location.map(|_| accuracy.metres());
            new.fix_time = *fix_time;
            new.distance_to_tenant_m = presence.distance_m;
            new.is_far_from_tenant = presence.far_away;
            new.is_mock_location = *is_mock;
            far_away = Some(presence.far_away);
        }
    }
    // Without a promise the score needs only the interaction: its INSERT writes it.
    let events_of = |promise: bool| -> Vec<(&'static str, i32)> {
        events_for_interaction(kind, action.outcome, promise)
            .iter()
            .map(|e: &ScoreEventKind| (e.as_str(), i32::try_from(e.points()).unwrap_or(0)))
            .collect()
    };
    let insert_score = (agent_scores && action.promise.is_none()).then(|| store::InsertScore {
        day: conakry_day(action.occurred_at),
        events: events_of(false),
        calls: i32::from(kind == InteractionKind::Call),
        visits: i32::from(kind == InteractionKind::Visit),
        refusals: i32::from(action.outcome == InteractionOutcome::Refused),
    });
    let Some(inserted) = store::insert(conn, &new, insert_score.as_ref()).await? else {
        // Stored meanwhile under the same request_id by a call that held another key.
        let existing = store::by_request_id(&mut *conn, action.request_id)
            .await?
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("interaction request_id vanished"))
            })?;
        replay_of(&existing, kind, action.tenant_id, agent_id)?;
        return recorded(conn, &existing).await;
    };
    let interaction_id = inserted.id;

    let promise_id = match &action.promise {
        Some(promise) => Some(make_promise(conn, action, agent_id, interaction_id, promise).await?),
        None => None,
    };

    let mut score_points = inserted.score_points;
    if agent_scores && insert_score.is_none() {
        score_points = store::score(
            conn,
            &store::InteractionScore {
                agent_id,
                day: conakry_day(action.occurred_at),
                occurred_at: action.occurred_at,
                interaction_id,
                promise_id,
                events: events_of(promise_id.is_some()),
                calls: i32::from(kind == InteractionKind::Call),
                visits: i32::from(kind == InteractionKind::Visit),
                promises: i32::from(promise_id.is_some()),
                refusals: i32::from(action.outcome == InteractionOutcome::Refused),
            },
        )
        .await?;
    }

    let permission = match kind {
        InteractionKind::Call => "collections.calls.record",
        InteractionKind::Visit => "collections.visits.record",
    };
    let mut event = AuditEvent::new(permission, Outcome::Ok)
        .target("interaction", interaction_id)
        .request(action.request_id)
        .detail("tenant_id", action.tenant_id.to_string())
        .detail("agent_id", agent_id.to_string())
        .detail("outcome", action.outcome.as_str());
    if let Some(promise_id) = promise_id {
        event = event.detail("promise_id", promise_id.to_string());
    }
    if let Some(far_away) = far_away {
        event = event.detail("far_away", far_away);
    }
    event.actor_id = Some(caller.user_id);
    event.actor_role = Some(caller.role.as_str().to_owned());
    event.client_ip = caller.client_ip;

    // The answer from what this transaction wrote, as a read of it would show it.
    let row = InteractionRow {
        id: interaction_id,
        kind: kind.as_str().to_owned(),
        tenant_id: tenant.id,
        tenant_name: tenant.full_name,
        site_id: tenant.site_id,
        site_name: tenant.site_name,
        unit_label: tenant.unit,
        agent_id,
        agent_name: inserted.agent_name,
        outcome: action.outcome.as_str().to_owned(),
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
        request_id: action.request_id,
    };
    let recorded = recorded(conn, &row).await?;
    Ok(Recorded {
        audit: Some(event),
        ..recorded
    })
}

/// The checks of an action on its locked tenant; answers whether the agent scores.
async fn check(
    conn: &mut PgConnection,
    caller: &Caller,
    action: &Action,
    tenant: &store::TenantForAction,
    agent_id: Uuid,
) -> Result<bool, ApiError> {
    if !tenant.active {
        return Err(ApiError::FailedPrecondition {
            reason: "ERROR_REASON_TENANT_INACTIVE",
            message: "the tenant has moved out".into(),
        });
    }
    // The caller's role is read fresh on every call; another agent is looked up.
    let agent_scores = if agent_id == caller.user_id {
        caller.role == Role::Agent
    } else {
        match store::agent(&mut *conn, agent_id).await? {
            Some(agent) if agent.role_id == Role::Agent.as_str() => true,
            _ => return Err(ApiError::NotFound("agent")),
        }
    };
    if let Some(mission_id) = action.mission_id {
        let mission = store::mission(conn, mission_id)
            .await?
            .ok_or(ApiError::NotFound("mission"))?;
        if mission.agent_id != agent_id || mission.tenant_id != action.tenant_id {
            return Err(ApiError::invalid_because(
                "mission_id",
                "is not this agent's mission for this tenant",
                "ERROR_REASON_MISSION_MISMATCH",
            ));
        }
    }
    Ok(agent_scores)
}

/// Stores the promise of a call or visit; the tenant's pending promise gives way to it.
async fn make_promise(
    conn: &mut PgConnection,
    action: &Action,
    agent_id: Uuid,
    interaction_id: Uuid,
    promise: &NewPromise,
) -> Result<Uuid, ApiError> {
    let newer_exists = promise_store::latest_made_at(conn, action.tenant_id)
        .await?
        .is_some_and(|latest| latest > action.occurred_at);
    if !newer_exists {
        let today = today();
        let now = Utc::now();
        for pending in promise_store::pending_of_tenant(conn, action.tenant_id).await? {
            let status =
                crate::domain::shown_status(PromiseStatus::Pending, &pending.progress(), today);
            if status.is_final() {
                let at = crate::domain::settled_at(status, pending.promised_date, now);
                promise_store::settle(conn, pending.id, status, pending.paid_by_date_gnf, at)
                    .await?;
            } else {
                promise_store::cancel(conn, pending.id, promise_store::SUPERSEDED, None, None)
                    .await?;
            }
        }
    }
    Ok(promise_store::insert(
        conn,
        &promise_store::NewPromise {
            tenant_id: action.tenant_id,
            agent_id,
            interaction_id,
            amount_gnf: promise.amount().francs(),
            promised_date: promise.promised_date(),
            superseded: newer_exists,
        },
    )
    .await?)
}

/// Validation, scope, then the idempotent write; shared by RecordCall and RecordVisit.
async fn record_interaction<Req: prost::Message>(
    state: &AppState,
    caller: &Caller,
    method: &'static str,
    message: &Req,
    raw: RawAction<'_>,
    details: impl FnOnce(&mut Violations) -> Option<Details>,
) -> Result<Recorded, ApiError> {
    let mut violations = Violations::new();
    let (action, bounds_error) = parse_action(state, caller, &raw, &mut violations);
    let details = details(&mut violations);
    let action = finish_validation(state, violations, action, bounds_error).await?;
    let details = details.ok_or_else(|| ApiError::internal(anyhow::anyhow!("details unparsed")))?;
    agent_of(caller, action.agent_id)?;

    let key = IdempotencyKey::new(caller.user_id, method, action.request_id);
    let response = state
        .idempotency
        .run_audited(key, message, async |conn: &mut PgConnection| {
            let recorded = record(conn, state, caller, &action, &details).await?;
            let response = pb::RecordVisitResponse {
                visit: Some(recorded.interaction),
                promise: recorded.promise,
                score_points: recorded.score_points,
            };
            Ok::<_, ApiError>((response, recorded.audit))
        })
        .await?;
    Ok(Recorded {
        interaction: response.visit.unwrap_or_default(),
        promise: response.promise,
        score_points: response.score_points,
        audit: None,
    })
}

pub(super) async fn record_call(
    state: &AppState,
    request: Request<pb::RecordCallRequest>,
) -> Result<Response<pb::RecordCallResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let raw = RawAction {
        request_id: &message.request_id,
        tenant_id: &message.tenant_id,
        occurred_at: message.occurred_at.as_ref(),
        outcome: message.outcome,
        notes: &message.notes,
        mission_id: &message.mission_id,
        agent_id: &message.agent_id,
        promise: message.promise.as_ref(),
    };
    let recorded = record_interaction(state, caller, RECORD_CALL, message, raw, |v| {
        parse_call(message.call.as_ref(), v)
    })
    .await?;
    Ok(Response::new(pb::RecordCallResponse {
        call: Some(recorded.interaction),
        promise: recorded.promise,
        score_points: recorded.score_points,
    }))
}

pub(super) async fn record_visit(
    state: &AppState,
    request: Request<pb::RecordVisitRequest>,
) -> Result<Response<pb::RecordVisitResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let raw = RawAction {
        request_id: &message.request_id,
        tenant_id: &message.tenant_id,
        occurred_at: message.occurred_at.as_ref(),
        outcome: message.outcome,
        notes: &message.notes,
        mission_id: &message.mission_id,
        agent_id: &message.agent_id,
        promise: message.promise.as_ref(),
    };
    let recorded = record_interaction(state, caller, RECORD_VISIT, message, raw, |v| {
        parse_visit(message.visit.as_ref(), v)
    })
    .await?;
    Ok(Response::new(pb::RecordVisitResponse {
        visit: Some(recorded.interaction),
        promise: recorded.promise,
        score_points: recorded.score_points,
    }))
}

// ---------------------------------------------------------------------------------------------
// ListPromises

fn visibility(caller: &Caller) -> promise_store::Visibility {
    use promise_store::Visibility;
    match caller.scope() {
        Scope::Company => Visibility::All,
        Scope::Sites(sites) => Visibility::Sites {
            site_ids: sites.to_vec(),
            own_agent_id: None,
            supervisor_id: None,
        },
        Scope::Team {
            supervisor_id,
            site_ids,
        } => Visibility::Sites {
            site_ids: site_ids.to_vec(),
            own_agent_id: None,
            supervisor_id: Some(supervisor_id),
        },
        Scope::Own { agent_id, site_ids } => Visibility::Sites {
            site_ids: site_ids.to_vec(),
            own_agent_id: Some(agent_id),
            supervisor_id: None,
        },
    }
}

/// Ties a page token to the filters it was issued for.
fn filter_digest(filter: &promise_store::ListFilter) -> String {
    let statuses: BTreeSet<&str> = filter.statuses.iter().copied().collect();
    let canonical = format!(
        "{statuses:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        filter.agent_id, filter.site_id, filter.tenant_id, filter.from, filter.to
    );
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_cursor(digest: &str, view: &PromiseView) -> String {
    convert::encode_page_token(&format!(
        "{digest}|{}|{}|{}",
        view.promised_date, view.id, view.tenant_name
    ))
}

fn decode_cursor(digest: &str, token: &str) -> Result<Option<promise_store::Cursor>, ApiError> {
    let Some(raw) = convert::decode_page_token(token)? else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("page_token", "not a token for these filters");
    let mut parts = raw.splitn(4, '|');
    let (Some(token_digest), Some(date), Some(id), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if token_digest != digest {
        return Err(bad());
    }
    Ok(Some(promise_store::Cursor {
        promised_date: date.parse().map_err(|_| bad())?,
        id: id.parse().map_err(|_| bad())?,
        tenant_name: name.to_owned(),
    }))
}

pub(super) async fn list_promises(
    state: &AppState,
    request: Request<pb::ListPromisesRequest>,
) -> Result<Response<pb::ListPromisesResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let mut violations = Violations::new();
    let limit = violations.absorb(convert::page_size(
        message.page_size,
        PAGE_DEFAULT,
        PAGE_MAX,
    ));
    let mut statuses = Vec::new();
    if message.statuses.len() > STATUSES_MAX {
        violations.add("statuses", format!("at most {STATUSES_MAX} values"));
    }
    for (i, value) in message.statuses.iter().enumerate() {
        if *value == pb::PromiseStatus::Unspecified as i32 {
            continue;
        }
        if let Some(status) = violations.check(
            &format!("statuses[{i}]"),
            super::wire::promise_status(*value),
        ) {
            statuses.push(status.as_str());
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    let agent_id = violations.absorb(convert::optional_uuid("agent_id", &message.agent_id));
    let site_id = violations.absorb(convert::optional_uuid("site_id", &message.site_id));
    let tenant_id = violations.absorb(convert::optional_uuid("tenant_id", &message.tenant_id));
    let (mut from, mut to) = (None, None);
    if let Some(range) = &message.promised_date_range {
        if let Some(start) = &range.start_date {
            from = violations.absorb(parse_date("promised_date_range.start_date", start));
        }
        if let Some(end) = &range.end_date {
            to = violations.absorb(parse_date("promised_date_range.end_date", end));
        }
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            violations.add(
                "promised_date_range.end_date",
                "must not be before start_date",
            );
        }
    }
    violations.into_result()?;
    let filter = promise_store::ListFilter {
        statuses,
        agent_id: agent_id.flatten(),
        site_id: site_id.flatten(),
        tenant_id: tenant_id.flatten(),
        from,
        to,
    };
    let digest = filter_digest(&filter);
    let after = decode_cursor(&digest, &message.page_token)?;
    let limit = limit.unwrap_or(PAGE_DEFAULT);

    let today = today();
    let visibility = visibility(caller);
    let mut rows = promise_store::list(
        &state.pool,
        today,
        &visibility,
        &filter,
        after.as_ref(),
        limit + 1,
    )
    .await
    .map_err(ApiError::from)?;
    let next_page_token = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.last()
            .map(|last| encode_cursor(&digest, last))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let (total_size, total_amount_gnf) =
        promise_store::totals(&state.pool, today, &visibility, &filter)
            .await
            .map_err(ApiError::from)?;
    Ok(Response::new(pb::ListPromisesResponse {
        promises: rows.iter().map(promise_to_proto).collect(),
        next_page_token,
        total_size,
        total_amount_gnf,
    }))
}

// ---------------------------------------------------------------------------------------------
// UpdatePromise

/// What an UpdatePromise asks, parsed.
enum Change {
    Cancel,
    Reschedule {
        promised_date: Option<NaiveDate>,
        amount_gnf: Option<i64>,
    },
}

struct PromiseUpdate {
    request_id: Uuid,
    promise_id: Uuid,
    change: Change,
    reason: String,
    occurred_at: DateTime<Utc>,
    paths: Vec<String>,
}

fn parse_update(
    state: &AppState,
    message: &pb::UpdatePromiseRequest,
) -> Result<PromiseUpdate, ApiError> {
    let mut violations = Violations::new();
    let request_id = violations.absorb(convert::request_id(&message.request_id));
    let reason = violations.absorb(parse_reason("reason", &message.reason));
    let occurred_at = violations
        .absorb(device_time("occurred_at", message.occurred_at.as_ref()))
        .and_then(|at| {
            violations.check_reasoned(
                "occurred_at",
                OccurredAt::parse(at, Utc::now(), time_bounds(state)).map(OccurredAt::get),
            )
        });
    let promise = message.promise.as_ref();
    let promise_id = match promise {
        Some(p) => violations.absorb(convert::uuid("promise.promise_id", &p.promise_id)),
        None => {
            violations.add("promise", "is required");
            None
        }
    };

    let mut paths: Vec<String> = message
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.iter().map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        violations.add(
            "update_mask",
            "is required: promised_date, amount_gnf and/or status",
        );
    }
    for path in &paths {
        if !matches!(path.as_str(), "promised_date" | "amount_gnf" | "status") {
            violations.add(
                "update_mask",
                format!("path {path:?} is not allowed (promised_date, amount_gnf, status)"),
            );
        }
    }
    let has = |name: &str| paths.iter().any(|p| p == name);
    let mut change = None;
    if has("status") {
        if paths.len() > 1 {
            violations.add(
                "update_mask",
                "status cannot change together with other fields",
            );
        }
        let cancelled = promise.is_some_and(|p| p.status == pb::PromiseStatus::Cancelled as i32);
        if !cancelled {
            violations.add("promise.status", "only PROMISE_STATUS_CANCELLED can be set");
        }
        change = Some(Change::Cancel);
    } else if let Some(promise) = promise {
        let promised_date = if has("promised_date") {
            let date = match &promise.promised_date {
                Some(date) => violations.absorb(parse_date("promise.promised_date", date)),
                None => {
                    violations.add("promise.promised_date", "is required by the update mask");
                    None
                }
            };
            date.zip(occurred_at).and_then(|(date, at)| {
                violations
                    .check_reasoned(
                        "promise.promised_date",
                        PromisedDate::parse(
                            date,
                            conakry_day(at),
                            state.collections.promise_horizon_days,
                        ),
                    )
                    .map(PromisedDate::get)
            })
        } else {
            None
        };
        let amount_gnf = if has("amount_gnf") {
            violations
                .check(
                    "promise.amount_gnf",
                    PaymentAmount::parse(promise.amount_gnf),
                )
                .map(PaymentAmount::francs)
        } else {
            None
        };
        change = Some(Change::Reschedule {
            promised_date,
            amount_gnf,
        });
    }
    violations.into_result()?;
    match (request_id, promise_id, change, reason, occurred_at) {
        (Some(request_id), Some(promise_id), Some(change), Some(reason), Some(occurred_at)) => {
            Ok(PromiseUpdate {
                request_id,
                promise_id,
                change,
                reason,
                occurred_at,
                paths,
            })
        }
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

pub(super) async fn update_promise(
    state: &AppState,
    request: Request<pb::UpdatePromiseRequest>,
) -> Result<Response<pb::UpdatePromiseResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let update = parse_update(state, message)?;
    let tenant_id = promise_store::tenant_of(&state.pool, update.promise_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("promise"))?;
    tenant_in_scope(&state.pool, caller, tenant_id).await?;

    let key = IdempotencyKey::new(caller.user_id, UPDATE_PROMISE, update.request_id);
    let response = state
        .idempotency
        .run_audited(key, message, async |conn: &mut PgConnection| {
            apply_update(conn, caller, &update).await
        })
        .await?;
    Ok(Response::new(response))
}

async fn apply_update(
    conn: &mut PgConnection,
    caller: &Caller,
    update: &PromiseUpdate,
) -> Result<(pb::UpdatePromiseResponse, Option<AuditEvent>), ApiError> {
    let today = today();
    let (promise, stored_status) = promise_store::lock(conn, update.promise_id)
        .await?
        .ok_or(ApiError::NotFound("promise"))?;
    let status = match stored_status.parse::<PromiseStatus>() {
        Ok(PromiseStatus::Pending) => {
            crate::domain::shown_status(PromiseStatus::Pending, &promise.progress(), today)
        }
        Ok(final_status) => final_status,
        Err(e) => return Err(ApiError::internal(e)),
    };
    ensure_pending(status).map_err(|e| ApiError::FailedPrecondition {
        reason: "ERROR_REASON_PROMISE_NOT_PENDING",
        message: e.to_string(),
    })?;

    match update.change {
        Change::Cancel => {
            promise_store::cancel(
                conn,
                promise.id,
                &update.reason,
                Some(caller.user_id),
                Some(update.occurred_at),
            )
            .await?;
        }
        Change::Reschedule {
            promised_date,
            amount_gnf,
        } => {
            let promised_date = promised_date.filter(|date| *date != promise.promised_date);
            let amount_gnf = amount_gnf.filter(|amount| *amount != promise.amount_gnf);
            if promised_date.is_some() || amount_gnf.is_some() {
                promise_store::reschedule(
                    conn,
                    &promise_store::Reschedule {
                        promise_id: promise.id,
                        promised_date,
                        amount_gnf,
                        reason: &update.reason,
                        actor: caller.user_id,
                        occurred_at: update.occurred_at,
                    },
                )
                .await?;
            }
        }
    }

    let mut event = AuditEvent::new("collections.promises.update", Outcome::Ok)
        .target("promise", promise.id)
        .request(update.request_id)
        .detail("tenant_id", promise.tenant_id.to_string())
        .detail("paths", update.paths.clone())
        .detail("reason", update.reason.clone());
    event.actor_id = Some(caller.user_id);
    event.actor_role = Some(caller.role.as_str().to_owned());
    event.client_ip = caller.client_ip;

    let view = promise_store::get(&mut *conn, promise.id, today)
        .await?
        .ok_or(ApiError::NotFound("promise"))?;
    let response = pb::UpdatePromiseResponse {
        promise: Some(promise_to_proto(&view)),
    };
    Ok((response, Some(event)))
}
