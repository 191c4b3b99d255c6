//! SQL of tenants: their site (for scope checks), tenant cards, arrears, search, and the
//! timeline of everything that happened to one tenant.
//!
//! The reads of one request run in one read-only REPEATABLE READ transaction ([`begin_read`]),
//! so a card's balance, last interaction and pending promise come from the same snapshot.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TenantSite {
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub active: bool,
}

pub async fn site_of<'e>(
    executor: impl PgExecutor<'e>,
    tenant_id: Uuid,
) -> Result<Option<TenantSite>, sqlx::Error> {
    sqlx::query_as("SELECT id AS tenant_id, site_id, active FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(executor)
        .await
}

/// A read-only transaction on one snapshot, for the several queries of one read.
pub async fn begin_read(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

// ---------------------------------------------------------------------------------------------
// Tenant cards.

/// A tenant with the figures of its card, on a given day.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantCardRow {
    pub id: Uuid,
    pub full_name: String,
    pub phone: Option<String>,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit: String,
    pub address: String,
    pub home_latitude: Option<f64>,
    pub home_longitude: Option<f64>,
    pub monthly_rent_gnf: i64,
    pub active: bool,
    pub credit_gnf: i64,
    /// Outstanding on the charges due on or before the day.
    pub outstanding_gnf: i64,
    /// Due date of the oldest of those charges that is not fully paid.
    pub oldest_unpaid_due_date: Option<NaiveDate>,
    /// Promises broken (status derived on the day) whose promised date is within the 12
    /// months before the day.
    pub broken_promise_count: i64,
}

/// The cards of `tenant_ids` (any order; unknown ids are left out) as of `today`.
pub async fn cards(
    conn: &mut PgConnection,
    tenant_ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<TenantCardRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, t.full_name, t.phone, t.site_id, s.name AS site_name, t.unit, t.address,
                t.home_latitude, t.home_longitude, t.monthly_rent_gnf, t.active, t.credit_gnf,
                coalesce(o.outstanding_gnf, 0)::bigint AS outstanding_gnf,
                o.oldest_unpaid_due_date,
                (SELECT count(*) FROM promises pr
                 WHERE pr.tenant_id = t.id
                   AND pr.promised_date > ($2::date - interval '12 months')::date
                   AND pr.promised_date < $2
                   AND promise_status_on(pr.id, $2) = 'broken') AS broken_promise_count
         FROM tenants t
         JOIN sites s ON s.id = t.site_id
         LEFT JOIN LATERAL (
             SELECT sum(c.amount_due_gnf - c.amount_paid_gnf) AS outstanding_gnf,
                    min(c.due_date) AS oldest_unpaid_due_date
             FROM charges c
             WHERE c.tenant_id = t.id
               AND c.amount_paid_gnf < c.amount_due_gnf
               AND c.due_date <= $2
         ) o ON true
         WHERE t.id = ANY($1)",
    )
    .bind(tenant_ids)
    .bind(today)
    .fetch_all(conn)
    .await
}

/// The latest call or visit of a tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LastInteractionRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub outcome: String,
    pub occurred_at: DateTime<Utc>,
    pub agent_id: Uuid,
    pub agent_name: String,
    /// The first 200 characters of the notes.
    pub notes_excerpt: String,
}

/// The latest interaction (by occurred_at, then received_at) of each of `tenant_ids`.
pub async fn last_interactions(
    conn: &mut PgConnection,
    tenant_ids: &[Uuid],
) -> Result<Vec<LastInteractionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (i.tenant_id)
                i.tenant_id, i.id, i.kind, i.outcome, i.occurred_at, i.agent_id,
                u.full_name AS agent_name, left(i.notes, 200) AS notes_excerpt
         FROM interactions i
         JOIN users u ON u.id = i.agent_id
         WHERE i.tenant_id = ANY($1)
         ORDER BY i.tenant_id, i.occurred_at DESC, i.received_at DESC, i.id DESC",
    )
    .bind(tenant_ids)
    .fetch_all(conn)
    .await
}

/// A promise with its derived status (`promise_status_on`) and what was paid towards it
/// (`promise_payments`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub interaction_id: Option<Uuid>,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    /// Derived on the day of the read: pending, kept, partially_kept, broken, cancelled.
    pub status: String,
    pub paid_gnf: i64,
    /// occurred_at of the call or visit it was made in.
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub original_promised_date: NaiveDate,
    pub reschedule_count: i32,
    pub cancel_reason: Option<String>,
    pub reschedule_reason: Option<String>,
    pub status_changed_at: Option<DateTime<Utc>>,
}

