//! GetAgentPerformance, GetDailyRanking, GetMonthlyRanking and GetPerformanceHistory over
//! `app::performance`.

use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use tonic::Request;
use uuid::Uuid;

use super::views::counters_activity as activity;
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, date_proto, month_proto, today, user_ref};
use crate::app::performance::{self as app, Medal, Ranking, RankingQuery};
use crate::auth::caller::Caller;
use crate::domain::performance::{assigned_collection_rate, mission_completion_rate};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::scores::AgentFigures;

const TOP_DEFAULT: usize = 10;
const HISTORY_DAYS_DEFAULT: u64 = 30;
const HISTORY_DAYS_MAX: i64 = 366;
const HISTORY_AGENTS_MAX: usize = 50;

fn scope_query(
    v: &mut Violations,
    scope: Option<&pb::RankingScope>,
    top_count: i32,
) -> (Option<Vec<Uuid>>, Option<Uuid>, usize) {
    let (sites, supervisor) = match scope {
        Some(scope) => (
            v.absorb(parse::ids("scope.site_ids", &scope.site_ids, 100))
                .filter(|ids| !ids.is_empty()),
            v.absorb(convert::optional_uuid(
                "scope.supervisor_id",
                &scope.supervisor_id,
            ))
            .flatten(),
        ),
        None => (None, None),
    };
    let top = match top_count {
        0 => TOP_DEFAULT,
        n @ 1..=100 => n as usize,
        _ => {
            v.add("top_count", "must be 1..100 (0: 10)");
            TOP_DEFAULT
        }
    };
    (sites, supervisor, top)
}

fn entry(figures: &AgentFigures) -> pb::RankingEntry {
    pb::RankingEntry {
        rank: i32::try_from(figures.rank).unwrap_or(i32::MAX),
        medal: match app::medal(figures.rank) {
            Medal::Gold => pb::Medal::Gold,
            Medal::Silver => pb::Medal::Silver,
            Medal::Bronze => pb::Medal::Bronze,
            Medal::None => pb::Medal::None,
        } as i32,
        agent: Some(user_ref(figures.agent_id, &figures.full_name)),
        site_ids: figures.site_ids.iter().map(Uuid::to_string).collect(),
        score_points: figures.score,
        activity: Some(activity(
            figures.calls,
            figures.visits,
            figures.refusals,
            figures.promises,
            figures.payments_count,
            figures.payments_gnf,
            figures.score,
        )),
    }
}

/// A ranking's entries, the caller's own entry and the number of agents ranked.
struct Ranked {
    entries: Vec<pb::RankingEntry>,
    caller_entry: Option<pb::RankingEntry>,
    ranked_count: i64,
}

/// Ranks the agents of `scope` (from [`scope_query`]) over `from..=to`.
async fn ranked(
    state: &AppState,
    caller: &Caller,
    (site_ids, supervisor_id, top): (Option<Vec<Uuid>>, Option<Uuid>, usize),
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Ranked, ApiError> {
    let ranking: Ranking = app::ranking(
        &state.pool,
        caller,
        &RankingQuery {
            site_ids,
            supervisor_id,
            from,
            to,
            top,
        },
    )
    .await?;
    Ok(Ranked {
        entries: ranking.entries.iter().map(entry).collect(),
        caller_entry: ranking.caller_entry.as_ref().map(entry),
        ranked_count: ranking.ranked_count,
    })
}

pub(super) async fn daily_ranking(
    state: &AppState,
    request: &Request<pb::GetDailyRankingRequest>,
) -> Result<pb::GetDailyRankingResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let day = match &message.date {
        Some(date) => v.absorb(parse::date("date", date)),
        None => Some(today()),
    };
    let scope = scope_query(&mut v, message.scope.as_ref(), message.top_count);
    v.into_result()?;
    let day = day.unwrap_or_else(today);
    let ranked = ranked(state, caller, scope, day, day).await?;
    Ok(pb::GetDailyRankingResponse {
        date: Some(date_proto(day)),
        entries: ranked.entries,
        caller_entry: ranked.caller_entry,
        ranked_agent_count: ranked.ranked_count,
        compute_time: Some(convert::timestamp(Utc::now())),
    })
}

pub(super) async fn monthly_ranking(
    state: &AppState,
    request: &Request<pb::GetMonthlyRankingRequest>,
) -> Result<pb::GetMonthlyRankingResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let first = match &message.month {
        Some(month) => {
            let first = u32::try_from(month.month)
                .ok()
                .and_then(|m| NaiveDate::from_ymd_opt(month.year, m, 1))
                .filter(|d| (2000..=2100).contains(&d.year()));
            if first.is_none() {
                v.add("month", "must be a month of 2000..2100");
            }
            first
        }
        None => today().with_day(1),
    };
    let scope = scope_query(&mut v, message.scope.as_ref(), message.top_count);
    v.into_result()?;
    let first = first.unwrap_or_else(today);
    let last = first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(first);
    let ranked = ranked(state, caller, scope, first, last).await?;
    Ok(pb::GetMonthlyRankingResponse {
        month: Some(month_proto(first)),
        entries: ranked.entries,
        caller_entry: ranked.caller_entry,
        ranked_agent_count: ranked.ranked_count,
        compute_time: Some(convert::timestamp(Utc::now())),
    })
}

