//! SQL of promises to pay: creation (superseding the tenant's pending one), reschedules,
//! cancellations, what payments and reversals do to a promise, settlement of due promises, the
//! promise list, and promises as tenant cards and timelines show them.
//!
//! What a promise has been paid comes from the ledger through `promise_payments(id)` (see
//! `migrations/20261126000013_interactions.sql`); the status shown is derived from it on the
//! day of the read by `promise_derived_status(..)`, the SQL twin of
//! `domain::promise::PromiseProgress::status_on`, so a due promise reads kept, partially kept
//! or broken before the settlement job has stored it.
//!
//! The reads that show promises (the API's view, lists, cards and timelines) are in `views`.

mod views;

pub use views::*;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::error::{Result, StoreError};
use crate::domain::{Gnf, PromiseEventKind, PromiseProgress, PromiseStatus};

/// The reason stored on a promise replaced by a newer one of the same tenant.
pub const SUPERSEDED: &str = "superseded";

/// A promise to store, made in the call or visit `interaction_id`.
#[derive(Debug, Clone, Copy)]
pub struct NewPromise {
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub interaction_id: Uuid,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    /// Stored already cancelled as superseded: the tenant has a newer promise (an offline
    /// phone synced an older one late).
    pub superseded: bool,
}

pub async fn insert(conn: &mut PgConnection, new: &NewPromise) -> Result<Uuid> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO promises (tenant_id, agent_id, interaction_id, amount_gnf, promised_date,
                               status, cancel_reason, status_changed_at)
         VALUES ($1, $2, $3, $4, $5,
                 CASE WHEN $6 THEN 'cancelled' ELSE 'pending' END,
                 CASE WHEN $6 THEN $7 END,
                 CASE WHEN $6 THEN now() END)
         RETURNING id",
    )
    .bind(new.tenant_id)
    .bind(new.agent_id)
    .bind(new.interaction_id)
    .bind(new.amount_gnf)
    .bind(new.promised_date)
    .bind(new.superseded)
    .bind(SUPERSEDED)
    .fetch_one(&mut *conn)
    .await?;
    if new.superseded {
        insert_event(conn, id, "cancelled", None, None, Some(SUPERSEDED), None).await?;
    }
    Ok(id)
}

/// When the tenant's latest promise was made (its call or visit's occurred_at), whatever its
/// status.
pub async fn latest_made_at(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT max(coalesce(i.occurred_at, p.created_at))
         FROM promises p LEFT JOIN interactions i ON i.id = p.interaction_id
         WHERE p.tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from)
}

/// A stored-pending promise with what the ledger says about it, locked.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct PendingPromise {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    pub paid_by_date_gnf: i64,
}

impl PendingPromise {
    /// What decides its status (`domain::promise`).
    pub fn progress(&self) -> PromiseProgress {
        PromiseProgress {
            amount: Gnf::new(self.amount_gnf),
            promised_date: self.promised_date,
            paid_by_promised_date: Gnf::new(self.paid_by_date_gnf),
            cancelled: false,
        }
    }
}

const PENDING_SELECT: &str = "SELECT p.id, p.tenant_id, p.amount_gnf, p.promised_date,
        pp.paid_by_date_gnf
    FROM promises p CROSS JOIN LATERAL promise_payments(p.id) pp";

/// The tenant's pending promises (normally at most one), locked.
pub async fn pending_of_tenant(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<Vec<PendingPromise>> {
    sqlx::query_as(&format!(
        "{PENDING_SELECT} WHERE p.tenant_id = $1 AND p.status = 'pending'
         ORDER BY p.created_at, p.id FOR UPDATE OF p"
    ))
    .bind(tenant_id)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from)
}

/// The transaction-scoped advisory lock that makes one replica settle the due promises:
/// "akigprom".
pub const SETTLE_LOCK_ID: i64 = 0x616b_6967_7072_6f6d;

/// Takes the settlement lock for the rest of the transaction, without waiting: `false` when
/// another replica holds it (and is doing that very work).
pub async fn try_lock_settlement(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SETTLE_LOCK_ID)
        .fetch_one(conn)
        .await?)
}

/// Pending promises whose status is final on `today`: their date has passed, or the payments
/// made by their date cover them. Locked, oldest date first.
pub async fn due_for_settlement(
    conn: &mut PgConnection,
    today: NaiveDate,
) -> Result<Vec<PendingPromise>> {
    sqlx::query_as(&format!(
        "{PENDING_SELECT} WHERE p.status = 'pending'
           AND (p.promised_date < $1 OR pp.paid_by_date_gnf >= p.amount_gnf)
         ORDER BY p.promised_date, p.id FOR UPDATE OF p"
    ))
    .bind(today)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from)
}

