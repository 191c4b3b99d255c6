//! RecordPayment, ReversePayment, GetPayment, ListPayments: requests parsed into the ledger's
//! use cases (`app::payments`, where the rules are), answers shown by [`views`].
//!
//! Decisions:
//! - A write whose insert found its request_id taken by a call the idempotency key did not
//!   cover runs once more, in a new transaction, to answer the stored entry
//!   ([`AppError::RequestIdTaken`]); taken again, the request_id is another request's.
//! - ListPayments pages newest first by (occurred_at, id); a page token is tied to its filters
//!   (`api::paging`).

use chrono::{DateTime, Utc};
use tonic::Request;

use super::{rpc, views, wire};
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::{Pager, micros};
use crate::api::parse::{self, Text};
use crate::api::write::Write;
use crate::app::payments::{self as app, NewPayment};
use crate::app::reversals::{self, NewReversal};
use crate::app::{Act, AppError};
use crate::auth::caller::Caller;
use crate::domain::outcome::operator_reference_key;
use crate::domain::{OperatorReference, PaymentAmount, TimeBounds};
use crate::idempotency::IdempotencyError;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::payments::{Cursor, PaymentFilter};

const NOTES: Text = Text::note(2_000);
const REASON: Text = Text::line(3, 500);
/// Receipt numbers and operator references as filters.
const REFERENCE: Text = Text::line(0, 64);
const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 500;
const SITE_FILTER_MAX: usize = 200;

