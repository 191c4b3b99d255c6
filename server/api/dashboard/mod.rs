//! DashboardService: management read models limited to the caller's scope. ListGoodPayers is
//! live ([`good_payers`]); the other RPCs answer UNIMPLEMENTED (the generated default) until
//! their feature lands.

mod good_payers;

use tonic::{Request, Response, Status};

use crate::auth::caller::Caller;
use crate::cache::{CacheKind, Coverage, cached};

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
    async fn list_good_payers(
        &self,
        request: Request<pb::ListGoodPayersRequest>,
    ) -> Result<Response<pb::ListGoodPayersResponse>, Status> {
        let coverage = Coverage::requested(Caller::of(&request)?, &request.get_ref().site_ids);
        cached(
            &self.state,
            CacheKind::GoodPayers,
            &request,
            coverage,
            async { good_payers::list_good_payers(&self.state, &request).await },
        )
        .await
    }
}
