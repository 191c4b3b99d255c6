//! SQL of agent positions: the daily-partitioned time series `agent_positions`, the last known
//! position per agent `agent_last_positions`, and the partitions' upkeep.
//!
//! Decisions:
//! - One transaction per batch, whatever its size: a read of the agents' `max_sequence`, a
//!   look-up of the sequences at or below it (resends: same fix → already stored, another fix
//!   → conflict), one `INSERT .. SELECT FROM UNNEST(..)` of the new rows (`ON CONFLICT DO
//!   NOTHING` on the unique key, for a resend racing in from another replica) and one upsert of
//!   the last positions. A position is acknowledged only after this commit.
//! - Fresh sequences (above the agent's `max_sequence`) cost no look-up: that is the streaming
//!   case. The look-up only runs for resends and late offline uploads.
//! - Rows are written in (agent, sequence) order, so two batches touching the same agents lock
//!   the `agent_last_positions` rows in the same order.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::domain::position::Position;

/// A checked position of an agent, received by the server at `received_at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewPosition {
    pub agent_id: Uuid,
    pub position: Position,
    pub received_at: DateTime<Utc>,
}

/// What became of one position of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored now.
    Stored,
    /// The same fix was stored before (a resend): accepted, not stored twice.
    AlreadyStored,
    /// The sequence is stored with another fix time: refused.
    Conflict,
}

/// An agent's last known position after a batch, as stored in `agent_last_positions`.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct LastPosition {
    pub agent_id: Uuid,
    /// Highest sequence persisted for the agent.
    pub max_sequence: i64,
    pub sequence: i64,
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
    pub altitude_m: Option<f32>,
    pub battery_percent: Option<i16>,
    pub is_mock_location: bool,
    pub fix_time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// The result of [`write_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchWritten {
    /// One outcome per position, in the order given.
    pub outcomes: Vec<Written>,
    /// Highest persisted sequence of every agent of the batch (0: none yet).
    pub max_sequence: HashMap<Uuid, i64>,
    /// The agents whose last position or max sequence changed, after the batch.
    pub changed: Vec<LastPosition>,
}

/// Stores `rows` once each (see the module header); answers an outcome per row.
pub async fn write_batch(pool: &PgPool, rows: &[NewPosition]) -> Result<BatchWritten, StoreError> {
    let mut agents: Vec<Uuid> = rows.iter().map(|r| r.agent_id).collect();
    agents.sort_unstable();
    agents.dedup();
    let mut tx = pool.begin().await?;
    let known: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT agent_id, max_sequence FROM agent_last_positions WHERE agent_id = ANY($1)",
    )
    .bind(&agents)
    .fetch_all(&mut *tx)
    .await?;
    let mut max_sequence: HashMap<Uuid, i64> = agents.iter().map(|a| (*a, 0)).collect();
    max_sequence.extend(known);

    // Resends and late positions: the stored fix times of their sequences.
    let (old_agents, old_sequences): (Vec<Uuid>, Vec<i64>) = rows
        .iter()
        .filter(|r| r.position.sequence <= max_sequence[&r.agent_id])
        .map(|r| (r.agent_id, r.position.sequence))
        .unzip();
    let mut stored: HashMap<(Uuid, i64), DateTime<Utc>> = HashMap::new();
    if !old_agents.is_empty() {
        let found: Vec<(Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT p.agent_id, p.sequence, p.fix_time
             FROM agent_positions p
             JOIN UNNEST($1::uuid[], $2::bigint[]) AS k(agent_id, sequence)
               ON p.agent_id = k.agent_id AND p.sequence = k.sequence",
        )
        .bind(&old_agents)
        .bind(&old_sequences)
        .fetch_all(&mut *tx)
        .await?;
        stored.extend(found.into_iter().map(|(a, s, t)| ((a, s), t)));
    }

    // Decide each row; a sequence repeated within the batch is judged against its first copy.
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut fresh: Vec<usize> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let key = (row.agent_id, row.position.sequence);
        let outcome = match stored.get(&key) {
            Some(fix_time) if *fix_time == row.position.fix_time => Written::AlreadyStored,
            Some(_) => Written::Conflict,
            None => {
                stored.insert(key, row.position.fix_time);
                fresh.push(index);
                Written::Stored
            }
        };
        outcomes.push(outcome);
    }
    fresh.sort_by_key(|&i| (rows[i].agent_id, rows[i].position.sequence));

    let mut changed = Vec::new();
    if !fresh.is_empty() {
        let inserted = insert(&mut *tx, rows, &fresh).await?;
        // A row another replica stored between the look-up and the insert: already stored.
        for &index in &fresh {
            let row = &rows[index];
            if !inserted.contains(&(row.agent_id, row.position.sequence)) {
                outcomes[index] = Written::AlreadyStored;
            }
        }
        let new_rows: Vec<usize> = fresh
            .iter()
            .copied()
            .filter(|&i| outcomes[i] == Written::Stored)
            .collect();
        changed = upsert_last(&mut *tx, rows, &new_rows).await?;
        for last in &changed {
            max_sequence.insert(last.agent_id, last.max_sequence);
        }
    }
    tx.commit().await?;
    Ok(BatchWritten {
        outcomes,
        max_sequence,
        changed,
    })
}

