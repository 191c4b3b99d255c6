//! ListPromises and UpdatePromise: requests parsed into the promise use cases
//! (`app::promises`, where the rules are), answers shown by [`views`].
//!
//! Decisions:
//! - UpdatePromise's mask names `promised_date`, `amount_gnf` and/or `status`; `status` alone,
//!   and only to PROMISE_STATUS_CANCELLED. A reason (3 to 500 characters) is required.
//! - A new promised date counts its window from the day the change was decided (its
//!   `occurred_at`).
//! - ListPromises pages by (promised date, tenant name, id); a page token is tied to its
//!   filters (`api::paging`).

use chrono::{DateTime, Utc};
use tonic::Request;
use uuid::Uuid;

use super::{rpc, views, wire};
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::Pager;
use crate::api::parse::{self, Text, today};
use crate::api::write::Write;
use crate::app::promises::{self as app, Change, PromiseUpdate};
use crate::auth::caller::Caller;
use crate::domain::{OccurredAt, PaymentAmount, PromisedDate, conakry_day};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::promises::{Cursor, ListFilter};

const REASON: Text = Text::line(3, 500);
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 500;
const STATUSES_MAX: usize = 10;

/// The filters of a ListPromisesRequest, and its page size.
fn parse_list(message: &pb::ListPromisesRequest) -> Result<(ListFilter, i64), ApiError> {
    let mut v = Violations::new();
    let page_size = v.absorb(convert::page_size(
        message.page_size,
        PAGE_DEFAULT,
        PAGE_MAX,
    ));
    let mut statuses = Vec::new();
    if message.statuses.len() > STATUSES_MAX {
        v.add("statuses", format!("at most {STATUSES_MAX} values"));
    }
    for (i, value) in message.statuses.iter().enumerate() {
        if *value == pb::PromiseStatus::Unspecified as i32 {
            continue;
        }
        if let Some(status) = v.check(&format!("statuses[{i}]"), wire::promise_status(*value)) {
            statuses.push(status);
        }
    }
    statuses.sort_unstable_by_key(|status| status.as_str());
    statuses.dedup();
    let agent_id = v.absorb(convert::optional_uuid("agent_id", &message.agent_id));
    let site_id = v.absorb(convert::optional_uuid("site_id", &message.site_id));
    let tenant_id = v.absorb(convert::optional_uuid("tenant_id", &message.tenant_id));
    let (from, to) = parse::date_range(
        &mut v,
        "promised_date_range",
        message.promised_date_range.as_ref(),
    );
    v.into_result()?;
    let filter = ListFilter {
        statuses,
        agent_id: agent_id.flatten(),
        site_id: site_id.flatten(),
        tenant_id: tenant_id.flatten(),
        from,
        to,
    };
    Ok((filter, page_size.unwrap_or(PAGE_DEFAULT)))
}

/// The page tokens of one ListPromises filter: the (promised date, id, tenant name) of the last
/// promise sent.
fn pager(filter: &ListFilter) -> Pager {
    Pager::new(&("promises", filter))
}

fn cursor(pager: &Pager, token: &str) -> Result<Option<Cursor>, ApiError> {
    pager.position(token, |parts| {
        Some(Cursor {
            promised_date: parts.parse()?,
            id: parts.parse()?,
            tenant_name: parts.last()?.to_owned(),
        })
    })
}

pub(super) async fn list_promises(
    state: &AppState,
    request: &Request<pb::ListPromisesRequest>,
) -> Result<pb::ListPromisesResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (filter, page_size) = parse_list(message)?;
    let pager = pager(&filter);
    let after = cursor(&pager, &message.page_token)?;
    let page = app::list(
        &state.pool,
        caller,
        &filter,
        after.as_ref(),
        page_size,
        today(),
    )
    .await?;
    let next_page_token = match page.promises.last() {
        Some(last) if page.more => pager.token(&[&last.promised_date, &last.id, &last.tenant_name]),
        _ => String::new(),
    };
    let now = Utc::now();
    Ok(pb::ListPromisesResponse {
        promises: page
            .promises
            .iter()
            .map(|p| views::promise(p, now))
            .collect(),
        next_page_token,
        total_size: page.total_size,
        total_amount_gnf: page.total_amount_gnf,
    })
}

