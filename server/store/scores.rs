//! SQL of agent scores: the score events (`score_events`, one row per event and source) and
//! the daily figures they add up to (`agent_daily_scores`). The points are the domain's
//! (`domain::scoring`).
//!
//! Decisions:
//! - [`add`] is the one writer of score events after the fact (a promise's, a reversal's). The
//!   inserts of a call, a visit or a payment write the same rows in their own statement
//!   (`interactions::insert`, `payments::insert_entry`), to save a round trip on the busiest
//!   writes; their SQL is the same shape.
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
