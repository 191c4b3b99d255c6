//! The shared handles every gRPC service gets, built once by `crate::startup`.
//!
//! Decisions:
//! - Its own module, which imports no service and no start-up code, so that `api/` and
//!   `startup` both depend on it and not on each other.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::config::CollectionsConfig;
use crate::auth::config::AuthConfig;
use crate::auth::roles::RolePermissions;
use crate::auth::standing::StandingCache;
use crate::cache::Cache;
use crate::idempotency::Idempotency;
use crate::limits::{LoginThrottle, RateLimits};

/// Shared handles every service gets. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub cache: Cache,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    pub auth: AuthConfig,
    pub roles: RolePermissions,
    /// Every caller's standing, checked on each call; see `crate::auth::standing`.
    pub standing: StandingCache,
    pub login_throttle: LoginThrottle,
    pub rate_limits: RateLimits,
    pub idempotency: Idempotency,
    pub collections: CollectionsConfig,
    pub route: crate::geo::RouteConfig,
    /// Live positions: the hub (last positions, watchers, sessions) and the ingest buffer.
    pub live: crate::live::LiveHub,
    pub ingest: crate::app::positions::Ingest,
}
