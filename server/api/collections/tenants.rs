//! GetTenant, SearchTenants, GetTenantHistory, GetTenantArrears: requests parsed into the
//! tenant reads (`app::tenants`, where the rules are), answers shown by [`views`].
//!
//! Decisions:
//! - A search and the history page by keyset: a search's token holds the tier and sort key of
//!   the page's last hit (`app::tenant_search::SearchPosition`). Both page tokens are tied to
//!   their request (`api::paging`).
//! - A search query is 1 to 200 characters (no control characters); its words and phone digits
//!   are found by the use case.

use tonic::Request;

use super::views;
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::{Pager, Parts, micros};
use crate::api::parse::{self, Text, today};
use crate::app::tenant_search::{self, Search, SearchPosition};
use crate::app::tenants::{self as app, HistoryQuery};
use crate::auth::caller::Caller;
use crate::domain::AgingBuckets;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::tenants::{HistoryKey, HistoryKind};

const QUERY: Text = Text::line(1, 200);
const IDS_MAX: usize = 200;

fn aging_buckets(state: &AppState) -> Result<AgingBuckets, ApiError> {
    AgingBuckets::parse(&state.collections.aging_bounds).map_err(ApiError::internal)
}

pub(super) async fn get_tenant(
    state: &AppState,
    request: &Request<pb::GetTenantRequest>,
) -> Result<pb::GetTenantResponse, ApiError> {
    let caller = Caller::of(request)?;
    let tenant_id = convert::uuid("tenant_id", &request.get_ref().tenant_id)?;
    let aging = aging_buckets(state)?;
    let card = app::card(&state.pool, caller, tenant_id, today(), &aging).await?;
    Ok(pb::GetTenantResponse {
        tenant: Some(crate::api::views::card(&card)),
    })
}

pub(super) async fn get_tenant_arrears(
    state: &AppState,
    request: &Request<pb::GetTenantArrearsRequest>,
) -> Result<pb::GetTenantArrearsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let today = today();
    let mut v = Violations::new();
    let tenant_id = v.absorb(convert::uuid("tenant_id", &message.tenant_id));
    let as_of = match &message.as_of_date {
        Some(date) => v.absorb(parse::date("as_of_date", date)),
        None => Some(today),
    };
    v.into_result()?;
    let (Some(tenant_id), Some(as_of)) = (tenant_id, as_of) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let aging = aging_buckets(state)?;
    let found = app::arrears_on(
        &state.pool,
        caller,
        tenant_id,
        as_of,
        message.include_paid,
        today,
        &aging,
    )
    .await?;
    let arrears = &found.arrears;
    Ok(pb::GetTenantArrearsResponse {
        tenant: Some(crate::api::views::tenant_ref_of(&found.tenant)),
        as_of_date: Some(parse::date_proto(as_of)),
        charges: arrears.lines.iter().map(views::arrears_line).collect(),
        total_due_gnf: arrears.total_due,
        total_paid_gnf: arrears.total_paid,
        outstanding_gnf: arrears.outstanding,
        credit_gnf: found.tenant.credit_gnf,
        days_overdue: arrears.days_overdue,
        aging: arrears
            .aging
            .iter()
            .map(|line| pb::AgingBucketTotal {
                bucket: pb::AgingBucket::from(line.bucket).into(),
                outstanding_gnf: line.outstanding,
                charge_count: line.charge_count,
                tenant_count: line.tenant_count,
            })
            .collect(),
    })
}

