//! SQL of the money ledger: payments and reversals (append-only facts), their allocations to
//! charges and the tenant's credit (derived: rewritten by difference by each replay, ADR
//! 0010), receipt numbers, the promise a payment counts towards, and the score events of
//! payments.
//!
//! Every write runs inside the caller's transaction, after `store::tenants::lock`: the tenant
//! row lock serialises the payments and reversals of one tenant, so charges, credit and
//! allocations are read and written by one transaction at a time. Locks are taken in this
//! order: tenant, the pending promise, a promise the payment names, operator reference,
//! receipt counter of the site (taken by the insert); the charges and allocation rows a replay
//! writes are the tenant's, which the tenant lock already serialises.
//!
//! The reads (one entry, entries by id, allocations, the payment list and its totals) are in
//! `reads`.

mod reads;

pub use reads::*;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::error::{Result, StoreError};
use super::promises::{PROMISE_STATE, PromiseState};
use crate::domain::ledger::{ChargeOutcome, LedgerCharge, LedgerPayment, Line};
use crate::domain::{Gnf, PaymentKind, PaymentMethod, ScoreEventKind};

/// The tenant's pending promise (at most one; the newest if the data says otherwise), locked.
/// Runs after the tenant lock (`store::tenants::lock`), in a statement of its own: under READ
/// COMMITTED it then reads with a snapshot taken after the tenant lock was granted, so it sees
/// the promise a call or visit that held the lock before it has just made.
pub async fn pending_promise(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<Option<PromiseState>> {
    sqlx::query_as(&format!(
        "{PROMISE_STATE} WHERE p.tenant_id = $1 AND p.status = 'pending'
         ORDER BY p.created_at DESC, p.id DESC LIMIT 1 FOR UPDATE OF p"
    ))
    .bind(tenant_id)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from)
}

/// Serialises the payments that carry one operator reference key (whatever their tenant and
/// however the reference was typed), so the duplicate check below cannot race. Released at the
/// end of the transaction. `key`: `OperatorReference::key`.
pub async fn lock_operator_reference(
    conn: &mut PgConnection,
    method: PaymentMethod,
    key: &str,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "akig.payments.operator_reference_key\n{}\n{key}",
            method.as_str()
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a payment (not reversed) already carries this method and operator reference key
/// (the generated column `operator_reference_key`).
pub async fn operator_reference_used(
    conn: &mut PgConnection,
    method: PaymentMethod,
    key: &str,
) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM payments p
             WHERE p.operator_reference_key = $2 AND p.method = $1 AND p.kind = 'payment'
               AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id))",
    )
    .bind(method.as_str())
    .bind(key)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from)
}

/// What a stored entry was recorded from, to tell a late retry from a reuse of its id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredRequest {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: PaymentKind,
    pub tenant_id: Uuid,
    pub amount_gnf: i64,
    #[sqlx(try_from = "String")]
    pub method: PaymentMethod,
    pub operator_reference: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub agent_id: Uuid,
    pub reverses_payment_id: Option<Uuid>,
}

/// The entry recorded with this client request_id, if any (kept for good).
pub async fn by_request_id(
    conn: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<StoredRequest>> {
    sqlx::query_as(
        "SELECT id, kind, tenant_id, amount_gnf, method, operator_reference, occurred_at,
                agent_id, reverses_payment_id
         FROM payments WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from)
}

/// A ledger row to insert: a payment, or a reversal (`reverses_payment_id` and `reason` set).
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Chosen by the caller: the replay orders payments by id last.
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub reverses_payment_id: Option<Uuid>,
    pub amount_gnf: i64,
    pub method: PaymentMethod,
    pub operator_reference: Option<&'a str>,
    pub payer_phone: Option<&'a str>,
    /// The receipt number is the next of the site's counter for this year
    /// (`next_receipt_number`), taken by the insert itself.
    pub receipt_year: i32,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub agent_id: Uuid,
    pub recorded_by: Option<Uuid>,
    pub interaction_id: Option<Uuid>,
    pub promise_id: Option<Uuid>,
    pub mission_id: Option<Uuid>,
    pub notes: &'a str,
    pub reason: Option<&'a str>,
    /// The part of the amount that went to no charge when it was written (a reversal: the
    /// credit part of the payment it cancels, at that moment).
    pub credit_gnf: i64,
    pub request_id: Uuid,
}

