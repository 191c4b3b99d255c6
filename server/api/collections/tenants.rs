//! Reads about tenants: card, search, history, arrears, and the daily figures.
//!
//! Decisions:
//! - "Today" and every day boundary are Africa/Conakry days (`domain::clock`).
//! - A charge is *due* from its due date on (listed in arrears, counted in outstanding); it is
//!   *overdue* from the next day (days overdue and aging bucket, `domain::aging`).
//! - Arrears for a past day: what had been paid on a charge is the sum of the allocations of
//!   the payments and reversals whose occurred_at (when the money changed hands) is on or
//!   before that day; for today or later, the current `amount_paid_gnf`. The credit is always
//!   the current one (the ledger does not date credit movements).
//! - Search and daily figures leave out what is outside the caller's scope, silently: a
//!   `site_ids` filter naming other sites just finds nothing there.
//! - A tenant has no assigned agent: an agent's `due_gnf` is over the tenants of the sites the
//!   agent covers.
//! - Daily figures: a row (call, visit, promise, payment, reversal, score event) counts when
//!   its tenant's site is listed and, when agents are named (always, for an agent: only
//!   themself), when one of them did it. A reversal counts against the agent who collected
//!   the reversed payment, on the day of the reversal. The amount due at the start of the day
//!   is, per charge due by then, its amount minus the allocations of the payments and
//!   reversals that occurred before the day; tenant credit is not deducted.
//! - Promise statuses are derived on the day of the read (`promise_status_on`); a timeline
//!   event shows the promise's date, status and reschedule count as they were right after
//!   it, its amount and paid figure as they are now.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::interactions::interaction_to_proto;
use super::payments::payment_to_proto;
use super::tenant_in_scope;
use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::auth::caller::{Caller, Scope};
use crate::domain::aging::days_overdue_for_display;
use crate::domain::{
    AgingBuckets, Bucket, InteractionKind, InteractionOutcome, PromiseStatus, conakry_day,
    conakry_day_start,
};
use crate::proto::v1 as pb;
use crate::startup::AppState;
use crate::store::interactions::{self as interaction_store, InteractionRow};
use crate::store::payments;
use crate::store::stats;
use crate::store::tenants::{self as store, HistoryKey, history_kind};

const QUERY_MAX_CHARS: usize = 200;
/// Words of a search query used for matching; more are ignored (the trigram match still sees
/// the whole query).
const QUERY_MAX_WORDS: usize = 8;
const WORD_MAX_CHARS: usize = 64;
/// A search pages through its first 1,000 hits at most (offset paging).
const SEARCH_MAX_OFFSET: i64 = 1_000;
const IDS_MAX: usize = 200;

// ---------------------------------------------------------------------------------------------
// Handlers.

pub(super) async fn get_tenant(
    state: &AppState,
    request: Request<pb::GetTenantRequest>,
) -> Result<Response<pb::GetTenantResponse>, Status> {
    let caller = Caller::of(&request)?;
    let tenant_id = convert::uuid("tenant_id", &request.get_ref().tenant_id)?;
    let aging = aging_buckets(state)?;
    let today = today();

    let mut tx = store::begin_read(&state.pool)
        .await
        .map_err(ApiError::from)?;
    tenant_in_scope(&mut *tx, caller, tenant_id).await?;
    let tenant = load_cards(&mut tx, &[tenant_id], today, &aging)
        .await?
        .pop()
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(Response::new(pb::GetTenantResponse {
        tenant: Some(tenant),
    }))
}

pub(super) async fn get_tenant_arrears(
    state: &AppState,
    request: Request<pb::GetTenantArrearsRequest>,
) -> Result<Response<pb::GetTenantArrearsResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let today = today();
    let mut violations = Violations::new();
    let tenant_id = violations.absorb(convert::uuid("tenant_id", &message.tenant_id));
    let as_of = match &message.as_of_date {
        Some(date) => violations.absorb(parse_date("as_of_date", date)),
        None => Some(today),
    };
    violations.into_result()?;
    let (Some(tenant_id), Some(as_of)) = (tenant_id, as_of) else {
        return Err(ApiError::invalid("", "invalid request").into());
    };
    let aging = aging_buckets(state)?;

    let mut tx = store::begin_read(&state.pool)
        .await
        .map_err(ApiError::from)?;
    tenant_in_scope(&mut *tx, caller, tenant_id).await?;
    let tenant = store::tenant_ref(&mut tx, tenant_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("tenant"))?;
    let paid_before = if as_of >= today {
        None
    } else {
        Some(conakry_day_start(day_after(as_of)))
    };
    let rows = store::arrears_charges(&mut tx, tenant_id, as_of, paid_before)
        .await
        .map_err(ApiError::from)?;
    let report = arrears_report(
        &rows,
        as_of,
        message.include_paid,
        paid_before.is_none(),
        &aging,
    )?;

    Ok(Response::new(pb::GetTenantArrearsResponse {
        tenant: Some(tenant_ref_proto(&tenant)),
        as_of_date: Some(date_proto(as_of)),
        charges: report.charges,
        total_due_gnf: report.total_due,
        total_paid_gnf: report.total_paid,
        outstanding_gnf: report.outstanding,
        credit_gnf: tenant.credit_gnf,
        days_overdue: report.days_overdue,
        aging: report.aging,
    }))
}

pub(super) async fn get_tenant_history(
    state: &AppState,
    request: Request<pb::GetTenantHistoryRequest>,
) -> Result<Response<pb::GetTenantHistoryResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let params = HistoryParams::parse(message)?;
    let aging = aging_buckets(state)?;
    let today = today();

    let mut tx = store::begin_read(&state.pool)
        .await
        .map_err(ApiError::from)?;
    tenant_in_scope(&mut *tx, caller, params.tenant_id).await?;
    let tenant = store::tenant_ref(&mut tx, params.tenant_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("tenant"))?;

    let mut keys = store::history_keys(
        &mut tx,
        &store::HistoryQuery {
            tenant_id: params.tenant_id,
            kinds: &params.kinds,
            start: params.start,
            end: params.end,
            after: params.after.as_ref(),
            oldest_first: params.oldest_first,
            limit: params.page_size + 1,
        },
    )
    .await
    .map_err(ApiError::from)?;
    let more = keys.len() as i64 > params.page_size;
    keys.truncate(usize::try_from(params.page_size).unwrap_or(usize::MAX));
    let next_page_token = match keys.last() {
        Some(last) if more => encode_history_token(&params.fingerprint, last),
        _ => String::new(),
    };
    let entries = history_entries(&mut tx, &keys, &tenant, today, &aging).await?;
    Ok(Response::new(pb::GetTenantHistoryResponse {
        entries,
        next_page_token,
    }))
}

