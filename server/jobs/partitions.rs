//! Upkeep of the daily partitions of `agent_positions`: the partitions of the coming days are
//! created ahead, and those older than the retention are dropped whole (never deleted row by
//! row). Both SQL functions take an advisory lock, so every replica may run the job.

use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::positions;

/// How often the job runs.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Creates the partitions of `today - 1 ..= today + ahead_days` and drops those of days
/// before `today - retention_days` (UTC days, the partition bounds); answers how many
/// partitions were created or dropped.
pub async fn maintain(
    pool: &PgPool,
    today: NaiveDate,
    ahead_days: u32,
    retention_days: u32,
) -> Result<u64, sqlx::Error> {
    let from = today - Days::new(1);
    let to = today + Days::new(ahead_days.into());
    let created = positions::ensure_partitions(pool, from, to).await?;
    let dropped =
        positions::drop_partitions_before(pool, today - Days::new(retention_days.into())).await?;
    Ok(created + dropped)
}

/// Runs [`maintain`] at start, then every [`EVERY`], until `shutdown`.
pub async fn run_partition_job(
    pool: PgPool,
    shutdown: CancellationToken,
    ahead_days: u32,
    retention_days: u32,
) {
    super::run_every(
        shutdown,
        super::Schedule::every(EVERY),
        "position_partitions",
        || maintain(&pool, Utc::now().date_naive(), ahead_days, retention_days),
    )
    .await;
}
