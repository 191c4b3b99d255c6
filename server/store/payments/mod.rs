//! SQL of the money ledger: payments and reversals (append-only facts), their allocations to
//! charges and the tenant's credit (derived: rewritten by difference by each replay, ADR
//! 0010), receipt numbers, the promise a payment counts towards, and the score events of
//! payments.
//!
//! Every write runs inside the caller's transaction, after `store::tenants::lock`: the tenant
//! row lock serialises the payments and reversals of one tenant, so charges, credit and
//! allocations are read and written by one transaction at a time. Locks are taken in this
//! order: tenant, the pending promise, a promise the payment names, operator reference, the
//! read-model rows the replay's write and its triggers move (ADR 0011), then, in the numbering
//! statement (`receipts::number_entry`, the one before the key completion), the agent's daily
//! score row and last the receipt counter of the site: no transaction waits for another lock
//! while it holds the counter, and the agent's daily row (which every call, visit and payment
//! of the agent writes) is held only for the numbering, the completion and the COMMIT. The
//! site's `collected_days` rows are moved by that statement too, after the counter: only
//! entries of the site write them, under its counter. The charges and allocation rows a
//! replay writes are the tenant's, which the tenant lock already serialises.
//!
//! The reads (one entry, entries by id, allocations, the payment list and its totals) are in
//! `reads`.

mod reads;
mod receipts;

pub use reads::*;
pub use receipts::*;

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
/// `store::scores::add` writes one): at most once per kind and payment. What it adds to the
/// agent's daily figures ([`EntryScore::daily`]) is written when the entry is numbered
/// ([`number_entry`]).
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
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub agent_name: String,
    pub recorded_by_name: Option<String>,
    /// 0 without a score.
    pub score_points: i64,
    /// Whether this insert wrote the entry's score event (none was there for it yet).
    pub scored: bool,
}

impl EntryScore {
    /// What the entry adds to its agent's daily figures, when `inserted` wrote its score
    /// event: none otherwise (an entry scores at most once).
    pub fn daily(&self, inserted: &InsertedEntry) -> Option<DailyAdd> {
        inserted.scored.then(|| DailyAdd {
            agent_id: self.agent_id,
            day: self.day,
            points: i32::try_from(self.kind.points()).unwrap_or(0),
            payments_count: self.payments_count,
            payments_gnf: self.payments_gnf,
        })
    }
}

/// An entry's addition to its agent's daily figures (`agent_daily_scores`): points (negative
/// for a reversal), payments counted and their amount in GNF (1 and the amount for a payment;
/// 0 and 0 for a reversal, whose money the daily figures count apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAdd {
    pub agent_id: Uuid,
    /// Africa/Conakry day of the entry's `occurred_at`.
    pub day: NaiveDate,
    pub points: i32,
    pub payments_count: i32,
    pub payments_gnf: i64,
}

/// Inserts the entry, without its receipt number yet, and with `score` its score event, in one
/// statement. Its allocation rows and the tenant's credit are the replay's ([`write_replay`]);
/// its number and its agent's daily figures ([`EntryScore::daily`]) are written last, by
/// [`number_entry`] (the row cannot commit without a number: `payments_numbered`).
///
/// The statement also sets `plan_cache_mode = force_generic_plan` for the rest of the
/// transaction: the statements that follow (the replay's write, the promise, the numbering,
/// the key completion) take ids and arrays of ids, and PostgreSQL, which estimates an array
/// parameter's length only in a custom plan, planned the replay's write anew at every call
/// (0.3–0.6 ms, more than running it; `docs/performance.md`, "Plans of the ledger's writes").
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
             VALUES ($20, $1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10,
                     $11, $12, $13, $14, $15, $16, $17, $18, $19)
             RETURNING id, occurred_at, received_at, agent_id, recorded_by),
         event AS (
             INSERT INTO score_events (agent_id, day, kind, points, payment_id, occurred_at)
             SELECT $21, $22, $23, $24, i.id, i.occurred_at FROM inserted i WHERE $21 IS NOT NULL
             ON CONFLICT (kind, payment_id) WHERE payment_id IS NOT NULL DO NOTHING
             RETURNING points)
         SELECT i.id, i.occurred_at, i.received_at,
                (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
                (SELECT full_name FROM users WHERE id = i.recorded_by) AS recorded_by_name,
                (SELECT coalesce(sum(points), 0)::bigint FROM event) AS score_points,
                EXISTS (SELECT 1 FROM event) AS scored,
                set_config('plan_cache_mode', 'force_generic_plan', true) AS plan_cache_mode
         FROM inserted i",
    )
    .bind(entry.tenant_id)
    .bind(entry.site_id)
    .bind(kind.as_str())
    .bind(entry.amount_gnf)
    .bind(entry.method.as_str())
    .bind(entry.operator_reference)
    .bind(entry.payer_phone)
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