const PROMISE_SELECT: &str = "SELECT pr.id, pr.tenant_id, pr.agent_id, u.full_name AS agent_name,
        pr.interaction_id, pr.amount_gnf, pr.promised_date,
        promise_status_on(pr.id, $2) AS status, pp.paid_gnf,
        coalesce(i.occurred_at, pr.created_at) AS occurred_at, pr.created_at AS received_at,
        coalesce(pr.original_promised_date, pr.promised_date) AS original_promised_date,
        pr.reschedule_count, pr.cancel_reason, pr.reschedule_reason, pr.status_changed_at
    FROM promises pr
    JOIN users u ON u.id = pr.agent_id
    LEFT JOIN interactions i ON i.id = pr.interaction_id
    CROSS JOIN LATERAL promise_payments(pr.id) pp";

/// The promises of `tenant_ids` still pending on `today` (status derived), newest first.
pub async fn pending_promises(
    conn: &mut PgConnection,
    tenant_ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<PromiseRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT * FROM ({PROMISE_SELECT}
                        WHERE pr.tenant_id = ANY($1) AND pr.status = 'pending') p
         WHERE p.status = 'pending'
         ORDER BY p.tenant_id, p.received_at DESC, p.id DESC"
    ))
    .bind(tenant_ids)
    .bind(today)
    .fetch_all(conn)
    .await
}

/// Promises by id, statuses derived on `today`.
pub async fn promises_by_ids(
    conn: &mut PgConnection,
    promise_ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<PromiseRow>, sqlx::Error> {
    sqlx::query_as(&format!("{PROMISE_SELECT} WHERE pr.id = ANY($1)"))
        .bind(promise_ids)
        .bind(today)
        .fetch_all(conn)
        .await
}

/// A tenant as lists show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRefRow {
    pub id: Uuid,
    pub full_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit: String,
    pub credit_gnf: i64,
}

pub async fn tenant_ref(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<Option<TenantRefRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, t.full_name, t.site_id, s.name AS site_name, t.unit, t.credit_gnf
         FROM tenants t JOIN sites s ON s.id = t.site_id
         WHERE t.id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// Arrears.

/// A charge due on or before the report day, with what had been paid on it by then.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArrearsChargeRow {
    pub id: i64,
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub due_gnf: i64,
    pub paid_gnf: i64,
    /// occurred_at of the latest payment or reversal counted in `paid_gnf`.
    pub last_paid_at: Option<DateTime<Utc>>,
    pub paid_in_full_at: Option<DateTime<Utc>>,
}

/// The tenant's charges due on or before `as_of`, oldest first, paid or not.
///
/// Not `tenant_arrears()` of the views migration: it selects by period rather than due date,
/// leaves out paid charges and only knows the current amounts.
///
/// `paid_before`: `None` takes the current `amount_paid_gnf`; `Some(t)` counts only the
/// allocations of payments and reversals whose occurred_at is before `t` (the figure as it
/// stood at the end of a past day).
pub async fn arrears_charges(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    as_of: NaiveDate,
    paid_before: Option<DateTime<Utc>>,
) -> Result<Vec<ArrearsChargeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.period, c.due_date, c.amount_due_gnf AS due_gnf,
                CASE WHEN $3::timestamptz IS NULL THEN c.amount_paid_gnf
                     ELSE coalesce(k.paid_gnf, 0)::bigint END AS paid_gnf,
                k.last_paid_at, c.paid_in_full_at
         FROM charges c
         LEFT JOIN LATERAL (
             SELECT sum(pa.amount_gnf) AS paid_gnf, max(p.occurred_at) AS last_paid_at
             FROM payment_allocations pa
             JOIN payments p ON p.id = pa.payment_id
             WHERE pa.charge_id = c.id
               AND ($3::timestamptz IS NULL OR p.occurred_at < $3)
         ) k ON true
         WHERE c.tenant_id = $1 AND c.due_date <= $2
         ORDER BY c.due_date, c.period, c.id",
    )
    .bind(tenant_id)
    .bind(as_of)
    .bind(paid_before)
    .fetch_all(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// Search.

/// A tenant search, already parsed.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    /// The whole query, trimmed (compared by trigram similarity with the name).
    pub text: &'a str,
    /// Its words (letters and digits), lower case; each must match the name, the unit, the
    /// phone or the site (prefix match for the full-text part).
    pub words: &'a [String],
    /// For each word, the sites whose code is the word or whose name contains it
    /// ([`sites_matching`]).
    pub word_sites: &'a [Vec<Uuid>],
    /// The digits of a phone number, when the query is one.
    pub phone_digits: Option<&'a str>,
    /// `None`: every site.
    pub site_ids: Option<&'a [Uuid]>,
    pub show_inactive: bool,
    pub only_in_arrears: bool,
    pub today: NaiveDate,
    pub limit: i64,
    pub offset: i64,
}

