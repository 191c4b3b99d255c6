//! SQL of the arrears map: the active tenants in arrears of some sites, inside a box or
//! without a known home, with their outstanding amount and the due date of their oldest unpaid
//! charge (one row per tenant).
//!
//! Decisions:
//! - The per-tenant figures are those of the tenant card (`store::tenants::cards`): the sum of
//!   `amount_due_gnf - amount_paid_gnf` over the unpaid charges due on or before the day, and
//!   the earliest of their due dates. They agree with `domain::arrears` on the same charges
//!   (the integration tests check it on generated data); the bucket is derived from the due
//!   date by `domain::aging`, not here.
//! - Located tenants are selected with `point(longitude, latitude) <@ box(...)`, which the
//!   GiST index `tenants_home_point_idx` serves; tenants without a home come from a second
//!   branch (they are counted, not drawn).

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
    /// Only tenants owing at least this much (the rest of the filter is the caller's).
    pub min_outstanding_gnf: i64,
    pub today: NaiveDate,
}

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
    Ok(qb.build_query_as().fetch_all(conn).await?)
}

fn push_branch(qb: &mut QueryBuilder<'_, Postgres>, area: &ArrearsArea<'_>, located: bool) {
    qb.push(
        "(SELECT t.id AS tenant_id, t.site_id, t.home_latitude AS latitude,
                 t.home_longitude AS longitude, o.outstanding_gnf, o.oldest_unpaid_due_date
          FROM tenants t
          CROSS JOIN LATERAL (
              SELECT coalesce(sum(c.amount_due_gnf - c.amount_paid_gnf), 0)::bigint
                         AS outstanding_gnf,
                     min(c.due_date) AS oldest_unpaid_due_date
              FROM charges c
              WHERE c.tenant_id = t.id
                AND c.amount_paid_gnf < c.amount_due_gnf
                AND c.due_date <= ",
    )
    .push_bind(area.today)
    .push(") o WHERE t.active AND o.outstanding_gnf > 0 AND o.outstanding_gnf >= ")
    .push_bind(area.min_outstanding_gnf);
    if let Some(site_ids) = area.site_ids {
        qb.push(" AND t.site_id = ANY(")
            .push_bind(site_ids.to_vec())
            .push(")");
    }
    if located {
        qb.push(" AND t.home_latitude IS NOT NULL");
        if let Some((south, west, north, east)) = area.bounds {
            qb.push(" AND point(t.home_longitude, t.home_latitude) <@ box(point(")
                .push_bind(west)
                .push(", ")
                .push_bind(south)
                .push("), point(")
                .push_bind(east)
                .push(", ")
                .push_bind(north)
                .push("))");
        }
    } else {
        qb.push(" AND t.home_latitude IS NULL");
    }
    qb.push(")");
}
