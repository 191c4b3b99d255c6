//! SQL of tenants: their site (for scope checks), the tenant lock every write of a tenant
//! takes, balances, tenant cards, and the timeline of everything that happened to one
//! tenant.
//!
//! The reads of one request run in one read-only REPEATABLE READ transaction
//! (`store::begin_read`), so a card's balance, last interaction and pending promise come from
//! the same snapshot.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::error::Result;
use crate::domain::UnknownDbValue;

#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TenantSite {
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub active: bool,
}

/// The tenant's site; `None` for an unknown tenant.
pub async fn site_of<'e>(
    executor: impl PgExecutor<'e>,
    tenant_id: Uuid,
) -> Result<Option<TenantSite>> {
    Ok(
        sqlx::query_as("SELECT id AS tenant_id, site_id, active FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(executor)
            .await?,
    )
}

/// The tenant row, locked for the rest of the transaction, with what the writes of a tenant
/// need: its site, whether it is active, its credit, its home and the names an answer shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LockedTenant {
    pub id: Uuid,
    pub site_id: Uuid,
    pub active: bool,
    pub credit_gnf: i64,
    pub home_latitude: Option<f64>,
    pub home_longitude: Option<f64>,
    pub full_name: String,
    pub unit: String,
    pub site_name: String,
}

/// Locks the tenant row: the calls, visits, payments and reversals of one tenant then run one
/// after the other, so "the pending promise", the open charges and the credit cannot change
/// under a writer's feet. `FOR NO KEY UPDATE` is the lock an UPDATE of non-key columns
/// (credit_gnf) takes: it serialises every writer of the tenant but, unlike `FOR UPDATE`,
/// lets rows that merely reference the tenant be inserted meanwhile. `None` for an unknown
/// tenant.
pub async fn lock(conn: &mut PgConnection, tenant_id: Uuid) -> Result<Option<LockedTenant>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.site_id, t.active, t.credit_gnf, t.home_latitude, t.home_longitude,
                t.full_name, t.unit, s.name AS site_name
         FROM tenants t JOIN sites s ON s.id = t.site_id
         WHERE t.id = $1 FOR NO KEY UPDATE OF t",
    )
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?)
}

/// A tenant's balance: outstanding on the charges due by a day, and the credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Balance {
    pub tenant_id: Uuid,
    /// Outstanding on charges already due (due date on or before the day).
    pub outstanding_gnf: i64,
    pub credit_gnf: i64,
}

/// The tenant's balance on `today`.
pub async fn balance(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    today: NaiveDate,
) -> Result<Balance> {
    Ok(sqlx::query_as(
        "SELECT t.id AS tenant_id,
                coalesce((SELECT sum(amount_due_gnf - amount_paid_gnf) FROM charges
                          WHERE tenant_id = t.id AND amount_paid_gnf < amount_due_gnf
                            AND due_date <= $2), 0)::bigint AS outstanding_gnf,
                t.credit_gnf
         FROM tenants t WHERE t.id = $1",
    )
    .bind(tenant_id)
    .bind(today)
    .fetch_one(conn)
    .await?)
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
) -> Result<Vec<TenantCardRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.full_name, t.phone, t.site_id, s.name AS site_name, t.unit, t.address,
                t.home_latitude, t.home_longitude, t.monthly_rent_gnf, t.active, t.credit_gnf,
                coalesce(o.outstanding_gnf, 0)::bigint AS outstanding_gnf,
                o.oldest_unpaid_due_date,
                (SELECT count(*) FROM promises pr
                 WHERE pr.tenant_id = t.id
                   AND pr.promised_date > ($2::date - interval '12 months')::date
                   AND pr.promised_date < $2
                   AND promise_shown_status(pr.status, pr.id, $2) = 'broken')
                    AS broken_promise_count
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
    .await?)
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

pub async fn tenant_ref(conn: &mut PgConnection, tenant_id: Uuid) -> Result<Option<TenantRefRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.full_name, t.site_id, s.name AS site_name, t.unit, t.credit_gnf
         FROM tenants t JOIN sites s ON s.id = t.site_id
         WHERE t.id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// History (timeline).

/// The sources of the timeline, with their sort labels (also the `kind` of the keyset cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HistoryKind {
    Charge,
    Payment,
    Reversal,
    Call,
    Visit,
    /// A promise being made (the promise row itself).
    PromiseMade,
    /// A later event of a promise (`promise_events`).
    PromiseEvent,
}

impl HistoryKind {
    pub const ALL: [HistoryKind; 7] = [
        HistoryKind::Charge,
        HistoryKind::Payment,
        HistoryKind::Reversal,
        HistoryKind::Call,
        HistoryKind::Visit,
        HistoryKind::PromiseMade,
        HistoryKind::PromiseEvent,
    ];

