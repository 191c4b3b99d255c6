//! AuthService: sessions (login, refresh, logout), the caller's own account, and the
//! administration of users, roles and the audit log.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::auth::caller::Caller;
use crate::auth::password;
use crate::auth::rbac::{Permission, Role};
use crate::auth::tokens::{self, AccessGrant};
use crate::idempotency::IdempotencyKey;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::ratelimit::ClientIp;
use crate::startup::AppState;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::users::{LoginName, NewUser, UserChanges, UserFilter, UserRow};
use crate::store::{sessions, users};

const USERNAME_MAX: usize = 64;
const FULL_NAME_MAX: usize = 120;
const SITES_MAX: usize = 200;
const REFRESH_TOKEN_MAX: usize = 200;

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

fn to_proto_user(user: UserRow) -> pb::User {
    pb::User {
        user_id: user.id.to_string(),
        username: user.username,
        full_name: user.full_name,
        phone: user.phone.unwrap_or_default(),
        role: Role::from_str(&user.role_id).map_or(0, i32::from),
        site_ids: user.site_ids.iter().map(Uuid::to_string).collect(),
        supervisor_id: user
            .supervisor_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        disabled: user.disabled,
        last_login_time: user.last_login_at.map(timestamp),
        create_time: Some(timestamp(user.created_at)),
        must_change_password: user.must_change_password,
    }
}

fn permission_names(permissions: impl IntoIterator<Item = Permission>) -> Vec<String> {
    let mut names: Vec<String> = permissions
        .into_iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    names.sort();
    names
}

