//! Role-based access control: the permission catalogue, the one table that maps every RPC to
//! the permission it needs, and the six roles.
//!
//! Deny by default: [`permission_for`] answers [`Access::Unmapped`] for any path that is neither
//! in [`METHOD_PERMISSIONS`] nor public, and such a call is refused. Which role holds which
//! permission is data (tables `permissions` and `role_permissions`, seeded by migration
//! `20261126000009_permissions.sql`); this module only knows the names. The object scope (own
//! sites, own team, own records) is checked by the handlers, not here. See `docs/rbac.md`.

use std::fmt;
use std::str::FromStr;

use crate::proto::v1 as pb;

macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// A permission of the catalogue. The database holds the same names (table
        /// `permissions`); a role's grants are rows of `role_permissions`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($(#[$doc])* $variant,)+
        }

        impl Permission {
            /// The whole catalogue, in declaration order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)+];

            /// The permission's name, as stored in the database, e.g.
            /// `collections.payments.record`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)+
                }
            }
        }

        impl FromStr for Permission {
            type Err = UnknownPermission;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(Permission::$variant),)+
                    _ => Err(UnknownPermission(name.to_owned())),
                }
            }
        }
    };
}

permissions! {
    AuthSelfRead => "auth.self.read",
    AuthSelfLogout => "auth.self.logout",
    AuthSelfPassword => "auth.self.password",
    UsersCreate => "users.create",
    UsersRead => "users.read",
    UsersUpdate => "users.update",
    /// No RPC of its own: checked inside UpdateUser when the `disabled` field changes.
    UsersDisable => "users.disable",
    UsersResetPassword => "users.reset_password",
    RolesRead => "roles.read",
    RolesUpdate => "roles.update",
    AuditRead => "audit.read",
    CollectionsCallsRecord => "collections.calls.record",
    CollectionsVisitsRecord => "collections.visits.record",
    CollectionsPaymentsRecord => "collections.payments.record",
    CollectionsPaymentsReverse => "collections.payments.reverse",
    CollectionsPaymentsRead => "collections.payments.read",
    CollectionsPromisesRead => "collections.promises.read",
    CollectionsPromisesUpdate => "collections.promises.update",
    CollectionsTenantsRead => "collections.tenants.read",
    CollectionsTenantsSearch => "collections.tenants.search",
    CollectionsArrearsRead => "collections.arrears.read",
    CollectionsStatsRead => "collections.stats.read",
    MissionsGenerate => "missions.generate",
    MissionsRead => "missions.read",
    MissionsUpdate => "missions.update",
    /// No RPC of its own: checked inside UpdateMission when the mission's agent changes.
    MissionsReassign => "missions.reassign",
    PerformanceRead => "performance.read",
    RankingsRead => "rankings.read",
    GeoMarkersRead => "geo.markers.read",
    GeoRoutesOptimize => "geo.routes.optimize",
    GeoPositionsReport => "geo.positions.report",
    GeoPositionsRead => "geo.positions.read",
    GeoTracksRead => "geo.tracks.read",
    DashboardSummaryRead => "dashboard.summary.read",
    DashboardSitesRead => "dashboard.sites.read",
    DashboardGoodPayersRead => "dashboard.good_payers.read",
    DashboardReportsRead => "dashboard.reports.read",
    DashboardReportsExport => "dashboard.reports.export",
    DashboardAlertsRead => "dashboard.alerts.read",
    DashboardAlertsAcknowledge => "dashboard.alerts.acknowledge",
}

