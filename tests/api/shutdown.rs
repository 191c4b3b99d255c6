use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use akig::proto::v1::{LoginRequest, login_request};

use crate::support::{TestDb, spawn_app, spawn_app_on_black_hole};

#[tokio::test]
async fn shutdown_ends_open_streams_and_stops_within_the_grace_period() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;

    // Health/Watch is a server stream that never ends on its own.
    let mut client = HealthClient::new(app.channel().await);
    let mut watch = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch opens")
        .into_inner();
    let first = watch.message().await.expect("ok").expect("first status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let started = Instant::now();
    let shutdown = app.shutdown.clone();
    let server = app.server;
    shutdown.cancel();

    // The stream learns NOT_SERVING, then is closed with UNAVAILABLE so the client reconnects
    // elsewhere; the server does not wait for the grace period (5 s in tests) to stop.
    let mut saw_not_serving = false;
    let ending = loop {
        match watch.message().await {
            Ok(Some(update)) => {
                saw_not_serving |= update.status == ServingStatus::NotServing as i32;
            }
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert!(
        saw_not_serving,
        "watchers are told the server is going away"
    );
    let ending = ending.expect("the stream ends with a status");
    assert_eq!(ending.code(), tonic::Code::Unavailable, "{ending:?}");

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .expect("no panic")
        .expect("clean exit");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_grace_period_bounds_the_exit_while_calls_wait_on_a_stopped_database() {
    let db = TestDb::new().await;
    let grace = Duration::from_secs(3);
    let (app, _hole) = spawn_app_on_black_hole(&db, Duration::from_secs(60), |config| {
        config.shutdown_grace = grace;
    })
    .await;
    // Calls that wait on the database: they would wait for the pool's minute.
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..4 {
        let client = app.auth_client().await;
        calls.spawn(async move {
            let mut client = client;
            client
                .login(LoginRequest {
                    identifier: Some(login_request::Identifier::Username(format!("agent.{n}"))),
                    password: "secret".to_owned(),
                    device: None,
                })
                .await
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    app.shutdown.cancel();
    tokio::time::timeout(grace + Duration::from_secs(10), app.server)
        .await
        .expect("server stopped")
        .expect("no panic")
        .expect("clean exit");
    assert!(
        started.elapsed() < grace + Duration::from_millis(1_500),
        "took {:?} with a grace of {grace:?}",
        started.elapsed()
    );
    calls.abort_all();
}
