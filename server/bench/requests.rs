//! The requests the load loop sends: a visit, a payment, a walking tour, a map window.

use akig::proto::v1 as pb;
use rand::Rng;
use uuid::Uuid;

use super::Target;

/// Conakry and its suburbs, (south, west, north, east) in degrees.
pub(super) const CITY: (f64, f64, f64, f64) = (9.40, -13.85, 9.85, -13.40);

fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: 0,
    }
}

pub(super) fn visit(
    tenant: Uuid,
    home: Option<(f64, f64)>,
    rng: &mut impl Rng,
) -> pb::RecordVisitRequest {
    let (lat, lng) = home.unwrap_or((9.5092, -13.7122));
    pb::RecordVisitRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(now()),
        outcome: if rng.random_bool(0.5) {
            pb::InteractionOutcome::Absent
        } else {
            pb::InteractionOutcome::NoAnswer
        } as i32,
        notes: "bench".to_owned(),
        visit: Some(pb::VisitDetails {
            location: Some(pb::LatLng {
                latitude: lat + rng.random_range(-0.0005..0.0005),
                longitude: lng + rng.random_range(-0.0005..0.0005),
            }),
            accuracy_m: 10.0,
            fix_time: Some(now()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn payment(tenant: Uuid, rng: &mut impl Rng) -> pb::RecordPaymentRequest {
    pb::RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        amount_gnf: rng.random_range(1..=20) * 25_000,
        method: pb::PaymentMethod::Cash as i32,
        occurred_at: Some(now()),
        ..Default::default()
    }
}

/// A closed walking tour from one of `tenants`' homes through `stops` of them (distinct, at
/// random), padded with points within ~500 m of their homes when too few have one.
pub(super) fn route(
    tenants: &[Target],
    stops: usize,
    rng: &mut impl Rng,
) -> pb::OptimizeRouteRequest {
    let homes: Vec<(Uuid, (f64, f64))> = tenants
        .iter()
        .filter_map(|&(tenant, home)| home.map(|home| (tenant, home)))
        .collect();
    let mut picked: Vec<usize> = (0..homes.len()).collect();
    for i in (1..picked.len()).rev() {
        picked.swap(i, rng.random_range(0..=i));
    }
    picked.truncate(stops);
    let mut route_stops: Vec<pb::RouteStop> = picked
        .iter()
        .map(|&i| pb::RouteStop {
            target: Some(pb::route_stop::Target::TenantId(homes[i].0.to_string())),
            ..Default::default()
        })
        .collect();
    let near = |rng: &mut dyn rand::RngCore| {
        let (lat, lng) = if homes.is_empty() {
            (9.5092, -13.7122)
        } else {
            homes[rng.random_range(0..homes.len())].1
        };
        pb::LatLng {
            latitude: lat + rng.random_range(-0.005..0.005),
            longitude: lng + rng.random_range(-0.005..0.005),
        }
    };
    for k in route_stops.len()..stops {
        route_stops.push(pb::RouteStop {
            stop_id: format!("point-{k}"),
            target: Some(pb::route_stop::Target::Location(near(rng))),
            ..Default::default()
        });
    }
    pb::OptimizeRouteRequest {
        problem: Some(pb::RouteProblem {
            start: Some(near(rng)),
            stops: route_stops,
            return_to_start: true,
            travel_mode: pb::TravelMode::Walking as i32,
            time_budget: None,
            seed: rng.random(),
        }),
    }
}

fn map_request(
    south: f64,
    west: f64,
    north: f64,
    east: f64,
    zoom: i32,
) -> pb::ListArrearsMarkersRequest {
    let at = |latitude, longitude| {
        Some(pb::LatLng {
            latitude,
            longitude,
        })
    };
    pb::ListArrearsMarkersRequest {
        bounds: Some(pb::BoundingBox {
            south_west: at(south, west),
            north_east: at(north, east),
        }),
        zoom,
        ..Default::default()
    }
}

/// The whole city at zoom 12, as clusters (above 100 tenants).
pub(super) fn city_map() -> pb::ListArrearsMarkersRequest {
    let (south, west, north, east) = CITY;
    pb::ListArrearsMarkersRequest {
        max_markers: 100,
        ..map_request(south, west, north, east, 12)
    }
}

/// About 440 m (0.004°) around `home` at zoom 17.
pub(super) fn street_map(home: Option<(f64, f64)>) -> pb::ListArrearsMarkersRequest {
    let (lat, lng) = home.unwrap_or((9.5092, -13.7122));
    map_request(lat - 0.002, lng - 0.002, lat + 0.002, lng + 0.002, 17)
}
