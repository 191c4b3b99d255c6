//! GetDailyStats: the request parsed into a day and what the caller may see of it
//! (`app::daily_stats`), the figures shown by [`views`].
//!
//! Decisions:
//! - The day is today (Africa/Conakry) when not given, and never in the future.

use chrono::Utc;
use tonic::Request;

use super::views;
use crate::api::convert::timestamp;
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, today};
use crate::app::daily_stats::{self as app, StatsPlan};
use crate::auth::caller::Caller;
use crate::proto::v1 as pb;
use crate::state::AppState;

const IDS_MAX: usize = 200;

pub(super) async fn get_daily_stats(
    state: &AppState,
    request: &Request<pb::GetDailyStatsRequest>,
) -> Result<pb::GetDailyStatsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let today = today();
    let mut v = Violations::new();
    let day = match &message.date {
        Some(date) => v.absorb(parse::date("date", date)),
        None => Some(today),
    };
    if day.is_some_and(|day| day > today) {
        v.add("date", "must not be in the future");
    }
    let sites = v.absorb(parse::ids("site_ids", &message.site_ids, IDS_MAX));
    let agents = v.absorb(parse::ids("agent_ids", &message.agent_ids, IDS_MAX));
    v.into_result()?;
    let (Some(day), Some(sites), Some(agents)) = (day, sites, agents) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let plan = StatsPlan::new(caller, &sites, &agents);
    let figures = app::figures(&state.pool, &plan, day).await?;
    let (total, agents, sites) = views::daily(&figures);
    Ok(pb::GetDailyStatsResponse {
        date: Some(parse::date_proto(day)),
        total: Some(total),
        agents,
        sites,
        compute_time: Some(timestamp(Utc::now())),
    })
}
