//! Payments: the money ledger (reversals are `app::reversals`).
//!
//! A payment and a reversal each run in one transaction (the caller's, inside the idempotency
//! run): the tenant row is locked first, so the payments and reversals of one tenant apply one
//! after the other; the receipt counter of the site is taken in the same transaction, last
//! (`store::number_entry`, just before the key completion: every other payment of the site
//! waits for it until COMMIT), so a rolled-back call gives its number back and receipts stay
//! gap-free.
//!
//! Decisions:
//! - Where the money goes is not decided by upload order: the payment takes its place in the
//!   tenant's ledger by `occurred_at` (then receipt order) and the ledger is replayed under
//!   the tenant lock (`app::ledger`, `domain::ledger`, ADR 0010); a back-dated payment may
//!   re-allocate later ones, which audit records. A payment that sorts after every other
//!   payment of the tenant (valid or reversed) is appended instead (`domain::ledger::append`,
//!   from the open charges and the credit: `store::payments::open_ledger`), which equals the
//!   replay and reads neither the payments nor their rows.
//! - A payment's `request_id` is kept for good (`payments_request_id_key`). A retry that
//!   arrives after its idempotency key expired finds the stored entry and is answered with it
//!   (same payment, receipt and allocations; balance and promise as they are now) instead of an
//!   error: the phone only wants to know that its payment is recorded. If the same request_id
//!   comes with another payment (tenant, amount, method, reference, time or agent differ) the
//!   answer is [`AppError::RequestIdReused`], as for a live key.
//! - Recording for someone else (`agent_id` not the caller): the catalogue has no
//!   "payments.record_for_others" permission. A caller holding `collections.payments.record`
//!   whose role is not agent (the admin, or a back-office role given the permission) may
//!   record for an active agent who covers the tenant's site; an agent may record only what
//!   they collected themselves.
//! - A mission named by a payment must be the collecting agent's, for this tenant
//!   (`domain::mission`), as for calls and visits.
//! - Reversal entries take their own receipt number from the site's counter (the schema
//!   requires one on every row), so the sequence of a site and year stays gap-free across
//!   payments and reversals.
//! - Promises: what a promise has been paid comes from the ledger (`promise_payments`, the
//!   rule every reader of promises uses: the tenant's live payments made since the promise, or
//!   naming it). A payment links itself (`payments.promise_id`) to the promise it names, or to
//!   the tenant's pending promise when it was made after that promise; the linked promise's
//!   status is then derived again (`promises::rederive`). A reversal derives the promise of the
//!   reversed payment again. A payment naming a promise settled since (kept, broken,
//!   cancelled) is recorded all the same, linked as if it named none: cash received is never
//!   refused for a link (a phone that queued several payments of one visit names the promise
//!   in each).
//! - Only users whose role is agent score: a payment +3 for its collecting agent, its reversal
//!   -3 for that same agent on the reversal's day (only if the payment had scored).
//! - An operator reference (with its method) may be used by one live payment only: a second
//!   one is [`AppError::OperatorReferenceDuplicate`]; once the first is reversed the reference
//!   is free again (a payment recorded on the wrong tenant is reversed and recorded again).
//!   References are compared by their key (`domain::operator_reference_key`: letters and
//!   digits, upper-cased), so `mp261130.6186.a75896` is a duplicate of `MP261130.6186.A75896`;
//!   the text is kept as typed.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Act, AppError, ensure_covers, ledger, promises};
use crate::auth::caller::{Caller, Scope};
use crate::auth::rbac::Role;
use crate::domain::ledger::{self as domain_ledger, LedgerPayment};
use crate::domain::{
    Gnf, InteractionKind, OccurredAt, OperatorReference, PaymentAmount, PaymentKind, PaymentMethod,
    PromiseStatus, ScoreEventKind, conakry_day, receipt_year,
};
use crate::store::audit::AuditEvent;
use crate::store::payments::{self as store, AllocationRow, PaymentFilter, PaymentRow};
use crate::store::promises::{self as promise_store, PromiseState, PromiseView};
use crate::store::tenants::{self as tenant_store, Balance, LockedTenant};
use crate::store::{Constraint, StoreError, agents, interactions, missions, scores};

const RECORD_ACTION: &str = "collections.payments.record";

