//! SQL of agent scores: the score events (`score_events`, one row per event and source) and
//! the daily figures they add up to (`agent_daily_scores`). The points are the domain's
//! (`domain::scoring`).
//!
//! Decisions:
//! - [`add`] is the one writer of score events after the fact (a promise's, a reversal's). The
//!   inserts of a call or a visit write the same rows in their own statement
//!   (`interactions::insert`), to save a round trip on the busiest writes; their SQL is the
//!   same shape. A payment or reversal entry writes its event with its INSERT
//!   (`payments::insert_entry`) and its daily figures with its numbering
//!   (`payments::number_entry`), so the agent's daily row is held only at the end of the
//!   transaction.
//! - A source scores at most once per kind (unique indexes; `ON CONFLICT DO NOTHING`), and the
//!   daily row only moves by what was written: a retry cannot count twice.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::error::Result;
use crate::domain::{ScoreEventKind, ScoreSource};

/// One event to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub kind: ScoreEventKind,
    /// What it is about: the call or visit, the promise, or the ledger entry (the kind says
    /// which, `ScoreEventKind::source`).
    pub source_id: Uuid,
}

/// What the events' action adds to the agent's daily counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub calls: i32,
    pub visits: i32,
    pub promises: i32,
    pub refusals: i32,
    pub payments_count: i32,
    pub payments_gnf: i64,
}

/// Score events of one action of one agent.
#[derive(Debug, Clone)]
pub struct Scored<'a> {
    pub agent_id: Uuid,
    /// Africa/Conakry day of `occurred_at`.
    pub day: NaiveDate,
    pub occurred_at: DateTime<Utc>,
    pub events: &'a [Event],
    pub counters: Counters,
}

/// Writes the events (those a source already has are skipped) and, when at least one was
/// written, adds their points and the counters to the agent's row of the day, in one statement
/// of the caller's transaction. Answers the points written.
pub async fn add(conn: &mut PgConnection, scored: &Scored<'_>) -> Result<i64> {
    let mut kinds = Vec::with_capacity(scored.events.len());
    let mut points = Vec::with_capacity(scored.events.len());
    let mut interactions = Vec::with_capacity(scored.events.len());
    let mut promises = Vec::with_capacity(scored.events.len());
    let mut payments = Vec::with_capacity(scored.events.len());
    for event in scored.events {
        kinds.push(event.kind.as_str());
        points.push(i32::try_from(event.kind.points()).unwrap_or(0));
        let id = Some(event.source_id);
        let (interaction, promise, payment) = match event.kind.source() {
            ScoreSource::Interaction => (id, None, None),
            ScoreSource::Promise => (None, id, None),
            ScoreSource::Payment => (None, None, id),
        };
        interactions.push(interaction);
        promises.push(promise);
        payments.push(payment);
    }
    let counters = scored.counters;
    Ok(sqlx::query_scalar(
        "WITH events AS (
             INSERT INTO score_events (agent_id, day, kind, points, interaction_id, promise_id,
                                       payment_id, occurred_at)
             SELECT $1, $2, e.kind, e.points, e.interaction_id, e.promise_id, e.payment_id, $3
             FROM unnest($4::text[], $5::int[], $6::uuid[], $7::uuid[], $8::uuid[])
                  WITH ORDINALITY AS e(kind, points, interaction_id, promise_id, payment_id, n)
             ORDER BY e.n
             ON CONFLICT DO NOTHING
             RETURNING points),
         daily AS (
             INSERT INTO agent_daily_scores AS s
               (agent_id, day, score, calls, visits, promises, refusals, payments_count,
                payments_gnf)
             SELECT $1, $2, sum(points)::int, $9, $10, $11, $12, $13, $14 FROM events
             HAVING count(*) > 0
             ON CONFLICT (agent_id, day) DO UPDATE
             SET score = s.score + EXCLUDED.score,
                 calls = s.calls + EXCLUDED.calls,
                 visits = s.visits + EXCLUDED.visits,
                 promises = s.promises + EXCLUDED.promises,
                 refusals = s.refusals + EXCLUDED.refusals,
                 payments_count = s.payments_count + EXCLUDED.payments_count,
                 payments_gnf = s.payments_gnf + EXCLUDED.payments_gnf)
         SELECT coalesce(sum(points), 0)::bigint FROM events",
    )
    .bind(scored.agent_id)
    .bind(scored.day)
    .bind(scored.occurred_at)
    .bind(kinds)
    .bind(points)
    .bind(interactions)
    .bind(promises)
    .bind(payments)
    .bind(counters.calls)
    .bind(counters.visits)
    .bind(counters.promises)
    .bind(counters.refusals)
    .bind(counters.payments_count)
    .bind(counters.payments_gnf)
    .fetch_one(conn)
    .await?)
}

