//! AuthService: sessions (login, refresh, logout), the caller's own account, and the
//! administration of users, roles and the audit log. Each RPC parses its message into store
//! and domain types once, does its work, and turns the result into protobuf once:
//! `session` (login, refresh, logout, who am I, own password), `users`, `roles`, `audit`.
//!
//! Decisions:
//! - Refusals carry the ErrorReason `auth.proto` promises, so an app knows whether to refresh
//!   (`TOKEN_EXPIRED`) or to log in again (`INVALID_CREDENTIALS`, `TOKEN_INVALID`,
//!   `REFRESH_TOKEN_REUSED`), and tells a disabled account (PERMISSION_DENIED,
//!   `ACCOUNT_DISABLED`) from a wrong password. A disabled account is named only to whoever
//!   gave its right password.
//! - Mutating RPCs run under their idempotency key ([`crate::api::write::Write`], one
//!   constant per RPC in [`rpc`]); their audit rows commit with the work.
//! - Every text field goes through [`crate::api::parse::Text`] (no control character, bounded
//!   length), including Login's device fields, before anything else is done with the request:
//!   a login whose text is refused tries no password. Passwords are the exception: they are
//!   hashed, never stored or shown as text, and a password is whatever bytes the user chose.
//! - Lists page with [`crate::api::paging::Pager`]: a token works only with the filters it was
//!   issued for.

mod audit;
mod roles;
mod session;
mod users;

use tonic::{Request, Response, Status};

use crate::api::error::ApiError;
use crate::api::write::Write;
use crate::auth::caller::Caller;
use crate::auth::layer::CallerProfile;
use crate::auth::rbac::Permission;
use crate::client_ip::ClientIp;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::state::AppState;

/// Full paths of the service's mutating RPCs: the method part of their idempotency keys.
pub mod rpc {
    pub const LOGOUT: &str = "/akig.v1.AuthService/Logout";
    pub const CHANGE_PASSWORD: &str = "/akig.v1.AuthService/ChangePassword";
    pub const CREATE_USER: &str = "/akig.v1.AuthService/CreateUser";
    pub const UPDATE_USER: &str = "/akig.v1.AuthService/UpdateUser";
    pub const RESET_PASSWORD: &str = "/akig.v1.AuthService/ResetPassword";
    pub const UPDATE_ROLE_PERMISSIONS: &str = "/akig.v1.AuthService/UpdateRolePermissions";
}

#[derive(Clone)]
pub struct AuthApi {
    state: AppState,
}

impl AuthApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn client_ip<T>(request: &Request<T>) -> Option<std::net::IpAddr> {
    request.extensions().get::<ClientIp>().map(|ip| ip.0)
}

/// Permission names, sorted, as the API lists them.
fn permission_names(permissions: impl IntoIterator<Item = Permission>) -> Vec<String> {
    let mut names: Vec<String> = permissions
        .into_iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    names.sort();
    names
}

fn reply<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let ip = client_ip(&request);
        reply(session::login(&self.state, request.into_inner(), ip).await)
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let ip = client_ip(&request);
        reply(session::refresh(&self.state, request.into_inner(), ip).await)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::LOGOUT, &message.request_id)?;
        reply(session::logout(&self.state, &write, message).await)
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let profile = request.extensions().get::<CallerProfile>().cloned();
        reply(session::who_am_i(&self.state, Caller::of(&request)?, profile).await)
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::CHANGE_PASSWORD, &message.request_id)?;
        reply(session::change_password(&self.state, &write, message).await)
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::CREATE_USER, &message.request_id)?;
        reply(users::create(&self.state, &write, message).await)
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        reply(users::get(&self.state, Caller::of(&request)?, request.get_ref()).await)
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        reply(users::list(&self.state, Caller::of(&request)?, request.get_ref()).await)
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::UPDATE_USER, &message.request_id)?;
        reply(users::update(&self.state, &write, message).await)
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::RESET_PASSWORD, &message.request_id)?;
        reply(users::reset_password(&self.state, &write, message).await)
    }

    async fn list_roles(
        &self,
        _request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        reply(roles::list_roles(&self.state).await)
    }

    async fn list_permissions(
        &self,
        _request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        reply(roles::list_permissions(&self.state).await)
    }

    async fn update_role_permissions(
        &self,
        request: Request<pb::UpdateRolePermissionsRequest>,
    ) -> Result<Response<pb::UpdateRolePermissionsResponse>, Status> {
        let message = request.get_ref();
        let write = Write::begin(&request, rpc::UPDATE_ROLE_PERMISSIONS, &message.request_id)?;
        reply(roles::update_role_permissions(&self.state, &write, message).await)
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        reply(audit::list(&self.state, request.get_ref()).await)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use crate::proto::FILE_DESCRIPTOR_SET;
    use crate::proto::v1::auth_service_server::SERVICE_NAME;

    #[test]
    fn rpc_paths_are_the_services_methods() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("set");
        let service = set
            .file
            .iter()
            .flat_map(|file| file.service.iter())
            .find(|service| SERVICE_NAME.ends_with(&format!(".{}", service.name())))
            .expect("AuthService in the descriptor set");
        for (path, method) in [
            (super::rpc::LOGOUT, "Logout"),
            (super::rpc::CHANGE_PASSWORD, "ChangePassword"),
            (super::rpc::CREATE_USER, "CreateUser"),
            (super::rpc::UPDATE_USER, "UpdateUser"),
            (super::rpc::RESET_PASSWORD, "ResetPassword"),
            (super::rpc::UPDATE_ROLE_PERMISSIONS, "UpdateRolePermissions"),
        ] {
            assert_eq!(path, format!("/{SERVICE_NAME}/{method}"));
            assert!(
                service.method.iter().any(|m| m.name() == method),
                "{method}"
            );
        }
    }
}
