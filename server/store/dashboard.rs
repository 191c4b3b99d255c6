//! SQL of the dashboards: the facts of each charge that key figures are computed from, read
//! from the charges with the figures the writes keep on them (`paid_by_due_gnf`,
//! `last_payment_on`: migration `20261130202000_site_figures.sql`, ADR 0011) in one query; the
//! figures themselves are the domain's (`domain::kpi`).
//!
//! Decisions:
//! - Paid by the due date: allocations of payments that occurred on or before the charge's
//!   due date (Africa/Conakry days), with a reversal's (negative) allocations dated by the
//!   payment it cancels, so a reversed payment never counts as on time, whenever it was
//!   reversed. Clamped to 0..=due.
//! - Fully paid on: for a charge paid in full now, the Africa/Conakry day of the latest
//!   payment allocated to it that no reversal cancels (the day it occurred, not the day it was
//!   recorded, so back-dated payments count on their day).

use chrono::NaiveDate;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::error::Result;
use crate::domain::kpi::ChargeFacts;

/// A tenant as a ranking shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantLabel {
    pub id: Uuid,
    pub full_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit: String,
}

/// The facts of every charge due in `from..=to` of the tenants of `site_ids` (`None`: every
/// site), and those tenants, by name.
pub async fn charge_facts(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(Vec<ChargeFacts>, Vec<TenantLabel>)> {
    let rows = sqlx::query(
        "SELECT c.tenant_id, c.due_date, c.amount_due_gnf, c.amount_paid_gnf,
                c.paid_by_due_gnf AS by_due,
                CASE WHEN c.amount_paid_gnf = c.amount_due_gnf THEN c.last_payment_on END
                    AS last_paid_on
         FROM charges c
         JOIN tenants t ON t.id = c.tenant_id
         WHERE c.due_date BETWEEN $2 AND $3
           AND ($1::uuid[] IS NULL OR t.site_id = ANY($1))",
    )
    .bind(site_ids)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in rows {
        let due: i64 = row.try_get("amount_due_gnf")?;
        let due = due.max(0);
        let by_due: i64 = row.try_get("by_due")?;
        facts.push(ChargeFacts {
            tenant_id: row.try_get("tenant_id")?,
            due_date: row.try_get("due_date")?,
            due_gnf: due,
            paid_gnf: row.try_get::<i64, _>("amount_paid_gnf")?.clamp(0, due),
            paid_by_due_date_gnf: by_due.clamp(0, due),
            paid_in_full_on: row.try_get("last_paid_on")?,
        });
    }
    let tenants = sqlx::query_as(
        "SELECT t.id, t.full_name, t.site_id, s.name AS site_name, t.unit
         FROM tenants t JOIN sites s ON s.id = t.site_id
         WHERE ($1::uuid[] IS NULL OR t.site_id = ANY($1))
           AND EXISTS (SELECT 1 FROM charges c
                       WHERE c.tenant_id = t.id AND c.due_date BETWEEN $2 AND $3)
         ORDER BY t.full_name, t.id",
    )
    .bind(site_ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok((facts, tenants))
}