pub(super) async fn search_tenants(
    state: &AppState,
    request: Request<pb::SearchTenantsRequest>,
) -> Result<Response<pb::SearchTenantsResponse>, Status> {
    let caller = Caller::of(&request)?;
    let params = SearchParams::parse(request.get_ref())?;
    let aging = aging_buckets(state)?;
    let today = today();

    let Some(site_ids) = intersect_with_scope(&caller.scope(), params.site_ids.as_deref()) else {
        return Ok(Response::new(pb::SearchTenantsResponse::default()));
    };
    let limit = params.page_size.min(SEARCH_MAX_OFFSET - params.offset);
    if limit <= 0 {
        return Ok(Response::new(pb::SearchTenantsResponse::default()));
    }

    let mut tx = store::begin_read(&state.pool)
        .await
        .map_err(ApiError::from)?;
    let words = store::meaningful_words(&mut tx, &params.words)
        .await
        .map_err(ApiError::from)?;
    let word_sites = store::sites_matching(&mut tx, &words)
        .await
        .map_err(ApiError::from)?;
    let mut hits = store::search(
        &mut tx,
        &store::SearchQuery {
            text: &params.text,
            words: &words,
            word_sites: &word_sites,
            phone_digits: params.phone_digits.as_deref(),
            site_ids: site_ids.as_deref(),
            show_inactive: params.show_inactive,
            only_in_arrears: params.only_in_arrears,
            today,
            limit: limit + 1,
            offset: params.offset,
        },
    )
    .await
    .map_err(ApiError::from)?;
    let more = hits.len() as i64 > limit;
    hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_offset = params.offset + limit;
    let next_page_token = if more && next_offset < SEARCH_MAX_OFFSET {
        convert::encode_page_token(&format!("{}|{next_offset}", params.fingerprint))
    } else {
        String::new()
    };

    let ids: Vec<Uuid> = hits.iter().map(|hit| hit.id).collect();
    let mut cards: HashMap<String, pb::Tenant> = load_cards(&mut tx, &ids, today, &aging)
        .await?
        .into_iter()
        .map(|card| (card.tenant_id.clone(), card))
        .collect();
    let results = hits
        .iter()
        .filter_map(|hit| {
            cards
                .remove(&hit.id.to_string())
                .map(|tenant| pb::TenantSearchResult {
                    tenant: Some(tenant),
                    relevance: hit.relevance,
                })
        })
        .collect();
    Ok(Response::new(pb::SearchTenantsResponse {
        results,
        next_page_token,
    }))
}

pub(super) async fn get_daily_stats(
    state: &AppState,
    request: Request<pb::GetDailyStatsRequest>,
) -> Result<Response<pb::GetDailyStatsResponse>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let today = today();
    let mut violations = Violations::new();
    let day = match &message.date {
        Some(date) => violations.absorb(parse_date("date", date)),
        None => Some(today),
    };
    if day.is_some_and(|day| day > today) {
        violations.add("date", "must not be in the future");
    }
    let site_filter = violations.absorb(parse_ids("site_ids", &message.site_ids));
    let agent_filter = violations.absorb(parse_ids("agent_ids", &message.agent_ids));
    violations.into_result()?;
    let (Some(day), Some(site_filter), Some(agent_filter)) = (day, site_filter, agent_filter)
    else {
        return Err(ApiError::invalid("", "invalid request").into());
    };

    let plan = StatsPlan::new(caller, &site_filter, &agent_filter);
    let start = conakry_day_start(day);
    let end = conakry_day_start(day_after(day));
    let sites_in = plan.sites.as_deref();

    let mut tx = store::begin_read(&state.pool)
        .await
        .map_err(ApiError::from)?;
    let sites = stats::sites(&mut tx, sites_in)
        .await
        .map_err(ApiError::from)?;
    let agents = stats::agents(
        &mut tx,
        &stats::AgentFilter {
            covering: plan.agents_covering.as_deref(),
            supervisor_id: plan.supervisor_id,
            agent_ids: plan.actors.as_deref(),
        },
    )
    .await
    .map_err(ApiError::from)?;
    let activity = stats::activity(
        &mut tx,
        &stats::DayFilter {
            day,
            start,
            end,
            site_ids: sites_in,
            actor_ids: plan.actors.as_deref(),
        },
    )
    .await
    .map_err(ApiError::from)?;
    let due = stats::due_by_site(&mut tx, day, start, sites_in)
        .await
        .map_err(ApiError::from)?;
    drop(tx);

    let figures = daily_figures(&sites, &agents, &activity, &due)?;
    Ok(Response::new(pb::GetDailyStatsResponse {
        date: Some(date_proto(day)),
        total: Some(figures.total),
        agents: figures.agents,
        sites: figures.sites,
        compute_time: Some(timestamp(Utc::now())),
    }))
}

// ---------------------------------------------------------------------------------------------
// Shared conversions.

fn today() -> NaiveDate {
    conakry_day(Utc::now())
}

fn day_after(day: NaiveDate) -> NaiveDate {
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}

fn aging_buckets(state: &AppState) -> Result<AgingBuckets, ApiError> {
    AgingBuckets::parse(&state.collections.aging_bounds).map_err(ApiError::internal)
}

/// A `Date` message: year 2000..2100, a real calendar day.
fn parse_date(field: &str, date: &pb::Date) -> Result<NaiveDate, ApiError> {
    if !(2000..=2100).contains(&date.year) {
        return Err(ApiError::invalid(
            format!("{field}.year"),
            "must be 2000..2100",
        ));
    }
    let month = u32::try_from(date.month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| ApiError::invalid(format!("{field}.month"), "must be 1..12"))?;
    let day = u32::try_from(date.day)
        .ok()
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(|| ApiError::invalid(format!("{field}.day"), "must be 1..31"))?;
    NaiveDate::from_ymd_opt(date.year, month, day)
        .ok_or_else(|| ApiError::invalid(format!("{field}.day"), "is not a day of that month"))
}

fn date_proto(date: NaiveDate) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: i32::try_from(date.month()).unwrap_or(0),
        day: i32::try_from(date.day()).unwrap_or(0),
    }
}

fn month_proto(date: NaiveDate) -> pb::YearMonth {
    pb::YearMonth {
        year: date.year(),
        month: i32::try_from(date.month()).unwrap_or(0),
    }
}

