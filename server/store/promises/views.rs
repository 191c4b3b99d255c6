//! Promises as the API shows them: one promise, the promise list with its totals, and the
//! promises of tenant cards and timelines, each with its status derived on the day of the read
//! (`promise_derived_status`, see the parent module).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{PromiseEventKind, PromiseStatus};
use crate::store::error::{Result, StoreError};

/// A promise as the API shows it, with its status as of the day of the read.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit_label: String,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    /// The stored status (`pending` until the job or a payment settles it).
    #[sqlx(try_from = "String")]
    pub stored_status: PromiseStatus,
    /// The status derived from the ledger on the day of the read.
    #[sqlx(try_from = "String")]
    pub status: PromiseStatus,
    /// Paid since the promise was made (all dates).
    pub paid_gnf: i64,
    pub interaction_id: Option<Uuid>,
    pub made_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub original_promised_date: NaiveDate,
    pub reschedule_count: i32,
    pub last_change_reason: Option<String>,
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// Pushes the SELECT of [`PromiseView`] with statuses derived on `today`, up to its FROM
/// clause included; the caller adds the WHERE.
fn push_view<'a>(query: &mut QueryBuilder<'a, Postgres>, today: NaiveDate) {
    query.push(
        "SELECT p.id, p.tenant_id, t.full_name AS tenant_name, t.site_id,
            s.name AS site_name, t.unit AS unit_label, p.agent_id, a.full_name AS agent_name,
            p.amount_gnf, p.promised_date, p.status AS stored_status,
            promise_derived_status(p.status, p.amount_gnf, p.promised_date,
                                   pp.paid_by_date_gnf, ",
    );
    query.push_bind(today);
    query.push(
        ") AS status,
            pp.paid_gnf, p.interaction_id,
            coalesce(i.occurred_at, p.created_at) AS made_at,
            coalesce(i.received_at, p.created_at) AS received_at,
            coalesce(p.original_promised_date, p.rescheduled_from, p.promised_date)
                AS original_promised_date,
            greatest(p.reschedule_count, (p.rescheduled_from IS NOT NULL)::int) AS reschedule_count,
            CASE WHEN p.status = 'cancelled' THEN p.cancel_reason ELSE p.reschedule_reason END
                AS last_change_reason,
            p.status_changed_at
        FROM promises p
        JOIN tenants t ON t.id = p.tenant_id
        JOIN sites s ON s.id = t.site_id
        JOIN users a ON a.id = p.agent_id
        LEFT JOIN interactions i ON i.id = p.interaction_id
        CROSS JOIN LATERAL promise_payments(p.id) pp",
    );
}

pub async fn get<'e>(
    executor: impl PgExecutor<'e>,
    promise_id: Uuid,
    today: NaiveDate,
) -> Result<Option<PromiseView>> {
    let mut query = QueryBuilder::new("");
    push_view(&mut query, today);
    query.push(" WHERE p.id = ").push_bind(promise_id);
    Ok(query.build_query_as().fetch_optional(executor).await?)
}
/// Which promises a caller may list.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every promise.
    All,
    /// Promises of tenants of these sites, plus (when set) the promises obtained by this agent
    /// or by the agents this supervisor leads.
    Sites {
        site_ids: Vec<Uuid>,
        own_agent_id: Option<Uuid>,
        supervisor_id: Option<Uuid>,
    },
}

/// Filters of ListPromises (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Derived statuses, any of them; empty: all.
    pub statuses: Vec<PromiseStatus>,
    pub agent_id: Option<Uuid>,
    pub site_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Keyset position: the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub promised_date: NaiveDate,
    pub tenant_name: String,
    pub id: Uuid,
}

/// `SELECT <what> FROM (view) v WHERE <visibility and filters>`.
fn filtered<'a>(
    what: &str,
    today: NaiveDate,
    visibility: &'a Visibility,
    filter: &'a ListFilter,
) -> QueryBuilder<'a, Postgres> {
    let mut query = QueryBuilder::new(format!("SELECT {what} FROM ("));
    push_view(&mut query, today);
    query.push(") v WHERE TRUE");
    if let Visibility::Sites {
        site_ids,
        own_agent_id,
        supervisor_id,
    } = visibility
    {
        query
            .push(" AND (v.site_id = ANY(")
            .push_bind(site_ids.clone())
            .push(")");
        if let Some(agent) = own_agent_id {
            query.push(" OR v.agent_id = ").push_bind(*agent);
        }
        if let Some(supervisor) = supervisor_id {
            query
                .push(" OR v.agent_id IN (SELECT id FROM users WHERE supervisor_id = ")
                .push_bind(*supervisor)
                .push(")");
        }
        query.push(")");
    }
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        query
            .push(" AND v.status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if let Some(agent) = filter.agent_id {
        query.push(" AND v.agent_id = ").push_bind(agent);
    }
    if let Some(site) = filter.site_id {
        query.push(" AND v.site_id = ").push_bind(site);
    }
    if let Some(tenant) = filter.tenant_id {
        query.push(" AND v.tenant_id = ").push_bind(tenant);
    }
    if let Some(from) = filter.from {
        query.push(" AND v.promised_date >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND v.promised_date <= ").push_bind(to);
    }
    query
}

