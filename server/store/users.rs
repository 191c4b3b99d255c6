//! SQL of users, their sites and role permissions.
//!
//! Decisions:
//! - Rows decode into domain types here: a user's role is a [`Role`], never the database's
//!   text; a role id this binary does not know fails the decoding (a bug or a newer schema).
//! - The named constraints of `users` and `user_sites` map to [`WriteError`] here, at the
//!   store's edge (ADR 0003); the API layer maps that to gRPC codes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::caller::Scope;
use crate::auth::rbac::Role;

/// The columns of [`UserRow`], of `users u`.
pub(super) const USER_COLUMNS: &str =
    "u.id, u.username, u.full_name, u.phone, u.role_id, u.supervisor_id,
    u.disabled, u.last_login_at, u.created_at, u.must_change_password,
    ARRAY(SELECT site_id FROM user_sites WHERE user_id = u.id ORDER BY site_id) AS site_ids";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub full_name: String,
    pub phone: Option<String>,
    #[sqlx(rename = "role_id", try_from = "String")]
    pub role: Role,
    pub supervisor_id: Option<Uuid>,
    pub disabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub must_change_password: bool,
    pub site_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginRow {
    pub id: Uuid,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub token_version: i32,
    #[sqlx(rename = "role_id", try_from = "String")]
    pub role: Role,
}

/// How a user names themselves at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginName {
    Username(String),
    Phone(String),
}

pub async fn find_for_login(
    pool: &PgPool,
    name: &LoginName,
) -> Result<Option<LoginRow>, sqlx::Error> {
    let (condition, value) = match name {
        LoginName::Username(username) => ("lower(username) = lower($1)", username),
        LoginName::Phone(phone) => ("phone = $1", phone),
    };
    sqlx::query_as(&format!(
        "SELECT id, password_hash, disabled, token_version, role_id FROM users WHERE {condition}"
    ))
    .bind(value)
    .fetch_optional(pool)
    .await
}

pub async fn record_login(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
    ))
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Restricts a user query to what `scope` may see: a site manager the users of their sites, a
/// supervisor their team, an agent themself.
fn push_visibility(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
    match scope {
        Scope::Company => {
            query.push("TRUE");
        }
        Scope::Sites(site_ids) => {
            query
                .push("EXISTS (SELECT 1 FROM user_sites us WHERE us.user_id = u.id AND us.site_id = ANY(")
                .push_bind(site_ids.to_vec())
                .push("))");
        }
        Scope::Team { supervisor_id, .. } => {
            query
                .push("(u.id = ")
                .push_bind(*supervisor_id)
                .push(" OR u.supervisor_id = ")
                .push_bind(*supervisor_id)
                .push(")");
        }
        Scope::Own { agent_id, .. } => {
            query.push("u.id = ").push_bind(*agent_id);
        }
    }
}

pub async fn is_visible(
    pool: &PgPool,
    scope: &Scope,
    caller_id: Uuid,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    if user_id == caller_id {
        return Ok(true);
    }
    let mut query = QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM users u WHERE u.id = ");
    query.push_bind(user_id).push(" AND ");
    push_visibility(&mut query, scope);
    query.push(")");
    query.build_query_scalar().fetch_one(pool).await
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub site_id: Option<Uuid>,
    pub supervisor_id: Option<Uuid>,
    pub show_disabled: bool,
    /// Case-insensitive substring of username or full name.
    pub query: Option<String>,
    /// Keyset cursor: users after this lower-cased username.
    pub after_username: Option<String>,
}

/// One page of users ordered by username, plus the total count matching the filter.
pub async fn list(
    pool: &PgPool,
    scope: &Scope,
    filter: &UserFilter,
    limit: i64,
) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
    let push_filters = |query: &mut QueryBuilder<'_, Postgres>| {
        query.push(" WHERE ");
        push_visibility(query, scope);
        if let Some(role) = filter.role {
            query.push(" AND u.role_id = ").push_bind(role.as_str());
        }
        if let Some(site) = filter.site_id {
            query
                .push(" AND EXISTS (SELECT 1 FROM user_sites s WHERE s.user_id = u.id AND s.site_id = ")
                .push_bind(site)
                .push(")");
        }
        if let Some(supervisor) = filter.supervisor_id {
            query.push(" AND u.supervisor_id = ").push_bind(supervisor);
        }
        if !filter.show_disabled {
            query.push(" AND NOT u.disabled");
        }
        if let Some(text) = &filter.query {
            let pattern = format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            query
                .push(" AND (u.username ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR u.full_name ILIKE ")
                .push_bind(pattern)
                .push(")");
        }
    };

    let mut count = QueryBuilder::new("SELECT count(*) FROM users u");
    push_filters(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;

    let mut page = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u"));
    push_filters(&mut page);
    if let Some(after) = &filter.after_username {
        page.push(" AND lower(u.username) > ")
            .push_bind(after.clone());
    }
    page.push(" ORDER BY lower(u.username) LIMIT ")
        .push_bind(limit);
    let users = page.build_query_as().fetch_all(pool).await?;
    Ok((users, total))
}

/// A user to create. `role_id` is a [`Role`]'s `as_str()`.
pub struct NewUser {
    pub username: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role_id: String,
    pub supervisor_id: Option<Uuid>,
    pub site_ids: Vec<Uuid>,
    pub password_hash: Option<String>,
}