/// A tenant's charges as parallel arrays (by period, then id) with their stored figures.
#[derive(sqlx::FromRow)]
struct ChargeArrays {
    charge_ids: Vec<i64>,
    periods: Vec<NaiveDate>,
    due_dates: Vec<NaiveDate>,
    dues: Vec<i64>,
    paids: Vec<i64>,
    paid_in_full: Vec<Option<DateTime<Utc>>>,
    last_paid: Vec<Option<DateTime<Utc>>>,
}

impl ChargeArrays {
    /// The charges with their stored figures, in the arrays' order.
    fn into_outcomes(self) -> Vec<ChargeOutcome> {
        let charges = self
            .charge_ids
            .into_iter()
            .zip(self.periods)
            .zip(self.due_dates)
            .zip(self.dues)
            .zip(self.paids)
            .zip(self.paid_in_full)
            .zip(self.last_paid);
        charges
            .map(
                |(
                    (((((charge_id, period), due_date), due), paid), paid_in_full_at),
                    last_paid_at,
                )| {
                    ChargeOutcome {
                        charge: LedgerCharge {
                            charge_id,
                            period,
                            due_date,
                            due: Gnf::new(due),
                        },
                        paid: Gnf::new(paid),
                        paid_in_full_at,
                        last_paid_at,
                    }
                },
            )
            .collect()
    }
}

/// The tenant's ledger as one row of parallel arrays: charges (by period, then id), payments
/// (by id) with when they were reversed, and the allocation rows of the valid ones (by
/// payment, then charge).
#[derive(sqlx::FromRow)]
struct LedgerRow {
    #[sqlx(flatten)]
    charges: ChargeArrays,
    payment_ids: Vec<Uuid>,
    occurred: Vec<DateTime<Utc>>,
    received: Vec<DateTime<Utc>>,
    amounts: Vec<i64>,
    reversed: Vec<Option<DateTime<Utc>>>,
    line_payments: Vec<Uuid>,
    line_charges: Vec<i64>,
    line_amounts: Vec<i64>,
    line_after: Vec<i64>,
}

