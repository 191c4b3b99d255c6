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
//! - Mutating RPCs run under their idempotency key (`crate::idempotency`); their audit rows
//!   commit with the work.

mod audit;
mod roles;
mod session;
mod users;

use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::convert;
use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::auth::rbac::Permission;
use crate::client_ip::ClientIp;
use crate::idempotency::IdempotencyKey;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::state::AppState;
use crate::store::audit::{AuditEvent, Outcome};

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

/// The audit event of an action by `caller`.
fn audit_by(caller: &Caller, request_id: Uuid, action: &str, outcome: Outcome) -> AuditEvent {
    let mut event = AuditEvent::new(action, outcome).request(request_id);
    event.actor_id = Some(caller.user_id);
    event.actor_role = Some(caller.role.as_str().to_owned());
    event.client_ip = caller.client_ip;
    event
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

/// A mutating call: its caller, its message and its idempotency key.
struct Write<T> {
    caller: Caller,
    request: T,
    key: IdempotencyKey,
}

impl<T> Write<T> {
    fn into_parts(self) -> (Caller, T, IdempotencyKey) {
        (self.caller, self.request, self.key)
    }
}

/// Takes a mutating request apart; `method` is its gRPC path, `request_id` its field.
fn write<T>(
    request: Request<T>,
    method: &'static str,
    request_id: impl FnOnce(&T) -> &str,
) -> Result<Write<T>, ApiError> {
    let caller = Caller::of(&request)?.clone();
    let request = request.into_inner();
    let key = IdempotencyKey::new(
        caller.user_id,
        method,
        convert::request_id(request_id(&request))?,
    );
    Ok(Write {
        caller,
        request,
        key,
    })
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
        let write = write(request, "/akig.v1.AuthService/Logout", |m| &m.request_id)?;
        reply(session::logout(&self.state, write).await)
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        reply(session::who_am_i(&self.state, Caller::of(&request)?).await)
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let write = write(request, "/akig.v1.AuthService/ChangePassword", |m| {
            &m.request_id
        })?;
        reply(session::change_password(&self.state, write).await)
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let write = write(request, "/akig.v1.AuthService/CreateUser", |m| {
            &m.request_id
        })?;
        reply(users::create(&self.state, write).await)
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
        let write = write(request, "/akig.v1.AuthService/UpdateUser", |m| {
            &m.request_id
        })?;
        reply(users::update(&self.state, write).await)
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let write = write(request, "/akig.v1.AuthService/ResetPassword", |m| {
            &m.request_id
        })?;
        reply(users::reset_password(&self.state, write).await)
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
        let write = write(request, "/akig.v1.AuthService/UpdateRolePermissions", |m| {
            &m.request_id
        })?;
        reply(roles::update_role_permissions(&self.state, write).await)
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        reply(audit::list(&self.state, request.get_ref()).await)
    }
}
