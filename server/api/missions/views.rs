//! Missions on the wire: rows of `store::missions` with their tenant's card, the enums both
//! ways, and the answer of GenerateMissions.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgConnection;

use crate::api::convert::timestamp;
use crate::api::error::ApiError;
use crate::api::parse::{date_proto, id_or_empty, today, user_ref};
use crate::api::views::card;
use crate::app::missions::Generated;
use crate::domain::priority::MissionReason;
use crate::domain::{AgingBuckets, ArrivalSource, FailureReason, InteractionKind, MissionStatus};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::missions::MissionRow;

/// The configured aging buckets (tenant cards show them).
pub fn aging(state: &AppState) -> Result<AgingBuckets, ApiError> {
    AgingBuckets::parse(&state.collections.aging_bounds).map_err(ApiError::internal)
}

/// Seconds as a protobuf duration.
pub fn duration(secs: f64) -> prost_types::Duration {
    let d = Duration::from_secs_f64(secs.max(0.0));
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A status from the wire: `Some(None)` for UNSPECIFIED, `None` for an unknown value.
pub fn status(value: i32) -> Option<Option<MissionStatus>> {
    Some(match pb::MissionStatus::try_from(value).ok()? {
        pb::MissionStatus::Unspecified => None,
        pb::MissionStatus::Planned => Some(MissionStatus::Planned),
        pb::MissionStatus::InProgress => Some(MissionStatus::InProgress),
        pb::MissionStatus::Done => Some(MissionStatus::Done),
        pb::MissionStatus::Failed => Some(MissionStatus::Failed),
        pb::MissionStatus::Cancelled => Some(MissionStatus::Cancelled),
    })
}

fn status_proto(value: MissionStatus) -> pb::MissionStatus {
    match value {
        MissionStatus::Planned => pb::MissionStatus::Planned,
        MissionStatus::InProgress => pb::MissionStatus::InProgress,
        MissionStatus::Done => pb::MissionStatus::Done,
        MissionStatus::Failed => pb::MissionStatus::Failed,
        MissionStatus::Cancelled => pb::MissionStatus::Cancelled,
    }
}

impl From<FailureReason> for pb::MissionFailureReason {
    fn from(reason: FailureReason) -> Self {
        match reason {
            FailureReason::TenantAbsent => pb::MissionFailureReason::TenantAbsent,
            FailureReason::Refused => pb::MissionFailureReason::Refused,
            FailureReason::TenantMoved => pb::MissionFailureReason::TenantMoved,
            FailureReason::AddressNotFound => pb::MissionFailureReason::AddressNotFound,
            FailureReason::Unsafe => pb::MissionFailureReason::Unsafe,
            FailureReason::NoTime => pb::MissionFailureReason::NoTime,
            FailureReason::Other => pb::MissionFailureReason::Other,
        }
    }
}

impl From<ArrivalSource> for pb::ArrivalSource {
    fn from(source: ArrivalSource) -> Self {
        match source {
            ArrivalSource::Geofence => pb::ArrivalSource::Geofence,
            ArrivalSource::Declared => pb::ArrivalSource::Declared,
        }
    }
}

/// A failure reason from the wire: `Some(None)` for UNSPECIFIED (clears it), `None` for an
/// unknown value.
pub fn failure_reason(value: i32) -> Option<Option<FailureReason>> {
    if value == pb::MissionFailureReason::Unspecified as i32 {
        return Some(None);
    }
    FailureReason::ALL
        .iter()
        .find(|&&reason| pb::MissionFailureReason::from(reason) as i32 == value)
        .map(|&reason| Some(reason))
}

fn reason_proto(value: &str) -> pb::MissionReason {
    match MissionReason::parse(value) {
        Some(MissionReason::Arrears) => pb::MissionReason::Arrears,
        Some(MissionReason::PromiseDue) => pb::MissionReason::PromiseDue,
        Some(MissionReason::PromiseBroken) => pb::MissionReason::PromiseBroken,
        Some(MissionReason::NoRecentContact) => pb::MissionReason::NoRecentContact,
        None => pb::MissionReason::Unspecified,
    }
}

/// The missions with their tenants' cards (one read for all), in the rows' order.
pub async fn missions(
    conn: &mut PgConnection,
    rows: &[MissionRow],
    aging: &AgingBuckets,
) -> Result<Vec<pb::Mission>, ApiError> {
    let mut ids: Vec<_> = rows.iter().map(|m| m.tenant_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let cards: HashMap<_, _> = crate::app::tenants::cards(conn, &ids, today(), aging)
        .await?
        .into_iter()
        .map(|c| (c.row.id, card(&c)))
        .collect();
    Ok(rows
        .iter()
        .map(|m| mission(m, cards.get(&m.tenant_id).cloned()))
        .collect())
}

/// One mission.
pub fn mission(m: &MissionRow, tenant: Option<pb::Tenant>) -> pb::Mission {
    let (visit_id, call_id) = match m.closing_interaction_kind {
        Some(InteractionKind::Visit) => (m.closing_interaction_id, None),
        Some(InteractionKind::Call) => (None, m.closing_interaction_id),
        None => (None, None),
    };
    pb::Mission {
        mission_id: if m.id.is_nil() {
            String::new()
        } else {
            m.id.to_string()
        },
        mission_date: Some(date_proto(m.mission_date)),
        agent_id: m.agent_id.to_string(),
        agent_name: m.agent_name.clone(),
        tenant,
        priority: m.priority,
        reasons: m.reasons.iter().map(|r| reason_proto(r) as i32).collect(),
        route_order: m.route_order.unwrap_or(0),
        distance_from_previous_m: m.estimated_distance_m.unwrap_or(0.0),
        travel_duration_from_previous: m.estimated_travel_secs.map(duration),
        status: status_proto(m.status) as i32,
        failure_reason: m
            .failure_reason
            .map_or(pb::MissionFailureReason::Unspecified, Into::into)
            as i32,
        status_note: m.status_note.clone().unwrap_or_default(),
        arrival_time: m.arrived_at.map(timestamp),
        arrival_source: m
            .arrival_source
            .map_or(pb::ArrivalSource::Unspecified, Into::into) as i32,
        start_time: m.started_at.map(timestamp),
        end_time: m.finished_at.map(timestamp),
        visit_id: id_or_empty(visit_id),
        call_id: id_or_empty(call_id),
        payment_id: id_or_empty(m.closing_payment_id),
        update_time: (!m.id.is_nil()).then(|| timestamp(m.updated_at)),
    }
}

/// GenerateMissions' answer.
pub fn generated(g: &Generated, missions: Vec<pb::Mission>) -> pb::GenerateMissionsResponse {
    pb::GenerateMissionsResponse {
        mission_date: Some(date_proto(g.day)),
        dry_run: g.dry_run,
        missions,
        agents: g
            .agents
            .iter()
            .map(|a| pb::AgentPlanSummary {
                agent: Some(user_ref(a.agent_id, &a.agent_name)),
                mission_count: a.mission_count,
                total_distance_m: a.distance_m,
                total_travel_duration: Some(duration(a.travel_secs)),
                outstanding_gnf: a.outstanding_gnf,
            })
            .collect(),
        candidate_count: g.candidate_count,
        created_count: g.created_count,
        replaced_count: g.replaced_count,
        kept_count: g.kept_count,
        unassigned_count: g.unassigned_count,
    }
}

/// Activity figures from an agent's daily counters (the counters hold no far-away visits,
/// promised amounts or reversal counts: those stay 0 here).
pub fn counters_activity(
    calls: i64,
    visits: i64,
    refusals: i64,
    promises: i64,
    payments: i64,
    collected_gnf: i64,
    score: i64,
) -> pb::ActivityFigures {
    pb::ActivityFigures {
        call_count: calls,
        visit_count: visits,
        refusal_count: refusals,
        promise_count: promises,
        payment_count: payments,
        collected_gnf,
        score_points: score,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_and_arrival_sources_map_one_to_one_with_the_wire() {
        let mut seen = std::collections::HashSet::new();
        for &reason in FailureReason::ALL {
            let wire = pb::MissionFailureReason::from(reason);
            assert_ne!(wire, pb::MissionFailureReason::Unspecified, "{reason}");
            assert!(seen.insert(wire), "{reason} shares {wire:?}");
            assert_eq!(failure_reason(wire as i32), Some(Some(reason)));
        }
        assert_eq!(
            failure_reason(pb::MissionFailureReason::Unspecified as i32),
            Some(None)
        );
        assert_eq!(failure_reason(999), None);
        let sources: Vec<_> = ArrivalSource::ALL
            .iter()
            .map(|&source| pb::ArrivalSource::from(source))
            .collect();
        assert_eq!(
            sources,
            [pb::ArrivalSource::Geofence, pb::ArrivalSource::Declared]
        );
    }
}
