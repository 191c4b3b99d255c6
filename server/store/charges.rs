//! SQL of charges (one per tenant and month): the arrears of a tenant on a day, and charges
//! by id for the timeline. What a payment does to charges is `store::payments` (it runs under
//! the tenant lock with the payment).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::error::Result;
use crate::domain::ChargePaid;

/// The tenant's charges due on or before `as_of`, oldest first, paid or not, with their
/// current paid figures (what the last replay wrote) and when the last payment counted on each
/// occurred (`domain::arrears`): the read model `charges.last_paid_at`, kept by the triggers of
/// `payment_allocations` (migration `20261130012000`), so one index range of the tenant. A past day's figures are replayed instead
/// (`domain::ledger::as_of`).
///
/// Not `tenant_arrears()` of the views migration: it selects by period rather than due date,
/// leaves out paid charges.
pub async fn arrears_charges(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    as_of: NaiveDate,
) -> Result<Vec<ChargePaid>> {
    let rows = sqlx::query(
        "SELECT c.id, c.period, c.due_date, c.amount_due_gnf AS due_gnf,
                c.amount_paid_gnf AS paid_gnf, c.last_paid_at, c.paid_in_full_at
         FROM charges c
         WHERE c.tenant_id = $1 AND c.due_date <= $2
         ORDER BY c.due_date, c.period, c.id",
    )
    .bind(tenant_id)
    .bind(as_of)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ChargePaid {
                charge_id: row.try_get("id")?,
                period: row.try_get("period")?,
                due_date: row.try_get("due_date")?,
                due_gnf: row.try_get("due_gnf")?,
                paid_gnf: row.try_get("paid_gnf")?,
                last_paid_at: row.try_get("last_paid_at")?,
                paid_in_full_at: row.try_get("paid_in_full_at")?,
            })
        })
        .collect()
}

/// A monthly charge with its current figures.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChargeRow {
    pub id: i64,
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub due_gnf: i64,
    pub paid_gnf: i64,
    pub paid_in_full_at: Option<DateTime<Utc>>,
}

/// Charges by id, with their current figures.
pub async fn by_ids(conn: &mut PgConnection, charge_ids: &[i64]) -> Result<Vec<ChargeRow>> {
    Ok(sqlx::query_as(
        "SELECT id, period, due_date, amount_due_gnf AS due_gnf, amount_paid_gnf AS paid_gnf,
                paid_in_full_at
         FROM charges WHERE id = ANY($1)",
    )
    .bind(charge_ids)
    .fetch_all(conn)
    .await?)
}