    /// The sort label (the SQL below and the page tokens).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Charge => "charge",
            HistoryKind::Payment => "payment",
            HistoryKind::Reversal => "reversal",
            HistoryKind::Call => "call",
            HistoryKind::Visit => "visit",
            HistoryKind::PromiseMade => "promise",
            HistoryKind::PromiseEvent => "promise_event",
        }
    }
}

impl std::str::FromStr for HistoryKind {
    type Err = UnknownDbValue;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        HistoryKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownDbValue {
                kind: "history kind",
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for HistoryKind {
    type Error = UnknownDbValue;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse()
    }
}

/// The position of an entry in the timeline: entries are ordered by this key, which is unique
/// (kind + id name one row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryKey {
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub kind: HistoryKind,
    /// The row's id: a charge's number, else a UUID.
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery<'a> {
    pub tenant_id: Uuid,
    /// Sources to include.
    pub kinds: &'a [HistoryKind],
    /// occurred_at in [start, end).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Entries strictly after this key (in the requested direction).
    pub after: Option<&'a HistoryKey>,
    pub oldest_first: bool,
    pub limit: i64,
}

/// The keys of one page of a tenant's timeline.
///
/// Only the filters the query has are written into the statement (no `$n IS NULL OR ...`,
/// whose generic plan, chosen after the fifth execution, scans every entry of the tenant).
pub async fn history_keys(
    conn: &mut PgConnection,
    query: &HistoryQuery<'_>,
) -> Result<Vec<HistoryKey>> {
    let (cmp, dir) = if query.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if query.kinds.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<&str> = query.kinds.iter().map(|kind| kind.as_str()).collect();
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT h.occurred_at, h.received_at, h.kind, h.id FROM (");
    let mut first = true;
    let mut source =
        |qb: &mut QueryBuilder<'_, Postgres>, kinds_here: &[HistoryKind], sql: &str| {
            if !kinds_here.iter().any(|kind| query.kinds.contains(kind)) {
                return false;
            }
            if !first {
                qb.push(" UNION ALL ");
            }
            first = false;
            qb.push(sql).push_bind(query.tenant_id);
            true
        };
    // Charges fall due at 00:00 Africa/Conakry (= UTC) of their due date.
    let _ = source(
        &mut qb,
        &[HistoryKind::Charge],
        "SELECT (c.due_date::timestamp AT TIME ZONE 'Africa/Conakry') AS occurred_at,
                c.created_at AS received_at, 'charge'::text AS kind, c.id::text AS id
         FROM charges c WHERE c.tenant_id = ",
    );
    if source(
        &mut qb,
        &[HistoryKind::Payment, HistoryKind::Reversal],
        "SELECT p.occurred_at, p.received_at, p.kind, p.id::text
         FROM payments p WHERE p.tenant_id = ",
    ) {
        qb.push(" AND p.kind = ANY(")
            .push_bind(kinds.clone())
            .push(")");
    }
    if source(
        &mut qb,
        &[HistoryKind::Call, HistoryKind::Visit],
        "SELECT i.occurred_at, i.received_at, i.kind, i.id::text
         FROM interactions i WHERE i.tenant_id = ",
    ) {
        qb.push(" AND i.kind = ANY(")
            .push_bind(kinds.clone())
            .push(")");
    }
    let _ = source(
        &mut qb,
        &[HistoryKind::PromiseMade],
        "SELECT coalesce(i.occurred_at, pr.created_at), pr.created_at, 'promise', pr.id::text
         FROM promises pr
         LEFT JOIN interactions i ON i.id = pr.interaction_id
         WHERE pr.tenant_id = ",
    );
    let _ = source(
        &mut qb,
        &[HistoryKind::PromiseEvent],
        "SELECT e.occurred_at, e.received_at, 'promise_event', e.id::text
         FROM promise_events e
         JOIN promises pr ON pr.id = e.promise_id
         WHERE pr.tenant_id = ",
    );
    qb.push(") h WHERE true");
    if let Some(start) = query.start {
        qb.push(" AND h.occurred_at >= ").push_bind(start);
    }
    if let Some(end) = query.end {
        qb.push(" AND h.occurred_at < ").push_bind(end);
    }
    if let Some(after) = query.after {
        qb.push(format!(
            " AND (h.occurred_at, h.received_at, h.kind, h.id) {cmp} ("
        ))
        .push_bind(after.occurred_at)
        .push(", ")
        .push_bind(after.received_at)
        .push(", ")
        .push_bind(after.kind.as_str())
        .push(", ")
        .push_bind(after.id.clone())
        .push(")");
    }
    qb.push(format!(
        " ORDER BY h.occurred_at {dir}, h.received_at {dir}, h.kind {dir}, h.id {dir} LIMIT "
    ))
    .push_bind(query.limit);
    Ok(qb.build_query_as().fetch_all(conn).await?)
}
