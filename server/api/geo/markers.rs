//! ListArrearsMarkers: the request parsed into an `app::map::MapQuery` (INVALID_ARGUMENT naming
//! every bad field), the map read by `app::map`, and the answer turned into markers or clusters.
//!
//! Decisions:
//! - `bounds` unset: anywhere; set, both corners are required, valid, and south-west of each
//!   other (a box across the antimeridian is refused, as `common.proto` says).
//! - `site_ids` outside the caller's scope are left out silently, as in SearchTenants and
//!   GetDailyStats.

use tonic::Request;

use super::convert::{location, to_location};
use crate::api::collections::wire;
use crate::api::convert::timestamp;
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, today};
use crate::app::map::{self as app, Layer, MapQuery};
use crate::auth::caller::Caller;
use crate::domain::map::{ArrearsFilter, GeoBox, MaxMarkers, Zoom};
use crate::domain::{AgingBuckets, Gnf};
use crate::proto::v1 as pb;
use crate::state::AppState;

const SITE_IDS_MAX: usize = 200;

pub(super) async fn list_arrears_markers(
    state: &AppState,
    request: &Request<pb::ListArrearsMarkersRequest>,
) -> Result<pb::ListArrearsMarkersResponse, ApiError> {
    let caller = Caller::of(request)?;
    let query = parse_query(request.get_ref())?;
    let aging = AgingBuckets::parse(&state.collections.aging_bounds).map_err(ApiError::internal)?;
    let map = app::arrears_map(&state.pool, caller, &query, today(), &aging).await?;
    Ok(pb::ListArrearsMarkersResponse {
        layer: Some(layer(map.layer)),
        tenant_count: map.tenant_count,
        outstanding_gnf: map.outstanding.francs(),
        unlocated_tenant_count: map.unlocated_tenant_count,
    })
}

/// The request's filters, every bad field reported at once.
pub fn parse_query(message: &pb::ListArrearsMarkersRequest) -> Result<MapQuery, ApiError> {
    let mut v = Violations::new();
    let bounds = match &message.bounds {
        None => Some(None),
        Some(b) => {
            let south_west = v.absorb(location("bounds.south_west", b.south_west.as_ref()));
            let north_east = v.absorb(location("bounds.north_east", b.north_east.as_ref()));
            match (south_west, north_east) {
                (Some(sw), Some(ne)) => v.check("bounds", GeoBox::new(sw, ne)).map(Some),
                _ => None,
            }
        }
    };
    let site_ids = v.absorb(parse::ids("site_ids", &message.site_ids, SITE_IDS_MAX));
    let zoom = v.check("zoom", Zoom::parse(message.zoom));
    let min_outstanding = if message.min_outstanding_gnf < 0 {
        v.add("min_outstanding_gnf", "must not be negative");
        None
    } else {
        Some(Gnf::new(message.min_outstanding_gnf))
    };
    let mut buckets = Vec::new();
    for (i, &value) in message.aging_buckets.iter().enumerate() {
        if let Some(bucket) = v.check(&format!("aging_buckets[{i}]"), wire::aging_bucket(value))
            && !buckets.contains(&bucket)
        {
            buckets.push(bucket);
        }
    }
    let max_markers = v.check("max_markers", MaxMarkers::parse(message.max_markers));
    v.into_result()?;
    match (bounds, site_ids, zoom, min_outstanding, max_markers) {
        (Some(bounds), Some(site_ids), Some(zoom), Some(min_outstanding), Some(max_markers)) => {
            Ok(MapQuery {
                bounds,
                site_ids: (!site_ids.is_empty()).then_some(site_ids),
                zoom,
                filter: ArrearsFilter {
                    min_outstanding,
                    buckets,
                },
                max_markers,
            })
        }
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "a map request without violations was left unparsed"
        ))),
    }
}

fn layer(layer: Layer) -> pb::list_arrears_markers_response::Layer {
    use pb::list_arrears_markers_response::Layer as L;
    match layer {
        Layer::Markers(markers) => L::Markers(pb::ArrearsMarkerList {
            markers: markers
                .into_iter()
                .map(|m| pb::ArrearsMarker {
                    tenant_id: m.tenant_id.to_string(),
                    full_name: m.full_name,
                    site_id: m.site_id.to_string(),
                    unit_label: m.unit,
                    location: Some(to_location(m.at)),
                    outstanding_gnf: m.outstanding.francs(),
                    days_overdue: m.overdue.days,
                    aging_bucket: crate::api::views::bucket(m.overdue.bucket) as i32,
                    last_contact_time: m.last_contact.map(timestamp),
                    has_pending_promise: m.has_pending_promise,
                    broken_promise_count: m.broken_promise_count,
                })
                .collect(),
        }),
        Layer::Clusters {
            clusters,
            cell_size_deg,
        } => L::Clusters(pb::ArrearsClusterList {
            clusters: clusters
                .into_iter()
                .map(|c| pb::ArrearsCluster {
                    center: Some(to_location(c.center)),
                    cell: Some(pb::BoundingBox {
                        south_west: Some(to_location(c.cell.south_west())),
                        north_east: Some(to_location(c.cell.north_east())),
                    }),
                    tenant_count: c.tenant_count,
                    outstanding_gnf: c.outstanding.francs(),
                    worst_aging_bucket: crate::api::views::bucket(c.worst_bucket) as i32,
                })
                .collect(),
            cell_size_deg,
        }),
    }
}
