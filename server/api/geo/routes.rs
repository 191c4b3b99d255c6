//! OptimizeRoute, and the placing of tenant stops both route RPCs share.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use super::GeoApi;
use super::convert;
use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::domain::LatLng;
use crate::domain::route::problem::{
    Located, RouteStop, StopId, Unrouted, place_stops, tenant_ids,
};
use crate::domain::route::trip::Trip;
use crate::geo::search::SearchRequest;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::locations;

const RPC: &str = "optimize_route";

pub(super) async fn optimize_route(
    api: &GeoApi,
    request: Request<pb::OptimizeRouteRequest>,
) -> Result<Response<pb::OptimizeRouteResponse>, Status> {
    let caller = Caller::of(&request)?;
    let config = &api.state.route;
    let problem = convert::problem(
        "problem",
        request.get_ref().problem.as_ref(),
        config.unary_budget,
        config.default_travel_mode,
    )?;
    // The slot first: a refusal then costs no query.
    let permit = api.searches.try_acquire(RPC).map_err(ApiError::from)?;
    let (located, unrouted) = place(&api.state, caller, &problem.stops).await?;
    let trip = Trip {
        from: problem.start,
        stops: located,
        back_to: problem.return_to_start.then_some(problem.start),
        speed: config.speeds.of(problem.travel_mode),
    };
    // Dropped with this future when the client goes away: the search is cancelled.
    let found = api
        .searches
        .run(
            permit,
            SearchRequest {
                trip: trip.clone(),
                budget: problem.time_budget,
                seed: problem.seed,
                rpc: RPC,
            },
        )
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Response::new(pb::OptimizeRouteResponse {
        solution: Some(convert::solution(&trip, &found.plan, &unrouted)),
        iteration_count: i64::try_from(found.iterations).unwrap_or(i64::MAX),
        solve_duration: Some(convert::to_duration(found.elapsed)),
    }))
}

/// Places `stops`: tenants at their home when the caller may see them (one query for all),
/// points where they are. A tenant that does not exist or is outside the caller's sites is
/// TENANT_NOT_FOUND alike, so that the answer does not tell them apart.
pub(super) async fn place(
    state: &AppState,
    caller: &Caller,
    stops: &[RouteStop],
) -> Result<(Vec<Located>, Vec<(StopId, Unrouted)>), ApiError> {
    let ids = tenant_ids(stops);
    let homes: HashMap<_, _> = if ids.is_empty() {
        HashMap::new()
    } else {
        locations::tenant_homes(&state.pool, &ids)
            .await?
            .into_iter()
            .map(|home| (home.tenant_id, home))
            .collect()
    };
    let scope = caller.scope();
    Ok(place_stops(stops, |tenant| match homes.get(&tenant) {
        Some(home) if scope.covers_site(home.site_id) => match (home.latitude, home.longitude) {
            (Some(latitude), Some(longitude)) => {
                LatLng::parse(latitude, longitude).map_err(|_| Unrouted::NoLocation)
            }
            _ => Err(Unrouted::NoLocation),
        },
        _ => Err(Unrouted::TenantNotFound),
    }))
}
