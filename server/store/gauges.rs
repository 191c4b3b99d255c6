//! SQL of the business gauges (`jobs::gauges`) that the site figures do not give: promises by
//! status and the agents' scores. Agents are named by username (the gauges' label).
//!
//! Decisions:
//! - Promise statuses are the stored ones, as the dashboards count them (`promise_days`): a
//!   pending promise whose date has passed keeps counting as pending until the settlement job
//!   (`jobs::promises`, every 15 minutes) stores its final status. Deriving each pending
//!   promise's status instead (`promise_status_on`) read every payment since each promise:
//!   seconds per run at 100,000 tenants.

use chrono::NaiveDate;
use sqlx::PgConnection;

use super::error::Result;

/// How many promises have each stored status (`pending`, `kept`, ...), every day together,
/// read from the `promise_days` read model (ADR 0011). Statuses no promise has are absent.
pub async fn promises_by_status(conn: &mut PgConnection) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, sum(promises)::bigint FROM promise_days
         GROUP BY status HAVING sum(promises) > 0 ORDER BY status",
    )
    .fetch_all(conn)
    .await?)
}

/// Each enabled agent's score on `day` (0 without a daily score row), by username.
pub async fn agent_scores(conn: &mut PgConnection, day: NaiveDate) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT u.username, coalesce(d.score, 0)::bigint
         FROM users u
         LEFT JOIN agent_daily_scores d ON d.agent_id = u.id AND d.day = $1
         WHERE u.role_id = 'agent' AND NOT u.disabled
         ORDER BY u.username",
    )
    .bind(day)
    .fetch_all(conn)
    .await?)
}
