//! Payments and reversals: the money ledger.
//!
//! RecordPayment and ReversePayment each run in one transaction (inside the idempotency
//! run): the tenant row is locked first, so the payments and reversals of one tenant apply
//! one after the other; the receipt counter of the site is taken in the same transaction, so
//! a rolled-back call gives its number back and receipts stay gap-free.
//!
//! Decisions:
//! - A payment's `request_id` is kept for good (`payments_request_id_key`). A retry that
//!   arrives after its idempotency key expired finds the stored entry and is answered with it
//!   (same payment, receipt and allocations; balance and promise as they are now) instead of an
//!   error: the phone only wants to know that its payment is recorded. If the same request_id
//!   comes with another payment (tenant, amount, method, reference, time or agent differ) the
//!   answer is FAILED_PRECONDITION (ERROR_REASON_REQUEST_ID_REUSED), as for a live key.
//! - Recording for someone else (`agent_id` not the caller): the catalogue has no
//!   "payments.record_for_others" permission. A caller holding `collections.payments.record`
//!   whose role is not agent (the admin, or a back-office role given the permission) may
//!   record for an active agent who covers the tenant's site; an agent may record only what
//!   they collected themselves (PERMISSION_DENIED otherwise).
//! - Reversal entries take their own receipt number from the site's counter (the schema
//!   requires one on every row), so the sequence of a site and year stays gap-free across
//!   payments and reversals.
//! - Promises: what a promise has been paid comes from the ledger (`promise_payments`, the
//!   rule every reader of promises uses: the tenant's live payments made since the promise, or
//!   naming it). A payment links itself (`payments.promise_id`) to the promise it names, or to
//!   the tenant's pending promise when it was made after that promise; the linked promise's
//!   `covered_gnf` (paid by its date) and status are then derived again by the domain rule and
//!   stored, with a promise event when the status becomes kept, partially kept or broken. A
//!   reversal derives the promise of the reversed payment again (a kept promise may go back
//!   to pending; that change has no event kind).
//! - Only users whose role is agent score: a payment +3 for its collecting agent, its reversal
//!   -3 for that same agent on the reversal's day (only if the payment had scored).
//! - An operator reference (with its method) may be used by one live payment only: a second
//!   one answers ALREADY_EXISTS; once the first is reversed the reference is free again (a
//!   payment recorded on the wrong tenant is reversed and recorded again).

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::interactions::promise_to_proto;
use super::tenant_in_scope;
use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::auth::caller::{Caller, Scope};
use crate::auth::rbac::Role;
use crate::config::CollectionsConfig;
use crate::domain::allocation::{self, OpenCharge, ReversalError};
use crate::domain::clock::{OccurredAt, TimeBounds, conakry_day};
use crate::domain::money::{Gnf, PaymentAmount};
use crate::domain::outcome::{OperatorReference, PaymentMethod};
use crate::domain::promise::{PromiseProgress, PromiseStatus};
use crate::domain::receipt::receipt_year;
use crate::domain::scoring::ScoreEventKind;
use crate::idempotency::{IdempotencyError, IdempotencyKey};
use crate::proto::v1 as pb;
use crate::startup::AppState;
use crate::store::audit::{AuditEvent, Outcome};
use crate::store::payments::{self as store, PaymentFilter, PaymentRow, PromiseState};
use crate::store::promises;

const RECORD_METHOD: &str = "/akig.v1.CollectionsService/RecordPayment";
const REVERSE_METHOD: &str = "/akig.v1.CollectionsService/ReversePayment";
const RECORD_ACTION: &str = "collections.payments.record";
const REVERSE_ACTION: &str = "collections.payments.reverse";

const NOTES_MAX: usize = 2_000;
const REASON_MIN: usize = 3;
const REASON_MAX: usize = 500;
const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 500;
const SITE_FILTER_MAX: usize = 200;

// ---------------------------------------------------------------------------------------------
// RecordPayment

/// A RecordPaymentRequest, parsed.
#[derive(Debug, Clone)]
struct NewPayment {
    tenant_id: Uuid,
    amount: PaymentAmount,
    method: PaymentMethod,
    operator_reference: Option<OperatorReference>,
    payer_phone: Option<String>,
    occurred_at: OccurredAt,
    agent_id: Option<Uuid>,
    visit_id: Option<Uuid>,
    promise_id: Option<Uuid>,
    mission_id: Option<Uuid>,
    notes: String,
}

fn time_bounds(config: &CollectionsConfig) -> TimeBounds {
    let defaults = TimeBounds::default();
    TimeBounds {
        max_skew: TimeDelta::from_std(config.max_clock_skew).unwrap_or(defaults.max_skew),
        max_age: TimeDelta::from_std(config.max_offline_age).unwrap_or(defaults.max_age),
    }
}

