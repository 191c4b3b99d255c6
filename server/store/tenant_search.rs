//! SQL of the tenant search (SearchTenants), in two tiers, each read in index order and
//! bounded by the page size:
//!
//! 1. [`exact_matches`]: every word of the query matches the tenant's name, unit or phone
//!    (French full text, accents ignored, prefix), its unit (substring) or its site; or the
//!    query's phone digits start one of its phone forms. Alphabetical: `name_norm`, then id
//!    (`tenants_name_norm_id_idx` walks that order; a rare word goes through the full-text GIN
//!    index and sorts its few matches).
//! 2. [`close_matches`]: the typo-tolerant rest, tenants whose name is close to the whole query
//!    (trigram word similarity of the query to `name_norm` at least
//!    [`WORD_SIMILARITY_THRESHOLD`]) and who are not in tier 1. Nearest first: trigram word
//!    distance (`name_norm <->> query`, the nearest-neighbour order of the GiST index
//!    `tenants_name_norm_knn_idx`), then id. Company-wide the trigram index finds the close
//!    names; for a few sites their tenants are compared one by one.
//!
//! Neither tier scores every match: a page reads its rows in the order it returns them.
//! Runs after [`words_and_sites`] in the same transaction (its settings).

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::error::Result;
use chrono::NaiveDate;

/// A tenant search, already parsed.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    /// The whole query, trimmed (compared by trigram word similarity with the name).
    pub text: &'a str,
    /// Its meaningful words with their full-text query and sites ([`words_and_sites`]); each
    /// must match the name, the unit, the phone or the site for tier 1.
    pub words: &'a [SearchWord],
    /// The digits of a phone number, when the query is one.
    pub phone_digits: Option<&'a str>,
    /// `None`: every site.
    pub site_ids: Option<&'a [Uuid]>,
    pub show_inactive: bool,
    pub only_in_arrears: bool,
    pub today: NaiveDate,
}

/// One word of a search query, as [`words_and_sites`] resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWord {
    /// The word: letters and digits, lower case.
    pub word: String,
    /// Its full-text query, as text (`'diallo':* | 'diallo':*`): the prefix match of the French
    /// name side and of the `simple` unit and phone side of `search_vector`, computed once.
    pub tsquery: String,
    /// The sites whose code is the word or whose name contains it.
    pub sites: Vec<Uuid>,
}

/// Words shorter than this are not matched inside units and site names (a substring of one
/// or two letters matches nearly everything).
const MIN_SUBSTRING_CHARS: usize = 3;

/// Word-similarity threshold of the typo-tolerant tier: "kamara" finds "Camara" (0.57).
pub const WORD_SIMILARITY_THRESHOLD: f32 = 0.5;

/// Up to this many sites, tier 2 compares the name of each of the sites' tenants (a few
/// hundred per site) rather than asking the trigram index for the whole company's close names
/// and keeping the sites' ones: at 102,000 tenants, one site, "kamara": 1.4 ms against 25 ms.
const SITE_ROWS_MAX_SITES: usize = 20;

/// The query's words that carry meaning for French full-text search, each with its full-text
/// query and the sites whose code is the word or whose name contains it, in one statement that
/// also sets the search's settings for the rest of the transaction.
///
/// - Words: French stop words ("de", "la", ...) are left out, so they do not make every
///   full-text match fail; numbers are kept.
/// - Sites: code equal to the word, or name containing it (accents and case ignored; words of
///   fewer than 3 letters only match codes). Resolved before the search so that the planner
///   sees the actual site ids.
/// - Settings (`SET LOCAL`): `plan_cache_mode = force_custom_plan` (each bound value becomes a
///   constant of the search's own plan, so the indexes apply and the query's normalisation is
///   computed once), the word-similarity threshold of the typo-tolerant tier, and
///   `enable_seqscan = off` (the planner overestimates the rows of the OR of the match
///   conditions and would otherwise read every tenant computing trigrams row by row).
pub async fn words_and_sites(conn: &mut PgConnection, words: &[String]) -> Result<Vec<SearchWord>> {
    let rows: Vec<(Option<String>, Option<String>, Option<Uuid>)> = sqlx::query_as(
        "WITH settings AS MATERIALIZED (
             SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS plan_cache_mode,
                    set_config('pg_trgm.word_similarity_threshold', $3, true) AS threshold,
                    set_config('enable_seqscan', 'off', true) AS index_only),
         w AS (
             SELECT w, n FROM unnest($1::text[]) WITH ORDINALITY AS x(w, n)
             WHERE numnode(to_tsquery('french_unaccent', w || ':*')) > 0 OR w ~ '^[0-9]+$')
         SELECT w.w,
                (to_tsquery('french_unaccent', w.w || ':*')
                 || to_tsquery('simple', w.w || ':*'))::text,
                s.id
         FROM settings
         LEFT JOIN w ON true
         LEFT JOIN sites s
           ON lower(s.code) = w.w
           OR (char_length(w.w) >= $2
               AND immutable_unaccent(lower(s.name)) LIKE '%' || immutable_unaccent(w.w) || '%')
         ORDER BY w.n, s.id",
    )
    .bind(words)
    .bind(MIN_SUBSTRING_CHARS as i32)
    .bind(WORD_SIMILARITY_THRESHOLD.to_string())
    .fetch_all(conn)
    .await?;
    let mut meaningful: Vec<SearchWord> = Vec::new();
    for (word, tsquery, site_id) in rows {
        let (Some(word), Some(tsquery)) = (word, tsquery) else {
            continue;
        };
        if meaningful.last().map(|w| &w.word) != Some(&word) {
            meaningful.push(SearchWord {
                word,
                tsquery,
                sites: Vec::new(),
            });
        }
        if let (Some(site_id), Some(last)) = (site_id, meaningful.last_mut()) {
            last.sites.push(site_id);
        }
    }
    Ok(meaningful)
}

