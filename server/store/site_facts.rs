//! SQL of the site dashboards (GetSummary, ListSites): the raw rows of charges, allocations,
//! payments, promises, missions, agents and unresolved alerts, grouped per site and day
//! (`domain::dashboard::SiteFacts`); the figures are the domain's.
//!
//! Decisions:
//! - `site_ids` `None` reads every site; otherwise only those sites' rows.
//! - A tenant belongs to the site they rent on (`tenants.site_id`); money collected to the
//!   site of the payment row (a reversal carries the site of the payment it cancels).
//! - Paid by the due date is the rule of `store::dashboard::charge_facts`: allocations of
//!   payments that occurred by the end of the due date (Africa/Conakry), a reversal's dated by
//!   the payment it cancels, clamped to the amount due. Only a charge fully paid now can have
//!   been paid in full by its due date (what was paid later and not reversed is never
//!   negative), so the allocations of the other charges are not read.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::error::Result;
use crate::domain::dashboard::{
    AlertCounts, CollectedDay, DueGroup, MissionCounts, OldestOverdue, OverdueGroup, PromiseFigures,
};

/// A site as the dashboards show it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SiteRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub address: String,
    pub commune: String,
    pub latitude: f64,
    pub longitude: f64,
    pub is_sensitive: bool,
}

/// The sites of `site_ids` (`None`: all), by name then id.
pub async fn sites(conn: &mut PgConnection, site_ids: Option<&[Uuid]>) -> Result<Vec<SiteRow>> {
    Ok(sqlx::query_as(
        "SELECT id, code, name, kind, address, commune, latitude, longitude, is_sensitive
         FROM sites WHERE ($1::uuid[] IS NULL OR id = ANY($1))
         ORDER BY name, id",
    )
    .bind(site_ids)
    .fetch_all(conn)
    .await?)
}

/// Charges with something outstanding due before `today`, per site and due date; and the
/// tenants per site and due date of their oldest such charge.
pub async fn overdue(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    today: NaiveDate,
) -> Result<(Vec<OverdueGroup>, Vec<OldestOverdue>)> {
    let rows = sqlx::query(
        "WITH open AS (
             SELECT t.site_id, c.tenant_id, c.due_date,
                    c.amount_due_gnf - c.amount_paid_gnf AS outstanding
             FROM charges c JOIN tenants t ON t.id = c.tenant_id
             WHERE c.amount_paid_gnf < c.amount_due_gnf AND c.due_date < $2
               AND ($1::uuid[] IS NULL OR t.site_id = ANY($1))
         ), by_day AS (
             SELECT site_id, due_date, sum(outstanding)::bigint AS outstanding,
                    count(*) AS charges, 0::bigint AS tenants
             FROM open GROUP BY site_id, due_date
         ), oldest AS (
             SELECT site_id, oldest AS due_date, 0::bigint AS outstanding, 0::bigint AS charges,
                    count(*) AS tenants
             FROM (SELECT site_id, tenant_id, min(due_date) AS oldest
                   FROM open GROUP BY site_id, tenant_id) x
             GROUP BY site_id, oldest
         )
         SELECT * FROM by_day UNION ALL SELECT * FROM oldest",
    )
    .bind(site_ids)
    .bind(today)
    .fetch_all(conn)
    .await?;
    let mut groups = Vec::new();
    let mut oldest = Vec::new();
    for row in rows {
        let site_id: Uuid = row.try_get("site_id")?;
        let due_date: NaiveDate = row.try_get("due_date")?;
        let tenants: i64 = row.try_get("tenants")?;
        if tenants > 0 {
            oldest.push(OldestOverdue {
                site_id,
                oldest_due_date: due_date,
                tenant_count: tenants,
            });
        } else {
            groups.push(OverdueGroup {
                site_id,
                due_date,
                outstanding_gnf: row.try_get("outstanding")?,
                charge_count: row.try_get("charges")?,
            });
        }
    }
    Ok((groups, oldest))
}

/// Charges asking something due in `from..=to`, per site and due date: due, paid now, how
/// many, how many paid in full by their due date.
pub async fn due(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DueGroup>> {
    let rows = sqlx::query(
        "SELECT t.site_id, c.due_date,
                sum(c.amount_due_gnf)::bigint AS due,
                sum(least(c.amount_paid_gnf, c.amount_due_gnf))::bigint AS paid,
                count(*) AS charges,
                count(*) FILTER (WHERE c.amount_paid_gnf = c.amount_due_gnf AND (
                    SELECT coalesce(sum(pa.amount_gnf), 0)
                    FROM payment_allocations pa
                    JOIN payments p ON p.id = pa.payment_id
                    LEFT JOIN payments o ON o.id = p.reverses_payment_id
                    WHERE pa.charge_id = c.id
                      AND (coalesce(o.occurred_at, p.occurred_at)
                           AT TIME ZONE 'Africa/Conakry')::date <= c.due_date
                ) >= c.amount_due_gnf) AS on_time
         FROM charges c JOIN tenants t ON t.id = c.tenant_id
         WHERE c.amount_due_gnf > 0 AND c.due_date BETWEEN $2 AND $3
           AND ($1::uuid[] IS NULL OR t.site_id = ANY($1))
         GROUP BY t.site_id, c.due_date",
    )
    .bind(site_ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(DueGroup {
                site_id: row.try_get("site_id")?,
                due_date: row.try_get("due_date")?,
                due_gnf: row.try_get("due")?,
                paid_gnf: row.try_get("paid")?,
                charge_count: row.try_get("charges")?,
                on_time_count: row.try_get("on_time")?,
            })
        })
        .collect()
}