/// A payment to record, parsed.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub tenant_id: Uuid,
    pub amount: PaymentAmount,
    pub method: PaymentMethod,
    pub operator_reference: Option<OperatorReference>,
    pub payer_phone: Option<String>,
    pub occurred_at: OccurredAt,
    /// The agent who collected the money, when not the caller.
    pub agent_id: Option<Uuid>,
    pub visit_id: Option<Uuid>,
    pub promise_id: Option<Uuid>,
    pub mission_id: Option<Uuid>,
    pub notes: String,
}

/// A ledger entry with its allocations.
#[derive(Debug, Clone)]
pub struct Entry {
    pub row: PaymentRow,
    pub allocations: Vec<AllocationRow>,
}

/// What recording a payment answers: the entry, the tenant's balance, the promise it counts
/// towards, the points it earned, and the audit event of a new entry.
#[derive(Debug)]
pub struct Recorded {
    pub entry: Entry,
    pub balance: Balance,
    pub promise: Option<PromiseView>,
    pub score_points: i64,
    pub audit: Option<AuditEvent>,
}

/// The agent who collected the money: the caller, or the one named, which an agent may not
/// do. Checked before the transaction.
pub fn collector(caller: &Caller, named: Option<Uuid>) -> Result<Uuid, AppError> {
    match named {
        Some(agent_id) if agent_id != caller.user_id => {
            if caller.role == Role::Agent {
                return Err(AppError::NotAllowed(
                    "an agent records only the payments they collect themselves",
                ));
            }
            Ok(agent_id)
        }
        _ => Ok(caller.user_id),
    }
}

/// Whether a ledger entry (payment or reversal) holds `request_id`: a request refused only
/// for its age may then be the late retry of that entry (`api::parse::refused_only_as_too_old`).
pub async fn is_stored(pool: &PgPool, request_id: Uuid) -> Result<bool, AppError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    Ok(store::by_request_id(&mut conn, request_id).await?.is_some())
}

/// Records a payment collected by `collector` (see [`collector`]). The scope check rides on
/// the tenant lock; the stored entry of the request_id is looked up first only when
/// `lookup_first` (a run after [`AppError::RequestIdTaken`]), else only when a check refuses
/// the payment (a late retry may be refused by its own entry: its operator reference, its
/// promise now kept) or the insert finds the request_id taken.
pub async fn record(
    conn: &mut PgConnection,
    act: &Act<'_>,
    input: &NewPayment,
    collector: Uuid,
    lookup_first: bool,
) -> Result<Recorded, AppError> {
    let payment = Payment {
        act,
        input,
        collector,
    };
    let tenant = tenant_store::lock(conn, input.tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    ensure_covers(act.caller, tenant.site_id)?;
    payment.check_collector(conn, tenant.site_id).await?;
    if lookup_first && let Some(stored) = payment.stored(conn).await? {
        return Ok(stored);
    }
    let pending = match input.promise_id {
        None => store::pending_promise(conn, tenant.id).await?,
        Some(_) => None,
    };
    match payment.checked(conn, pending).await {
        Ok(promise) => payment.write(conn, tenant, promise).await,
        Err(error) if error.is_fault() => Err(error),
        Err(error) => match payment.stored(conn).await? {
            Some(stored) => Ok(stored),
            None => Err(error),
        },
    }
}

/// A payment being recorded.
struct Payment<'a> {
    act: &'a Act<'a>,
    input: &'a NewPayment,
    collector: Uuid,
}

