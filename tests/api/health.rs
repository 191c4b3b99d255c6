use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{RedisMode, Relay, spawn_app, spawn_app_with, test_config};

#[sqlx::test(migrations = "./migrations")]
async fn health_goes_serving_for_the_server_and_each_service(pool: PgPool) {
    let app = spawn_app(pool).await;
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

#[sqlx::test(migrations = "./migrations")]
async fn health_follows_database_reachability(pool: PgPool) {
    let options = (*pool.connect_options()).clone();
    let upstream: SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:5432".parse().expect("literal"));
    let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
    let relayed = options.clone().host("127.0.0.1").port(relay.addr.port());
    let app_pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(relayed.clone());
    let app = spawn_app_with(test_config(relayed, RedisMode::None), app_pool).await;
    app.wait_for_health(ServingStatus::Serving).await;

    let addr = relay.cut().await;
    app.wait_for_health(ServingStatus::NotServing).await;

    let _relay = Relay::start(addr, upstream).await;
    app.wait_for_health(ServingStatus::Serving).await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
    drop(pool);
}

#[sqlx::test(migrations = "./migrations")]
async fn server_starts_and_serves_with_redis_unreachable(pool: PgPool) {
    let config = test_config((*pool.connect_options()).clone(), RedisMode::Unreachable);
    let app = spawn_app_with(config, pool).await;
    app.wait_for_health(ServingStatus::Serving).await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[sqlx::test(migrations = "./migrations")]
async fn unlanded_rpcs_answer_unimplemented(pool: PgPool) {
    use akig::proto::v1::dashboard_service_client::DashboardServiceClient;
    crate::helpers::create_user(&pool, "direction", "director", &[], None).await;
    let app = spawn_app(pool).await;
    let token = app.token("direction").await;
    let mut client = DashboardServiceClient::new(app.channel().await);
    let status = client
        .get_summary(crate::helpers::authed(
            akig::proto::v1::GetSummaryRequest::default(),
            &token,
        ))
        .await
        .expect_err("not implemented yet");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[sqlx::test(migrations = "./migrations")]
async fn metrics_endpoint_counts_rpcs_by_method_and_code(pool: PgPool) {
    let app = spawn_app(pool).await;
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

#[sqlx::test(migrations = "./migrations")]
async fn metrics_endpoint_counts_cache_look_ups(pool: PgPool) {
    crate::helpers::create_user(&pool, "agent.mesure", "agent", &[], None).await;
    let app = spawn_app(pool).await;
    let token = app.token("agent.mesure").await;
    app.auth_client()
        .await
        .who_am_i(crate::helpers::authed(
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