/// Stores the final status the payments gave a pending promise (`kept`, `partially_kept`,
/// `broken`), what was paid by its date, and the timeline event. Answers false (and writes
/// nothing) when the promise is no longer pending.
pub async fn settle(
    conn: &mut PgConnection,
    promise_id: Uuid,
    status: PromiseStatus,
    covered_gnf: i64,
    at: DateTime<Utc>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE promises SET status = $2, covered_gnf = greatest($3, 0), status_changed_at = $4
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(promise_id)
    .bind(status.as_str())
    .bind(covered_gnf)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if updated {
        insert_event(
            conn,
            promise_id,
            status.as_str(),
            Some(at),
            None,
            None,
            None,
        )
        .await?;
    }
    Ok(updated)
}

/// Cancels a pending promise: by a user (`actor`, with the device time of the decision), or
/// by the server when a newer promise supersedes it (`actor` None). Answers false when the
/// promise is no longer pending.
pub async fn cancel(
    conn: &mut PgConnection,
    promise_id: Uuid,
    reason: &str,
    actor: Option<Uuid>,
    occurred_at: Option<DateTime<Utc>>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE promises SET status = 'cancelled', cancel_reason = $2, status_changed_at = now()
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(promise_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if updated {
        insert_event(
            conn,
            promise_id,
            "cancelled",
            occurred_at,
            actor,
            Some(reason),
            None,
        )
        .await?;
    }
    Ok(updated)
}

/// A change of date and/or amount of a pending promise.
#[derive(Debug, Clone, Copy)]
pub struct Reschedule<'a> {
    pub promise_id: Uuid,
    /// A new promised date (different from the current one): counts as a reschedule.
    pub promised_date: Option<NaiveDate>,
    pub amount_gnf: Option<i64>,
    pub reason: &'a str,
    pub actor: Uuid,
    pub occurred_at: DateTime<Utc>,
}

/// Applies the change and writes the `rescheduled` event (with the date before it when the
/// date changes). The first promised date is kept in `original_promised_date`.
pub async fn reschedule(conn: &mut PgConnection, change: &Reschedule<'_>) -> Result<()> {
    let previous: Option<NaiveDate> = sqlx::query_scalar(
        "UPDATE promises p
         SET original_promised_date = CASE WHEN $2::date IS NULL THEN p.original_promised_date
                 ELSE coalesce(p.original_promised_date, p.rescheduled_from, p.promised_date) END,
             rescheduled_from = CASE WHEN $2::date IS NULL THEN p.rescheduled_from
                                     ELSE p.promised_date END,
             reschedule_count = p.reschedule_count + CASE WHEN $2::date IS NULL THEN 0 ELSE 1 END,
             promised_date = coalesce($2::date, p.promised_date),
             amount_gnf = coalesce($3::bigint, p.amount_gnf),
             reschedule_reason = $4
         FROM promises old
         WHERE p.id = $1 AND old.id = p.id AND p.status = 'pending'
         RETURNING old.promised_date",
    )
    .bind(change.promise_id)
    .bind(change.promised_date)
    .bind(change.amount_gnf)
    .bind(change.reason)
    .fetch_optional(&mut *conn)
    .await?;
    insert_event(
        conn,
        change.promise_id,
        "rescheduled",
        Some(change.occurred_at),
        Some(change.actor),
        Some(change.reason),
        change.promised_date.and(previous),
    )
    .await
}

async fn insert_event(
    conn: &mut PgConnection,
    promise_id: Uuid,
    kind: &str,
    occurred_at: Option<DateTime<Utc>>,
    actor: Option<Uuid>,
    reason: Option<&str>,
    previous_promised_date: Option<NaiveDate>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO promise_events (promise_id, kind, occurred_at, actor_id, reason,
                                     previous_promised_date)
         VALUES ($1, $2, coalesce($3, now()), $4, $5, $6)",
    )
    .bind(promise_id)
    .bind(kind)
    .bind(occurred_at)
    .bind(actor)
    .bind(reason)
    .bind(previous_promised_date)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a promise; answers what the ledger says about it and its stored status.
pub async fn lock(
    conn: &mut PgConnection,
    promise_id: Uuid,
) -> Result<Option<(PendingPromise, PromiseStatus)>> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        #[sqlx(flatten)]
        promise: PendingPromise,
        #[sqlx(try_from = "String")]
        status: PromiseStatus,
    }
    let row: Option<Locked> = sqlx::query_as(
        "SELECT p.id, p.tenant_id, p.amount_gnf, p.promised_date, pp.paid_by_date_gnf, p.status
         FROM promises p CROSS JOIN LATERAL promise_payments(p.id) pp
         WHERE p.id = $1 FOR UPDATE OF p",
    )
    .bind(promise_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.promise, row.status)))
}

