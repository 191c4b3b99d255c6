//! SQL of the alerts: the facts the rules read (`domain::alerts`) and the `alerts` rows
//! (evaluation writes, ListAlerts, AcknowledgeAlert).
//!
//! Decisions:
//! - Arrears facts are the dashboards' own overdue groups (`store::site_facts::overdue`, the
//!   `site_arrears` rule) read by the caller; this module reads what only the alerts need.
//! - A promise broke on the day after its promised date when the status readers show today is
//!   broken (`promise_shown_status`, the SQL twin of `domain::promise::shown_status`).
//! - An agent's last activity: the latest `occurred_at` of their calls, visits and payments
//!   (reversals included) and the `fix_time` of their last position (device times).
//! - Evaluation writes are three statements whatever the number of alerts (arrays unnested).
//! - Lists are keyset-paged by (since desc, id desc); display names are joined at read.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, QueryBuilder, Row};
use uuid::Uuid;

use super::error::Result;
use crate::domain::alerts::{Action, AlertKind, AlertState, Severity, StoredAlert, Target};

/// The transaction-scoped advisory lock that makes one replica evaluate the alert rules:
/// "akigalrt".
pub const EVALUATION_LOCK_ID: i64 = 0x616b_6967_616c_7274;

/// Takes the evaluation lock for the rest of the transaction, without waiting: `false` when
/// another replica holds it (and is doing that very work).
pub async fn try_lock_evaluation(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(EVALUATION_LOCK_ID)
        .fetch_one(conn)
        .await?)
}

/// Promises broken on each day of `today - days ..= today`, per site of the tenant: (site, day
/// it broke = promised date + 1, count).
pub async fn broken_promises(
    conn: &mut PgConnection,
    today: NaiveDate,
    days: u32,
) -> Result<Vec<(Uuid, NaiveDate, i64)>> {
    Ok(sqlx::query_as(
        "SELECT t.site_id, pr.promised_date + 1, count(*)
         FROM promises pr JOIN tenants t ON t.id = pr.tenant_id
         WHERE pr.promised_date >= $1 - 1 - $2 AND pr.promised_date < $1
           AND pr.status IN ('pending', 'broken')
           AND promise_shown_status(pr.status, pr.id, $1) = 'broken'
         GROUP BY 1, 2",
    )
    .bind(today)
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .fetch_all(conn)
    .await?)
}

/// One enabled agent: first site by code, last activity, score today and over the 7 days
/// before `today`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRow {
    pub agent_id: Uuid,
    pub site_id: Option<Uuid>,
    pub last_activity: Option<DateTime<Utc>>,
    pub score_today: i64,
    pub score_week: i64,
}

/// Every enabled agent's facts on `today`.
pub async fn agents(conn: &mut PgConnection, today: NaiveDate) -> Result<Vec<AgentRow>> {
    Ok(sqlx::query_as(
        "SELECT u.id AS agent_id,
                (SELECT s.id FROM user_sites us JOIN sites s ON s.id = us.site_id
                 WHERE us.user_id = u.id ORDER BY s.code LIMIT 1) AS site_id,
                greatest(
                    (SELECT max(i.occurred_at) FROM interactions i WHERE i.agent_id = u.id),
                    (SELECT max(p.occurred_at) FROM payments p WHERE p.agent_id = u.id),
                    (SELECT l.fix_time FROM agent_last_positions l WHERE l.agent_id = u.id)
                ) AS last_activity,
                coalesce((SELECT d.score FROM agent_daily_scores d
                          WHERE d.agent_id = u.id AND d.day = $1), 0)::bigint AS score_today,
                coalesce((SELECT sum(d.score) FROM agent_daily_scores d
                          WHERE d.agent_id = u.id AND d.day >= $1 - 7 AND d.day < $1), 0)::bigint
                    AS score_week
         FROM users u
         WHERE u.role_id = 'agent' AND NOT u.disabled
         ORDER BY u.id",
    )
    .bind(today)
    .fetch_all(conn)
    .await?)
}

