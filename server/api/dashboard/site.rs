//! GetSite: one site's page (overview, aging, top debtors, agents, 12-month trend, pending
//! promises), computed by `app::dashboard::site` and mapped once.
//!
//! Decisions:
//! - `site_id`: required, a UUID (INVALID_ARGUMENT on `site_id` otherwise); an unknown site is
//!   NOT_FOUND, a site outside the caller's scope PERMISSION_DENIED (as GetTenant).
//! - `top_debtor_count`: 0 means 10; 1..=50 as asked; anything else is INVALID_ARGUMENT on
//!   `top_debtor_count`.
//! - Top debtors are tenant cards, as CollectionsService's GetTenant shows them.
//! - Open alerts: 0 while no alert rule stores alerts (as ListSites).
//! - Each agent's presence is read from the live hub when the answer is sent ([`answer`]),
//!   cached page or not: it changes by the minute and no write announces it.

use chrono::Utc;
use tonic::Request;

use super::sites::overview;
use super::summary::{aging, aging_buckets, missions};
use crate::api::collections::views::activity;
use crate::api::convert::{self, timestamp};
use crate::api::error::ApiError;
use crate::api::parse::{month_proto, user_ref};
use crate::api::views::card;
use crate::app::dashboard::{self as app, TOP_DEBTORS_DEFAULT, TOP_DEBTORS_MAX};
use crate::auth::caller::Caller;
use crate::proto::v1 as pb;
use crate::state::AppState;

/// The number of top debtors a request asks for.
fn top_debtor_count(value: i32) -> Result<i64, ApiError> {
    match i64::from(value) {
        0 => Ok(TOP_DEBTORS_DEFAULT),
        n if (1..=TOP_DEBTORS_MAX).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "top_debtor_count",
            format!("must be between 1 and {TOP_DEBTORS_MAX} (0: {TOP_DEBTORS_DEFAULT})"),
        )),
    }
}

/// The site id of a request: required, a UUID.
pub(super) fn site_id(value: &str) -> Result<uuid::Uuid, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid("site_id", "is required"));
    }
    convert::uuid("site_id", value)
}

/// The answer of a site page, cached or just computed: each agent's presence as the live hub
/// has it now.
pub(super) fn answer(state: &AppState, mut page: pb::GetSiteResponse) -> pb::GetSiteResponse {
    for agent in &mut page.agents {
        let online = agent
            .agent
            .as_ref()
            .and_then(|a| a.user_id.parse::<uuid::Uuid>().ok())
            .is_some_and(|id| app::agents_online(&state.live, &[id]) > 0);
        agent.presence = presence(online).into();
    }
    page
}

fn presence(online: bool) -> pb::AgentPresence {
    if online {
        pb::AgentPresence::Online
    } else {
        pb::AgentPresence::Offline
    }
}

pub(super) async fn get_site(
    state: &AppState,
    request: &Request<pb::GetSiteRequest>,
) -> Result<pb::GetSiteResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let site_id = site_id(&message.site_id)?;
    let count = top_debtor_count(message.top_debtor_count)?;
    let buckets = aging_buckets(state)?;
    let now = Utc::now();
    let page = app::site(
        &state.pool,
        &state.live,
        caller,
        site_id,
        count,
        now,
        &buckets,
    )
    .await?;
    let figures = &page.overview.figures;
    Ok(pb::GetSiteResponse {
        overview: Some(overview(&page.overview)),
        aging: aging(&figures.arrears.aging),
        top_debtors: page.top_debtors.iter().map(card).collect(),
        agents: page
            .agents
            .iter()
            .map(|a| pb::SiteAgent {
                agent: Some(user_ref(a.agent_id, &a.full_name)),
                presence: presence(a.online).into(),
                today: Some(activity(&a.today)),
                missions_today: Some(missions(&a.missions_today)),
            })
            .collect(),
        trend: page
            .trend
            .iter()
            .map(|p| pb::MonthlyTrendPoint {
                month: Some(month_proto(p.month)),
                due_gnf: p.due_gnf,
                collected_gnf: p.collected_gnf,
                collection_rate: p.collection_rate(),
                arrears_end_gnf: p.arrears_end_gnf,
                punctuality_rate: p.punctuality.rate(),
            })
            .collect(),
        promises_pending_count: figures.promises.pending_count,
        compute_time: Some(timestamp(now)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_debtor_count_bounds() {
        assert_eq!(top_debtor_count(0).ok(), Some(10));
        assert_eq!(top_debtor_count(1).ok(), Some(1));
        assert_eq!(top_debtor_count(50).ok(), Some(50));
        assert!(top_debtor_count(51).is_err());
        assert!(top_debtor_count(-1).is_err());
        assert!(site_id(" ").is_err());
        assert!(site_id("KAL").is_err());
    }
}