/// Words shorter than this are not matched inside units and site names (a substring of one
/// or two letters matches nearly everything).
const MIN_SUBSTRING_CHARS: usize = 3;

/// Word-similarity threshold of the typo-tolerant name match: "kamara" finds "Camara" (0.57).
const WORD_SIMILARITY_THRESHOLD: &str = "0.5";

/// The query's words that carry meaning for French full-text search: French stop words
/// ("de", "la", ...) are left out, so they do not make every full-text match fail.
pub async fn meaningful_words(
    conn: &mut PgConnection,
    words: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT w FROM unnest($1::text[]) WITH ORDINALITY AS x(w, n)
         WHERE numnode(to_tsquery('french_unaccent', w || ':*')) > 0
            OR w ~ '^[0-9]+$'
         ORDER BY n",
    )
    .bind(words)
    .fetch_all(conn)
    .await
}

/// For each word, the sites whose code is the word or whose name contains it (accents and
/// case ignored; words of fewer than 3 letters only match codes). Resolved before the search
/// so that the planner sees the actual site ids.
pub async fn sites_matching(
    conn: &mut PgConnection,
    words: &[String],
) -> Result<Vec<Vec<Uuid>>, sqlx::Error> {
    let rows: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT w.n, s.id
         FROM unnest($1::text[]) WITH ORDINALITY AS w(word, n)
         JOIN sites s
           ON lower(s.code) = w.word
           OR (char_length(w.word) >= $2
               AND immutable_unaccent(lower(s.name)) LIKE '%' || immutable_unaccent(w.word) || '%')
         ORDER BY w.n, s.id",
    )
    .bind(words)
    .bind(MIN_SUBSTRING_CHARS as i32)
    .fetch_all(conn)
    .await?;
    let mut per_word = vec![Vec::new(); words.len()];
    for (n, site_id) in rows {
        if let Some(sites) = usize::try_from(n - 1)
            .ok()
            .and_then(|i| per_word.get_mut(i))
        {
            sites.push(site_id);
        }
    }
    Ok(per_word)
}

/// One hit: the tenant and its relevance.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SearchHit {
    pub id: Uuid,
    pub relevance: f64,
}

