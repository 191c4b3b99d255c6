//! The arrears map (ListArrearsMarkers): the tenants in arrears the caller may see, inside a
//! box and/or of some sites, one marker each, or grid clusters when there are too many.
//!
//! Decisions:
//! - In arrears: an active tenant owing something on charges due by today — the tenant card's
//!   and SearchTenants' `only_in_arrears` notion. Days overdue and bucket are those of the
//!   oldest unpaid charge, from `domain::aging` (the arrears rule's home); a charge due today
//!   is owed but not yet overdue (bucket unset).
//! - Scope as in the other lists: the `site_ids` asked are cut to the caller's sites, silently
//!   (a site outside them just shows nothing); no `site_ids`: every site in scope.
//! - Markers come with the card's details (name, unit, last call or visit, pending promise,
//!   broken promises in the last 12 months), read only when markers are answered: clusters
//!   need nothing but position, amount and bucket.
//! - Every figure comes from one read-only snapshot.
//! - The database sums the tenants per cell of the zoom's grid and class of oldest due date
//!   first (`store::markers::arrears_cells`, a few hundred rows for a city of 45,000 tenants in
//!   arrears); the domain names the buckets, applies the bucket filter and merges the cells
//!   (`domain::map::clusters_of_sums`). The totals and the choice between markers and
//!   clusters come from these sums; only when markers are answered are the tenants read one
//!   row each, then their cards.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::tenants::cards;
use super::{AppError, sites_in_scope};
use crate::auth::caller::Caller;
use crate::domain::map::{
    ArrearsFilter, CellSum, Cluster, GeoBox, MapPoint, MaxMarkers, Zoom, cell_size_deg,
    clusters_of_sums,
};
use crate::domain::{AgingBuckets, Bucket, Gnf, LatLng, Overdue};
use crate::store::begin_read;
use crate::store::markers::{self as store, ArrearsArea, ArrearsCell, CellGrid};

/// A map request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MapQuery {
    /// `None`: anywhere.
    pub bounds: Option<GeoBox>,
    /// `None`: every site in the caller's scope.
    pub site_ids: Option<Vec<Uuid>>,
    pub zoom: Zoom,
    pub filter: ArrearsFilter,
    pub max_markers: MaxMarkers,
}

/// One tenant in arrears on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub tenant_id: Uuid,
    pub full_name: String,
    pub site_id: Uuid,
    pub unit: String,
    pub at: LatLng,
    pub outstanding: Gnf,
    /// Of the oldest unpaid charge.
    pub overdue: Overdue,
    /// When the last call or visit occurred.
    pub last_contact: Option<DateTime<Utc>>,
    pub has_pending_promise: bool,
    pub broken_promise_count: i64,
}

/// What the map draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Largest outstanding first (then by tenant id).
    Markers(Vec<Marker>),
    /// Non-empty cells of `cell_size_deg` degrees (`domain::map::clusters`).
    Clusters {
        clusters: Vec<Cluster>,
        cell_size_deg: f64,
    },
}

/// The answer: the layer and the totals of the tenants on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrearsMap {
    pub layer: Layer,
    /// Tenants on the map (located, matching every filter).
    pub tenant_count: i64,
    pub outstanding: Gnf,
    /// Tenants matching the filters but the box, without a known home.
    pub unlocated_tenant_count: i64,
}

