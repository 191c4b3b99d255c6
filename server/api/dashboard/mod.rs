//! DashboardService: management read models limited to the caller's scope. GetSummary
//! ([`summary`]), ListSites ([`sites`]) and ListGoodPayers ([`good_payers`]) are live; the other RPCs answer UNIMPLEMENTED (the generated default) until
//! their feature lands.

mod good_payers;
mod sites;
mod summary;

use tonic::{Request, Response, Status};

use crate::proto::v1 as pb;
use crate::proto::v1::dashboard_service_server::DashboardService;
use crate::state::AppState;

#[derive(Clone)]
pub struct DashboardApi {
    state: AppState,
}

impl DashboardApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl DashboardService for DashboardApi {
    async fn get_summary(
        &self,
        request: Request<pb::GetSummaryRequest>,
    ) -> Result<Response<pb::GetSummaryResponse>, Status> {
        summary::get_summary(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        sites::list_sites(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn list_good_payers(
        &self,
        request: Request<pb::ListGoodPayersRequest>,
    ) -> Result<Response<pb::ListGoodPayersResponse>, Status> {
        good_payers::list_good_payers(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}
