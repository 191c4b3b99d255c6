//! SQL of sessions: refresh-token families, rotation and revocation, and the per-call check
//! of a user's standing.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::users::{USER_COLUMNS, UserRow};

/// What every authenticated call checks, fresh from the database, so that disabling a user,
/// changing a password or a role, or logging out takes effect on the next call; with the
/// user's profile as WhoAmI shows it, read by the same statement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Standing {
    pub token_version: i32,
    /// The user: role, disabled flag, own sites and profile.
    #[sqlx(flatten)]
    pub user: UserRow,
    /// The sites the user covers; a supervisor's include their team's.
    #[sqlx(rename = "scope_site_ids")]
    pub site_ids: Vec<Uuid>,
    /// The session named by the token was issued to this user and is not revoked (logout,
    /// reuse, password change). A session id that was never issued — a token forged with a
    /// leaked key, or one naming another user's session — is not active.
    pub session_active: bool,
}

impl Standing {
    /// Whether an access token issued under `token_version` is still good: the user is
    /// enabled, the token's session active, and no password change or disabling has moved
    /// the user's token version since.
    pub fn admits(&self, token_version: i32) -> bool {
        !self.user.disabled && self.session_active && self.token_version == token_version
    }
}

/// The standing of `user_id` within the session `session_id`; `None` when there is no such
/// user. A role id this binary does not know is a decoding error.
pub async fn standing<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<Standing>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT u.token_version, {USER_COLUMNS},
                -- A supervisor covers the sites of their team too.
                ARRAY(SELECT DISTINCT site_id FROM user_sites
                      WHERE user_id = u.id
                         OR user_id IN (SELECT id FROM users WHERE supervisor_id = u.id)
                      ORDER BY site_id) AS scope_site_ids,
                -- Issued to this user, and none of its tokens revoked (a revocation revokes
                -- the whole family).
                EXISTS (SELECT 1 FROM refresh_tokens
                        WHERE family_id = $2 AND user_id = u.id)
                AND NOT EXISTS (SELECT 1 FROM refresh_tokens
                        WHERE family_id = $2 AND revoked_at IS NOT NULL)
                    AS session_active
         FROM users u WHERE u.id = $1"
    ))
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(executor)
    .await
}

/// Why a session's tokens were revoked, as stored in `refresh_tokens.revoke_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A consumed refresh token was presented again: taken as theft.
    ReuseDetected,
    /// The user was disabled.
    UserDisabled,
    /// The user changed their password and closed their other sessions.
    PasswordChanged,
    /// An administrator reset the user's password.
    PasswordReset,
}

impl RevokeReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::ReuseDetected => "reuse_detected",
            Self::UserDisabled => "user_disabled",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// A refresh token row, locked for the rotation decision.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub family_expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub token_hash: &'a [u8],
    pub parent_id: Option<Uuid>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub family_expires_at: DateTime<Utc>,
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token: &NewRefreshToken<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens
           (id, family_id, user_id, token_hash, parent_id, issued_at, expires_at,
            family_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token.id)
    .bind(token.family_id)
    .bind(token.user_id)
    .bind(token.token_hash)
    .bind(token.parent_id)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .bind(token.family_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the row of a presented refresh token: concurrent refreshes of one token queue here,
/// so only one can rotate it.
pub async fn lock_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshTokenRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, family_id, user_id, issued_at, expires_at, family_expires_at, consumed_at,
                replaced_by, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn refresh_token_by_id(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(RefreshTokenRow, Vec<u8>)>, sqlx::Error> {
    let row: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT token_hash FROM refresh_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((hash,)) = row else {
        return Ok(None);
    };
    let token = lock_refresh_token(conn, &hash).await?;
    Ok(token.map(|t| (t, hash)))
}

pub async fn mark_consumed(
    conn: &mut PgConnection,
    id: Uuid,
    replaced_by: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET consumed_at = $2, replaced_by = $3 WHERE id = $1")
        .bind(id)
        .bind(at)
        .bind(replaced_by)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live token of a family; returns how many were live.
pub async fn revoke_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    reason: RevokeReason,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $2
         WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(reason.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every session of a user, except `keep` when given; returns the number of sessions.
pub async fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<u64, sqlx::Error> {
    let sessions: i64 = sqlx::query_scalar(
        "WITH revoked AS (
           UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $3
           WHERE user_id = $1 AND revoked_at IS NULL
             AND ($2::uuid IS NULL OR family_id <> $2)
           RETURNING family_id)
         SELECT count(DISTINCT family_id) FROM revoked",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason.as_str())
    .fetch_one(conn)
    .await?;
    Ok(sessions.unsigned_abs())
}

/// The family of a refresh token presented at logout, if it belongs to `user_id`.
pub async fn family_of(
    pool: &PgPool,
    token_hash: &[u8],
    user_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
    )
    .bind(token_hash)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Deletes the tokens of sessions whose family ended more than `grace` ago (pass at least the
/// access token lifetime: an access token of the session may live that long after its end),
/// `batch` rows per statement, until none is left; returns how many were deleted. Past that,
/// the rows answer nothing: no token of the family is valid any more, revoked or not.
pub async fn purge_ended_families(
    pool: &PgPool,
    grace: std::time::Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    crate::db::delete_in_batches(batch, async |limit| {
        let done = sqlx::query(
            "DELETE FROM refresh_tokens
             WHERE id IN (
                 SELECT id FROM refresh_tokens
                 WHERE family_expires_at < now() - $1::interval
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(grace)
        .bind(limit)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    })
    .await
}
