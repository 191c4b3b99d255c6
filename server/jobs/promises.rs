//! Settlement of due promises: stores the final status (kept, partially kept, broken) that the
//! payments give each pending promise once its date has passed (or once it is covered), with
//! its timeline event. Readers already show that status before the job runs (see
//! `store::promises`); the job makes it permanent, for reports and for the tenant's history.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::{PromiseStatus, conakry_day, settled_at, shown_status};
use crate::store::promises as store;

/// How often the job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

/// Delay of the first run after start (kept short of a test's length, so tests that spawn the
/// server see the data they wrote).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

/// The transaction-scoped advisory lock that makes one replica do the work: "akigprom".
pub const SETTLE_LOCK_ID: i64 = 0x616b_6967_7072_6f6d;

/// Settles every pending promise whose status is final on `today` (an Africa/Conakry day):
/// date passed (`promised_date < today`) or amount covered by payments made by the date. One
/// transaction under `pg_try_advisory_xact_lock`: when another replica holds the lock it is
/// doing this very work, and this call answers 0 at once. Idempotent: a settled promise is no
/// longer pending. Answers the number of promises settled.
pub async fn settle_due_promises(pool: &PgPool, today: NaiveDate) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SETTLE_LOCK_ID)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(0);
    }
    let now = Utc::now();
    let mut settled = 0;
    for promise in store::due_for_settlement(&mut tx, today).await? {
        let status = shown_status(PromiseStatus::Pending, &promise.progress(), today);
        if !status.is_final() {
            continue;
        }
        let at = settled_at(status, promise.promised_date, now);
        if store::settle(&mut tx, promise.id, status, promise.paid_by_date_gnf, at).await? {
            settled += 1;
        }
    }
    tx.commit().await?;
    Ok(settled)
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
