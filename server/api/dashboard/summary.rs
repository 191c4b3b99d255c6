//! GetSummary: the caller's key figures (arrears and aging, money due and collected today and
//! this month, collection and punctuality rates, promises, agents online, today's missions),
//! computed by `app::dashboard::summary` and mapped once.
//!
//! Decisions:
//! - `site_ids` outside the caller's scope are left out (nothing in scope: every figure 0).
//! - Agents active now: counted from the live hub when the answer is sent, cached or not (the
//!   cache keeps the agents counted in `agents_total_count` beside the answer); every other
//!   figure is as of `compute_time`.
//! - Critical alerts: the unresolved ones (open or acknowledged), as ListAlerts lists them by
//!   default; the alert job moves the cache versions of the sites whose alerts it changes.

use chrono::Utc;
use tonic::Request;
use uuid::Uuid;

use crate::api::convert::timestamp;
use crate::api::error::ApiError;
use crate::api::parse;
use crate::api::views::bucket as bucket_proto;
use crate::app::dashboard as app;
use crate::auth::caller::Caller;
use crate::domain::aging::AgingBuckets;
use crate::domain::arrears::AgingLine;
use crate::domain::dashboard::MissionCounts;
use crate::proto::v1 as pb;
use crate::state::AppState;

const SITE_IDS_MAX: usize = 200;

/// The configured aging bounds.
pub(super) fn aging_buckets(state: &AppState) -> Result<AgingBuckets, ApiError> {
    AgingBuckets::parse(&state.collections.aging_bounds).map_err(ApiError::internal)
}

/// The four aging lines on the wire.
pub(super) fn aging(lines: &[AgingLine]) -> Vec<pb::AgingBucketTotal> {
    lines
        .iter()
        .map(|line| pb::AgingBucketTotal {
            bucket: bucket_proto(Some(line.bucket)).into(),
            outstanding_gnf: line.outstanding,
            charge_count: line.charge_count,
            tenant_count: line.tenant_count,
        })
        .collect()
}

/// Mission counts on the wire.
pub(super) fn missions(m: &MissionCounts) -> pb::MissionFigures {
    pb::MissionFigures {
        planned_count: m.planned,
        in_progress_count: m.in_progress,
        done_count: m.done,
        failed_count: m.failed,
        cancelled_count: m.cancelled,
    }
}

/// What the read cache keeps of a summary: the answer, and the agents its `agents_total`
/// counts (16 bytes each, sorted), whose presence [`answer`] re-counts when the answer is
/// sent.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SummaryEntry {
    #[prost(message, optional, tag = "1")]
    pub response: Option<pb::GetSummaryResponse>,
    #[prost(bytes = "vec", tag = "2")]
    pub agent_ids: Vec<u8>,
}

/// The answer of a summary entry, cached or not: "agents active now" counted from the live
/// hub at this moment among the entry's agents.
pub(super) fn answer(state: &AppState, entry: SummaryEntry) -> pb::GetSummaryResponse {
    let agent_ids: Vec<Uuid> = entry
        .agent_ids
        .chunks_exact(16)
        .filter_map(|bytes| Uuid::from_slice(bytes).ok())
        .collect();
    let mut response = entry.response.unwrap_or_default();
    response.agents_active_count = app::agents_online(&state.live, &agent_ids);
    response
}

pub(super) async fn get_summary(
    state: &AppState,
    request: &Request<pb::GetSummaryRequest>,
) -> Result<SummaryEntry, ApiError> {
    let caller = Caller::of(request)?;
    let sites = parse::ids("site_ids", &request.get_ref().site_ids, SITE_IDS_MAX)?;
    let buckets = aging_buckets(state)?;
    let now = Utc::now();
    let answer = app::summary(
        &state.pool,
        &state.live,
        &caller.scope(),
        &sites,
        now,
        &buckets,
    )
    .await?;
    let agent_ids = answer.agent_ids.iter().flat_map(Uuid::as_bytes).copied();
    let s = answer.figures;
    let response = pb::GetSummaryResponse {
        arrears_gnf: s.arrears.arrears_gnf,
        tenants_in_arrears_count: s.arrears.tenants_in_arrears,
        aging: aging(&s.arrears.aging),
        collected_today_gnf: s.collected_today_gnf,
        due_today_gnf: s.due_today_gnf,
        collected_month_gnf: s.collected_month_gnf,
        due_month_gnf: s.due_month_gnf,
        collection_rate: s.collection_rate,
        promises_pending_count: s.promises.pending_count,
        promises_pending_gnf: s.promises.pending_gnf,
        promises_kept_count: s.promises.kept_count,
        promises_broken_count: s.promises.broken_count,
        punctuality_rate: s.punctuality.rate(),
        agents_active_count: s.agents_active,
        agents_total_count: s.agents_total,
        missions_today: Some(missions(&s.missions_today)),
        critical_alerts_count: s.alerts.critical,
        compute_time: Some(timestamp(now)),
    };
    Ok(SummaryEntry {
        response: Some(response),
        agent_ids: agent_ids.collect(),
    })
}