impl Payment<'_> {
    /// Whether a stored entry is this request recorded earlier.
    fn is_same(&self, stored: &store::StoredRequest) -> bool {
        let input = self.input;
        stored.kind == PaymentKind::Payment
            && stored.tenant_id == input.tenant_id
            && stored.amount_gnf == input.amount.francs()
            && stored.method == input.method
            && stored.operator_reference.as_deref() == self.reference()
            && stored.occurred_at.timestamp_micros() == input.occurred_at.get().timestamp_micros()
            && stored.agent_id == self.collector
    }

    fn reference(&self) -> Option<&str> {
        self.input
            .operator_reference
            .as_ref()
            .map(OperatorReference::as_str)
    }

    /// The answer to a request whose request_id is stored already: the stored payment if it is
    /// this request's, RequestIdReused otherwise; `None` when nothing is stored.
    async fn stored(&self, conn: &mut PgConnection) -> Result<Option<Recorded>, AppError> {
        let Some(stored) = store::by_request_id(conn, self.act.request_id).await? else {
            return Ok(None);
        };
        if !self.is_same(&stored) {
            return Err(AppError::RequestIdReused);
        }
        let row = load(conn, stored.id).await?;
        let promise_id = row.promise_id;
        let balance = tenant_store::balance(conn, row.tenant_id, conakry_day(self.act.now)).await?;
        let score_points = scores::points_of_payment(conn, row.id).await?;
        let promise = match promise_id {
            Some(id) => promise_store::get(&mut *conn, id, conakry_day(self.act.now)).await?,
            None => None,
        };
        Ok(Some(Recorded {
            entry: with_allocations(conn, row).await?,
            balance,
            promise,
            score_points,
            audit: None,
        }))
    }

    /// The checks of the collecting agent when it is not the caller (who may record for them:
    /// checked before the transaction).
    async fn check_collector(
        &self,
        conn: &mut PgConnection,
        site_id: Uuid,
    ) -> Result<(), AppError> {
        if self.collector == self.act.caller.user_id {
            return Ok(());
        }
        let agent = agents::get(&mut *conn, self.collector)
            .await?
            .ok_or(AppError::NotFound("agent"))?;
        if agent.role != Role::Agent {
            return Err(AppError::invalid("agent_id", "must be an agent"));
        }
        if agent.disabled {
            return Err(AppError::invalid("agent_id", "is a disabled account"));
        }
        if !agent.site_ids.contains(&site_id) {
            return Err(AppError::invalid(
                "agent_id",
                "this agent does not cover the tenant's site",
            ));
        }
        Ok(())
    }

    /// The visit, mission and promise the payment names, and its operator reference; answers
    /// the promise it counts towards (locked): the one it names, else the tenant's pending one
    /// (`pending`).
    async fn checked(
        &self,
        conn: &mut PgConnection,
        pending: Option<PromiseState>,
    ) -> Result<Option<PromiseState>, AppError> {
        let input = self.input;
        if let Some(visit_id) = input.visit_id {
            let visit = interactions::kind_and_tenant(conn, visit_id)
                .await?
                .ok_or(AppError::NotFound("visit"))?;
            if visit.tenant_id != input.tenant_id {
                return Err(AppError::invalid(
                    "visit_id",
                    "is a visit of another tenant",
                ));
            }
            if visit.kind != InteractionKind::Visit {
                return Err(AppError::invalid("visit_id", "is a call, not a visit"));
            }
        }
        if let Some(mission_id) = input.mission_id {
            missions::link(conn, mission_id)
                .await?
                .ok_or(AppError::NotFound("mission"))?
                .check(self.collector, input.tenant_id)?;
        }
        let promise = match input.promise_id {
            Some(promise_id) => {
                let promise = promise_store::state(conn, promise_id)
                    .await?
                    .ok_or(AppError::NotFound("promise"))?;
                if promise.tenant_id != input.tenant_id {
                    return Err(AppError::invalid(
                        "promise_id",
                        "is a promise of another tenant",
                    ));
                }
                if promise.status == PromiseStatus::Pending {
                    Some(promise)
                } else {
                    // Settled since the phone queued the payment (several payments of one
                    // visit may name it): the money is recorded all the same, as if no
                    // promise were named.
                    store::pending_promise(conn, input.tenant_id).await?
                }
            }
            None => pending,
        };
        if let Some(reference) = &input.operator_reference {
            let key = reference.key();
            store::lock_operator_reference(conn, input.method, key).await?;
            if store::operator_reference_used(conn, input.method, key).await? {
                return Err(AppError::OperatorReferenceDuplicate(input.method));
            }
        }
        Ok(promise)
    }

    /// Writes the payment with its score, replays the tenant's ledger with it (`app::ledger`),
    /// writes its promise, numbers it last, and answers from what was written, with the audit
    /// event.
    async fn write(
        &self,
        conn: &mut PgConnection,
        tenant: LockedTenant,
        promise: Option<PromiseState>,
    ) -> Result<Recorded, AppError> {
        let input = self.input;
        let new = LedgerPayment {
            payment_id: Uuid::now_v7(),
            occurred_at: ledger::stored_instant(input.occurred_at.get()),
            received_at: ledger::stored_instant(self.act.now),
            amount: input.amount.gnf(),
            reversed_at: None,
        };
        // A payment that sorts after every other payment of the tenant (recorded as it
        // happened: the usual case) moves nothing before it: it is appended from the open
        // charges and the credit. Otherwise (back-dated, uploaded late) the whole ledger is
        // replayed.
        let (stored, replayed) = match store::open_ledger(conn, tenant.id, &new).await? {
            Some(open) => {
                let credit = Gnf::new(tenant.credit_gnf);
                (
                    open.stored(),
                    domain_ledger::append(&open.open, credit, &new)?,
                )
            }
            None => {
                let stored = store::ledger(conn, tenant.id).await?;
                let mut payments = stored.payments.clone();
                payments.push(new);
                let replayed = domain_ledger::replay(&stored.charges, &payments)?;
                (stored, replayed)
            }
        };
        let credit_part = replayed.credit_part(&new);
        // The promise named, or the pending one if the payment came after it was made.
        let linked = promise
            .as_ref()
            .filter(|p| input.promise_id.is_some() || input.occurred_at.get() >= p.made_at)
            .map(|p| p.id);
        // The collector is an agent when it is not the caller (checked above); the caller's
        // role is read fresh on every call.
        let scores =
            self.collector != self.act.caller.user_id || self.act.caller.role == Role::Agent;
        let score = scores.then(|| store::EntryScore {
            agent_id: self.collector,
            day: input.occurred_at.day(),
            kind: ScoreEventKind::Payment,
            payments_count: 1,
            payments_gnf: input.amount.francs(),
        });
        let entry = self.entry(&tenant, &new, credit_part, linked);
        let inserted = match store::insert_entry(conn, &entry, score.as_ref()).await {
            Ok(inserted) => inserted,
            Err(StoreError::Conflict(Constraint::PaymentRequestId)) => {
                tracing::info!(
                    request_id = %self.act.request_id,
                    "request_id taken by another payment; running again"
                );
                return Err(AppError::RequestIdTaken);
            }
            Err(error) => return Err(error.into()),
        };
        let cause = ledger::Cause {
            entry_id: inserted.id,
            history: Vec::new(),
        };
        ledger::write(
            conn,
            self.act,
            &tenant,
            &stored,
            &stored.lines,
            &replayed,
            cause,
        )
        .await?;
        if let Some(promise) = &promise {
            promises::rederive(conn, promise, self.act.now).await?;
        }
        if let Some(mission_id) = input.mission_id {
            super::missions::on_action(
                conn,
                mission_id,
                crate::store::missions::Closing::Payment(inserted.id),
                input.occurred_at.get(),
            )
            .await?;
        }
        // The answer from what this transaction wrote, as a read of it would show it.
        let today = conakry_day(self.act.now);
        let promise = match promise {
            Some(promise) => promise_store::get(&mut *conn, promise.id, today).await?,
            None => None,
        };
        // Last: the site's receipt counter stays locked until COMMIT.
        let daily = score.and_then(|s| s.daily(&inserted));
        let receipt_number = store::number_entry(
            conn,
            inserted.id,
            receipt_year(self.act.now),
            daily.as_ref(),
        )
        .await?;

        let audit = self
            .act
            .audit(RECORD_ACTION)
            .target("payment", inserted.id)
            .detail("tenant_id", tenant.id.to_string())
            .detail("receipt_number", receipt_number.clone())
            .detail("amount_gnf", input.amount.francs())
            .detail("method", input.method.as_str())
            .detail("agent_id", self.collector.to_string());
        let balance = Balance {
            tenant_id: tenant.id,
            outstanding_gnf: replayed.outstanding_due_by(today).francs(),
            credit_gnf: replayed.credit.francs(),
        };
        let allocations = replayed
            .lines_of(inserted.id)
            .map(|line| AllocationRow {
                payment_id: inserted.id,
                charge_id: line.charge_id,
                period: stored
                    .charges
                    .iter()
                    .find(|c| c.charge_id == line.charge_id)
                    .map_or(NaiveDate::MIN, |c| c.period),
                amount_gnf: line.amount.francs(),
                outstanding_after_gnf: line.outstanding_after.francs(),
            })
            .collect();
        Ok(Recorded {
            score_points: inserted.score_points,
            entry: Entry {
                row: self.written(tenant, inserted, receipt_number, credit_part, linked),
                allocations,
            },
            balance,
            promise,
            audit: Some(audit),
        })
    }

    /// Who recorded the payment, when it is not the collector.
    fn recorded_by(&self) -> Option<Uuid> {
        (self.collector != self.act.caller.user_id).then_some(self.act.caller.user_id)
    }

    /// The ledger row to insert (numbered last, `store::number_entry`).
    fn entry(
        &self,
        tenant: &LockedTenant,
        new: &LedgerPayment,
        credit_part: Gnf,
        promise_id: Option<Uuid>,
    ) -> store::NewEntry<'_> {
        let input = self.input;
        store::NewEntry {
            id: new.payment_id,
            tenant_id: tenant.id,
            site_id: tenant.site_id,
            reverses_payment_id: None,
            amount_gnf: input.amount.francs(),
            method: input.method,
            operator_reference: self.reference(),
            payer_phone: input.payer_phone.as_deref(),
            occurred_at: new.occurred_at,
            received_at: new.received_at,
            agent_id: self.collector,
            recorded_by: self.recorded_by(),
            interaction_id: input.visit_id,
            promise_id,
            mission_id: input.mission_id,
            notes: &input.notes,
            reason: None,
            credit_gnf: credit_part.francs(),
            request_id: self.act.request_id,
        }
    }

    /// The payment as a read of it would show it, from what the insert and the numbering
    /// answered.
    fn written(
        &self,
        tenant: LockedTenant,
        inserted: store::InsertedEntry,
        receipt_number: String,
        credit_part: Gnf,
        promise_id: Option<Uuid>,
    ) -> PaymentRow {
        let input = self.input;
        PaymentRow {
            id: inserted.id,
            kind: PaymentKind::Payment,
            receipt_number,
            tenant_id: tenant.id,
            tenant_name: tenant.full_name,
            site_id: tenant.site_id,
            site_name: tenant.site_name,
            unit_label: tenant.unit,
            amount_gnf: input.amount.francs(),
            method: input.method,
            operator_reference: self.reference().map(str::to_owned),
            payer_phone: input.payer_phone.clone(),
            agent_id: self.collector,
            agent_name: inserted.agent_name,
            recorded_by: self.recorded_by(),
            recorded_by_name: inserted.recorded_by_name,
            occurred_at: inserted.occurred_at,
            received_at: inserted.received_at,
            interaction_id: input.visit_id,
            promise_id,
            mission_id: input.mission_id,
            notes: input.notes.clone(),
            credit_gnf: credit_part.francs(),
            reverses_payment_id: None,
            reason: None,
            reversal_id: None,
            collector_id: self.collector,
        }
    }
}

