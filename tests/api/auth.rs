use std::time::Duration;

use akig::proto::v1::{
    ChangePasswordRequest, CreateUserRequest, GetUserRequest, ListAuditEntriesRequest,
    ListUsersRequest, LogoutRequest, RefreshRequest, UpdateUserRequest, User, WhoAmIRequest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::PgPool;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    PASSWORD, TEST_KID, TEST_SECRET, TestApp, TestDb, authed, create_site, create_user,
    error_reason, message, spawn_app,
};

async fn who_am_i(app: &TestApp, token: &str) -> Result<User, tonic::Status> {
    let response = message(app.auth_as(token).await.who_am_i(WhoAmIRequest {})).await;
    response.map(|r| r.user.expect("user"))
}

fn forge(header: &Header, claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).expect("encode")
}

async fn audit_count(pool: &PgPool, action: &str, outcome: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND outcome = $2")
        .bind(action)
        .bind(outcome)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn login_then_who_am_i() {
    let db = TestDb::new().await;
    let user_id = create_user(&db.pool, "awa.camara", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let login = app.login("Awa.Camara").await;
    assert_eq!(
        login.user.as_ref().expect("user").user_id,
        user_id.to_string()
    );
    assert!(
        login
            .permissions
            .contains(&"collections.payments.record".to_owned())
    );
    let tokens = login.tokens.expect("tokens");
    let me = who_am_i(&app, &tokens.access_token)
        .await
        .expect("who am i");
    assert_eq!(me.username, "awa.camara");
    assert!(me.last_login_time.is_some());
    assert_eq!(audit_count(&db.pool, "auth.login", "ok").await, 1);

    // No call without a token, and the token text never reaches the audit log.
    let status = app
        .auth_client()
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOKEN_MISSING");
    // Another scheme is no bearer token either, on every service.
    let mut basic = tonic::Request::new(akig::proto::v1::GetTenantRequest {
        tenant_id: uuid::Uuid::new_v4().to_string(),
    });
    basic.metadata_mut().insert(
        "authorization",
        "Basic YWRtaW46YWRtaW4=".parse().expect("ascii"),
    );
    let status = message(app.collections_client().await.get_tenant(basic))
        .await
        .expect_err("no bearer token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOKEN_MISSING");
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details::text LIKE '%' || $1 || '%'
            OR details::text LIKE '%' || $2 || '%'",
    )
    .bind(&tokens.access_token[tokens.access_token.len() - 20..])
    .bind(&tokens.refresh_token[tokens.refresh_token.len() - 20..])
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn failed_logins_are_audited_then_throttled() {
    let db = TestDb::new().await;
    create_user(&db.pool, "mamadou.bah", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let unknown = app
        .try_login("personne", PASSWORD)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let mut last = None;
    for _ in 0..8 {
        match app.try_login("mamadou.bah", "mauvais-mot-de-passe").await {
            Err(status) if status.code() == Code::Unauthenticated => continue,
            Err(status) => {
                last = Some(status);
                break;
            }
            Ok(_) => panic!("wrong password accepted"),
        }
    }
    let throttled = last.expect("throttled after repeated failures");
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    let retry = throttled.get_details_retry_info().expect("retry info");
    assert!(retry.retry_delay.expect("delay") > Duration::ZERO);
    // Even the right password waits until the delay is over.
    let status = app
        .try_login("mamadou.bah", PASSWORD)
        .await
        .expect_err("throttled");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(audit_count(&db.pool, "auth.login", "failed").await >= 6);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn hostile_tokens_are_unauthenticated() {
    let db = TestDb::new().await;
    let user_id = create_user(&db.pool, "kadiatou.sow", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let login = app.login("kadiatou.sow").await;
    let tokens = login.tokens.expect("tokens");
    let session = tokens.session_id.clone();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "akig", "aud": "akig-api", "sub": user_id, "iat": now, "nbf": now,
        "exp": now + 600, "jti": uuid::Uuid::new_v4(), "sid": session, "typ": "access", "ver": 0
    });
    let header = |kid: &str| Header {
        kid: Some(kid.to_owned()),
        ..Header::new(Algorithm::HS256)
    };
    // Sanity: a token forged with the real key and sane claims is accepted.
    let genuine = forge(&header(TEST_KID), &claims, &TEST_SECRET);
    who_am_i(&app, &genuine)
        .await
        .expect("a well-formed token works");

    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[field] = value;
        forge(&header(TEST_KID), &c, &TEST_SECRET)
    };
    let without = |field: &str| {
        let mut c = claims.clone();
        c.as_object_mut().expect("object").remove(field);
        forge(&header(TEST_KID), &c, &TEST_SECRET)
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{TEST_KID}"}}"#)),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tampered = {
        let parts: Vec<&str> = genuine.split('.').collect();
        let mut c = claims.clone();
        c["sub"] = serde_json::json!(uuid::Uuid::new_v4());
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(c.to_string()),
            parts[2]
        )
    };
    let mut jku = header(TEST_KID);
    jku.jku = Some("https://attacker.example/keys".into());
    let cases = [
        ("alg none", alg_none),
        (
            "wrong signature",
            forge(
                &header(TEST_KID),
                &claims,
                b"another-secret-another-secret-32",
            ),
        ),
        ("tampered payload", tampered),
        (
            "unknown kid",
            forge(&header("k-unknown"), &claims, &TEST_SECRET),
        ),
        (
            "hostile kid",
            forge(&header("../../../dev/null"), &claims, &TEST_SECRET),
        ),
        ("jku header", forge(&jku, &claims, &TEST_SECRET)),
        ("expired", with("exp", (now - 3600).into())),
        ("nbf in the future", with("nbf", (now + 3600).into())),
        ("wrong aud", with("aud", "other-service".into())),
        ("missing aud", without("aud")),
        ("wrong iss", with("iss", "someone-else".into())),
        ("wrong type", with("typ", "refresh".into())),
        ("stale token version", with("ver", 7.into())),
        (
            "refresh token as access token",
            tokens.refresh_token.clone(),
        ),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (name, token) in cases {
        let status = who_am_i(&app, &token).await.expect_err(name);
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
        assert!(!status.message().contains(&token), "{name}: token echoed");
    }
    for header_value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        &tokens.access_token,
    ] {
        let mut request = tonic::Request::new(WhoAmIRequest {});
        request
            .metadata_mut()
            .insert("authorization", header_value.parse().expect("ascii"));
        let status = app
            .auth_client()
            .await
            .who_am_i(request)
            .await
            .expect_err("malformed header");
        assert_eq!(status.code(), Code::Unauthenticated, "{header_value:?}");
    }
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

async fn refresh(
    app: &TestApp,
    token: &str,
) -> Result<akig::proto::v1::SessionTokens, tonic::Status> {
    app.auth_client()
        .await
        .refresh(RefreshRequest {
            refresh_token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().tokens.expect("tokens"))
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let db = TestDb::new().await;
    create_user(&db.pool, "ibrahima.diallo", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let first = app.login("ibrahima.diallo").await.tokens.expect("tokens");
    let second = refresh(&app, &first.refresh_token).await.expect("rotation");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    who_am_i(&app, &second.access_token)
        .await
        .expect("new access token works");

    // A retry within the grace period (the response was lost) gets the very same pair.
    let retry = refresh(&app, &first.refresh_token)
        .await
        .expect("retry in grace");
    assert_eq!(retry.refresh_token, second.refresh_token);
    assert_eq!(retry.access_token, second.access_token);

    // Later, the old token is a stolen one: the whole family dies, the new token with it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reuse = refresh(&app, &first.refresh_token)
        .await
        .expect_err("reuse");
    assert_eq!(reuse.code(), Code::Unauthenticated);
    let status = refresh(&app, &second.refresh_token)
        .await
        .expect_err("family revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = who_am_i(&app, &second.access_token)
        .await
        .expect_err("session revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        audit_count(&db.pool, "auth.refresh.reuse_detected", "denied").await,
        1
    );
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn concurrent_refreshes_rotate_once() {
    let db = TestDb::new().await;
    create_user(&db.pool, "hawa.keita", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let first = app.login("hawa.keita").await.tokens.expect("tokens");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let channel = app.channel().await;
        let token = first.refresh_token.clone();
        calls.spawn(async move {
            akig::proto::v1::auth_service_client::AuthServiceClient::new(channel)
                .refresh(RefreshRequest {
                    refresh_token: token,
                })
                .await
                .map(|r| r.into_inner().tokens.expect("tokens").refresh_token)
        });
    }
    let mut successors = std::collections::HashSet::new();
    while let Some(result) = calls.join_next().await {
        successors.insert(
            result
                .expect("task")
                .expect("every retry in grace succeeds"),
        );
    }
    assert_eq!(successors.len(), 1, "all callers got the same successor");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(rows, 2, "one login token and one successor");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let db = TestDb::new().await;
    create_user(&db.pool, "oumar.barry", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let kept = app.login("oumar.barry").await.tokens.expect("tokens");
    let closed = app.login("oumar.barry").await.tokens.expect("tokens");
    let request_id = uuid::Uuid::new_v4().to_string();
    let logout = || LogoutRequest {
        request_id: request_id.clone(),
        refresh_token: String::new(),
        all_sessions: false,
    };
    let response = app
        .auth_client()
        .await
        .logout(authed(logout(), &closed.access_token))
        .await
        .expect("logout")
        .into_inner();
    assert_eq!(response.revoked_session_count, 1);
    let status = who_am_i(&app, &closed.access_token)
        .await
        .expect_err("logged out");
    assert_eq!(status.code(), Code::Unauthenticated);
    refresh(&app, &closed.refresh_token)
        .await
        .expect_err("refresh revoked");
    who_am_i(&app, &kept.access_token)
        .await
        .expect("the other session lives");
    assert_eq!(audit_count(&db.pool, "auth.logout", "ok").await, 1);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn disabling_a_user_and_changing_a_password_cut_tokens_at_once() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let agent_id = create_user(&db.pool, "sekou.toure", "agent", &[], None).await;
    create_user(&db.pool, "aminata.conde", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let agent = app.token("sekou.toure").await;
    who_am_i(&app, &agent).await.expect("works before");

    disable(&app, &admin, agent_id).await.expect("disable");
    let status = who_am_i(&app, &agent).await.expect_err("disabled");
    assert_eq!(status.code(), Code::Unauthenticated);
    app.try_login("sekou.toure", PASSWORD)
        .await
        .expect_err("no login when disabled");

    // A password change ends every access token issued before, its own included.
    let other = app.login("aminata.conde").await.tokens.expect("tokens");
    app.auth_client()
        .await
        .change_password(authed(
            ChangePasswordRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                current_password: PASSWORD.to_owned(),
                new_password: "un-nouveau-mot-de-passe".to_owned(),
                revoke_other_sessions: false,
            },
            &other.access_token,
        ))
        .await
        .expect("password changed");
    let status = who_am_i(&app, &other.access_token)
        .await
        .expect_err("old token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let renewed = refresh(&app, &other.refresh_token)
        .await
        .expect("session continues");
    who_am_i(&app, &renewed.access_token)
        .await
        .expect("renewed token works");
    app.try_login("aminata.conde", "un-nouveau-mot-de-passe")
        .await
        .expect("new password");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn users_outside_the_scope_are_refused() {
    let db = TestDb::new().await;
    let kaloum = create_site(&db.pool, "KAL").await;
    let matoto = create_site(&db.pool, "MAT").await;
    create_user(&db.pool, "direction", "director", &[], None).await;
    create_user(&db.pool, "gestion.kaloum", "site_manager", &[kaloum], None).await;
    let supervisor = create_user(&db.pool, "superviseur.a", "supervisor", &[], None).await;
    let agent_a = create_user(&db.pool, "agent.a", "agent", &[kaloum], Some(supervisor)).await;
    let agent_b = create_user(&db.pool, "agent.b", "agent", &[matoto], None).await;
    let app = spawn_app(&db).await;

    let get = |token: String, user_id: uuid::Uuid| {
        let app = &app;
        async move {
            app.auth_client()
                .await
                .get_user(authed(
                    GetUserRequest {
                        user_id: user_id.to_string(),
                    },
                    &token,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let agent = app.token("agent.a").await;
    let status = get(agent.clone(), agent_b)
        .await
        .expect_err("agent reads another agent");
    // Agents lack users.read altogether.
    assert_eq!(status.code(), Code::PermissionDenied);

    let manager = app.token("gestion.kaloum").await;
    get(manager.clone(), agent_a)
        .await
        .expect("own site's agent");
    let status = get(manager, agent_b).await.expect_err("other site's agent");
    assert_eq!(status.code(), Code::PermissionDenied);

    let lead = app.token("superviseur.a").await;
    get(lead.clone(), agent_a).await.expect("own team");
    let status = get(lead.clone(), agent_b).await.expect_err("other team");
    assert_eq!(status.code(), Code::PermissionDenied);
    let listed = app
        .auth_client()
        .await
        .list_users(authed(ListUsersRequest::default(), &lead))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<String> = listed.users.into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["agent.a", "superviseur.a"]);

    let director = app.token("direction").await;
    get(director, agent_b).await.expect("company-wide");
    let status = get(lead, uuid::Uuid::new_v4()).await.expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn create_user_is_idempotent_and_audited() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let create = |username: &str| CreateUserRequest {
        request_id: request_id.clone(),
        user: Some(User {
            username: username.to_owned(),
            full_name: "Fatoumata Sylla".to_owned(),
            phone: "+224 622 11 22 33".to_owned(),
            role: akig::proto::v1::Role::Agent as i32,
            ..Default::default()
        }),
        initial_password: "premier-mot-de-passe".to_owned(),
    };
    let first = app
        .auth_client()
        .await
        .create_user(authed(create("fatoumata.sylla"), &admin))
        .await
        .expect("create")
        .into_inner();
    let replay = app
        .auth_client()
        .await
        .create_user(authed(create("fatoumata.sylla"), &admin))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(first, replay);
    let user = first.user.expect("user");
    assert_eq!(user.phone, "+224622112233");
    assert!(user.must_change_password);
    let other = app
        .auth_client()
        .await
        .create_user(authed(create("someone.else"), &admin))
        .await
        .expect_err("same id, other request");
    assert_eq!(other.code(), Code::FailedPrecondition);

    let mut bad = create("x");
    bad.request_id = uuid::Uuid::new_v4().to_string();
    bad.initial_password = "court".into();
    let status = app
        .auth_client()
        .await
        .create_user(authed(bad, &admin))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"user.username".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"initial_password".to_owned()),
        "{fields:?}"
    );

    // The same username under a new request id: taken.
    let mut taken = create("fatoumata.sylla");
    taken.request_id = uuid::Uuid::new_v4().to_string();
    let status = app
        .auth_client()
        .await
        .create_user(authed(taken, &admin))
        .await
        .expect_err("username taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        status.get_details_error_info().expect("reason").reason,
        "ERROR_REASON_USER_ALREADY_EXISTS"
    );

    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(users, 2, "the admin and one created user");
    assert_eq!(audit_count(&db.pool, "users.create", "ok").await, 1);
    let entries = app
        .auth_client()
        .await
        .list_audit_entries(authed(
            ListAuditEntriesRequest {
                action: "users.create".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("audit list")
        .into_inner()
        .audit_entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].target_id, user.user_id);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn a_role_change_is_audited_and_ends_older_tokens() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let agent_id = create_user(&db.pool, "moussa.kaba", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let before = app.token("moussa.kaba").await;
    let updated = app
        .auth_client()
        .await
        .update_user(authed(
            UpdateUserRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                user: Some(User {
                    user_id: agent_id.to_string(),
                    role: akig::proto::v1::Role::Supervisor as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["role"]),
            },
            &admin,
        ))
        .await
        .expect("role change")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.role, akig::proto::v1::Role::Supervisor as i32);
    let status = who_am_i(&app, &before)
        .await
        .expect_err("token of the old role");
    assert_eq!(status.code(), Code::Unauthenticated);
    let after = app.login("moussa.kaba").await;
    assert!(after.permissions.contains(&"users.read".to_owned()));
    let (from, to): (String, String) = sqlx::query_as(
        "SELECT details->>'from', details->>'to' FROM audit_log
         WHERE action = 'auth.role_change' AND target_id = $1",
    )
    .bind(agent_id.to_string())
    .fetch_one(&db.pool)
    .await
    .expect("role change audited");
    assert_eq!((from.as_str(), to.as_str()), ("agent", "supervisor"));
    assert_eq!(audit_count(&db.pool, "auth.login", "ok").await, 3);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn ended_sessions_are_purged_after_their_grace() {
    let db = TestDb::new().await;
    let user = create_user(&db.pool, "binta.keita", "agent", &[], None).await;
    // A family of two rotated tokens per session, ended `ended_hours_ago` (negative: live).
    let session = async |ended_hours_ago: i64| {
        let family = uuid::Uuid::new_v4();
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        sqlx::query(
            "INSERT INTO refresh_tokens
               (id, family_id, user_id, token_hash, parent_id, issued_at, expires_at,
                family_expires_at, consumed_at, replaced_by)
             SELECT t.id, $1, $2, sha256(t.id::text::bytea), t.parent, end_at - interval '30 days',
                    end_at - interval '1 day', end_at, t.consumed, t.replaced_by
             FROM (SELECT now() - make_interval(hours => $5::int) AS end_at) e,
                  (VALUES ($3::uuid, NULL::uuid, now() - interval '40 days', $4::uuid),
                          ($4::uuid, $3::uuid, NULL, NULL)) AS t(id, parent, consumed, replaced_by)",
        )
        .bind(family)
        .bind(user)
        .bind(first)
        .bind(second)
        .bind(i32::try_from(ended_hours_ago).expect("hours"))
        .execute(&db.pool)
        .await
        .expect("tokens");
        family
    };
    let long_ended = session(72).await;
    let just_ended = session(2).await;
    let live = session(-48).await;

    let deleted =
        akig::store::sessions::purge_ended_families(&db.pool, Duration::from_secs(86_400), 1)
            .await
            .expect("purge");
    assert_eq!(
        deleted, 2,
        "both tokens of the session ended three days ago"
    );
    let left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT family_id FROM refresh_tokens ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .expect("families");
    let mut expected = vec![just_ended, live];
    expected.sort();
    assert_eq!(left, expected);
    assert!(!left.contains(&long_ended));
}

/// UpdateUser setting `disabled` on `user_id`, as `token`'s user.
pub async fn disable(
    app: &TestApp,
    token: &str,
    user_id: uuid::Uuid,
) -> Result<User, tonic::Status> {
    app.auth_client()
        .await
        .update_user(authed(
            UpdateUserRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                user: Some(User {
                    user_id: user_id.to_string(),
                    disabled: true,
                    ..Default::default()
                }),
                update_mask: mask(&["disabled"]),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

#[tokio::test]
async fn a_disabled_account_is_told_so_only_with_its_right_password() {
    let db = TestDb::new().await;
    let admin_id = create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let agent_id = create_user(&db.pool, "fode.kourouma", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let session = app.login("fode.kourouma").await.tokens.expect("tokens");

    let status = disable(&app, &admin, admin_id).await.expect_err("self");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "ERROR_REASON_SELF_LOCKOUT");
    disable(&app, &admin, agent_id).await.expect("disable");

    let status = app
        .try_login("fode.kourouma", PASSWORD)
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_ACCOUNT_DISABLED");
    // Without its password, a disabled account looks like any failed login.
    for (username, password) in [
        ("fode.kourouma", "pas-le-bon-mot-de-passe"),
        ("personne", PASSWORD),
    ] {
        let status = app
            .try_login(username, password)
            .await
            .expect_err("wrong credentials");
        assert_eq!(status.code(), Code::Unauthenticated, "{username}");
        assert_eq!(
            error_reason(&status),
            "ERROR_REASON_INVALID_CREDENTIALS",
            "{username}"
        );
    }
    // A session opened before is ended at its next refresh, for the same reason.
    let status = refresh(&app, &session.refresh_token)
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_ACCOUNT_DISABLED");
    let revoked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE revoke_reason = 'user_disabled'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(revoked, 1);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn access_token_refusals_tell_the_app_to_refresh_or_to_log_in_again() {
    let db = TestDb::new().await;
    let user_id = create_user(&db.pool, "fode.keita", "agent", &[], None).await;
    create_user(&db.pool, "aissatou.barry", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let own = app.login("fode.keita").await.tokens.expect("tokens");
    let others = app.login("aissatou.barry").await.tokens.expect("tokens");
    let now = chrono::Utc::now().timestamp();
    let signed = |sub: uuid::Uuid, sid: &str, exp: i64| {
        let claims = serde_json::json!({
            "iss": "akig", "aud": "akig-api", "sub": sub, "iat": now - 60, "nbf": now - 60,
            "exp": exp, "jti": uuid::Uuid::new_v4(), "sid": sid, "typ": "access", "ver": 0
        });
        let header = Header {
            kid: Some(TEST_KID.to_owned()),
            ..Header::new(Algorithm::HS256)
        };
        forge(&header, &claims, &TEST_SECRET)
    };
    // Sanity: correctly signed with a session that was issued, the token works.
    who_am_i(&app, &signed(user_id, &own.session_id, now + 600))
        .await
        .expect("an issued session");

    let expired = who_am_i(&app, &signed(user_id, &own.session_id, now - 3600))
        .await
        .expect_err("expired");
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&expired), "ERROR_REASON_TOKEN_EXPIRED");

    let never_issued = uuid::Uuid::new_v4().to_string();
    let cases = [
        (
            "a session never issued",
            signed(user_id, &never_issued, now + 600),
        ),
        (
            "another user's session",
            signed(user_id, &others.session_id, now + 600),
        ),
        (
            "a user who does not exist",
            signed(uuid::Uuid::new_v4(), &own.session_id, now + 600),
        ),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (name, token) in cases {
        let status = who_am_i(&app, &token).await.expect_err(name);
        assert_eq!(status.code(), Code::Unauthenticated, "{name}");
        assert_eq!(
            error_reason(&status),
            "ERROR_REASON_TOKEN_INVALID",
            "{name}"
        );
    }

    // A role without the method's permission is told which one it lacks.
    let denied = app
        .auth_as(&own.access_token)
        .await
        .list_users(ListUsersRequest::default())
        .await
        .expect_err("agents do not list users");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&denied), "ERROR_REASON_PERMISSION_MISSING");
    assert!(denied.message().contains("users."), "{}", denied.message());
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn refresh_errors_tell_a_reused_token_from_an_invalid_or_expired_one() {
    let db = TestDb::new().await;
    create_user(&db.pool, "mariama.bangoura", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let first = app.login("mariama.bangoura").await.tokens.expect("tokens");
    let second = refresh(&app, &first.refresh_token).await.expect("rotation");

    // Past the grace window (2 s in tests), the consumed token is a stolen one.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reuse = refresh(&app, &first.refresh_token)
        .await
        .expect_err("reuse");
    assert_eq!(reuse.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&reuse), "ERROR_REASON_REFRESH_TOKEN_REUSED");
    // The family is revoked: its live token is now merely invalid.
    for token in [second.refresh_token.as_str(), "rt1.inconnu", "pas-un-jeton"] {
        let status = refresh(&app, token).await.expect_err("invalid");
        assert_eq!(status.code(), Code::Unauthenticated, "{token}");
        assert_eq!(
            error_reason(&status),
            "ERROR_REASON_TOKEN_INVALID",
            "{token}"
        );
    }

    let other = app.login("mariama.bangoura").await.tokens.expect("tokens");
    sqlx::query(
        "UPDATE refresh_tokens SET issued_at = now() - interval '2 days',
                                   expires_at = now() - interval '1 day'
         WHERE revoked_at IS NULL",
    )
    .execute(&db.pool)
    .await
    .expect("age the token");
    let expired = refresh(&app, &other.refresh_token)
        .await
        .expect_err("expired");
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&expired), "ERROR_REASON_TOKEN_EXPIRED");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn simultaneous_replays_of_a_completed_update_get_its_answer() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let agent_id = create_user(&db.pool, "saran.cisse", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let rename = |full_name: &str| UpdateUserRequest {
        request_id: request_id.clone(),
        user: Some(User {
            user_id: agent_id.to_string(),
            full_name: full_name.to_owned(),
            ..Default::default()
        }),
        update_mask: mask(&["full_name"]),
    };
    let first = app
        .auth_client()
        .await
        .update_user(authed(rename("Saran Cissé"), &admin))
        .await
        .expect("update")
        .into_inner();

    // 30 replays of the completed call and 30 reuses of its id with another body, at once.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60 {
        let request = authed(
            rename(if i % 2 == 0 {
                "Saran Cissé"
            } else {
                "Saran Camara"
            }),
            &admin,
        );
        let mut client = app.auth_client().await;
        calls.spawn(async move {
            (
                i % 2 == 0,
                client.update_user(request).await.map(|r| r.into_inner()),
            )
        });
    }
    let (mut replayed, mut refused) = (0, 0);
    while let Some(joined) = calls.join_next().await {
        match joined.expect("task") {
            (true, Ok(answer)) => {
                assert_eq!(answer, first);
                replayed += 1;
            }
            (false, Err(status)) if status.code() == Code::FailedPrecondition => {
                assert_eq!(error_reason(&status), "ERROR_REASON_REQUEST_ID_REUSED");
                refused += 1;
            }
            (replay, other) => panic!("replay {replay}: unexpected {other:?}"),
        }
    }
    assert_eq!((replayed, refused), (30, 30));
    assert_eq!(audit_count(&db.pool, "users.update", "ok").await, 1);
    let name: String = sqlx::query_scalar("SELECT full_name FROM users WHERE id = $1")
        .bind(agent_id)
        .fetch_one(&db.pool)
        .await
        .expect("name");
    assert_eq!(name, "Saran Cissé");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn a_huge_field_path_answers_a_bounded_invalid_argument() {
    let db = TestDb::new().await;
    create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let agent_id = create_user(&db.pool, "lansana.conte", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let path = "x".repeat(20 * 1024);
    let status = app
        .auth_client()
        .await
        .update_user(authed(
            UpdateUserRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                user: Some(User {
                    user_id: agent_id.to_string(),
                    ..Default::default()
                }),
                update_mask: mask(&[path.as_str()]),
            },
            &admin,
        ))
        .await
        .expect_err("unknown path");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() <= 1024);
    let violations = status
        .get_details_bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations[0].field, "update_mask");
    assert!(violations[0].description.len() <= 256);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn calls_while_the_database_is_out_of_reach_are_unavailable() {
    let db = TestDb::new().await;

    create_user(&db.pool, "kadiatou.barry", "agent", &[], None).await;
    let (app, relay, _) = crate::support::spawn_app_behind_relay(&db).await;
    let token = app.token("kadiatou.barry").await;

    relay.cut().await;
    let calls = [
        who_am_i(&app, &token).await.map(|_| ()),
        app.try_login("kadiatou.barry", PASSWORD).await.map(|_| ()),
    ];
    for result in calls {
        let status = result.expect_err("the database is out of reach");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.get_details_retry_info().is_some(), "{status:?}");
    }
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

/// The database cut away and back while connections sat in the pool (a restart): the calls
/// right after answer OK or UNAVAILABLE with RetryInfo (a dead connection fails its call and is
/// dropped), never another code, and the pool is whole again within a few calls.
#[tokio::test]
async fn calls_recover_when_the_database_comes_back() {
    let db = TestDb::new().await;
    create_user(&db.pool, "kadiatou.barry", "agent", &[], None).await;
    let (app, relay, upstream) = crate::support::spawn_app_behind_relay(&db).await;
    let token = app.token("kadiatou.barry").await;
    // Both pooled connections used, so both sit idle in the pool when the cut comes.
    let (a, b) = tokio::join!(who_am_i(&app, &token), who_am_i(&app, &token));
    a.expect("before the cut");
    b.expect("before the cut");

    let addr = relay.cut().await;
    let _relay = crate::support::Relay::start(addr, upstream).await;
    let mut answers = Vec::new();
    for _ in 0..8 {
        match who_am_i(&app, &token).await {
            Ok(_) => answers.push(true),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.get_details_retry_info().is_some(), "{status:?}");
                answers.push(false);
            }
        }
    }
    assert!(
        answers.iter().rev().take(4).all(|ok| *ok),
        "the last calls must succeed: {answers:?}"
    );
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn refusals_of_user_reads_carry_their_reason() {
    let db = TestDb::new().await;
    let kaloum = create_site(&db.pool, "KAL").await;
    let matoto = create_site(&db.pool, "MAT").await;
    create_user(&db.pool, "gestion.kaloum", "site_manager", &[kaloum], None).await;
    let other = create_user(&db.pool, "agent.matoto", "agent", &[matoto], None).await;
    let app = spawn_app(&db).await;
    let manager = app.token("gestion.kaloum").await;

    let status = app
        .auth_client()
        .await
        .get_user(authed(
            GetUserRequest {
                user_id: other.to_string(),
            },
            &manager,
        ))
        .await
        .expect_err("other site's agent");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_OUT_OF_SCOPE");

    let status = app
        .auth_client()
        .await
        .list_users(authed(
            ListUsersRequest {
                page_token: "@@@".to_owned(),
                ..Default::default()
            },
            &manager,
        ))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_reason(&status), "ERROR_REASON_PAGE_TOKEN_INVALID");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn a_login_with_a_control_character_in_its_device_tries_no_password() {
    let db = TestDb::new().await;
    create_user(&db.pool, "awa.camara", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let login = |password: &str, device_id: &str| akig::proto::v1::LoginRequest {
        identifier: Some(akig::proto::v1::login_request::Identifier::Username(
            "awa.camara".into(),
        )),
        password: password.to_owned(),
        device: Some(akig::proto::v1::DeviceInfo {
            device_id: device_id.to_owned(),
            app_version: "2.3.1".into(),
            platform: "android 13".into(),
        }),
    };
    // Right and wrong password alike: refused on the field, with no audit row and no count
    // towards the failed-login limit.
    for password in [crate::support::PASSWORD, "mauvais-mot-de-passe"] {
        for _ in 0..8 {
            let status = message(app.auth_client().await.login(login(password, "tel\u{0}1")))
                .await
                .expect_err("NUL in device_id");
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert_eq!(crate::support::bad_fields(&status), ["device.device_id"]);
        }
    }
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login'")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(rows, 0);
    // Not throttled: the refused attempts tried no password.
    let ok = message(
        app.auth_client()
            .await
            .login(login(crate::support::PASSWORD, "tel-1")),
    )
    .await
    .expect("login");
    assert!(ok.tokens.is_some());
    let device: (String, String, String) = sqlx::query_as(
        "SELECT details->>'device_id', details->>'app_version', details->>'platform'
           FROM audit_log WHERE action = 'auth.login' AND outcome = 'ok'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audited");
    assert_eq!(
        device,
        ("tel-1".into(), "2.3.1".into(), "android 13".into())
    );
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn every_auth_text_field_refuses_control_characters() {
    use akig::proto::v1::{
        DeviceInfo, LoginRequest, Role, UpdateRolePermissionsRequest, login_request::Identifier,
    };
    let db = TestDb::new().await;
    let admin_id = create_user(&db.pool, "admin.test", "admin", &[], None).await;
    let app = spawn_app(&db).await;
    let admin = app.token("admin.test").await;
    let client = || async { app.auth_as(&admin).await };
    let id = || uuid::Uuid::new_v4().to_string();
    let login = |identifier: Identifier, device: DeviceInfo| LoginRequest {
        identifier: Some(identifier),
        password: crate::support::PASSWORD.into(),
        device: Some(device),
    };
    let user = |username: &str, full_name: &str| User {
        user_id: admin_id.to_string(),
        username: username.into(),
        full_name: full_name.into(),
        role: Role::Agent as i32,
        ..Default::default()
    };
    let hostile = ["\u{0}", "\u{1b}[2J", "\r", "\u{7f}", "\t", "\n"];
    for bad in hostile {
        let mut answers: Vec<(&str, Result<(), tonic::Status>)> = Vec::new();
        let name = format!("awa{bad}camara");
        let device = |field: &str| {
            let mut device = DeviceInfo {
                device_id: "tel-1".into(),
                app_version: "2.3.1".into(),
                platform: "android".into(),
            };
            let text = format!("x{bad}y");
            match field {
                "device_id" => device.device_id = text,
                "app_version" => device.app_version = text,
                "platform" => device.platform = text,
                _ => {}
            }
            device
        };
        let auth = || async { app.auth_client().await };
        for (field, request) in [
            (
                "username",
                login(Identifier::Username(name.clone()), device("none")),
            ),
            (
                "phone",
                login(
                    Identifier::Phone(format!("+224621{bad}234567")),
                    device("none"),
                ),
            ),
            (
                "device.device_id",
                login(Identifier::Username("awa".into()), device("device_id")),
            ),
            (
                "device.app_version",
                login(Identifier::Username("awa".into()), device("app_version")),
            ),
            (
                "device.platform",
                login(Identifier::Username("awa".into()), device("platform")),
            ),
        ] {
            answers.push((field, message(auth().await.login(request)).await.map(drop)));
        }
        answers.push((
            "refresh_token",
            message(auth().await.refresh(RefreshRequest {
                refresh_token: format!("abc{bad}def"),
            }))
            .await
            .map(drop),
        ));
        answers.push((
            "refresh_token",
            message(client().await.logout(LogoutRequest {
                request_id: id(),
                refresh_token: format!("abc{bad}def"),
                all_sessions: false,
            }))
            .await
            .map(drop),
        ));
        for (field, new_user) in [
            ("user.username", user(&name, "Awa Camara")),
            (
                "user.full_name",
                user("awa.camara", &format!("Awa{bad}Camara")),
            ),
        ] {
            let request = CreateUserRequest {
                request_id: id(),
                user: Some(new_user),
                initial_password: "premier-mot-de-passe".into(),
            };
            answers.push((
                field,
                message(client().await.create_user(request)).await.map(drop),
            ));
        }
        answers.push((
            "user.full_name",
            message(client().await.update_user(UpdateUserRequest {
                request_id: id(),
                user: Some(user("", &format!("Awa{bad}Camara"))),
                update_mask: mask(&["full_name"]),
            }))
            .await
            .map(drop),
        ));
        answers.push((
            "query",
            message(client().await.list_users(ListUsersRequest {
                query: format!("aw{bad}a"),
                ..Default::default()
            }))
            .await
            .map(drop),
        ));
        for field in ["action", "target_type", "target_id"] {
            let text = format!("auth{bad}login");
            let mut request = ListAuditEntriesRequest::default();
            match field {
                "action" => request.action = text,
                "target_type" => request.target_type = text,
                _ => request.target_id = text,
            }
            answers.push((
                field,
                message(client().await.list_audit_entries(request))
                    .await
                    .map(drop),
            ));
        }
        answers.push((
            "permissions[0]",
            message(
                client()
                    .await
                    .update_role_permissions(UpdateRolePermissionsRequest {
                        request_id: id(),
                        role: Role::Agent as i32,
                        permissions: vec![format!("collections.calls{bad}.record")],
                    }),
            )
            .await
            .map(drop),
        ));
        for (field, answer) in answers {
            let status = answer.expect_err(field);
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{field} {bad:?}: {status:?}"
            );
            assert_eq!(crate::support::bad_fields(&status), [field], "{bad:?}");
        }
    }
    // Nothing reached the tables.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(users, 1);
    app.stop(Duration::from_secs(10)).await.expect("stop");
}