/// Column arrays of `rows[indices]`, for UNNEST.
struct Columns {
    agent_id: Vec<Uuid>,
    sequence: Vec<i64>,
    latitude: Vec<f64>,
    longitude: Vec<f64>,
    accuracy_m: Vec<f32>,
    speed_mps: Vec<Option<f32>>,
    heading_deg: Vec<Option<f32>>,
    altitude_m: Vec<Option<f32>>,
    battery_percent: Vec<Option<i16>>,
    is_mock_location: Vec<bool>,
    fix_time: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
}

#[allow(clippy::cast_possible_truncation)] // metres and degrees fit `real` (PostgreSQL float4)
fn columns(rows: &[NewPosition], indices: &[usize]) -> Columns {
    let n = indices.len();
    let mut c = Columns {
        agent_id: Vec::with_capacity(n),
        sequence: Vec::with_capacity(n),
        latitude: Vec::with_capacity(n),
        longitude: Vec::with_capacity(n),
        accuracy_m: Vec::with_capacity(n),
        speed_mps: Vec::with_capacity(n),
        heading_deg: Vec::with_capacity(n),
        altitude_m: Vec::with_capacity(n),
        battery_percent: Vec::with_capacity(n),
        is_mock_location: Vec::with_capacity(n),
        fix_time: Vec::with_capacity(n),
        received_at: Vec::with_capacity(n),
    };
    for &i in indices {
        let row = &rows[i];
        let p = &row.position;
        c.agent_id.push(row.agent_id);
        c.sequence.push(p.sequence);
        c.latitude.push(p.location.latitude());
        c.longitude.push(p.location.longitude());
        c.accuracy_m.push(p.accuracy.metres() as f32);
        c.speed_mps.push(p.speed_mps.map(|v| v as f32));
        // float4 rounding must not turn 359.99999 into 360 (the column checks < 360).
        c.heading_deg
            .push(p.heading_deg.map(|v| (v as f32).min(359.999_97)));
        c.altitude_m.push(p.altitude_m.map(|v| v as f32));
        c.battery_percent.push(p.battery_percent);
        c.is_mock_location.push(p.is_mock_location);
        c.fix_time.push(p.fix_time);
        c.received_at.push(row.received_at);
    }
    c
}

/// Inserts `rows[indices]`; answers the (agent, sequence) pairs actually inserted.
async fn insert<'e>(
    executor: impl PgExecutor<'e>,
    rows: &[NewPosition],
    indices: &[usize],
) -> Result<std::collections::HashSet<(Uuid, i64)>, StoreError> {
    let c = columns(rows, indices);
    let inserted: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO agent_positions (agent_id, sequence, latitude, longitude, accuracy_m,
             speed_mps, heading_deg, altitude_m, battery_percent, is_mock_location, fix_time,
             received_at)
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::float8[], $4::float8[],
             $5::real[], $6::real[], $7::real[], $8::real[], $9::smallint[], $10::bool[],
             $11::timestamptz[], $12::timestamptz[])
         ON CONFLICT ON CONSTRAINT agent_positions_agent_sequence_key DO NOTHING
         RETURNING agent_id, sequence",
    )
    .bind(&c.agent_id)
    .bind(&c.sequence)
    .bind(&c.latitude)
    .bind(&c.longitude)
    .bind(&c.accuracy_m)
    .bind(&c.speed_mps)
    .bind(&c.heading_deg)
    .bind(&c.altitude_m)
    .bind(&c.battery_percent)
    .bind(&c.is_mock_location)
    .bind(&c.fix_time)
    .bind(&c.received_at)
    .fetch_all(executor)
    .await?;
    Ok(inserted.into_iter().collect())
}

const LAST_COLUMNS: &str = "agent_id, max_sequence, sequence, latitude, longitude, accuracy_m, \
     speed_mps, heading_deg, altitude_m, battery_percent, is_mock_location, fix_time, received_at";

