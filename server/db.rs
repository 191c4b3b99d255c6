//! PostgreSQL pool and migrations.

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pool that connects on first use, so the server starts (and reports NOT_SERVING) while
/// PostgreSQL is still down.
pub fn lazy_pool(config: &DatabaseConfig) -> PgPool {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(config.connect_options.clone())
}

/// Connects now, failing with the cause when PostgreSQL cannot be reached.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(config.connect_options.clone())
        .await
}

/// True when PostgreSQL answers a trivial query within `timeout`.
pub async fn ping(pool: &PgPool, timeout: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
}

/// Runs `delete_batch` (one statement deleting at most `batch` rows, answering how many it
/// deleted) until a run deletes fewer, so that each statement holds its locks briefly however
/// large the backlog; answers the total. A `batch` of 0 or less deletes nothing.
pub async fn delete_in_batches<F, Fut>(batch: i64, mut delete_batch: F) -> Result<u64, sqlx::Error>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    if batch <= 0 {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let deleted = delete_batch(batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}