/// The points a ledger entry earned (or took back) its agent: the sum of its score events.
pub async fn points_of_payment(conn: &mut PgConnection, payment_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(points), 0)::bigint FROM score_events WHERE payment_id = $1",
    )
    .bind(payment_id)
    .fetch_one(conn)
    .await?)
}

/// An agent's figures over a period, from the daily rows (zeros without any).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentFigures {
    pub agent_id: Uuid,
    pub full_name: String,
    pub site_ids: Vec<Uuid>,
    pub score: i64,
    pub calls: i64,
    pub visits: i64,
    pub promises: i64,
    pub refusals: i64,
    pub payments_count: i64,
    /// GNF collected, net of the reversals of this agent's payments dated in the span (as
    /// GetDailyStats counts them: a reversal on its own day).
    pub payments_gnf: i64,
    /// RANK() by score over the agents ranked: ties share a rank, the next one is skipped.
    pub rank: i64,
}

/// Which agents a ranking covers.
#[derive(Debug, Clone, Default)]
pub struct RankedAgents {
    /// Only agents covering one of these sites; `None`: any.
    pub site_ids: Option<Vec<Uuid>>,
    /// Only agents of this supervisor.
    pub supervisor_id: Option<Uuid>,
}

/// The active agents of `agents` with their figures over `from..=to`, ranked by score with
/// RANK(); listed by rank, then amount collected (higher first), then name, then id.
pub async fn ranking(
    conn: &mut PgConnection,
    agents: &RankedAgents,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<AgentFigures>> {
    Ok(sqlx::query_as(
        "WITH figures AS (
             SELECT u.id AS agent_id, u.full_name,
                    ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id
                          ORDER BY us.site_id) AS site_ids,
                    coalesce(sum(s.score), 0)::bigint AS score,
                    coalesce(sum(s.calls), 0)::bigint AS calls,
                    coalesce(sum(s.visits), 0)::bigint AS visits,
                    coalesce(sum(s.promises), 0)::bigint AS promises,
                    coalesce(sum(s.refusals), 0)::bigint AS refusals,
                    coalesce(sum(s.payments_count), 0)::bigint AS payments_count,
                    (coalesce(sum(s.payments_gnf), 0)
                     - (SELECT coalesce(sum(r.amount_gnf), 0) FROM payments r
                        JOIN payments o ON o.id = r.reverses_payment_id
                        WHERE o.agent_id = u.id AND r.kind = 'reversal'
                          AND (r.occurred_at AT TIME ZONE 'Africa/Conakry')::date
                              BETWEEN $1 AND $2))::bigint AS payments_gnf
             FROM users u
             LEFT JOIN agent_daily_scores s ON s.agent_id = u.id AND s.day BETWEEN $1 AND $2
             WHERE u.role_id = 'agent' AND NOT u.disabled
               AND ($3::uuid[] IS NULL OR EXISTS (
                       SELECT 1 FROM user_sites us WHERE us.user_id = u.id
                         AND us.site_id = ANY($3)))
               AND ($4::uuid IS NULL OR u.supervisor_id = $4)
             GROUP BY u.id)
         SELECT *, rank() OVER (ORDER BY score DESC) AS rank FROM figures
         ORDER BY score DESC, payments_gnf DESC, full_name, agent_id",
    )
    .bind(from)
    .bind(to)
    .bind(agents.site_ids.as_deref())
    .bind(agents.supervisor_id)
    .fetch_all(conn)
    .await?)
}

/// One day of an agent's figures, zeros on a day without a row.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DayFigures {
    pub agent_id: Uuid,
    pub day: NaiveDate,
    pub score: i64,
    pub calls: i64,
    pub visits: i64,
    pub promises: i64,
    pub refusals: i64,
    pub payments_count: i64,
    /// GNF collected, net of the reversals of this agent's payments dated in the span (as
    /// GetDailyStats counts them: a reversal on its own day).
    pub payments_gnf: i64,
    pub missions_planned: i64,
    pub missions_in_progress: i64,
    pub missions_done: i64,
    pub missions_failed: i64,
    pub missions_cancelled: i64,
}

