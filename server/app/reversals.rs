//! Reversals of payments: a reversal entry reopens exactly the charges its payment paid and
//! takes its credit back (`domain::allocation::reverse`).
//!
//! Decisions:
//! - Only a payment can be reversed, once, and not before it happened.
//! - A reversal entry takes its own receipt number from the site's counter (the schema
//!   requires one on every row), so the sequence of a site and year stays gap-free across
//!   payments and reversals.
//! - The credit a payment left may have been spent on later charges since: the reversal is
//!   then refused ([`AppError::PaymentCreditUsed`]).
//! - The points of the payment go back (-3 for its collecting agent, on the reversal's day)
//!   only if it earned some; the payment's promise is derived again (`promises::rederive`).
//! - The request_id of a reversal is kept for good, as a payment's: a retry answers the stored
//!   reversal; the same request_id for another payment is [`AppError::RequestIdReused`].

use sqlx::PgConnection;
use uuid::Uuid;

use super::payments::{Entry, load, with_allocations};
use super::{Act, AppError, promises};
use crate::auth::caller::Caller;
use crate::domain::allocation::{self, Reversal, ReversalError};
use crate::domain::{Gnf, OccurredAt, PaymentKind, ScoreEventKind, conakry_day, receipt_year};
use crate::store::audit::AuditEvent;
use crate::store::payments::{self as store, PaymentRow};
use crate::store::promises as promise_store;
use crate::store::tenants::{self as tenant_store, Balance};
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
/// reopens exactly the charges the payment paid and takes its credit back, takes the points
/// back and derives the payment's promise again. A retry of a stored reversal answers it.
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
    let reversal = plan(conn, &original, Gnf::new(tenant.credit_gnf)).await?;
    let reversal_id = write(conn, act, input, &original, &reversal).await?;
    take_points_back(conn, &original, reversal_id, input.occurred_at).await?;
    if let Some(promise_id) = original.promise_id
        && let Some(promise) = promise_store::state(conn, promise_id).await?
    {
        promises::rederive(conn, &promise, act.now).await?;
    }
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

/// What reversing `original` does, the tenant's credit being `credit` now.
async fn plan(
    conn: &mut PgConnection,
    original: &PaymentRow,
    credit: Gnf,
) -> Result<Reversal, AppError> {
    let allocations: Vec<(i64, Gnf)> = store::allocations_of_payment(conn, original.id)
        .await?
        .into_iter()
        .map(|(charge_id, amount)| (charge_id, Gnf::new(amount)))
        .collect();
    let left = Gnf::new(original.credit_gnf);
    allocation::reverse(&allocations, left, credit).map_err(|error| match error {
        ReversalError::CreditAlreadyUsed { missing } => AppError::PaymentCreditUsed {
            credit: left,
            missing,
        },
        other => AppError::internal(other),
    })
}

/// Writes the reversal entry (numbered, the credit moved) and its allocations; answers its id.
async fn write(
    conn: &mut PgConnection,
    act: &Act<'_>,
    input: &NewReversal,
    original: &PaymentRow,
    reversal: &Reversal,
) -> Result<Uuid, AppError> {
    let occurred_at = input.occurred_at.get();
    let entry = store::NewEntry {
        tenant_id: original.tenant_id,
        site_id: original.site_id,
        reverses_payment_id: Some(original.id),
        amount_gnf: original.amount_gnf,
        method: original.method,
        operator_reference: original.operator_reference.as_deref(),
        payer_phone: None,
        receipt_year: receipt_year(act.now),
        occurred_at,
        received_at: act.now,
        agent_id: act.caller.user_id,
        recorded_by: None,
        interaction_id: None,
        promise_id: None,
        mission_id: None,
        notes: "",
        reason: Some(&input.reason),
        credit_gnf: original.credit_gnf,
        tenant_credit_delta: reversal.credit_delta.francs(),
        request_id: act.request_id,
    };
    let inserted = store::insert_entry(conn, &entry, None)
        .await
        .map_err(|error| match error {
            StoreError::Conflict(Constraint::PaymentRequestId) => AppError::RequestIdTaken,
            StoreError::Conflict(Constraint::PaymentReversed) => AppError::PaymentAlreadyReversed,
            other => other.into(),
        })?;
    for line in &reversal.lines {
        store::allocate(
            conn,
            inserted.id,
            line.charge_id,
            line.amount.francs(),
            occurred_at,
        )
        .await?;
    }
    Ok(inserted.id)
}

/// The payment's points go back from its collecting agent, on the reversal's day, only if it
/// earned some.
async fn take_points_back(
    conn: &mut PgConnection,
    original: &PaymentRow,
    reversal_id: Uuid,
    occurred_at: OccurredAt,
) -> Result<(), AppError> {
    if scores::points_of_payment(conn, original.id).await? > 0 {
        scores::add(
            conn,
            &scores::Scored {
                agent_id: original.agent_id,
                day: occurred_at.day(),
                occurred_at: occurred_at.get(),
                events: &[scores::Event {
                    kind: ScoreEventKind::PaymentReversal,
                    source_id: reversal_id,
                }],
                counters: scores::Counters::default(),
            },
        )
        .await?;
    }
    Ok(())
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
