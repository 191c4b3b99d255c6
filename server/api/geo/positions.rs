//! ReportPositions (offline uploads) and ListAgentPositions (snapshot), with the conversions
//! of positions that AgentSession and WatchAgents share.
//!
//! Decisions:
//! - Positions are turned into `domain::position::RawPosition` as they are, unchecked: the
//!   checks are the domain's, and a bad position is a rejection in the ack, not a failed call.
//! - ReportPositions needs no idempotency table: the (agent, sequence) dedup makes a retry
//!   store nothing twice and answer the same ack.
//! - ListAgentPositions reads the hub's memory (the same state WatchAgents snapshots), paged
//!   by position in the name-ordered list.

use chrono::{DateTime, Utc};
use tonic::Request;
use uuid::Uuid;

use super::convert::location;
use crate::api::convert::{page_size, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::api::paging::{Pager, Parts};
use crate::api::parse;
use crate::app::positions::{BatchAck, IngestError, MAX_BATCH};
use crate::auth::caller::Caller;
use crate::auth::rbac::Role;
use crate::domain::map::GeoBox;
use crate::domain::position::{RawPosition, RejectReason};
use crate::live::{AgentState, WatchFilter};
use crate::proto::v1 as pb;
use crate::state::AppState;

/// Most site or agent ids in a filter.
const FILTER_IDS_MAX: usize = 500;

/// A position as the phone sent it.
pub fn raw_position(p: &pb::AgentPosition) -> RawPosition {
    RawPosition {
        sequence: p.sequence,
        location: p.location.as_ref().map(|l| (l.latitude, l.longitude)),
        accuracy_m: p.accuracy_m,
        speed_mps: p.speed_mps,
        heading_deg: p.heading_deg,
        altitude_m: p.altitude_m,
        battery_percent: p.battery_percent,
        is_mock_location: p.is_mock_location,
        fix_time: p
            .fix_time
            .as_ref()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)),
    }
}

fn reject_reason(reason: RejectReason) -> pb::PositionRejectReason {
    use pb::PositionRejectReason as P;
    match reason {
        RejectReason::InvalidLocation => P::InvalidLocation,
        RejectReason::InvalidAccuracy => P::InvalidAccuracy,
        RejectReason::InvalidMotion => P::InvalidMotion,
        RejectReason::FixTimeMissing => P::FixTimeMissing,
        RejectReason::FixTimeInFuture => P::FixTimeInFuture,
        RejectReason::FixTimeTooOld => P::FixTimeTooOld,
        RejectReason::SequenceInvalid => P::SequenceInvalid,
        RejectReason::SequenceConflict => P::SequenceConflict,
    }
}

pub fn ack(ack: BatchAck) -> pb::PositionAck {
    pb::PositionAck {
        highest_persisted_sequence: ack.highest_persisted_sequence,
        rejected: ack
            .rejected
            .into_iter()
            .map(|(sequence, reason)| pb::RejectedPosition {
                sequence,
                reason: reject_reason(reason).into(),
            })
            .collect(),
        accepted_count: ack.accepted_count,
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Store(cause) => {
                tracing::warn!(error = %cause, "positions not stored");
                ApiError::Unavailable
            }
            IngestError::Stopped => ApiError::Unavailable,
        }
    }
}

/// PERMISSION_DENIED unless the caller is an agent (positions are an agent's own) or the
/// admin, the two roles holding `geo.positions.report` (the admin, to try a phone out).
pub fn require_agent(caller: &Caller) -> Result<(), ApiError> {
    if matches!(caller.role, Role::Agent | Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::permission_missing(
            crate::auth::rbac::Permission::GeoPositionsReport,
        ))
    }
}

/// INVALID_ARGUMENT (TOO_MANY_POSITIONS) above [`MAX_BATCH`] positions.
pub fn check_batch_size(field: &str, count: usize) -> Result<(), ApiError> {
    if count > MAX_BATCH {
        return Err(ApiError::invalid_with_reason(
            field,
            pb::ErrorReason::TooManyPositions,
            format!("at most {MAX_BATCH} positions per batch"),
        ));
    }
    Ok(())
}

