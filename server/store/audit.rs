//! SQL of the append-only audit log. Rows are only ever inserted (a trigger forbids UPDATE,
//! DELETE and TRUNCATE). Never put a secret or a token in `details`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::rbac::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    /// The outcome of a stored row: `ok`, `denied`, and anything else (`failed`, and the
    /// `invalid` and `error` the table also admits) as failed.
    fn from_stored(outcome: &str) -> Self {
        match outcome {
            "ok" => Self::Ok,
            "denied" => Self::Denied,
            _ => Self::Failed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    /// What was attempted: a permission name (`users.create`) or an auth event (`auth.login`).
    pub action: String,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub request_id: Option<Uuid>,
    pub client_ip: Option<IpAddr>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(action: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            actor_id: None,
            actor_role: None,
            action: action.into(),
            target_type: None,
            target_id: None,
            request_id: None,
            client_ip: None,
            outcome,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn request(mut self, request_id: Uuid) -> Self {
        self.request_id = Some(request_id);
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// Pushes `INSERT INTO audit_log (..) VALUES (..)` for `event`, with its binds, onto `query`:
/// the one text of the audit insert, run alone by [`append`] or as a data-modifying CTE of
/// another statement (the idempotency key's completion writes the audit row of the call it
/// completes, see `Idempotency::run_audited`).
pub fn push_insert<'a>(query: &mut QueryBuilder<'a, Postgres>, event: &'a AuditEvent) {
    query.push(
        "INSERT INTO audit_log
           (actor_id, actor_role, action, target_type, target_id, request_id, client_ip,
            outcome, details)
         VALUES (",
    );
    let mut values = query.separated(", ");
    values.push_bind(event.actor_id);
    values.push_bind(event.actor_role.as_deref());
    values.push_bind(event.action.as_str());
    values.push_bind(event.target_type);
    values.push_bind(event.target_id.as_deref());
    values.push_bind(event.request_id);
    values.push_bind(event.client_ip.map(|ip| ip.to_string()));
    values.push_unseparated("::inet");
    values.push_bind(event.outcome.as_str());
    values.push_bind(&event.details);
    values.push_unseparated(")");
}

pub async fn append<'e>(
    executor: impl PgExecutor<'e>,
    event: &AuditEvent,
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::new("");
    push_insert(&mut query, event);
    query.build().execute(executor).await?;
    Ok(())
}

/// An audit entry as read back.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_username: Option<String>,
    pub actor_name: Option<String>,
    /// `None` also for an actor that was no user of a role (the command line's `cli`).
    pub actor_role: Option<Role>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<Uuid>,
    pub client_ip: Option<String>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

/// An `audit_log` row as stored, decoded into an [`AuditRow`] here.
#[derive(sqlx::FromRow)]
struct StoredRow {
    id: i64,
    occurred_at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_username: Option<String>,
    actor_name: Option<String>,
    actor_role: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    request_id: Option<Uuid>,
    client_ip: Option<String>,
    outcome: String,
    details: serde_json::Value,
}

impl From<StoredRow> for AuditRow {
    fn from(row: StoredRow) -> Self {
        Self {
            id: row.id,
            occurred_at: row.occurred_at,
            actor_id: row.actor_id,
            actor_username: row.actor_username,
            actor_name: row.actor_name,
            actor_role: row.actor_role.and_then(|role| Role::try_from(role).ok()),
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            request_id: row.request_id,
            client_ip: row.client_ip,
            outcome: Outcome::from_stored(&row.outcome),
            details: row.details,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: entries older than this id.
    pub before_id: Option<i64>,
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut query = QueryBuilder::new(
        "SELECT a.id, a.occurred_at, a.actor_id, u.username AS actor_username,
                u.full_name AS actor_name, a.actor_role, a.action, a.target_type, a.target_id,
                a.request_id, host(a.client_ip) AS client_ip, a.outcome, a.details
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id WHERE TRUE",
    );
    if let Some(actor) = filter.actor_id {
        query.push(" AND a.actor_id = ").push_bind(actor);
    }
    if let Some(action) = &filter.action {
        query.push(" AND a.action = ").push_bind(action.clone());
    }
    if let Some(kind) = &filter.target_type {
        query.push(" AND a.target_type = ").push_bind(kind.clone());
    }
    if let Some(id) = &filter.target_id {
        query.push(" AND a.target_id = ").push_bind(id.clone());
    }
    if let Some(outcome) = filter.outcome {
        query.push(" AND a.outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND a.occurred_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND a.occurred_at < ").push_bind(until);
    }
    if let Some(before) = filter.before_id {
        query.push(" AND a.id < ").push_bind(before);
    }
    query.push(" ORDER BY a.id DESC LIMIT ").push_bind(limit);
    let rows: Vec<StoredRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(AuditRow::from).collect())
}