/// A list of UUIDs, deduplicated; `field[i]` names a bad one.
fn parse_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>, ApiError> {
    if values.len() > IDS_MAX {
        return Err(ApiError::invalid(field, format!("at most {IDS_MAX} ids")));
    }
    let mut ids = values
        .iter()
        .enumerate()
        .map(|(i, v)| convert::uuid(&format!("{field}[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn user_ref(id: Uuid, full_name: &str) -> pb::UserRef {
    pb::UserRef {
        user_id: id.to_string(),
        full_name: full_name.to_owned(),
    }
}

fn tenant_ref_proto(tenant: &store::TenantRefRow) -> pb::TenantRef {
    pb::TenantRef {
        tenant_id: tenant.id.to_string(),
        full_name: tenant.full_name.clone(),
        site_id: tenant.site_id.to_string(),
        site_name: tenant.site_name.clone(),
        unit_label: tenant.unit.clone(),
    }
}

fn opt_id(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

fn kind_proto(kind: &str) -> pb::InteractionKind {
    InteractionKind::from_str(kind)
        .map_or(pb::InteractionKind::Unspecified, pb::InteractionKind::from)
}

fn outcome_proto(outcome: &str) -> pb::InteractionOutcome {
    InteractionOutcome::from_str(outcome).map_or(
        pb::InteractionOutcome::Unspecified,
        pb::InteractionOutcome::from,
    )
}

fn promise_status(status: &str) -> PromiseStatus {
    // The column's check list is the domain's; an unknown value is shown as pending.
    PromiseStatus::from_str(status).unwrap_or(PromiseStatus::Pending)
}

/// How a promise looked at some point: the current row unless a timeline event says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PromiseSnapshot {
    promised_date: NaiveDate,
    status: PromiseStatus,
    reschedule_count: i32,
    last_change_reason: Option<String>,
    resolve_time: Option<DateTime<Utc>>,
}

impl PromiseSnapshot {
    fn current(row: &store::PromiseRow) -> Self {
        let status = promise_status(&row.status);
        Self {
            promised_date: row.promised_date,
            status,
            reschedule_count: row.reschedule_count,
            last_change_reason: if status == PromiseStatus::Cancelled {
                row.cancel_reason.clone()
            } else {
                row.reschedule_reason.clone()
            },
            resolve_time: if status.is_final() {
                row.status_changed_at
            } else {
                None
            },
        }
    }
}

fn promise_proto(
    row: &store::PromiseRow,
    tenant: &pb::TenantRef,
    snapshot: &PromiseSnapshot,
) -> pb::PaymentPromise {
    pb::PaymentPromise {
        promise_id: row.id.to_string(),
        tenant: Some(tenant.clone()),
        agent: Some(user_ref(row.agent_id, &row.agent_name)),
        amount_gnf: row.amount_gnf,
        promised_date: Some(date_proto(snapshot.promised_date)),
        status: pb::PromiseStatus::from(snapshot.status).into(),
        paid_gnf: row.paid_gnf,
        interaction_id: opt_id(row.interaction_id),
        occurred_at: Some(timestamp(row.occurred_at)),
        received_at: Some(timestamp(row.received_at)),
        original_promised_date: Some(date_proto(row.original_promised_date)),
        reschedule_count: snapshot.reschedule_count,
        last_change_reason: snapshot.last_change_reason.clone().unwrap_or_default(),
        resolve_time: snapshot.resolve_time.map(timestamp),
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant cards (GetTenant, SearchTenants).

/// The cards of `ids`, in the order of `ids` (unknown ids left out).
async fn load_cards(
    conn: &mut PgConnection,
    ids: &[Uuid],
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<pb::Tenant>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store::cards(conn, ids, today).await?;
    let mut last: HashMap<Uuid, store::LastInteractionRow> = store::last_interactions(conn, ids)
        .await?
        .into_iter()
        .map(|row| (row.tenant_id, row))
        .collect();
    let mut pending: HashMap<Uuid, store::PromiseRow> = HashMap::new();
    // Newest first: the first one seen per tenant is kept.
    for row in store::pending_promises(conn, ids, today).await? {
        pending.entry(row.tenant_id).or_insert(row);
    }
    let mut by_id: HashMap<Uuid, store::TenantCardRow> =
        rows.into_iter().map(|row| (row.id, row)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| {
            let row = by_id.remove(id)?;
            Some(card_proto(
                &row,
                last.remove(id),
                pending.remove(id),
                today,
                aging,
            ))
        })
        .collect())
}

fn card_proto(
    row: &store::TenantCardRow,
    last: Option<store::LastInteractionRow>,
    pending: Option<store::PromiseRow>,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> pb::Tenant {
    let tenant_ref = pb::TenantRef {
        tenant_id: row.id.to_string(),
        full_name: row.full_name.clone(),
        site_id: row.site_id.to_string(),
        site_name: row.site_name.clone(),
        unit_label: row.unit.clone(),
    };
    let (days_overdue, bucket) = match row.oldest_unpaid_due_date {
        Some(due) => (
            days_overdue_for_display(due, today),
            aging.bucket_on(due, today),
        ),
        None => (0, None),
    };
    pb::Tenant {
        tenant_id: row.id.to_string(),
        full_name: row.full_name.clone(),
        phones: row.phone.iter().cloned().collect(),
        site_id: row.site_id.to_string(),
        site_name: row.site_name.clone(),
        unit_label: row.unit.clone(),
        address: row.address.clone(),
        home_location: row
            .home_latitude
            .zip(row.home_longitude)
            .map(|(latitude, longitude)| pb::LatLng {
                latitude,
                longitude,
            }),
        monthly_rent_gnf: row.monthly_rent_gnf,
        active: row.active,
        outstanding_gnf: row.outstanding_gnf,
        credit_gnf: row.credit_gnf,
        days_overdue,
        aging_bucket: super::wire::bucket(bucket).into(),
        broken_promise_count: row.broken_promise_count,
        last_interaction: last.map(|i| pb::InteractionSummary {
            interaction_id: i.id.to_string(),
            kind: kind_proto(&i.kind).into(),
            outcome: outcome_proto(&i.outcome).into(),
            occurred_at: Some(timestamp(i.occurred_at)),
            agent: Some(user_ref(i.agent_id, &i.agent_name)),
            notes_excerpt: i.notes_excerpt,
        }),
        pending_promise: pending
            .map(|p| promise_proto(&p, &tenant_ref, &PromiseSnapshot::current(&p))),
    }
}

// ---------------------------------------------------------------------------------------------
// Arrears.

#[derive(Debug, Default)]
struct ArrearsReport {
    charges: Vec<pb::MonthlyCharge>,
    total_due: i64,
    total_paid: i64,
    outstanding: i64,
    days_overdue: i32,
    aging: Vec<pb::AgingBucketTotal>,
}

fn overflow() -> ApiError {
    ApiError::internal(anyhow::anyhow!("amount overflow"))
}

/// The arrears of one tenant on `as_of` from its charges due by then (oldest first).
/// `current`: the paid figures are today's (`paid_in_full_at` may then date a paid charge).
fn arrears_report(
    rows: &[store::ArrearsChargeRow],
    as_of: NaiveDate,
    include_paid: bool,
    current: bool,
    aging: &AgingBuckets,
) -> Result<ArrearsReport, ApiError> {
    // Fully paid months are listed from the month eleven months before as_of's month on.
    let paid_since = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 1)
        .and_then(|first| first.checked_sub_months(Months::new(11)))
        .unwrap_or(NaiveDate::MIN);
    let mut report = ArrearsReport::default();
    // (outstanding, charge count) per bucket, youngest first.
    let mut buckets = [(0_i64, 0_i64); 4];
    let mut oldest_bucket: Option<Bucket> = None;
    for row in rows {
        let due = row.due_gnf.max(0);
        let paid = row.paid_gnf.clamp(0, due);
        let outstanding = due - paid;
        if outstanding == 0 && !(include_paid && row.period >= paid_since) {
            continue;
        }
        let (days_overdue, bucket) = if outstanding > 0 {
            (
                days_overdue_for_display(row.due_date, as_of),
                aging.bucket_on(row.due_date, as_of),
            )
        } else {
            (0, None)
        };
        if outstanding > 0 && report.outstanding == 0 {
            // Rows come oldest first: the first unpaid one is the oldest.
            report.days_overdue = days_overdue;
            oldest_bucket = bucket;
        }
        if let Some(bucket) = bucket {
            let slot = &mut buckets[bucket_index(bucket)];
            slot.0 = slot.0.checked_add(outstanding).ok_or_else(overflow)?;
            slot.1 += 1;
        }
        let paid_date = if outstanding == 0 && due > 0 {
            row.last_paid_at
                .or(if current { row.paid_in_full_at } else { None })
                .map(|at| date_proto(conakry_day(at)))
        } else {
            None
        };
        report.total_due = report.total_due.checked_add(due).ok_or_else(overflow)?;
        report.total_paid = report.total_paid.checked_add(paid).ok_or_else(overflow)?;
        report.outstanding = report
            .outstanding
            .checked_add(outstanding)
            .ok_or_else(overflow)?;
        report.charges.push(pb::MonthlyCharge {
            charge_id: row.id.to_string(),
            month: Some(month_proto(row.period)),
            due_date: Some(date_proto(row.due_date)),
            due_gnf: due,
            paid_gnf: paid,
            outstanding_gnf: outstanding,
            days_overdue,
            aging_bucket: super::wire::bucket(bucket).into(),
            paid_date,
        });
    }
    report.aging = Bucket::ALL
        .into_iter()
        .map(|bucket| {
            let (outstanding, count) = buckets[bucket_index(bucket)];
            pb::AgingBucketTotal {
                bucket: pb::AgingBucket::from(bucket).into(),
                outstanding_gnf: outstanding,
                charge_count: count,
                tenant_count: i64::from(oldest_bucket == Some(bucket)),
            }
        })
        .collect();
    Ok(report)
}

fn bucket_index(bucket: Bucket) -> usize {
    Bucket::ALL.iter().position(|b| *b == bucket).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// History.

#[derive(Debug)]
struct HistoryParams {
    tenant_id: Uuid,
    page_size: i64,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    kinds: Vec<&'static str>,
    oldest_first: bool,
    fingerprint: String,
    after: Option<HistoryKey>,
}

impl HistoryParams {
    fn parse(message: &pb::GetTenantHistoryRequest) -> Result<Self, ApiError> {
        let mut violations = Violations::new();
        let tenant_id = violations.absorb(convert::uuid("tenant_id", &message.tenant_id));
        let page_size = violations.absorb(convert::page_size(message.page_size, 50, 500));
        let (mut start, mut end) = (None, None);
        if let Some(range) = &message.time_range {
            if let Some(ts) = &range.start_time {
                start = violations.absorb(convert::from_timestamp("time_range.start_time", ts));
            }
            if let Some(ts) = &range.end_time {
                end = violations.absorb(convert::from_timestamp("time_range.end_time", ts));
            }
            if let (Some(s), Some(e)) = (start, end)
                && e <= s
            {
                violations.add("time_range.end_time", "must be after start_time");
            }
        }
        let mut kinds: Vec<&'static str> = Vec::new();
        for (i, value) in message.kinds.iter().enumerate() {
            match pb::HistoryEntryKind::try_from(*value) {
                Ok(pb::HistoryEntryKind::Charge) => kinds.push(history_kind::CHARGE),
                Ok(pb::HistoryEntryKind::Payment) => kinds.push(history_kind::PAYMENT),
                Ok(pb::HistoryEntryKind::Reversal) => kinds.push(history_kind::REVERSAL),
                Ok(pb::HistoryEntryKind::Call) => kinds.push(history_kind::CALL),
                Ok(pb::HistoryEntryKind::Visit) => kinds.push(history_kind::VISIT),
                Ok(pb::HistoryEntryKind::Promise) => {
                    kinds.push(history_kind::PROMISE_MADE);
                    kinds.push(history_kind::PROMISE_EVENT);
                }
                Ok(pb::HistoryEntryKind::Unspecified) | Err(_) => {
                    violations.add(format!("kinds[{i}]"), "must be a known entry kind");
                }
            }
        }
        if kinds.is_empty() {
            kinds = history_kind::ALL.to_vec();
        }
        kinds.sort_unstable();
        kinds.dedup();
        violations.into_result()?;
        let (Some(tenant_id), Some(page_size)) = (tenant_id, page_size) else {
            return Err(ApiError::invalid("", "invalid request"));
        };
        let fingerprint = fingerprint(&format!(
            "history|{tenant_id}|{start:?}|{end:?}|{kinds:?}|{}",
            message.oldest_first
        ));
        let after = decode_history_token(&fingerprint, &message.page_token)?;
        Ok(Self {
            tenant_id,
            page_size,
            start,
            end,
            kinds,
            oldest_first: message.oldest_first,
            fingerprint,
            after,
        })
    }
}

/// A short digest of a request's filters, carried in its page tokens.
fn fingerprint(filters: &str) -> String {
    Sha256::digest(filters.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bad_token() -> ApiError {
    ApiError::invalid_because(
        "page_token",
        "is not a token of this request",
        "ERROR_REASON_PAGE_TOKEN_INVALID",
    )
}

fn encode_history_token(fingerprint: &str, key: &HistoryKey) -> String {
    convert::encode_page_token(&format!(
        "{fingerprint}|{}|{}|{}|{}",
        key.occurred_at.timestamp_micros(),
        key.received_at.timestamp_micros(),
        key.kind,
        key.id
    ))
}

fn decode_history_token(fingerprint: &str, token: &str) -> Result<Option<HistoryKey>, ApiError> {
    let Some(text) = convert::decode_page_token(token).map_err(|_| bad_token())? else {
        return Ok(None);
    };
    let parts: Vec<&str> = text.split('|').collect();
    let [fp, occurred, received, kind, id] = parts.as_slice() else {
        return Err(bad_token());
    };
    if *fp != fingerprint || id.is_empty() {
        return Err(bad_token());
    }
    let kind = history_kind::ALL
        .into_iter()
        .find(|k| k == kind)
        .ok_or_else(bad_token)?;
    let instant = |micros: &str| {
        micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad_token)
    };
    Ok(Some(HistoryKey {
        occurred_at: instant(occurred)?,
        received_at: instant(received)?,
        kind: kind.to_owned(),
        id: (*id).to_owned(),
    }))
}

/// The entries of `keys`, in their order, with their details loaded by kind (a few queries
/// per page, whatever its size).
async fn history_entries(
    conn: &mut PgConnection,
    keys: &[HistoryKey],
    tenant: &store::TenantRefRow,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<pb::HistoryEntry>, ApiError> {
    let bad_id = |key: &HistoryKey| ApiError::internal(anyhow::anyhow!("bad history id {key:?}"));
    let (mut charge_ids, mut entry_ids, mut interaction_ids, mut made_ids, mut event_ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for key in keys {
        match key.kind.as_str() {
            history_kind::CHARGE => {
                charge_ids.push(key.id.parse::<i64>().map_err(|_| bad_id(key))?)
            }
            history_kind::PAYMENT | history_kind::REVERSAL => {
                entry_ids.push(Uuid::parse_str(&key.id).map_err(|_| bad_id(key))?);
            }
            history_kind::CALL | history_kind::VISIT => {
                interaction_ids.push(Uuid::parse_str(&key.id).map_err(|_| bad_id(key))?);
            }
            history_kind::PROMISE_MADE => {
                made_ids.push(Uuid::parse_str(&key.id).map_err(|_| bad_id(key))?);
            }
            _ => event_ids.push(key.id.parse::<i64>().map_err(|_| bad_id(key))?),
        }
    }

    let charges: HashMap<String, store::ChargeRow> = if charge_ids.is_empty() {
        HashMap::new()
    } else {
        store::charges_by_ids(conn, &charge_ids)
            .await?
            .into_iter()
            .map(|row| (row.id.to_string(), row))
            .collect()
    };
    let (ledger, mut allocations) = if entry_ids.is_empty() {
        (HashMap::new(), HashMap::new())
    } else {
        let ledger: HashMap<String, payments::PaymentRow> =
            payments::entries_by_ids(&mut *conn, &entry_ids)
                .await?
                .into_iter()
                .map(|row| (row.id.to_string(), row))
                .collect();
        let mut allocations: HashMap<Uuid, Vec<payments::AllocationRow>> = HashMap::new();
        for row in payments::allocations(&mut *conn, &entry_ids).await? {
            allocations.entry(row.payment_id).or_default().push(row);
        }
        (ledger, allocations)
    };
    let interactions: HashMap<String, InteractionRow> = if interaction_ids.is_empty() {
        HashMap::new()
    } else {
        interaction_store::by_ids(&mut *conn, &interaction_ids)
            .await?
            .into_iter()
            .map(|row| (row.id.to_string(), row))
            .collect()
    };
    let mut promise_ids = made_ids;
    if !event_ids.is_empty() {
        promise_ids.extend(store::promise_ids_of_events(conn, &event_ids).await?);
    }
    promise_ids.sort();
    promise_ids.dedup();
    let (promises, events) = if promise_ids.is_empty() {
        (HashMap::new(), Vec::new())
    } else {
        let promises: HashMap<Uuid, store::PromiseRow> =
            store::promises_by_ids(conn, &promise_ids, today)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
        (
            promises,
            store::promise_events_of(conn, &promise_ids).await?,
        )
    };
    let mut events_of: HashMap<Uuid, Vec<&store::PromiseEventRow>> = HashMap::new();
    for event in &events {
        events_of.entry(event.promise_id).or_default().push(event);
    }
    let events_by_id: HashMap<String, &store::PromiseEventRow> =
        events.iter().map(|e| (e.id.to_string(), e)).collect();

    let tenant_pb = tenant_ref_proto(tenant);
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let (actor, entry) = match key.kind.as_str() {
            history_kind::CHARGE => {
                let Some(row) = charges.get(&key.id) else {
                    continue;
                };
                (
                    None,
                    pb::history_entry::Entry::Charge(charge_proto(row, today, aging)),
                )
            }
            history_kind::PAYMENT | history_kind::REVERSAL => {
                let Some(row) = ledger.get(&key.id).cloned() else {
                    continue;
                };
                let actor = Some(user_ref(row.agent_id, &row.agent_name));
                let reversal = row.kind == history_kind::REVERSAL;
                let own = allocations.remove(&row.id).unwrap_or_default();
                let mut payment = payment_to_proto(row, &own);
                // Like the timeline's other entries, the tenant and its current site (the
                // row names the site the entry was recorded at).
                payment.tenant = Some(tenant_pb.clone());
                if reversal {
                    (actor, pb::history_entry::Entry::Reversal(payment))
                } else {
                    (actor, pb::history_entry::Entry::Payment(payment))
                }
            }
            history_kind::CALL | history_kind::VISIT => {
                let Some(row) = interactions.get(&key.id) else {
                    continue;
                };
                let actor = Some(user_ref(row.agent_id, &row.agent_name));
                // The row names the tenant with its current site, as read by this snapshot.
                let interaction = interaction_to_proto(row);
                if row.kind == history_kind::VISIT {
                    (actor, pb::history_entry::Entry::Visit(interaction))
                } else {
                    (actor, pb::history_entry::Entry::Call(interaction))
                }
            }
            history_kind::PROMISE_MADE => {
                let Some(row) = Uuid::parse_str(&key.id)
                    .ok()
                    .and_then(|id| promises.get(&id))
                else {
                    continue;
                };
                let history = events_of.get(&row.id).map_or(&[][..], Vec::as_slice);
                let snapshot = promise_snapshot(row, history, None);
                (
                    Some(user_ref(row.agent_id, &row.agent_name)),
                    pb::history_entry::Entry::PromiseEvent(pb::PromiseEvent {
                        kind: pb::PromiseEventKind::Made.into(),
                        promise: Some(promise_proto(row, &tenant_pb, &snapshot)),
                        previous_promised_date: None,
                        reason: String::new(),
                    }),
                )
            }
            _ => {
                let Some(event) = events_by_id.get(&key.id) else {
                    continue;
                };
                let Some(row) = promises.get(&event.promise_id) else {
                    continue;
                };
                let history = events_of.get(&row.id).map_or(&[][..], Vec::as_slice);
                let snapshot = promise_snapshot(row, history, Some(event.id));
                (
                    event
                        .actor_id
                        .map(|id| user_ref(id, event.actor_name.as_deref().unwrap_or_default())),
                    pb::history_entry::Entry::PromiseEvent(pb::PromiseEvent {
                        kind: promise_event_kind(&event.kind).into(),
                        promise: Some(promise_proto(row, &tenant_pb, &snapshot)),
                        previous_promised_date: event.previous_promised_date.map(date_proto),
                        reason: event.reason.clone().unwrap_or_default(),
                    }),
                )
            }
        };
        entries.push(pb::HistoryEntry {
            occurred_at: Some(timestamp(key.occurred_at)),
            received_at: Some(timestamp(key.received_at)),
            actor,
            entry: Some(entry),
        });
    }
    Ok(entries)
}

fn promise_event_kind(kind: &str) -> pb::PromiseEventKind {
    match kind {
        "rescheduled" => pb::PromiseEventKind::Rescheduled,
        "cancelled" => pb::PromiseEventKind::Cancelled,
        "kept" => pb::PromiseEventKind::Kept,
        "partially_kept" => pb::PromiseEventKind::PartiallyKept,
        "broken" => pb::PromiseEventKind::Broken,
        _ => pb::PromiseEventKind::Unspecified,
    }
}

/// The promise right after one of its events (`None`: right after it was made), rebuilt from
/// the current row and its events (`events`: all of them, in the order they were written).
/// The promised date of each step comes from the next reschedule's `previous_promised_date`
/// (or the current date after the last one); the amount and paid figure are the current ones.
fn promise_snapshot(
    row: &store::PromiseRow,
    events: &[&store::PromiseEventRow],
    upto_event: Option<i64>,
) -> PromiseSnapshot {
    let reschedules: Vec<&store::PromiseEventRow> = events
        .iter()
        .copied()
        .filter(|e| e.kind == "rescheduled")
        .collect();
    let date_after = |count: usize| -> NaiveDate {
        if count == 0 {
            return row.original_promised_date;
        }
        reschedules
            .get(count)
            .and_then(|next| next.previous_promised_date)
            .unwrap_or(row.promised_date)
    };
    let Some(upto) = upto_event else {
        return PromiseSnapshot {
            promised_date: date_after(0),
            status: PromiseStatus::Pending,
            reschedule_count: 0,
            last_change_reason: None,
            resolve_time: None,
        };
    };
    let seen: Vec<&store::PromiseEventRow> = events
        .iter()
        .copied()
        .take_while(|e| e.id <= upto)
        .collect();
    let count = seen.iter().filter(|e| e.kind == "rescheduled").count();
    let last = seen.last();
    let status = match last.map(|e| e.kind.as_str()) {
        Some("cancelled") => PromiseStatus::Cancelled,
        Some("kept") => PromiseStatus::Kept,
        Some("partially_kept") => PromiseStatus::PartiallyKept,
        Some("broken") => PromiseStatus::Broken,
        _ => PromiseStatus::Pending,
    };
    PromiseSnapshot {
        promised_date: date_after(count),
        status,
        reschedule_count: i32::try_from(count).unwrap_or(i32::MAX),
        last_change_reason: seen
            .iter()
            .rev()
            .find(|e| e.kind == "rescheduled" || e.kind == "cancelled")
            .and_then(|e| e.reason.clone()),
        resolve_time: if status.is_final() {
            last.map(|e| e.occurred_at)
        } else {
            None
        },
    }
}

/// A charge in the timeline, with today's figures.
fn charge_proto(
    row: &store::ChargeRow,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> pb::MonthlyCharge {
    let due = row.due_gnf.max(0);
    let paid = row.paid_gnf.clamp(0, due);
    let outstanding = due - paid;
    let (days_overdue, bucket) = if outstanding > 0 {
        (
            days_overdue_for_display(row.due_date, today),
            aging.bucket_on(row.due_date, today),
        )
    } else {
        (0, None)
    };
    pb::MonthlyCharge {
        charge_id: row.id.to_string(),
        month: Some(month_proto(row.period)),
        due_date: Some(date_proto(row.due_date)),
        due_gnf: due,
        paid_gnf: paid,
        outstanding_gnf: outstanding,
        days_overdue,
        aging_bucket: super::wire::bucket(bucket).into(),
        paid_date: if outstanding == 0 {
            row.paid_in_full_at.map(|at| date_proto(conakry_day(at)))
        } else {
            None
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Search.

#[derive(Debug)]
struct SearchParams {
    text: String,
    words: Vec<String>,
    phone_digits: Option<String>,
    page_size: i64,
    offset: i64,
    site_ids: Option<Vec<Uuid>>,
    only_in_arrears: bool,
    show_inactive: bool,
    fingerprint: String,
}

impl SearchParams {
    fn parse(message: &pb::SearchTenantsRequest) -> Result<Self, ApiError> {
        let mut violations = Violations::new();
        let text = message.query.trim();
        if text.is_empty() {
            violations.add("query", "is required");
        } else if text.chars().count() > QUERY_MAX_CHARS {
            violations.add(
                "query",
                format!("must be at most {QUERY_MAX_CHARS} characters"),
            );
        }
        let page_size = violations.absorb(convert::page_size(message.page_size, 20, 100));
        let site_ids = violations.absorb(parse_ids("site_ids", &message.site_ids));
        violations.into_result()?;
        let (Some(page_size), Some(site_ids)) = (page_size, site_ids) else {
            return Err(ApiError::invalid("", "invalid request"));
        };
        let fingerprint = fingerprint(&format!(
            "search|{text}|{site_ids:?}|{}|{}",
            message.only_in_arrears, message.show_inactive
        ));
        let offset =
            match convert::decode_page_token(&message.page_token).map_err(|_| bad_token())? {
                None => 0,
                Some(token) => {
                    let (fp, offset) = token.split_once('|').ok_or_else(bad_token)?;
                    let offset: i64 = offset.parse().map_err(|_| bad_token())?;
                    if fp != fingerprint || !(1..SEARCH_MAX_OFFSET).contains(&offset) {
                        return Err(bad_token());
                    }
                    offset
                }
            };
        Ok(Self {
            text: text.to_owned(),
            words: query_words(text),
            phone_digits: phone_digits(text),
            page_size,
            offset,
            site_ids: (!site_ids.is_empty()).then_some(site_ids),
            only_in_arrears: message.only_in_arrears,
            show_inactive: message.show_inactive,
            fingerprint,
        })
    }
}

/// The words of a query: runs of letters and digits, lower case, at most
/// [`QUERY_MAX_WORDS`] of at most [`WORD_MAX_CHARS`] characters, repeats dropped. Only letters
/// and digits survive, so a word is always safe inside `to_tsquery`.
fn query_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word: String = word.to_lowercase().chars().take(WORD_MAX_CHARS).collect();
        if !words.contains(&word) {
            words.push(word);
        }
        if words.len() == QUERY_MAX_WORDS {
            break;
        }
    }
    words
}

/// The digits of a query that is a phone number (or part of one): digits with optional
/// spaces, '+', '-', '.', parentheses; at least 3 digits.
fn phone_digits(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '+' | '-' | '.' | '(' | ')'))
        .collect();
    (compact.len() >= 3 && compact.len() <= 15 && compact.chars().all(|c| c.is_ascii_digit()))
        .then_some(compact)
}

/// The sites a list may show: the requested ones within the caller's scope. `None`: no
/// site can match. `Some(None)`: every site.
#[allow(clippy::option_option)]
fn intersect_with_scope(scope: &Scope, requested: Option<&[Uuid]>) -> Option<Option<Vec<Uuid>>> {
    let allowed: Option<Vec<Uuid>> = match scope {
        Scope::Company => None,
        Scope::Sites(sites)
        | Scope::Team {
            site_ids: sites, ..
        }
        | Scope::Own {
            site_ids: sites, ..
        } => Some(sites.to_vec()),
    };
    let sites = match (allowed, requested) {
        (None, None) => return Some(None),
        (None, Some(requested)) => requested.to_vec(),
        (Some(allowed), None) => allowed,
        (Some(allowed), Some(requested)) => requested
            .iter()
            .copied()
            .filter(|id| allowed.contains(id))
            .collect(),
    };
    (!sites.is_empty()).then_some(Some(sites))
}

// ---------------------------------------------------------------------------------------------
// Daily figures.

/// Who and what a caller's daily figures cover.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatsPlan {
    /// Sites whose tenants' rows count; `None`: every site.
    sites: Option<Vec<Uuid>>,
    /// Only rows by these users; `None`: anyone.
    actors: Option<Vec<Uuid>>,
    /// Agent lines: only agents covering one of these sites.
    agents_covering: Option<Vec<Uuid>>,
    /// Agent lines: only the agents of this supervisor.
    supervisor_id: Option<Uuid>,
}

impl StatsPlan {
    fn new(caller: &Caller, site_filter: &[Uuid], agent_filter: &[Uuid]) -> Self {
        let requested_sites = (!site_filter.is_empty()).then_some(site_filter);
        let requested_agents = (!agent_filter.is_empty()).then(|| agent_filter.to_vec());
        let scope = caller.scope();
        // `None` from the intersection: nothing can match, shown as an empty site list.
        let sites = intersect_with_scope(&scope, requested_sites).unwrap_or(Some(Vec::new()));
        match scope {
            Scope::Company => Self {
                agents_covering: requested_sites.map(<[Uuid]>::to_vec),
                sites,
                actors: requested_agents,
                supervisor_id: None,
            },
            Scope::Sites(_) => Self {
                agents_covering: Some(sites.clone().unwrap_or_default()),
                sites,
                actors: requested_agents,
                supervisor_id: None,
            },
            Scope::Team { supervisor_id, .. } => Self {
                agents_covering: requested_sites.map(|_| sites.clone().unwrap_or_default()),
                sites,
                actors: requested_agents,
                supervisor_id: Some(supervisor_id),
            },
            Scope::Own { agent_id, .. } => Self {
                sites,
                actors: Some(match requested_agents {
                    Some(ids) if !ids.contains(&agent_id) => Vec::new(),
                    _ => vec![agent_id],
                }),
                agents_covering: None,
                supervisor_id: None,
            },
        }
    }
}

struct DailyFigures {
    total: pb::DailyStatsFigures,
    agents: Vec<pb::AgentDailyStats>,
    sites: Vec<pb::SiteDailyStats>,
}

fn add_activity(into: &mut pb::ActivityFigures, row: &stats::ActivityRow) -> Result<(), ApiError> {
    let add = |a: i64, b: i64| a.checked_add(b).ok_or_else(overflow);
    into.call_count = add(into.call_count, row.call_count)?;
    into.visit_count = add(into.visit_count, row.visit_count)?;
    into.far_away_visit_count = add(into.far_away_visit_count, row.far_away_visit_count)?;
    into.refusal_count = add(into.refusal_count, row.refusal_count)?;
    into.promise_count = add(into.promise_count, row.promise_count)?;
    into.promised_gnf = add(into.promised_gnf, row.promised_gnf)?;
    into.payment_count = add(into.payment_count, row.payment_count)?;
    into.collected_gnf = add(into.collected_gnf, row.collected_gnf)?;
    into.reversal_count = add(into.reversal_count, row.reversal_count)?;
    into.score_points = add(into.score_points, row.score_points)?;
    Ok(())
}

/// collected / due, within 0..1; 0 when nothing is due.
fn collection_rate(collected: i64, due: i64) -> f64 {
    if due <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = collected as f64 / due as f64;
    rate.clamp(0.0, 1.0)
}

fn figures(activity: pb::ActivityFigures, due: i64) -> pb::DailyStatsFigures {
    pb::DailyStatsFigures {
        collection_rate: collection_rate(activity.collected_gnf, due),
        activity: Some(activity),
        due_gnf: due,
    }
}

fn daily_figures(
    sites: &[stats::SiteRow],
    agents: &[stats::AgentRow],
    activity: &[stats::ActivityRow],
    due: &[(Uuid, i64)],
) -> Result<DailyFigures, ApiError> {
    let listed: HashSet<Uuid> = sites.iter().map(|s| s.id).collect();
    let due_of: HashMap<Uuid, i64> = due
        .iter()
        .copied()
        .filter(|(site, _)| listed.contains(site))
        .collect();

    let mut total = pb::ActivityFigures::default();
    let mut per_site: HashMap<Uuid, pb::ActivityFigures> = HashMap::new();
    let mut per_agent: HashMap<Uuid, pb::ActivityFigures> = HashMap::new();
    for row in activity.iter().filter(|row| listed.contains(&row.site_id)) {
        add_activity(&mut total, row)?;
        add_activity(per_site.entry(row.site_id).or_default(), row)?;
        add_activity(per_agent.entry(row.actor_id).or_default(), row)?;
    }
    let total_due = due_of
        .values()
        .try_fold(0_i64, |sum, d| sum.checked_add(*d))
        .ok_or_else(overflow)?;

    let site_lines = sites
        .iter()
        .map(|site| pb::SiteDailyStats {
            site_id: site.id.to_string(),
            site_name: site.name.clone(),
            figures: Some(figures(
                per_site.remove(&site.id).unwrap_or_default(),
                due_of.get(&site.id).copied().unwrap_or(0),
            )),
        })
        .collect();

    let mut agent_lines = Vec::new();
    for agent in agents {
        let activity = per_agent.remove(&agent.id);
        // A disabled agent only shows up for a day they worked.
        if agent.disabled && activity.is_none() {
            continue;
        }
        let due = agent
            .site_ids
            .iter()
            .filter_map(|site| due_of.get(site))
            .try_fold(0_i64, |sum, d| sum.checked_add(*d))
            .ok_or_else(overflow)?;
        agent_lines.push(pb::AgentDailyStats {
            agent: Some(user_ref(agent.id, &agent.full_name)),
            figures: Some(figures(activity.unwrap_or_default(), due)),
        });
    }
    // By score (highest first), then name, then id.
    let score = |line: &pb::AgentDailyStats| {
        line.figures
            .as_ref()
            .and_then(|f| f.activity.as_ref())
            .map_or(0, |a| a.score_points)
    };
    let name = |line: &pb::AgentDailyStats| {
        line.agent
            .as_ref()
            .map(|a| (a.full_name.to_lowercase(), a.user_id.clone()))
            .unwrap_or_default()
    };
    agent_lines.sort_by(|a, b| score(b).cmp(&score(a)).then_with(|| name(a).cmp(&name(b))));

    Ok(DailyFigures {
        total: figures(total, total_due),
        agents: agent_lines,
        sites: site_lines,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::auth::rbac::Role;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn charge(id: i64, due_date: NaiveDate, due: i64, paid: i64) -> store::ArrearsChargeRow {
        store::ArrearsChargeRow {
            id,
            period: due_date.with_day(1).expect("first"),
            due_date,
            due_gnf: due,
            paid_gnf: paid,
            last_paid_at: (paid > 0).then(|| at("2026-01-10T10:00:00Z")),
            paid_in_full_at: None,
        }
    }

    #[test]
    fn dates_are_checked_field_by_field() {
        let ok = pb::Date {
            year: 2026,
            month: 2,
            day: 28,
        };
        assert_eq!(parse_date("d", &ok).unwrap(), day(2026, 2, 28));
        assert_eq!(date_proto(day(2026, 2, 28)), ok);
        for (bad, field) in [
            ((1999, 1, 1), "d.year"),
            ((2026, 13, 1), "d.month"),
            ((2026, 0, 1), "d.month"),
            ((2026, 2, 30), "d.day"),
            ((2026, 2, -1), "d.day"),
        ] {
            let date = pb::Date {
                year: bad.0,
                month: bad.1,
                day: bad.2,
            };
            let err = parse_date("d", &date).unwrap_err();
            let ApiError::InvalidArgument(violations) = err else {
                panic!("not invalid argument")
            };
            assert_eq!(violations[0].field, field, "{bad:?}");
        }
    }

    #[test]
    fn arrears_buckets_totals_and_paid_months() {
        let as_of = day(2026, 6, 30);
        let rows = [
            charge(1, day(2025, 5, 5), 1_000, 1_000), // paid, more than 12 months ago
            charge(2, day(2026, 1, 5), 1_000, 1_000), // paid, recent
            charge(3, day(2026, 3, 5), 1_000, 400),   // 117 days: over 90
            charge(4, day(2026, 5, 31), 1_000, 0),    // 30 days: 0-30
            charge(5, day(2026, 6, 30), 1_000, 0),    // due today: not overdue
        ];
        let aging = AgingBuckets::default();
        let report = arrears_report(&rows, as_of, false, true, &aging).expect("report");
        let ids: Vec<&str> = report
            .charges
            .iter()
            .map(|c| c.charge_id.as_str())
            .collect();
        assert_eq!(ids, ["3", "4", "5"]);
        assert_eq!(report.outstanding, 600 + 1_000 + 1_000);
        assert_eq!(report.total_due, 3_000);
        assert_eq!(report.total_paid, 400);
        assert_eq!(report.days_overdue, 117);
        assert_eq!(report.charges[1].days_overdue, 30);
        assert_eq!(
            report.charges[1].aging_bucket,
            i32::from(pb::AgingBucket::Days0To30)
        );
        assert_eq!(report.charges[2].days_overdue, 0);
        assert_eq!(
            report.charges[2].aging_bucket,
            i32::from(pb::AgingBucket::Unspecified)
        );
        let aging_rows: Vec<(i64, i64, i64)> = report
            .aging
            .iter()
            .map(|a| (a.outstanding_gnf, a.charge_count, a.tenant_count))
            .collect();
        assert_eq!(
            aging_rows,
            [(1_000, 1, 0), (0, 0, 0), (0, 0, 0), (600, 1, 1)]
        );

        let with_paid = arrears_report(&rows, as_of, true, true, &aging).expect("report");
        let ids: Vec<&str> = with_paid
            .charges
            .iter()
            .map(|c| c.charge_id.as_str())
            .collect();
        assert_eq!(ids, ["2", "3", "4", "5"]);
        assert_eq!(
            with_paid.charges[0].paid_date,
            Some(date_proto(day(2026, 1, 10)))
        );
        assert_eq!(with_paid.outstanding, report.outstanding);
        assert_eq!(with_paid.total_paid, 1_400);
    }

    fn promise_row() -> store::PromiseRow {
        store::PromiseRow {
            id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            agent_id: Uuid::from_u128(3),
            agent_name: "Agent".into(),
            interaction_id: None,
            amount_gnf: 500_000,
            promised_date: day(2026, 3, 20),
            status: "cancelled".into(),
            paid_gnf: 0,
            occurred_at: at("2026-03-01T09:00:00Z"),
            received_at: at("2026-03-01T09:00:05Z"),
            original_promised_date: day(2026, 3, 5),
            reschedule_count: 2,
            cancel_reason: Some("départ".into()),
            reschedule_reason: Some("salaire en retard".into()),
            status_changed_at: Some(at("2026-03-12T08:00:00Z")),
        }
    }

    fn event(
        id: i64,
        kind: &str,
        previous: Option<NaiveDate>,
        reason: &str,
    ) -> store::PromiseEventRow {
        store::PromiseEventRow {
            id,
            promise_id: Uuid::from_u128(1),
            kind: kind.into(),
            occurred_at: at("2026-03-10T08:00:00Z") + chrono::TimeDelta::hours(id),
            received_at: at("2026-03-10T08:00:00Z") + chrono::TimeDelta::hours(id),
            actor_id: None,
            actor_name: None,
            previous_promised_date: previous,
            reason: Some(reason.into()),
        }
    }

    #[test]
    fn promise_snapshots_replay_reschedules() {
        let row = promise_row();
        let events = [
            event(10, "rescheduled", Some(day(2026, 3, 5)), "r1"),
            event(11, "rescheduled", Some(day(2026, 3, 12)), "r2"),
            event(12, "cancelled", None, "départ"),
        ];
        let refs: Vec<&store::PromiseEventRow> = events.iter().collect();
        let made = promise_snapshot(&row, &refs, None);
        assert_eq!(
            (made.promised_date, made.status, made.reschedule_count),
            (day(2026, 3, 5), PromiseStatus::Pending, 0)
        );
        let first = promise_snapshot(&row, &refs, Some(10));
        assert_eq!(
            (first.promised_date, first.reschedule_count),
            (day(2026, 3, 12), 1)
        );
        assert_eq!(first.last_change_reason.as_deref(), Some("r1"));
        let second = promise_snapshot(&row, &refs, Some(11));
        assert_eq!(
            (second.promised_date, second.reschedule_count),
            (day(2026, 3, 20), 2)
        );
        let cancelled = promise_snapshot(&row, &refs, Some(12));
        assert_eq!(cancelled.status, PromiseStatus::Cancelled);
        assert_eq!(cancelled.promised_date, day(2026, 3, 20));
        assert_eq!(cancelled.resolve_time, Some(events[2].occurred_at));
        assert_eq!(cancelled.last_change_reason.as_deref(), Some("départ"));
    }

    #[test]
    fn history_tokens_round_trip_and_are_tied_to_the_filters() {
        let key = HistoryKey {
            occurred_at: at("2026-03-01T09:00:00.123456Z"),
            received_at: at("2026-03-01T09:00:01Z"),
            kind: "payment".into(),
            id: Uuid::from_u128(9).to_string(),
        };
        let fp = fingerprint("a");
        let token = encode_history_token(&fp, &key);
        assert_eq!(decode_history_token(&fp, &token).unwrap(), Some(key));
        assert!(decode_history_token(&fingerprint("b"), &token).is_err());
        assert_eq!(decode_history_token(&fp, "").unwrap(), None);
        for garbage in [
            "x",
            "a|b|c|d|e",
            &convert::encode_page_token(&format!("{fp}|1|2|nope|3")),
        ] {
            assert!(decode_history_token(&fp, garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn query_words_and_phone_digits() {
        assert_eq!(
            query_words("  Keïta, Aïssatou  keïta "),
            ["keïta", "aïssatou"]
        );
        assert_eq!(query_words("N'Diaye B-12"), ["n", "diaye", "b", "12"]);
        assert_eq!(query_words("'&|!():*<>"), Vec::<String>::new());
        assert_eq!(query_words(&"a ".repeat(50)).len(), 1);
        assert_eq!(query_words("a b c d e f g h i j").len(), QUERY_MAX_WORDS);
        assert_eq!(
            phone_digits("+224 621 23-45-67").as_deref(),
            Some("224621234567")
        );
        assert_eq!(phone_digits("621"), Some("621".to_owned()));
        assert_eq!(phone_digits("62"), None);
        assert_eq!(phone_digits("Diallo 621"), None);
    }

    fn caller(role: Role, sites: &[Uuid]) -> Caller {
        Caller {
            user_id: Uuid::from_u128(100),
            role,
            session_id: Uuid::from_u128(101),
            permissions: Arc::new(HashSet::new()),
            site_ids: sites.into(),
            client_ip: None,
            token_expires_at: 0,
        }
    }

    #[test]
    fn scope_intersection() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let company = caller(Role::Director, &[]).scope();
        assert_eq!(intersect_with_scope(&company, None), Some(None));
        assert_eq!(
            intersect_with_scope(&company, Some(&[c])),
            Some(Some(vec![c]))
        );
        let agent = caller(Role::Agent, &[a, b]).scope();
        assert_eq!(intersect_with_scope(&agent, None), Some(Some(vec![a, b])));
        assert_eq!(
            intersect_with_scope(&agent, Some(&[b, c])),
            Some(Some(vec![b]))
        );
        assert_eq!(intersect_with_scope(&agent, Some(&[c])), None);
        let nobody = caller(Role::SiteManager, &[]).scope();
        assert_eq!(intersect_with_scope(&nobody, None), None);
    }

    #[test]
    fn stats_plan_per_role() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let me = Uuid::from_u128(100);
        let agent = StatsPlan::new(&caller(Role::Agent, &[a]), &[], &[]);
        assert_eq!(agent.actors, Some(vec![me]));
        assert_eq!(agent.sites, Some(vec![a]));
        let other = StatsPlan::new(&caller(Role::Agent, &[a]), &[], &[Uuid::from_u128(7)]);
        assert_eq!(other.actors, Some(vec![]));
        let manager = StatsPlan::new(&caller(Role::SiteManager, &[a]), &[b], &[]);
        assert_eq!(manager.sites, Some(vec![]));
        assert_eq!(manager.agents_covering, Some(vec![]));
        let supervisor = StatsPlan::new(&caller(Role::Supervisor, &[a]), &[], &[]);
        assert_eq!(supervisor.supervisor_id, Some(me));
        assert_eq!(supervisor.agents_covering, None);
        let director = StatsPlan::new(&caller(Role::Director, &[]), &[], &[]);
        assert_eq!(
            director,
            StatsPlan {
                sites: None,
                actors: None,
                agents_covering: None,
                supervisor_id: None
            }
        );
    }

    #[test]
    fn collection_rate_is_capped() {
        assert_eq!(collection_rate(50, 200), 0.25);
        assert_eq!(collection_rate(500, 200), 1.0);
        assert_eq!(collection_rate(-50, 200), 0.0);
        assert_eq!(collection_rate(50, 0), 0.0);
    }

    #[test]
    fn daily_figures_add_up_per_agent_and_site() {
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (a1, a2, boss) = (
            Uuid::from_u128(11),
            Uuid::from_u128(12),
            Uuid::from_u128(13),
        );
        let sites = [
            stats::SiteRow {
                id: s1,
                name: "Alpha".into(),
            },
            stats::SiteRow {
                id: s2,
                name: "Beta".into(),
            },
        ];
        let agents = [
            stats::AgentRow {
                id: a1,
                full_name: "Zed".into(),
                disabled: false,
                site_ids: vec![s1],
            },
            stats::AgentRow {
                id: a2,
                full_name: "Amy".into(),
                disabled: false,
                site_ids: vec![s1, s2],
            },
            stats::AgentRow {
                id: Uuid::from_u128(14),
                full_name: "Gone".into(),
                disabled: true,
                site_ids: vec![s1],
            },
        ];
        let row = |actor, site, collected, points| stats::ActivityRow {
            actor_id: actor,
            site_id: site,
            visit_count: 1,
            payment_count: 1,
            collected_gnf: collected,
            score_points: points,
            ..Default::default()
        };
        let activity = [
            row(a1, s1, 100, 4),
            row(a2, s2, 300, 4),
            row(boss, s1, 50, 0),
        ];
        let due = [(s1, 1_000), (s2, 200), (Uuid::from_u128(99), 5)];
        let f = daily_figures(&sites, &agents, &activity, &due).expect("figures");
        let total = f.total.activity.as_ref().expect("activity");
        assert_eq!((total.collected_gnf, total.visit_count), (450, 3));
        assert_eq!(f.total.due_gnf, 1_200);
        assert_eq!(f.total.collection_rate, 450.0 / 1_200.0);
        let names: Vec<&str> = f
            .agents
            .iter()
            .map(|a| a.agent.as_ref().expect("agent").full_name.as_str())
            .collect();
        assert_eq!(names, ["Amy", "Zed"]);
        let amy = f.agents[0].figures.as_ref().expect("figures");
        assert_eq!(amy.due_gnf, 1_200);
        assert_eq!(amy.collection_rate, 0.25);
        let beta = f.sites[1].figures.as_ref().expect("figures");
        assert_eq!((beta.due_gnf, beta.collection_rate), (200, 1.0));
    }
}
