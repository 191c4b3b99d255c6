//! Tenant search: the query parsed into words and phone digits, the matches paged by offset,
//! each hit shown with its card.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Card, cards};
use crate::app::{AppError, sites_in_scope};
use crate::auth::caller::Caller;
use crate::domain::AgingBuckets;
use crate::store::tenants as store;
use crate::store::{begin_read, one_page};

// ---------------------------------------------------------------------------------------------
// Search

/// Words of a search query used for matching; more are ignored (the trigram match still sees
/// the whole query).
pub const QUERY_MAX_WORDS: usize = 8;
const WORD_MAX_CHARS: usize = 64;
/// A search pages through its first 1,000 hits at most (offset paging).
pub const SEARCH_MAX_OFFSET: i64 = 1_000;

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

/// One page of search results.
#[derive(Debug, Clone)]
pub struct Found {
    /// Cards with their relevance, most relevant first.
    pub hits: Vec<(Card, f64)>,
    /// Where the next page starts, if there is one.
    pub next_offset: Option<i64>,
}

/// The tenants the caller may see that match `search`, from `offset` on.
pub async fn search(
    pool: &PgPool,
    caller: &Caller,
    search: &Search,
    offset: i64,
    page_size: i64,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Found, AppError> {
    let nothing = Found {
        hits: Vec::new(),
        next_offset: None,
    };
    let Some(site_ids) = sites_in_scope(&caller.scope(), search.site_ids.as_deref()) else {
        return Ok(nothing);
    };
    let limit = page_size.min(SEARCH_MAX_OFFSET - offset);
    if limit <= 0 {
        return Ok(nothing);
    }
    let mut tx = begin_read(pool).await?;
    let (words, word_sites) = store::words_and_sites(&mut tx, &query_words(&search.text)).await?;
    let phone_digits = phone_digits(&search.text);
    let mut hits = store::search(
        &mut tx,
        &store::SearchQuery {
            text: &search.text,
            words: &words,
            word_sites: &word_sites,
            phone_digits: phone_digits.as_deref(),
            site_ids: site_ids.as_deref(),
            show_inactive: search.show_inactive,
            only_in_arrears: search.only_in_arrears,
            today,
            limit: limit + 1,
            offset,
        },
    )
    .await?;
    let more = one_page(&mut hits, limit);
    let next_offset = offset + limit;
    let ids: Vec<Uuid> = hits.iter().map(|hit| hit.id).collect();
    let mut cards: HashMap<Uuid, Card> = cards(&mut tx, &ids, today, aging)
        .await?
        .into_iter()
        .map(|card| (card.row.id, card))
        .collect();
    Ok(Found {
        hits: hits
            .iter()
            .filter_map(|hit| cards.remove(&hit.id).map(|card| (card, hit.relevance)))
            .collect(),
        next_offset: (more && next_offset < SEARCH_MAX_OFFSET).then_some(next_offset),
    })
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
