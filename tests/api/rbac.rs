use std::collections::{HashMap, HashSet};
use std::time::Duration;

use akig::auth::rbac::{METHOD_PERMISSIONS, Role};
use akig::proto::v1::{GetDailyRankingRequest, UpdateRolePermissionsRequest};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::auth::disable;
use crate::support::{TestDb, authed, create_user, error_reason, spawn_app};

/// Calls `path` with an empty message: enough for the authorisation layer to decide, and no
/// mutating RPC accepts it (each needs a request_id), so nothing is written.
async fn call_empty(
    channel: tonic::transport::Channel,
    path: &'static str,
    token: &str,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let call = grpc.unary::<(), (), _>(
        authed((), token),
        PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    );
    // A server stream the caller may open (WatchAgents) keeps streaming and never answers as a
    // unary call would: still open after a while means it got past authorisation, which
    // answers at once when it refuses.
    match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(outcome) => outcome.map(|_| ()),
        Err(_) => Ok(()),
    }
}

#[tokio::test]
async fn each_role_gets_exactly_the_rpcs_its_permissions_allow() {
    let db = TestDb::new().await;
    let grants: Vec<(String, String)> =
        sqlx::query_as("SELECT role_id, permission_id FROM role_permissions")
            .fetch_all(&db.pool)
            .await
            .expect("grants");
    let mut granted: HashMap<String, HashSet<String>> = HashMap::new();
    for (role, permission) in grants {
        granted.entry(role).or_default().insert(permission);
    }
    for role in Role::ALL {
        create_user(
            &db.pool,
            &format!("role.{}", role.as_str()),
            role.as_str(),
            &[],
            None,
        )
        .await;
    }
    let app = spawn_app(&db).await;
    let channel = app.channel().await;
    let mut checked = 0;
    for role in Role::ALL {
        let token = app.token(&format!("role.{}", role.as_str())).await;
        let allowed = &granted[role.as_str()];
        for (path, permission) in METHOD_PERMISSIONS {
            let outcome = call_empty(channel.clone(), path, &token).await;
            let code = outcome.err().map(|s| s.code());
            if allowed.contains(permission.as_str()) {
                assert!(
                    !matches!(code, Some(Code::PermissionDenied | Code::Unauthenticated)),
                    "{role:?} should reach {path}, got {code:?}"
                );
            } else {
                assert_eq!(code, Some(Code::PermissionDenied), "{role:?} on {path}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * METHOD_PERMISSIONS.len());
    let denied: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE outcome = 'denied'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert!(denied > 0, "denied calls are audited");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn a_permission_change_applies_on_the_next_call() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    create_user(&db.pool, "agent.test", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let agent = app.token("agent.test").await;
    let mut missions = app.missions_client().await;
    missions
        .get_daily_ranking(authed(GetDailyRankingRequest::default(), &agent))
        .await
        .expect("allowed");

    // Take rankings.read away from agents (the role cache is invalidated).
    let keep: Vec<String> = sqlx::query_scalar(
        "SELECT permission_id FROM role_permissions
         WHERE role_id = 'agent' AND permission_id <> 'rankings.read'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("grants");
    app.auth_client()
        .await
        .update_role_permissions(authed(
            UpdateRolePermissionsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                role: akig::proto::v1::Role::Agent as i32,
                permissions: keep,
            },
            &admin,
        ))
        .await
        .expect("update");
    let after = missions
        .get_daily_ranking(authed(GetDailyRankingRequest::default(), &agent))
        .await
        .expect_err("denied now");
    assert_eq!(after.code(), Code::PermissionDenied);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn changes_of_the_admin_role_and_of_disabled_need_their_own_right() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    create_user(&db.pool, "direction", "director", &[], None).await;
    let agent_id = create_user(&db.pool, "agent.test", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let update_roles =
        |role: akig::proto::v1::Role, permissions: Vec<String>| UpdateRolePermissionsRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            role: role as i32,
            permissions,
        };

    let status = app
        .auth_client()
        .await
        .update_role_permissions(authed(
            update_roles(akig::proto::v1::Role::Admin, Vec::new()),
            &admin,
        ))
        .await
        .expect_err("admin role fixed");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "ERROR_REASON_ADMIN_ROLE_FIXED");

    // The direction may update users, but not disable them.
    let mut grants: Vec<String> =
        sqlx::query_scalar("SELECT permission_id FROM role_permissions WHERE role_id = 'director'")
            .fetch_all(&db.pool)
            .await
            .expect("grants");
    grants.push("users.update".to_owned());
    app.auth_client()
        .await
        .update_role_permissions(authed(
            update_roles(akig::proto::v1::Role::Director, grants),
            &admin,
        ))
        .await
        .expect("grant users.update");
    let director = app.token("direction").await;
    let status = disable(&app, &director, agent_id)
        .await
        .expect_err("no users.disable");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_PERMISSION_MISSING");
    assert!(status.message().contains("users.disable"));
    app.stop(Duration::from_secs(10)).await.expect("stop");
}
