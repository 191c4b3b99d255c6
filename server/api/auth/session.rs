//! Sessions: Login, Refresh, Logout, WhoAmI and ChangePassword.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{permission_names, users::parse_username};
use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, Device, Text};
use crate::api::write::Write;
use crate::auth::caller::Caller;
use crate::auth::layer::CallerProfile;
use crate::auth::password;
use crate::auth::tokens::{self, AccessGrant};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::sessions::{self, RevokeReason};
use crate::store::users::{self, LoginName};

/// A refresh token as presented: the server issues them far shorter than this.
const REFRESH_TOKEN: Text = Text::line(1, 200);
/// A refresh token given to Logout, where empty means "this session".
const OPTIONAL_REFRESH_TOKEN: Text = Text::line(0, 200);
/// A phone number as typed, before it is read as E.164.
const PHONE: Text = Text::line(1, 32);

/// A signed access token with the refresh token issued beside it.
fn issue_pair(
    state: &AppState,
    grant: AccessGrant,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
) -> pb::SessionTokens {
    let auth = &state.auth;
    let (access_token, access_expires_at) = auth.keys.issue_access(grant, auth.access_token_ttl);
    pb::SessionTokens {
        access_token,
        access_token_expire_time: Some(timestamp(access_expires_at)),
        refresh_token,
        refresh_token_expire_time: Some(timestamp(refresh_expires_at)),
        session_id: grant.session_id.to_string(),
    }
}

/// What a LoginRequest says.
struct Credentials {
    name: LoginName,
    password: String,
    device: Device,
}

impl Credentials {
    /// Every field at once, before anything is looked up: a login with a refused field tries
    /// no password and writes no audit row.
    fn parse(request: pb::LoginRequest) -> Result<Self, ApiError> {
        let mut violations = Violations::new();
        let name = match &request.identifier {
            Some(pb::login_request::Identifier::Username(u)) => violations
                .absorb(parse_username("username", u))
                .map(|u| LoginName::Username(u.to_lowercase())),
            Some(pb::login_request::Identifier::Phone(p)) => violations
                .absorb(
                    PHONE
                        .parse("phone", p)
                        .and_then(|p| convert::phone("phone", &p)),
                )
                .map(LoginName::Phone),
            None => {
                violations.add("identifier", "give a username or a phone");
                None
            }
        };
        if request.password.is_empty() || request.password.chars().count() > password::MAX_LENGTH {
            violations.add("password", "required, at most 128 characters");
        }
        let device = parse::device(&mut violations, "device", request.device.as_ref());
        violations.into_result()?;
        Ok(Self {
            name: name.ok_or_else(|| ApiError::invalid("identifier", "required"))?,
            password: request.password,
            device,
        })
    }

    /// The account as the login throttle counts it.
    fn account(&self) -> String {
        match &self.name {
            LoginName::Username(u) => format!("u:{u}"),
            LoginName::Phone(p) => format!("p:{p}"),
        }
    }
}