/// A RecordPaymentRequest, parsed; every bad field is named.
fn parse_record(
    request: &pb::RecordPaymentRequest,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Result<NewPayment, ApiError> {
    let mut v = Violations::new();
    let tenant_id = v.absorb(convert::uuid("tenant_id", &request.tenant_id));
    let amount = v.check("amount_gnf", PaymentAmount::parse(request.amount_gnf));
    let method = v.check("method", wire::payment_method(request.method));
    let operator_reference = method.and_then(|method| {
        v.check(
            "operator_reference",
            OperatorReference::parse(method, &request.operator_reference),
        )
    });
    let payer_phone = v.absorb(convert::optional_phone("payer_phone", &request.payer_phone));
    let at = request.occurred_at.as_ref();
    let occurred_at = parse::occurred_at(&mut v, "occurred_at", at, now, bounds);
    let agent_id = v.absorb(convert::optional_uuid("agent_id", &request.agent_id));
    let visit_id = v.absorb(convert::optional_uuid("visit_id", &request.visit_id));
    let promise_id = v.absorb(convert::optional_uuid("promise_id", &request.promise_id));
    let mission_id = v.absorb(convert::optional_uuid("mission_id", &request.mission_id));
    let notes = v.absorb(NOTES.parse("notes", &request.notes));
    v.into_result()?;
    let parsed = (|| {
        Some(NewPayment {
            tenant_id: tenant_id?,
            amount: amount?,
            method: method?,
            operator_reference: operator_reference?,
            payer_phone: payer_phone?,
            occurred_at: occurred_at?,
            agent_id: agent_id?,
            visit_id: visit_id?,
            promise_id: promise_id?,
            mission_id: mission_id?,
            notes: notes?,
        })
    })();
    // Every None above recorded a violation, so into_result returned already.
    parsed.ok_or_else(|| ApiError::invalid("", "invalid request"))
}

/// A ReversePaymentRequest, parsed.
fn parse_reversal(
    request: &pb::ReversePaymentRequest,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Result<NewReversal, ApiError> {
    let mut v = Violations::new();
    let payment_id = v.absorb(convert::uuid("payment_id", &request.payment_id));
    let reason = v.absorb(REASON.parse("reason", &request.reason));
    let at = request.occurred_at.as_ref();
    let occurred_at = parse::occurred_at(&mut v, "occurred_at", at, now, bounds);
    v.into_result()?;
    match (payment_id, reason, occurred_at) {
        (Some(payment_id), Some(reason), Some(occurred_at)) => Ok(NewReversal {
            payment_id,
            reason,
            occurred_at,
        }),
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

/// A payment or reversal request parsed by `parse` within the configured time bounds. The
/// offline window bounds new entries, not the late retry of a recorded one: a request refused
/// only for its age whose request_id an entry holds is parsed again without the window, and
/// the write answers it from the stored entry (or refuses another request under that id).
async fn parse_entry<T>(
    state: &AppState,
    act: &Act<'_>,
    parse: impl Fn(TimeBounds) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let bounds = parse::time_bounds(&state.collections);
    match parse(bounds) {
        Err(refusal)
            if parse::refused_only_as_too_old(&refusal)
                && app::is_stored(&state.pool, act.request_id).await? =>
        {
            parse(bounds.without_max_age())
        }
        parsed => parsed,
    }
}

/// The errors of a ledger write: an API error, or the request_id taken by a call the key did
/// not cover (the transaction is rolled back and the call runs once more).
enum LedgerError {
    Api(ApiError),
    RequestIdTaken,
}

impl From<AppError> for LedgerError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::RequestIdTaken => Self::RequestIdTaken,
            other => Self::Api(other.into()),
        }
    }
}

impl From<IdempotencyError> for LedgerError {
    fn from(error: IdempotencyError) -> Self {
        Self::Api(error.into())
    }
}

/// What to do after one run of a ledger write: answer (`Some`), or run once more (`None`)
/// after [`LedgerError::RequestIdTaken`] on the first run.
fn answer_or_retry<T>(
    outcome: Result<T, LedgerError>,
    second_run: bool,
) -> Option<Result<T, ApiError>> {
    match outcome {
        Ok(done) => Some(Ok(done)),
        Err(LedgerError::Api(error)) => Some(Err(error)),
        Err(LedgerError::RequestIdTaken) if second_run => {
            Some(Err(AppError::RequestIdReused.into()))
        }
        Err(LedgerError::RequestIdTaken) => None,
    }
}

pub(super) async fn record_payment(
    state: &AppState,
    request: &Request<pb::RecordPaymentRequest>,
) -> Result<pb::RecordPaymentResponse, ApiError> {
    let message = request.get_ref();
    let write = Write::begin(request, rpc::RECORD_PAYMENT, &message.request_id)?;
    let act = write.act();
    let input = parse_entry(state, act, |bounds| parse_record(message, act.now, bounds)).await?;
    let collector = app::collector(act.caller, input.agent_id)?;
    let mut second_run = false;
    loop {
        let outcome = state
            .idempotency
            .run_audited(write.key(), message, async |conn| {
                let done = app::record(conn, act, &input, collector, second_run).await?;
                let response = pb::RecordPaymentResponse {
                    payment: Some(views::payment(&done.entry)),
                    balance: Some(views::balance(&done.balance)),
                    promise: done.promise.as_ref().map(|p| views::promise(p, Utc::now())),
                    score_points: done.score_points,
                };
                Ok::<_, LedgerError>((response, done.audit))
            })
            .await;
        match answer_or_retry(outcome, second_run) {
            Some(answer) => {
                let response = state.cache.after_write(answer).await?;
                if let Some(mission_id) = input.mission_id {
                    crate::api::missions::after_mission_action(state, mission_id).await;
                }
                return Ok(response);
            }
            None => second_run = true,
        }
    }
}

pub(super) async fn reverse_payment(
    state: &AppState,
    request: &Request<pb::ReversePaymentRequest>,
) -> Result<pb::ReversePaymentResponse, ApiError> {
    let message = request.get_ref();
    let write = Write::begin(request, rpc::REVERSE_PAYMENT, &message.request_id)?;
    let act = write.act();
    let input = parse_entry(state, act, |bounds| {
        parse_reversal(message, act.now, bounds)
    })
    .await?;
    let tenant_id = reversals::reversal_tenant(&state.pool, act.caller, input.payment_id).await?;
    let mut second_run = false;
    loop {
        let outcome = state
            .idempotency
            .run_audited(write.key(), message, async |conn| {
                // A second run finds the stored reversal by its request_id.
                let done = reversals::reverse(conn, act, &input, tenant_id).await?;
                let response = pb::ReversePaymentResponse {
                    reversal: Some(views::payment(&done.reversal)),
                    payment: Some(views::payment(&done.payment)),
                    balance: Some(views::balance(&done.balance)),
                };
                Ok::<_, LedgerError>((response, done.audit))
            })
            .await;
        match answer_or_retry(outcome, second_run) {
            Some(answer) => return state.cache.after_write(answer).await,
            None => second_run = true,
        }
    }
}

pub(super) async fn get_payment(
    state: &AppState,
    request: &Request<pb::GetPaymentRequest>,
) -> Result<pb::GetPaymentResponse, ApiError> {
    let caller = Caller::of(request)?;
    let payment_id = convert::uuid("payment_id", &request.get_ref().payment_id)?;
    let entry = app::get(&state.pool, caller, payment_id).await?;
    Ok(pb::GetPaymentResponse {
        payment: Some(views::payment(&entry)),
    })
}

/// The filters of a ListPaymentsRequest, parsed.
fn parse_filter(request: &pb::ListPaymentsRequest) -> Result<PaymentFilter, ApiError> {
    let mut v = Violations::new();
    let site_ids = if request.site_ids.len() > SITE_FILTER_MAX {
        v.add("site_ids", format!("at most {SITE_FILTER_MAX} sites"));
        Vec::new()
    } else {
        v.absorb(parse::ids("site_ids", &request.site_ids, SITE_FILTER_MAX))
            .unwrap_or_default()
    };
    let agent_id = v
        .absorb(convert::optional_uuid("agent_id", &request.agent_id))
        .flatten();
    let tenant_id = v
        .absorb(convert::optional_uuid("tenant_id", &request.tenant_id))
        .flatten();
    let (occurred_from, occurred_before) =
        parse::time_range(&mut v, "time_range", request.time_range.as_ref());
    let method = match request.method {
        0 => None,
        value => v.check("method", wire::payment_method(value)),
    };
    let kind = match request.kind {
        0 => None,
        value => v.check("kind", wire::payment_kind(value)),
    };
    let receipt_number = v
        .absorb(REFERENCE.parse_optional("receipt_number", &request.receipt_number))
        .flatten();
    // Found however it was typed: compared by its key, as duplicates are.
    let operator_reference_key = v
        .absorb(REFERENCE.parse_optional("operator_reference", &request.operator_reference))
        .flatten()
        .map(|reference| operator_reference_key(&reference));
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
        operator_reference_key,
    })
}