/// Tenants matching `query`, most relevant first (ties by name, then id).
///
/// A tenant matches when every word matches its name (French full text, accents ignored,
/// prefix), unit, phone or site name/code; or when the whole query is close to its name
/// (pg_trgm similarity or word similarity on `immutable_unaccent(lower(full_name))`, the
/// expression of `tenants_full_name_trgm_idx`); or when the phone digits start one of its
/// phone forms. Relevance = full-text rank + 0.5 when every word matched + name similarity
/// (+ 1 for a phone match).
pub async fn search(
    conn: &mut PgConnection,
    query: &SearchQuery<'_>,
) -> Result<Vec<SearchHit>, sqlx::Error> {
    // Each bound value becomes a constant of its own plan, so the indexes apply.
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL pg_trgm.word_similarity_threshold = {WORD_SIMILARITY_THRESHOLD}"
    ))
    .execute(&mut *conn)
    .await?;

    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT t.id, (");
    // Relevance.
    if query.words.is_empty() {
        qb.push("0");
    } else {
        qb.push("ts_rank(t.search_vector, ");
        push_all_words_tsquery(&mut qb, query.words);
        qb.push(")");
    }
    // Every word found ranks above a name that only looks alike.
    qb.push(" + CASE WHEN ");
    push_words_condition(&mut qb, query.words, query.word_sites);
    qb.push(" THEN 0.5 ELSE 0 END");
    qb.push(
        " + greatest(similarity(immutable_unaccent(lower(t.full_name)), immutable_unaccent(lower(",
    )
    .push_bind(query.text)
    .push("))), word_similarity(immutable_unaccent(lower(")
    .push_bind(query.text)
    .push(")), immutable_unaccent(lower(t.full_name))))");
    if let Some(digits) = query.phone_digits {
        qb.push(" + CASE WHEN t.search_vector @@ to_tsquery('simple', ")
            .push_bind(format!("{digits}:*"))
            .push(") THEN 1 ELSE 0 END");
    }
    qb.push(")::float8 AS relevance FROM tenants t WHERE true");

    // Filters.
    if let Some(site_ids) = query.site_ids {
        qb.push(" AND t.site_id = ANY(")
            .push_bind(site_ids)
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

    // Matching.
    qb.push(" AND (");
    push_words_condition(&mut qb, query.words, query.word_sites);
    qb.push(" OR immutable_unaccent(lower(t.full_name)) % immutable_unaccent(lower(")
        .push_bind(query.text)
        .push("))");
    qb.push(" OR immutable_unaccent(lower(")
        .push_bind(query.text)
        .push(")) <% immutable_unaccent(lower(t.full_name))");
    if let Some(digits) = query.phone_digits {
        qb.push(" OR t.search_vector @@ to_tsquery('simple', ")
            .push_bind(format!("{digits}:*"))
            .push(")");
    }
    qb.push(")");

    qb.push(" ORDER BY relevance DESC, t.full_name, t.id LIMIT ")
        .push_bind(query.limit)
        .push(" OFFSET ")
        .push_bind(query.offset);
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// Every word matches the name, unit or phone (full text, prefix), the unit (substring,
/// accents ignored) or one of the word's sites; `false` without words.
fn push_words_condition(
    qb: &mut QueryBuilder<'_, Postgres>,
    words: &[String],
    word_sites: &[Vec<Uuid>],
) {
    if words.is_empty() {
        qb.push("false");
        return;
    }
    qb.push("(");
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            qb.push(" AND ");
        }
        qb.push("(t.search_vector @@ ");
        push_word_tsquery(qb, word);
        if word.chars().count() >= MIN_SUBSTRING_CHARS {
            qb.push(" OR immutable_unaccent(lower(t.unit)) LIKE '%' || immutable_unaccent(")
                .push_bind(word.clone())
                .push(") || '%'");
        }
        if let Some(sites) = word_sites.get(i).filter(|sites| !sites.is_empty()) {
            qb.push(" OR t.site_id = ANY(")
                .push_bind(sites.clone())
                .push(")");
        }
        qb.push(")");
    }
    qb.push(")");
}

/// `(french_unaccent(word:*) || simple(word:*))`: the name side of `search_vector` is French,
/// the unit and phone side is `simple`. `word` holds only letters and digits.
fn push_word_tsquery(qb: &mut QueryBuilder<'_, Postgres>, word: &str) {
    let term = format!("{word}:*");
    qb.push("(to_tsquery('french_unaccent', ")
        .push_bind(term.clone())
        .push(") || to_tsquery('simple', ")
        .push_bind(term)
        .push("))");
}

fn push_all_words_tsquery(qb: &mut QueryBuilder<'_, Postgres>, words: &[String]) {
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            qb.push(" && ");
        }
        push_word_tsquery(qb, word);
    }
}

// ---------------------------------------------------------------------------------------------
// History (timeline).

/// Sort labels of the timeline's sources; also the `kind` of the keyset cursor.
pub mod history_kind {
    pub const CHARGE: &str = "charge";
    pub const PAYMENT: &str = "payment";
    pub const REVERSAL: &str = "reversal";
    pub const CALL: &str = "call";
    pub const VISIT: &str = "visit";
    /// A promise being made (the promise row itself).
    pub const PROMISE_MADE: &str = "promise";
    /// A later event of a promise (`promise_events`).
    pub const PROMISE_EVENT: &str = "promise_event";
    pub const ALL: [&str; 7] = [
        CHARGE,
        PAYMENT,
        REVERSAL,
        CALL,
        VISIT,
        PROMISE_MADE,
        PROMISE_EVENT,
    ];
}

/// The position of an entry in the timeline: entries are ordered by this key, which is unique
/// (kind + id name one row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryKey {
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery<'a> {
    pub tenant_id: Uuid,
    /// Sources to include ([`history_kind`] labels).
    pub kinds: &'a [&'static str],
    /// occurred_at in [start, end).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Entries strictly after this key (in the requested direction).
    pub after: Option<&'a HistoryKey>,
    pub oldest_first: bool,
    pub limit: i64,
}

