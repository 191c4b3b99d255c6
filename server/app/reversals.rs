//! Reversals of payments: a reversal entry takes back exactly what its payment had allocated
//! at that moment (its rows, negated) and its credit part; then the tenant's ledger is replayed
//! without the payment (`app::ledger`, ADR 0010), so the credit and the later payments cover
//! the reopened charges.
//!
//! Decisions:
//! - Only a payment can be reversed, once, and not before it happened.
//! - A reversal entry takes its own receipt number from the site's counter (the schema
//!   requires one on every row), so the sequence of a site and year stays gap-free across
//!   payments and reversals. As for a payment, the number is taken after every other write
//!   (`store::number_entry`: the counter is the transaction's last lock); the answer is read
//!   after it, since an entry reads back only once numbered.
//! - A reversal is never refused because the payment's credit was spent since: the replay
//!   re-allocates what is left ([`AppError::PaymentCreditUsed`] is no longer answered).
//! - The payment's rows and the reversal entry's rows stay as written (history); only the rows
//!   of the payments still valid are re-allocated.
//! - The points of the payment go back (-3 for its collecting agent, on the reversal's day)
//!   only if it earned some: the score event with the reversal entry's INSERT, the agent's
//!   daily figures with its numbering (just before the counter, as for a payment); the
//!   payment's promise is derived again (`promises::rederive`).
//! - The request_id of a reversal is kept for good, as a payment's: a retry answers the stored
//!   reversal; the same request_id for another payment is [`AppError::RequestIdReused`].

use sqlx::PgConnection;
use uuid::Uuid;

use super::payments::{Entry, load, with_allocations};
use super::{Act, AppError, ledger, promises};
use crate::auth::caller::Caller;
use crate::domain::ledger::{self as domain_ledger, LedgerPayment, Line};
use crate::domain::{OccurredAt, PaymentKind, ScoreEventKind, conakry_day, receipt_year};
use crate::store::audit::AuditEvent;
use crate::store::payments::{self as store, PaymentRow, RowWrite};
use crate::store::promises as promise_store;
use crate::store::tenants::{self as tenant_store, Balance, LockedTenant};
use crate::store::{Constraint, StoreError, scores};

const REVERSE_ACTION: &str = "collections.payments.reverse";

/// A reversal to record, parsed.
#[derive(Debug, Clone)]
pub struct NewReversal {
    pub payment_id: Uuid,
    pub reason: String,
    pub occurred_at: OccurredAt,
}

/// What a reversal answers: the reversal entry, the payment it cancels, the tenant's balance,
/// and the audit event of a new reversal.
#[derive(Debug)]
pub struct Reversed {
    pub reversal: Entry,
    pub payment: Entry,
    pub balance: Balance,
    pub audit: Option<AuditEvent>,
}