impl Permission {
    /// The gRPC paths this permission opens (for ListPermissions), in table order. Empty for
    /// the permissions checked inside a handler (`users.disable`, `missions.reassign`).
    pub fn methods(self) -> impl Iterator<Item = &'static str> {
        METHOD_PERMISSIONS
            .iter()
            .filter(move |(_, permission)| *permission == self)
            .map(|(path, _)| *path)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not in the permission catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

use Permission as P;

/// The akig.v1 RPCs callable without an access token.
pub const PUBLIC_METHODS: &[&str] = &["/akig.v1.AuthService/Login", "/akig.v1.AuthService/Refresh"];

/// The permission each akig.v1 RPC needs, keyed by gRPC path. Every RPC except those of
/// [`PUBLIC_METHODS`] has exactly one row here; an RPC without a row is refused.
#[rustfmt::skip] // one row per line, as a table
pub const METHOD_PERMISSIONS: &[(&str, Permission)] = &[
    // AuthService (Login and Refresh are public).
    ("/akig.v1.AuthService/Logout", P::AuthSelfLogout),
    ("/akig.v1.AuthService/WhoAmI", P::AuthSelfRead),
    ("/akig.v1.AuthService/ChangePassword", P::AuthSelfPassword),
    ("/akig.v1.AuthService/CreateUser", P::UsersCreate),
    ("/akig.v1.AuthService/GetUser", P::UsersRead),
    ("/akig.v1.AuthService/ListUsers", P::UsersRead),
    ("/akig.v1.AuthService/UpdateUser", P::UsersUpdate),
    ("/akig.v1.AuthService/ResetPassword", P::UsersResetPassword),
    ("/akig.v1.AuthService/ListRoles", P::RolesRead),
    ("/akig.v1.AuthService/ListPermissions", P::RolesRead),
    ("/akig.v1.AuthService/UpdateRolePermissions", P::RolesUpdate),
    ("/akig.v1.AuthService/ListAuditEntries", P::AuditRead),
    // CollectionsService.
    ("/akig.v1.CollectionsService/RecordCall", P::CollectionsCallsRecord),
    ("/akig.v1.CollectionsService/RecordVisit", P::CollectionsVisitsRecord),
    ("/akig.v1.CollectionsService/RecordPayment", P::CollectionsPaymentsRecord),
    ("/akig.v1.CollectionsService/ReversePayment", P::CollectionsPaymentsReverse),
    ("/akig.v1.CollectionsService/GetPayment", P::CollectionsPaymentsRead),
    ("/akig.v1.CollectionsService/ListPayments", P::CollectionsPaymentsRead),
    ("/akig.v1.CollectionsService/ListPromises", P::CollectionsPromisesRead),
    ("/akig.v1.CollectionsService/UpdatePromise", P::CollectionsPromisesUpdate),
    ("/akig.v1.CollectionsService/GetTenant", P::CollectionsTenantsRead),
    ("/akig.v1.CollectionsService/GetTenantHistory", P::CollectionsTenantsRead),
    ("/akig.v1.CollectionsService/SearchTenants", P::CollectionsTenantsSearch),
    ("/akig.v1.CollectionsService/GetTenantArrears", P::CollectionsArrearsRead),
    ("/akig.v1.CollectionsService/GetDailyStats", P::CollectionsStatsRead),
    // MissionsService.
    ("/akig.v1.MissionsService/GenerateMissions", P::MissionsGenerate),
    ("/akig.v1.MissionsService/ListTodayMissions", P::MissionsRead),
    ("/akig.v1.MissionsService/ListAgentMissions", P::MissionsRead),
    ("/akig.v1.MissionsService/UpdateMission", P::MissionsUpdate),
    ("/akig.v1.MissionsService/GetAgentPerformance", P::PerformanceRead),
    ("/akig.v1.MissionsService/GetPerformanceHistory", P::PerformanceRead),
    ("/akig.v1.MissionsService/GetDailyRanking", P::RankingsRead),
    ("/akig.v1.MissionsService/GetMonthlyRanking", P::RankingsRead),
    // GeoService.
    ("/akig.v1.GeoService/ListArrearsMarkers", P::GeoMarkersRead),
    ("/akig.v1.GeoService/OptimizeRoute", P::GeoRoutesOptimize),
    ("/akig.v1.GeoService/RouteSession", P::GeoRoutesOptimize),
    ("/akig.v1.GeoService/AgentSession", P::GeoPositionsReport),
    ("/akig.v1.GeoService/ReportPositions", P::GeoPositionsReport),
    ("/akig.v1.GeoService/ListAgentPositions", P::GeoPositionsRead),
    ("/akig.v1.GeoService/WatchAgents", P::GeoPositionsRead),
    ("/akig.v1.GeoService/GetAgentTrack", P::GeoTracksRead),
    // DashboardService.
    ("/akig.v1.DashboardService/GetSummary", P::DashboardSummaryRead),
    ("/akig.v1.DashboardService/ListSites", P::DashboardSitesRead),
    ("/akig.v1.DashboardService/GetSite", P::DashboardSitesRead),
    ("/akig.v1.DashboardService/ListGoodPayers", P::DashboardGoodPayersRead),
    ("/akig.v1.DashboardService/GetDailyReport", P::DashboardReportsRead),
    ("/akig.v1.DashboardService/ExportDailyReport", P::DashboardReportsExport),
    ("/akig.v1.DashboardService/ListAlerts", P::DashboardAlertsRead),
    ("/akig.v1.DashboardService/AcknowledgeAlert", P::DashboardAlertsAcknowledge),
];

/// What a call needs before it reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No access token: Login, Refresh, gRPC health and reflection.
    Public,
    /// A valid access token whose role holds this permission.
    Authenticated(Permission),
    /// Not in the table: refused (PERMISSION_DENIED, or UNIMPLEMENTED for an unknown path).
    Unmapped,
}

