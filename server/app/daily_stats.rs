//! The daily figures of a day (GetDailyStats): who and what the caller may see, read in one
//! snapshot, summed by the domain (`domain::daily`).
//!
//! Decisions:
//! - A row (call, visit, promise, payment, reversal, score event) counts when its tenant's site
//!   is listed and, when agents are named (always, for an agent: only themself), when one of
//!   them did it. A reversal counts against the agent who collected the reversed payment, on
//!   the day of the reversal. The amount due at the start of the day is, per charge due by
//!   then, its amount minus the allocations of the payments and reversals that occurred before
//!   the day; tenant credit is not deducted (`store::stats`).
//! - The figures leave out what is outside the caller's scope, silently: a `site_ids` filter
//!   naming other sites just finds nothing there.
//! - Agent lines: a director, accountant or admin sees every agent (of the requested sites); a
//!   site manager the agents covering their sites; a supervisor their team; an agent only
//!   themself.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::tenants::day_after;
use super::{AppError, sites_in_scope};
use crate::auth::caller::{Caller, Scope};
use crate::domain::conakry_day_start;
use crate::domain::daily::{self, DailyFigures};
use crate::store::{agents, begin_read, sites, stats};

/// Who and what a caller's daily figures cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsPlan {
    /// Sites whose tenants' rows count; `None`: every site.
    pub sites: Option<Vec<Uuid>>,
    /// Only rows by these users; `None`: anyone.
    pub actors: Option<Vec<Uuid>>,
    /// Agent lines: only agents covering one of these sites.
    pub agents_covering: Option<Vec<Uuid>>,
    /// Agent lines: only the agents of this supervisor.
    pub supervisor_id: Option<Uuid>,
}

impl StatsPlan {
    /// The plan of `caller` asking for `site_filter` and `agent_filter` (empty: all).
    pub fn new(caller: &Caller, site_filter: &[Uuid], agent_filter: &[Uuid]) -> Self {
        let requested_sites = (!site_filter.is_empty()).then_some(site_filter);
        let requested_agents = (!agent_filter.is_empty()).then(|| agent_filter.to_vec());
        let scope = caller.scope();
        // `None` from the intersection: nothing can match, shown as an empty site list.
        let sites = sites_in_scope(&scope, requested_sites).unwrap_or(Some(Vec::new()));
        match scope {
            Scope::Company => Self {
                agents_covering: requested_sites.map(<[Uuid]>::to_vec),
                sites,
                actors: requested_agents,
                supervisor_id: None,
            },
            Scope::Sites(_) => Self {
                agents_covering: Some(sites.clone().unwrap_or_default()),
                sites,
                actors: requested_agents,
                supervisor_id: None,
            },
            Scope::Team { supervisor_id, .. } => Self {
                agents_covering: requested_sites.map(|_| sites.clone().unwrap_or_default()),
                sites,
                actors: requested_agents,
                supervisor_id: Some(supervisor_id),
            },
            Scope::Own { agent_id, .. } => Self {
                sites,
                actors: Some(match requested_agents {
                    Some(ids) if !ids.contains(&agent_id) => Vec::new(),
                    _ => vec![agent_id],
                }),
                agents_covering: None,
                supervisor_id: None,
            },
        }
    }
}

/// The figures of `day` as `plan` covers them.
pub async fn figures(
    pool: &PgPool,
    plan: &StatsPlan,
    day: NaiveDate,
) -> Result<DailyFigures, AppError> {
    let mut tx = begin_read(pool).await?;
    figures_in(&mut tx, plan, day).await
}

/// [`figures`] read on `conn` (a read snapshot shared with other reads).
pub async fn figures_in(
    conn: &mut PgConnection,
    plan: &StatsPlan,
    day: NaiveDate,
) -> Result<DailyFigures, AppError> {
    let start = conakry_day_start(day);
    let end = conakry_day_start(day_after(day));
    let sites_in = plan.sites.as_deref();

    let tx = conn;
    let sites = sites::names(&mut *tx, sites_in).await?;
    let agents = agents::list(
        &mut *tx,
        &agents::AgentFilter {
            covering: plan.agents_covering.as_deref(),
            supervisor_id: plan.supervisor_id,
            agent_ids: plan.actors.as_deref(),
        },
    )
    .await?;
    let activity = stats::activity(
        &mut *tx,
        &stats::DayFilter {
            day,
            start,
            end,
            site_ids: sites_in,
            actor_ids: plan.actors.as_deref(),
        },
    )
    .await?;
    let due = stats::due_by_site(&mut *tx, day, start, sites_in).await?;

    let sites: Vec<daily::Site> = sites
        .into_iter()
        .map(|site| daily::Site {
            id: site.id,
            name: site.name,
        })
        .collect();
    let agents: Vec<daily::Agent> = agents
        .into_iter()
        .map(|agent| daily::Agent {
            id: agent.id,
            full_name: agent.full_name,
            disabled: agent.disabled,
            site_ids: agent.site_ids,
        })
        .collect();
    Ok(daily::daily_figures(&sites, &agents, &activity, &due)?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::auth::rbac::Role;

    pub(super) fn caller(role: Role, sites: &[Uuid]) -> Caller {
        Caller {
            user_id: Uuid::from_u128(100),
            role,
            session_id: Uuid::from_u128(101),
            permissions: Arc::new(HashSet::new()),
            site_ids: sites.into(),
            client_ip: None,
            token_expires_at: 0,
            token_version: 0,
        }
    }

    #[test]
    fn scope_intersection() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let company = caller(Role::Director, &[]).scope();
        assert_eq!(sites_in_scope(&company, None), Some(None));
        assert_eq!(sites_in_scope(&company, Some(&[c])), Some(Some(vec![c])));
        let agent = caller(Role::Agent, &[a, b]).scope();
        assert_eq!(sites_in_scope(&agent, None), Some(Some(vec![a, b])));
        assert_eq!(sites_in_scope(&agent, Some(&[b, c])), Some(Some(vec![b])));
        assert_eq!(sites_in_scope(&agent, Some(&[c])), None);
        let nobody = caller(Role::SiteManager, &[]).scope();
        assert_eq!(sites_in_scope(&nobody, None), None);
    }

    #[test]
    fn stats_plan_per_role() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let me = Uuid::from_u128(100);
        let agent = StatsPlan::new(&caller(Role::Agent, &[a]), &[], &[]);
        assert_eq!(agent.actors, Some(vec![me]));
        assert_eq!(agent.sites, Some(vec![a]));
        let other = StatsPlan::new(&caller(Role::Agent, &[a]), &[], &[Uuid::from_u128(7)]);
        assert_eq!(other.actors, Some(vec![]));
        let manager = StatsPlan::new(&caller(Role::SiteManager, &[a]), &[b], &[]);
        assert_eq!(manager.sites, Some(vec![]));
        assert_eq!(manager.agents_covering, Some(vec![]));
        let supervisor = StatsPlan::new(&caller(Role::Supervisor, &[a]), &[], &[]);
        assert_eq!(supervisor.supervisor_id, Some(me));
        assert_eq!(supervisor.agents_covering, None);
        let director = StatsPlan::new(&caller(Role::Director, &[]), &[], &[]);
        assert_eq!(
            director,
            StatsPlan {
                sites: None,
                actors: None,
                agents_covering: None,
                supervisor_id: None
            }
        );
    }
}
