//! Settlement of due promises, on a schedule: stores the final status (kept, partially kept,
//! broken) that the payments give each pending promise once its date has passed (or once it
//! is covered), with its timeline event (`app::promises::settle_due`). Readers already show
//! that status before the job runs; the job makes it permanent, for reports and for the
//! tenant's history.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::promises;
use crate::domain::conakry_day;
use crate::store::StoreError;

/// How often the job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

/// Delay of the first run after start (kept short of a test's length, so tests that spawn the
/// server see the data they wrote).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

pub use crate::store::promises::SETTLE_LOCK_ID;

/// Settles the promises due on `today` (`app::promises::settle_due`); answers how many.
pub async fn settle_due_promises(pool: &PgPool, today: NaiveDate) -> Result<u64, StoreError> {
    promises::settle_due(pool, today).await
}

/// Runs [`settle_due_promises`] every `every` (first run [`FIRST_RUN_AFTER`] after start, or
/// `every` if shorter) until `shutdown`.
pub async fn run_promise_job(pool: PgPool, shutdown: CancellationToken, every: Duration) {
    let schedule = super::Schedule {
        first_after: FIRST_RUN_AFTER.min(every),
        every,
    };
    super::run_every(shutdown, schedule, "promise_settlement", || {
        settle_due_promises(&pool, conakry_day(Utc::now()))
    })
    .await;
}