/// Every day of `from..=to` for each of `agent_ids`, by agent then day; days without activity
/// or missions are zeros.
pub async fn daily_series(
    conn: &mut PgConnection,
    agent_ids: &[Uuid],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayFigures>> {
    Ok(sqlx::query_as(
        "SELECT a.agent_id, d.day::date AS day,
                coalesce(s.score, 0)::bigint AS score, coalesce(s.calls, 0)::bigint AS calls,
                coalesce(s.visits, 0)::bigint AS visits,
                coalesce(s.promises, 0)::bigint AS promises,
                coalesce(s.refusals, 0)::bigint AS refusals,
                coalesce(s.payments_count, 0)::bigint AS payments_count,
                (coalesce(s.payments_gnf, 0)
                 - (SELECT coalesce(sum(r.amount_gnf), 0) FROM payments r
                    JOIN payments o ON o.id = r.reverses_payment_id
                    WHERE o.agent_id = a.agent_id AND r.kind = 'reversal'
                      AND (r.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day::date
                   ))::bigint AS payments_gnf,
                coalesce(m.planned, 0) AS missions_planned,
                coalesce(m.in_progress, 0) AS missions_in_progress,
                coalesce(m.done, 0) AS missions_done,
                coalesce(m.failed, 0) AS missions_failed,
                coalesce(m.cancelled, 0) AS missions_cancelled
         FROM unnest($1::uuid[]) AS a(agent_id)
         CROSS JOIN generate_series($2::date, $3::date, interval '1 day') AS d(day)
         LEFT JOIN agent_daily_scores s ON s.agent_id = a.agent_id AND s.day = d.day::date
         LEFT JOIN (
             SELECT agent_id, mission_date,
                    count(*) FILTER (WHERE status <> 'cancelled') AS planned,
                    count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
                    count(*) FILTER (WHERE status = 'done') AS done,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
             FROM missions
             WHERE agent_id = ANY($1) AND mission_date BETWEEN $2 AND $3
             GROUP BY agent_id, mission_date
         ) m ON m.agent_id = a.agent_id AND m.mission_date = d.day::date
         ORDER BY array_position($1::uuid[], a.agent_id), d.day",
    )
    .bind(agent_ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// What an agent's period adds to the daily rows, read from the raw facts (Africa/Conakry days
/// `from..=to`): far-away visits, the sum of the promises made and how those promises stand
/// now, the reversals of the agent's payments, and the tenants of the agent's missions.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PeriodFacts {
    /// Visits flagged far from the tenant (or with a mocked location).
    pub far_away_visits: i64,
    /// GNF promised in the period (a promise counts on the day of the call or visit that made
    /// it, else the day it was stored, as GetDailyStats counts it).
    pub promised_gnf: i64,
    /// Promises made in the period that are kept / partially kept / broken now.
    pub promises_kept: i64,
    pub promises_partially_kept: i64,
    pub promises_broken: i64,
    /// Reversal entries of the agent's payments that occurred in the period.
    pub reversals: i64,
    /// Tenants of the agent's missions dated in the period (cancelled ones excepted).
    pub mission_tenant_ids: Vec<Uuid>,
}

/// [`PeriodFacts`] of `agent_id` over `from..=to`.
pub async fn period_facts(
    conn: &mut PgConnection,
    agent_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<PeriodFacts> {
    Ok(sqlx::query_as(
        "WITH made AS (
             SELECT pr.amount_gnf, pr.status
             FROM promises pr LEFT JOIN interactions i ON i.id = pr.interaction_id
             WHERE pr.agent_id = $1
               AND (coalesce(i.occurred_at, pr.created_at) AT TIME ZONE 'Africa/Conakry')::date
                   BETWEEN $2 AND $3)
         SELECT
             (SELECT count(*) FROM interactions
              WHERE agent_id = $1 AND kind = 'visit' AND is_far_from_tenant
                AND (occurred_at AT TIME ZONE 'Africa/Conakry')::date BETWEEN $2 AND $3
             ) AS far_away_visits,
             (SELECT coalesce(sum(amount_gnf), 0)::bigint FROM made) AS promised_gnf,
             (SELECT count(*) FROM made WHERE status = 'kept') AS promises_kept,
             (SELECT count(*) FROM made WHERE status = 'partially_kept')
                 AS promises_partially_kept,
             (SELECT count(*) FROM made WHERE status = 'broken') AS promises_broken,
             (SELECT count(*) FROM payments r JOIN payments o ON o.id = r.reverses_payment_id
              WHERE o.agent_id = $1 AND r.kind = 'reversal'
                AND (r.occurred_at AT TIME ZONE 'Africa/Conakry')::date BETWEEN $2 AND $3
             ) AS reversals,
             ARRAY(SELECT DISTINCT tenant_id FROM missions
                   WHERE agent_id = $1 AND mission_date BETWEEN $2 AND $3
                     AND status <> 'cancelled'
                   ORDER BY tenant_id) AS mission_tenant_ids",
    )
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .fetch_one(conn)
    .await?)
}