fn parse_occurred_at(
    violations: &mut Violations,
    value: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Option<OccurredAt> {
    let Some(value) = value else {
        violations.add("occurred_at", "is required");
        return None;
    };
    let device = violations.absorb(convert::from_timestamp("occurred_at", value))?;
    violations.check_reasoned("occurred_at", OccurredAt::parse(device, now, bounds))
}

fn parse_notes(violations: &mut Violations, value: &str) -> String {
    violations
        .absorb(convert::optional_text("notes", value, NOTES_MAX))
        .flatten()
        .unwrap_or_default()
}

fn parse_record(
    request: &pb::RecordPaymentRequest,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Result<NewPayment, ApiError> {
    let mut v = Violations::new();
    let tenant_id = v.absorb(convert::uuid("tenant_id", &request.tenant_id));
    let amount = v.check("amount_gnf", PaymentAmount::parse(request.amount_gnf));
    let method = v.check("method", super::wire::payment_method(request.method));
    let operator_reference = method.and_then(|method| {
        v.check(
            "operator_reference",
            OperatorReference::parse(method, &request.operator_reference),
        )
    });
    let payer_phone = v.absorb(convert::optional_phone("payer_phone", &request.payer_phone));
    let occurred_at = parse_occurred_at(&mut v, request.occurred_at.as_ref(), now, bounds);
    let agent_id = v.absorb(convert::optional_uuid("agent_id", &request.agent_id));
    let visit_id = v.absorb(convert::optional_uuid("visit_id", &request.visit_id));
    let promise_id = v.absorb(convert::optional_uuid("promise_id", &request.promise_id));
    let mission_id = v.absorb(convert::optional_uuid("mission_id", &request.mission_id));
    let notes = parse_notes(&mut v, &request.notes);
    v.into_result()?;
    match (
        tenant_id,
        amount,
        method,
        operator_reference,
        payer_phone,
        occurred_at,
        agent_id,
        visit_id,
        promise_id,
        mission_id,
    ) {
        (
            Some(tenant_id),
            Some(amount),
            Some(method),
            Some(operator_reference),
            Some(payer_phone),
            Some(occurred_at),
            Some(agent_id),
            Some(visit_id),
            Some(promise_id),
            Some(mission_id),
        ) => Ok(NewPayment {
            tenant_id,
            amount,
            method,
            operator_reference,
            payer_phone,
            occurred_at,
            agent_id,
            visit_id,
            promise_id,
            mission_id,
            notes,
        }),
        // Every None above recorded a violation, so into_result returned already.
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

/// Errors of the write transactions: an API error, or the request_id taken by a concurrent
/// call of another user (the transaction is rolled back and the call runs once more, to find
/// the stored entry).
#[derive(Debug)]
enum LedgerError {
    Api(ApiError),
    RequestIdTaken,
}

impl From<ApiError> for LedgerError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Api(error.into())
    }
}

impl From<IdempotencyError> for LedgerError {
    fn from(error: IdempotencyError) -> Self {
        Self::Api(error.into())
    }
}

fn request_id_reused() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "ERROR_REASON_REQUEST_ID_REUSED",
        message: "request_id was already used for a different request".to_owned(),
    }
}

/// The constraint a database error violated, if it is a unique violation.
fn unique_violation(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}

fn audit_event(caller: &Caller, request_id: Uuid, action: &str) -> AuditEvent {
    let mut event = AuditEvent::new(action, Outcome::Ok).request(request_id);
    event.actor_id = Some(caller.user_id);
    event.actor_role = Some(caller.role.as_str().to_owned());
    event.client_ip = caller.client_ip;
    event
}

/// The status a promise has with `covered` paid by its date, on `today`.
fn derive_status(promise: &PromiseState, covered: i64, today: NaiveDate) -> PromiseStatus {
    PromiseProgress {
        amount: Gnf::new(promise.amount_gnf),
        promised_date: promise.promised_date,
        paid_by_promised_date: Gnf::new(covered),
        cancelled: promise.status == PromiseStatus::Cancelled.as_str(),
    }
    .status_on(today)
}

/// Derives a promise's status again from the ledger and stores it with what was paid by its
/// date; a promise event when the status becomes kept, partially kept or broken (a return to
/// pending has no event kind).
async fn update_promise(
    conn: &mut PgConnection,
    promise: &PromiseState,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let covered = store::promise_paid_by_date(conn, promise.id).await?;
    let status = derive_status(promise, covered, conakry_day(now));
    let changed = status.as_str() != promise.status;
    if !changed && covered == promise.covered_gnf {
        return Ok(());
    }
    store::set_promise_progress(conn, promise.id, covered, status.as_str(), changed, now).await?;
    if changed
        && matches!(
            status,
            PromiseStatus::Kept | PromiseStatus::PartiallyKept | PromiseStatus::Broken
        )
    {
        store::insert_promise_event(conn, promise.id, status.as_str(), now).await?;
    }
    Ok(())
}

pub(super) async fn record_payment(
    state: &AppState,
    request: Request<pb::RecordPaymentRequest>,
) -> Result<Response<pb::RecordPaymentResponse>, Status> {
    Ok(Response::new(record(state, &request).await?))
}

async fn record(
    state: &AppState,
    request: &Request<pb::RecordPaymentRequest>,
) -> Result<pb::RecordPaymentResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let request_id = convert::request_id(&message.request_id)?;
    let now = Utc::now();
    let input = parse_record(message, now, time_bounds(&state.collections))?;

    let agent_id = match input.agent_id {
        Some(agent_id) if agent_id != caller.user_id => {
            if caller.role == Role::Agent {
                return Err(ApiError::permission_denied(
                    "an agent records only the payments they collect themselves",
                ));
            }
            agent_id
        }
        _ => caller.user_id,
    };
    let key = IdempotencyKey::new(caller.user_id, RECORD_METHOD, request_id);
    let work = RecordWork {
        caller,
        request_id,
        input: &input,
        agent_id,
        now,
    };
    // A second run only after the insert found the request_id taken (a concurrent call of
    // another user, or a retry after the key expired): it looks for the stored payment first
    // and answers with it.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let lookup_first = attempts > 1;
        let outcome = state
            .idempotency
            .run_audited(key, message, async |conn| {
                work.run(conn, lookup_first).await
            })
            .await;
        match outcome {
            Ok(response) => return Ok(response),
            Err(LedgerError::RequestIdTaken) if attempts < 2 => continue,
            Err(LedgerError::RequestIdTaken) => return Err(request_id_reused()),
            Err(LedgerError::Api(error)) => return Err(error),
        }
    }
}

