//! SQL of sites, as far as the collections need them: their names.

use sqlx::PgConnection;
use uuid::Uuid;

use super::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteName {
    pub id: Uuid,
    pub name: String,
}

/// Sites by name; `None`: every site.
pub async fn names(conn: &mut PgConnection, site_ids: Option<&[Uuid]>) -> Result<Vec<SiteName>> {
    Ok(sqlx::query_as(
        "SELECT id, name FROM sites WHERE $1::uuid[] IS NULL OR id = ANY($1) ORDER BY name, id",
    )
    .bind(site_ids)
    .fetch_all(conn)
    .await?)
}