/// The score event a payment earns its collecting agent, written by the payment's INSERT (as
/// `store::scores::add` writes one): at most once per kind and payment, added to the agent's
/// daily figures.
#[derive(Debug, Clone, Copy)]
pub struct EntryScore {
    pub agent_id: Uuid,
    /// Africa/Conakry day of the entry's `occurred_at`.
    pub day: NaiveDate,
    pub kind: ScoreEventKind,
    pub payments_count: i32,
    pub payments_gnf: i64,
}

/// What the database made of an inserted entry: its id, its times as stored (microseconds),
/// the names of its agent and of who recorded it, and the points its score event gave.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InsertedEntry {
    pub id: Uuid,
    pub receipt_number: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub agent_name: String,
    pub recorded_by_name: Option<String>,
    /// 0 without a score.
    pub score_points: i64,
}

/// Inserts the entry, numbered, and with `score` its score event and daily figures, in one
/// statement. Its allocation rows and the tenant's credit are the replay's ([`write_replay`]).
pub async fn insert_entry(
    conn: &mut PgConnection,
    entry: &NewEntry<'_>,
    score: Option<&EntryScore>,
) -> Result<InsertedEntry> {
    let kind = if entry.reverses_payment_id.is_some() {
        PaymentKind::Reversal
    } else {
        PaymentKind::Payment
    };
    sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO payments
               (id, tenant_id, site_id, kind, amount_gnf, method, operator_reference, payer_phone,
                receipt_number, occurred_at, received_at, agent_id, recorded_by,
                interaction_id, promise_id, mission_id, notes, reverses_payment_id, reason,
                credit_gnf, request_id)
             VALUES ($21, $1, $2, $3, $4, $5, $6, $7, next_receipt_number($2, $8), $9, $10, $11,
                     $12, $13, $14, $15, $16, $17, $18, $19, $20)
             RETURNING id, receipt_number, occurred_at, received_at, agent_id, recorded_by),
         event AS (
             INSERT INTO score_events (agent_id, day, kind, points, payment_id, occurred_at)
             SELECT $22, $23, $24, $25, i.id, i.occurred_at FROM inserted i WHERE $22 IS NOT NULL
             ON CONFLICT (kind, payment_id) WHERE payment_id IS NOT NULL DO NOTHING
             RETURNING agent_id, day, points),
         daily AS (
             INSERT INTO agent_daily_scores AS s
               (agent_id, day, score, payments_count, payments_gnf)
             SELECT agent_id, day, points, $26, $27 FROM event
             ON CONFLICT (agent_id, day) DO UPDATE
             SET score = s.score + EXCLUDED.score,
                 payments_count = s.payments_count + EXCLUDED.payments_count,
                 payments_gnf = s.payments_gnf + EXCLUDED.payments_gnf)
         SELECT i.id, i.receipt_number, i.occurred_at, i.received_at,
                (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
                (SELECT full_name FROM users WHERE id = i.recorded_by) AS recorded_by_name,
                (SELECT coalesce(sum(points), 0)::bigint FROM event) AS score_points
         FROM inserted i",
    )
    .bind(entry.tenant_id)
    .bind(entry.site_id)
    .bind(kind.as_str())
    .bind(entry.amount_gnf)
    .bind(entry.method.as_str())
    .bind(entry.operator_reference)
    .bind(entry.payer_phone)
    .bind(entry.receipt_year)
    .bind(entry.occurred_at)
    .bind(entry.received_at)
    .bind(entry.agent_id)
    .bind(entry.recorded_by)
    .bind(entry.interaction_id)
    .bind(entry.promise_id)
    .bind(entry.mission_id)
    .bind(entry.notes)
    .bind(entry.reverses_payment_id)
    .bind(entry.reason)
    .bind(entry.credit_gnf)
    .bind(entry.request_id)
    .bind(entry.id)
    .bind(score.map(|s| s.agent_id))
    .bind(score.map(|s| s.day))
    .bind(score.map(|s| s.kind.as_str()))
    .bind(score.map(|s| i32::try_from(s.kind.points()).unwrap_or(0)))
    .bind(score.map_or(0, |s| s.payments_count))
    .bind(score.map_or(0, |s| s.payments_gnf))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from)
}