/// A tier-1 hit and its place in the alphabetical order.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExactHit {
    pub id: Uuid,
    /// The name, lower case, accents removed: the sort key.
    pub name_norm: String,
}

/// A tier-2 hit and its place in the nearest-first order.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct CloseHit {
    pub id: Uuid,
    /// 1 − the trigram word similarity of the query to the name, 0 to 1 − the threshold.
    pub distance: f32,
}

/// Tier 1: up to `limit` tenants matching every word (or the phone digits), after `after`
/// (name_norm, id) in alphabetical order. Nothing without meaningful words or phone digits.
pub async fn exact_matches(
    conn: &mut PgConnection,
    query: &SearchQuery<'_>,
    after: Option<(&str, Uuid)>,
    limit: i64,
) -> Result<Vec<ExactHit>> {
    if query.words.is_empty() && query.phone_digits.is_none() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT t.id, t.name_norm FROM tenants t WHERE ");
    push_exact_condition(&mut qb, query);
    push_filters(&mut qb, query);
    if let Some((name_norm, id)) = after {
        qb.push(" AND (t.name_norm, t.id) > (")
            .push_bind(name_norm.to_owned())
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY t.name_norm, t.id LIMIT ")
        .push_bind(limit);
    Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
}

/// Tier 2: up to `limit` tenants whose name is close to the query and who are not in tier 1,
/// after `after` (distance, id) in nearest-first order.
pub async fn close_matches(
    conn: &mut PgConnection,
    query: &SearchQuery<'_>,
    after: Option<(f32, Uuid)>,
    limit: i64,
) -> Result<Vec<CloseHit>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT t.id, t.name_norm <->> ");
    push_text_norm(&mut qb, query.text);
    qb.push(" AS distance FROM tenants t WHERE ");
    if query
        .site_ids
        .is_some_and(|sites| sites.len() <= SITE_ROWS_MAX_SITES)
    {
        // Not an index condition: the planner reads the sites' tenants (site index) and
        // compares each name, instead of intersecting them with the whole company's matches.
        qb.push("word_similarity(");
        push_text_norm(&mut qb, query.text);
        qb.push(", t.name_norm) >= ")
            .push_bind(WORD_SIMILARITY_THRESHOLD);
    } else {
        qb.push("t.name_norm %> ");
        push_text_norm(&mut qb, query.text);
    }
    if !query.words.is_empty() || query.phone_digits.is_some() {
        qb.push(" AND NOT ");
        push_exact_condition(&mut qb, query);
    }
    push_filters(&mut qb, query);
    if let Some((distance, id)) = after {
        qb.push(" AND (t.name_norm <->> ");
        push_text_norm(&mut qb, query.text);
        qb.push(", t.id) > (")
            .push_bind(distance)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY t.name_norm <->> ");
    push_text_norm(&mut qb, query.text);
    qb.push(", t.id LIMIT ").push_bind(limit);
    Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
}

/// `immutable_unaccent(lower(text))`: a constant of the custom plan.
fn push_text_norm(qb: &mut QueryBuilder<'_, Postgres>, text: &str) {
    qb.push("immutable_unaccent(lower(")
        .push_bind(text.to_owned())
        .push("))");
}

/// The caller's sites, active tenants unless asked, in arrears when asked.
fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &SearchQuery<'_>) {
    if let Some(site_ids) = query.site_ids {
        qb.push(" AND t.site_id = ANY(")
            .push_bind(site_ids.to_vec())
            .push(")");
    }
    if !query.show_inactive {
        qb.push(" AND t.active");
    }
    if query.only_in_arrears {
        qb.push(
            " AND EXISTS (SELECT 1 FROM charges c WHERE c.tenant_id = t.id
                 AND c.amount_paid_gnf < c.amount_due_gnf AND c.due_date <= ",
        )
        .push_bind(query.today)
        .push(")");
    }
}

/// Tier 1's condition, in parentheses: every word matches the name, unit or phone (full text,
/// prefix), the unit (substring, accents ignored) or one of the word's sites; or the phone
/// digits start a phone form. `false` without either.
fn push_exact_condition(qb: &mut QueryBuilder<'_, Postgres>, query: &SearchQuery<'_>) {
    qb.push("(");
    if query.words.is_empty() {
        qb.push("false");
    }
    for (i, word) in query.words.iter().enumerate() {
        if i > 0 {
            qb.push(" AND ");
        }
        qb.push("(t.search_vector @@ ")
            .push_bind(word.tsquery.clone())
            .push("::tsquery");
        if word.word.chars().count() >= MIN_SUBSTRING_CHARS {
            qb.push(" OR t.unit_norm LIKE '%' || immutable_unaccent(")
                .push_bind(word.word.clone())
                .push(") || '%'");
        }
        if !word.sites.is_empty() {
            qb.push(" OR t.site_id = ANY(")
                .push_bind(word.sites.clone())
                .push(")");
        }
        qb.push(")");
    }
    if let Some(digits) = query.phone_digits {
        // Only digits: a safe tsquery literal, the prefix of a `simple` token.
        qb.push(" OR t.search_vector @@ ")
            .push_bind(format!("{digits}:*"))
            .push("::tsquery");
    }
    qb.push(")");
}
