//! SQL of missions, as far as the collections need them: whose mission it is, for which
//! tenant (`domain::mission`). The missions service will add its own queries here.

use sqlx::PgConnection;
use uuid::Uuid;

use super::error::Result;
use crate::domain::MissionLink;

/// The agent and tenant of a mission; `None` for an unknown mission.
pub async fn link(conn: &mut PgConnection, mission_id: Uuid) -> Result<Option<MissionLink>> {
    let row: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT agent_id, tenant_id FROM missions WHERE id = $1")
            .bind(mission_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(agent_id, tenant_id)| MissionLink {
        agent_id,
        tenant_id,
    }))
}