/// The tenant of a promise (for the scope check before anything is locked).
pub async fn tenant_of<'e>(
    executor: impl PgExecutor<'e>,
    promise_id: Uuid,
) -> Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT tenant_id FROM promises WHERE id = $1")
        .bind(promise_id)
        .fetch_optional(executor)
        .await
        .map_err(StoreError::from)
}

// ---------------------------------------------------------------------------------------------
// What a payment or a reversal does to a promise.

/// A promise as a payment sees it: whether the payment counts towards it, and its status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseState {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: PromiseStatus,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    pub covered_gnf: i64,
    /// When it was made: the call or visit's occurred_at, else when it was stored.
    pub made_at: DateTime<Utc>,
}

impl PromiseState {
    /// What decides its status once `covered_gnf` is paid by its date.
    pub fn progress(&self, covered_gnf: i64) -> PromiseProgress {
        PromiseProgress {
            amount: Gnf::new(self.amount_gnf),
            promised_date: self.promised_date,
            paid_by_promised_date: Gnf::new(covered_gnf),
            cancelled: self.status == PromiseStatus::Cancelled,
        }
    }
}

/// The SELECT of [`PromiseState`] up to its FROM clause (`p` is the promise); the caller adds
/// the WHERE and the lock.
pub(super) const PROMISE_STATE: &str = "SELECT p.id, p.tenant_id, p.status, p.amount_gnf,
        p.promised_date, p.covered_gnf, coalesce(i.occurred_at, p.created_at) AS made_at
    FROM promises p LEFT JOIN interactions i ON i.id = p.interaction_id";

/// One promise, locked.
pub async fn state(conn: &mut PgConnection, promise_id: Uuid) -> Result<Option<PromiseState>> {
    Ok(
        sqlx::query_as(&format!("{PROMISE_STATE} WHERE p.id = $1 FOR UPDATE OF p"))
            .bind(promise_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// What the tenant's payments made on or before the promise's date (Africa/Conakry days)
/// have paid towards it, net of reversals: the ledger's answer (`promise_payments`), the one
/// every reader of promises uses.
pub async fn paid_by_date(conn: &mut PgConnection, promise_id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT paid_by_date_gnf FROM promise_payments($1)")
            .bind(promise_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Stores a promise's coverage and status; `status_changed_at` is set to `now` when the
/// status changes to a final one, cleared when it goes back to pending; with `event`, the
/// timeline event of the change (at `now`).
pub async fn set_progress(
    conn: &mut PgConnection,
    promise_id: Uuid,
    covered_gnf: i64,
    status: PromiseStatus,
    status_changed: bool,
    event: Option<PromiseEventKind>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE promises
         SET covered_gnf = $2, status = $3,
             status_changed_at = CASE WHEN NOT $4 THEN status_changed_at
                                      WHEN $3 = 'pending' THEN NULL
                                      ELSE $5 END
         WHERE id = $1",
    )
    .bind(promise_id)
    .bind(covered_gnf)
    .bind(status.as_str())
    .bind(status_changed)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if let Some(kind) = event {
        sqlx::query(
            "INSERT INTO promise_events (promise_id, kind, occurred_at, received_at)
             VALUES ($1, $2, $3, $3)",
        )
        .bind(promise_id)
        .bind(kind.as_str())
        .bind(now)
        .execute(conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;
    use chrono::NaiveDate;

    use super::PendingPromise;
    use crate::domain::{PromiseStatus, shown_status};

    /// Lists filter by the status SQL derives (`promise_derived_status`); the job, the writes
    /// and the readers use the Rust rule (`domain::promise::shown_status`). Both must agree on
    /// every case, whatever the stored status.
    #[tokio::test]
    async fn sql_and_rust_derive_the_same_status() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let promised = NaiveDate::from_ymd_opt(2026, 3, 15).expect("date");
        let mut cases = 0;
        for stored in PromiseStatus::ALL {
            for amount in [1, 50_000, 300_000] {
                for paid in [0, 1, 49_999, 50_000, 50_001, 299_999, 300_000, 900_000] {
                    for offset in [-30, -1, 0, 1, 2, 90] {
                        let today = promised + chrono::Duration::days(offset);
                        let promise = PendingPromise {
                            id: uuid::Uuid::nil(),
                            tenant_id: uuid::Uuid::nil(),
                            amount_gnf: amount,
                            promised_date: promised,
                            paid_by_date_gnf: paid,
                        };
                        let rust = shown_status(stored, &promise.progress(), today);
                        let sql: String =
                            sqlx::query_scalar("SELECT promise_derived_status($1, $2, $3, $4, $5)")
                                .bind(stored.as_str())
                                .bind(amount)
                                .bind(promised)
                                .bind(paid)
                                .bind(today)
                                .fetch_one(&pool)
                                .await
                                .expect("sql status");
                        assert_eq!(
                            sql,
                            rust.as_str(),
                            "stored {stored}, amount {amount}, paid {paid}, today {today}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 3 * 8 * 6);
    }
}
