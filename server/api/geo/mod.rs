//! GeoService (carte): the arrears map ([`markers`]) and route optimisation, unary ([`routes`])
//! and live ([`session`]); live agent positions: the phone's channel ([`agent_session`]),
//! offline uploads and snapshots ([`positions`]), dashboards' live map ([`watch`]) and tracks
//! ([`track`]), over the hub of `crate::live`.
//!
//! Decisions
//! - Problems are parsed once ([`convert`]), tenant stops are placed at their tenant's home
//!   within the caller's scope (a tenant outside it looks exactly like a missing one:
//!   UNROUTED_REASON_TENANT_NOT_FOUND), and the search runs on the blocking pool under the
//!   per-process cap of [`crate::geo::Searches`].
//! - Searches are cancelled as soon as nobody waits for them: a unary call whose client left,
//!   a session that ended or whose update replaced the search.

mod agent_session;
pub mod convert;
mod markers;
mod positions;
mod routes;
mod session;
mod track;
mod watch;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::error::ApiError;
use crate::api::streams::guarded;
use crate::auth::caller::Caller;
use crate::geo::Searches;
use crate::geo::search::{BUSY_RETRY_AFTER, Busy};
use crate::proto::v1 as pb;
use crate::proto::v1::geo_service_server::GeoService;
use crate::state::AppState;

#[derive(Clone)]
pub struct GeoApi {
    state: AppState,
    searches: Searches,
}

impl GeoApi {
    /// The service, with its own cap of `state.route.max_searches` concurrent searches.
    pub fn new(state: AppState) -> Self {
        let searches = Searches::new(state.route.max_searches, state.route.stall_rounds_per_stop);
        Self { state, searches }
    }
}

impl From<Busy> for ApiError {
    fn from(busy: Busy) -> Self {
        Self::ResourceExhausted {
            message: busy.to_string(),
            retry_after: BUSY_RETRY_AFTER,
        }
    }
}

#[tonic::async_trait]
impl GeoService for GeoApi {
    async fn list_arrears_markers(
        &self,
        request: Request<pb::ListArrearsMarkersRequest>,
    ) -> Result<Response<pb::ListArrearsMarkersResponse>, Status> {
        markers::list_arrears_markers(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn optimize_route(
        &self,
        request: Request<pb::OptimizeRouteRequest>,
    ) -> Result<Response<pb::OptimizeRouteResponse>, Status> {
        routes::optimize_route(self, request).await
    }

    async fn route_session(
        &self,
        request: Request<Streaming<pb::RouteSessionRequest>>,
    ) -> Result<Response<BoxStream<pb::RouteSessionResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let response = session::route_session(self, request).await?;
        Ok(response.map(|stream| guarded(&self.state.standing, &caller, stream)))
    }

    async fn agent_session(
        &self,
        request: Request<Streaming<pb::AgentSessionRequest>>,
    ) -> Result<Response<BoxStream<pb::AgentSessionResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let response = agent_session::agent_session(self, request).await?;
        Ok(response.map(|stream| guarded(&self.state.standing, &caller, stream)))
    }

    async fn report_positions(
        &self,
        request: Request<pb::ReportPositionsRequest>,
    ) -> Result<Response<pb::ReportPositionsResponse>, Status> {
        positions::report_positions(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn watch_agents(
        &self,
        request: Request<pb::WatchAgentsRequest>,
    ) -> Result<Response<BoxStream<pb::WatchAgentsResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let response = watch::watch_agents(self, request).await?;
        Ok(response.map(|stream| guarded(&self.state.standing, &caller, stream)))
    }

    async fn list_agent_positions(
        &self,
        request: Request<pb::ListAgentPositionsRequest>,
    ) -> Result<Response<pb::ListAgentPositionsResponse>, Status> {
        positions::list_agent_positions(&self.state, &request)
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_agent_track(
        &self,
        request: Request<pb::GetAgentTrackRequest>,
    ) -> Result<Response<pb::GetAgentTrackResponse>, Status> {
        track::get_agent_track(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}
