//! SQL of places on the map: tenants' home locations, with their site for the caller's scope.

use sqlx::PgExecutor;
use uuid::Uuid;

/// A tenant's site and home coordinates (degrees; `None` when unknown).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct TenantHome {
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// The homes of those of `tenant_ids` that exist, in no particular order (one indexed look-up
/// for the whole list).
pub async fn tenant_homes<'e>(
    executor: impl PgExecutor<'e>,
    tenant_ids: &[Uuid],
) -> Result<Vec<TenantHome>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id AS tenant_id, site_id, home_latitude AS latitude, home_longitude AS longitude
         FROM tenants WHERE id = ANY($1)",
    )
    .bind(tenant_ids)
    .fetch_all(executor)
    .await
}