/// Money received per site and Africa/Conakry day for `from <= occurred_at < to`: payments
/// minus the reversals that occurred that day.
pub async fn collected(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CollectedDay>> {
    let rows = sqlx::query(
        "SELECT p.site_id, (p.occurred_at AT TIME ZONE 'Africa/Conakry')::date AS day,
                sum(CASE WHEN p.kind = 'payment' THEN p.amount_gnf ELSE -p.amount_gnf END)::bigint
                    AS collected
         FROM payments p
         WHERE p.occurred_at >= $2 AND p.occurred_at < $3
           AND ($1::uuid[] IS NULL OR p.site_id = ANY($1))
         GROUP BY 1, 2",
    )
    .bind(site_ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CollectedDay {
                site_id: row.try_get("site_id")?,
                day: row.try_get("day")?,
                collected_gnf: row.try_get("collected")?,
            })
        })
        .collect()
}

/// Promises per site: pending now, and kept or broken with a status change at or after
/// `month_from`.
pub async fn promises(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    month_from: DateTime<Utc>,
) -> Result<Vec<(Uuid, PromiseFigures)>> {
    let rows = sqlx::query(
        "SELECT t.site_id,
                count(*) FILTER (WHERE pr.status = 'pending') AS pending,
                coalesce(sum(pr.amount_gnf) FILTER (WHERE pr.status = 'pending'), 0)::bigint
                    AS pending_gnf,
                count(*) FILTER (WHERE pr.status = 'kept') AS kept,
                count(*) FILTER (WHERE pr.status = 'broken') AS broken
         FROM promises pr JOIN tenants t ON t.id = pr.tenant_id
         WHERE (pr.status = 'pending'
                OR (pr.status IN ('kept', 'broken') AND pr.status_changed_at >= $2))
           AND ($1::uuid[] IS NULL OR t.site_id = ANY($1))
         GROUP BY t.site_id",
    )
    .bind(site_ids)
    .bind(month_from)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("site_id")?,
                PromiseFigures {
                    pending_count: row.try_get("pending")?,
                    pending_gnf: row.try_get("pending_gnf")?,
                    kept_count: row.try_get("kept")?,
                    broken_count: row.try_get("broken")?,
                },
            ))
        })
        .collect()
}

/// Missions of `day` per site, by status.
pub async fn missions(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    day: NaiveDate,
) -> Result<Vec<(Uuid, MissionCounts)>> {
    let rows = sqlx::query(
        "SELECT site_id,
                count(*) FILTER (WHERE status <> 'cancelled') AS planned,
                count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
                count(*) FILTER (WHERE status = 'done') AS done,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'cancelled') AS cancelled
         FROM missions
         WHERE mission_date = $2 AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY site_id",
    )
    .bind(site_ids)
    .bind(day)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("site_id")?,
                MissionCounts {
                    planned: row.try_get("planned")?,
                    in_progress: row.try_get("in_progress")?,
                    done: row.try_get("done")?,
                    failed: row.try_get("failed")?,
                    cancelled: row.try_get("cancelled")?,
                },
            ))
        })
        .collect()
}

/// Enabled agents working on the sites, with those of their sites that are among `site_ids`.
pub async fn agents(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, Vec<Uuid>)>> {
    let rows = sqlx::query(
        "SELECT u.id, array_agg(us.site_id ORDER BY us.site_id) AS site_ids
         FROM users u JOIN user_sites us ON us.user_id = u.id
         WHERE u.role_id = 'agent' AND NOT u.disabled
           AND ($1::uuid[] IS NULL OR us.site_id = ANY($1))
         GROUP BY u.id",
    )
    .bind(site_ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("site_ids")?)))
        .collect()
}

/// Active tenants per site.
pub async fn tenants(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, i64)>> {
    let rows = sqlx::query(
        "SELECT site_id, count(*) AS n FROM tenants
         WHERE active AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY site_id",
    )
    .bind(site_ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("site_id")?, row.try_get("n")?)))
        .collect()
}

/// Unresolved alerts (open or acknowledged) per site, and how many of them are critical.
pub async fn alerts(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, AlertCounts)>> {
    let rows = sqlx::query(
        "SELECT site_id, count(*) AS unresolved,
                count(*) FILTER (WHERE severity = 'critical') AS critical
         FROM alerts
         WHERE state <> 'resolved' AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY site_id",
    )
    .bind(site_ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("site_id")?,
                AlertCounts {
                    unresolved: row.try_get("unresolved")?,
                    critical: row.try_get("critical")?,
                },
            ))
        })
        .collect()
}
