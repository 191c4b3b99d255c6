//! Agent performance: daily and monthly rankings and the daily history, all read from the
//! daily figures written with each action (`store::scores`).
//!
//! Decisions:
//! - A ranking covers the active agents in the caller's scope (company, the site manager's
//!   sites, the supervisor's team, an agent's own sites), narrowed by the sites or supervisor
//!   asked. Agents without activity rank with zero points, so a ranking always shows everyone.
//! - RANK() semantics: ties share a rank and the next rank is skipped (1, 1, 3). Inside a tie
//!   the order is fixed: amount collected (higher first), then name, then agent id.
//! - The top holds the first `top` entries plus any entry tied with the last of them.
//! - Medals by rank: 1 gold, 2 silver, 3 bronze (so every agent tied for first gets gold).

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use super::AppError;
use super::missions::ensure_agent_visible;
use crate::auth::caller::{Caller, Scope};
use crate::domain::ledger;
use crate::domain::performance::PromiseOutcomes;
use crate::store::begin_read;
use crate::store::missions as mission_store;
use crate::store::payments as payment_store;
use crate::store::scores::{self as store, AgentFigures, DayFigures, PeriodFacts, RankedAgents};

/// Medal of a rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medal {
    Gold,
    Silver,
    Bronze,
    None,
}

/// The medal of `rank` (1-based).
pub fn medal(rank: i64) -> Medal {
    match rank {
        1 => Medal::Gold,
        2 => Medal::Silver,
        3 => Medal::Bronze,
        _ => Medal::None,
    }
}

/// The first `top` of `ranked` (in ranking order), plus those tied with the last of them.
pub fn top_with_ties(ranked: &[AgentFigures], top: usize) -> &[AgentFigures] {
    let Some(last) = ranked.get(top.saturating_sub(1)) else {
        return ranked;
    };
    let end = ranked
        .iter()
        .position(|f| f.rank > last.rank)
        .unwrap_or(ranked.len());
    &ranked[..end.max(top.min(ranked.len()))]
}

/// A ranking.
#[derive(Debug, Clone)]
pub struct Ranking {
    pub entries: Vec<AgentFigures>,
    pub caller_entry: Option<AgentFigures>,
    pub ranked_count: i64,
}

/// What a ranking asks.
#[derive(Debug, Clone, Default)]
pub struct RankingQuery {
    pub site_ids: Option<Vec<Uuid>>,
    pub supervisor_id: Option<Uuid>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub top: usize,
}

