//! The permission set of each role, read through the shared cache: every call checks its
//! method's permission against the caller's role.
//!
//! Decisions:
//! - Cached 5 minutes in the shared cache (the seed's palette), and a few seconds in each
//!   process, which spares a Redis round trip per call. An admin's change invalidates both at
//!   once in the replica that made it; other replicas see it within the local TTL (ADR 0006).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;

use crate::auth::rbac::{Permission, Role};
use crate::cache::Cache;
use crate::store::users;

/// Seed palette: permissions are cached 5 minutes, and invalidated when a role changes.
const ROLE_PERMISSIONS_TTL: Duration = Duration::from_secs(300);
/// Each process also keeps them a few seconds, which spares a Redis round trip on every call;
/// another replica sees a change within this delay (the changing one at once).
const LOCAL_TTL: Duration = Duration::from_secs(5);

/// The permission set of each role, from the database through the shared cache.
#[derive(Clone)]
pub struct RolePermissions {
    pool: PgPool,
    cache: Cache,
    local: moka::sync::Cache<Role, Arc<HashSet<Permission>>>,
}

impl RolePermissions {
    pub fn new(pool: PgPool, cache: Cache) -> Self {
        let local = moka::sync::Cache::builder()
            .max_capacity(16)
            .time_to_live(LOCAL_TTL)
            .build();
        Self { pool, cache, local }
    }

    fn key(role: Role) -> String {
        format!("rbac:role:{}", role.as_str())
    }

    pub async fn get(&self, role: Role) -> Result<Arc<HashSet<Permission>>, sqlx::Error> {
        if let Some(permissions) = self.local.get(&role) {
            return Ok(permissions);
        }
        let key = Self::key(role);
        let names = match self.cache.get(&key).await {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let names = users::role_permissions(&self.pool, role.as_str())
                    .await?
                    .join("\n");
                self.cache
                    .set(&key, Bytes::from(names.clone()), ROLE_PERMISSIONS_TTL)
                    .await;
                names
            }
        };
        // A name unknown to this binary (granted by a newer one) is ignored.
        let permissions: Arc<HashSet<Permission>> = Arc::new(
            names
                .lines()
                .filter_map(|name| Permission::from_str(name).ok())
                .collect(),
        );
        self.local.insert(role, permissions.clone());
        Ok(permissions)
    }

    pub async fn invalidate(&self, role: Role) {
        self.local.invalidate(&role);
        self.cache.delete(&Self::key(role)).await;
    }
}
