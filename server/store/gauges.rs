//! SQL of the business gauges (`jobs::gauges`): a handful of aggregate queries over every site,
//! run on a schedule, never per scrape. Sites are named by code, agents by username (the
//! gauges' labels).
//!
//! Decisions:
//! - Arrears come from the `site_arrears` view (charges past their due date and not fully
//!   paid), the rule every arrears figure follows.
//! - Collected today is payments minus reversals whose occurred_at falls in the Africa/Conakry
//!   day, as the daily figures count it (`store::stats::activity`).
//! - Promise statuses are the ones readers show today: a stored final status stands, a stored
//!   pending promise is derived (`promise_status_on`, the SQL twin of
//!   `domain::promise::shown_status`).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::error::Result;

/// One site's arrears (`site_arrears`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SiteArrears {
    pub code: String,
    pub is_sensitive: bool,
    /// Tenants with at least one charge past its due date and not fully paid.
    pub tenants_in_arrears: i64,
    /// GNF outstanding on those charges.
    pub outstanding_gnf: i64,
    /// Those charges more than 60 days past their due date.
    pub charges_over_60_days: i64,
}

/// Every site's arrears, sites without arrears included (zeros).
pub async fn site_arrears(conn: &mut PgConnection) -> Result<Vec<SiteArrears>> {
    Ok(sqlx::query_as(
        "SELECT code, is_sensitive, tenants_in_arrears, outstanding_gnf,
                charges_over_60_days
         FROM site_arrears ORDER BY code",
    )
    .fetch_all(conn)
    .await?)
}

/// GNF collected per site code in [`start`, `end`): payments minus reversals by occurred_at.
/// Every site is listed, with 0 when nothing was collected.
pub async fn collected(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT s.code,
                coalesce(sum(CASE WHEN p.kind = 'payment' THEN p.amount_gnf
                                  ELSE -p.amount_gnf END), 0)::bigint
         FROM sites s
         LEFT JOIN payments p
           ON p.site_id = s.id AND p.occurred_at >= $1 AND p.occurred_at < $2
         GROUP BY s.code ORDER BY s.code",
    )
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?)
}

/// How many promises show each status on `today` (status as stored: `pending`, `kept`, ...).
/// Statuses no promise has are absent.
pub async fn promises_by_status(
    conn: &mut PgConnection,
    today: NaiveDate,
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, sum(n)::bigint FROM (
             SELECT status, count(*) AS n FROM promises WHERE status <> 'pending'
             GROUP BY status
             UNION ALL
             SELECT promise_status_on(id, $1), count(*) FROM promises WHERE status = 'pending'
             GROUP BY 1) s
         GROUP BY status ORDER BY status",
    )
    .bind(today)
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

/// Per site code: the charges due in [`today` − 365 days, `today`) and how many of them were
/// paid in full by their due date (paid in full on an Africa/Conakry day ≤ the due date).
/// Sites with no such charge are absent.
pub async fn punctuality(
    conn: &mut PgConnection,
    today: NaiveDate,
) -> Result<Vec<(String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT s.code, count(*)::bigint,
                count(*) FILTER (
                    WHERE (c.paid_in_full_at AT TIME ZONE 'Africa/Conakry')::date
                          <= c.due_date)::bigint
         FROM charges c
         JOIN tenants t ON t.id = c.tenant_id
         JOIN sites s ON s.id = t.site_id
         WHERE c.due_date < $1 AND c.due_date >= $1 - 365
         GROUP BY s.code ORDER BY s.code",
    )
    .bind(today)
    .fetch_all(conn)
    .await?)
}