/// The tenant of the payment to reverse, once the caller may see it (before the transaction).
pub async fn reversal_tenant(
    pool: &sqlx::PgPool,
    caller: &Caller,
    payment_id: Uuid,
) -> Result<Uuid, AppError> {
    let payment = store::get(pool, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    super::tenant_in_scope(pool, caller, payment.tenant_id).await?;
    Ok(payment.tenant_id)
}

/// Reverses a payment of `tenant_id` (see [`reversal_tenant`]): writes the reversal entry that
/// takes back what the payment had allocated and its credit part, replays the tenant's ledger
/// without it, takes the points back and derives the payment's promise again. A retry of a stored reversal answers it.
pub async fn reverse(
    conn: &mut PgConnection,
    act: &Act<'_>,
    input: &NewReversal,
    tenant_id: Uuid,
) -> Result<Reversed, AppError> {
    let tenant = tenant_store::lock(conn, tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    if let Some(stored) = store::by_request_id(conn, act.request_id).await? {
        if stored.kind != PaymentKind::Reversal
            || stored.reverses_payment_id != Some(input.payment_id)
        {
            return Err(AppError::RequestIdReused);
        }
        return reversed(conn, stored.id, input.payment_id, act, None).await;
    }
    let original = reversible(conn, input).await?;
    let (reversal_id, daily) = write(conn, act, input, &tenant, &original).await?;
    if let Some(promise_id) = original.promise_id
        && let Some(promise) = promise_store::state(conn, promise_id).await?
    {
        promises::rederive(conn, &promise, act.now).await?;
    }
    store::number_entry(conn, reversal_id, receipt_year(act.now), daily.as_ref()).await?;
    reversed(conn, reversal_id, original.id, act, None)
        .await
        .map(|done| Reversed {
            audit: Some(audit(act, input, &original, &done.reversal.row)),
            ..done
        })
}

/// The payment to reverse: a payment, not reversed yet, that happened before the reversal.
async fn reversible(conn: &mut PgConnection, input: &NewReversal) -> Result<PaymentRow, AppError> {
    let original = load(conn, input.payment_id).await?;
    if original.kind != PaymentKind::Payment {
        return Err(AppError::invalid(
            "payment_id",
            "is a reversal entry; only payments can be reversed",
        ));
    }
    if original.reversal_id.is_some() {
        return Err(AppError::PaymentAlreadyReversed);
    }
    if input.occurred_at.get() < original.occurred_at {
        return Err(AppError::invalid(
            "occurred_at",
            "is before the payment it reverses",
        ));
    }
    Ok(original)
}

/// Writes the reversal entry (not numbered yet) with the score event taking the points back,
/// its rows (the payment's rows negated) and the replay of the tenant's ledger without the
/// payment; answers the entry's id and what it takes from its agent's daily figures (written
/// when it is numbered).
async fn write(
    conn: &mut PgConnection,
    act: &Act<'_>,
    input: &NewReversal,
    tenant: &LockedTenant,
    original: &PaymentRow,
) -> Result<(Uuid, Option<store::DailyAdd>), AppError> {
    let stored = store::ledger(conn, tenant.id).await?;
    let reversal_id = Uuid::now_v7();
    let occurred_at = ledger::stored_instant(input.occurred_at.get());
    let (own, still_valid): (Vec<Line>, Vec<Line>) = stored
        .lines
        .iter()
        .partition(|line| line.payment_id == original.id);
    let paid_now = |charge_id: i64| {
        stored
            .charge_figures
            .iter()
            .find(|c| c.0 == charge_id)
            .map_or(0, |c| c.1.francs())
    };
    let due = |charge_id: i64| {
        stored
            .charges
            .iter()
            .find(|c| c.charge_id == charge_id)
            .map_or(0, |c| c.due.francs())
    };
    let history: Vec<RowWrite> = own
        .iter()
        .map(|line| RowWrite {
            payment_id: reversal_id,
            charge_id: line.charge_id,
            amount_gnf: -line.amount.francs(),
            outstanding_after_gnf: due(line.charge_id) - paid_now(line.charge_id)
                + line.amount.francs(),
        })
        .collect();
    let allocated: i64 = own.iter().map(|line| line.amount.francs()).sum();
    let entry = store::NewEntry {
        id: reversal_id,
        tenant_id: original.tenant_id,
        site_id: original.site_id,
        reverses_payment_id: Some(original.id),
        amount_gnf: original.amount_gnf,
        method: original.method,
        operator_reference: original.operator_reference.as_deref(),
        payer_phone: None,
        occurred_at,
        received_at: ledger::stored_instant(act.now),
        agent_id: act.caller.user_id,
        recorded_by: None,
        interaction_id: None,
        promise_id: None,
        mission_id: None,
        notes: "",
        reason: Some(&input.reason),
        credit_gnf: (original.amount_gnf - allocated).clamp(0, original.amount_gnf),
        request_id: act.request_id,
    };
    let score = taken_back(conn, original, input).await?;
    let inserted = store::insert_entry(conn, &entry, score.as_ref())
        .await
        .map_err(|error| match error {
            StoreError::Conflict(Constraint::PaymentRequestId) => AppError::RequestIdTaken,
            StoreError::Conflict(Constraint::PaymentReversed) => AppError::PaymentAlreadyReversed,
            other => other.into(),
        })?;
    let payments: Vec<LedgerPayment> = stored
        .payments
        .iter()
        .map(|p| LedgerPayment {
            reversed_at: if p.payment_id == original.id {
                Some(occurred_at)
            } else {
                p.reversed_at
            },
            ..*p
        })
        .collect();
    let replayed = domain_ledger::replay(&stored.charges, &payments)?;
    let cause = ledger::Cause {
        entry_id: inserted.id,
        history,
    };
    ledger::write(conn, act, tenant, &stored, &still_valid, &replayed, cause).await?;
    let daily = score.and_then(|s| s.daily(&inserted));
    Ok((inserted.id, daily))
}

/// The score event of the reversal: the payment's points go back from its collecting agent, on
/// the reversal's day, only if it earned some.
async fn taken_back(
    conn: &mut PgConnection,
    original: &PaymentRow,
    input: &NewReversal,
) -> Result<Option<store::EntryScore>, AppError> {
    let scored = scores::points_of_payment(conn, original.id).await? > 0;
    Ok(scored.then(|| store::EntryScore {
        agent_id: original.agent_id,
        day: input.occurred_at.day(),
        kind: ScoreEventKind::PaymentReversal,
        payments_count: 0,
        payments_gnf: 0,
    }))
}

fn audit(
    act: &Act<'_>,
    input: &NewReversal,
    original: &PaymentRow,
    reversal: &PaymentRow,
) -> AuditEvent {
    act.audit(REVERSE_ACTION)
        .target("payment", original.id)
        .detail("reversal_id", reversal.id.to_string())
        .detail("tenant_id", original.tenant_id.to_string())
        .detail("receipt_number", reversal.receipt_number.clone())
        .detail("amount_gnf", original.amount_gnf)
        .detail("reason", input.reason.clone())
}

async fn reversed(
    conn: &mut PgConnection,
    reversal_id: Uuid,
    payment_id: Uuid,
    act: &Act<'_>,
    audit: Option<AuditEvent>,
) -> Result<Reversed, AppError> {
    let reversal = load(conn, reversal_id).await?;
    let payment = load(conn, payment_id).await?;
    let balance = tenant_store::balance(conn, payment.tenant_id, conakry_day(act.now)).await?;
    Ok(Reversed {
        reversal: with_allocations(conn, reversal).await?,
        payment: with_allocations(conn, payment).await?,
        balance,
        audit,
    })
}
