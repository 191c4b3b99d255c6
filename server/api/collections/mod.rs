//! CollectionsService (recouvrement): calls, visits, promises, payments and the reads agents
//! and managers need about a tenant. Thin adapters: each RPC parses its request into the types
//! of a use case (`app::*`) once, calls it, and turns its answer into the response once
//! ([`views`]); errors are mapped in [`errors`], enums in [`wire`].

mod daily_stats;
mod errors;
mod interactions;
mod payments;
mod promises;
mod tenants;
pub(crate) mod views;
pub(crate) mod wire;

use tonic::{Request, Response, Status};

use crate::api::cached::cached_read;
use crate::cache::CacheKind;
use crate::proto::v1 as pb;
use crate::proto::v1::collections_service_server::CollectionsService;
use crate::state::AppState;

/// Full paths of the service's mutating RPCs: the method part of their idempotency keys.
pub mod rpc {
    pub const RECORD_CALL: &str = "/akig.v1.CollectionsService/RecordCall";
    pub const RECORD_VISIT: &str = "/akig.v1.CollectionsService/RecordVisit";
    pub const RECORD_PAYMENT: &str = "/akig.v1.CollectionsService/RecordPayment";
    pub const REVERSE_PAYMENT: &str = "/akig.v1.CollectionsService/ReversePayment";
    pub const UPDATE_PROMISE: &str = "/akig.v1.CollectionsService/UpdatePromise";
}

#[derive(Clone)]
pub struct CollectionsApi {
    state: AppState,
}

impl CollectionsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Answers a handler's result as tonic wants it.
fn answer<T>(result: Result<T, crate::api::error::ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl CollectionsService for CollectionsApi {
    async fn record_call(
        &self,
        request: Request<pb::RecordCallRequest>,
    ) -> Result<Response<pb::RecordCallResponse>, Status> {
        answer(interactions::record_call(&self.state, &request).await)
    }

    async fn record_visit(
        &self,
        request: Request<pb::RecordVisitRequest>,
    ) -> Result<Response<pb::RecordVisitResponse>, Status> {
        answer(interactions::record_visit(&self.state, &request).await)
    }

    async fn record_payment(
        &self,
        request: Request<pb::RecordPaymentRequest>,
    ) -> Result<Response<pb::RecordPaymentResponse>, Status> {
        answer(payments::record_payment(&self.state, &request).await)
    }

    async fn reverse_payment(
        &self,
        request: Request<pb::ReversePaymentRequest>,
    ) -> Result<Response<pb::ReversePaymentResponse>, Status> {
        answer(payments::reverse_payment(&self.state, &request).await)
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        answer(payments::get_payment(&self.state, &request).await)
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        answer(payments::list_payments(&self.state, &request).await)
    }

    async fn list_promises(
        &self,
        request: Request<pb::ListPromisesRequest>,
    ) -> Result<Response<pb::ListPromisesResponse>, Status> {
        answer(promises::list_promises(&self.state, &request).await)
    }

    async fn update_promise(
        &self,
        request: Request<pb::UpdatePromiseRequest>,
    ) -> Result<Response<pb::UpdatePromiseResponse>, Status> {
        answer(promises::update_promise(&self.state, &request).await)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Tenants,
            &request,
            tenants::get_tenant(state, &request),
        )
        .await
    }

    async fn search_tenants(
        &self,
        request: Request<pb::SearchTenantsRequest>,
    ) -> Result<Response<pb::SearchTenantsResponse>, Status> {
        answer(tenants::search_tenants(&self.state, &request).await)
    }

    async fn get_tenant_history(
        &self,
        request: Request<pb::GetTenantHistoryRequest>,
    ) -> Result<Response<pb::GetTenantHistoryResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Tenants,
            &request,
            tenants::get_tenant_history(state, &request),
        )
        .await
    }

    async fn get_tenant_arrears(
        &self,
        request: Request<pb::GetTenantArrearsRequest>,
    ) -> Result<Response<pb::GetTenantArrearsResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Arrears,
            &request,
            tenants::get_tenant_arrears(state, &request),
        )
        .await
    }

    async fn get_daily_stats(
        &self,
        request: Request<pb::GetDailyStatsRequest>,
    ) -> Result<Response<pb::GetDailyStatsResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Statistics,
            &request,
            daily_stats::get_daily_stats(state, &request),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use crate::proto::FILE_DESCRIPTOR_SET;
    use crate::proto::v1::collections_service_server::SERVICE_NAME;

    #[test]
    fn rpc_paths_are_the_services_methods() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("set");
        let methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect();
        for (path, method) in [
            (super::rpc::RECORD_CALL, "RecordCall"),
            (super::rpc::RECORD_VISIT, "RecordVisit"),
            (super::rpc::RECORD_PAYMENT, "RecordPayment"),
            (super::rpc::REVERSE_PAYMENT, "ReversePayment"),
            (super::rpc::UPDATE_PROMISE, "UpdatePromise"),
        ] {
            assert_eq!(path, format!("/{SERVICE_NAME}/{method}"));
            assert!(methods.iter().any(|m| m == path), "{path} is not an RPC");
        }
    }
}
