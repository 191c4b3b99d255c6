//! User administration: CreateUser, GetUser, ListUsers, UpdateUser and ResetPassword.

use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::api::paging::{Pager, Parts};
use crate::api::parse::{self, Text};
use crate::api::write::Write;
use crate::auth::caller::Caller;
use crate::auth::password;
use crate::auth::rbac::{Permission, Role};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::audit;
use crate::store::sessions::{self, RevokeReason};
use crate::store::users::{self, NewUser, UserChanges, UserFilter, UserRow, WriteError};

const USERNAME: Text = Text::line(2, 64);
const FULL_NAME: Text = Text::line(1, 120);
const SITES_MAX: usize = 200;
/// The free-text filter of ListUsers.
const QUERY: Text = Text::line(0, 100);

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::UsernameTaken | WriteError::PhoneTaken => {
                Self::already_exists(pb::ErrorReason::UserAlreadyExists, error.to_string())
            }
            WriteError::UnknownReference => Self::NotFound("referenced object"),
            WriteError::Database(cause) => cause.into(),
        }
    }
}

pub(super) fn to_proto_user(user: UserRow) -> pb::User {
    pb::User {
        user_id: user.id.to_string(),
        username: user.username,
        full_name: user.full_name,
        phone: user.phone.unwrap_or_default(),
        role: user.role.into(),
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

/// A username as the users table accepts it.
pub(super) fn parse_username(field: &str, value: &str) -> Result<String, ApiError> {
    let value = USERNAME.parse(field, value)?;
    let valid = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            "2 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

pub(super) fn parse_role(field: &str, value: i32) -> Result<Role, ApiError> {
    Role::try_from(value).map_err(|_| ApiError::invalid(field, "must be one of the six roles"))
}

fn parse_full_name(field: &str, value: &str) -> Result<String, ApiError> {
    FULL_NAME.parse(field, value)
}

fn parse_site_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>, ApiError> {
    parse::ids(field, values, SITES_MAX)
}

fn parse_new_user(user: &pb::User, initial_password: &str) -> Result<NewUser, ApiError> {
    let mut violations = Violations::new();
    let username = violations.absorb(parse_username("user.username", &user.username));
    let full_name = violations.absorb(parse_full_name("user.full_name", &user.full_name));
    let phone = violations.absorb(convert::optional_phone("user.phone", &user.phone));
    let role = violations.absorb(parse_role("user.role", user.role));
    let site_ids = violations.absorb(parse_site_ids("user.site_ids", &user.site_ids));
    let supervisor_id = violations.absorb(convert::optional_uuid(
        "user.supervisor_id",
        &user.supervisor_id,
    ));
    violations.check_reasoned("initial_password", password::check_policy(initial_password));
    violations.into_result()?;
    Ok(NewUser {
        username: username.unwrap_or_default(),
        full_name: full_name.unwrap_or_default(),
        phone: phone.flatten(),
        role_id: role.map(Role::as_str).unwrap_or_default().to_owned(),
        supervisor_id: supervisor_id.flatten(),
        site_ids: site_ids.unwrap_or_default(),
        password_hash: None,
    })
}

/// The paths UpdateUser may change.
const UPDATABLE: &str = "full_name, phone, role, site_ids, supervisor_id, disabled";

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
                changes.full_name = Some(parse_full_name("user.full_name", &user.full_name)?)
            }
            "phone" => changes.phone = Some(convert::optional_phone("user.phone", &user.phone)?),
            "role" => changes.role = Some(parse_role("user.role", user.role)?),
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
                    format!("{other:?} cannot be changed ({UPDATABLE})"),
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

/// Errors: INVALID_ARGUMENT (with `PASSWORD_TOO_WEAK` for the initial password), ALREADY_EXISTS
/// (`USER_ALREADY_EXISTS`), NOT_FOUND for an unknown site or supervisor.
pub(super) async fn create(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::CreateUserRequest,
) -> Result<pb::CreateUserResponse, ApiError> {
    let user = request
        .user
        .as_ref()
        .ok_or(ApiError::invalid("user", "required"))?;
    let mut new_user = parse_new_user(user, &request.initial_password)?;
    state
        .idempotency
        .run(write.key(), request, async |conn| {
            new_user.password_hash = Some(
                password::hash(request.initial_password.clone())
                    .await
                    .map_err(ApiError::internal)?,
            );
            let created = users::create(conn, &new_user).await?;
            let event = write
                .act()
                .audit(Permission::UsersCreate.as_str())
                .target("user", created.id)
                .detail("role", created.role.as_str());
            audit::append(&mut *conn, &event).await?;
            Ok::<_, ApiError>(pb::CreateUserResponse {
                user: Some(to_proto_user(created)),
            })
        })
        .await
}

/// Errors: NOT_FOUND; PERMISSION_DENIED (`OUT_OF_SCOPE`) for a user the caller does not see.
pub(super) async fn get(
    state: &AppState,
    caller: &Caller,
    request: &pb::GetUserRequest,
) -> Result<pb::GetUserResponse, ApiError> {
    let user_id = convert::uuid("user_id", &request.user_id)?;
    let mut conn = state.pool.acquire().await?;
    let user = users::get(&mut conn, user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    if !users::is_visible(&state.pool, &caller.scope(), caller.user_id, user_id).await? {
        return Err(ApiError::out_of_scope("this user is outside your scope"));
    }
    Ok(pb::GetUserResponse {
        user: Some(to_proto_user(user)),
    })
}

/// The filter of a ListUsers request, without its position (`after_username`).
fn parse_filter(request: &pb::ListUsersRequest) -> Result<UserFilter, ApiError> {
    Ok(UserFilter {
        role: match request.role {
            0 => None,
            role => Some(parse_role("role", role)?),
        },
        site_id: convert::optional_uuid("site_id", &request.site_id)?,
        supervisor_id: convert::optional_uuid("supervisor_id", &request.supervisor_id)?,
        show_disabled: request.show_disabled,
        query: QUERY.parse_optional("query", &request.query)?,
        after_username: None,
    })
}

/// The users the caller sees, by username, with the total count.
pub(super) async fn list(
    state: &AppState,
    caller: &Caller,
    request: &pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, ApiError> {
    let limit = convert::page_size(request.page_size, 50, 500)?;
    let mut filter = parse_filter(request)?;
    let pager = Pager::new(&("users", &filter));
    filter.after_username = pager.position(&request.page_token, |parts: &mut Parts<'_>| {
        parts.last().map(str::to_owned)
    })?;
    let (rows, total) = users::list(&state.pool, &caller.scope(), &filter, limit).await?;
    let next_page_token = match rows.last() {
        Some(last) if rows.len() as i64 == limit => pager.token(&[&last.username.to_lowercase()]),
        _ => String::new(),
    };
    Ok(pb::ListUsersResponse {
        users: rows.into_iter().map(to_proto_user).collect(),
        next_page_token,
        total_size: total,
    })
}

/// Errors: INVALID_ARGUMENT; NOT_FOUND; PERMISSION_DENIED (`PERMISSION_MISSING`) when changing
/// `disabled` without `users.disable`; FAILED_PRECONDITION (`SELF_LOCKOUT`) for disabling
/// oneself; ALREADY_EXISTS (`USER_ALREADY_EXISTS`) for a phone taken.
pub(super) async fn update(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::UpdateUserRequest,
) -> Result<pb::UpdateUserResponse, ApiError> {
    let act = write.act();
    let caller = act.caller;
    let user = request
        .user
        .as_ref()
        .ok_or(ApiError::invalid("user", "required"))?;
    let user_id = convert::uuid("user.user_id", &user.user_id)?;
    let changes = parse_user_changes(user, request.update_mask.as_ref())?;
    if changes.disabled.is_some() && !caller.has(Permission::UsersDisable) {
        return Err(ApiError::permission_missing(Permission::UsersDisable));
    }
    if changes.disabled == Some(true) && user_id == caller.user_id {
        return Err(ApiError::failed_precondition(
            pb::ErrorReason::SelfLockout,
            "you cannot disable your own account",
        ));
    }
    state
        .idempotency
        .run(write.key(), request, async |conn| {
            let before = users::get(conn, user_id)
                .await?
                .ok_or(ApiError::NotFound("user"))?;
            let after = users::update(conn, user_id, &changes)
                .await?
                .ok_or(ApiError::NotFound("user"))?;
            let mut event = act
                .audit(Permission::UsersUpdate.as_str())
                .target("user", user_id);
            if before.role != after.role {
                let (from, to) = (before.role.as_str(), after.role.as_str());
                event = event.detail("role_from", from).detail("role_to", to);
                // A role change is also an auth event of its own.
                let role_change = act
                    .audit("auth.role_change")
                    .target("user", user_id)
                    .detail("from", from)
                    .detail("to", to);
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
        .await
}

/// Sets a password given or generated (shown once, in the first answer only) and closes the
/// user's sessions. Errors: INVALID_ARGUMENT (`PASSWORD_TOO_WEAK`), NOT_FOUND.
pub(super) async fn reset_password(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::ResetPasswordRequest,
) -> Result<pb::ResetPasswordResponse, ApiError> {
    let user_id = convert::uuid("user_id", &request.user_id)?;
    if !request.new_password.is_empty() {
        let mut violations = Violations::new();
        violations.check_reasoned(
            "new_password",
            password::check_policy(&request.new_password),
        );
        violations.into_result()?;
    }
    let generated = request.new_password.is_empty().then(temporary_password);
    let new_password = generated
        .clone()
        .unwrap_or_else(|| request.new_password.clone());
    let reset_here = AtomicBool::new(false);
    let mut response = state
        .idempotency
        .run(write.key(), request, async |conn| {
            let hash = password::hash(new_password)
                .await
                .map_err(ApiError::internal)?;
            if !users::set_password(conn, user_id, &hash, true).await? {
                return Err(ApiError::NotFound("user"));
            }
            reset_here.store(true, Ordering::Relaxed);
            let closed =
                sessions::revoke_user_sessions(conn, user_id, None, RevokeReason::PasswordReset)
                    .await?;
            let event = write
                .act()
                .audit(Permission::UsersResetPassword.as_str())
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
        && reset_here.load(Ordering::Relaxed)
    {
        response.temporary_password = password;
    }
    Ok(response)
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

    #[test]
    fn a_huge_update_mask_path_is_invalid_argument_of_bounded_size() {
        let mask = prost_types::FieldMask {
            paths: vec!["x".repeat(20 * 1024)],
        };
        let error = parse_user_changes(&pb::User::default(), Some(&mask)).unwrap_err();
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() <= crate::api::error::MESSAGE_MAX_BYTES);
    }

    #[test]
    fn a_weak_initial_password_says_why() {
        use tonic_types::StatusExt;
        let user = pb::User {
            username: "awa.camara".into(),
            full_name: "Awa Camara".into(),
            role: pb::Role::Agent as i32,
            ..Default::default()
        };
        let error = parse_new_user(&user, "court").err().expect("refused");
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.get_details_error_info().expect("reason").reason,
            "ERROR_REASON_PASSWORD_TOO_WEAK"
        );
    }
}
