//! SQL of the arrears map: the active tenants in arrears of some sites, inside a box or
//! without a known home, with their outstanding amount and the due date of their oldest unpaid
//! charge (one row per tenant).
//!
//! Decisions:
//! - The figures come from the read model `tenant_open` (migration `20261130213000`, ADR 0011):
//!   one narrow row per tenant summing up its open charges, kept by statement-level triggers on
//!   `charges`, with copies of the tenant's site, status and home. What a tenant owes on the day
//!   is [`OWED_SQL`], the SQL mirror of `domain::arrears::OpenCharges::owed_on`; only in that
//!   rule's rare `ReadCharges` case (two open due dates or more after the day) does it sum the
//!   tenant's charges. The figures are those of `domain::arrears` on the same charges (unit
//!   proptest for the rule, integration tests for the SQL); the bucket is derived from the due
//!   date by `domain::aging`, not here.
//! - A tenant is in arrears on the day exactly when its earliest open due date is on or before
//!   it (every open charge has something outstanding), a plain column filter.
//! - The box is given as ranges of latitude and longitude, served by the partial index
//!   `tenant_open_home_idx` for a street and read in sequence for a whole city: the planner
//!   tells them apart by the columns' statistics. Statements are not prepared (`persistent
//!   (false)`) so that each is planned for its own box, never once for every box.
//! - Tenants without a home come from a second branch (they are counted, not drawn).

use chrono::NaiveDate;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::error::Result;

/// One tenant in arrears, as the map reads it.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ArrearsHome {
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    /// Degrees; both `None` when the home is unknown.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// > 0.
    pub outstanding_gnf: i64,
    pub oldest_unpaid_due_date: NaiveDate,
}

/// What the map asks the database.
#[derive(Debug, Clone, Copy)]
pub struct ArrearsArea<'a> {
    /// `None`: every site.
    pub site_ids: Option<&'a [Uuid]>,
    /// (south, west, north, east) in degrees; `None`: anywhere.
    pub bounds: Option<(f64, f64, f64, f64)>,
    pub today: NaiveDate,
}

/// What the tenant of the `tenant_open` row `o` owes on the day bound as `$1`, when its earliest
/// open due date is on or before it: `domain::arrears::OpenCharges::owed_on`, in SQL (the
/// columns `open_gnf`, `open_first_due`, `open_last_due`, `open_last_gnf`,
/// `open_before_last_due` are the fields of `OpenCharges`). The scalar subquery of the last
/// branch, the rule's `ReadCharges`, runs only for the rows that reach it.
pub const OWED_SQL: &str = "CASE
        WHEN o.open_last_due <= $1 THEN o.open_gnf
        WHEN o.open_before_last_due <= $1 THEN o.open_gnf - o.open_last_gnf
        ELSE (SELECT coalesce(sum(c.amount_due_gnf - c.amount_paid_gnf), 0)
              FROM charges c
              WHERE c.tenant_id = o.tenant_id AND c.amount_paid_gnf < c.amount_due_gnf
                AND c.due_date <= $1)::bigint
    END";

/// The active tenants owing something on `today` (charges due by then) of the sites asked:
/// those whose home is inside the box, then those without a known home. Any order.
pub async fn arrears_homes(
    conn: &mut PgConnection,
    area: &ArrearsArea<'_>,
) -> Result<Vec<ArrearsHome>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
    push_branch(&mut qb, area, true);
    qb.push(" UNION ALL ");
    push_branch(&mut qb, area, false);
    Ok(qb
        .build_query_as()
        .persistent(false)
        .fetch_all(conn)
        .await?)
}

fn push_branch(qb: &mut QueryBuilder<'_, Postgres>, area: &ArrearsArea<'_>, located: bool) {
    // `$1` is the day in both branches: bound once, by the first.
    qb.push(format_args!(
        "(SELECT o.tenant_id, o.site_id, o.home_latitude AS latitude,
                 o.home_longitude AS longitude, {OWED_SQL} AS outstanding_gnf,
                 o.open_first_due AS oldest_unpaid_due_date
          FROM tenant_open o
          WHERE o.active AND o.open_gnf > 0 AND o.open_first_due <= "
    ));
    if located {
        qb.push_bind(area.today);
    } else {
        qb.push("$1");
    }
    if let Some(site_ids) = area.site_ids {
        qb.push(" AND o.site_id = ANY(")
            .push_bind(site_ids.to_vec())
            .push(")");
    }
    if located {
        qb.push(" AND o.home_latitude IS NOT NULL");
        if let Some((south, west, north, east)) = area.bounds {
            qb.push(" AND o.home_latitude BETWEEN ")
                .push_bind(south)
                .push(" AND ")
                .push_bind(north)
                .push(" AND o.home_longitude BETWEEN ")
                .push_bind(west)
                .push(" AND ")
                .push_bind(east);
        }
    } else {
        qb.push(" AND o.home_latitude IS NULL");
    }
    qb.push(")");
}