/// GetDailyRanking / GetMonthlyRanking's use case.
pub async fn ranking(
    pool: &PgPool,
    caller: &Caller,
    query: &RankingQuery,
) -> Result<Ranking, AppError> {
    let scope = caller.scope();
    let mut agents = RankedAgents {
        site_ids: query.site_ids.clone(),
        supervisor_id: query.supervisor_id,
    };
    match &scope {
        Scope::Company => {}
        Scope::Sites(_) | Scope::Own { .. } => {
            agents.site_ids = Some(
                super::sites_in_scope(&scope, query.site_ids.as_deref())
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        Scope::Team { supervisor_id, .. } => {
            if query
                .supervisor_id
                .is_some_and(|asked| asked != *supervisor_id)
            {
                return Err(AppError::OutOfScope(
                    "another supervisor's team is outside your scope",
                ));
            }
            agents.supervisor_id = Some(*supervisor_id);
        }
    }
    let mut tx = begin_read(pool).await?;
    let ranked = store::ranking(&mut tx, &agents, query.from, query.to).await?;
    let entries = top_with_ties(&ranked, query.top).to_vec();
    let caller_entry = ranked
        .iter()
        .find(|f| f.agent_id == caller.user_id)
        .cloned();
    Ok(Ranking {
        entries,
        caller_entry,
        ranked_count: ranked.len() as i64,
    })
}

/// GetPerformanceHistory's use case: every agent must be visible to the caller.
pub async fn history(
    pool: &PgPool,
    caller: &Caller,
    agent_ids: &[Uuid],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(Uuid, String, Vec<DayFigures>)>, AppError> {
    let mut tx = begin_read(pool).await?;
    let mut names = Vec::with_capacity(agent_ids.len());
    for &agent_id in agent_ids {
        let account = mission_store::agent_account(&mut tx, agent_id)
            .await?
            .ok_or(AppError::NotFound("agent"))?;
        ensure_agent_visible(caller, agent_id, account.supervisor_id, &account.site_ids)?;
        names.push(account.full_name);
    }
    let rows = store::daily_series(&mut tx, agent_ids, from, to).await?;
    Ok(agent_ids
        .iter()
        .zip(names)
        .map(|(&id, name)| {
            let points = rows.iter().filter(|r| r.agent_id == id).cloned().collect();
            (id, name, points)
        })
        .collect())
}

/// An agent's performance over a period (GetAgentPerformance).
#[derive(Debug, Clone)]
pub struct AgentPerformance {
    pub agent_id: Uuid,
    pub full_name: String,
    /// The daily rows of the period summed (`day` is the period's first day).
    pub totals: DayFigures,
    pub facts: PeriodFacts,
    pub promises: PromiseOutcomes,
    /// Arrears (GNF) at the end of the day before the period of the tenants of the agent's
    /// missions in the period: the replayed ledger of each (`domain::ledger::as_of`).
    pub assigned_arrears_gnf: i64,
}

/// GetAgentPerformance's use case: the agent must be visible to the caller; one read snapshot.
///
/// Errors: NotFound when `agent_id` is not an agent, OutOfScope outside the caller's scope.
pub async fn agent_performance(
    pool: &PgPool,
    caller: &Caller,
    agent_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<AgentPerformance, AppError> {
    let mut tx = begin_read(pool).await?;
    let account = mission_store::agent_account(&mut tx, agent_id)
        .await?
        .ok_or(AppError::NotFound("agent"))?;
    ensure_agent_visible(caller, agent_id, account.supervisor_id, &account.site_ids)?;
    let days = store::daily_series(&mut tx, &[agent_id], from, to).await?;
    let totals = sum_days(agent_id, from, &days);
    let facts = store::period_facts(&mut tx, agent_id, from, to).await?;
    let before = from.pred_opt().unwrap_or(from);
    let mut assigned_arrears_gnf = 0_i64;
    for &tenant_id in &facts.mission_tenant_ids {
        let stored = payment_store::ledger(&mut tx, tenant_id).await?;
        let then = ledger::as_of(&stored.charges, &stored.payments, before)?;
        assigned_arrears_gnf = assigned_arrears_gnf
            .checked_add(then.outstanding_due_by(before).francs())
            .ok_or(crate::domain::MoneyOverflow)?;
    }
    Ok(AgentPerformance {
        agent_id,
        full_name: account.full_name,
        totals,
        promises: PromiseOutcomes {
            kept: facts.promises_kept,
            partially_kept: facts.promises_partially_kept,
            broken: facts.promises_broken,
        },
        facts,
        assigned_arrears_gnf,
    })
}

/// The rows of `days` summed into one (dated `from`).
fn sum_days(agent_id: Uuid, from: NaiveDate, days: &[DayFigures]) -> DayFigures {
    let mut sum = DayFigures {
        agent_id,
        day: from,
        ..DayFigures::default()
    };
    for d in days {
        sum.score += d.score;
        sum.calls += d.calls;
        sum.visits += d.visits;
        sum.promises += d.promises;
        sum.refusals += d.refusals;
        sum.payments_count += d.payments_count;
        sum.payments_gnf += d.payments_gnf;
        sum.missions_planned += d.missions_planned;
        sum.missions_in_progress += d.missions_in_progress;
        sum.missions_done += d.missions_done;
        sum.missions_failed += d.missions_failed;
        sum.missions_cancelled += d.missions_cancelled;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rank: i64) -> AgentFigures {
        AgentFigures {
            agent_id: Uuid::new_v4(),
            full_name: String::new(),
            site_ids: Vec::new(),
            score: 0,
            calls: 0,
            visits: 0,
            promises: 0,
            refusals: 0,
            payments_count: 0,
            payments_gnf: 0,
            rank,
        }
    }

    #[test]
    fn the_top_keeps_ties_with_its_last_entry() {
        let ranked: Vec<_> = [1, 1, 3, 4, 4, 4, 7].into_iter().map(figures).collect();
        let ranks = |top| {
            top_with_ties(&ranked, top)
                .iter()
                .map(|f| f.rank)
                .collect::<Vec<_>>()
        };
        assert_eq!(ranks(1), [1, 1]);
        assert_eq!(ranks(3), [1, 1, 3]);
        assert_eq!(ranks(4), [1, 1, 3, 4, 4, 4]);
        assert_eq!(ranks(10), [1, 1, 3, 4, 4, 4, 7]);
        assert!(top_with_ties(&[], 10).is_empty());
        assert_eq!(
            [1, 2, 3, 4].map(medal),
            [Medal::Gold, Medal::Silver, Medal::Bronze, Medal::None]
        );
    }
}