impl Access {
    /// The permission needed, if the call needs one.
    pub const fn permission(self) -> Option<Permission> {
        match self {
            Access::Authenticated(permission) => Some(permission),
            Access::Public | Access::Unmapped => None,
        }
    }
}

/// What the call to `path` (`/package.Service/Method`) needs. Deny by default: any path that is
/// not public and not in [`METHOD_PERMISSIONS`] is [`Access::Unmapped`].
pub fn permission_for(path: &str) -> Access {
    // About fifty rows: a scan is as fast as a hash lookup and needs no start-up state.
    if let Some((_, permission)) = METHOD_PERMISSIONS
        .iter()
        .find(|(method, _)| *method == path)
    {
        return Access::Authenticated(*permission);
    }
    if PUBLIC_METHODS.contains(&path) || is_public_infrastructure(path) {
        return Access::Public;
    }
    Access::Unmapped
}

/// Any method of `grpc.health.v1.Health` and of the `grpc.reflection.*` services.
fn is_public_infrastructure(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    if method.is_empty() || method.contains('/') {
        return false;
    }
    service == "grpc.health.v1.Health" || service.starts_with("grpc.reflection.")
}

/// The six roles, as in table `roles` and the proto enum `akig.v1.Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Director,
    SiteManager,
    Supervisor,
    Agent,
    Accountant,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Director,
        Role::SiteManager,
        Role::Supervisor,
        Role::Agent,
        Role::Accountant,
    ];

    /// The role's id in the database (`roles.id`, `users.role_id`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Director => "director",
            Role::SiteManager => "site_manager",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Accountant => "accountant",
        }
    }

    /// The role's name as the users see it (`roles.label_fr`).
    pub const fn label_fr(self) -> &'static str {
        match self {
            Role::Admin => "Administrateur",
            Role::Director => "Direction",
            Role::SiteManager => "Gestionnaire de site",
            Role::Supervisor => "Superviseur",
            Role::Agent => "Agent de recouvrement",
            Role::Accountant => "Comptable",
        }
    }

    pub const fn to_proto(self) -> pb::Role {
        match self {
            Role::Admin => pb::Role::Admin,
            Role::Director => pb::Role::Director,
            Role::SiteManager => pb::Role::SiteManager,
            Role::Supervisor => pb::Role::Supervisor,
            Role::Agent => pb::Role::Agent,
            Role::Accountant => pb::Role::Accountant,
        }
    }

    /// `None` for `ROLE_UNSPECIFIED`, which is never a user's role.
    pub const fn from_proto(role: pb::Role) -> Option<Role> {
        match role {
            pb::Role::Unspecified => None,
            pb::Role::Admin => Some(Role::Admin),
            pb::Role::Director => Some(Role::Director),
            pb::Role::SiteManager => Some(Role::SiteManager),
            pb::Role::Supervisor => Some(Role::Supervisor),
            pb::Role::Agent => Some(Role::Agent),
            pb::Role::Accountant => Some(Role::Accountant),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the six roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRole {
    #[error("unknown role {0:?}")]
    Name(String),
    /// `ROLE_UNSPECIFIED` (0) or a value outside the proto enum.
    #[error("role value {0} is not a role")]
    Proto(i32),
}

impl FromStr for Role {
    type Err = InvalidRole;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == id)
            .ok_or_else(|| InvalidRole::Name(id.to_owned()))
    }
}