/// One tenant's ledger as stored: the facts (charges, payments with when they were reversed)
/// and the derived rows of the valid payments, read under the tenant lock by a write, or in a
/// read snapshot.
#[derive(Debug, Clone, Default)]
pub struct StoredLedger {
    pub charges: Vec<LedgerCharge>,
    /// (charge id, amount_paid_gnf, paid_in_full_at) as stored.
    pub charge_figures: Vec<(i64, Gnf, Option<DateTime<Utc>>)>,
    /// Every payment of the tenant (not the reversal entries), reversed or not.
    pub payments: Vec<LedgerPayment>,
    /// The allocation rows of the valid payments.
    pub lines: Vec<Line>,
}

#[derive(sqlx::FromRow)]
struct LedgerChargeRow {
    id: i64,
    period: NaiveDate,
    due_date: NaiveDate,
    amount_due_gnf: i64,
    amount_paid_gnf: i64,
    paid_in_full_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct LedgerPaymentRow {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    amount_gnf: i64,
    reversed_at: Option<DateTime<Utc>>,
    charge_ids: Vec<i64>,
    amounts: Vec<i64>,
    outstanding_after: Vec<i64>,
}

/// The tenant's ledger (two statements: charges, then payments with their rows).
pub async fn ledger(conn: &mut PgConnection, tenant_id: Uuid) -> Result<StoredLedger> {
    let charges: Vec<LedgerChargeRow> = sqlx::query_as(
        "SELECT id, period, due_date, amount_due_gnf, amount_paid_gnf, paid_in_full_at
         FROM charges WHERE tenant_id = $1 ORDER BY period, id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let payments: Vec<LedgerPaymentRow> = sqlx::query_as(
        "SELECT p.id, p.occurred_at, p.received_at, p.amount_gnf, r.occurred_at AS reversed_at,
                coalesce(array_agg(a.charge_id ORDER BY a.charge_id)
                         FILTER (WHERE a.charge_id IS NOT NULL), '{}') AS charge_ids,
                coalesce(array_agg(a.amount_gnf ORDER BY a.charge_id)
                         FILTER (WHERE a.charge_id IS NOT NULL), '{}') AS amounts,
                coalesce(array_agg(a.outstanding_after_gnf ORDER BY a.charge_id)
                         FILTER (WHERE a.charge_id IS NOT NULL), '{}') AS outstanding_after
         FROM payments p
         LEFT JOIN payments r ON r.reverses_payment_id = p.id
         LEFT JOIN payment_allocations a ON a.payment_id = p.id AND r.id IS NULL
         WHERE p.tenant_id = $1 AND p.kind = 'payment'
         GROUP BY p.id, r.occurred_at",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut ledger = StoredLedger::default();
    for c in charges {
        ledger.charges.push(LedgerCharge {
            charge_id: c.id,
            period: c.period,
            due_date: c.due_date,
            due: Gnf::new(c.amount_due_gnf),
        });
        ledger
            .charge_figures
            .push((c.id, Gnf::new(c.amount_paid_gnf), c.paid_in_full_at));
    }
    for p in payments {
        ledger.payments.push(LedgerPayment {
            payment_id: p.id,
            occurred_at: p.occurred_at,
            received_at: p.received_at,
            amount: Gnf::new(p.amount_gnf),
            reversed_at: p.reversed_at,
        });
        for ((&charge_id, &amount), &after) in p
            .charge_ids
            .iter()
            .zip(&p.amounts)
            .zip(&p.outstanding_after)
        {
            ledger.lines.push(Line {
                payment_id: p.id,
                charge_id,
                amount: Gnf::new(amount),
                outstanding_after: Gnf::new(after),
            });
        }
    }
    Ok(ledger)
}

/// One allocation row to write: for a reversal entry the amount is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWrite {
    pub payment_id: Uuid,
    pub charge_id: i64,
    pub amount_gnf: i64,
    pub outstanding_after_gnf: i64,
}

impl From<&Line> for RowWrite {
    fn from(line: &Line) -> Self {
        Self {
            payment_id: line.payment_id,
            charge_id: line.charge_id,
            amount_gnf: line.amount.francs(),
            outstanding_after_gnf: line.outstanding_after.francs(),
        }
    }
}

/// What a replay writes: new rows (the new payment's, a reversal entry's, re-allocations),
/// changed rows, rows that go, the charges whose figures change, and the tenant's credit.
#[derive(Debug, Clone, Default)]
pub struct ReplayWrite {
    pub insert: Vec<RowWrite>,
    pub update: Vec<RowWrite>,
    pub delete: Vec<(Uuid, i64)>,
    pub charges: Vec<ChargeOutcome>,
    pub credit_gnf: i64,
}

fn columns(rows: &[RowWrite]) -> (Vec<Uuid>, Vec<i64>, Vec<i64>, Vec<i64>) {
    (
        rows.iter().map(|r| r.payment_id).collect(),
        rows.iter().map(|r| r.charge_id).collect(),
        rows.iter().map(|r| r.amount_gnf).collect(),
        rows.iter().map(|r| r.outstanding_after_gnf).collect(),
    )
}

/// Writes a replay's difference in one statement (under the tenant lock).
pub async fn write_replay(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    write: &ReplayWrite,
) -> Result<()> {
    let (ins_payment, ins_charge, ins_amount, ins_after) = columns(&write.insert);
    let (upd_payment, upd_charge, upd_amount, upd_after) = columns(&write.update);
    let del_payment: Vec<Uuid> = write.delete.iter().map(|d| d.0).collect();
    let del_charge: Vec<i64> = write.delete.iter().map(|d| d.1).collect();
    let charge_ids: Vec<i64> = write.charges.iter().map(|c| c.charge.charge_id).collect();
    let charge_paid: Vec<i64> = write.charges.iter().map(|c| c.paid.francs()).collect();
    let charge_full: Vec<Option<DateTime<Utc>>> =
        write.charges.iter().map(|c| c.paid_in_full_at).collect();
    sqlx::query(
        "WITH removed AS (
             DELETE FROM payment_allocations a
             USING unnest($1::uuid[], $2::bigint[]) AS d(payment_id, charge_id)
             WHERE a.payment_id = d.payment_id AND a.charge_id = d.charge_id),
         changed AS (
             UPDATE payment_allocations a
             SET amount_gnf = u.amount_gnf, outstanding_after_gnf = u.outstanding_after_gnf
             FROM unnest($3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS u(payment_id, charge_id, amount_gnf, outstanding_after_gnf)
             WHERE a.payment_id = u.payment_id AND a.charge_id = u.charge_id),
         added AS (
             INSERT INTO payment_allocations
               (payment_id, charge_id, amount_gnf, outstanding_after_gnf)
             SELECT * FROM unnest($7::uuid[], $8::bigint[], $9::bigint[], $10::bigint[])),
         charged AS (
             UPDATE charges c SET amount_paid_gnf = u.paid, paid_in_full_at = u.paid_in_full_at
             FROM unnest($11::bigint[], $12::bigint[], $13::timestamptz[])
                  AS u(id, paid, paid_in_full_at)
             WHERE c.id = u.id AND c.tenant_id = $14)
         UPDATE tenants SET credit_gnf = $15 WHERE id = $14 AND credit_gnf <> $15",
    )
    .bind(del_payment)
    .bind(del_charge)
    .bind(upd_payment)
    .bind(upd_charge)
    .bind(upd_amount)
    .bind(upd_after)
    .bind(ins_payment)
    .bind(ins_charge)
    .bind(ins_amount)
    .bind(ins_after)
    .bind(charge_ids)
    .bind(charge_paid)
    .bind(charge_full)
    .bind(tenant_id)
    .bind(write.credit_gnf)
    .execute(conn)
    .await?;
    Ok(())
}
