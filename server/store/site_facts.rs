//! SQL of the site dashboards (GetSummary, ListSites): the raw rows of charges, allocations,
//! payments, promises, missions, agents and unresolved alerts, grouped per site and day
//! (`domain::dashboard::SiteFacts`); the figures are the domain's.
//!
//! Decisions:
//! - `site_ids` `None` reads every site; otherwise only those sites' rows. The sums per day
//!   are per site, or over all the sites read when the caller does not tell sites apart
//!   ([`Grouping`]): a company-wide summary then reads a row per day instead of thousands.
//! - A tenant belongs to the site they rent on (`tenants.site_id`); money collected to the
//!   site of the payment row (a reversal carries the site of the payment it cancels).
//! - Charges, arrears and money collected are read from the site figures the writes keep
//!   (migration `20261130202000_site_figures.sql`, ADR 0011): `due_days` (per site, due date
//!   and tenant shard), `arrears_oldest`, `collected_days`, `paid_months`, `promise_days`,
//!   `site_tenants`; a read sums a few
//!   rows per site and day whatever the number of tenants. Paid by the due date is the rule of
//!   `store::dashboard::charge_facts` (allocations of payments that occurred by the end of the
//!   due date, Africa/Conakry, a reversal's dated by the payment it cancels), kept per charge as
//!   `charges.paid_on_time`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::error::Result;
use crate::domain::dashboard::{
    AlertCounts, ArrearsCorrection, CollectedDay, DueGroup, MissionCounts, OldestOverdue,
    OverdueGroup, PaidMonth, PromiseFigures, TrendCut,
};

/// How the sums of [`charges`], [`oldest_overdue`] and [`collected`] are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One group per site and day (ListSites, GetSite, the alerts).
    PerSite,
    /// The sites read added together, one group per day, whose `site_id` is the nil id
    /// (GetSummary: a company has hundreds of sites, and the summary does not tell them apart).
    Together,
}

impl Grouping {
    fn per_site(self) -> bool {
        self == Grouping::PerSite
    }
}

/// The site id of a row grouped by [`Grouping`] (`NULL`, read as the nil id, when together).
fn group_site(row: &sqlx::postgres::PgRow) -> Result<Uuid> {
    Ok(row
        .try_get::<Option<Uuid>, _>("site_id")?
        .unwrap_or_default())
}

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

/// The charges of the sites per site and due date, read in one scan of `due_days`:
/// - those with something outstanding due before `today` (arrears);
/// - those asking something due in `from..=to` (due, paid now, how many, how many paid in full
///   by their due date).
pub async fn charges(
    conn: &mut PgConnection,
    (site_ids, grouping): (Option<&[Uuid]>, Grouping),
    today: NaiveDate,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<(Vec<OverdueGroup>, Vec<DueGroup>)> {
    let rows = sqlx::query(
        "SELECT CASE WHEN $5 THEN site_id END AS site_id, due_date,
                sum(due_gnf)::bigint AS due, sum(paid_gnf)::bigint AS paid,
                sum(charges)::bigint AS charges, sum(on_time)::bigint AS on_time,
                sum(open_charges)::bigint AS open_charges
         FROM due_days
         WHERE (due_date < $2 OR due_date BETWEEN $3 AND $4)
           AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY 1, 2",
    )
    .bind(site_ids)
    .bind(today)
    .bind(from)
    .bind(to)
    .bind(grouping.per_site())
    .fetch_all(conn)
    .await?;
    let (mut overdue, mut due) = (Vec::new(), Vec::new());
    for row in rows {
        let site_id = group_site(&row)?;
        let due_date: NaiveDate = row.try_get("due_date")?;
        let due_gnf: i64 = row.try_get("due")?;
        let paid_gnf: i64 = row.try_get("paid")?;
        let charge_count: i64 = row.try_get("charges")?;
        let open_charges: i64 = row.try_get("open_charges")?;
        if due_date < today && open_charges > 0 {
            overdue.push(OverdueGroup {
                site_id,
                due_date,
                outstanding_gnf: due_gnf - paid_gnf,
                charge_count: open_charges,
            });
        }
        if (from..=to).contains(&due_date) && charge_count > 0 {
            due.push(DueGroup {
                site_id,
                due_date,
                due_gnf,
                paid_gnf,
                charge_count,
                on_time_count: row.try_get("on_time")?,
            });
        }
    }
    Ok((overdue, due))
}

/// The tenants per site and due date of their oldest charge with something outstanding, when
/// it fell due before `today`.
pub async fn oldest_overdue(
    conn: &mut PgConnection,
    (site_ids, grouping): (Option<&[Uuid]>, Grouping),
    today: NaiveDate,
) -> Result<Vec<OldestOverdue>> {
    let rows = sqlx::query(
        "SELECT CASE WHEN $3 THEN site_id END AS site_id, due_date,
                sum(tenants)::bigint AS tenants
         FROM arrears_oldest
         WHERE due_date < $2 AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY 1, 2
         HAVING sum(tenants) > 0",
    )
    .bind(site_ids)
    .bind(today)
    .bind(grouping.per_site())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(OldestOverdue {
                site_id: group_site(&row)?,
                oldest_due_date: row.try_get("due_date")?,
                tenant_count: row.try_get("tenants")?,
            })
        })
        .collect()
}