/// Why a user could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `users_username_key`: another user has this username, in any case.
    #[error("username already taken")]
    UsernameTaken,
    /// `users_phone_key`: another user has this phone number.
    #[error("phone number already used")]
    PhoneTaken,
    /// `users_supervisor_id_fkey` or `user_sites_site_id_fkey`: no such supervisor or site.
    #[error("no such supervisor or site")]
    UnknownReference,
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        match error.as_database_error().and_then(|db| db.constraint()) {
            Some("users_username_key") => Self::UsernameTaken,
            Some("users_phone_key") => Self::PhoneTaken,
            Some("users_supervisor_id_fkey" | "user_sites_site_id_fkey") => Self::UnknownReference,
            _ => Self::Database(error),
        }
    }
}

/// Inserts a user with their sites. Errors: [`WriteError`].
pub async fn create(conn: &mut PgConnection, user: &NewUser) -> Result<UserRow, WriteError> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (username, full_name, phone, role_id, supervisor_id, password_hash,
                            must_change_password)
         VALUES ($1, $2, $3, $4, $5, $6, $6 IS NOT NULL) RETURNING id",
    )
    .bind(&user.username)
    .bind(&user.full_name)
    .bind(&user.phone)
    .bind(&user.role_id)
    .bind(user.supervisor_id)
    .bind(&user.password_hash)
    .fetch_one(&mut *conn)
    .await?;
    set_sites(conn, id, &user.site_ids).await?;
    Ok(get(conn, id).await?.expect("the user was just inserted"))
}

async fn set_sites(
    conn: &mut PgConnection,
    user_id: Uuid,
    site_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_sites WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO user_sites (user_id, site_id) SELECT $1, unnest($2::uuid[])")
        .bind(user_id)
        .bind(site_ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub full_name: Option<String>,
    pub phone: Option<Option<String>>,
    pub role: Option<Role>,
    pub supervisor_id: Option<Option<Uuid>>,
    pub site_ids: Option<Vec<Uuid>>,
    pub disabled: Option<bool>,
}

/// Applies `changes`; `None` when there is no such user. A change of role or of the disabled
/// flag bumps the token version, so the user's outstanding access tokens stop working on their
/// next call. Errors: [`WriteError`].
pub async fn update(
    conn: &mut PgConnection,
    user_id: Uuid,
    changes: &UserChanges,
) -> Result<Option<UserRow>, WriteError> {
    let updated = sqlx::query(
        "UPDATE users SET
           full_name = coalesce($2, full_name),
           phone = CASE WHEN $3 THEN $4 ELSE phone END,
           role_id = coalesce($5, role_id),
           supervisor_id = CASE WHEN $6 THEN $7 ELSE supervisor_id END,
           disabled = coalesce($8, disabled),
           token_version = token_version
             + CASE WHEN ($5 IS NOT NULL AND $5 <> role_id)
                      OR ($8 IS NOT NULL AND $8 <> disabled) THEN 1 ELSE 0 END
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(&changes.full_name)
    .bind(changes.phone.is_some())
    .bind(changes.phone.clone().flatten())
    .bind(changes.role.map(Role::as_str))
    .bind(changes.supervisor_id.is_some())
    .bind(changes.supervisor_id.flatten())
    .bind(changes.disabled)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    if let Some(site_ids) = &changes.site_ids {
        set_sites(conn, user_id, site_ids).await?;
    }
    Ok(get(conn, user_id).await?)
}

pub async fn password_hash(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
}

/// Sets a password and bumps the token version: every access token issued before stops
/// working. `chosen_by_admin` asks the user to change it at next login. Returns false when
/// there is no such user.
pub async fn set_password(
    conn: &mut PgConnection,
    user_id: Uuid,
    hash: &str,
    chosen_by_admin: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, must_change_password = $3,
                          token_version = token_version + 1
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(hash)
    .bind(chosen_by_admin)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the password of the users that have none (the demo accounts); returns how many.
pub async fn set_missing_passwords(pool: &PgPool, hash: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE password_hash IS NULL")
        .bind(hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub async fn role_permissions(pool: &PgPool, role_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT permission_id FROM role_permissions WHERE role_id = $1 ORDER BY permission_id",
    )
    .bind(role_id)
    .fetch_all(pool)
    .await
}

/// Every grant, by role then permission name. Grants of a role this binary does not know (added
/// by a newer one) are left out.
pub async fn all_role_permissions(pool: &PgPool) -> Result<Vec<(Role, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT role_id, permission_id FROM role_permissions ORDER BY 1, 2")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(role, permission)| Some((Role::try_from(role).ok()?, permission)))
        .collect())
}

pub async fn permission_catalogue(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, description FROM permissions ORDER BY id")
        .fetch_all(pool)
        .await
}

pub async fn replace_role_permissions(
    conn: &mut PgConnection,
    role: Role,
    permissions: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO role_permissions (role_id, permission_id) SELECT $1, unnest($2::text[])",
    )
    .bind(role.as_str())
    .bind(permissions)
    .execute(&mut *conn)
    .await?;
    // Tokens carry no permissions, so nothing to bump: the next call reads the new set.
    Ok(())
}
