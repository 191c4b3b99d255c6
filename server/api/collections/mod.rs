//! CollectionsService (recouvrement): calls, visits, promises, payments and the reads agents
//! and managers need about a tenant. One module per group of RPCs; this one holds what they
//! share: the scope check on a tenant.

mod interactions;
mod payments;
mod tenants;
mod wire;

use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::proto::v1 as pb;
use crate::proto::v1::collections_service_server::CollectionsService;
use crate::startup::AppState;
use crate::store::tenants as tenant_store;

#[derive(Clone)]
pub struct CollectionsApi {
    state: AppState,
}

impl CollectionsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// The tenant's site, once the caller is known to be allowed to see the tenant: NOT_FOUND for
/// an unknown tenant, PERMISSION_DENIED for one outside the caller's sites.
pub(crate) async fn tenant_in_scope<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    caller: &Caller,
    tenant_id: Uuid,
) -> Result<tenant_store::TenantSite, ApiError> {
    let tenant = tenant_store::site_of(executor, tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    if !caller.scope().covers_site(tenant.site_id) {
        return Err(ApiError::permission_denied(
            "this tenant is outside your sites",
        ));
    }
    Ok(tenant)
}

#[tonic::async_trait]
impl CollectionsService for CollectionsApi {
    async fn record_call(
        &self,
        request: Request<pb::RecordCallRequest>,
    ) -> Result<Response<pb::RecordCallResponse>, Status> {
        interactions::record_call(&self.state, request).await
    }

    async fn record_visit(
        &self,
        request: Request<pb::RecordVisitRequest>,
    ) -> Result<Response<pb::RecordVisitResponse>, Status> {
        interactions::record_visit(&self.state, request).await
    }

    async fn record_payment(
        &self,
        request: Request<pb::RecordPaymentRequest>,
    ) -> Result<Response<pb::RecordPaymentResponse>, Status> {
        payments::record_payment(&self.state, request).await
    }

    async fn reverse_payment(
        &self,
        request: Request<pb::ReversePaymentRequest>,
    ) -> Result<Response<pb::ReversePaymentResponse>, Status> {
        payments::reverse_payment(&self.state, request).await
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        payments::get_payment(&self.state, request).await
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        payments::list_payments(&self.state, request).await
    }

    async fn list_promises(
        &self,
        request: Request<pb::ListPromisesRequest>,
    ) -> Result<Response<pb::ListPromisesResponse>, Status> {
        interactions::list_promises(&self.state, request).await
    }

    async fn update_promise(
        &self,
        request: Request<pb::UpdatePromiseRequest>,
    ) -> Result<Response<pb::UpdatePromiseResponse>, Status> {
        interactions::update_promise(&self.state, request).await
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        tenants::get_tenant(&self.state, request).await
    }

    async fn search_tenants(
        &self,
        request: Request<pb::SearchTenantsRequest>,
    ) -> Result<Response<pb::SearchTenantsResponse>, Status> {
        tenants::search_tenants(&self.state, request).await
    }

    async fn get_tenant_history(
        &self,
        request: Request<pb::GetTenantHistoryRequest>,
    ) -> Result<Response<pb::GetTenantHistoryResponse>, Status> {
        tenants::get_tenant_history(&self.state, request).await
    }

    async fn get_tenant_arrears(
        &self,
        request: Request<pb::GetTenantArrearsRequest>,
    ) -> Result<Response<pb::GetTenantArrearsResponse>, Status> {
        tenants::get_tenant_arrears(&self.state, request).await
    }

    async fn get_daily_stats(
        &self,
        request: Request<pb::GetDailyStatsRequest>,
    ) -> Result<Response<pb::GetDailyStatsResponse>, Status> {
        tenants::get_daily_stats(&self.state, request).await
    }
}
