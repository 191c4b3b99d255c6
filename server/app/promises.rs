//! Promises to pay: made during a call or a visit, changed or cancelled by a user, settled by
//! the money. The status rule is the domain's (`domain::promise`); this module applies it to
//! stored promises.
//!
//! Decisions:
//! - A new promise supersedes the tenant's pending one (cancelled, reason "superseded"). When
//!   that pending promise is already final by the payments (its date passed, or it is
//!   covered), it is settled with that status instead. A promise made *before* the tenant's
//!   latest one (an offline phone syncing late) is stored already superseded.
//! - Only a promise pending on the day of the change may be rescheduled, have its amount
//!   changed or be cancelled ([`AppError::PromiseNotPending`] otherwise); its status is the one
//!   a reader would see (`shown_status`), whether or not the settlement job has stored it.
//! - After a payment or a reversal the linked promise's status is derived again from the
//!   ledger ([`rederive`]): a kept promise may go back to pending; the events kept, partially
//!   kept and broken are written when the status becomes one of them.
//! - Settlement ([`settle_due`]) runs in every replica under an advisory lock: the replica that
//!   holds it does the work, the others skip that run.
//! - Promise statuses are shown as the payments make them on the day of the read, whether or
//!   not the settlement job has stored them yet.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Act, AppError, tenant_in_scope};
use crate::auth::caller::{Caller, Scope};
use crate::domain::{
    NewPromise, PromiseEventKind, PromiseStatus, conakry_day, ensure_pending, settled_at,
    shown_status,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::promises::{
    self as store, Cursor, ListFilter, PendingPromise, PromiseState, PromiseView, Visibility,
};

const UPDATE_ACTION: &str = "collections.promises.update";

/// Derives a promise's status again from the ledger after a payment or a reversal and stores
/// it with what was paid by its date (see the module's decisions).
pub async fn rederive(
    conn: &mut PgConnection,
    promise: &PromiseState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let covered = store::paid_by_date(conn, promise.id).await?;
    let status = promise.progress(covered).status_on(conakry_day(now));
    let changed = status != promise.status;
    if !changed && covered == promise.covered_gnf {
        return Ok(());
    }
    let event = if changed {
        PromiseEventKind::settled(status)
    } else {
        None
    };
    store::set_progress(conn, promise.id, covered, status, changed, event, now).await
}

/// Settles a stored-pending promise when the money has made its status final on `today`;
/// answers whether it did.
async fn settle_if_final(
    conn: &mut PgConnection,
    promise: &PendingPromise,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let status = shown_status(PromiseStatus::Pending, &promise.progress(), today);
    if !status.is_final() {
        return Ok(false);
    }
    let at = settled_at(status, promise.promised_date, now);
    store::settle(conn, promise.id, status, promise.paid_by_date_gnf, at).await
}

/// Settles every pending promise whose status is final on `today` (an Africa/Conakry day):
/// date passed (`promised_date < today`) or amount covered by payments made by the date. One
/// transaction under the settlement lock: when another replica holds it, it is doing this very
/// work, and this call answers 0 at once. Idempotent: a settled promise is no longer pending.
/// Answers the number of promises settled.
pub async fn settle_due(pool: &PgPool, today: NaiveDate) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    if !store::try_lock_settlement(&mut tx).await? {
        tx.rollback().await?;
        return Ok(0);
    }
    let now = Utc::now();
    let mut settled = 0;
    for promise in store::due_for_settlement(&mut tx, today).await? {
        if settle_if_final(&mut tx, &promise, today, now).await? {
            settled += 1;
        }
    }
    tx.commit().await?;
    Ok(settled)
}

/// Stores the promise obtained by a call or visit of `agent_id`, made at `made_at`; the
/// tenant's pending promise gives way to it (see the module's decisions). Answers its id.
pub async fn make(
    conn: &mut PgConnection,
    promise: &NewPromise,
    tenant_id: Uuid,
    agent_id: Uuid,
    interaction_id: Uuid,
    made_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let newer_exists = store::latest_made_at(conn, tenant_id)
        .await?
        .is_some_and(|latest| latest > made_at);
    if !newer_exists {
        let today = conakry_day(now);
        for pending in store::pending_of_tenant(conn, tenant_id).await? {
            if !settle_if_final(conn, &pending, today, now).await? {
                store::cancel(conn, pending.id, store::SUPERSEDED, None, None).await?;
            }
        }
    }
    store::insert(
        conn,
        &store::NewPromise {
            tenant_id,
            agent_id,
            interaction_id,
            amount_gnf: promise.amount().francs(),
            promised_date: promise.promised_date(),
            superseded: newer_exists,
        },
    )
    .await
}

/// A change a user asks of a promise.
#[derive(Debug, Clone)]
pub enum Change {
    Cancel,
    /// A new date and/or amount (`None`: unchanged).
    Reschedule {
        promised_date: Option<NaiveDate>,
        amount_gnf: Option<i64>,
    },
}

