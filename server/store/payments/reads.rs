//! Reads of the money ledger: one entry with the names the API shows beside it, entries by id,
//! a payment's allocations, the payment list in the caller's scope and its totals.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::caller::Scope;
use crate::domain::{PaymentKind, PaymentMethod};
use crate::store::error::{Result, StoreError};

/// A ledger entry with the names the API shows next to it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: PaymentKind,
    pub receipt_number: String,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub unit_label: String,
    pub amount_gnf: i64,
    #[sqlx(try_from = "String")]
    pub method: PaymentMethod,
    pub operator_reference: Option<String>,
    pub payer_phone: Option<String>,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub recorded_by: Option<Uuid>,
    pub recorded_by_name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub interaction_id: Option<Uuid>,
    pub promise_id: Option<Uuid>,
    pub mission_id: Option<Uuid>,
    pub notes: String,
    pub credit_gnf: i64,
    pub reverses_payment_id: Option<Uuid>,
    pub reason: Option<String>,
    /// For a payment: the reversal entry that cancels it, if any.
    pub reversal_id: Option<Uuid>,
    /// Who collected the money: the agent of a payment, or of the payment a reversal cancels.
    pub collector_id: Uuid,
}

const PAYMENT_SELECT: &str = "SELECT p.id, p.kind, p.receipt_number, p.tenant_id,
        t.full_name AS tenant_name, p.site_id, s.name AS site_name, t.unit AS unit_label,
        p.amount_gnf, p.method, p.operator_reference, p.payer_phone, p.agent_id,
        a.full_name AS agent_name, p.recorded_by, rb.full_name AS recorded_by_name,
        p.occurred_at, p.received_at, p.interaction_id, p.promise_id, p.mission_id, p.notes,
        p.amount_gnf - abs((SELECT coalesce(sum(x.amount_gnf), 0) FROM payment_allocations x
                            WHERE x.payment_id = p.id))::bigint AS credit_gnf,
        p.reverses_payment_id, p.reason, rv.id AS reversal_id,
        coalesce(o.agent_id, p.agent_id) AS collector_id
    FROM payments p
    JOIN tenants t ON t.id = p.tenant_id
    JOIN sites s ON s.id = p.site_id
    JOIN users a ON a.id = p.agent_id
    LEFT JOIN users rb ON rb.id = p.recorded_by
    LEFT JOIN payments rv ON rv.reverses_payment_id = p.id
    LEFT JOIN payments o ON o.id = p.reverses_payment_id";

pub async fn get<'e>(
    executor: impl PgExecutor<'e>,
    payment_id: Uuid,
) -> Result<Option<PaymentRow>> {
    sqlx::query_as(&format!("{PAYMENT_SELECT} WHERE p.id = $1"))
        .bind(payment_id)
        .fetch_optional(executor)
        .await
        .map_err(StoreError::from)
}

/// The entries of `payment_ids` (payments and reversals), in no particular order.
pub async fn entries_by_ids<'e>(
    executor: impl PgExecutor<'e>,
    payment_ids: &[Uuid],
) -> Result<Vec<PaymentRow>> {
    sqlx::query_as(&format!("{PAYMENT_SELECT} WHERE p.id = ANY($1)"))
        .bind(payment_ids)
        .fetch_all(executor)
        .await
        .map_err(StoreError::from)
}

/// One allocation row of an entry, with the charge's month and what remained on it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AllocationRow {
    pub payment_id: Uuid,
    pub charge_id: i64,
    pub period: NaiveDate,
    pub amount_gnf: i64,
    /// Outstanding on the charge right after this row, as the replay that wrote it saw it
    /// (`domain::ledger`).
    pub outstanding_after_gnf: i64,
}

