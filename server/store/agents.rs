//! SQL of users in their agent's part: who may be named as the agent of a call, a visit or a
//! payment, and which agents the daily figures list. (Accounts, passwords and sessions are
//! `store::users` and `store::sessions`.)

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::error::{Result, decode};
use crate::auth::rbac::Role;

/// A user named as the agent of an action: their role, whether their account is disabled, and
/// the sites they cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub role: Role,
    pub disabled: bool,
    pub site_ids: Vec<Uuid>,
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    role_id: String,
    disabled: bool,
    site_ids: Vec<Uuid>,
}

/// The user `user_id`; `None` for an unknown user.
pub async fn get<'e>(executor: impl PgExecutor<'e>, user_id: Uuid) -> Result<Option<Agent>> {
    let row: Option<AgentRow> = sqlx::query_as(
        "SELECT u.id, u.role_id, u.disabled,
                coalesce(array_agg(us.site_id) FILTER (WHERE us.site_id IS NOT NULL), '{}')
                    AS site_ids
         FROM users u LEFT JOIN user_sites us ON us.user_id = u.id
         WHERE u.id = $1
         GROUP BY u.id",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(Agent {
            id: row.id,
            role: decode(&row.role_id)?,
            disabled: row.disabled,
            site_ids: row.site_ids,
        })
    })
    .transpose()
}

/// Which agents get a line in the daily figures.
#[derive(Debug, Clone)]
pub struct AgentFilter<'a> {
    /// Only agents covering at least one of these sites; `None`: any.
    pub covering: Option<&'a [Uuid]>,
    /// Only agents supervised by this user.
    pub supervisor_id: Option<Uuid>,
    /// Only these agents; `None`: any.
    pub agent_ids: Option<&'a [Uuid]>,
}

/// An agent with the sites they cover.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentLine {
    pub id: Uuid,
    pub full_name: String,
    pub disabled: bool,
    pub site_ids: Vec<Uuid>,
}

/// Users of role agent matching `filter`, by name.
pub async fn list(conn: &mut PgConnection, filter: &AgentFilter<'_>) -> Result<Vec<AgentLine>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.full_name, u.disabled,
                ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id
                      ORDER BY us.site_id) AS site_ids
         FROM users u
         WHERE u.role_id = $4
           AND ($1::uuid[] IS NULL
                OR EXISTS (SELECT 1 FROM user_sites us
                           WHERE us.user_id = u.id AND us.site_id = ANY($1)))
           AND ($2::uuid IS NULL OR u.supervisor_id = $2)
           AND ($3::uuid[] IS NULL OR u.id = ANY($3))
         ORDER BY u.full_name, u.id",
    )
    .bind(filter.covering)
    .bind(filter.supervisor_id)
    .bind(filter.agent_ids)
    .bind(Role::Agent.as_str())
    .fetch_all(conn)
    .await?)
}