struct RecordWork<'a> {
    caller: &'a Caller,
    request_id: Uuid,
    input: &'a NewPayment,
    agent_id: Uuid,
    now: DateTime<Utc>,
}

impl RecordWork<'_> {
    /// Whether a stored entry is this request recorded earlier.
    fn is_same(&self, stored: &store::StoredRequest) -> bool {
        let input = self.input;
        stored.kind == "payment"
            && stored.tenant_id == input.tenant_id
            && stored.amount_gnf == input.amount.francs()
            && stored.method == input.method.as_str()
            && stored.operator_reference.as_deref()
                == input
                    .operator_reference
                    .as_ref()
                    .map(OperatorReference::as_str)
            && stored.occurred_at.timestamp_micros() == input.occurred_at.get().timestamp_micros()
            && stored.agent_id == self.agent_id
    }

    /// The answer to a request whose request_id is stored already: the stored payment if it is
    /// this request's, FAILED_PRECONDITION otherwise; None when nothing is stored.
    async fn stored(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<pb::RecordPaymentResponse>, ApiError> {
        let Some(stored) = store::by_request_id(conn, self.request_id).await? else {
            return Ok(None);
        };
        if !self.is_same(&stored) {
            return Err(request_id_reused());
        }
        let payment = load_payment(conn, stored.id).await?;
        let promise_id = payment.promise_id;
        Ok(Some(
            record_response(conn, payment, promise_id, self.now).await?,
        ))
    }

    /// The checks of the collecting agent when it is not the caller (who may record for
    /// them: checked before the transaction).
    async fn check_collector(
        &self,
        conn: &mut PgConnection,
        site_id: Uuid,
    ) -> Result<(), ApiError> {
        if self.agent_id == self.caller.user_id {
            return Ok(());
        }
        let collector = store::collector(&mut *conn, self.agent_id)
            .await?
            .ok_or(ApiError::NotFound("agent"))?;
        if collector.role_id != Role::Agent.as_str() {
            return Err(ApiError::invalid("agent_id", "must be an agent"));
        }
        if collector.disabled {
            return Err(ApiError::invalid("agent_id", "is a disabled account"));
        }
        if !collector.site_ids.contains(&site_id) {
            return Err(ApiError::invalid(
                "agent_id",
                "this agent does not cover the tenant's site",
            ));
        }
        Ok(())
    }

    /// Records the payment. The scope check rides on the tenant lock; the stored entry of the
    /// request_id is looked up first only on a second run (`lookup_first`), else only when a
    /// check refuses the payment (a late retry may be refused by its own entry: its operator
    /// reference, its promise now kept) or the insert finds the request_id taken.
    async fn run(
        &self,
        conn: &mut PgConnection,
        lookup_first: bool,
    ) -> Result<(pb::RecordPaymentResponse, Option<AuditEvent>), LedgerError> {
        let tenant = store::lock_tenant_named(conn, self.input.tenant_id)
            .await?
            .ok_or(ApiError::NotFound("tenant"))?;
        if !self.caller.scope().covers_site(tenant.site_id) {
            return Err(ApiError::permission_denied("this tenant is outside your sites").into());
        }
        self.check_collector(conn, tenant.site_id).await?;
        if lookup_first && let Some(response) = self.stored(conn).await? {
            return Ok((response, None));
        }
        let (pending, open_rows) = store::pending_promise_and_open_charges(
            conn,
            tenant.tenant_id,
            self.input.promise_id.is_none(),
        )
        .await?;
        match self.checked(conn, pending).await {
            Ok(checked) => self.write(conn, tenant, checked, open_rows).await,
            Err(LedgerError::Api(error @ (ApiError::Internal(_) | ApiError::Unavailable))) => {
                Err(error.into())
            }
            Err(LedgerError::Api(error)) => match self.stored(conn).await? {
                Some(response) => Ok((response, None)),
                None => Err(error.into()),
            },
            Err(other) => Err(other),
        }
    }

    /// The references the payment names, and its promise (locked): the one it names, else the
    /// tenant's pending one (`pending`, read with the open charges).
    async fn checked(
        &self,
        conn: &mut PgConnection,
        pending: Option<PromiseState>,
    ) -> Result<Checked, LedgerError> {
        let input = self.input;

        if let Some(visit_id) = input.visit_id {
            let visit = store::interaction(conn, visit_id)
                .await?
                .ok_or(ApiError::NotFound("visit"))?;
            if visit.tenant_id != input.tenant_id {
                return Err(ApiError::invalid("visit_id", "is a visit of another tenant").into());
            }
            if visit.kind != "visit" {
                return Err(ApiError::invalid("visit_id", "is a call, not a visit").into());
            }
        }
        if let Some(mission_id) = input.mission_id {
            let mission = store::mission_tenant(conn, mission_id)
                .await?
                .ok_or(ApiError::NotFound("mission"))?;
            if mission != input.tenant_id {
                return Err(ApiError::invalid_because(
                    "mission_id",
                    "is a mission for another tenant",
                    "ERROR_REASON_MISSION_MISMATCH",
                )
                .into());
            }
        }
        let promise = match input.promise_id {
            Some(promise_id) => {
                let promise = store::promise_state(conn, promise_id)
                    .await?
                    .ok_or(ApiError::NotFound("promise"))?;
                if promise.tenant_id != input.tenant_id {
                    return Err(
                        ApiError::invalid("promise_id", "is a promise of another tenant").into(),
                    );
                }
                if promise.status != PromiseStatus::Pending.as_str() {
                    return Err(ApiError::FailedPrecondition {
                        reason: "ERROR_REASON_PROMISE_NOT_PENDING",
                        message: format!("the promise is {}, not pending", promise.status),
                    }
                    .into());
                }
                Some(promise)
            }
            None => pending,
        };

        let method = input.method.as_str();
        let reference = input
            .operator_reference
            .as_ref()
            .map(OperatorReference::as_str);
        if let Some(reference) = reference {
            store::lock_operator_reference(conn, method, reference).await?;
            if store::operator_reference_used(conn, method, reference).await? {
                return Err(ApiError::AlreadyExists {
                    reason: Some("ERROR_REASON_OPERATOR_REFERENCE_DUPLICATE"),
                    message: format!(
                        "a payment with this {method} operator reference is already recorded"
                    ),
                }
                .into());
            }
        }
        Ok(Checked { promise })
    }

    /// Allocates, numbers and writes the payment, its score and promise, and answers from what
    /// was written, with the audit event (written when the idempotency key is completed).
    async fn write(
        &self,
        conn: &mut PgConnection,
        tenant: store::LockedTenantNamed,
        checked: Checked,
        open_rows: Vec<store::OpenChargeRow>,
    ) -> Result<(pb::RecordPaymentResponse, Option<AuditEvent>), LedgerError> {
        let input = self.input;
        let promise = checked.promise;
        let method = input.method.as_str();
        let reference = input
            .operator_reference
            .as_ref()
            .map(OperatorReference::as_str);
        let open: Vec<OpenCharge> = open_rows
            .iter()
            .map(|c| OpenCharge {
                charge_id: c.id,
                period: c.period,
                due_date: c.due_date,
                due: Gnf::new(c.amount_due_gnf),
                paid: Gnf::new(c.amount_paid_gnf),
            })
            .collect();
        let allocation = allocation::allocate(&open, input.amount);

        let occurred_at = input.occurred_at.get();
        // The promise named, or the pending one if the payment came after it was made.
        let linked = promise
            .as_ref()
            .filter(|p| input.promise_id.is_some() || occurred_at >= p.made_at)
            .map(|p| p.id);
        let recorded_by = (self.agent_id != self.caller.user_id).then_some(self.caller.user_id);
        let entry = store::NewEntry {
            tenant_id: tenant.tenant_id,
            site_id: tenant.site_id,
            reverses_payment_id: None,
            amount_gnf: input.amount.francs(),
            method,
            operator_reference: reference,
            payer_phone: input.payer_phone.as_deref(),
            receipt_year: receipt_year(self.now),
            occurred_at,
            received_at: self.now,
            agent_id: self.agent_id,
            recorded_by,
            interaction_id: input.visit_id,
            promise_id: linked,
            mission_id: input.mission_id,
            notes: &input.notes,
            reason: None,
            credit_gnf: allocation.to_credit.francs(),
            tenant_credit_delta: allocation.to_credit.francs(),
            request_id: self.request_id,
        };
        // The collector is an agent when it is not the caller (checked above); the caller's
        // role is read fresh on every call.
        let scores = self.agent_id != self.caller.user_id || self.caller.role == Role::Agent;
        let score = scores.then(|| store::EntryScore {
            agent_id: self.agent_id,
            day: input.occurred_at.day(),
            kind: ScoreEventKind::Payment.as_str(),
            points: i32::try_from(ScoreEventKind::Payment.points()).unwrap_or(i32::MAX),
            payments_count: 1,
            payments_gnf: input.amount.francs(),
        });
        let inserted = match store::insert_entry(conn, &entry, score.as_ref()).await {
            Ok(inserted) => inserted,
            Err(error) if unique_violation(&error) == Some(store::REQUEST_ID_KEY) => {
                tracing::info!(
                    request_id = %self.request_id,
                    "request_id taken by another payment; running again"
                );
                return Err(LedgerError::RequestIdTaken);
            }
            Err(error) => return Err(error.into()),
        };
        let payment_id = inserted.id;
        let receipt = inserted.receipt_number;
        let mut allocations = Vec::with_capacity(allocation.lines.len());
        for line in &allocation.lines {
            let allocated = store::allocate(
                conn,
                payment_id,
                line.charge_id,
                line.amount.francs(),
                occurred_at,
            )
            .await?;
            allocations.push(store::AllocationRow {
                payment_id,
                charge_id: line.charge_id,
                period: allocated.period,
                amount_gnf: line.amount.francs(),
                outstanding_after_gnf: allocated.outstanding_after_gnf,
            });
        }

        if let Some(promise) = &promise {
            update_promise(conn, promise, self.now).await?;
        }

        let event = audit_event(self.caller, self.request_id, RECORD_ACTION)
            .target("payment", payment_id)
            .detail("tenant_id", tenant.tenant_id.to_string())
            .detail("receipt_number", receipt.clone())
            .detail("amount_gnf", input.amount.francs())
            .detail("method", method)
            .detail("agent_id", self.agent_id.to_string());

        // The answer from what this transaction wrote, as a read of it would show it.
        let today = conakry_day(self.now);
        let mut outstanding_gnf = 0;
        for charge in open_rows.iter().filter(|c| c.due_date <= today) {
            let allocated: i64 = allocation
                .lines
                .iter()
                .filter(|line| line.charge_id == charge.id)
                .map(|line| line.amount.francs())
                .sum();
            outstanding_gnf += charge.amount_due_gnf - charge.amount_paid_gnf - allocated;
        }
        let balance = pb::TenantBalance {
            tenant_id: tenant.tenant_id.to_string(),
            outstanding_gnf,
            credit_gnf: tenant.credit_gnf + allocation.to_credit.francs(),
        };
        allocations.sort_by_key(|a| (a.period, a.charge_id));
        let row = PaymentRow {
            id: payment_id,
            kind: "payment".to_owned(),
            receipt_number: receipt,
            tenant_id: tenant.tenant_id,
            tenant_name: tenant.tenant_name,
            site_id: tenant.site_id,
            site_name: tenant.site_name,
            unit_label: tenant.unit_label,
            amount_gnf: input.amount.francs(),
            method: method.to_owned(),
            operator_reference: reference.map(str::to_owned),
            payer_phone: input.payer_phone.clone(),
            agent_id: self.agent_id,
            agent_name: inserted.agent_name,
            recorded_by,
            recorded_by_name: inserted.recorded_by_name,
            occurred_at: inserted.occurred_at,
            received_at: inserted.received_at,
            interaction_id: input.visit_id,
            promise_id: linked,
            mission_id: input.mission_id,
            notes: input.notes.clone(),
            credit_gnf: allocation.to_credit.francs(),
            reverses_payment_id: None,
            reason: None,
            reversal_id: None,
            collector_id: self.agent_id,
        };
        let promise = match promise {
            Some(promise) => promises::get(&mut *conn, promise.id, today)
                .await?
                .map(|view| promise_to_proto(&view)),
            None => None,
        };
        let response = pb::RecordPaymentResponse {
            payment: Some(payment_to_proto(row, &allocations)),
            balance: Some(balance),
            promise,
            score_points: inserted.score_points,
        };
        Ok((response, Some(event)))
    }
}