/// The page tokens of one ListPayments filter: the (occurred_at, id) of the last entry sent.
fn pager(filter: &PaymentFilter) -> Pager {
    Pager::new(&("payments", filter))
}

fn cursor(pager: &Pager, token: &str) -> Result<Option<Cursor>, ApiError> {
    pager.position(token, |parts| {
        Some(Cursor {
            occurred_at: parts.instant()?,
            id: parts.parse()?,
        })
    })
}

pub(super) async fn list_payments(
    state: &AppState,
    request: &Request<pb::ListPaymentsRequest>,
) -> Result<pb::ListPaymentsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let page_size = convert::page_size(message.page_size, LIST_DEFAULT, LIST_MAX)?;
    let filter = parse_filter(message)?;
    let pager = pager(&filter);
    let after = cursor(&pager, &message.page_token)?;
    let page = app::list(&state.pool, caller, &filter, after, page_size).await?;
    let next_page_token = match page.entries.last() {
        Some(last) if page.more => pager.token(&[&micros(last.row.occurred_at), &last.row.id]),
        _ => String::new(),
    };
    Ok(pb::ListPaymentsResponse {
        payments: page.entries.iter().map(views::payment).collect(),
        next_page_token,
        total_size: page.total_size,
        total_amount_gnf: page.total_amount_gnf,
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::api::convert::timestamp;
    use crate::domain::PaymentKind;

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
        bad.notes = "n".repeat(2_001);
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

        let mut hostile = request();
        hostile.notes = "payé\u{0}".into();
        assert_eq!(
            fields(parse_record(&hostile, now, bounds).expect_err("control")),
            ["notes"]
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
        assert!(parse_reversal(&reversal(&"é".repeat(500)), now, bounds).is_ok());
        assert!(parse_reversal(&reversal(&"é".repeat(501)), now, bounds).is_err());
        assert!(parse_reversal(&reversal("erreur\u{1b}"), now, bounds).is_err());
    }

    #[test]
    fn page_tokens_are_tied_to_their_filters() {
        let filter = PaymentFilter {
            kind: Some(PaymentKind::Payment),
            ..Default::default()
        };
        let position = Cursor {
            occurred_at: at("2026-03-10T10:00:00.123456Z"),
            id: Uuid::new_v4(),
        };
        let token = pager(&filter).token(&[&micros(position.occurred_at), &position.id]);
        assert_eq!(
            cursor(&pager(&filter), &token).expect("valid"),
            Some(position)
        );
        assert_eq!(cursor(&pager(&filter), "").expect("empty"), None);
        let other = PaymentFilter::default();
        assert!(cursor(&pager(&other), &token).is_err());
        assert!(cursor(&pager(&filter), &pager(&filter).token(&[&"a", &"b"])).is_err());
    }
}
