//! Tenant search (SearchTenants): the tenants the caller may see that match a free-text query,
//! as cards, one page at a time.
//!
//! Decisions:
//! - Two tiers (`store::tenant_search`). First the tenants matching every word of the query
//!   (name, unit, phone, site; prefix, accents and case ignored) or its phone digits,
//!   alphabetically (normalised name, then id): what someone typing a surname expects. Then,
//!   only once those are exhausted, the typo-tolerant matches not in the first tier, nearest
//!   first (trigram word distance of the query to the name, then id); not for a phone number.
//!   Each tier is read in index order, bounded by the page size: no match is scored unless it
//!   is on the page.
//! - Relevance: [`EXACT_RELEVANCE`] for the first tier; the trigram word similarity (the
//!   threshold to 1) for the second, so it never increases down the list.
//! - Paging is by keyset: a page ends at a [`SearchPosition`] (tier and sort key of its last
//!   hit) and the next one starts strictly after it, so on unchanged data no tenant is repeated
//!   or skipped, across the tier boundary too, however deep the paging.
//! - Search leaves out what is outside the caller's scope, silently: a `site_ids` filter
//!   naming other sites just finds nothing there.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use super::tenants::{Card, cards};
use super::{AppError, sites_in_scope};
use crate::auth::caller::Caller;
use crate::domain::AgingBuckets;
use crate::store::tenant_search as store;
use crate::store::{begin_read, one_page};

/// Words of a search query used for matching; more are ignored (the trigram match still sees
/// the whole query).
pub const QUERY_MAX_WORDS: usize = 8;
const WORD_MAX_CHARS: usize = 64;

/// The relevance of a tier-1 hit (every word or the phone matched); tier-2 hits have their
/// word similarity, at most 1.
pub const EXACT_RELEVANCE: f64 = 2.0;

/// A tenant search, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The query, trimmed.
    pub text: String,
    /// `None`: every site the caller may see.
    pub site_ids: Option<Vec<Uuid>>,
    pub only_in_arrears: bool,
    pub show_inactive: bool,
}

/// Where a page of search results ended: the tier and sort key of its last hit.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchPosition {
    /// In tier 1 (exact words), alphabetical order.
    Exact { name_norm: String, id: Uuid },
    /// In tier 2 (close names), nearest first.
    Close { distance: f32, id: Uuid },
}

/// One page of search results.
#[derive(Debug, Clone)]
pub struct Found {
    /// Cards with their relevance, in the search's order.
    pub hits: Vec<(Card, f64)>,
    /// Where the page ended, when more hits follow.
    pub next: Option<SearchPosition>,
}

/// One hit before its card is read.
struct Hit {
    id: Uuid,
    relevance: f64,
    position: SearchPosition,
}

/// The tenants the caller may see that match `search`, strictly after `after` (from the first
/// one without it), at most `page_size` of them.
pub async fn search(
    pool: &PgPool,
    caller: &Caller,
    search: &Search,
    after: Option<&SearchPosition>,
    page_size: i64,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Found, AppError> {
    let Some(site_ids) = sites_in_scope(&caller.scope(), search.site_ids.as_deref()) else {
        return Ok(Found {
            hits: Vec::new(),
            next: None,
        });
    };
    let mut tx = begin_read(pool).await?;
    let words = store::words_and_sites(&mut tx, &query_words(&search.text)).await?;
    let phone_digits = phone_digits(&search.text);
    let query = store::SearchQuery {
        text: &search.text,
        words: &words,
        phone_digits: phone_digits.as_deref(),
        site_ids: site_ids.as_deref(),
        show_inactive: search.show_inactive,
        only_in_arrears: search.only_in_arrears,
        today,
    };
    // One more than a page: whether more follow.
    let wanted = page_size + 1;
    let mut hits: Vec<Hit> = Vec::new();
    if !matches!(after, Some(SearchPosition::Close { .. })) {
        let from = match after {
            Some(SearchPosition::Exact { name_norm, id }) => Some((name_norm.as_str(), *id)),
            _ => None,
        };
        let exact = store::exact_matches(&mut tx, &query, from, wanted).await?;
        hits.extend(exact.into_iter().map(exact_hit));
    }
    let close_after = match after {
        Some(SearchPosition::Close { distance, id }) => Some((*distance, *id)),
        _ => None,
    };
    let missing = wanted - i64::try_from(hits.len()).unwrap_or(wanted);
    // A phone number is no name: its digits share no trigram with one.
    if missing > 0 && phone_digits.is_none() {
        let close = store::close_matches(&mut tx, &query, close_after, missing).await?;
        hits.extend(close.into_iter().map(|hit| Hit {
            id: hit.id,
            relevance: f64::from(1.0 - hit.distance),
            position: SearchPosition::Close {
                distance: hit.distance,
                id: hit.id,
            },
        }));
    }
    let more = one_page(&mut hits, page_size);
    let ids: Vec<Uuid> = hits.iter().map(|hit| hit.id).collect();
    let mut cards: HashMap<Uuid, Card> = cards(&mut tx, &ids, today, aging)
        .await?
        .into_iter()
        .map(|card| (card.row.id, card))
        .collect();
    let next = if more {
        hits.last().map(|hit| hit.position.clone())
    } else {
        None
    };
    Ok(Found {
        hits: hits
            .into_iter()
            .filter_map(|hit| cards.remove(&hit.id).map(|card| (card, hit.relevance)))
            .collect(),
        next,
    })
}

fn exact_hit(hit: store::ExactHit) -> Hit {
    Hit {
        id: hit.id,
        relevance: EXACT_RELEVANCE,
        position: SearchPosition::Exact {
            name_norm: hit.name_norm,
            id: hit.id,
        },
    }
}

/// The words of a query: runs of letters and digits, lower case, at most
/// [`QUERY_MAX_WORDS`] of at most 64 characters, repeats dropped. Only letters and digits
/// survive, so a word is always safe inside `to_tsquery`.
pub fn query_words(text: &str) -> Vec<String> {
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
/// spaces, '+', '-', '.', parentheses; 3 to 15 digits once the international call prefix
/// `00` is dropped (`00224 621…` is `+224 621…`, ITU-T E.164 dialling from Guinea and most of
/// the world). Local numbers (`621…`) and `+224…` keep their digits.
pub fn phone_digits(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '+' | '-' | '.' | '(' | ')'))
        .collect();
    if !compact.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let international = compact
        .strip_prefix("00")
        .filter(|rest| rest.starts_with(|c: char| c != '0'));
    let digits = international.unwrap_or(&compact);
    (digits.len() >= 3 && digits.len() <= 15).then(|| digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            phone_digits("00224 621 23 45 67").as_deref(),
            Some("224621234567")
        );
        assert_eq!(phone_digits("00224").as_deref(), Some("224"));
        assert_eq!(phone_digits("00 2"), None);
        assert_eq!(phone_digits("000"), Some("000".to_owned()));
    }
}