/// A role id as the database stores it (`users.role_id`), for rows decoded with
/// `#[sqlx(try_from = "String")]`.
impl TryFrom<String> for Role {
    type Error = InvalidRole;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Role::from_str(&id)
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        role.to_proto()
    }
}

impl From<Role> for i32 {
    fn from(role: Role) -> Self {
        role.to_proto() as i32
    }
}

impl TryFrom<pb::Role> for Role {
    type Error = InvalidRole;

    fn try_from(role: pb::Role) -> Result<Self, Self::Error> {
        Role::from_proto(role).ok_or(InvalidRole::Proto(role as i32))
    }
}

/// The wire value of a proto `Role` field.
impl TryFrom<i32> for Role {
    type Error = InvalidRole;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        pb::Role::try_from(value)
            .ok()
            .and_then(Role::from_proto)
            .ok_or(InvalidRole::Proto(value))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::layers::MethodCatalog;
    use crate::startup::descriptor_sets;

    fn catalog() -> MethodCatalog {
        MethodCatalog::from_descriptor_sets(&descriptor_sets()).expect("descriptor sets decode")
    }

    fn akig_methods(catalog: &MethodCatalog) -> BTreeSet<&str> {
        catalog
            .iter()
            .map(|(path, _)| path)
            .filter(|path| path.starts_with("/akig.v1."))
            .collect()
    }

    #[test]
    fn every_akig_rpc_has_exactly_one_mapping() {
        let catalog = catalog();
        let methods = akig_methods(&catalog);
        assert_eq!(methods.len(), 51, "{methods:#?}");
        for path in &methods {
            let rows = METHOD_PERMISSIONS.iter().filter(|(m, _)| m == path).count();
            let public = PUBLIC_METHODS.iter().filter(|m| *m == path).count();
            assert_eq!(
                rows + public,
                1,
                "{path}: {rows} table rows, {public} public"
            );
            assert!(
                matches!(
                    permission_for(path),
                    Access::Authenticated(_) | Access::Public
                ),
                "{path}"
            );
        }
        assert_eq!(
            METHOD_PERMISSIONS.len() + PUBLIC_METHODS.len(),
            methods.len()
        );
    }

    #[test]
    fn every_row_names_an_existing_rpc() {
        let catalog = catalog();
        let methods = akig_methods(&catalog);
        for (path, _) in METHOD_PERMISSIONS {
            assert!(methods.contains(path), "stale row {path}");
        }
        for path in PUBLIC_METHODS {
            assert!(methods.contains(path), "stale public method {path}");
        }
    }