/// A username as the users table accepts it.
fn parse_username(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let valid = (2..=USERNAME_MAX).contains(&value.len())
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "2 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

fn parse_role(field: &str, value: i32) -> Result<Role, ApiError> {
    Role::try_from(value).map_err(|_| ApiError::invalid(field, "must be one of the six roles"))
}

fn parse_site_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>, ApiError> {
    if values.len() > SITES_MAX {
        return Err(ApiError::invalid(
            field,
            format!("at most {SITES_MAX} sites"),
        ));
    }
    let mut ids = values
        .iter()
        .enumerate()
        .map(|(i, v)| convert::uuid(&format!("{field}[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn key(
    caller: &Caller,
    method: &'static str,
    request_id: &str,
) -> Result<IdempotencyKey, ApiError> {
    Ok(IdempotencyKey::new(
        caller.user_id,
        method,
        convert::request_id(request_id)?,
    ))
}

impl AuthApi {
    fn issue_pair(
        &self,
        grant: AccessGrant,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
    ) -> pb::SessionTokens {
        let auth = &self.state.auth;
        let (access_token, access_expires_at) =
            auth.keys.issue_access(grant, auth.access_token_ttl);
        pb::SessionTokens {
            access_token,
            access_token_expire_time: Some(timestamp(access_expires_at)),
            refresh_token,
            refresh_token_expire_time: Some(timestamp(refresh_expires_at)),
            session_id: grant.session_id.to_string(),
        }
    }

    async fn login(
        &self,
        request: pb::LoginRequest,
        ip: Option<std::net::IpAddr>,
    ) -> Result<pb::LoginResponse, ApiError> {
        let name = match &request.identifier {
            Some(pb::login_request::Identifier::Username(u)) => {
                LoginName::Username(parse_username("username", u)?.to_lowercase())
            }
            Some(pb::login_request::Identifier::Phone(p)) => {
                LoginName::Phone(convert::phone("phone", p)?)
            }
            None => {
                return Err(ApiError::invalid(
                    "identifier",
                    "give a username or a phone",
                ));
            }
        };
        if request.password.is_empty() || request.password.chars().count() > password::MAX_LENGTH {
            return Err(ApiError::invalid(
                "password",
                "required, at most 128 characters",
            ));
        }
        let account = match &name {
            LoginName::Username(u) => format!("u:{u}"),
            LoginName::Phone(p) => format!("p:{p}"),
        };
        let state = &self.state;
        let mut event = AuditEvent::new("auth.login", Outcome::Failed);
        event.client_ip = ip;
        if let Some(device) = &request.device {
            event = event.detail(
                "device_id",
                device.device_id.chars().take(64).collect::<String>(),
            );
        }

        if let Err(wait) = state.login_throttle.check(&account, ip) {
            audit::append(&state.pool, &event.clone().detail("reason", "throttled")).await?;
            return Err(ApiError::ResourceExhausted {
                message: "too many failed sign-ins; retry later".into(),
                retry_after: wait,
            });
        }
        let user = users::find_for_login(&state.pool, &name).await?;
        let verified = password::verify(
            request.password.clone(),
            user.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await
        .map_err(ApiError::internal)?;
        let user = match user {
            Some(user) if verified && !user.disabled => user,
            other => {
                state.login_throttle.record_failure(&account, ip);
                let reason = match &other {
                    Some(user) if verified && user.disabled => "disabled",
                    _ => "bad_credentials",
                };
                event.actor_id = other.as_ref().map(|u| u.id);
                audit::append(&state.pool, &event.detail("reason", reason)).await?;
                return Err(ApiError::Unauthenticated);
            }
        };
        state.login_throttle.record_success(&account);

        let role = Role::from_str(&user.role_id).map_err(ApiError::internal)?;
        let now = Utc::now();
        let family_id = Uuid::new_v4();
        let token_id = Uuid::new_v4();
        let refresh_token = tokens::new_refresh_token();
        let family_expires_at = now + state.auth.session_max_ttl;
        let refresh_expires_at = (now + state.auth.refresh_token_ttl).min(family_expires_at);
        let mut tx = state.pool.begin().await?;
        sessions::insert_refresh_token(
            &mut tx,
            &sessions::NewRefreshToken {
                id: token_id,
                family_id,
                user_id: user.id,
                token_hash: &tokens::refresh_token_hash(&refresh_token),
                parent_id: None,
                issued_at: now,
                expires_at: refresh_expires_at,
                family_expires_at,
            },
        )
        .await?;
        users::record_login(&mut tx, user.id).await?;
        event.outcome = Outcome::Ok;
        event.actor_id = Some(user.id);
        event.actor_role = Some(role.as_str().to_owned());
        audit::append(&mut *tx, &event.target("session", family_id)).await?;
        let profile = users::get(&mut tx, user.id)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        tx.commit().await?;

        let permissions = state.roles.get(role).await?;
        Ok(pb::LoginResponse {
            tokens: Some(self.issue_pair(
                AccessGrant {
                    user_id: user.id,
                    session_id: family_id,
                    token_id,
                    token_version: user.token_version,
                    issued_at: now,
                },
                refresh_token,
                refresh_expires_at,
            )),
            user: Some(to_proto_user(profile)),
            permissions: permission_names(permissions.iter().copied()),
        })
    }

    /// Rotation: the presented token is consumed and a successor issued, in one transaction
    /// that holds the token's row lock (two concurrent refreshes cannot both rotate it). A token
    /// presented again within the grace period, while its successor is unused, is a retry after
    /// a lost response and gets the same pair; any other reuse revokes the whole family.
    async fn refresh(
        &self,
        request: pb::RefreshRequest,
        ip: Option<std::net::IpAddr>,
    ) -> Result<pb::RefreshResponse, ApiError> {
        let presented = request.refresh_token.trim();
        if presented.is_empty() || presented.len() > REFRESH_TOKEN_MAX {
            return Err(ApiError::invalid("refresh_token", "required"));
        }
        if !tokens::looks_like_refresh_token(presented) {
            return Err(ApiError::Unauthenticated);
        }
        let state = &self.state;
        let auth = &state.auth;
        let mut tx = state.pool.begin().await?;
        let token = sessions::lock_refresh_token(&mut tx, &tokens::refresh_token_hash(presented))
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let now = Utc::now();
        if token.revoked_at.is_some() || token.expires_at <= now || token.family_expires_at <= now {
            return Err(ApiError::Unauthenticated);
        }
        let standing = sessions::user_standing(&mut *tx, token.user_id, token.family_id)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let mut event =
            AuditEvent::new("auth.refresh", Outcome::Ok).target("session", token.family_id);
        event.actor_id = Some(token.user_id);
        event.actor_role = Some(standing.role_id.clone());
        event.client_ip = ip;
        if standing.disabled {
            sessions::revoke_family(&mut tx, token.family_id, "user_disabled").await?;
            audit::append(&mut *tx, &{
                event.outcome = Outcome::Denied;
                event.detail("reason", "user_disabled")
            })
            .await?;
            tx.commit().await?;
            return Err(ApiError::Unauthenticated);
        }
        let successor = auth.keys.successor_refresh_token(presented);

        let (next_id, issued_at, expires_at) = match (token.consumed_at, token.replaced_by) {
            (None, _) => {
                let next_id = Uuid::new_v4();
                let expires_at = (now + auth.refresh_token_ttl).min(token.family_expires_at);
                sessions::insert_refresh_token(
                    &mut tx,
                    &sessions::NewRefreshToken {
                        id: next_id,
                        family_id: token.family_id,
                        user_id: token.user_id,
                        token_hash: &tokens::refresh_token_hash(&successor),
                        parent_id: Some(token.id),
                        issued_at: now,
                        expires_at,
                        family_expires_at: token.family_expires_at,
                    },
                )
                .await?;
                sessions::mark_consumed(&mut tx, token.id, next_id, now).await?;
                audit::append(&mut *tx, &event).await?;
                (next_id, now, expires_at)
            }
            (Some(consumed_at), Some(next_id))
                if now - consumed_at
                    <= chrono::TimeDelta::from_std(auth.refresh_grace)
                        .unwrap_or(chrono::TimeDelta::MAX) =>
            {
                let next = sessions::refresh_token_by_id(&mut tx, next_id).await?;
                match next {
                    Some((next, hash))
                        if next.consumed_at.is_none()
                            && next.revoked_at.is_none()
                            && hash == tokens::refresh_token_hash(&successor) =>
                    {
                        audit::append(&mut *tx, &event.detail("retry", true)).await?;
                        (next.id, next.issued_at, next.expires_at)
                    }
                    _ => return self.reuse_detected(tx, event).await,
                }
            }
            _ => return self.reuse_detected(tx, event).await,
        };
        tx.commit().await?;
        Ok(pb::RefreshResponse {
            tokens: Some(self.issue_pair(
                AccessGrant {
                    user_id: token.user_id,
                    session_id: token.family_id,
                    token_id: next_id,
                    token_version: standing.token_version,
                    issued_at,
                },
                successor,
                expires_at,
            )),
        })
    }

    async fn reuse_detected(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        mut event: AuditEvent,
    ) -> Result<pb::RefreshResponse, ApiError> {
        let family = event
            .target_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("refresh event without family")))?;
        let revoked = sessions::revoke_family(&mut tx, family, "reuse_detected").await?;
        event.action = "auth.refresh.reuse_detected".to_owned();
        event.outcome = Outcome::Denied;
        audit::append(&mut *tx, &event.detail("revoked_tokens", revoked)).await?;
        tx.commit().await?;
        tracing::warn!(session = %family, "refresh token reused: session revoked");
        Err(ApiError::Unauthenticated)
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let ip = client_ip(&request);
        Ok(Response::new(
            AuthApi::login(self, request.into_inner(), ip).await?,
        ))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let ip = client_ip(&request);
        Ok(Response::new(
            AuthApi::refresh(self, request.into_inner(), ip).await?,
        ))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(&caller, "/akig.v1.AuthService/Logout", &request.request_id)?;
        let request_id = key.request_id;
        let presented = request.refresh_token.trim();
        let family = if request.all_sessions {
            None
        } else if presented.is_empty() {
            Some(caller.session_id)
        } else {
            // Only a session of the caller's own can be closed this way.
            Some(
                sessions::family_of(
                    &self.state.pool,
                    &tokens::refresh_token_hash(presented),
                    caller.user_id,
                )
                .await
                .map_err(ApiError::from)?
                .ok_or(ApiError::invalid("refresh_token", "not a session of yours"))?,
            )
        };
        let response = self
            .state
            .idempotency
            .run(key, &request, async |conn| {
                let revoked = match family {
                    Some(family) => {
                        let live = sessions::revoke_family(conn, family, "logout").await?;
                        u64::from(live > 0)
                    }
                    None => {
                        sessions::revoke_user_sessions(conn, caller.user_id, None, "logout").await?
                    }
                };
                let event = audit_by(&caller, request_id, "auth.logout", Outcome::Ok)
                    .detail("sessions", revoked)
                    .detail("all_sessions", request.all_sessions);
                audit::append(&mut *conn, &event).await?;
                Ok::<_, ApiError>(pb::LogoutResponse {
                    revoked_session_count: i64::try_from(revoked).unwrap_or(i64::MAX),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut conn = self.state.pool.acquire().await.map_err(ApiError::from)?;
        let user = users::get(&mut conn, caller.user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(Response::new(pb::WhoAmIResponse {
            user: Some(to_proto_user(user)),
            permissions: permission_names(caller.permissions.iter().copied()),
            access_token_expire_time: DateTime::from_timestamp(caller.token_expires_at, 0)
                .map(timestamp),
            session_id: caller.session_id.to_string(),
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(
            &caller,
            "/akig.v1.AuthService/ChangePassword",
            &request.request_id,
        )?;
        let request_id = key.request_id;
        let mut violations = Violations::new();
        if request.current_password.is_empty() {
            violations.add("current_password", "required");
        }
        violations.check(
            "new_password",
            password::check_policy(&request.new_password),
        );
        if request.new_password == request.current_password {
            violations.add("new_password", "must differ from the current password");
        }
        violations.into_result()?;
        let state = &self.state;
        let response = state
            .idempotency
            .run(key, &request, async |conn| {
                let current = users::password_hash(conn, caller.user_id).await?;
                let ok = password::verify(request.current_password.clone(), current)
                    .await
                    .map_err(ApiError::internal)?;
                if !ok {
                    return Err(ApiError::invalid("current_password", "incorrect"));
                }
                let hash = password::hash(request.new_password.clone())
                    .await
                    .map_err(ApiError::internal)?;
                users::set_password(conn, caller.user_id, &hash, false).await?;
                let closed = if request.revoke_other_sessions {
                    sessions::revoke_user_sessions(
                        conn,
                        caller.user_id,
                        Some(caller.session_id),
                        "password_changed",
                    )
                    .await?
                } else {
                    0
                };
                let event = audit_by(&caller, request_id, "auth.password.change", Outcome::Ok)
                    .target("user", caller.user_id)
                    .detail("closed_sessions", closed);
                audit::append(&mut *conn, &event).await?;
                Ok::<_, ApiError>(pb::ChangePasswordResponse {
                    change_time: Some(timestamp(Utc::now())),
                })
            })
            .await;
        if response
            .as_ref()
            .is_err_and(|e| e.field_violations().is_some())
        {
            // Written outside the rolled-back transaction of the attempt.
            let event = audit_by(&caller, request_id, "auth.password.change", Outcome::Denied);
            audit::append(&state.pool, &event)
                .await
                .map_err(ApiError::from)?;
        }
        Ok(Response::new(response?))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(
            &caller,
            "/akig.v1.AuthService/CreateUser",
            &request.request_id,
        )?;
        let request_id = key.request_id;
        let user = request
            .user
            .as_ref()
            .ok_or(ApiError::invalid("user", "required"))?;
        let new_user = parse_new_user(user, &request.initial_password)?;
        let initial_password = request.initial_password.clone();
        let response = self
            .state
            .idempotency
            .run(key, &request, async |conn| {
                let mut new_user = new_user;
                new_user.password_hash = Some(
                    password::hash(initial_password)
                        .await
                        .map_err(ApiError::internal)?,
                );
                let created = users::create(conn, &new_user).await?;
                let event = audit_by(
                    &caller,
                    request_id,
                    Permission::UsersCreate.as_str(),
                    Outcome::Ok,
                )
                .target("user", created.id)
                .detail("role", created.role_id.clone());
                audit::append(&mut *conn, &event).await?;
                Ok::<_, ApiError>(pb::CreateUserResponse {
                    user: Some(to_proto_user(created)),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let caller = Caller::of(&request)?;
        let user_id = convert::uuid("user_id", &request.get_ref().user_id)?;
        let mut conn = self.state.pool.acquire().await.map_err(ApiError::from)?;
        let user = users::get(&mut conn, user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("user"))?;
        let visible = users::is_visible(&self.state.pool, &caller.scope(), caller.user_id, user_id)
            .await
            .map_err(ApiError::from)?;
        if !visible {
            return Err(ApiError::permission_denied("this user is outside your scope").into());
        }
        Ok(Response::new(pb::GetUserResponse {
            user: Some(to_proto_user(user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.get_ref();
        let limit = convert::page_size(request.page_size, 50, 500)?;
        let filter = UserFilter {
            role_id: match request.role {
                0 => None,
                role => Some(parse_role("role", role)?.as_str().to_owned()),
            },
            site_id: convert::optional_uuid("site_id", &request.site_id)?,
            supervisor_id: convert::optional_uuid("supervisor_id", &request.supervisor_id)?,
            show_disabled: request.show_disabled,
            query: convert::optional_text("query", &request.query, 100)?,
            after_username: convert::decode_page_token(&request.page_token)?,
        };
        let (rows, total) = users::list(&self.state.pool, &caller.scope(), &filter, limit)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 == limit {
            rows.last()
                .map(|u| convert::encode_page_token(&u.username.to_lowercase()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.into_iter().map(to_proto_user).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(
            &caller,
            "/akig.v1.AuthService/UpdateUser",
            &request.request_id,
        )?;
        let request_id = key.request_id;
        let user = request
            .user
            .as_ref()
            .ok_or(ApiError::invalid("user", "required"))?;
        let user_id = convert::uuid("user.user_id", &user.user_id)?;
        let changes = parse_user_changes(user, request.update_mask.as_ref())?;
        if changes.disabled.is_some() {
            caller.require(Permission::UsersDisable)?;
        }
        if changes.disabled == Some(true) && user_id == caller.user_id {
            return Err(ApiError::failed_precondition(
                pb::ErrorReason::SelfLockout,
                "you cannot disable your own account",
            )
            .into());
        }
        let response = self
            .state
            .idempotency
            .run(key, &request, async |conn| {
                let before = users::get(conn, user_id)
                    .await?
                    .ok_or(ApiError::NotFound("user"))?;
                let after = users::update(conn, user_id, &changes)
                    .await?
                    .ok_or(ApiError::NotFound("user"))?;
                let mut event = audit_by(
                    &caller,
                    request_id,
                    Permission::UsersUpdate.as_str(),
                    Outcome::Ok,
                )
                .target("user", user_id);
                if before.role_id != after.role_id {
                    event = event
                        .detail("role_from", before.role_id.clone())
                        .detail("role_to", after.role_id.clone());
                    // A role change is also an auth event of its own.
                    let role_change =
                        audit_by(&caller, request_id, "auth.role_change", Outcome::Ok)
                            .target("user", user_id)
                            .detail("from", before.role_id.clone())
                            .detail("to", after.role_id.clone());
                    audit::append(&mut *conn, &role_change).await?;
                }
                if before.disabled != after.disabled {
                    event = event.detail("disabled", after.disabled);
                }
                audit::append(&mut *conn, &event).await?;
                Ok::<_, ApiError>(pb::UpdateUserResponse {
                    user: Some(to_proto_user(after)),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(
            &caller,
            "/akig.v1.AuthService/ResetPassword",
            &request.request_id,
        )?;
        let request_id = key.request_id;
        let user_id = convert::uuid("user_id", &request.user_id)?;
        if !request.new_password.is_empty() {
            password::check_policy(&request.new_password)
                .map_err(|e| ApiError::invalid("new_password", e.to_string()))?;
        }
        let generated = request.new_password.is_empty().then(temporary_password);
        let new_password = generated
            .clone()
            .unwrap_or_else(|| request.new_password.clone());
        let reset_here = std::sync::atomic::AtomicBool::new(false);
        let mut response = self
            .state
            .idempotency
            .run(key, &request, async |conn| {
                let hash = password::hash(new_password)
                    .await
                    .map_err(ApiError::internal)?;
                if !users::set_password(conn, user_id, &hash, true).await? {
                    return Err(ApiError::NotFound("user"));
                }
                reset_here.store(true, std::sync::atomic::Ordering::Relaxed);
                let closed =
                    sessions::revoke_user_sessions(conn, user_id, None, "password_reset").await?;
                let event = audit_by(
                    &caller,
                    request_id,
                    Permission::UsersResetPassword.as_str(),
                    Outcome::Ok,
                )
                .target("user", user_id)
                .detail("closed_sessions", closed);
                audit::append(&mut *conn, &event).await?;
                // Stored for replays without the password: it is shown once.
                Ok::<_, ApiError>(pb::ResetPasswordResponse {
                    temporary_password: String::new(),
                    revoked_session_count: i64::try_from(closed).unwrap_or(i64::MAX),
                })
            })
            .await?;
        // A replay did not set `generated`: it gets the stored answer, without a password.
        if let Some(password) = generated
            && reset_here.load(std::sync::atomic::Ordering::Relaxed)
        {
            response.temporary_password = password;
        }
        Ok(Response::new(response))
    }

    async fn list_roles(
        &self,
        _request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let grants = users::all_role_permissions(&self.state.pool)
            .await
            .map_err(ApiError::from)?;
        let mut by_role: BTreeMap<Role, Vec<String>> =
            Role::ALL.into_iter().map(|r| (r, Vec::new())).collect();
        for (role, permission) in grants {
            if let Ok(role) = Role::from_str(&role) {
                by_role.entry(role).or_default().push(permission);
            }
        }
        Ok(Response::new(pb::ListRolesResponse {
            roles: by_role
                .into_iter()
                .map(|(role, permissions)| pb::RoleDefinition {
                    role: role.into(),
                    display_name: role.label_fr().to_owned(),
                    permissions,
                })
                .collect(),
        }))
    }

    async fn list_permissions(
        &self,
        _request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        let catalogue = users::permission_catalogue(&self.state.pool)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListPermissionsResponse {
            permissions: catalogue
                .into_iter()
                .map(|(name, description)| pb::Permission {
                    methods: Permission::from_str(&name)
                        .map(|p| p.methods().map(str::to_owned).collect())
                        .unwrap_or_default(),
                    name,
                    description,
                })
                .collect(),
        }))
    }

    async fn update_role_permissions(
        &self,
        request: Request<pb::UpdateRolePermissionsRequest>,
    ) -> Result<Response<pb::UpdateRolePermissionsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let key = key(
            &caller,
            "/akig.v1.AuthService/UpdateRolePermissions",
            &request.request_id,
        )?;
        let request_id = key.request_id;
        let role = parse_role("role", request.role)?;
        if role == Role::Admin {
            return Err(ApiError::failed_precondition(
                pb::ErrorReason::AdminRoleFixed,
                "the admin role always holds every permission",
            )
            .into());
        }
        let mut violations = Violations::new();
        let mut permissions = Vec::new();
        for (i, name) in request.permissions.iter().enumerate() {
            if let Some(p) =
                violations.check(&format!("permissions[{i}]"), Permission::from_str(name))
            {
                permissions.push(p);
            }
        }
        violations.into_result()?;
        let names = permission_names(permissions);
        let mut names = names;
        names.dedup();
        let state = &self.state;
        let response = state
            .idempotency
            .run(key, &request, async |conn| {
                users::replace_role_permissions(conn, role.as_str(), &names).await?;
                let event = audit_by(
                    &caller,
                    request_id,
                    Permission::RolesUpdate.as_str(),
                    Outcome::Ok,
                )
                .target("role", role.as_str())
                .detail("permissions", names.clone());
                audit::append(&mut *conn, &event).await?;
                Ok::<_, ApiError>(pb::UpdateRolePermissionsResponse {
                    role: Some(pb::RoleDefinition {
                        role: role.into(),
                        display_name: role.label_fr().to_owned(),
                        permissions: names.clone(),
                    }),
                })
            })
            .await?;
        // After the commit, so no reader caches the old set again.
        state.roles.invalidate(role).await;
        Ok(Response::new(response))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let request = request.get_ref();
        let limit = convert::page_size(request.page_size, 100, 1000)?;
        let before_id = convert::decode_page_token(&request.page_token)?
            .map(|cursor| {
                cursor
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid("page_token", "not a token this server issued"))
            })
            .transpose()?;
        let (since, until) = match &request.time_range {
            Some(range) => (
                range
                    .start_time
                    .as_ref()
                    .map(|t| convert::from_timestamp("time_range.start_time", t))
                    .transpose()?,
                range
                    .end_time
                    .as_ref()
                    .map(|t| convert::from_timestamp("time_range.end_time", t))
                    .transpose()?,
            ),
            None => (None, None),
        };
        let outcome = match pb::AuditOutcome::try_from(request.outcome) {
            Ok(pb::AuditOutcome::Unspecified) => None,
            Ok(pb::AuditOutcome::Success) => Some("ok"),
            Ok(pb::AuditOutcome::Denied) => Some("denied"),
            Ok(pb::AuditOutcome::Failed) => Some("failed"),
            Err(_) => return Err(ApiError::invalid("outcome", "unknown outcome").into()),
        };
        let filter = audit::AuditFilter {
            actor_id: convert::optional_uuid("actor_id", &request.actor_id)?,
            action: convert::optional_text("action", &request.action, 100)?,
            target_type: convert::optional_text("target_type", &request.target_type, 50)?,
            target_id: convert::optional_text("target_id", &request.target_id, 100)?,
            outcome,
            since,
            until,
            before_id,
        };
        let rows = audit::list(&self.state.pool, &filter, limit)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 == limit {
            rows.last()
                .map(|r| convert::encode_page_token(&r.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAuditEntriesResponse {
            audit_entries: rows.into_iter().map(to_proto_audit).collect(),
            next_page_token,
        }))
    }
}

fn to_proto_audit(row: audit::AuditRow) -> pb::AuditEntry {
    let outcome = match row.outcome.as_str() {
        "ok" => pb::AuditOutcome::Success,
        "denied" => pb::AuditOutcome::Denied,
        _ => pb::AuditOutcome::Failed,
    };
    let details = match row.details {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Default::default(),
    };
    pb::AuditEntry {
        audit_entry_id: row.id.to_string(),
        event_time: Some(timestamp(row.occurred_at)),
        actor: row.actor_id.map(|id| pb::UserRef {
            user_id: id.to_string(),
            full_name: row.actor_name.unwrap_or_default(),
        }),
        actor_role: row
            .actor_role
            .as_deref()
            .and_then(|r| Role::from_str(r).ok())
            .map_or(0, i32::from),
        action: row.action,
        target_type: row.target_type.unwrap_or_default(),
        target_id: row.target_id.unwrap_or_default(),
        request_id: row.request_id.map(|id| id.to_string()).unwrap_or_default(),
        outcome: outcome.into(),
        status_code: String::new(),
        details,
        client_ip: row.client_ip.unwrap_or_default(),
        device_id: String::new(),
    }
}

fn parse_new_user(user: &pb::User, initial_password: &str) -> Result<NewUser, ApiError> {
    let mut violations = Violations::new();
    let username = violations.absorb(parse_username("user.username", &user.username));
    let full_name = user.full_name.trim();
    if full_name.is_empty() || full_name.chars().count() > FULL_NAME_MAX {
        violations.add("user.full_name", "required, at most 120 characters");
    }
    let phone = if user.phone.trim().is_empty() {
        None
    } else {
        violations.absorb(convert::phone("user.phone", &user.phone))
    };
    let role = violations.absorb(parse_role("user.role", user.role));
    let site_ids = violations.absorb(parse_site_ids("user.site_ids", &user.site_ids));
    let supervisor_id = violations.absorb(convert::optional_uuid(
        "user.supervisor_id",
        &user.supervisor_id,
    ));
    violations.check("initial_password", password::check_policy(initial_password));
    violations.into_result()?;
    Ok(NewUser {
        username: username.unwrap_or_default(),
        full_name: full_name.to_owned(),
        phone,
        role_id: role.map(Role::as_str).unwrap_or_default().to_owned(),
        supervisor_id: supervisor_id.flatten(),
        site_ids: site_ids.unwrap_or_default(),
        password_hash: None,
    })
}

fn parse_user_changes(
    user: &pb::User,
    mask: Option<&prost_types::FieldMask>,
) -> Result<UserChanges, ApiError> {
    let paths = mask
        .map(|m| m.paths.as_slice())
        .filter(|paths| !paths.is_empty())
        .ok_or(ApiError::invalid(
            "update_mask",
            "list the fields to change",
        ))?;
    let mut changes = UserChanges::default();
    for path in paths {
        match path.as_str() {
            "full_name" => {
                let name = user.full_name.trim();
                if name.is_empty() || name.chars().count() > FULL_NAME_MAX {
                    return Err(ApiError::invalid(
                        "user.full_name",
                        "required, at most 120 characters",
                    ));
                }
                changes.full_name = Some(name.to_owned());
            }
            "phone" => {
                changes.phone = Some(if user.phone.trim().is_empty() {
                    None
                } else {
                    Some(convert::phone("user.phone", &user.phone)?)
                });
            }
            "role" => {
                changes.role_id = Some(parse_role("user.role", user.role)?.as_str().to_owned())
            }
            "site_ids" => changes.site_ids = Some(parse_site_ids("user.site_ids", &user.site_ids)?),
            "supervisor_id" => {
                changes.supervisor_id = Some(convert::optional_uuid(
                    "user.supervisor_id",
                    &user.supervisor_id,
                )?);
            }
            "disabled" => changes.disabled = Some(user.disabled),
            other => {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!(
                        "{other:?} cannot be changed (full_name, phone, role, site_ids, supervisor_id, disabled)"
                    ),
                ));
            }
        }
    }
    Ok(changes)
}

/// A random password given once to the user, who must change it at next login.
fn temporary_password() -> String {
    use rand::Rng;
    // No look-alike characters: it is read aloud or copied by hand.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_parsed() {
        assert_eq!(
            parse_username("u", " agent.kaloum ").unwrap(),
            "agent.kaloum"
        );
        assert!(parse_username("u", "a").is_err());
        assert!(parse_username("u", ".agent").is_err());
        assert!(parse_username("u", "agent kaloum").is_err());
    }

    #[test]
    fn temporary_passwords_meet_the_policy() {
        let password = temporary_password();
        assert!(password::check_policy(&password).is_ok());
        assert_ne!(password, temporary_password());
    }

    #[test]
    fn update_mask_is_required_and_checked() {
        let user = pb::User {
            full_name: "Fatoumata Camara".into(),
            ..Default::default()
        };
        assert!(parse_user_changes(&user, None).is_err());
        let mask = prost_types::FieldMask {
            paths: vec!["username".into()],
        };
        assert!(parse_user_changes(&user, Some(&mask)).is_err());
        let mask = prost_types::FieldMask {
            paths: vec!["full_name".into(), "disabled".into()],
        };
        let changes = parse_user_changes(&user, Some(&mask)).unwrap();
        assert_eq!(changes.full_name.as_deref(), Some("Fatoumata Camara"));
        assert_eq!(changes.disabled, Some(false));
    }
}