/// The arrears map of `query` as the caller may see it, on `today` (see the module's
/// decisions). Markers when at most `max_markers` tenants match, else clusters. Errors when an
/// amount overflows (`bigint` in the database, `Gnf` here).
pub async fn arrears_map(
    pool: &PgPool,
    caller: &Caller,
    query: &MapQuery,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<ArrearsMap, AppError> {
    let Some(site_ids) = sites_in_scope(&caller.scope(), query.site_ids.as_deref()) else {
        return Ok(ArrearsMap {
            layer: Layer::Markers(Vec::new()),
            tenant_count: 0,
            outstanding: Gnf::ZERO,
            unlocated_tenant_count: 0,
        });
    };
    let area = ArrearsArea {
        site_ids: site_ids.as_deref(),
        bounds: query.bounds.map(|b| {
            let (sw, ne) = (b.south_west(), b.north_east());
            (sw.latitude(), sw.longitude(), ne.latitude(), ne.longitude())
        }),
        today,
    };
    let size = cell_size_deg(query.zoom);
    let mut tx = begin_read(pool).await?;
    let cells = store::arrears_cells(
        &mut tx,
        &area,
        &CellGrid {
            size,
            class_thresholds: aging.class_thresholds(today),
            least_outstanding_gnf: query.filter.least_outstanding().francs(),
        },
    )
    .await?;
    let mut sums = Vec::with_capacity(cells.len());
    let mut unlocated_tenant_count = 0;
    for cell in cells {
        let bucket = aging.bucket_of_class(cell.class, today);
        if !query.filter.keeps_bucket(bucket) {
            continue;
        }
        match cell_sum(&cell, bucket) {
            Some(sum) => sums.push(sum),
            None => unlocated_tenant_count += cell.tenant_count,
        }
    }
    let tenant_count: i64 = sums.iter().map(|s| s.tenant_count).sum();
    let outstanding = Gnf::checked_sum(sums.iter().map(|s| s.outstanding))?;
    let totals = |layer| ArrearsMap {
        layer,
        tenant_count,
        outstanding,
        unlocated_tenant_count,
    };
    if usize::try_from(tenant_count).map_err(AppError::internal)? > query.max_markers.get() {
        return Ok(totals(Layer::Clusters {
            clusters: clusters_of_sums(sums, size)?,
            cell_size_deg: size,
        }));
    }
    let markers = markers(&mut tx, &area, query, today, aging).await?;
    Ok(totals(Layer::Markers(markers)))
}

/// A located cell's figures for the domain; `None` for the tenants without a known home.
fn cell_sum(cell: &ArrearsCell, bucket: Option<Bucket>) -> Option<CellSum> {
    Some(CellSum {
        row: cell.row?,
        col: cell.col?,
        bucket,
        tenant_count: cell.tenant_count,
        outstanding: Gnf::new(cell.outstanding_gnf),
        sum_latitude: cell.sum_latitude?,
        sum_longitude: cell.sum_longitude?,
        min: (cell.min_latitude?, cell.min_longitude?),
        max: (cell.max_latitude?, cell.max_longitude?),
    })
}

/// The markers of `area` kept by the query's filter, largest outstanding first, with the card's
/// details.
async fn markers(
    tx: &mut PgConnection,
    area: &ArrearsArea<'_>,
    query: &MapQuery,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<Marker>, AppError> {
    let homes = store::arrears_homes(tx, area).await?;
    let mut located: Vec<(Uuid, MapPoint, Overdue)> = Vec::new();
    for home in &homes {
        let outstanding = Gnf::new(home.outstanding_gnf);
        let overdue = aging.overdue(home.oldest_unpaid_due_date, today);
        if !query.filter.keeps(outstanding, overdue.bucket) {
            continue;
        }
        let at = match (home.latitude, home.longitude) {
            (Some(latitude), Some(longitude)) => LatLng::parse(latitude, longitude).ok(),
            _ => None,
        };
        if let Some(at) = at.filter(|at| query.bounds.is_none_or(|b| b.contains(*at))) {
            located.push((
                home.tenant_id,
                MapPoint {
                    at,
                    outstanding,
                    bucket: overdue.bucket,
                },
                overdue,
            ));
        }
    }
    located.sort_by(|a, b| {
        b.1.outstanding
            .cmp(&a.1.outstanding)
            .then_with(|| a.0.cmp(&b.0))
    });
    let ids: Vec<Uuid> = located.iter().map(|(id, _, _)| *id).collect();
    let mut details: HashMap<Uuid, _> = cards(tx, &ids, today, aging)
        .await?
        .into_iter()
        .map(|card| (card.row.id, card))
        .collect();
    Ok(located
        .into_iter()
        .filter_map(|(id, point, overdue)| {
            let card = details.remove(&id)?;
            Some(Marker {
                tenant_id: id,
                full_name: card.row.full_name,
                site_id: card.row.site_id,
                unit: card.row.unit,
                at: point.at,
                outstanding: point.outstanding,
                overdue,
                last_contact: card.last_interaction.map(|i| i.occurred_at),
                has_pending_promise: card.pending_promise.is_some(),
                broken_promise_count: card.row.broken_promise_count,
            })
        })
        .collect())
}
