//! Who is calling, as established by the authentication layer, and what they may see.
//!
//! Decisions:
//! - A refusal here is a [`CallerError`], which `crate::api::error` turns into a status: the
//!   identity types depend on nothing above them, so the store and the use cases can use them.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::auth::rbac::{Permission, Role};

/// The authenticated caller of a request, put in the request extensions by
/// the authentication layer (`crate::auth::layer`). Handlers take it with [`Caller::of`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    /// The session (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
    pub permissions: Arc<HashSet<Permission>>,
    /// Sites the user covers (agents, site managers, supervisors).
    pub site_ids: Arc<[Uuid]>,
    pub client_ip: Option<IpAddr>,
    /// Expiry of the access token, seconds since the epoch.
    pub token_expires_at: i64,
    /// The user's token version the access token was issued under (its `ver` claim): a
    /// password change or a disabling moves the user's, and the token stops working.
    pub token_version: i32,
}

/// Why a request has no caller, or the caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// The request went through no authentication: a method wrongly mapped as public.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller's role lacks the permission.
    #[error("missing permission {}", .0.as_str())]
    PermissionMissing(Permission),
}

/// What part of the company's data a caller sees, on top of their permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Director, accountant, admin: every site.
    Company,
    /// Site manager: their own sites.
    Sites(Arc<[Uuid]>),
    /// Supervisor: the agents they supervise, and the sites they cover.
    Team {
        supervisor_id: Uuid,
        site_ids: Arc<[Uuid]>,
    },
    /// Agent: their own missions and records, and the tenants of the sites assigned to them.
    Own {
        agent_id: Uuid,
        site_ids: Arc<[Uuid]>,
    },
}

impl Caller {
    /// The caller of an authenticated request. Only fails if a method was wrongly mapped as
    /// public, which the permission-table test rules out.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, CallerError> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or(CallerError::Unauthenticated)
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn require(&self, permission: Permission) -> Result<(), CallerError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(CallerError::PermissionMissing(permission))
        }
    }

    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin | Role::Director | Role::Accountant => Scope::Company,
            Role::SiteManager => Scope::Sites(self.site_ids.clone()),
            Role::Supervisor => Scope::Team {
                supervisor_id: self.user_id,
                site_ids: self.site_ids.clone(),
            },
            Role::Agent => Scope::Own {
                agent_id: self.user_id,
                site_ids: self.site_ids.clone(),
            },
        }
    }
}

impl Scope {
    /// Whether a site's data (tenants, arrears, payments) is visible.
    pub fn covers_site(&self, site_id: Uuid) -> bool {
        match self {
            Scope::Company => true,
            Scope::Sites(sites)
            | Scope::Team {
                site_ids: sites, ..
            }
            | Scope::Own {
                site_ids: sites, ..
            } => sites.contains(&site_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, sites: &[Uuid]) -> Caller {
        Caller {
            user_id: Uuid::from_u128(1),
            role,
            session_id: Uuid::from_u128(2),
            permissions: Arc::new(HashSet::new()),
            site_ids: sites.into(),
            client_ip: None,
            token_expires_at: 0,
            token_version: 0,
        }
    }

    #[test]
    fn scope_follows_role() {
        let kaloum = Uuid::from_u128(10);
        let matoto = Uuid::from_u128(11);
        assert!(caller(Role::Director, &[]).scope().covers_site(matoto));
        assert!(caller(Role::Accountant, &[]).scope().covers_site(matoto));
        for role in [Role::SiteManager, Role::Supervisor, Role::Agent] {
            let scope = caller(role, &[kaloum]).scope();
            assert!(scope.covers_site(kaloum), "{role:?}");
            assert!(!scope.covers_site(matoto), "{role:?}");
        }
    }

    #[test]
    fn require_names_the_missing_permission() {
        let err = caller(Role::Agent, &[])
            .require(Permission::UsersCreate)
            .unwrap_err();
        assert!(err.to_string().contains("users.create"));
    }
}
