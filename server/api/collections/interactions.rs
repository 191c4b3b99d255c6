//! RecordCall and RecordVisit: requests parsed into a call or visit (`app::interactions`, where
//! the rules are), answers shown by [`views`].
//!
//! Decisions:
//! - `agent_id` empty or the caller's own id means the caller.
//! - Every bad field is named at once. An `occurred_at` outside the offline window is reported
//!   with the others; when it is the only fault and the window is passed (too old), the call
//!   goes on if its interaction is stored already (a very late retry, answered with the stored
//!   interaction).
//! - A promise's date window is counted from the day of the call or visit.
//! - Calls and visits store their answer under the RecordVisitResponse layout (a call's in its
//!   `visit` field): both messages have the same fields, and stored answers stay readable.

use chrono::{DateTime, Utc};
use tonic::Request;
use uuid::Uuid;

use super::promises::promised_date;
use super::{rpc, views, wire};
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, Text};
use crate::api::write::Write;
use crate::app::interactions::{self as app, Action, Details};
use crate::auth::caller::Caller;
use crate::domain::{
    Accuracy, MaxDistance, NewPromise, OccurredAt, OccurredAtError, PaymentAmount,
    check_outcome_promise,
};
use crate::proto::v1 as pb;
use crate::state::AppState;

const NOTES: Text = Text::note(2_000);
/// A call longer than a day is a device error.
const CALL_DURATION_MAX_SECS: i64 = 24 * 3600;

/// The fields of RecordCallRequest / RecordVisitRequest shared by both.
struct Shared<'a> {
    request_id: &'a str,
    tenant_id: &'a str,
    occurred_at: Option<&'a prost_types::Timestamp>,
    outcome: i32,
    notes: &'a str,
    mission_id: &'a str,
    agent_id: &'a str,
    promise: Option<&'a pb::NewPromise>,
}

/// An action parsed: its request_id and what to record.
struct Parsed {
    request_id: Uuid,
    action: Action,
}

/// Parses a call or visit; `details` parses its specifics. Every bad field is named.
async fn parse_action(
    state: &AppState,
    caller: &Caller,
    shared: &Shared<'_>,
    details: impl FnOnce(&mut Violations) -> Option<Details>,
) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let request_id = v.absorb(convert::request_id(shared.request_id));
    let tenant_id = v.absorb(convert::uuid("tenant_id", shared.tenant_id));
    let occurred_at = v.absorb(parse::device_time("occurred_at", shared.occurred_at));
    let bounds = parse::time_bounds(&state.collections);
    let too_far = occurred_at.and_then(|at| OccurredAt::parse(at, Utc::now(), bounds).err());
    let outcome = v.check("outcome", wire::outcome(shared.outcome));
    let notes = v.absorb(NOTES.parse("notes", shared.notes));
    let mission_id = v.absorb(convert::optional_uuid("mission_id", shared.mission_id));
    let agent_id = v
        .absorb(convert::optional_uuid("agent_id", shared.agent_id))
        .map(|id| id.filter(|id| *id != caller.user_id));
    let promise = shared
        .promise
        .map(|promise| parse_promise(state, &mut v, promise, occurred_at));
    if let Some(outcome) = outcome
        && let Err(mismatch) = check_outcome_promise(outcome, shared.promise.is_some())
    {
        v.add("promise", mismatch.to_string());
    }
    let details = details(&mut v);

    let parsed = (|| {
        Some(Parsed {
            request_id: request_id?,
            action: Action {
                tenant_id: tenant_id?,
                occurred_at: occurred_at?,
                outcome: outcome?,
                notes: notes?,
                mission_id: mission_id?,
                agent_id: agent_id?,
                promise: match promise {
                    Some(promise) => Some(promise?),
                    None => None,
                },
                details: details?,
            },
        })
    })();
    // The offline window last: a lone "too old" may be a late retry of a stored action.
    let late_retry = match (&too_far, &parsed) {
        (Some(OccurredAtError::TooOld { .. }), Some(parsed)) if v.is_empty() => {
            app::is_stored(&state.pool, parsed.request_id).await?
        }
        _ => false,
    };
    if !late_retry && let Some(too_far) = too_far {
        // The rule and the reasons of payments (`OCCURRED_AT_IN_FUTURE`, `_TOO_OLD`).
        v.check_reasoned::<(), _>("occurred_at", Err(too_far));
    }
    v.into_result()?;
    parsed.ok_or_else(invalid_request)
}

fn invalid_request() -> ApiError {
    ApiError::invalid("", "invalid request")
}