/// The keys of one page of a tenant's timeline.
pub async fn history_keys(
    conn: &mut PgConnection,
    query: &HistoryQuery<'_>,
) -> Result<Vec<HistoryKey>, sqlx::Error> {
    let (cmp, dir) = if query.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    // Charges fall due at 00:00 Africa/Conakry (= UTC) of their due date.
    let sql = format!(
        "SELECT h.occurred_at, h.received_at, h.kind, h.id FROM (
            SELECT (c.due_date::timestamp AT TIME ZONE 'Africa/Conakry') AS occurred_at,
                   c.created_at AS received_at, 'charge'::text AS kind, c.id::text AS id
            FROM charges c
            WHERE c.tenant_id = $1 AND 'charge' = ANY($2)
            UNION ALL
            SELECT p.occurred_at, p.received_at, p.kind, p.id::text
            FROM payments p
            WHERE p.tenant_id = $1 AND p.kind = ANY($2)
            UNION ALL
            SELECT i.occurred_at, i.received_at, i.kind, i.id::text
            FROM interactions i
            WHERE i.tenant_id = $1 AND i.kind = ANY($2)
            UNION ALL
            SELECT coalesce(i.occurred_at, pr.created_at), pr.created_at, 'promise', pr.id::text
            FROM promises pr
            LEFT JOIN interactions i ON i.id = pr.interaction_id
            WHERE pr.tenant_id = $1 AND 'promise' = ANY($2)
            UNION ALL
            SELECT e.occurred_at, e.received_at, 'promise_event', e.id::text
            FROM promise_events e
            JOIN promises pr ON pr.id = e.promise_id
            WHERE pr.tenant_id = $1 AND 'promise_event' = ANY($2)
         ) h
         WHERE ($3::timestamptz IS NULL OR h.occurred_at >= $3)
           AND ($4::timestamptz IS NULL OR h.occurred_at < $4)
           AND ($5::timestamptz IS NULL
                OR (h.occurred_at, h.received_at, h.kind, h.id) {cmp} ($5, $6, $7, $8))
         ORDER BY h.occurred_at {dir}, h.received_at {dir}, h.kind {dir}, h.id {dir}
         LIMIT $9"
    );
    let kinds: Vec<&str> = query.kinds.to_vec();
    sqlx::query_as(&sql)
        .bind(query.tenant_id)
        .bind(kinds)
        .bind(query.start)
        .bind(query.end)
        .bind(query.after.map(|k| k.occurred_at))
        .bind(query.after.map(|k| k.received_at))
        .bind(query.after.map(|k| k.kind.clone()))
        .bind(query.after.map(|k| k.id.clone()))
        .bind(query.limit)
        .fetch_all(conn)
        .await
}

/// A monthly charge with its current figures.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChargeRow {
    pub id: i64,
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub due_gnf: i64,
    pub paid_gnf: i64,
    pub paid_in_full_at: Option<DateTime<Utc>>,
}

pub async fn charges_by_ids(
    conn: &mut PgConnection,
    charge_ids: &[i64],
) -> Result<Vec<ChargeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, period, due_date, amount_due_gnf AS due_gnf, amount_paid_gnf AS paid_gnf,
                paid_in_full_at
         FROM charges WHERE id = ANY($1)",
    )
    .bind(charge_ids)
    .fetch_all(conn)
    .await
}

/// A change of a promise after it was made.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseEventRow {
    pub id: i64,
    pub promise_id: Uuid,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub previous_promised_date: Option<NaiveDate>,
    pub reason: Option<String>,
}

const PROMISE_EVENT_SELECT: &str = "SELECT e.id, e.promise_id, e.kind, e.occurred_at,
        e.received_at, e.actor_id, u.full_name AS actor_name, e.previous_promised_date, e.reason
    FROM promise_events e
    LEFT JOIN users u ON u.id = e.actor_id";

/// The promise ids of promise events.
pub async fn promise_ids_of_events(
    conn: &mut PgConnection,
    event_ids: &[i64],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT promise_id FROM promise_events WHERE id = ANY($1)")
        .bind(event_ids)
        .fetch_all(conn)
        .await
}

/// Every event of `promise_ids`, in the order they were written.
pub async fn promise_events_of(
    conn: &mut PgConnection,
    promise_ids: &[Uuid],
) -> Result<Vec<PromiseEventRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{PROMISE_EVENT_SELECT} WHERE e.promise_id = ANY($1) ORDER BY e.promise_id, e.id"
    ))
    .bind(promise_ids)
    .fetch_all(conn)
    .await
}