/// The tenant's ledger, in one statement (one round trip under the tenant lock): three
/// aggregates over the tenant's charges, payments and valid payments' allocation rows.
pub async fn ledger(conn: &mut PgConnection, tenant_id: Uuid) -> Result<StoredLedger> {
    let row: LedgerRow = sqlx::query_as(
        "SELECT c.*, p.*, l.*
         FROM (SELECT coalesce(array_agg(id ORDER BY period, id), '{}') AS charge_ids,
                      coalesce(array_agg(period ORDER BY period, id), '{}') AS periods,
                      coalesce(array_agg(due_date ORDER BY period, id), '{}') AS due_dates,
                      coalesce(array_agg(amount_due_gnf ORDER BY period, id), '{}') AS dues,
                      coalesce(array_agg(amount_paid_gnf ORDER BY period, id), '{}') AS paids,
                      coalesce(array_agg(paid_in_full_at ORDER BY period, id), '{}')
                          AS paid_in_full,
                      coalesce(array_agg(last_paid_at ORDER BY period, id), '{}') AS last_paid
               FROM charges WHERE tenant_id = $1) c,
              (SELECT coalesce(array_agg(p.id ORDER BY p.id), '{}') AS payment_ids,
                      coalesce(array_agg(p.occurred_at ORDER BY p.id), '{}') AS occurred,
                      coalesce(array_agg(p.received_at ORDER BY p.id), '{}') AS received,
                      coalesce(array_agg(p.amount_gnf ORDER BY p.id), '{}') AS amounts,
                      coalesce(array_agg(r.occurred_at ORDER BY p.id), '{}') AS reversed
               FROM payments p LEFT JOIN payments r ON r.reverses_payment_id = p.id
               WHERE p.tenant_id = $1 AND p.kind = 'payment') p,
              (SELECT coalesce(array_agg(a.payment_id ORDER BY a.payment_id, a.charge_id), '{}')
                          AS line_payments,
                      coalesce(array_agg(a.charge_id ORDER BY a.payment_id, a.charge_id), '{}')
                          AS line_charges,
                      coalesce(array_agg(a.amount_gnf ORDER BY a.payment_id, a.charge_id), '{}')
                          AS line_amounts,
                      coalesce(array_agg(a.outstanding_after_gnf
                                         ORDER BY a.payment_id, a.charge_id), '{}') AS line_after
               FROM payments p JOIN payment_allocations a ON a.payment_id = p.id
               WHERE p.tenant_id = $1 AND p.kind = 'payment'
                 AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)) l",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut ledger = StoredLedger::default();
    for c in row.charges.into_outcomes() {
        ledger.charges.push(c.charge);
        ledger
            .charge_figures
            .push((c.charge.charge_id, c.paid, c.paid_in_full_at));
    }
    let payments = row
        .payment_ids
        .into_iter()
        .zip(row.occurred)
        .zip(row.received)
        .zip(row.amounts)
        .zip(row.reversed);
    for ((((payment_id, occurred_at), received_at), amount), reversed_at) in payments {
        ledger.payments.push(LedgerPayment {
            payment_id,
            occurred_at,
            received_at,
            amount: Gnf::new(amount),
            reversed_at,
        });
    }
    let lines = row
        .line_payments
        .into_iter()
        .zip(row.line_charges)
        .zip(row.line_amounts)
        .zip(row.line_after);
    for (((payment_id, charge_id), amount), after) in lines {
        ledger.lines.push(Line {
            payment_id,
            charge_id,
            amount: Gnf::new(amount),
            outstanding_after: Gnf::new(after),
        });
    }
    Ok(ledger)
}

/// The charges of a tenant not fully paid (amount paid below a positive amount due), with their
/// stored figures, by period then id: what `domain::ledger::append` needs for a payment that
/// sorts after every other payment of the tenant. Runs under the tenant lock, in one statement.
#[derive(Debug, Clone, Default)]
pub struct OpenLedger {
    pub open: Vec<ChargeOutcome>,
}