/// Visits flagged far away in `from <= occurred_at < to`, per agent and site of the tenant.
pub async fn far_visits(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid, i64)>> {
    Ok(sqlx::query_as(
        "SELECT i.agent_id, t.site_id, count(*)
         FROM interactions i JOIN tenants t ON t.id = i.tenant_id
         WHERE i.kind = 'visit' AND i.is_far_from_tenant
           AND i.occurred_at >= $1 AND i.occurred_at < $2
         GROUP BY 1, 2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// The unresolved alerts, by key.
pub async fn unresolved(conn: &mut PgConnection) -> Result<Vec<StoredAlert>> {
    let rows = sqlx::query(
        "SELECT id, dedup_key, site_id, severity FROM alerts
         WHERE state <> 'resolved' ORDER BY dedup_key, id",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let severity: String = row.try_get("severity")?;
            Ok(StoredAlert {
                id: row.try_get("id")?,
                key: row.try_get("dedup_key")?,
                site_id: row.try_get("site_id")?,
                severity: severity.parse().map_err(decode)?,
            })
        })
        .collect()
}

fn decode(error: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

fn json(details: &BTreeMap<String, String>) -> String {
    serde_json::to_string(details).unwrap_or_else(|_| "{}".to_owned())
}

/// Writes an evaluation's actions: one INSERT for the opened alerts, one UPDATE for those still
/// holding, one for the resolved ones. Answers how many rows were written.
pub async fn apply(conn: &mut PgConnection, actions: &[Action]) -> Result<u64> {
    let mut written = 0;
    let opens: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Open { condition, at } => Some((condition, *at)),
            _ => None,
        })
        .collect();
    if !opens.is_empty() {
        let mut insert = QueryBuilder::new(
            "INSERT INTO alerts (kind, severity, state, site_id, agent_id, tenant_id, since,
                                 last_seen_at, message, details, dedup_key) ",
        );
        insert.push_values(opens, |mut row, (c, at)| {
            let (agent, tenant) = match c.target {
                Target::Site(_) => (None, None),
                Target::Agent(id) => (Some(id), None),
                Target::Tenant(id) => (None, Some(id)),
            };
            row.push_bind(c.kind.as_str())
                .push_bind(c.severity.as_str())
                .push("'open'")
                .push_bind(c.site_id)
                .push_bind(agent)
                .push_bind(tenant)
                .push_bind(at)
                .push_bind(at)
                .push_bind(c.message.clone())
                .push_bind(json(&c.details))
                .push_unseparated("::jsonb")
                .push_bind(c.key.clone());
        });
        written += insert.build().execute(&mut *conn).await?.rows_affected();
    }
    let (mut ids, mut severities, mut messages, mut details, mut ats) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for action in actions {
        if let Action::Update { id, condition, at } = action {
            ids.push(*id);
            severities.push(condition.severity.as_str());
            messages.push(condition.message.clone());
            details.push(json(&condition.details));
            ats.push(*at);
        }
    }
    if !ids.is_empty() {
        written += sqlx::query(
            "UPDATE alerts a
             SET severity = u.severity, message = u.message, details = u.details::jsonb,
                 last_seen_at = u.at
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                  AS u(id, severity, message, details, at)
             WHERE a.id = u.id AND a.state <> 'resolved'",
        )
        .bind(&ids)
        .bind(&severities)
        .bind(&messages)
        .bind(&details)
        .bind(&ats)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    let (mut ids, mut ats) = (Vec::new(), Vec::new());
    for action in actions {
        if let Action::Resolve { id, at, .. } = action {
            ids.push(*id);
            ats.push(*at);
        }
    }
    if !ids.is_empty() {
        written += sqlx::query(
            "UPDATE alerts a SET state = 'resolved', resolved_at = u.at, last_seen_at = u.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE a.id = u.id AND a.state <> 'resolved'",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(written)
}

/// An alert as ListAlerts and AcknowledgeAlert show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: Uuid,
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: AlertState,
    pub target: Target,
    /// Name of the target (site, agent or tenant).
    pub target_name: String,
    pub site_id: Uuid,
    pub since: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub message: String,
    pub details: BTreeMap<String, String>,
    /// Who acknowledged it (id, full name), when, and the note.
    pub acknowledged: Option<(Uuid, String, DateTime<Utc>, String)>,
}

const SELECT: &str = "SELECT a.id, a.kind, a.severity, a.state, a.site_id, a.agent_id, a.tenant_id,
        coalesce(ag.full_name, te.full_name, s.name) AS target_name,
        a.since, a.last_seen_at, a.resolved_at, a.message, a.details::text AS details,
        a.acknowledged_by, ack.full_name AS acknowledged_name, a.acknowledged_at,
        coalesce(a.note, '') AS note
    FROM alerts a
    JOIN sites s ON s.id = a.site_id
    LEFT JOIN users ag ON ag.id = a.agent_id
    LEFT JOIN tenants te ON te.id = a.tenant_id
    LEFT JOIN users ack ON ack.id = a.acknowledged_by ";

fn alert_row(row: &sqlx::postgres::PgRow) -> std::result::Result<AlertRow, sqlx::Error> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let site_id: Uuid = row.try_get("site_id")?;
    let agent: Option<Uuid> = row.try_get("agent_id")?;
    let tenant: Option<Uuid> = row.try_get("tenant_id")?;
    let target = match (agent, tenant) {
        (Some(id), _) => Target::Agent(id),
        (None, Some(id)) => Target::Tenant(id),
        (None, None) => Target::Site(site_id),
    };
    let acknowledged = match (
        row.try_get::<Option<Uuid>, _>("acknowledged_by")?,
        row.try_get::<Option<DateTime<Utc>>, _>("acknowledged_at")?,
    ) {
        (Some(by), Some(at)) => Some((
            by,
            row.try_get::<Option<String>, _>("acknowledged_name")?
                .unwrap_or_default(),
            at,
            text("note")?,
        )),
        _ => None,
    };
    Ok(AlertRow {
        id: row.try_get("id")?,
        kind: text("kind")?.parse().map_err(decode)?,
        severity: text("severity")?.parse().map_err(decode)?,
        state: text("state")?.parse().map_err(decode)?,
        target,
        target_name: text("target_name")?,
        site_id,
        since: row.try_get("since")?,
        last_seen_at: row.try_get("last_seen_at")?,
        resolved_at: row.try_get("resolved_at")?,
        message: text("message")?,
        details: serde_json::from_str(&text("details")?).map_err(decode)?,
        acknowledged,
    })
}

/// Which alerts ListAlerts shows (every list empty: any value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub states: Vec<AlertState>,
    pub severities: Vec<Severity>,
    pub kinds: Vec<AlertKind>,
    /// `None`: every site.
    pub sites: Option<Vec<Uuid>>,
}