/// An UpdatePromise, parsed.
#[derive(Debug, Clone)]
pub struct PromiseUpdate {
    pub promise_id: Uuid,
    pub change: Change,
    pub reason: String,
    /// When the user decided the change (device time).
    pub occurred_at: DateTime<Utc>,
    /// The fields the update names, for the audit trail.
    pub paths: Vec<String>,
}

/// The promise as it is after an update, and the audit event of the update.
#[derive(Debug)]
pub struct Updated {
    pub promise: PromiseView,
    pub audit: Option<AuditEvent>,
}

/// The promise to update, once the caller may see its tenant (before the transaction).
pub async fn check_update(
    pool: &PgPool,
    caller: &Caller,
    promise_id: Uuid,
) -> Result<(), AppError> {
    let tenant_id = store::tenant_of(pool, promise_id)
        .await?
        .ok_or(AppError::NotFound("promise"))?;
    tenant_in_scope(pool, caller, tenant_id).await?;
    Ok(())
}

/// Applies a user's change to a pending promise (see the module's decisions).
pub async fn update(
    conn: &mut PgConnection,
    act: &Act<'_>,
    update: &PromiseUpdate,
) -> Result<Updated, AppError> {
    let today = conakry_day(act.now);
    let (promise, stored) = store::lock(conn, update.promise_id)
        .await?
        .ok_or(AppError::NotFound("promise"))?;
    ensure_pending(shown_status(stored, &promise.progress(), today))
        .map_err(|e| AppError::PromiseNotPending(e.status))?;

    match update.change {
        Change::Cancel => {
            store::cancel(
                conn,
                promise.id,
                &update.reason,
                Some(act.caller.user_id),
                Some(update.occurred_at),
            )
            .await?;
        }
        Change::Reschedule {
            promised_date,
            amount_gnf,
        } => {
            let promised_date = promised_date.filter(|date| *date != promise.promised_date);
            let amount_gnf = amount_gnf.filter(|amount| *amount != promise.amount_gnf);
            if promised_date.is_some() || amount_gnf.is_some() {
                store::reschedule(
                    conn,
                    &store::Reschedule {
                        promise_id: promise.id,
                        promised_date,
                        amount_gnf,
                        reason: &update.reason,
                        actor: act.caller.user_id,
                        occurred_at: update.occurred_at,
                    },
                )
                .await?;
            }
        }
    }

    let audit = act
        .audit(UPDATE_ACTION)
        .target("promise", promise.id)
        .detail("tenant_id", promise.tenant_id.to_string())
        .detail("paths", update.paths.clone())
        .detail("reason", update.reason.clone());
    let view = store::get(&mut *conn, promise.id, today)
        .await?
        .ok_or(AppError::NotFound("promise"))?;
    Ok(Updated {
        promise: view,
        audit: Some(audit),
    })
}

/// Which promises a caller may list: their sites' tenants', plus an agent's own and a
/// supervisor's team's wherever they are.
fn visibility(caller: &Caller) -> Visibility {
    match caller.scope() {
        Scope::Company => Visibility::All,
        Scope::Sites(sites) => Visibility::Sites {
            site_ids: sites.to_vec(),
            own_agent_id: None,
            supervisor_id: None,
        },
        Scope::Team {
            supervisor_id,
            site_ids,
        } => Visibility::Sites {
            site_ids: site_ids.to_vec(),
            own_agent_id: None,
            supervisor_id: Some(supervisor_id),
        },
        Scope::Own { agent_id, site_ids } => Visibility::Sites {
            site_ids: site_ids.to_vec(),
            own_agent_id: Some(agent_id),
            supervisor_id: None,
        },
    }
}

/// One page of promises.
#[derive(Debug)]
pub struct Page {
    pub promises: Vec<PromiseView>,
    /// More promises follow the last one.
    pub more: bool,
    /// Promises matching the filter (all pages) and the sum of their amounts.
    pub total_size: i64,
    pub total_amount_gnf: i64,
}

/// The promises matching `filter` after `after` that the caller may see, by promised date,
/// tenant name and id, with statuses as of `today`.
pub async fn list(
    pool: &PgPool,
    caller: &Caller,
    filter: &ListFilter,
    after: Option<&Cursor>,
    page_size: i64,
    today: NaiveDate,
) -> Result<Page, AppError> {
    let visibility = visibility(caller);
    let mut promises = store::list(pool, today, &visibility, filter, after, page_size + 1).await?;
    let more = crate::store::one_page(&mut promises, page_size);
    let (total_size, total_amount_gnf) = store::totals(pool, today, &visibility, filter).await?;
    Ok(Page {
        promises,
        more,
        total_size,
        total_amount_gnf,
    })
}