impl OpenLedger {
    /// The ledger as stored, restricted to the open charges (no payments, no lines): what
    /// `app::ledger::write` compares an appended payment's outcome with.
    pub fn stored(&self) -> StoredLedger {
        StoredLedger {
            charges: self.open.iter().map(|c| c.charge).collect(),
            charge_figures: self
                .open
                .iter()
                .map(|c| (c.charge.charge_id, c.paid, c.paid_in_full_at))
                .collect(),
            payments: Vec::new(),
            lines: Vec::new(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct OpenLedgerRow {
    later: bool,
    #[sqlx(flatten)]
    charges: ChargeArrays,
}

/// The tenant's open charges ([`OpenLedger`]) when no payment of the tenant, valid or reversed,
/// sorts at or after `payment` (by occurred_at, received_at, id); `None` when one does (the
/// whole ledger must be replayed: [`ledger`]). One statement: an index range of the tenant's
/// payments from `payment.occurred_at` on, and the tenant's charges.
pub async fn open_ledger(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    payment: &LedgerPayment,
) -> Result<Option<OpenLedger>> {
    let row: OpenLedgerRow = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM payments p
                        WHERE p.tenant_id = $1 AND p.kind = 'payment' AND p.occurred_at >= $2
                          AND (p.occurred_at, p.received_at, p.id) >= ($2, $3, $4)) AS later,
                coalesce(array_agg(c.id ORDER BY c.period, c.id), '{}') AS charge_ids,
                coalesce(array_agg(c.period ORDER BY c.period, c.id), '{}') AS periods,
                coalesce(array_agg(c.due_date ORDER BY c.period, c.id), '{}') AS due_dates,
                coalesce(array_agg(c.amount_due_gnf ORDER BY c.period, c.id), '{}') AS dues,
                coalesce(array_agg(c.amount_paid_gnf ORDER BY c.period, c.id), '{}') AS paids,
                coalesce(array_agg(c.paid_in_full_at ORDER BY c.period, c.id), '{}')
                    AS paid_in_full,
                coalesce(array_agg(c.last_paid_at ORDER BY c.period, c.id), '{}') AS last_paid
         FROM charges c
         WHERE c.tenant_id = $1 AND c.amount_paid_gnf < c.amount_due_gnf",
    )
    .bind(tenant_id)
    .bind(payment.occurred_at)
    .bind(payment.received_at)
    .bind(payment.payment_id)
    .fetch_one(&mut *conn)
    .await?;
    if row.later {
        return Ok(None);
    }
    let open = row.charges.into_outcomes();
    Ok(Some(OpenLedger { open }))
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
/// changed rows, rows that go, the charges whose figures change, and the tenant's credit when
/// it changes.
#[derive(Debug, Clone, Default)]
pub struct ReplayWrite {
    pub insert: Vec<RowWrite>,
    pub update: Vec<RowWrite>,
    pub delete: Vec<(Uuid, i64)>,
    pub charges: Vec<ChargeOutcome>,
    /// The tenant's new credit; `None`: unchanged.
    pub credit_gnf: Option<i64>,
}

fn columns(rows: &[RowWrite]) -> (Vec<Uuid>, Vec<i64>, Vec<i64>, Vec<i64>) {
    (
        rows.iter().map(|r| r.payment_id).collect(),
        rows.iter().map(|r| r.charge_id).collect(),
        rows.iter().map(|r| r.amount_gnf).collect(),
        rows.iter().map(|r| r.outstanding_after_gnf).collect(),
    )
}

/// The statement of [`write_replay`] for the parts of `write` that are not empty, in this
/// order: rows removed, rows changed, rows added, charges, credit. `None` when there is
/// nothing to write.
///
/// An empty part is left out rather than run on no rows: the read models' statement-level
/// triggers on `payment_allocations`, `charges` and `tenants` fire for every statement,
/// rows or none, and each of them updates `charges` again (about 25 ms of trigger work per
/// payment, under the site's receipt counter, before parts were left out).
fn replay_statement(write: &ReplayWrite) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut n = 1;
    let mut next = |count: usize| {
        let first = n;
        n += count;
        first
    };
    if !write.delete.is_empty() {
        let p = next(2);
        parts.push(format!(
            "DELETE FROM payment_allocations a
             USING unnest(${p}::uuid[], ${}::bigint[]) AS d(payment_id, charge_id)
             WHERE a.payment_id = d.payment_id AND a.charge_id = d.charge_id",
            p + 1
        ));
    }
    if !write.update.is_empty() {
        let p = next(4);
        parts.push(format!(
            "UPDATE payment_allocations a
             SET amount_gnf = u.amount_gnf, outstanding_after_gnf = u.outstanding_after_gnf
             FROM unnest(${p}::uuid[], ${}::bigint[], ${}::bigint[], ${}::bigint[])
                  AS u(payment_id, charge_id, amount_gnf, outstanding_after_gnf)
             WHERE a.payment_id = u.payment_id AND a.charge_id = u.charge_id",
            p + 1,
            p + 2,
            p + 3
        ));
    }
    if !write.insert.is_empty() {
        let p = next(4);
        parts.push(format!(
            "INSERT INTO payment_allocations
               (payment_id, charge_id, amount_gnf, outstanding_after_gnf)
             SELECT * FROM unnest(${p}::uuid[], ${}::bigint[], ${}::bigint[], ${}::bigint[])",
            p + 1,
            p + 2,
            p + 3
        ));
    }
    if !write.charges.is_empty() {
        let p = next(4);
        parts.push(format!(
            "UPDATE charges c SET amount_paid_gnf = u.paid, paid_in_full_at = u.paid_in_full_at
             FROM unnest(${p}::bigint[], ${}::bigint[], ${}::timestamptz[])
                  AS u(id, paid, paid_in_full_at)
             WHERE c.id = u.id AND c.tenant_id = ${}",
            p + 1,
            p + 2,
            p + 3
        ));
    }
    if write.credit_gnf.is_some() {
        let p = next(2);
        parts.push(format!(
            "UPDATE tenants SET credit_gnf = ${p} WHERE id = ${} AND credit_gnf <> ${p}",
            p + 1
        ));
    }
    let last = parts.pop()?;
    if parts.is_empty() {
        return Some(last);
    }
    let ctes: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| format!("part{i} AS ({part})"))
        .collect();
    Some(format!("WITH {}\n{last}", ctes.join(",\n")))
}

/// Writes a replay's difference in one statement (under the tenant lock), leaving out the
/// parts with nothing to write (see [`replay_statement`]); nothing at all: no statement.
pub async fn write_replay(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    write: &ReplayWrite,
) -> Result<()> {
    let Some(sql) = replay_statement(write) else {
        return Ok(());
    };
    let mut query = sqlx::query(&sql);
    if !write.delete.is_empty() {
        let payments: Vec<Uuid> = write.delete.iter().map(|d| d.0).collect();
        let charges: Vec<i64> = write.delete.iter().map(|d| d.1).collect();
        query = query.bind(payments).bind(charges);
    }
    for rows in [&write.update, &write.insert] {
        if !rows.is_empty() {
            let (payment, charge, amount, after) = columns(rows);
            query = query.bind(payment).bind(charge).bind(amount).bind(after);
        }
    }
    if !write.charges.is_empty() {
        let ids: Vec<i64> = write.charges.iter().map(|c| c.charge.charge_id).collect();
        let paid: Vec<i64> = write.charges.iter().map(|c| c.paid.francs()).collect();
        let full: Vec<Option<DateTime<Utc>>> =
            write.charges.iter().map(|c| c.paid_in_full_at).collect();
        query = query.bind(ids).bind(paid).bind(full).bind(tenant_id);
    }
    if let Some(credit) = write.credit_gnf {
        query = query.bind(credit).bind(tenant_id);
    }
    query.execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(charge_id: i64) -> RowWrite {
        RowWrite {
            payment_id: Uuid::nil(),
            charge_id,
            amount_gnf: 25_000,
            outstanding_after_gnf: 0,
        }
    }

    #[test]
    fn the_replay_statement_holds_only_what_there_is_to_write() {
        assert_eq!(replay_statement(&ReplayWrite::default()), None);
        let credit_only = ReplayWrite {
            credit_gnf: Some(50_000),
            ..ReplayWrite::default()
        };
        assert_eq!(
            replay_statement(&credit_only).as_deref(),
            Some("UPDATE tenants SET credit_gnf = $1 WHERE id = $2 AND credit_gnf <> $1")
        );
        let added = ReplayWrite {
            insert: vec![row(7)],
            credit_gnf: Some(50_000),
            ..ReplayWrite::default()
        };
        let sql = replay_statement(&added).expect("two parts");
        assert!(sql.starts_with("WITH part0 AS (INSERT INTO payment_allocations"));
        assert!(sql.contains("unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[])"));
        assert!(sql.ends_with("credit_gnf = $5 WHERE id = $6 AND credit_gnf <> $5"));
        assert!(!sql.contains("DELETE") && !sql.contains("UPDATE charges"));
    }

    #[test]
    fn every_part_numbers_its_parameters_after_the_previous_ones() {
        let all = ReplayWrite {
            insert: vec![row(1)],
            update: vec![row(2)],
            delete: vec![(Uuid::nil(), 3)],
            charges: Vec::new(),
            credit_gnf: Some(0),
        };
        let sql = replay_statement(&all).expect("four parts");
        assert!(sql.contains("part0 AS (DELETE FROM payment_allocations"));
        assert!(sql.contains("unnest($1::uuid[], $2::bigint[]) AS d"));
        assert!(sql.contains("unnest($3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[])"));
        assert!(sql.contains("unnest($7::uuid[], $8::bigint[], $9::bigint[], $10::bigint[])"));
        assert!(sql.ends_with("credit_gnf = $11 WHERE id = $12 AND credit_gnf <> $11"));
    }
}