/// What the checks of a payment found: the promise it counts towards (locked).
struct Checked {
    promise: Option<PromiseState>,
}

async fn load_payment(conn: &mut PgConnection, payment_id: Uuid) -> Result<PaymentRow, ApiError> {
    store::get(&mut *conn, payment_id)
        .await?
        .ok_or(ApiError::NotFound("payment"))
}

async fn record_response(
    conn: &mut PgConnection,
    payment: PaymentRow,
    promise_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<pb::RecordPaymentResponse, ApiError> {
    let balance = balance(conn, payment.tenant_id, now).await?;
    let score_points = store::points_of(conn, payment.id).await?;
    let promise = match promise_id {
        Some(id) => promises::get(&mut *conn, id, conakry_day(now))
            .await?
            .map(|view| promise_to_proto(&view)),
        None => None,
    };
    let payment = with_allocations(conn, payment).await?;
    Ok(pb::RecordPaymentResponse {
        payment: Some(payment),
        balance: Some(balance),
        promise,
        score_points,
    })
}

async fn balance(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> Result<pb::TenantBalance, ApiError> {
    let (outstanding_gnf, credit_gnf) = store::balance(conn, tenant_id, conakry_day(now)).await?;
    Ok(pb::TenantBalance {
        tenant_id: tenant_id.to_string(),
        outstanding_gnf,
        credit_gnf,
    })
}

async fn with_allocations(
    conn: &mut PgConnection,
    payment: PaymentRow,
) -> Result<pb::Payment, ApiError> {
    let allocations = store::allocations(&mut *conn, &[payment.id]).await?;
    Ok(payment_to_proto(payment, &allocations))
}

// ---------------------------------------------------------------------------------------------
// ReversePayment

#[derive(Debug)]
struct NewReversal {
    payment_id: Uuid,
    reason: String,
    occurred_at: OccurredAt,
}

fn parse_reversal(
    request: &pb::ReversePaymentRequest,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Result<NewReversal, ApiError> {
    let mut v = Violations::new();
    let payment_id = v.absorb(convert::uuid("payment_id", &request.payment_id));
    let reason = request.reason.trim();
    let length = reason.chars().count();
    if !(REASON_MIN..=REASON_MAX).contains(&length) {
        v.add(
            "reason",
            format!("must be {REASON_MIN} to {REASON_MAX} characters"),
        );
    }
    let occurred_at = parse_occurred_at(&mut v, request.occurred_at.as_ref(), now, bounds);
    v.into_result()?;
    match (payment_id, occurred_at) {
        (Some(payment_id), Some(occurred_at)) => Ok(NewReversal {
            payment_id,
            reason: reason.to_owned(),
            occurred_at,
        }),
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

fn already_reversed() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "ERROR_REASON_PAYMENT_ALREADY_REVERSED",
        message: "this payment has already been reversed".to_owned(),
    }
}

pub(super) async fn reverse_payment(
    state: &AppState,
    request: Request<pb::ReversePaymentRequest>,
) -> Result<Response<pb::ReversePaymentResponse>, Status> {
    Ok(Response::new(reverse(state, &request).await?))
}

async fn reverse(
    state: &AppState,
    request: &Request<pb::ReversePaymentRequest>,
) -> Result<pb::ReversePaymentResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let request_id = convert::request_id(&message.request_id)?;
    let now = Utc::now();
    let input = parse_reversal(message, now, time_bounds(&state.collections))?;
    let payment = store::get(&state.pool, input.payment_id)
        .await?
        .ok_or(ApiError::NotFound("payment"))?;
    tenant_in_scope(&state.pool, caller, payment.tenant_id).await?;

    let key = IdempotencyKey::new(caller.user_id, REVERSE_METHOD, request_id);
    let work = ReverseWork {
        caller,
        request_id,
        input: &input,
        tenant_id: payment.tenant_id,
        now,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let outcome = state
            .idempotency
            .run_audited(key, message, async |conn| work.run(conn).await)
            .await;
        match outcome {
            Ok(response) => return Ok(response),
            Err(LedgerError::RequestIdTaken) if attempts < 2 => continue,
            Err(LedgerError::RequestIdTaken) => return Err(request_id_reused()),
            Err(LedgerError::Api(error)) => return Err(error),
        }
    }
}

struct ReverseWork<'a> {
    caller: &'a Caller,
    request_id: Uuid,
    input: &'a NewReversal,
    tenant_id: Uuid,
    now: DateTime<Utc>,
}

impl ReverseWork<'_> {
    async fn run(
        &self,
        conn: &mut PgConnection,
    ) -> Result<(pb::ReversePaymentResponse, Option<AuditEvent>), LedgerError> {
        let input = self.input;
        let tenant = store::lock_tenant(conn, self.tenant_id)
            .await?
            .ok_or(ApiError::NotFound("tenant"))?;

        if let Some(stored) = store::by_request_id(conn, self.request_id).await? {
            if stored.kind != "reversal" || stored.reverses_payment_id != Some(input.payment_id) {
                return Err(request_id_reused().into());
            }
            let response = reverse_response(conn, stored.id, input.payment_id, self.now).await?;
            return Ok((response, None));
        }

        let original = load_payment(conn, input.payment_id).await?;
        if original.kind != "payment" {
            return Err(ApiError::invalid(
                "payment_id",
                "is a reversal entry; only payments can be reversed",
            )
            .into());
        }
        if original.reversal_id.is_some() {
            return Err(already_reversed().into());
        }
        if input.occurred_at.get() < original.occurred_at {
            return Err(
                ApiError::invalid("occurred_at", "is before the payment it reverses").into(),
            );
        }
        let allocations: Vec<(i64, Gnf)> = store::allocations_of_payment(conn, original.id)
            .await?
            .into_iter()
            .map(|(charge_id, amount)| (charge_id, Gnf::new(amount)))
            .collect();
        let reversal = allocation::reverse(
            &allocations,
            Gnf::new(original.credit_gnf),
            Gnf::new(tenant.credit_gnf),
        )
        .map_err(|error| match error {
            ReversalError::CreditAlreadyUsed { missing } => ApiError::FailedPrecondition {
                reason: "ERROR_REASON_PAYMENT_CREDIT_USED",
                message: format!(
                    "the credit this payment left ({}) has already been used by later \
                     charges ({missing} missing); it cannot be reversed",
                    Gnf::new(original.credit_gnf)
                ),
            },
            other => ApiError::internal(other),
        })?;

        let occurred_at = input.occurred_at.get();
        let entry = store::NewEntry {
            tenant_id: original.tenant_id,
            site_id: original.site_id,
            reverses_payment_id: Some(original.id),
            amount_gnf: original.amount_gnf,
            method: &original.method,
            operator_reference: original.operator_reference.as_deref(),
            payer_phone: None,
            receipt_year: receipt_year(self.now),
            occurred_at,
            received_at: self.now,
            agent_id: self.caller.user_id,
            recorded_by: None,
            interaction_id: None,
            promise_id: None,
            mission_id: None,
            notes: "",
            reason: Some(&input.reason),
            credit_gnf: original.credit_gnf,
            tenant_credit_delta: reversal.credit_delta.francs(),
            request_id: self.request_id,
        };
        let (reversal_id, receipt) = match store::insert_entry(conn, &entry, None).await {
            Ok(inserted) => (inserted.id, inserted.receipt_number),
            Err(error) => {
                return Err(match unique_violation(&error) {
                    Some(store::REQUEST_ID_KEY) => LedgerError::RequestIdTaken,
                    Some(store::REVERSES_PAYMENT_KEY) => already_reversed().into(),
                    _ => error.into(),
                });
            }
        };
        for line in &reversal.lines {
            store::allocate(
                conn,
                reversal_id,
                line.charge_id,
                line.amount.francs(),
                occurred_at,
            )
            .await?;
        }

        // The points go back only if the payment earned some.
        if store::points_of(conn, original.id).await? > 0 {
            let points = ScoreEventKind::PaymentReversal.points();
            store::score(
                conn,
                &store::ScoreEvent {
                    agent_id: original.agent_id,
                    day: input.occurred_at.day(),
                    kind: ScoreEventKind::PaymentReversal.as_str(),
                    points: i32::try_from(points).unwrap_or(i32::MIN),
                    payment_id: reversal_id,
                    occurred_at,
                    payments_count: 0,
                    payments_gnf: 0,
                },
            )
            .await?;
        }

        if let Some(promise_id) = original.promise_id
            && let Some(promise) = store::promise_state(conn, promise_id).await?
        {
            update_promise(conn, &promise, self.now).await?;
        }

        let event = audit_event(self.caller, self.request_id, REVERSE_ACTION)
            .target("payment", original.id)
            .detail("reversal_id", reversal_id.to_string())
            .detail("tenant_id", original.tenant_id.to_string())
            .detail("receipt_number", receipt.clone())
            .detail("amount_gnf", original.amount_gnf)
            .detail("reason", input.reason.clone());

        let response = reverse_response(conn, reversal_id, original.id, self.now).await?;
        Ok((response, Some(event)))
    }
}

