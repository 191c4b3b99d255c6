//! SQL of arrivals: the open visits of an agent's day (missions not yet marked arrived, at a
//! tenant with a known home) and the arrival time written on a mission.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::StoreError;
use crate::domain::ArrivalSource;

/// A mission of the day not yet marked arrived, with the tenant's home (degrees).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct OpenVisitRow {
    pub agent_id: Uuid,
    pub mission_date: NaiveDate,
    pub mission_id: Uuid,
    pub latitude: f64,
    pub longitude: f64,
}

/// The missions of each (agent, day) of `keys` still planned or in progress, not marked
/// arrived, at a tenant whose home is known (one query for all).
pub async fn open_visits<'e>(
    executor: impl PgExecutor<'e>,
    keys: &[(Uuid, NaiveDate)],
) -> Result<Vec<OpenVisitRow>, StoreError> {
    let (agents, days): (Vec<Uuid>, Vec<NaiveDate>) = keys.iter().copied().unzip();
    Ok(sqlx::query_as(
        "SELECT m.agent_id, m.mission_date, m.id AS mission_id,
                t.home_latitude AS latitude, t.home_longitude AS longitude
         FROM UNNEST($1::uuid[], $2::date[]) AS k(agent_id, day)
         JOIN missions m ON m.agent_id = k.agent_id AND m.mission_date = k.day
         JOIN tenants t ON t.id = m.tenant_id
         WHERE m.arrived_at IS NULL
           AND m.status IN ('planned', 'in_progress')
           AND t.home_latitude IS NOT NULL AND t.home_longitude IS NOT NULL",
    )
    .bind(&agents)
    .bind(&days)
    .fetch_all(executor)
    .await?)
}

/// Writes `arrived_at` on each mission of `arrivals` still without one (the first arrival
/// stays), with `arrival_source` [`ArrivalSource::Geofence`]; answers how many missions were marked.
pub async fn record<'e>(
    executor: impl PgExecutor<'e>,
    arrivals: &[(Uuid, DateTime<Utc>)],
) -> Result<u64, StoreError> {
    let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = arrivals.iter().copied().unzip();
    let done = sqlx::query(
        "UPDATE missions m SET arrived_at = a.arrived_at, arrival_source = $3
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS a(id, arrived_at)
         WHERE m.id = a.id AND m.arrived_at IS NULL",
    )
    .bind(&ids)
    .bind(&times)
    .bind(ArrivalSource::Geofence.as_str())
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
