use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{
    RedisMode, Relay, TestDb, spawn_app, spawn_app_behind_relay, spawn_app_with, test_config,
};

#[tokio::test]
async fn health_goes_serving_for_the_server_and_each_service() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;
    for service in akig::api::SERVICE_NAMES {
        assert_eq!(
            app.health_status(service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn health_follows_database_reachability() {
    let db = TestDb::new().await;
    let (app, relay, upstream) = spawn_app_behind_relay(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;

    let addr = relay.cut().await;
    app.wait_for_health(ServingStatus::NotServing).await;

    let _relay = Relay::start(addr, upstream).await;
    app.wait_for_health(ServingStatus::Serving).await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn server_starts_and_serves_with_redis_unreachable() {
    let db = TestDb::new().await;
    let config = test_config(db.connect_options(), RedisMode::Unreachable);
    let app = spawn_app_with(config, db.pool.clone()).await;
    app.wait_for_health(ServingStatus::Serving).await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn metrics_endpoint_counts_rpcs_by_method_and_code() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;
    let metrics_addr = app.metrics_addr.expect("metrics enabled");
    let body = crate::grpc_web::http1_get(metrics_addr, "/metrics").await;
    assert!(
        body.lines()
            .any(|line| line.starts_with("grpc_server_handled_total")
                && line.contains("grpc_method=\"Check\"")
                && line.contains("grpc_code=\"Ok\"")),
        "no handled counter for Health/Check in:\n{body}"
    );
    assert!(body.contains("grpc_server_handling_seconds_bucket"));

    // The purges run at start-up; each completed run stamps its job.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = crate::grpc_web::http1_get(metrics_addr, "/metrics").await;
        let stamped = |job: &str| {
            body.lines().any(|line| {
                line.starts_with("akig_job_last_success_timestamp_seconds")
                    && line.contains(&format!("job=\"{job}\""))
            })
        };
        if stamped("idempotency_purge") && stamped("session_purge") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job stamps in:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn metrics_endpoint_counts_cache_look_ups() {
    let db = TestDb::new().await;
    crate::support::create_user(&db.pool, "agent.mesure", "agent", &[], None).await;
    let app = spawn_app(&db).await;
    let token = app.token("agent.mesure").await;
    app.auth_client()
        .await
        .who_am_i(crate::support::authed(
            akig::proto::v1::WhoAmIRequest {},
            &token,
        ))
        .await
        .expect("who am i");
    let metrics_addr = app.metrics_addr.expect("metrics enabled");
    let body = crate::grpc_web::http1_get(metrics_addr, "/metrics").await;
    // The role's permissions were looked up in the cache by the authentication layer.
    assert!(
        body.lines()
            .any(|line| line.starts_with("akig_cache_requests_total")
                && line.contains("kind=\"rbac\"")),
        "no cache look-up counted in:\n{body}"
    );
    assert!(body.contains("# HELP akig_cache_requests_total"));
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}
