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
//! - Clusters are summed up here ([`arrears_cells`]): per cell of the zoom's grid and class of
//!   the oldest unpaid due date, count, amount and sums/extremes of the positions, so that a
//!   whole city is a few hundred rows, not 45,000. The cell index formula is that of
//!   `domain::map::cell_of` before its clamp and the classes are cut at dates given by
//!   `domain::aging` (`AgingBuckets::class_thresholds`): the domain clamps, names each class's
//!   bucket, filters by bucket and merges (`domain::map::clusters_of_sums`). Only the amount
//!   filter is applied here, per tenant, with the bound the domain gives.
//! - Serial plans (`SET LOCAL max_parallel_workers_per_gather = 0`, [`serial`]): a whole city
//!   is a scan of 100,000 narrow rows that PostgreSQL would split over parallel workers; with a
//!   few managers reading maps at once on a small server the workers only compete for the same
//!   cores. At 102,000 tenants, 4 callers, 2 cores: 26–29 calls/s serial against 22–23 with
//!   workers, alternating rounds (docs/performance.md).

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
/// `open_before_last_due` are the fields of `OpenCharges`). The last branch, the rule's
/// `ReadCharges`, sums the tenant's open charges due by the day (the SQL function
/// `tenant_owed_on`, migration `20261201010000`, costed so that the planner does not charge it
/// to every row) and runs only for the rows that reach it.
pub const OWED_SQL: &str = "CASE
        WHEN o.open_last_due <= $1 THEN o.open_gnf
        WHEN o.open_before_last_due <= $1 THEN o.open_gnf - o.open_last_gnf
        ELSE tenant_owed_on(o.tenant_id, $1)
    END";

/// The active tenants owing something on `today` (charges due by then) of the sites asked:
/// those whose home is inside the box, then those without a known home. Any order.
pub async fn arrears_homes(
    conn: &mut PgConnection,
    area: &ArrearsArea<'_>,
) -> Result<Vec<ArrearsHome>> {
    serial(conn).await?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
    push_homes(&mut qb, area);
    Ok(qb
        .build_query_as()
        .persistent(false)
        .fetch_all(conn)
        .await?)
}

/// The tenants of [`arrears_homes`] owing at least some amount, summed per cell of a grid and
/// class of their oldest unpaid due date: what a map of clusters needs.
#[derive(Debug, Clone, Copy)]
pub struct CellGrid {
    /// Side of a cell in degrees (`domain::map::cell_size_deg`).
    pub size: f64,
    /// `domain::AgingBuckets::class_thresholds` of the day.
    pub class_thresholds: [NaiveDate; 4],
    /// Tenants owing less are left out (`domain::map::ArrearsFilter::least_outstanding`).
    pub least_outstanding_gnf: i64,
}

/// The tenants of one cell and class (or without a known home, and of one class), summed.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ArrearsCell {
    /// `floor((latitude + 90) / size)` and `floor((longitude + 180) / size)`, in IEEE double
    /// arithmetic (`domain::map::CellSum`); `None` for the tenants without a known home, whose
    /// position figures are `None` as well.
    pub row: Option<i64>,
    pub col: Option<i64>,
    /// The class of their oldest unpaid due date, `width_bucket(due, class_thresholds)`: 0..=4.
    pub class: i32,
    /// >= 1.
    pub tenant_count: i64,
    pub outstanding_gnf: i64,
    /// Degrees.
    pub sum_latitude: Option<f64>,
    pub sum_longitude: Option<f64>,
    pub min_latitude: Option<f64>,
    pub min_longitude: Option<f64>,
    pub max_latitude: Option<f64>,
    pub max_longitude: Option<f64>,
}

/// [`arrears_homes`] summed up per [`ArrearsCell`] in the database: a few hundred rows for a
/// city instead of one per tenant. Errors (as the database does) when a sum of amounts
/// exceeds a `bigint`.
pub async fn arrears_cells(
    conn: &mut PgConnection,
    area: &ArrearsArea<'_>,
    grid: &CellGrid,
) -> Result<Vec<ArrearsCell>> {
    serial(conn).await?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("WITH owing AS (");
    push_homes(&mut qb, area);
    qb.push(") SELECT floor((latitude + 90) / ")
        .push_bind(grid.size)
        .push(")::bigint AS row, floor((longitude + 180) / ")
        .push_bind(grid.size)
        .push(")::bigint AS col, width_bucket(oldest_unpaid_due_date, ")
        .push_bind(grid.class_thresholds.to_vec())
        .push(
            "::date[]) AS class, count(*) AS tenant_count,
             sum(outstanding_gnf)::bigint AS outstanding_gnf,
             sum(latitude) AS sum_latitude, sum(longitude) AS sum_longitude,
             min(latitude) AS min_latitude, min(longitude) AS min_longitude,
             max(latitude) AS max_latitude, max(longitude) AS max_longitude
             FROM owing WHERE outstanding_gnf >= ",
        )
        .push_bind(grid.least_outstanding_gnf)
        .push(" GROUP BY 1, 2, 3");
    Ok(qb
        .build_query_as()
        .persistent(false)
        .fetch_all(conn)
        .await?)
}

/// No parallel workers for the rest of the transaction `conn` is in (the map's reads run in
/// one, `store::begin_read`).
async fn serial(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The statement of [`arrears_homes`]: the located branch, then the unlocated one.
fn push_homes(qb: &mut QueryBuilder<'_, Postgres>, area: &ArrearsArea<'_>) {
    push_branch(qb, area, true);
    qb.push(" UNION ALL ");
    push_branch(qb, area, false);
}

fn push_branch(qb: &mut QueryBuilder<'_, Postgres>, area: &ArrearsArea<'_>, located: bool) {
    // `$1` is the day in both branches: bound once, by the first, which is the first bind of
    // every statement here.
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