/// The allocations of `payment_ids`, per entry oldest charge first.
pub async fn allocations<'e>(
    executor: impl PgExecutor<'e>,
    payment_ids: &[Uuid],
) -> Result<Vec<AllocationRow>> {
    sqlx::query_as(
        "SELECT a.payment_id, a.charge_id, c.period, a.amount_gnf,
                a.outstanding_after_gnf
         FROM payment_allocations a JOIN charges c ON c.id = a.charge_id
         WHERE a.payment_id = ANY($1)
         ORDER BY a.payment_id, c.period, a.charge_id",
    )
    .bind(payment_ids)
    .fetch_all(executor)
    .await
    .map_err(StoreError::from)
}

/// Filters of ListPayments (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub site_ids: Vec<Uuid>,
    /// Money collected by this agent (reversals of their payments included).
    pub agent_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_before: Option<DateTime<Utc>>,
    pub method: Option<PaymentMethod>,
    pub kind: Option<PaymentKind>,
    pub receipt_number: Option<String>,
    /// Entries whose operator reference has this key (`domain::operator_reference_key`).
    pub operator_reference_key: Option<String>,
}

/// Keyset position: entries strictly after it in (occurred_at DESC, id DESC) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

/// What a caller may see of the ledger: the sites of their scope; an agent only the money
/// they collected.
fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
    match scope {
        Scope::Company => {}
        Scope::Sites(sites)
        | Scope::Team {
            site_ids: sites, ..
        } => {
            query
                .push(" AND p.site_id = ANY(")
                .push_bind(sites.to_vec())
                .push(")");
        }
        Scope::Own { agent_id, .. } => {
            query
                .push(" AND coalesce(o.agent_id, p.agent_id) = ")
                .push_bind(*agent_id);
        }
    }
}

fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &PaymentFilter, scope: &Scope) {
    query.push(" WHERE TRUE");
    push_scope(query, scope);
    if !filter.site_ids.is_empty() {
        query
            .push(" AND p.site_id = ANY(")
            .push_bind(filter.site_ids.clone())
            .push(")");
    }
    if let Some(agent) = filter.agent_id {
        query
            .push(" AND coalesce(o.agent_id, p.agent_id) = ")
            .push_bind(agent);
    }
    if let Some(tenant) = filter.tenant_id {
        query.push(" AND p.tenant_id = ").push_bind(tenant);
    }
    if let Some(from) = filter.occurred_from {
        query.push(" AND p.occurred_at >= ").push_bind(from);
    }
    if let Some(before) = filter.occurred_before {
        query.push(" AND p.occurred_at < ").push_bind(before);
    }
    if let Some(method) = filter.method {
        query.push(" AND p.method = ").push_bind(method.as_str());
    }
    if let Some(kind) = filter.kind {
        query.push(" AND p.kind = ").push_bind(kind.as_str());
    }
    if let Some(receipt) = &filter.receipt_number {
        query
            .push(" AND p.receipt_number = ")
            .push_bind(receipt.clone());
    }
    if let Some(key) = &filter.operator_reference_key {
        query
            .push(" AND p.operator_reference_key = ")
            .push_bind(key.clone());
    }
}

/// One page, newest occurred_at first (ties: larger id first).
pub async fn list(
    pool: &PgPool,
    filter: &PaymentFilter,
    scope: &Scope,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<PaymentRow>> {
    let mut query = QueryBuilder::new(PAYMENT_SELECT);
    push_filter(&mut query, filter, scope);
    if let Some(cursor) = after {
        query
            .push(" AND (p.occurred_at, p.id) < (")
            .push_bind(cursor.occurred_at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(" ORDER BY p.occurred_at DESC, p.id DESC LIMIT ")
        .push_bind(limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Number of matching entries and the sum of their amounts, reversals negative.
pub async fn totals(pool: &PgPool, filter: &PaymentFilter, scope: &Scope) -> Result<(i64, i64)> {
    let mut query = QueryBuilder::new(
        "SELECT count(*),
                coalesce(sum(CASE WHEN p.kind = 'reversal' THEN -p.amount_gnf
                                  ELSE p.amount_gnf END), 0)::bigint
         FROM payments p LEFT JOIN payments o ON o.id = p.reverses_payment_id",
    );
    push_filter(&mut query, filter, scope);
    Ok(query.build_query_as().fetch_one(pool).await?)
}
