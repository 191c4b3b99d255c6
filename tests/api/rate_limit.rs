use std::time::Duration;

use akig::proto::v1::WhoAmIRequest;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{RedisMode, TestDb, authed, create_user, limit, spawn_app_with, test_config};

#[tokio::test]
async fn per_user_limit_is_reached_then_recovers() {
    let db = TestDb::new().await;
    create_user(&db.pool, "agent.rapide", "agent", &[], None).await;
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.rate_limits.per_user = limit(2, 3);
    let app = spawn_app_with(config, db.pool.clone()).await;
    let token = app.token("agent.rapide").await;
    let mut client = app.auth_client().await;

    let mut refused = None;
    for _ in 0..10 {
        match client.who_am_i(authed(WhoAmIRequest {}, &token)).await {
            Ok(_) => continue,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("limit reached within 10 calls");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("retry delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect("recovered after the delay");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn the_user_limit_is_checked_before_the_database() {
    let db = TestDb::new().await;
    let user = create_user(&db.pool, "agent.presse", "agent", &[], None).await;
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.rate_limits.per_user = limit(1, 1);
    let app = spawn_app_with(config, db.pool.clone()).await;
    let token = app.token("agent.presse").await;
    let mut client = app.auth_client().await;
    client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect("first call");

    // Disabled now: the database would say UNAUTHENTICATED, but a call over the limit is
    // refused before the user's standing is read.
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(user)
        .execute(&db.pool)
        .await
        .expect("disable");
    let refused = client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("retry delay");

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    let status = client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}