/// Where the next page starts: after the alert that started at `since` with `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub since: DateTime<Utc>,
    pub id: Uuid,
}

fn push_filter(query: &mut QueryBuilder<'_, sqlx::Postgres>, filter: &ListFilter) {
    let strings = |values: Vec<&'static str>| values.into_iter().map(str::to_owned).collect();
    query.push(" WHERE true");
    if !filter.states.is_empty() {
        let states: Vec<String> = strings(filter.states.iter().map(|s| s.as_str()).collect());
        query
            .push(" AND a.state = ANY(")
            .push_bind(states)
            .push(")");
    }
    if !filter.severities.is_empty() {
        let values: Vec<String> = strings(filter.severities.iter().map(|s| s.as_str()).collect());
        query
            .push(" AND a.severity = ANY(")
            .push_bind(values)
            .push(")");
    }
    if !filter.kinds.is_empty() {
        let values: Vec<String> = strings(filter.kinds.iter().map(|k| k.as_str()).collect());
        query.push(" AND a.kind = ANY(").push_bind(values).push(")");
    }
    if let Some(sites) = &filter.sites {
        query
            .push(" AND a.site_id = ANY(")
            .push_bind(sites.clone())
            .push(")");
    }
}

/// A page of the alerts `filter` matches, newest start first (then id), after `after`; at most
/// `limit` rows. With the number of alerts matching (all pages).
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<AlertRow>, i64)> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM alerts a");
    push_filter(&mut count, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;
    let mut query = QueryBuilder::new(SELECT);
    push_filter(&mut query, filter);
    if let Some(cursor) = after {
        query
            .push(" AND (a.since, a.id) < (")
            .push_bind(cursor.since)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(" ORDER BY a.since DESC, a.id DESC LIMIT ")
        .push_bind(limit);
    let rows = query.build().fetch_all(&mut *conn).await?;
    let alerts = rows
        .iter()
        .map(alert_row)
        .collect::<std::result::Result<_, _>>()?;
    Ok((alerts, total))
}

/// One alert, locked for update.
pub async fn get_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Option<AlertRow>> {
    let query = format!("{SELECT} WHERE a.id = $1 FOR UPDATE OF a");
    let row = sqlx::query(&query).bind(id).fetch_optional(conn).await?;
    Ok(row.as_ref().map(alert_row).transpose()?)
}

/// One alert.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<AlertRow>> {
    let query = format!("{SELECT} WHERE a.id = $1");
    let row = sqlx::query(&query).bind(id).fetch_optional(conn).await?;
    Ok(row.as_ref().map(alert_row).transpose()?)
}

/// Marks the open alert `id` acknowledged by `user` at `at` with `note`; answers whether it
/// was open.
pub async fn acknowledge(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    at: DateTime<Utc>,
    note: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3,
                           note = $4
         WHERE id = $1 AND state = 'open'",
    )
    .bind(id)
    .bind(user)
    .bind(at)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