/// An UpdatePromiseRequest, parsed, with its request_id; every bad field is named.
fn parse_update(
    state: &AppState,
    message: &pb::UpdatePromiseRequest,
) -> Result<(Uuid, PromiseUpdate), ApiError> {
    let mut v = Violations::new();
    let request_id = v.absorb(convert::request_id(&message.request_id));
    let reason = v.absorb(REASON.parse("reason", &message.reason));
    let occurred_at = parse::occurred_at(
        &mut v,
        "occurred_at",
        message.occurred_at.as_ref(),
        Utc::now(),
        parse::time_bounds(&state.collections),
    )
    .map(OccurredAt::get);
    let promise = message.promise.as_ref();
    let promise_id = match promise {
        Some(p) => v.absorb(convert::uuid("promise.promise_id", &p.promise_id)),
        None => {
            v.add("promise", "is required");
            None
        }
    };

    let paths = parse_mask(&mut v, message.update_mask.as_ref());
    let has = |name: &str| paths.iter().any(|p| p == name);
    let change = if has("status") {
        if paths.len() > 1 {
            v.add(
                "update_mask",
                "status cannot change together with other fields",
            );
        }
        let cancelled = promise.is_some_and(|p| p.status == pb::PromiseStatus::Cancelled as i32);
        if !cancelled {
            v.add("promise.status", "only PROMISE_STATUS_CANCELLED can be set");
        }
        Some(Change::Cancel)
    } else {
        promise.map(|promise| Change::Reschedule {
            promised_date: has("promised_date")
                .then(|| {
                    promised_date(
                        state,
                        &mut v,
                        promise.promised_date.as_ref(),
                        "is required by the update mask",
                        occurred_at,
                    )
                    .map(PromisedDate::get)
                })
                .flatten(),
            amount_gnf: has("amount_gnf")
                .then(|| {
                    v.check(
                        "promise.amount_gnf",
                        PaymentAmount::parse(promise.amount_gnf),
                    )
                    .map(PaymentAmount::francs)
                })
                .flatten(),
        })
    };
    v.into_result()?;
    match (request_id, promise_id, change, reason, occurred_at) {
        (Some(request_id), Some(promise_id), Some(change), Some(reason), Some(occurred_at)) => {
            Ok((
                request_id,
                PromiseUpdate {
                    promise_id,
                    change,
                    reason,
                    occurred_at,
                    paths,
                },
            ))
        }
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

/// The paths of an update mask: trimmed, sorted, each named once, each one the update allows.
fn parse_mask(v: &mut Violations, mask: Option<&prost_types::FieldMask>) -> Vec<String> {
    let mut paths: Vec<String> = mask
        .map(|mask| mask.paths.iter().map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        v.add(
            "update_mask",
            "is required: promised_date, amount_gnf and/or status",
        );
    }
    for path in &paths {
        if !matches!(path.as_str(), "promised_date" | "amount_gnf" | "status") {
            v.add(
                "update_mask",
                format!("path {path:?} is not allowed (promised_date, amount_gnf, status)"),
            );
        }
    }
    paths
}

/// A promised date (`field`, required; `missing` says why when absent), within the window
/// counted from the day of `decided_at` (the call or visit that obtained the promise, or the
/// decision to reschedule it).
pub(super) fn promised_date(
    state: &AppState,
    v: &mut Violations,
    date: Option<&pb::Date>,
    missing: &str,
    decided_at: Option<DateTime<Utc>>,
) -> Option<PromisedDate> {
    const FIELD: &str = "promise.promised_date";
    let date = match date {
        Some(date) => v.absorb(parse::date(FIELD, date)),
        None => {
            v.add(FIELD, missing);
            None
        }
    };
    date.zip(decided_at).and_then(|(date, at)| {
        v.check_reasoned(
            FIELD,
            PromisedDate::parse(
                date,
                conakry_day(at),
                state.collections.promise_horizon_days,
            ),
        )
    })
}

pub(super) async fn update_promise(
    state: &AppState,
    request: &Request<pb::UpdatePromiseRequest>,
) -> Result<pb::UpdatePromiseResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (request_id, update) = parse_update(state, message)?;
    let write = Write::new(caller, rpc::UPDATE_PROMISE, request_id);
    app::check_update(&state.pool, caller, update.promise_id).await?;
    let outcome = state
        .idempotency
        .run_audited(write.key(), message, async |conn| {
            let done = app::update(conn, write.act(), &update).await?;
            let response = pb::UpdatePromiseResponse {
                promise: Some(views::promise(&done.promise, Utc::now())),
            };
            Ok::<_, ApiError>((response, done.audit))
        })
        .await;
    state.cache.after_write(outcome).await
}
