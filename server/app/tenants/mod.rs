//! Reads about tenants: the tenant card, arrears, and the timeline (search:
//! `app::tenant_search`).
//!
//! Decisions:
//! - "Today" and every day boundary are Africa/Conakry days (`domain::clock`).
//! - Every read runs in one read-only snapshot (`store::begin_read`).
//! - Arrears for a past day: the tenant's ledger replayed as it stood at the end of that day
//!   (`domain::ledger::as_of`: the charges issued by then, the payments and reversals that had
//!   happened by then), credit included; for today or later, the stored figures the last
//!   replay wrote (`amount_paid_gnf`, the tenant's credit). The report is the domain's
//!   (`domain::arrears`).
//! - Promise statuses are derived on the day of the read; a timeline event shows the promise's
//!   date, status and reschedule count as they were right after it (`domain::timeline`), its
//!   amount and paid figure as they are now.

mod history;

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{AppError, ensure_covers};
use crate::auth::caller::Caller;
use crate::domain::ledger;
use crate::domain::{AgingBuckets, Arrears, Overdue, PromiseNow, PromiseSnapshot, arrears};
use crate::store::begin_read;
use crate::store::charges;
use crate::store::interactions::{self, LastInteractionRow};
use crate::store::payments;
use crate::store::promises::{self, PromiseRow};
use crate::store::tenants::{self as store, TenantCardRow, TenantRefRow};

pub use history::{Happened, History, HistoryEntry, HistoryQuery, history};

/// A promise as shown at one point of its life.
#[derive(Debug, Clone)]
pub struct PromiseAt {
    pub row: PromiseRow,
    pub snapshot: PromiseSnapshot,
}

/// What a tenant card shows.
#[derive(Debug, Clone)]
pub struct Card {
    pub row: TenantCardRow,
    /// Of the oldest unpaid charge due by today.
    pub overdue: Overdue,
    pub last_interaction: Option<LastInteractionRow>,
    pub pending_promise: Option<PromiseAt>,
}

/// The card of one tenant the caller may see.
pub async fn card(
    pool: &PgPool,
    caller: &Caller,
    tenant_id: Uuid,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Card, AppError> {
    let mut tx = begin_read(pool).await?;
    // The card's row names the site: the scope is checked on it before anything else is read.
    let row = store::cards(&mut tx, &[tenant_id], today)
        .await?
        .pop()
        .ok_or(AppError::NotFound("tenant"))?;
    ensure_covers(caller, row.site_id)?;
    decorate(&mut tx, vec![row], &[tenant_id], today, aging)
        .await?
        .pop()
        .ok_or(AppError::NotFound("tenant"))
}

/// The cards of `ids`, in the order of `ids` (unknown ids left out).
pub(crate) async fn cards(
    conn: &mut PgConnection,
    ids: &[Uuid],
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<Card>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store::cards(&mut *conn, ids, today).await?;
    decorate(conn, rows, ids, today, aging).await
}

/// The cards of `rows` (read for `ids`), in the order of `ids`: their last interaction and
/// pending promise added.
async fn decorate(
    conn: &mut PgConnection,
    rows: Vec<TenantCardRow>,
    ids: &[Uuid],
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<Card>, AppError> {
    let mut last: HashMap<Uuid, LastInteractionRow> = interactions::latest_of_tenants(conn, ids)
        .await?
        .into_iter()
        .map(|row| (row.tenant_id, row))
        .collect();
    let mut pending: HashMap<Uuid, PromiseRow> = HashMap::new();
    // Newest first: the first one seen per tenant is kept.
    for row in promises::pending_of_tenants(conn, ids, today).await? {
        pending.entry(row.tenant_id).or_insert(row);
    }
    let mut by_id: HashMap<Uuid, TenantCardRow> =
        rows.into_iter().map(|row| (row.id, row)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| {
            let row = by_id.remove(id)?;
            let overdue = row
                .oldest_unpaid_due_date
                .map(|due| aging.overdue(due, today))
                .unwrap_or_default();
            Some(Card {
                row,
                overdue,
                last_interaction: last.remove(id),
                pending_promise: pending.remove(id).map(|row| PromiseAt {
                    snapshot: PromiseSnapshot::current(&promise_now(&row)),
                    row,
                }),
            })
        })
        .collect())
}

fn promise_now(row: &PromiseRow) -> PromiseNow {
    PromiseNow {
        promised_date: row.promised_date,
        original_promised_date: row.original_promised_date,
        status: row.status,
        reschedule_count: row.reschedule_count,
        cancel_reason: row.cancel_reason.clone(),
        reschedule_reason: row.reschedule_reason.clone(),
        status_changed_at: row.status_changed_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Arrears

/// The arrears of a tenant on `as_of`, with the tenant.
#[derive(Debug, Clone)]
pub struct TenantArrears {
    pub tenant: TenantRefRow,
    pub arrears: Arrears,
}

/// The arrears of a tenant the caller may see, on `as_of` (see the module's decisions).
pub async fn arrears_on(
    pool: &PgPool,
    caller: &Caller,
    tenant_id: Uuid,
    as_of: NaiveDate,
    include_paid: bool,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<TenantArrears, AppError> {
    let mut tx = begin_read(pool).await?;
    let mut tenant = tenant_of(&mut tx, caller, tenant_id).await?;
    let current = as_of >= today;
    let paid = if current {
        charges::arrears_charges(&mut tx, tenant_id, as_of).await?
    } else {
        let stored = payments::ledger(&mut tx, tenant_id).await?;
        let then = ledger::as_of(&stored.charges, &stored.payments, as_of)?;
        tenant.credit_gnf = then.credit.francs();
        then.charges_due_by(as_of)
    };
    let arrears = arrears(&paid, as_of, include_paid, current, aging)?;
    Ok(TenantArrears { tenant, arrears })
}

/// The tenant as lists show it, once the caller is known to be allowed to see it (one
/// statement): NotFound for an unknown tenant, OutOfScope for one outside the caller's sites.
async fn tenant_of(
    conn: &mut PgConnection,
    caller: &Caller,
    tenant_id: Uuid,
) -> Result<TenantRefRow, AppError> {
    let tenant = store::tenant_ref(conn, tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    ensure_covers(caller, tenant.site_id)?;
    Ok(tenant)
}

/// The day after `day` (or `day` at the end of the calendar).
pub fn day_after(day: NaiveDate) -> NaiveDate {
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}