/// The promise of a call or visit; its date window counts from the day of the action.
fn parse_promise(
    state: &AppState,
    v: &mut Violations,
    promise: &pb::NewPromise,
    occurred_at: Option<DateTime<Utc>>,
) -> Option<NewPromise> {
    let amount = v.check(
        "promise.amount_gnf",
        PaymentAmount::parse(promise.amount_gnf),
    );
    let date = promised_date(
        state,
        v,
        promise.promised_date.as_ref(),
        "is required",
        occurred_at,
    );
    Some(NewPromise::new(amount?, date?))
}

fn parse_call(call: Option<&pb::CallDetails>, v: &mut Violations) -> Option<Details> {
    let Some(call) = call else {
        return Some(Details::Call {
            phone: None,
            duration_secs: None,
        });
    };
    let phone = v.absorb(convert::optional_phone("call.phone", &call.phone));
    let duration_secs = match &call.duration {
        None => Some(None),
        Some(d) if d.seconds >= 0 && d.nanos >= 0 && d.seconds <= CALL_DURATION_MAX_SECS => {
            i32::try_from(d.seconds).ok().map(Some)
        }
        Some(_) => {
            v.add("call.duration", "must be between 0 and 24 hours");
            None
        }
    };
    Some(Details::Call {
        phone: phone?,
        duration_secs: duration_secs?,
    })
}

fn parse_visit(visit: Option<&pb::VisitDetails>, v: &mut Violations) -> Option<Details> {
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
        Some(position) => match wire::lat_lng(position) {
            Ok(location) => Some(Some(location)),
            Err(e) => {
                v.add(format!("visit.location.{}", e.field()), e.to_string());
                None
            }
        },
    };
    let accuracy = v.check("visit.accuracy_m", Accuracy::parse(visit.accuracy_m));
    let fix_time = match &visit.fix_time {
        None => Some(None),
        Some(ts) => v
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

/// Validation, then the idempotent write; shared by RecordCall and RecordVisit. Answers the
/// stored layout (see the module's decisions).
async fn record<Req: prost::Message>(
    state: &AppState,
    request: &Request<Req>,
    method: &'static str,
    shared: Shared<'_>,
    details: impl FnOnce(&mut Violations) -> Option<Details>,
) -> Result<pb::RecordVisitResponse, ApiError> {
    let caller = Caller::of(request)?;
    let parsed = parse_action(state, caller, &shared, details).await?;
    app::agent(caller, parsed.action.agent_id)?;
    let write = Write::new(caller, method, parsed.request_id);
    let far = MaxDistance::parse(state.collections.far_visit_meters).unwrap_or_default();
    let outcome = state
        .idempotency
        .run_audited(write.key(), request.get_ref(), async |conn| {
            let done = app::record(conn, write.act(), &parsed.action, far).await?;
            let response = pb::RecordVisitResponse {
                visit: Some(views::interaction(&done.interaction)),
                promise: done.promise.as_ref().map(|p| views::promise(p, Utc::now())),
                score_points: done.interaction.score_points,
            };
            Ok::<_, ApiError>((response, done.audit))
        })
        .await;
    let response = state.cache.after_write(outcome).await?;
    if let Some(mission_id) = parsed.action.mission_id {
        crate::api::missions::after_mission_action(state, mission_id).await;
    }
    Ok(response)
}

pub(super) async fn record_call(
    state: &AppState,
    request: &Request<pb::RecordCallRequest>,
) -> Result<pb::RecordCallResponse, ApiError> {
    let message = request.get_ref();
    let shared = Shared {
        request_id: &message.request_id,
        tenant_id: &message.tenant_id,
        occurred_at: message.occurred_at.as_ref(),
        outcome: message.outcome,
        notes: &message.notes,
        mission_id: &message.mission_id,
        agent_id: &message.agent_id,
        promise: message.promise.as_ref(),
    };
    let recorded = record(state, request, rpc::RECORD_CALL, shared, |v| {
        parse_call(message.call.as_ref(), v)
    })
    .await?;
    Ok(pb::RecordCallResponse {
        call: recorded.visit,
        promise: recorded.promise,
        score_points: recorded.score_points,
    })
}

pub(super) async fn record_visit(
    state: &AppState,
    request: &Request<pb::RecordVisitRequest>,
) -> Result<pb::RecordVisitResponse, ApiError> {
    let message = request.get_ref();
    let shared = Shared {
        request_id: &message.request_id,
        tenant_id: &message.tenant_id,
        occurred_at: message.occurred_at.as_ref(),
        outcome: message.outcome,
        notes: &message.notes,
        mission_id: &message.mission_id,
        agent_id: &message.agent_id,
        promise: message.promise.as_ref(),
    };
    record(state, request, rpc::RECORD_VISIT, shared, |v| {
        parse_visit(message.visit.as_ref(), v)
    })
    .await
}