/// A GetTenantHistoryRequest, parsed: the query, and the pager of its tokens.
fn parse_history(message: &pb::GetTenantHistoryRequest) -> Result<(HistoryQuery, Pager), ApiError> {
    let mut v = Violations::new();
    let tenant_id = v.absorb(convert::uuid("tenant_id", &message.tenant_id));
    let page_size = v.absorb(convert::page_size(message.page_size, 50, 500));
    let (start, end) = parse::time_range(&mut v, "time_range", message.time_range.as_ref());
    let mut kinds: Vec<HistoryKind> = Vec::new();
    for (i, value) in message.kinds.iter().enumerate() {
        match pb::HistoryEntryKind::try_from(*value) {
            Ok(pb::HistoryEntryKind::Charge) => kinds.push(HistoryKind::Charge),
            Ok(pb::HistoryEntryKind::Payment) => kinds.push(HistoryKind::Payment),
            Ok(pb::HistoryEntryKind::Reversal) => kinds.push(HistoryKind::Reversal),
            Ok(pb::HistoryEntryKind::Call) => kinds.push(HistoryKind::Call),
            Ok(pb::HistoryEntryKind::Visit) => kinds.push(HistoryKind::Visit),
            Ok(pb::HistoryEntryKind::Promise) => {
                kinds.push(HistoryKind::PromiseMade);
                kinds.push(HistoryKind::PromiseEvent);
            }
            Ok(pb::HistoryEntryKind::Unspecified) | Err(_) => {
                v.add(format!("kinds[{i}]"), "must be a known entry kind");
            }
        }
    }
    if kinds.is_empty() {
        kinds = HistoryKind::ALL.to_vec();
    }
    kinds.sort_unstable();
    kinds.dedup();
    v.into_result()?;
    let (Some(tenant_id), Some(page_size)) = (tenant_id, page_size) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let query = HistoryQuery {
        tenant_id,
        kinds,
        start,
        end,
        oldest_first: message.oldest_first,
        page_size,
    };
    let pager = Pager::new(&(
        "history",
        query.tenant_id,
        &query.kinds,
        query.start,
        query.end,
        query.oldest_first,
    ));
    Ok((query, pager))
}

fn history_key(pager: &Pager, token: &str) -> Result<Option<HistoryKey>, ApiError> {
    pager.position(token, |parts| {
        let key = HistoryKey {
            occurred_at: parts.instant()?,
            received_at: parts.instant()?,
            kind: parts.parse()?,
            id: parts.text()?.to_owned(),
        };
        (!key.id.is_empty()).then_some(key)
    })
}

pub(super) async fn get_tenant_history(
    state: &AppState,
    request: &Request<pb::GetTenantHistoryRequest>,
) -> Result<pb::GetTenantHistoryResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (query, pager) = parse_history(message)?;
    let after = history_key(&pager, &message.page_token)?;
    let aging = aging_buckets(state)?;
    let history =
        app::history(&state.pool, caller, &query, after.as_ref(), today(), &aging).await?;
    let next_page_token = match history.entries.last() {
        Some(last) if history.more => pager.token(&[
            &micros(last.key.occurred_at),
            &micros(last.key.received_at),
            &last.key.kind.as_str(),
            &last.key.id,
        ]),
        _ => String::new(),
    };
    let tenant = crate::api::views::tenant_ref_of(&history.tenant);
    Ok(pb::GetTenantHistoryResponse {
        entries: history
            .entries
            .iter()
            .map(|entry| views::history_entry(entry, &tenant))
            .collect(),
        next_page_token,
    })
}

/// A SearchTenantsRequest, parsed: the search, its page size, and the pager of its tokens.
fn parse_search(message: &pb::SearchTenantsRequest) -> Result<(Search, i64, Pager), ApiError> {
    let mut v = Violations::new();
    let text = v.absorb(QUERY.parse("query", &message.query));
    let page_size = v.absorb(convert::page_size(message.page_size, 20, 100));
    let site_ids = v.absorb(parse::ids("site_ids", &message.site_ids, IDS_MAX));
    v.into_result()?;
    let (Some(text), Some(page_size), Some(site_ids)) = (text, page_size, site_ids) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let search = Search {
        text,
        site_ids: (!site_ids.is_empty()).then_some(site_ids),
        only_in_arrears: message.only_in_arrears,
        show_inactive: message.show_inactive,
    };
    let pager = Pager::new(&("search", &search));
    Ok((search, page_size, pager))
}

pub(super) async fn search_tenants(
    state: &AppState,
    request: &Request<pb::SearchTenantsRequest>,
) -> Result<pb::SearchTenantsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (search, page_size, pager) = parse_search(message)?;
    let after = search_position(&pager, &message.page_token)?;
    let aging = aging_buckets(state)?;
    let found = tenant_search::search(
        &state.pool,
        caller,
        &search,
        after.as_ref(),
        page_size,
        today(),
        &aging,
    )
    .await?;
    Ok(pb::SearchTenantsResponse {
        results: found
            .hits
            .iter()
            .map(|(card, relevance)| pb::TenantSearchResult {
                tenant: Some(crate::api::views::card(card)),
                relevance: *relevance,
            })
            .collect(),
        next_page_token: found
            .next
            .map(|position| search_token(&pager, &position))
            .unwrap_or_default(),
    })
}

