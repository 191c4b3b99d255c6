//! SQL of calls and visits (`interactions`): the insert (with the score events and daily
//! figures it earns its agent, in the same statement), and the reads of interactions.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::error::{Result, StoreError};
use crate::domain::{InteractionKind, InteractionOutcome, ScoreEventKind};

/// A call or visit to store. Distances and flags are the server's proof-of-presence verdict.
#[derive(Debug, Clone)]
pub struct NewInteraction<'a> {
    pub kind: InteractionKind,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub outcome: InteractionOutcome,
    pub notes: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub mission_id: Option<Uuid>,
    pub request_id: Uuid,
    pub call_phone: Option<&'a str>,
    pub call_duration_secs: Option<i32>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub fix_time: Option<DateTime<Utc>>,
    pub distance_to_tenant_m: Option<f64>,
    pub is_far_from_tenant: bool,
    pub is_mock_location: bool,
}

/// What the database made of an inserted interaction: its id, its times as stored
/// (microseconds) and its agent's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Inserted {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub fix_time: Option<DateTime<Utc>>,
    pub agent_name: String,
    /// The points of the score written with it (0 without one).
    pub score_points: i64,
}

/// The score of an interaction written by its INSERT (one with no promise: its events come
/// from the interaction alone), for its agent (`NewInteraction::agent_id`).
#[derive(Debug, Clone)]
pub struct InsertScore {
    /// Africa/Conakry day of `occurred_at`.
    pub day: NaiveDate,
    /// The events (all from the interaction itself: visit, refusal).
    pub events: Vec<ScoreEventKind>,
    pub calls: i32,
    pub visits: i32,
    pub refusals: i32,
}

/// Inserts the interaction, and with `score` its score events and daily figures in the same
/// statement (as [`super::scores::add`] writes them); `None` when one with the same request_id
/// exists already (the request_id is stored for good: a retry long after its idempotency key
/// expired finds it), and then no score is written.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewInteraction<'_>,
    score: Option<&InsertScore>,
) -> Result<Option<Inserted>> {
    let events = score.map_or(&[][..], |s| s.events.as_slice());
    let kinds: Vec<&str> = events.iter().map(|kind| kind.as_str()).collect();
    let points: Vec<i32> = events
        .iter()
        .map(|kind| i32::try_from(kind.points()).unwrap_or(0))
        .collect();
    sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO interactions
               (kind, tenant_id, agent_id, outcome, notes, occurred_at, received_at, mission_id,
                request_id, call_phone, call_duration_secs, latitude, longitude, accuracy_m,
                fix_time, distance_to_tenant_m, is_far_from_tenant, is_mock_location)
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16, $17)
             ON CONFLICT ON CONSTRAINT interactions_request_id_key DO NOTHING
             RETURNING id, occurred_at, received_at, fix_time, agent_id),
         events AS (
             INSERT INTO score_events (agent_id, day, kind, points, interaction_id, occurred_at)
             SELECT $3, $18, e.kind, e.points, i.id, $6
             FROM inserted i,
                  unnest($19::text[], $20::int[]) WITH ORDINALITY AS e(kind, points, n)
             WHERE $24
             ORDER BY e.n
             ON CONFLICT DO NOTHING
             RETURNING points),
         daily AS (
             INSERT INTO agent_daily_scores AS s
               (agent_id, day, score, calls, visits, promises, refusals)
             SELECT $3, $18, (SELECT coalesce(sum(points), 0)::int FROM events), $21, $22, 0,
                    $23
             FROM inserted WHERE $24
             ON CONFLICT (agent_id, day) DO UPDATE
             SET score = s.score + EXCLUDED.score,
                 calls = s.calls + EXCLUDED.calls,
                 visits = s.visits + EXCLUDED.visits,
                 promises = s.promises + EXCLUDED.promises,
                 refusals = s.refusals + EXCLUDED.refusals)
         SELECT i.id, i.occurred_at, i.received_at, i.fix_time,
                (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
                (SELECT coalesce(sum(points), 0)::bigint FROM events) AS score_points
         FROM inserted i",
    )
    .bind(new.kind.as_str())
    .bind(new.tenant_id)
    .bind(new.agent_id)
    .bind(new.outcome.as_str())
    .bind(new.notes)
    .bind(new.occurred_at)
    .bind(new.mission_id)
    .bind(new.request_id)
    .bind(new.call_phone)
    .bind(new.call_duration_secs)
    .bind(new.latitude)
    .bind(new.longitude)
    .bind(new.accuracy_m)
    .bind(new.fix_time)
    .bind(new.distance_to_tenant_m)
    .bind(new.is_far_from_tenant)
    .bind(new.is_mock_location)
    .bind(score.map(|s| s.day))
    .bind(kinds)
    .bind(points)
    .bind(score.map_or(0, |s| s.calls))
    .bind(score.map_or(0, |s| s.visits))
    .bind(score.map_or(0, |s| s.refusals))
    .bind(score.is_some())
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from)
}

