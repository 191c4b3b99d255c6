//! Settlement of due promises: stores the final status (kept, partially kept, broken) that the
//! payments give each pending promise once its date has passed (or once it is covered), with
//! its timeline event. Readers already show that status before the job runs (see
//! `store::promises`); the job makes it permanent, for reports and for the tenant's history.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::{Gnf, PromiseProgress, PromiseStatus, conakry_day, conakry_day_start};
use crate::store::promises as store;

/// How often the job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

/// Delay of the first run after start (kept short of a test's length, so tests that spawn the
/// server see the data they wrote).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

/// The transaction-scoped advisory lock that makes one replica do the work: "akigprom".
pub const SETTLE_LOCK_ID: i64 = 0x616b_6967_7072_6f6d;

/// When a promise's final status took effect: a promise that ran out of time became partially
/// kept or broken when its promised date ended (00:00 Africa/Conakry the day after, or `now`
/// if that is later); a kept promise when it was seen covered (`now`).
pub fn settled_at(
    status: PromiseStatus,
    promised_date: NaiveDate,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match status {
        PromiseStatus::PartiallyKept | PromiseStatus::Broken => promised_date
            .checked_add_days(Days::new(1))
            .map(conakry_day_start)
            .map_or(now, |end| end.min(now)),
        _ => now,
    }
}

/// The status the payments give a stored-pending promise on `today`.
pub fn derived_status(promise: &store::PendingPromise, today: NaiveDate) -> PromiseStatus {
    PromiseProgress {
        amount: Gnf::new(promise.amount_gnf),
        promised_date: promise.promised_date,
        paid_by_promised_date: Gnf::new(promise.paid_by_date_gnf),
        cancelled: false,
    }
    .status_on(today)
}

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
        let status = derived_status(&promise, today);
        if !status.is_final() {
            continue;
        }
        let at = settled_at(status, promise.promised_date, now);
        if store::settle(
            &mut tx,
            promise.id,
            status.as_str(),
            promise.paid_by_date_gnf,
            at,
        )
        .await?
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn pending(amount: i64, date: NaiveDate, paid: i64) -> store::PendingPromise {
        store::PendingPromise {
            id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            amount_gnf: amount,
            promised_date: date,
            paid_by_date_gnf: paid,
        }
    }

    #[test]
    fn derived_status_follows_the_domain_rule() {
        let date = day(2026, 3, 20);
        assert_eq!(
            derived_status(&pending(100, date, 0), date),
            PromiseStatus::Pending
        );
        assert_eq!(
            derived_status(&pending(100, date, 100), date),
            PromiseStatus::Kept
        );
        let after = day(2026, 3, 21);
        assert_eq!(
            derived_status(&pending(100, date, 0), after),
            PromiseStatus::Broken
        );
        assert_eq!(
            derived_status(&pending(100, date, 40), after),
            PromiseStatus::PartiallyKept
        );
        assert_eq!(
            derived_status(&pending(100, date, 150), after),
            PromiseStatus::Kept
        );
    }

    #[test]
    fn a_promise_runs_out_of_time_when_its_day_ends() {
        let date = day(2026, 3, 20);
        let later = DateTime::parse_from_rfc3339("2026-03-25T08:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let end = DateTime::parse_from_rfc3339("2026-03-21T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(settled_at(PromiseStatus::Broken, date, later), end);
        assert_eq!(settled_at(PromiseStatus::PartiallyKept, date, later), end);
        assert_eq!(settled_at(PromiseStatus::Kept, date, later), later);
        // Never in the future, and the end of the calendar does not panic.
        let early = DateTime::parse_from_rfc3339("2026-03-20T10:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(settled_at(PromiseStatus::Broken, date, early), early);
        assert_eq!(
            settled_at(PromiseStatus::Broken, NaiveDate::MAX, later),
            later
        );
    }
}