/// One page, by promised date, then tenant name, then id, after `after`.
pub async fn list<'e>(
    executor: impl PgExecutor<'e>,
    today: NaiveDate,
    visibility: &Visibility,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<PromiseView>> {
    let mut query = filtered("v.*", today, visibility, filter);
    if let Some(after) = after {
        query
            .push(" AND (v.promised_date, v.tenant_name, v.id) > (")
            .push_bind(after.promised_date)
            .push(", ")
            .push_bind(after.tenant_name.clone())
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY v.promised_date, v.tenant_name, v.id LIMIT ")
        .push_bind(limit);
    Ok(query.build_query_as().fetch_all(executor).await?)
}

/// Number of matching promises and the sum of their amounts (all pages).
pub async fn totals<'e>(
    executor: impl PgExecutor<'e>,
    today: NaiveDate,
    visibility: &Visibility,
    filter: &ListFilter,
) -> Result<(i64, i64)> {
    filtered(
        "count(*)::bigint, coalesce(sum(v.amount_gnf), 0)::bigint",
        today,
        visibility,
        filter,
    )
    .build_query_as()
    .fetch_one(executor)
    .await
    .map_err(StoreError::from)
}

// ---------------------------------------------------------------------------------------------
// Promises of tenant cards and timelines.

/// A promise with the status it shows (`promise_derived_status` of what was paid towards it,
/// `promise_payments`, read once for both).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub interaction_id: Option<Uuid>,
    pub amount_gnf: i64,
    pub promised_date: NaiveDate,
    /// Derived on the day of the read.
    #[sqlx(try_from = "String")]
    pub status: PromiseStatus,
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
        promise_derived_status(pr.status, pr.amount_gnf, pr.promised_date,
                               pp.paid_by_date_gnf, $2) AS status, pp.paid_gnf,
        coalesce(i.occurred_at, pr.created_at) AS occurred_at, pr.created_at AS received_at,
        coalesce(pr.original_promised_date, pr.promised_date) AS original_promised_date,
        pr.reschedule_count, pr.cancel_reason, pr.reschedule_reason, pr.status_changed_at
    FROM promises pr
    JOIN users u ON u.id = pr.agent_id
    LEFT JOIN interactions i ON i.id = pr.interaction_id
    CROSS JOIN LATERAL promise_payments(pr.id) pp";

/// The promises of `tenant_ids` still pending on `today` (status derived), newest first.
pub async fn pending_of_tenants(
    conn: &mut PgConnection,
    tenant_ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<PromiseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT * FROM ({PROMISE_SELECT}
                        WHERE pr.tenant_id = ANY($1) AND pr.status = 'pending') p
         WHERE p.status = 'pending'
         ORDER BY p.tenant_id, p.received_at DESC, p.id DESC"
    ))
    .bind(tenant_ids)
    .bind(today)
    .fetch_all(conn)
    .await?)
}

/// Promises by id, statuses derived on `today`.
pub async fn by_ids(
    conn: &mut PgConnection,
    promise_ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<PromiseRow>> {
    Ok(
        sqlx::query_as(&format!("{PROMISE_SELECT} WHERE pr.id = ANY($1)"))
            .bind(promise_ids)
            .bind(today)
            .fetch_all(conn)
            .await?,
    )
}

/// A change of a promise after it was made.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromiseEventRow {
    pub id: i64,
    pub promise_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: PromiseEventKind,
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
pub async fn of_events(conn: &mut PgConnection, event_ids: &[i64]) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT promise_id FROM promise_events WHERE id = ANY($1)")
            .bind(event_ids)
            .fetch_all(conn)
            .await?,
    )
}

/// Every event of `promise_ids`, in the order they were written.
pub async fn events_of(
    conn: &mut PgConnection,
    promise_ids: &[Uuid],
) -> Result<Vec<PromiseEventRow>> {
    Ok(sqlx::query_as(&format!(
        "{PROMISE_EVENT_SELECT} WHERE e.promise_id = ANY($1) ORDER BY e.promise_id, e.id"
    ))
    .bind(promise_ids)
    .fetch_all(conn)
    .await?)
}