/// An interaction as the API shows it, with the names next to the ids, the promise made in it
/// and the points it earned (its own score events and its promise's).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InteractionRow {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: InteractionKind,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit_label: String,
    pub agent_id: Uuid,
    pub agent_name: String,
    #[sqlx(try_from = "String")]
    pub outcome: InteractionOutcome,
    pub notes: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub mission_id: Option<Uuid>,
    pub promise_id: Option<Uuid>,
    pub score_points: i64,
    pub call_phone: Option<String>,
    pub call_duration_secs: Option<i32>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub fix_time: Option<DateTime<Utc>>,
    pub distance_to_tenant_m: Option<f64>,
    pub is_far_from_tenant: bool,
    pub is_mock_location: bool,
    pub request_id: Uuid,
}

const INTERACTION_SELECT: &str = "SELECT i.id, i.kind, i.tenant_id, t.full_name AS tenant_name,
        t.site_id, s.name AS site_name, t.unit AS unit_label, i.agent_id,
        a.full_name AS agent_name, i.outcome, i.notes, i.occurred_at, i.received_at, i.mission_id,
        pr.id AS promise_id,
        (SELECT coalesce(sum(se.points), 0)::bigint FROM score_events se
          WHERE se.interaction_id = i.id OR (pr.id IS NOT NULL AND se.promise_id = pr.id))
          AS score_points,
        i.call_phone, i.call_duration_secs, i.latitude, i.longitude, i.accuracy_m, i.fix_time,
        i.distance_to_tenant_m, i.is_far_from_tenant, i.is_mock_location, i.request_id
    FROM interactions i
    JOIN tenants t ON t.id = i.tenant_id
    JOIN sites s ON s.id = t.site_id
    JOIN users a ON a.id = i.agent_id
    LEFT JOIN LATERAL (
        SELECT p.id FROM promises p WHERE p.interaction_id = i.id ORDER BY p.created_at, p.id LIMIT 1
    ) pr ON true";

pub async fn by_request_id<'e>(
    executor: impl PgExecutor<'e>,
    request_id: Uuid,
) -> Result<Option<InteractionRow>> {
    sqlx::query_as(&format!("{INTERACTION_SELECT} WHERE i.request_id = $1"))
        .bind(request_id)
        .fetch_optional(executor)
        .await
        .map_err(StoreError::from)
}

/// The calls and visits of `interaction_ids`, in no particular order.
pub async fn by_ids<'e>(
    executor: impl PgExecutor<'e>,
    interaction_ids: &[Uuid],
) -> Result<Vec<InteractionRow>> {
    sqlx::query_as(&format!("{INTERACTION_SELECT} WHERE i.id = ANY($1)"))
        .bind(interaction_ids)
        .fetch_all(executor)
        .await
        .map_err(StoreError::from)
}

/// A call or visit a payment names: whose tenant it is, and which kind it is.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct KindAndTenant {
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: InteractionKind,
}

pub async fn kind_and_tenant(
    conn: &mut PgConnection,
    interaction_id: Uuid,
) -> Result<Option<KindAndTenant>> {
    Ok(
        sqlx::query_as("SELECT tenant_id, kind FROM interactions WHERE id = $1")
            .bind(interaction_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The latest call or visit of a tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LastInteractionRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: InteractionKind,
    #[sqlx(try_from = "String")]
    pub outcome: InteractionOutcome,
    pub occurred_at: DateTime<Utc>,
    pub agent_id: Uuid,
    pub agent_name: String,
    /// The first 200 characters of the notes.
    pub notes_excerpt: String,
}

/// The latest interaction (by occurred_at, then received_at) of each of `tenant_ids`.
pub async fn latest_of_tenants(
    conn: &mut PgConnection,
    tenant_ids: &[Uuid],
) -> Result<Vec<LastInteractionRow>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (i.tenant_id)
                i.tenant_id, i.id, i.kind, i.outcome, i.occurred_at, i.agent_id,
                u.full_name AS agent_name, left(i.notes, 200) AS notes_excerpt
         FROM interactions i
         JOIN users u ON u.id = i.agent_id
         WHERE i.tenant_id = ANY($1)
         ORDER BY i.tenant_id, i.occurred_at DESC, i.received_at DESC, i.id DESC",
    )
    .bind(tenant_ids)
    .fetch_all(conn)
    .await?)
}
