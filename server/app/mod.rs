//! Use cases: what each operation of the product does, in plain Rust — the scope check, the
//! transaction and its locks, the store calls and the domain rules, in order — with no
//! protobuf. The gRPC adapters in `api/` parse a request into the types here, call one use
//! case and turn its answer into a response; background jobs and other callers call the same
//! functions.
//!
//! Decisions:
//! - One module per group of operations (payments, reversals, interactions, promises, tenants,
//!   daily stats, the arrears map); a new service adds its own modules (missions, geo, dashboards).
//! - A write runs in the transaction the caller gives it (the idempotency run of the API);
//!   a read opens its own read-only snapshot.
//! - Errors are [`AppError`]: what went wrong in the product's words. The API maps each one
//!   to a status and an ErrorReason in one place (`api::collections::errors`).
//! - A write answers the audit event of what it wrote (`None` when it answers a stored result
//!   instead: a retry); the idempotency run stores it with the result.

pub mod alerts;
pub mod config;
pub mod daily_report;
pub mod daily_stats;
pub mod dashboard;
pub mod interactions;
mod ledger;
pub mod map;
pub mod missions;
pub mod payments;
pub mod performance;
pub mod positions;
pub mod promises;
pub mod reversals;
pub mod tenant_search;
pub mod tenants;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::auth::caller::{Caller, Scope};
use crate::domain::{Gnf, MissionMismatch, MoneyOverflow, PaymentMethod, PromiseStatus};
use crate::store::StoreError;
use crate::store::audit::{AuditEvent, Outcome};
use crate::store::tenants::{self as tenant_store, TenantSite};

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The object (`"tenant"`, `"payment"`, ...) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The object exists but is outside the caller's scope.
    #[error("{0}")]
    OutOfScope(&'static str),
    /// The caller's role may not do this.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// A field of the request names something that does not fit (another tenant's visit, an
    /// agent who does not cover the site...).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The mission named is not the acting agent's for this tenant.
    #[error("mission_id: {0}")]
    MissionMismatch(#[from] MissionMismatch),
    /// The tenant has moved out.
    #[error("the tenant has moved out")]
    TenantInactive,
    /// Another generation of missions for the day holds its lock.
    #[error("{}", missions::GENERATION_RUNNING)]
    GenerationRunning,
    /// The mission status change is not allowed.
    #[error(transparent)]
    MissionTransition(crate::domain::TransitionError),
    /// Only a planned mission can be reassigned.
    #[error(transparent)]
    MissionAlreadyStarted(crate::domain::AlreadyStarted),
    /// Only an open alert can be acknowledged; this one is acknowledged or resolved.
    #[error("the alert is {0}, not open")]
    AlertNotOpen(crate::domain::alerts::AlertState),
    /// Only a pending promise can be changed or paid towards by name.
    #[error("the promise is {0}, not pending")]
    PromiseNotPending(PromiseStatus),
    /// A live payment already carries this operator reference.
    #[error("a payment with this {0} operator reference is already recorded")]
    OperatorReferenceDuplicate(PaymentMethod),
    #[error("this payment has already been reversed")]
    PaymentAlreadyReversed,
    /// The credit a payment left has been spent since.
    #[error(
        "the credit this payment left ({credit}) has already been used by later charges \
         ({missing} missing); it cannot be reversed"
    )]
    PaymentCreditUsed { credit: Gnf, missing: Gnf },
    /// The client's request_id was used for another request.
    #[error("request_id was already used for a different request")]
    RequestIdReused,
    /// The request_id was taken, meanwhile, by a call the idempotency key did not cover (another
    /// user's, or a retry after the key expired): the caller rolls back and runs once more, to
    /// find the stored entry.
    #[error("request_id taken by a concurrent call")]
    RequestIdTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug: logged with its cause, answered with a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// A fault of the system rather than a refusal of the request: the database is out of
    /// reach, or a bug. A write does not answer it with a stored result.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Self::Internal(_) | Self::Store(StoreError::Unavailable(_) | StoreError::Other(_))
        )
    }
}

impl From<MoneyOverflow> for AppError {
    fn from(error: MoneyOverflow) -> Self {
        Self::internal(error)
    }
}

/// A write: who acts, the client's request_id, and when the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Act<'a> {
    pub caller: &'a Caller,
    pub request_id: Uuid,
    pub now: DateTime<Utc>,
}

impl Act<'_> {
    /// The audit event of this write (`action` is its permission's name), by the caller.
    pub fn audit(&self, action: &str) -> AuditEvent {
        let mut event = AuditEvent::new(action, Outcome::Ok).request(self.request_id);
        event.actor_id = Some(self.caller.user_id);
        event.actor_role = Some(self.caller.role.as_str().to_owned());
        event.client_ip = self.caller.client_ip;
        event
    }
}

/// The tenant's site, once the caller is known to be allowed to see the tenant: NotFound for
/// an unknown tenant, OutOfScope for one outside the caller's sites.
pub async fn tenant_in_scope<'e>(
    executor: impl PgExecutor<'e>,
    caller: &Caller,
    tenant_id: Uuid,
) -> Result<TenantSite, AppError> {
    let tenant = tenant_store::site_of(executor, tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    ensure_covers(caller, tenant.site_id)?;
    Ok(tenant)
}

/// OutOfScope unless the caller's scope covers the tenant's site.
pub fn ensure_covers(caller: &Caller, site_id: Uuid) -> Result<(), AppError> {
    if caller.scope().covers_site(site_id) {
        Ok(())
    } else {
        Err(AppError::OutOfScope("this tenant is outside your sites"))
    }
}

/// The sites a list may show: the requested ones within the caller's scope. `None`: no site
/// can match. `Some(None)`: every site.
#[allow(clippy::option_option)]
pub fn sites_in_scope(scope: &Scope, requested: Option<&[Uuid]>) -> Option<Option<Vec<Uuid>>> {
    let allowed: Option<Vec<Uuid>> = match scope {
        Scope::Company => None,
        Scope::Sites(sites)
        | Scope::Team {
            site_ids: sites, ..
        }
        | Scope::Own {
            site_ids: sites, ..
        } => Some(sites.to_vec()),
    };
    let sites = match (allowed, requested) {
        (None, None) => return Some(None),
        (None, Some(requested)) => requested.to_vec(),
        (Some(allowed), None) => allowed,
        (Some(allowed), Some(requested)) => requested
            .iter()
            .copied()
            .filter(|id| allowed.contains(id))
            .collect(),
    };
    (!sites.is_empty()).then_some(Some(sites))
}
