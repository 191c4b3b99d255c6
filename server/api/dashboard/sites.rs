//! ListSites: the caller's sites with their key figures (arrears, collection and punctuality
//! rates, charges over 60 days overdue, agents), from `app::dashboard::sites`, paged here.
//!
//! Decisions:
//! - `order_by` (AIP-132): "arrears_gnf desc" (default, also "arrears_gnf desc" spelled with
//!   any spacing), "collection_rate", "collection_rate desc", "name"; anything else is
//!   INVALID_ARGUMENT on `order_by`.
//! - Every site is managed (the register has no end date yet): `show_inactive` changes
//!   nothing and `active` is always true.
//! - Pages are offsets into the list, in a token tied to the filters and the day.
//! - Open alerts: the site's unresolved alerts (open or acknowledged).

use chrono::Utc;
use tonic::Request;

use super::summary::aging_buckets;
use crate::api::convert::page_size;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::Pager;
use crate::api::parse::today;
use crate::app::dashboard::{self as app, SiteOrder, SiteQuery};
use crate::auth::caller::Caller;
use crate::proto::v1 as pb;
use crate::state::AppState;

const PAGE_SIZE_DEFAULT: i64 = 50;
const PAGE_SIZE_MAX: i64 = 200;
const QUERY_MAX_CHARS: usize = 200;

fn order(value: &str) -> Option<SiteOrder> {
    let words: Vec<String> = value
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["arrears_gnf", "desc"] => Some(SiteOrder::ArrearsDesc),
        ["collection_rate"] | ["collection_rate", "asc"] => Some(SiteOrder::CollectionRate),
        ["collection_rate", "desc"] => Some(SiteOrder::CollectionRateDesc),
        ["name"] | ["name", "asc"] => Some(SiteOrder::Name),
        _ => None,
    }
}

/// A site and its figures on the wire.
pub(super) fn overview(o: &app::SiteOverview) -> pb::SiteOverview {
    let s = &o.site;
    let f = &o.figures;
    pb::SiteOverview {
        site: Some(pb::Site {
            site_id: s.id.to_string(),
            code: s.code.clone(),
            name: s.name.clone(),
            site_type: s.kind.clone(),
            address: if s.address.is_empty() {
                s.commune.clone()
            } else {
                format!("{}, {}", s.address, s.commune)
            },
            location: Some(pb::LatLng {
                latitude: s.latitude,
                longitude: s.longitude,
            }),
            sensitive: s.is_sensitive,
            active: true,
        }),
        arrears_gnf: f.arrears.arrears_gnf,
        tenants_count: f.tenants,
        tenants_in_arrears_count: f.arrears.tenants_in_arrears,
        collection_rate: f.collection_rate,
        punctuality_rate: f.punctuality.rate(),
        charges_over_60_days_count: f.arrears.charges_over_60_days,
        agents_count: f.agents_total,
        open_alerts_count: f.alerts.unresolved,
    }
}

pub(super) async fn list_sites(
    state: &AppState,
    request: &Request<pb::ListSitesRequest>,
) -> Result<pb::ListSitesResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let size = v.absorb(page_size(
        message.page_size,
        PAGE_SIZE_DEFAULT,
        PAGE_SIZE_MAX,
    ));
    let order = order(&message.order_by);
    if order.is_none() {
        v.add(
            "order_by",
            "must be \"arrears_gnf desc\", \"collection_rate\", \"collection_rate desc\" or \"name\"",
        );
    }
    if message.query.chars().count() > QUERY_MAX_CHARS {
        v.add("query", "must be at most 200 characters");
    }
    v.into_result()?;
    let (Some(size), Some(order)) = (size, order) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let query = SiteQuery {
        only_sensitive: message.only_sensitive,
        text: message.query.clone(),
        order,
    };
    let pager = Pager::new(&("sites", today(), &query));
    let offset = pager
        .position(&message.page_token, |parts| parts.parse::<usize>())?
        .unwrap_or(0);
    let buckets = aging_buckets(state)?;
    let all = app::sites(
        &state.pool,
        &state.live,
        &caller.scope(),
        &query,
        Utc::now(),
        &buckets,
    )
    .await?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let next = offset.saturating_add(size);
    let next_page_token = if next < all.len() {
        pager.token(&[&next])
    } else {
        String::new()
    };
    Ok(pb::ListSitesResponse {
        sites: all.iter().skip(offset).take(size).map(overview).collect(),
        next_page_token,
        total_size: i64::try_from(all.len()).unwrap_or(i64::MAX),
    })
}