    #[test]
    fn only_login_refresh_health_and_reflection_are_public() {
        let catalog = catalog();
        let public: BTreeSet<&str> = catalog
            .iter()
            .map(|(path, _)| path)
            .filter(|path| permission_for(path) == Access::Public)
            .collect();
        let expected: BTreeSet<&str> = [
            "/akig.v1.AuthService/Login",
            "/akig.v1.AuthService/Refresh",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into();
        assert_eq!(public, expected);
        // Nothing the server exposes is left unmapped.
        for (path, _) in catalog.iter() {
            assert_ne!(permission_for(path), Access::Unmapped, "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_unmapped() {
        for path in [
            "",
            "/",
            "//",
            "/akig.v1.CollectionsService/DeletePayment",
            "/akig.v1.AdminService/Login",
            "/akig.v1.AuthService/login",
            "/akig.v1.AuthService/Login/",
            "/akig.v1.AuthService/Login/x",
            "akig.v1.AuthService/Login",
            "/akig.v2.AuthService/WhoAmI",
            "/akig.v1.AuthService/WhoAmI?x=1",
            "/grpc.health.v1.Health",
            "/grpc.health.v1.Health/",
            "/grpc.health.v1.Health/Check/x",
            "/grpc.health.v2.Health/Check",
            "/grpc.reflectionx.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection/ServerReflectionInfo",
        ] {
            assert_eq!(permission_for(path), Access::Unmapped, "{path:?}");
        }
    }

    #[test]
    fn only_disable_and_reassign_have_no_rpc() {
        let without_rpc: Vec<Permission> = Permission::ALL
            .iter()
            .copied()
            .filter(|p| p.methods().next().is_none())
            .collect();
        assert_eq!(
            without_rpc,
            [Permission::UsersDisable, Permission::MissionsReassign]
        );
        assert_eq!(
            Permission::CollectionsPaymentsRead
                .methods()
                .collect::<Vec<_>>(),
            [
                "/akig.v1.CollectionsService/GetPayment",
                "/akig.v1.CollectionsService/ListPayments"
            ]
        );
    }

    #[test]
    fn permission_names_are_unique_and_well_formed() {
        // ^[a-z][a-z_]*(\.[a-z][a-z_]*)+$, the check of table permissions.
        fn well_formed(name: &str) -> bool {
            let segments: Vec<&str> = name.split('.').collect();
            segments.len() >= 2
                && segments.iter().all(|s| {
                    s.starts_with(|c: char| c.is_ascii_lowercase())
                        && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        }
        assert_eq!(Permission::ALL.len(), 40);
        let names: BTreeSet<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), Permission::ALL.len());
        for name in names {
            assert!(well_formed(name), "{name}");
        }
        for bad in [
            "users",
            "users.",
            ".read",
            "Users.read",
            "users.read2",
            "users._x",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn permission_names_round_trip() {
        for &permission in Permission::ALL {
            assert_eq!(permission.as_str().parse::<Permission>(), Ok(permission));
            assert_eq!(permission.to_string(), permission.as_str());
        }
        for bad in [
            "",
            "collections",
            "Collections.payments.record",
            "collections.payments.record ",
            "payments.record",
            "collections.payments.record_for_others",
        ] {
            assert_eq!(
                bad.parse::<Permission>(),
                Err(UnknownPermission(bad.to_owned()))
            );
        }
    }

    #[test]
    fn roles_round_trip() {
        let ids: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            ids,
            [
                "admin",
                "director",
                "site_manager",
                "supervisor",
                "agent",
                "accountant"
            ]
        );
        for (role, wire) in Role::ALL.into_iter().zip(1..) {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(i32::from(role), wire);
            assert_eq!(Role::try_from(wire), Ok(role));
            assert_eq!(Role::try_from(pb::Role::from(role)), Ok(role));
            assert_eq!(Role::from_proto(role.to_proto()), Some(role));
        }
        assert_eq!(Role::from_proto(pb::Role::Unspecified), None);
        assert_eq!(
            Role::try_from(pb::Role::Unspecified),
            Err(InvalidRole::Proto(0))
        );
        assert_eq!(Role::try_from(0), Err(InvalidRole::Proto(0)));
        assert_eq!(Role::try_from(7), Err(InvalidRole::Proto(7)));
        assert_eq!(Role::try_from(-1), Err(InvalidRole::Proto(-1)));
        for bad in ["", "Admin", "ROLE_ADMIN", "site-manager", "manager"] {
            assert_eq!(bad.parse::<Role>(), Err(InvalidRole::Name(bad.to_owned())));
        }
    }

    #[tokio::test]
    async fn database_catalogue_and_grants_match_the_code() -> anyhow::Result<()> {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let in_db: BTreeSet<String> = sqlx::query_scalar("SELECT id FROM permissions")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
        let in_code: BTreeSet<String> = Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(
            in_db.difference(&in_code).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in the database, not in the enum"
        );
        assert_eq!(
            in_code.difference(&in_db).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in the enum, not in the database"
        );

        let roles: BTreeSet<String> = sqlx::query_scalar("SELECT id FROM roles")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
        let role_ids: BTreeSet<String> = Role::ALL.iter().map(|r| r.as_str().to_owned()).collect();
        assert_eq!(roles, role_ids);

        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT role_id, permission_id FROM role_permissions")
                .fetch_all(&pool)
                .await?;
        let mut grants: BTreeMap<Role, BTreeSet<Permission>> = BTreeMap::new();
        for (role, permission) in rows {
            grants
                .entry(role.parse()?)
                .or_default()
                .insert(permission.parse()?);
        }
        let all: BTreeSet<Permission> = Permission::ALL.iter().copied().collect();
        let of = |role: Role| grants.get(&role).cloned().unwrap_or_default();

        assert_eq!(of(Role::Admin), all);
        for role in Role::ALL {
            let held = of(role);
            assert!(held.is_subset(&all));
            // Every role can see itself, log out and change its password.
            for p in [P::AuthSelfRead, P::AuthSelfLogout, P::AuthSelfPassword] {
                assert!(held.contains(&p), "{role} lacks {p}");
            }
            // Administration stays with the admin.
            if role != Role::Admin {
                for p in [
                    P::UsersCreate,
                    P::UsersUpdate,
                    P::UsersDisable,
                    P::UsersResetPassword,
                    P::RolesUpdate,
                ] {
                    assert!(!held.contains(&p), "{role} holds {p}");
                }
            }
        }

        let agent = of(Role::Agent);
        for p in [
            P::CollectionsCallsRecord,
            P::CollectionsVisitsRecord,
            P::CollectionsPaymentsRecord,
            // Their own payments only (scope), e.g. the receipt just recorded.
            P::CollectionsPaymentsRead,
            P::MissionsRead,
            P::MissionsUpdate,
            P::GeoPositionsReport,
        ] {
            assert!(agent.contains(&p), "agent lacks {p}");
        }
        for p in [
            P::CollectionsPaymentsReverse,
            P::UsersCreate,
            P::UsersRead,
            P::MissionsReassign,
            P::MissionsGenerate,
            P::GeoPositionsRead,
            P::AuditRead,
        ] {
            assert!(!agent.contains(&p), "agent holds {p}");
        }

        // Only agents (and the admin) report positions: AgentSession is the phone's channel.
        for role in Role::ALL {
            let reports = of(role).contains(&P::GeoPositionsReport);
            assert_eq!(reports, matches!(role, Role::Admin | Role::Agent), "{role}");
        }

        // The director reads everything and writes nothing on collections or missions.
        let director = of(Role::Director);
        for p in [
            P::AuditRead,
            P::UsersRead,
            P::RolesRead,
            P::DashboardReportsExport,
        ] {
            assert!(director.contains(&p), "director lacks {p}");
        }
        for p in [
            P::CollectionsCallsRecord,
            P::CollectionsVisitsRecord,
            P::CollectionsPaymentsRecord,
            P::CollectionsPaymentsReverse,
            P::CollectionsPromisesUpdate,
            P::MissionsGenerate,
            P::MissionsUpdate,
            P::MissionsReassign,
        ] {
            assert!(!director.contains(&p), "director holds {p}");
        }

        let accountant = of(Role::Accountant);
        assert!(accountant.contains(&P::CollectionsPaymentsReverse));
        assert!(!accountant.contains(&P::AuditRead));
        assert!(!accountant.contains(&P::CollectionsPaymentsRecord));
        Ok(())
    }
}