/// Money received per site and Africa/Conakry day for `from..=to`: payments minus the
/// reversals that occurred that day.
pub async fn collected(
    conn: &mut PgConnection,
    (site_ids, grouping): (Option<&[Uuid]>, Grouping),
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<CollectedDay>> {
    let rows = sqlx::query(
        "SELECT CASE WHEN $4 THEN site_id END AS site_id, day,
                sum(collected_gnf)::bigint AS collected
         FROM collected_days
         WHERE day BETWEEN $2 AND $3 AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY 1, 2",
    )
    .bind(site_ids)
    .bind(from)
    .bind(to)
    .bind(grouping.per_site())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CollectedDay {
                site_id: group_site(&row)?,
                day: row.try_get("day")?,
                collected_gnf: row.try_get("collected")?,
            })
        })
        .collect()
}

/// The allocation rows of one site's charges per due date and Africa/Conakry month of the
/// entry (reversal rows negative), every due date and month.
pub async fn paid_months(conn: &mut PgConnection, site_id: Uuid) -> Result<Vec<PaidMonth>> {
    let rows = sqlx::query(
        "SELECT due_date, month, sum(paid_gnf)::bigint AS paid
         FROM paid_months WHERE site_id = $1
         GROUP BY 1, 2",
    )
    .bind(site_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(PaidMonth {
                due_date: row.try_get("due_date")?,
                month: row.try_get("month")?,
                paid_gnf: row.try_get("paid")?,
            })
        })
        .collect()
}

/// What to add to `site_id`'s arrears at the end of each trend month for its tenants with a
/// payment made before the month's end and reversed after it (SQL `arrears_reversed_later`,
/// migration `20261202010000`); months with nothing to add are left out.
pub async fn arrears_reversed_later(
    conn: &mut PgConnection,
    site_id: Uuid,
    cuts: &[TrendCut],
) -> Result<Vec<ArrearsCorrection>> {
    let days: Vec<NaiveDate> = cuts.iter().map(|c| c.cut).collect();
    let until: Vec<DateTime<Utc>> = cuts.iter().map(|c| c.until).collect();
    let rows = sqlx::query(
        "SELECT ($1::date[])[a.moment] AS month, a.correction_gnf AS gnf
         FROM arrears_reversed_later($2, $3, ARRAY[$4::uuid]) a",
    )
    .bind(cuts.iter().map(|c| c.month).collect::<Vec<NaiveDate>>())
    .bind(days)
    .bind(until)
    .bind(site_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ArrearsCorrection {
                month: row.try_get("month")?,
                gnf: row.try_get("gnf")?,
            })
        })
        .collect()
}

/// The tenants of `site_id` owing the most on charges due before `today` (the site's arrears),
/// largest first, ties by name then id: (tenant, arrears GNF), at most `limit`.
pub async fn top_debtors(
    conn: &mut PgConnection,
    site_id: Uuid,
    today: NaiveDate,
    limit: i64,
) -> Result<Vec<(Uuid, i64)>> {
    let rows = sqlx::query(
        "SELECT t.id, sum(c.amount_due_gnf - c.amount_paid_gnf)::bigint AS arrears
         FROM tenant_oldest_open o
         JOIN tenants t ON t.id = o.tenant_id
         JOIN charges c ON c.tenant_id = o.tenant_id
         WHERE o.site_id = $1 AND o.oldest_due < $2
           AND c.amount_paid_gnf < c.amount_due_gnf AND c.due_date < $2
         GROUP BY t.id, t.full_name
         ORDER BY arrears DESC, t.full_name, t.id
         LIMIT $3",
    )
    .bind(site_id)
    .bind(today)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("arrears")?)))
        .collect()
}

/// Today's missions of `site_id` per agent, by status.
pub async fn missions_by_agent(
    conn: &mut PgConnection,
    site_id: Uuid,
    day: NaiveDate,
) -> Result<Vec<(Uuid, MissionCounts)>> {
    let rows = sqlx::query(
        "SELECT agent_id,
                count(*) FILTER (WHERE status <> 'cancelled') AS planned,
                count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
                count(*) FILTER (WHERE status = 'done') AS done,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'cancelled') AS cancelled
         FROM missions
         WHERE mission_date = $2 AND site_id = $1
         GROUP BY agent_id",
    )
    .bind(site_id)
    .bind(day)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("agent_id")?, mission_counts(&row)?)))
        .collect()
}

fn mission_counts(row: &sqlx::postgres::PgRow) -> Result<MissionCounts> {
    Ok(MissionCounts {
        planned: row.try_get("planned")?,
        in_progress: row.try_get("in_progress")?,
        done: row.try_get("done")?,
        failed: row.try_get("failed")?,
        cancelled: row.try_get("cancelled")?,
    })
}

/// Promises per site: pending now, and kept or broken with a status change on or after
/// `month_from` (an Africa/Conakry day).
pub async fn promises(
    conn: &mut PgConnection,
    site_ids: Option<&[Uuid]>,
    month_from: NaiveDate,
) -> Result<Vec<(Uuid, PromiseFigures)>> {
    let rows = sqlx::query(
        "SELECT site_id,
                coalesce(sum(promises) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
                coalesce(sum(amount_gnf) FILTER (WHERE status = 'pending'), 0)::bigint
                    AS pending_gnf,
                coalesce(sum(promises) FILTER (WHERE status = 'kept'), 0)::bigint AS kept,
                coalesce(sum(promises) FILTER (WHERE status = 'broken'), 0)::bigint AS broken
         FROM promise_days
         WHERE (status = 'pending' OR (status IN ('kept', 'broken') AND changed_on >= $2))
           AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         GROUP BY site_id",
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
        .map(|row| Ok((row.try_get("site_id")?, mission_counts(&row)?)))
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
        "SELECT site_id, active AS n FROM site_tenants
         WHERE active <> 0 AND ($1::uuid[] IS NULL OR site_id = ANY($1))",
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