pub(super) async fn history(
    state: &AppState,
    request: &Request<pb::GetPerformanceHistoryRequest>,
) -> Result<pb::GetPerformanceHistoryResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    if message.agent_ids.len() > HISTORY_AGENTS_MAX {
        v.absorb::<()>(Err(ApiError::invalid_with_reason(
            "agent_ids",
            pb::ErrorReason::RangeTooLong,
            format!("at most {HISTORY_AGENTS_MAX} agents"),
        )));
    }
    let mut agent_ids = Vec::new();
    for (i, id) in message
        .agent_ids
        .iter()
        .take(HISTORY_AGENTS_MAX)
        .enumerate()
    {
        if let Some(id) = v.absorb(convert::uuid(&format!("agent_ids[{i}]"), id))
            && !agent_ids.contains(&id)
        {
            agent_ids.push(id);
        }
    }
    if message.agent_ids.is_empty() {
        agent_ids.push(caller.user_id);
    }
    let (from, to) = parse::date_range(&mut v, "date_range", message.date_range.as_ref());
    let to = to.unwrap_or_else(today);
    let from = from.unwrap_or_else(|| {
        to.checked_sub_days(Days::new(HISTORY_DAYS_DEFAULT - 1))
            .unwrap_or(to)
    });
    if (to - from).num_days() >= HISTORY_DAYS_MAX {
        v.absorb::<()>(Err(ApiError::invalid_with_reason(
            "date_range",
            pb::ErrorReason::RangeTooLong,
            format!("at most {HISTORY_DAYS_MAX} days"),
        )));
    }
    v.into_result()?;
    let series = app::history(&state.pool, caller, &agent_ids, from, to).await?;
    Ok(pb::GetPerformanceHistoryResponse {
        date_range: Some(pb::DateRange {
            start_date: Some(date_proto(from)),
            end_date: Some(date_proto(to)),
        }),
        series: series
            .into_iter()
            .map(|(id, name, points)| pb::AgentPerformanceSeries {
                agent: Some(user_ref(id, &name)),
                points: points
                    .iter()
                    .map(|p| pb::DailyPerformancePoint {
                        date: Some(date_proto(p.day)),
                        activity: Some(activity(
                            p.calls,
                            p.visits,
                            p.refusals,
                            p.promises,
                            p.payments_count,
                            p.payments_gnf,
                            p.score,
                        )),
                        missions: Some(pb::MissionFigures {
                            planned_count: p.missions_planned,
                            in_progress_count: p.missions_in_progress,
                            done_count: p.missions_done,
                            failed_count: p.missions_failed,
                            cancelled_count: p.missions_cancelled,
                        }),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Longest period of GetAgentPerformance, in days.
const PERFORMANCE_DAYS_MAX: i64 = 366;

pub(super) async fn agent_performance(
    state: &AppState,
    request: &Request<pb::GetAgentPerformanceRequest>,
) -> Result<pb::GetAgentPerformanceResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let agent_id = v
        .absorb(convert::optional_uuid("agent_id", &message.agent_id))
        .flatten()
        .unwrap_or(caller.user_id);
    let (from, to) = parse::date_range(&mut v, "period", message.period.as_ref());
    if to.is_some_and(|to| to > today()) {
        v.add("period.end_date", "must not be in the future");
    }
    // A period open at its end ends today; open at its start, it starts on the first of its
    // end's month.
    let to = to.unwrap_or_else(today);
    let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    if (to - from).num_days() >= PERFORMANCE_DAYS_MAX {
        v.absorb::<()>(Err(ApiError::invalid_with_reason(
            "period",
            pb::ErrorReason::RangeTooLong,
            format!("at most {PERFORMANCE_DAYS_MAX} days"),
        )));
    }
    v.into_result()?;
    let found = app::agent_performance(&state.pool, caller, agent_id, from, to).await?;
    let (t, f) = (&found.totals, &found.facts);
    Ok(pb::GetAgentPerformanceResponse {
        performance: Some(pb::AgentPerformance {
            agent: Some(user_ref(found.agent_id, &found.full_name)),
            period: Some(pb::DateRange {
                start_date: Some(date_proto(from)),
                end_date: Some(date_proto(to)),
            }),
            activity: Some(pb::ActivityFigures {
                call_count: t.calls,
                visit_count: t.visits,
                far_away_visit_count: f.far_away_visits,
                refusal_count: t.refusals,
                promise_count: t.promises,
                promised_gnf: f.promised_gnf,
                payment_count: t.payments_count,
                collected_gnf: t.payments_gnf,
                reversal_count: f.reversals,
                score_points: t.score,
            }),
            missions: Some(pb::MissionFigures {
                planned_count: t.missions_planned,
                in_progress_count: t.missions_in_progress,
                done_count: t.missions_done,
                failed_count: t.missions_failed,
                cancelled_count: t.missions_cancelled,
            }),
            promise_kept_count: found.promises.kept,
            promise_partially_kept_count: found.promises.partially_kept,
            promise_broken_count: found.promises.broken,
            promise_kept_rate: found.promises.kept_rate(),
            mission_completion_rate: mission_completion_rate(t.missions_done, t.missions_failed),
            assigned_arrears_gnf: found.assigned_arrears_gnf,
            collection_rate: assigned_collection_rate(t.payments_gnf, found.assigned_arrears_gnf),
        }),
    })
}
