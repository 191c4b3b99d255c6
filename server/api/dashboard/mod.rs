//! DashboardService: management read models limited to the caller's scope. GetSummary
//! ([`summary`]), ListSites ([`sites`]), GetSite ([`site`]), ListGoodPayers ([`good_payers`]),
//! GetDailyReport and ExportDailyReport ([`report`]), ListAlerts and AcknowledgeAlert
//! ([`alerts`]): every RPC of the service is live.

mod alerts;
mod good_payers;
mod report;
mod site;
mod sites;
mod summary;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::api::cached::{cached, cached_read, cached_then};
use crate::auth::caller::Caller;
use crate::cache::{CacheKind, Coverage};

use crate::proto::v1 as pb;
use crate::proto::v1::dashboard_service_server::DashboardService;
use crate::state::AppState;

/// Full paths of the service's mutating RPCs: the method part of their idempotency keys.
pub mod rpc {
    pub const ACKNOWLEDGE_ALERT: &str = "/akig.v1.DashboardService/AcknowledgeAlert";
}

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
        let coverage = Coverage::requested(Caller::of(&request)?, &request.get_ref().site_ids);
        cached_then(
            &self.state,
            CacheKind::Statistics,
            &request,
            coverage,
            async { summary::get_summary(&self.state, &request).await },
            |entry| summary::answer(&self.state, entry),
        )
        .await
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        cached_read(
            &self.state,
            CacheKind::Sites,
            &request,
            sites::list_sites(&self.state, &request),
        )
        .await
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::GetSiteResponse>, Status> {
        // The one site asked (a malformed id covers everything: it is refused anyway).
        let coverage = match request.get_ref().site_id.trim().parse() {
            Ok(site_id) => Coverage::sites(vec![site_id]),
            Err(_) => Coverage::Everything,
        };
        cached_then(
            &self.state,
            CacheKind::Sites,
            &request,
            coverage,
            async { site::get_site(&self.state, &request).await },
            |page| site::answer(&self.state, page),
        )
        .await
    }

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

    async fn get_daily_report(
        &self,
        request: Request<pb::GetDailyReportRequest>,
    ) -> Result<Response<pb::GetDailyReportResponse>, Status> {
        report::get_daily_report(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn export_daily_report(
        &self,
        request: Request<pb::ExportDailyReportRequest>,
    ) -> Result<Response<BoxStream<pb::ExportDailyReportResponse>>, Status> {
        report::export_daily_report(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        alerts::list_alerts(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::AcknowledgeAlertResponse>, Status> {
        alerts::acknowledge_alert(&self.state, &request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}