/// Token tier of [`SearchPosition::Exact`]: `e|id|name_norm` (the name last: it may hold `|`).
const EXACT_TIER: &str = "e";
/// Token tier of [`SearchPosition::Close`]: `c|distance|id` (the distance as Rust prints an
/// `f32`, which reads back to the same value).
const CLOSE_TIER: &str = "c";

/// The page token of a search page that ended at `position`.
fn search_token(pager: &Pager, position: &SearchPosition) -> String {
    match position {
        SearchPosition::Exact { name_norm, id } => pager.token(&[&EXACT_TIER, id, name_norm]),
        SearchPosition::Close { distance, id } => pager.token(&[&CLOSE_TIER, distance, id]),
    }
}

/// The position a search page token carries (`None`: the first page).
fn search_position(pager: &Pager, token: &str) -> Result<Option<SearchPosition>, ApiError> {
    pager.position(token, |parts: &mut Parts<'_>| match parts.text()? {
        EXACT_TIER => {
            let id = parts.parse()?;
            let name_norm = parts.last()?.to_owned();
            Some(SearchPosition::Exact { name_norm, id })
        }
        CLOSE_TIER => {
            let distance: f32 = parts.parse()?;
            let id = parts.parse()?;
            (0.0..=1.0)
                .contains(&distance)
                .then_some(SearchPosition::Close { distance, id })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn history_tokens_round_trip_and_are_tied_to_the_filters() {
        let key = HistoryKey {
            occurred_at: at("2026-03-01T09:00:00.123456Z"),
            received_at: at("2026-03-01T09:00:01Z"),
            kind: HistoryKind::Payment,
            id: Uuid::from_u128(9).to_string(),
        };
        let pager = Pager::new(&"a");
        let token = pager.token(&[
            &micros(key.occurred_at),
            &micros(key.received_at),
            &key.kind.as_str(),
            &key.id,
        ]);
        assert_eq!(history_key(&pager, &token).expect("valid"), Some(key));
        assert!(history_key(&Pager::new(&"b"), &token).is_err());
        assert_eq!(history_key(&pager, "").expect("first page"), None);
        for garbage in [
            "x".to_owned(),
            "a|b|c|d|e".to_owned(),
            pager.token(&[&1, &2, &"nope", &3]),
            pager.token(&[&1, &2, &"payment", &""]),
        ] {
            assert!(history_key(&pager, &garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn search_tokens_round_trip_in_both_tiers_and_are_tied_to_the_search() {
        let pager = Pager::new(&"a");
        let id = Uuid::from_u128(42);
        for position in [
            SearchPosition::Exact {
                name_norm: "mamadou | diallo".to_owned(),
                id,
            },
            SearchPosition::Exact {
                name_norm: String::new(),
                id,
            },
            // 1 - 4/7: not a short decimal, read back to the same f32.
            SearchPosition::Close {
                distance: 1.0 - 4.0 / 7.0,
                id,
            },
            SearchPosition::Close { distance: 0.0, id },
        ] {
            let token = search_token(&pager, &position);
            assert_eq!(
                search_position(&pager, &token).expect("valid"),
                Some(position)
            );
            assert!(search_position(&Pager::new(&"b"), &token).is_err());
        }
        assert_eq!(search_position(&pager, "").expect("first page"), None);
        for garbage in [
            "x".to_owned(),
            pager.token(&[&20]),
            pager.token(&[&"e", &"not-a-uuid", &"diallo"]),
            pager.token(&[&"e", &id]),
            pager.token(&[&"c", &"x", &id]),
            pager.token(&[&"c", &1.5, &id]),
            pager.token(&[&"c", &f32::NAN, &id]),
            pager.token(&[&"c", &0.25, &id, &"more"]),
            pager.token(&[&"z", &0.25, &id]),
        ] {
            assert!(search_position(&pager, &garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn search_queries_are_bounded_text() {
        let request = |query: &str| pb::SearchTenantsRequest {
            query: query.to_owned(),
            ..Default::default()
        };
        let (search, page_size, _) = parse_search(&request("  Camara ")).expect("valid");
        assert_eq!((search.text.as_str(), page_size), ("Camara", 20));
        for bad in ["", "   ", &"x".repeat(201), "Cam\u{0}ara", "Cam\nara"] {
            let error = parse_search(&request(bad)).expect_err("invalid");
            let fields: Vec<&str> = error
                .field_violations()
                .expect("fields")
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            assert_eq!(fields, ["query"], "{bad:?}");
        }
    }
}
