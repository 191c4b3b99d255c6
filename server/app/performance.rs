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
use crate::store::begin_read;
use crate::store::missions as mission_store;
use crate::store::scores::{self as store, AgentFigures, DayFigures, RankedAgents};

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