/// Checks the credentials and opens a session. Errors: INVALID_ARGUMENT; RESOURCE_EXHAUSTED
/// (`ACCOUNT_LOCKED`) over the failed-login limit, checked before the password; UNAUTHENTICATED
/// (`INVALID_CREDENTIALS`), the same for an unknown user and a wrong password; PERMISSION_DENIED
/// (`ACCOUNT_DISABLED`) for a disabled account whose right password was given.
pub(super) async fn login(
    state: &AppState,
    request: pb::LoginRequest,
    ip: Option<std::net::IpAddr>,
) -> Result<pb::LoginResponse, ApiError> {
    let credentials = Credentials::parse(request)?;
    let account = credentials.account();
    let mut event = AuditEvent::new("auth.login", Outcome::Failed);
    event.client_ip = ip;
    let device = &credentials.device;
    for (key, value) in [
        ("device_id", &device.device_id),
        ("app_version", &device.app_version),
        ("platform", &device.platform),
    ] {
        if let Some(value) = value {
            event = event.detail(key, value.as_str());
        }
    }

    if let Err(wait) = state.login_throttle.check(&account, ip).await {
        audit::append(&state.pool, &event.clone().detail("reason", "throttled")).await?;
        return Err(ApiError::AccountLocked { retry_after: wait });
    }
    let user = users::find_for_login(&state.pool, &credentials.name).await?;
    let verified = password::verify(
        credentials.password,
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await
    .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        other => {
            state.login_throttle.record_failure(&account, ip).await;
            let disabled = other.as_ref().is_some_and(|user| verified && user.disabled);
            event.actor_id = other.as_ref().map(|u| u.id);
            let reason = if disabled {
                "disabled"
            } else {
                "bad_credentials"
            };
            audit::append(&state.pool, &event.detail("reason", reason)).await?;
            return Err(if disabled {
                ApiError::account_disabled()
            } else {
                ApiError::unauthenticated(pb::ErrorReason::InvalidCredentials)
            });
        }
    };
    state.login_throttle.record_success(&account).await;

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
    event.actor_role = Some(user.role.as_str().to_owned());
    audit::append(&mut *tx, &event.target("session", family_id)).await?;
    let profile = users::get(&mut tx, user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    tx.commit().await?;

    let permissions = state.roles.get(user.role).await?;
    Ok(pb::LoginResponse {
        tokens: Some(issue_pair(
            state,
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
        user: Some(super::users::to_proto_user(profile)),
        permissions: permission_names(permissions.iter().copied()),
    })
}

/// Rotation: the presented token is consumed and a successor issued, in one transaction that
/// holds the token's row lock (two concurrent refreshes cannot both rotate it). A token
/// presented again within the grace period, while its successor is unused, is a retry after a
/// lost response and gets the same pair; any other reuse revokes the whole family.
///
/// Errors: INVALID_ARGUMENT; UNAUTHENTICATED with `TOKEN_INVALID` (not a token of a live
/// session), `TOKEN_EXPIRED` (the token or its session ended) or `REFRESH_TOKEN_REUSED` (the
/// session is now revoked); PERMISSION_DENIED (`ACCOUNT_DISABLED`), which also ends the session.
pub(super) async fn refresh(
    state: &AppState,
    request: pb::RefreshRequest,
    ip: Option<std::net::IpAddr>,
) -> Result<pb::RefreshResponse, ApiError> {
    let invalid = || ApiError::unauthenticated(pb::ErrorReason::TokenInvalid);
    let presented = REFRESH_TOKEN.parse("refresh_token", &request.refresh_token)?;
    let presented = presented.as_str();
    if !tokens::looks_like_refresh_token(presented) {
        return Err(invalid());
    }
    let auth = &state.auth;
    let mut tx = state.pool.begin().await?;
    let token = sessions::lock_refresh_token(&mut tx, &tokens::refresh_token_hash(presented))
        .await?
        .ok_or_else(invalid)?;
    let now = Utc::now();
    if token.revoked_at.is_some() {
        return Err(invalid());
    }
    if token.expires_at <= now || token.family_expires_at <= now {
        return Err(ApiError::unauthenticated(pb::ErrorReason::TokenExpired));
    }
    let standing = sessions::standing(&mut *tx, token.user_id, token.family_id)
        .await?
        .ok_or_else(invalid)?;
    let mut event = AuditEvent::new("auth.refresh", Outcome::Ok).target("session", token.family_id);
    event.actor_id = Some(token.user_id);
    event.actor_role = Some(standing.user.role.as_str().to_owned());
    event.client_ip = ip;
    if standing.user.disabled {
        sessions::revoke_family(&mut tx, token.family_id, RevokeReason::UserDisabled).await?;
        event.outcome = Outcome::Denied;
        audit::append(&mut *tx, &event.detail("reason", "user_disabled")).await?;
        tx.commit().await?;
        return Err(ApiError::account_disabled());
    }
    let successor = auth.keys.successor_refresh_token(presented);
    let grace = chrono::TimeDelta::from_std(auth.refresh_grace).unwrap_or(chrono::TimeDelta::MAX);

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
        (Some(consumed_at), Some(next_id)) if now - consumed_at <= grace => {
            match sessions::refresh_token_by_id(&mut tx, next_id).await? {
                Some((next, hash))
                    if next.consumed_at.is_none()
                        && next.revoked_at.is_none()
                        && hash == tokens::refresh_token_hash(&successor) =>
                {
                    audit::append(&mut *tx, &event.detail("retry", true)).await?;
                    (next.id, next.issued_at, next.expires_at)
                }
                _ => return Err(reuse_detected(tx, token.family_id, event).await?),
            }
        }
        _ => return Err(reuse_detected(tx, token.family_id, event).await?),
    };
    tx.commit().await?;
    Ok(pb::RefreshResponse {
        tokens: Some(issue_pair(
            state,
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

/// A consumed refresh token came back: taken as theft, the whole family is revoked and the
/// revocation audited. Answers the error to send (`REFRESH_TOKEN_REUSED`).
async fn reuse_detected(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    family: Uuid,
    mut event: AuditEvent,
) -> Result<ApiError, ApiError> {
    let revoked = sessions::revoke_family(&mut tx, family, RevokeReason::ReuseDetected).await?;
    event.action = "auth.refresh.reuse_detected".to_owned();
    event.outcome = Outcome::Denied;
    audit::append(&mut *tx, &event.detail("revoked_tokens", revoked)).await?;
    tx.commit().await?;
    tracing::warn!(session = %family, "refresh token reused: session revoked");
    Ok(ApiError::unauthenticated(
        pb::ErrorReason::RefreshTokenReused,
    ))
}

/// Closes the caller's session, the one of a refresh token of theirs, or all their sessions.
pub(super) async fn logout(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::LogoutRequest,
) -> Result<pb::LogoutResponse, ApiError> {
    let act = write.act();
    let caller = act.caller;
    let presented =
        OPTIONAL_REFRESH_TOKEN.parse_optional("refresh_token", &request.refresh_token)?;
    let family = if request.all_sessions {
        None
    } else if let Some(presented) = presented {
        // Only a session of the caller's own can be closed this way.
        Some(
            sessions::family_of(
                &state.pool,
                &tokens::refresh_token_hash(&presented),
                caller.user_id,
            )
            .await?
            .ok_or(ApiError::invalid("refresh_token", "not a session of yours"))?,
        )
    } else {
        Some(caller.session_id)
    };
    state
        .idempotency
        .run(write.key(), request, async |conn| {
            let revoked = match family {
                Some(family) => {
                    let live = sessions::revoke_family(conn, family, RevokeReason::Logout).await?;
                    u64::from(live > 0)
                }
                None => {
                    sessions::revoke_user_sessions(conn, caller.user_id, None, RevokeReason::Logout)
                        .await?
                }
            };
            let event = act
                .audit("auth.logout")
                .detail("sessions", revoked)
                .detail("all_sessions", request.all_sessions);
            audit::append(&mut *conn, &event).await?;
            Ok::<_, ApiError>(pb::LogoutResponse {
                revoked_session_count: i64::try_from(revoked).unwrap_or(i64::MAX),
            })
        })
        .await
}

/// The caller as the authentication layer read them with their standing (`profile`, served
/// from the standing cache, ADR 0009); read from PostgreSQL only when the layer left none.
pub(super) async fn who_am_i(
    state: &AppState,
    caller: &Caller,
    profile: Option<CallerProfile>,
) -> Result<pb::WhoAmIResponse, ApiError> {
    let user = match profile {
        Some(CallerProfile(user)) => Arc::unwrap_or_clone(user),
        None => {
            let mut conn = state.pool.acquire().await?;
            users::get(&mut conn, caller.user_id)
                .await?
                .ok_or(ApiError::Unauthenticated)?
        }
    };
    Ok(pb::WhoAmIResponse {
        user: Some(super::users::to_proto_user(user)),
        permissions: permission_names(caller.permissions.iter().copied()),
        access_token_expire_time: DateTime::from_timestamp(caller.token_expires_at, 0)
            .map(timestamp),
        session_id: caller.session_id.to_string(),
    })
}

/// Errors: INVALID_ARGUMENT, with `PASSWORD_TOO_WEAK` for a new password outside the policy
/// and `CURRENT_PASSWORD_WRONG` for a wrong current one (audited as denied).
pub(super) async fn change_password(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::ChangePasswordRequest,
) -> Result<pb::ChangePasswordResponse, ApiError> {
    let act = write.act();
    let caller = act.caller;
    let mut violations = Violations::new();
    if request.current_password.is_empty() {
        violations.add("current_password", "required");
    }
    violations.check_reasoned(
        "new_password",
        password::check_policy(&request.new_password),
    );
    if request.new_password == request.current_password {
        violations.add("new_password", "must differ from the current password");
    }
    violations.into_result()?;
    let response = state
        .idempotency
        .run(write.key(), request, async |conn| {
            let current = users::password_hash(conn, caller.user_id).await?;
            let ok = password::verify(request.current_password.clone(), current)
                .await
                .map_err(ApiError::internal)?;
            if !ok {
                return Err(ApiError::invalid_with_reason(
                    "current_password",
                    pb::ErrorReason::CurrentPasswordWrong,
                    "incorrect",
                ));
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
                    RevokeReason::PasswordChanged,
                )
                .await?
            } else {
                0
            };
            let event = act
                .audit("auth.password.change")
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
        let mut event = act.audit("auth.password.change");
        event.outcome = Outcome::Denied;
        audit::append(&state.pool, &event).await?;
    }
    response
}
