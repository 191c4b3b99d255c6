//! Roles and permissions: ListRoles, ListPermissions and UpdateRolePermissions.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::{permission_names, users::parse_role};
use crate::api::error::{ApiError, Violations};
use crate::api::parse::Text;
use crate::api::write::Write;
use crate::auth::rbac::{Permission, Role};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::audit;

/// A permission name as given, before it is looked up in the catalogue.
const PERMISSION: Text = Text::line(1, 100);
use crate::store::users;

fn role_definition(role: Role, permissions: Vec<String>) -> pb::RoleDefinition {
    pb::RoleDefinition {
        role: role.into(),
        display_name: role.label_fr().to_owned(),
        permissions,
    }
}

/// The six roles with the names of the permissions each holds.
pub(super) async fn list_roles(state: &AppState) -> Result<pb::ListRolesResponse, ApiError> {
    let mut by_role: BTreeMap<Role, Vec<String>> =
        Role::ALL.into_iter().map(|r| (r, Vec::new())).collect();
    for (role, permission) in users::all_role_permissions(&state.pool).await? {
        by_role.entry(role).or_default().push(permission);
    }
    Ok(pb::ListRolesResponse {
        roles: by_role
            .into_iter()
            .map(|(role, permissions)| role_definition(role, permissions))
            .collect(),
    })
}

/// The permission catalogue, with the RPCs each permission opens.
pub(super) async fn list_permissions(
    state: &AppState,
) -> Result<pb::ListPermissionsResponse, ApiError> {
    let catalogue = users::permission_catalogue(&state.pool).await?;
    Ok(pb::ListPermissionsResponse {
        permissions: catalogue
            .into_iter()
            .map(|(name, description)| pb::Permission {
                methods: Permission::from_str(&name)
                    .map(|p| p.methods().map(str::to_owned).collect())
                    .unwrap_or_default(),
                name,
                description,
            })
            .collect(),
    })
}

/// Replaces a role's permissions; the role cache is invalidated after the commit. Errors:
/// INVALID_ARGUMENT (unknown permission name), FAILED_PRECONDITION (`ADMIN_ROLE_FIXED`).
pub(super) async fn update_role_permissions(
    state: &AppState,
    write: &Write<'_>,
    request: &pb::UpdateRolePermissionsRequest,
) -> Result<pb::UpdateRolePermissionsResponse, ApiError> {
    let role = parse_role("role", request.role)?;
    if role == Role::Admin {
        return Err(ApiError::failed_precondition(
            pb::ErrorReason::AdminRoleFixed,
            "the admin role always holds every permission",
        ));
    }
    let mut violations = Violations::new();
    let permissions: Vec<Permission> = request
        .permissions
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let field = format!("permissions[{i}]");
            let name = violations.absorb(PERMISSION.parse(&field, name))?;
            violations.check(&field, Permission::from_str(&name))
        })
        .collect();
    violations.into_result()?;
    let mut names = permission_names(permissions);
    names.dedup();
    let response = state
        .idempotency
        .run(write.key(), request, async |conn| {
            users::replace_role_permissions(conn, role, &names).await?;
            let event = write
                .act()
                .audit(Permission::RolesUpdate.as_str())
                .target("role", role.as_str())
                .detail("permissions", names.clone());
            audit::append(&mut *conn, &event).await?;
            Ok::<_, ApiError>(pb::UpdateRolePermissionsResponse {
                role: Some(role_definition(role, names.clone())),
            })
        })
        .await?;
    // After the commit, so no reader caches the old set again.
    state.roles.invalidate(role).await;
    Ok(response)
}