pub(super) async fn report_positions(
    state: &AppState,
    request: &Request<pb::ReportPositionsRequest>,
) -> Result<pb::ReportPositionsResponse, ApiError> {
    let caller = Caller::of(request)?;
    require_agent(caller)?;
    let message = request.get_ref();
    if message.positions.is_empty() {
        return Err(ApiError::invalid("positions", "at least one position"));
    }
    check_batch_size("positions", message.positions.len())?;
    let raw: Vec<RawPosition> = message.positions.iter().map(raw_position).collect();
    let answer = state
        .ingest
        .submit(caller.user_id, &raw, Utc::now())
        .await?;
    state.live.seen(caller.user_id, Utc::now());
    Ok(pb::ReportPositionsResponse {
        ack: Some(ack(answer)),
    })
}

/// The watcher filter of `caller` with the request's filters; bad fields all reported.
pub fn watch_filter(
    caller: &Caller,
    site_ids: &[String],
    agent_ids: &[String],
    bounds: Option<&pb::BoundingBox>,
    online_only: bool,
) -> Result<WatchFilter, ApiError> {
    let mut v = Violations::new();
    let sites = v.absorb(parse::ids("site_ids", site_ids, FILTER_IDS_MAX));
    let agents = v.absorb(parse::ids("agent_ids", agent_ids, FILTER_IDS_MAX));
    let bounds = match bounds {
        None => Some(None),
        Some(b) => {
            let south_west = v.absorb(location("bounds.south_west", b.south_west.as_ref()));
            let north_east = v.absorb(location("bounds.north_east", b.north_east.as_ref()));
            match (south_west, north_east) {
                (Some(sw), Some(ne)) => v.check("bounds", GeoBox::new(sw, ne)).map(Some),
                _ => None,
            }
        }
    };
    v.into_result()?;
    Ok(WatchFilter {
        scope: caller.scope(),
        site_ids: sites.unwrap_or_default(),
        agent_ids: agents.unwrap_or_default(),
        bounds: bounds.flatten(),
        online_only,
    })
}

#[allow(clippy::cast_possible_truncation)] // float4 columns back to proto doubles
pub fn agent_location(state: &AgentState) -> pb::AgentLocation {
    let last = &state.last;
    let f = |v: Option<f32>| v.map(f64::from);
    pb::AgentLocation {
        agent: Some(parse::user_ref(state.info.id, &state.info.full_name)),
        site_ids: state.info.site_ids.iter().map(Uuid::to_string).collect(),
        position: Some(pb::AgentPosition {
            sequence: u64::try_from(last.sequence).unwrap_or(0),
            location: Some(pb::LatLng {
                latitude: last.latitude,
                longitude: last.longitude,
            }),
            accuracy_m: f(last.accuracy_m).unwrap_or(0.0),
            speed_mps: f(last.speed_mps),
            heading_deg: f(last.heading_deg),
            altitude_m: f(last.altitude_m),
            battery_percent: last.battery_percent.map(i32::from),
            is_mock_location: last.is_mock_location,
            fix_time: Some(timestamp(last.fix_time)),
        }),
        received_at: Some(timestamp(last.received_at)),
        presence: if state.online {
            pb::AgentPresence::Online
        } else {
            pb::AgentPresence::Offline
        }
        .into(),
        last_seen_time: Some(timestamp(state.last_seen)),
        current_mission_id: state
            .current_mission
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

pub(super) fn list_agent_positions(
    state: &AppState,
    request: &Request<pb::ListAgentPositionsRequest>,
) -> Result<pb::ListAgentPositionsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let filter = watch_filter(
        caller,
        &message.site_ids,
        &message.agent_ids,
        message.bounds.as_ref(),
        message.online_only,
    )?;
    let size = usize::try_from(page_size(message.page_size, 500, 1_000)?).unwrap_or(500);
    let pager = Pager::new(&("agent_positions", &filter));
    let start = pager
        .position(&message.page_token, |parts: &mut Parts<'_>| {
            parts.parse::<usize>()
        })?
        .unwrap_or(0);
    let all = state.live.snapshot(&filter);
    let end = (start + size).min(all.len());
    let agents = all.get(start..end).unwrap_or_default();
    Ok(pb::ListAgentPositionsResponse {
        agents: agents.iter().map(agent_location).collect(),
        next_page_token: if end < all.len() {
            pager.token(&[&end])
        } else {
            String::new()
        },
    })
}