/// Moves each agent's last position to its newest stored fix (by fix time) and its
/// max_sequence up; answers the rows after the change.
async fn upsert_last<'e>(
    executor: impl PgExecutor<'e>,
    rows: &[NewPosition],
    new_rows: &[usize],
) -> Result<Vec<LastPosition>, StoreError> {
    // Per agent: the newest fix and the highest sequence of the batch.
    let mut per_agent: HashMap<Uuid, (usize, i64)> = HashMap::new();
    for &i in new_rows {
        let row = &rows[i];
        let entry = per_agent
            .entry(row.agent_id)
            .or_insert((i, row.position.sequence));
        if row.position.fix_time > rows[entry.0].position.fix_time {
            entry.0 = i;
        }
        entry.1 = entry.1.max(row.position.sequence);
    }
    let mut newest: Vec<(usize, i64)> = per_agent.into_values().collect();
    newest.sort_by_key(|(i, _)| rows[*i].agent_id);
    let indices: Vec<usize> = newest.iter().map(|(i, _)| *i).collect();
    let max: Vec<i64> = newest.iter().map(|(_, m)| *m).collect();
    let c = columns(rows, &indices);
    let newer = "EXCLUDED.fix_time > agent_last_positions.fix_time";
    let take = |column: &str| {
        format!(
            "{column} = CASE WHEN {newer} THEN EXCLUDED.{column} ELSE agent_last_positions.{column} END"
        )
    };
    let updates = [
        "sequence",
        "latitude",
        "longitude",
        "accuracy_m",
        "speed_mps",
        "heading_deg",
        "altitude_m",
        "battery_percent",
        "is_mock_location",
        "received_at",
        "fix_time",
    ]
    .map(take)
    .join(", ");
    let sql = format!(
        "INSERT INTO agent_last_positions ({LAST_COLUMNS})
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::float8[],
             $5::float8[], $6::real[], $7::real[], $8::real[], $9::real[], $10::smallint[],
             $11::bool[], $12::timestamptz[], $13::timestamptz[])
         ON CONFLICT (agent_id) DO UPDATE SET
             max_sequence = GREATEST(agent_last_positions.max_sequence, EXCLUDED.max_sequence),
             {updates}
         RETURNING {LAST_COLUMNS}"
    );
    let changed = sqlx::query_as(&sql)
        .bind(&c.agent_id)
        .bind(&max)
        .bind(&c.sequence)
        .bind(&c.latitude)
        .bind(&c.longitude)
        .bind(&c.accuracy_m)
        .bind(&c.speed_mps)
        .bind(&c.heading_deg)
        .bind(&c.altitude_m)
        .bind(&c.battery_percent)
        .bind(&c.is_mock_location)
        .bind(&c.fix_time)
        .bind(&c.received_at)
        .fetch_all(executor)
        .await?;
    Ok(changed)
}

/// The highest persisted sequence of `agent_id` (0: none).
pub async fn max_sequence<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: Uuid,
) -> Result<i64, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT max_sequence FROM agent_last_positions WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_optional(executor)
            .await?;
    Ok(found.unwrap_or(0))
}

/// Every agent's last known position.
pub async fn all_last<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<LastPosition>, StoreError> {
    let sql = format!("SELECT {LAST_COLUMNS} FROM agent_last_positions");
    Ok(sqlx::query_as(&sql).fetch_all(executor).await?)
}

/// A stored fix of a track.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct StoredFix {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub is_mock_location: bool,
    pub fix_time: DateTime<Utc>,
}

/// The fixes of `agent_id` with `from <= fix_time < to`, by fix time then sequence; at most
/// `limit`; mock-location fixes only when `include_mock`.
pub async fn track<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    include_mock: bool,
    limit: i64,
) -> Result<Vec<StoredFix>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT latitude, longitude, accuracy_m, speed_mps, is_mock_location, fix_time
         FROM agent_positions
         WHERE agent_id = $1 AND fix_time >= $2 AND fix_time < $3
           AND ($4 OR NOT is_mock_location)
         ORDER BY fix_time, sequence
         LIMIT $5",
    )
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .bind(include_mock)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Creates the missing daily partitions for `from..=to` (UTC days); answers how many.
pub async fn ensure_partitions<'e>(
    executor: impl PgExecutor<'e>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<u64, sqlx::Error> {
    let created: i32 = sqlx::query_scalar("SELECT ensure_agent_position_partitions($1, $2)")
        .bind(from)
        .bind(to)
        .fetch_one(executor)
        .await?;
    Ok(u64::try_from(created).unwrap_or(0))
}

/// Drops the daily partitions of days before `before` (UTC); answers how many.
pub async fn drop_partitions_before<'e>(
    executor: impl PgExecutor<'e>,
    before: NaiveDate,
) -> Result<u64, sqlx::Error> {
    let dropped: i32 = sqlx::query_scalar("SELECT drop_agent_position_partitions_before($1)")
        .bind(before)
        .fetch_one(executor)
        .await?;
    Ok(u64::try_from(dropped).unwrap_or(0))
}