async fn reverse_response(
    conn: &mut PgConnection,
    reversal_id: Uuid,
    payment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<pb::ReversePaymentResponse, ApiError> {
    let reversal = load_payment(conn, reversal_id).await?;
    let payment = load_payment(conn, payment_id).await?;
    let balance = balance(conn, payment.tenant_id, now).await?;
    Ok(pb::ReversePaymentResponse {
        reversal: Some(with_allocations(conn, reversal).await?),
        payment: Some(with_allocations(conn, payment).await?),
        balance: Some(balance),
    })
}

// ---------------------------------------------------------------------------------------------
// GetPayment, ListPayments

/// Whether the caller may see an entry: the sites of their scope; an agent only the money
/// they collected (their payments and the reversals of them).
fn visible(scope: &Scope, payment: &PaymentRow) -> bool {
    match scope {
        Scope::Own { agent_id, .. } => payment.collector_id == *agent_id,
        scope => scope.covers_site(payment.site_id),
    }
}

pub(super) async fn get_payment(
    state: &AppState,
    request: Request<pb::GetPaymentRequest>,
) -> Result<Response<pb::GetPaymentResponse>, Status> {
    let caller = Caller::of(&request)?;
    let payment_id = convert::uuid("payment_id", &request.get_ref().payment_id)?;
    let payment = store::get(&state.pool, payment_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("payment"))?;
    if !visible(&caller.scope(), &payment) {
        return Err(ApiError::permission_denied("this payment is outside your scope").into());
    }
    let allocations = store::allocations(&state.pool, &[payment.id])
        .await
        .map_err(ApiError::from)?;
    Ok(Response::new(pb::GetPaymentResponse {
        payment: Some(payment_to_proto(payment, &allocations)),
    }))
}

fn parse_filter(request: &pb::ListPaymentsRequest) -> Result<PaymentFilter, ApiError> {
    let mut v = Violations::new();
    if request.site_ids.len() > SITE_FILTER_MAX {
        v.add("site_ids", format!("at most {SITE_FILTER_MAX} sites"));
    }
    let mut site_ids: Vec<Uuid> = request
        .site_ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| v.absorb(convert::uuid(&format!("site_ids[{i}]"), id)))
        .collect();
    site_ids.sort();
    site_ids.dedup();
    let agent_id = v
        .absorb(convert::optional_uuid("agent_id", &request.agent_id))
        .flatten();
    let tenant_id = v
        .absorb(convert::optional_uuid("tenant_id", &request.tenant_id))
        .flatten();
    let (mut occurred_from, mut occurred_before) = (None, None);
    if let Some(range) = &request.time_range {
        if let Some(start) = &range.start_time {
            occurred_from = v.absorb(convert::from_timestamp("time_range.start_time", start));
        }
        if let Some(end) = &range.end_time {
            occurred_before = v.absorb(convert::from_timestamp("time_range.end_time", end));
        }
        if let (Some(from), Some(before)) = (occurred_from, occurred_before)
            && before <= from
        {
            v.add("time_range.end_time", "must be after start_time");
        }
    }
    let method = match request.method {
        0 => None,
        value => v
            .check("method", super::wire::payment_method(value))
            .map(PaymentMethod::as_str),
    };
    let kind = match request.kind {
        0 => None,
        value => v
            .check("kind", super::wire::payment_kind(value))
            .map(crate::domain::PaymentKind::as_str),
    };
    let receipt_number = v
        .absorb(convert::optional_text(
            "receipt_number",
            &request.receipt_number,
            64,
        ))
        .flatten();
    let operator_reference = v
        .absorb(convert::optional_text(
            "operator_reference",
            &request.operator_reference,
            64,
        ))
        .flatten();
    v.into_result()?;
    Ok(PaymentFilter {
        site_ids,
        agent_id,
        tenant_id,
        occurred_from,
        occurred_before,
        method,
        kind,
        receipt_number,
        operator_reference,
    })
}

