//! ListGoodPayers (« bons payeurs »): the request parsed into a period, sites and a minimum
//! number of charges, the ranking computed by `app::dashboard` and paged here.
//!
//! Decisions:
//! - Period unset: the last 12 months up to today (from the same day a year ago, exclusive).
//!   Only a start: up to today; only an end: the 12 months ending then. At most 366 days,
//!   never starting in the future.
//! - Pages are offsets into the ranking, in a token tied to the request's filters and the day
//!   (the ranking is recomputed per page from the same rows).

use chrono::{Days, Months, NaiveDate};
use tonic::Request;

use crate::api::convert::page_size;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::Pager;
use crate::api::parse::{self, today};
use crate::api::views::tenant_ref;
use crate::app::dashboard as app;
use crate::auth::caller::Caller;
use crate::proto::v1 as pb;
use crate::state::AppState;

const SITE_IDS_MAX: usize = 200;
const PAGE_SIZE_DEFAULT: i64 = 50;
const PAGE_SIZE_MAX: i64 = 500;
const MIN_CHARGES_DEFAULT: i64 = 3;
const PERIOD_DAYS_MAX: i64 = 366;

/// The period of a request (see the module's decisions); problems go to `v`.
fn period(
    v: &mut Violations,
    range: Option<&pb::DateRange>,
    today: NaiveDate,
) -> Option<(NaiveDate, NaiveDate)> {
    let year_before = |end: NaiveDate| {
        end.checked_sub_months(Months::new(12))
            .and_then(|d| d.checked_add_days(Days::new(1)))
            .unwrap_or(end)
    };
    let (start, end) = parse::date_range(v, "period", range);
    let (start, end) = match (start, end) {
        (Some(start), Some(end)) => (start, end),
        (Some(start), None) => (start, today.max(start)),
        (None, Some(end)) => (year_before(end), end),
        (None, None) => (year_before(today), today),
    };
    if start > today {
        v.add("period.start_date", "must not be in the future");
    }
    if end.signed_duration_since(start).num_days() + 1 > PERIOD_DAYS_MAX {
        v.add("period", "must be at most 366 days");
    }
    Some((start, end))
}

pub(super) async fn list_good_payers(
    state: &AppState,
    request: &Request<pb::ListGoodPayersRequest>,
) -> Result<pb::ListGoodPayersResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let today = today();
    let mut v = Violations::new();
    let size = v.absorb(page_size(
        message.page_size,
        PAGE_SIZE_DEFAULT,
        PAGE_SIZE_MAX,
    ));
    let span = period(&mut v, message.period.as_ref(), today);
    let sites = v.absorb(parse::ids("site_ids", &message.site_ids, SITE_IDS_MAX));
    let min_charges = match message.min_charges_count {
        0 => Some(MIN_CHARGES_DEFAULT),
        n if n < 0 => {
            v.add("min_charges_count", "must not be negative");
            None
        }
        n => Some(i64::from(n)),
    };
    v.into_result()?;
    let (Some(size), Some((start, end)), Some(sites), Some(min_charges)) =
        (size, span, sites, min_charges)
    else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let pager = Pager::new(&("good_payers", today, start, end, &sites, min_charges));
    let offset = pager
        .position(&message.page_token, |parts| parts.parse::<usize>())?
        .unwrap_or(0);

    let ranked = app::good_payers(
        &state.pool,
        caller,
        &sites,
        (start, end),
        today,
        min_charges,
    )
    .await?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let next = offset.saturating_add(size);
    let next_page_token = if next < ranked.len() {
        pager.token(&[&next])
    } else {
        String::new()
    };
    let good_payers = ranked
        .iter()
        .skip(offset)
        .take(size)
        .map(|row| {
            let t = &row.tenant;
            let p = &row.payer;
            pb::GoodPayer {
                rank: p.rank,
                tenant: Some(tenant_ref(
                    t.id,
                    &t.full_name,
                    t.site_id,
                    &t.site_name,
                    &t.unit,
                )),
                punctuality_rate: p.punctuality.rate(),
                charges_count: p.punctuality.charges_count,
                on_time_count: p.punctuality.on_time_count,
                paid_gnf: p.paid_gnf,
                average_days_early: p.average_days_early,
            }
        })
        .collect();
    Ok(pb::ListGoodPayersResponse {
        good_payers,
        next_page_token,
        period: Some(pb::DateRange {
            start_date: Some(parse::date_proto(start)),
            end_date: Some(parse::date_proto(end)),
        }),
    })
}