pub(super) async fn load(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<PaymentRow, AppError> {
    store::get(&mut *conn, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))
}

pub(super) async fn with_allocations(
    conn: &mut PgConnection,
    row: PaymentRow,
) -> Result<Entry, AppError> {
    let allocations = store::allocations(&mut *conn, &[row.id]).await?;
    Ok(Entry { row, allocations })
}

// ---------------------------------------------------------------------------------------------
// Reads

/// Whether the caller may see an entry: the sites of their scope; an agent only the money
/// they collected (their payments and the reversals of them).
fn visible(scope: &Scope, payment: &PaymentRow) -> bool {
    match scope {
        Scope::Own { agent_id, .. } => payment.collector_id == *agent_id,
        scope => scope.covers_site(payment.site_id),
    }
}

/// One ledger entry, if the caller may see it.
pub async fn get(
    pool: &sqlx::PgPool,
    caller: &Caller,
    payment_id: Uuid,
) -> Result<Entry, AppError> {
    let row = store::get(pool, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    if !visible(&caller.scope(), &row) {
        return Err(AppError::OutOfScope("this payment is outside your scope"));
    }
    let allocations = store::allocations(pool, &[row.id]).await?;
    Ok(Entry { row, allocations })
}

/// One page of the ledger as the caller may see it.
#[derive(Debug)]
pub struct Page {
    /// At most the page size, newest first; one more was read when `more`.
    pub entries: Vec<Entry>,
    pub more: bool,
    /// Entries matching the filter (all pages) and their amount, reversals negative.
    pub total_size: i64,
    pub total_amount_gnf: i64,
}

/// The entries matching `filter` after `after`, newest first, as the caller may see them.
pub async fn list(
    pool: &sqlx::PgPool,
    caller: &Caller,
    filter: &PaymentFilter,
    after: Option<store::Cursor>,
    page_size: i64,
) -> Result<Page, AppError> {
    let scope = caller.scope();
    let mut rows = store::list(pool, filter, &scope, after, page_size + 1).await?;
    let more = crate::store::one_page(&mut rows, page_size);
    let (total_size, total_amount_gnf) = store::totals(pool, filter, &scope).await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let allocations = store::allocations(pool, &ids).await?;
    let entries = rows
        .into_iter()
        .map(|row| {
            let own = allocations
                .iter()
                .filter(|a| a.payment_id == row.id)
                .cloned()
                .collect();
            Entry {
                row,
                allocations: own,
            }
        })
        .collect();
    Ok(Page {
        entries,
        more,
        total_size,
        total_amount_gnf,
    })
}