/// Ties a page token to the filters it was issued for.
fn filter_digest(filter: &PaymentFilter) -> String {
    let digest = Sha256::digest(format!("{filter:?}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_cursor(filter: &PaymentFilter, cursor: store::Cursor) -> String {
    convert::encode_page_token(&format!(
        "{}|{}|{}",
        filter_digest(filter),
        cursor.occurred_at.timestamp_micros(),
        cursor.id
    ))
}

fn decode_cursor(filter: &PaymentFilter, token: &str) -> Result<Option<store::Cursor>, ApiError> {
    let Some(text) = convert::decode_page_token(token)? else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid("page_token", "not a token of this list and filters");
    let mut parts = text.split('|');
    let (Some(digest), Some(micros), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if digest != filter_digest(filter) {
        return Err(invalid());
    }
    let occurred_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some(store::Cursor { occurred_at, id }))
}

pub(super) async fn list_payments(
    state: &AppState,
    request: Request<pb::ListPaymentsRequest>,
) -> Result<Response<pb::ListPaymentsResponse>, Status> {
    Ok(Response::new(list(state, &request).await?))
}

async fn list(
    state: &AppState,
    request: &Request<pb::ListPaymentsRequest>,
) -> Result<pb::ListPaymentsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let limit = convert::page_size(message.page_size, LIST_DEFAULT, LIST_MAX)?;
    let filter = parse_filter(message)?;
    let after = decode_cursor(&filter, &message.page_token)?;
    let scope = caller.scope();

    let mut rows = store::list(&state.pool, &filter, &scope, after, limit + 1).await?;
    let next_page_token = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.last()
            .map(|last| {
                encode_cursor(
                    &filter,
                    store::Cursor {
                        occurred_at: last.occurred_at,
                        id: last.id,
                    },
                )
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let (total_size, total_amount_gnf) = store::totals(&state.pool, &filter, &scope).await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let allocations = store::allocations(&state.pool, &ids).await?;
    let payments = rows
        .into_iter()
        .map(|row| {
            let own: Vec<store::AllocationRow> = allocations
                .iter()
                .filter(|a| a.payment_id == row.id)
                .cloned()
                .collect();
            payment_to_proto(row, &own)
        })
        .collect();
    Ok(pb::ListPaymentsResponse {
        payments,
        next_page_token,
        total_size,
        total_amount_gnf,
    })
}

// ---------------------------------------------------------------------------------------------
// Protobuf views

fn optional_id(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// The API's view of a ledger entry, with its allocations (those of `allocations` that are
/// the entry's); the one every answer that shows a payment or a reversal uses.
pub(super) fn payment_to_proto(
    row: PaymentRow,
    allocations: &[store::AllocationRow],
) -> pb::Payment {
    let reversal = row.kind == "reversal";
    let sign = if reversal { -1 } else { 1 };
    let method = row
        .method
        .parse::<PaymentMethod>()
        .map_or(pb::PaymentMethod::Unspecified, pb::PaymentMethod::from);
    pb::Payment {
        payment_id: row.id.to_string(),
        kind: if reversal {
            pb::PaymentKind::Reversal
        } else {
            pb::PaymentKind::Payment
        } as i32,
        receipt_number: row.receipt_number,
        tenant: Some(pb::TenantRef {
            tenant_id: row.tenant_id.to_string(),
            full_name: row.tenant_name,
            site_id: row.site_id.to_string(),
            site_name: row.site_name,
            unit_label: row.unit_label,
        }),
        amount_gnf: sign * row.amount_gnf,
        method: method as i32,
        operator_reference: row.operator_reference.unwrap_or_default(),
        payer_phone: row.payer_phone.unwrap_or_default(),
        agent: Some(pb::UserRef {
            user_id: row.agent_id.to_string(),
            full_name: row.agent_name,
        }),
        recorded_by: row.recorded_by.map(|id| pb::UserRef {
            user_id: id.to_string(),
            full_name: row.recorded_by_name.unwrap_or_default(),
        }),
        occurred_at: Some(timestamp(row.occurred_at)),
        received_at: Some(timestamp(row.received_at)),
        visit_id: optional_id(row.interaction_id),
        promise_id: optional_id(row.promise_id),
        mission_id: optional_id(row.mission_id),
        notes: row.notes,
        allocations: allocations
            .iter()
            .filter(|a| a.payment_id == row.id)
            .map(|a| pb::PaymentAllocation {
                charge_id: a.charge_id.to_string(),
                month: Some(pb::YearMonth {
                    year: a.period.year(),
                    month: i32::try_from(a.period.month()).unwrap_or(0),
                }),
                amount_gnf: a.amount_gnf,
                charge_outstanding_after_gnf: a.outstanding_after_gnf,
            })
            .collect(),
        credit_gnf: sign * row.credit_gnf,
        reversed: !reversal && row.reversal_id.is_some(),
        reversal_payment_id: if reversal {
            String::new()
        } else {
            optional_id(row.reversal_id)
        },
        reversed_payment_id: optional_id(row.reverses_payment_id),
        reversal_reason: if reversal {
            row.reason.unwrap_or_default()
        } else {
            String::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    fn request() -> pb::RecordPaymentRequest {
        pb::RecordPaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            tenant_id: Uuid::new_v4().to_string(),
            amount_gnf: 500_000,
            method: pb::PaymentMethod::Cash as i32,
            occurred_at: Some(timestamp(at("2026-03-10T10:00:00Z"))),
            ..Default::default()
        }
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error.field_violations() {
            Some(violations) => violations.iter().map(|v| v.field.clone()).collect(),
            None => panic!("not a field error: {error:?}"),
        }
    }

    #[test]
    fn record_requests_are_parsed_once_with_every_bad_field_named() {
        let now = at("2026-03-10T10:01:00Z");
        let bounds = TimeBounds::default();
        let ok = parse_record(&request(), now, bounds).expect("valid request");
        assert_eq!(ok.amount.francs(), 500_000);
        assert_eq!(ok.operator_reference, None);
        assert_eq!(ok.agent_id, None);

        let mut bad = request();
        bad.tenant_id = "x".into();
        bad.amount_gnf = 0;
        bad.method = pb::PaymentMethod::OrangeMoney as i32;
        bad.payer_phone = "0621".into();
        bad.occurred_at = Some(timestamp(at("2026-03-10T10:30:00Z")));
        bad.visit_id = "nope".into();
        bad.notes = "n".repeat(NOTES_MAX + 1);
        assert_eq!(
            fields(parse_record(&bad, now, bounds).expect_err("invalid")),
            [
                "tenant_id",
                "amount_gnf",
                "operator_reference",
                "payer_phone",
                "occurred_at",
                "visit_id",
                "notes"
            ]
        );

        let mut unset = request();
        unset.method = 0;
        unset.occurred_at = None;
        unset.amount_gnf = 1_000_000_001;
        assert_eq!(
            fields(parse_record(&unset, now, bounds).expect_err("invalid")),
            ["amount_gnf", "method", "occurred_at"]
        );
    }

    #[test]
    fn reversal_reasons_are_bounded() {
        let now = at("2026-03-10T10:01:00Z");
        let reversal = |reason: &str| pb::ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id: Uuid::new_v4().to_string(),
            reason: reason.to_owned(),
            occurred_at: Some(timestamp(now)),
        };
        let bounds = TimeBounds::default();
        assert!(parse_reversal(&reversal("abc"), now, bounds).is_ok());
        assert_eq!(
            fields(parse_reversal(&reversal("  ab  "), now, bounds).expect_err("short")),
            ["reason"]
        );
        assert!(parse_reversal(&reversal(&"é".repeat(REASON_MAX)), now, bounds).is_ok());
        assert!(parse_reversal(&reversal(&"é".repeat(REASON_MAX + 1)), now, bounds).is_err());
    }

    #[test]
    fn page_tokens_are_tied_to_their_filters() {
        let filter = PaymentFilter {
            kind: Some("payment"),
            ..Default::default()
        };
        let cursor = store::Cursor {
            occurred_at: at("2026-03-10T10:00:00.123456Z"),
            id: Uuid::new_v4(),
        };
        let token = encode_cursor(&filter, cursor);
        assert_eq!(decode_cursor(&filter, &token).expect("valid"), Some(cursor));
        assert_eq!(decode_cursor(&filter, "").expect("empty"), None);
        let other = PaymentFilter::default();
        assert!(decode_cursor(&other, &token).is_err());
        assert!(decode_cursor(&filter, &convert::encode_page_token("a|b|c")).is_err());
    }
}
