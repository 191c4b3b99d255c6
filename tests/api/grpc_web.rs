use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{TestDb, spawn_app};

fn http1_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn http1_get(addr: SocketAddr, path: &str) -> String {
    let response = http1_client()
        .get(format!("http://{addr}{path}").parse().expect("uri"))
        .await
        .expect("GET answers");
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(body.to_vec()).expect("utf-8 body")
}

/// Splits a gRPC-web body into (flags, payload) frames.
fn grpc_web_frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while body.len() >= 5 {
        let flags = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        frames.push((flags, body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes in gRPC-web body");
    frames
}

#[tokio::test]
async fn grpc_web_call_over_http1_succeeds() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;

    // HealthCheckRequest { service: "" } encodes to zero bytes: one uncompressed empty frame.
    let request = http::Request::post(format!("http://{}/grpc.health.v1.Health/Check", app.addr))
        .version(http::Version::HTTP_11)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "https://dashboard.example")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .expect("request");
    let response = http1_client().request(request).await.expect("answers");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/grpc-web"),
    );
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let frames = grpc_web_frames(&body);
    // A message frame: field 1 (status) = SERVING (1); then a trailer frame with grpc-status 0.
    assert_eq!(frames[0], (0, vec![0x08, 0x01]));
    let (flags, trailers) = &frames[1];
    assert_eq!(flags & 0x80, 0x80, "second frame is the trailer frame");
    let trailers = String::from_utf8_lossy(trailers).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");

    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn browser_preflight_is_allowed() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    let request = http::Request::builder()
        .method(http::Method::OPTIONS)
        .uri(format!(
            "http://{}/akig.v1.DashboardService/GetSummary",
            app.addr
        ))
        .header("origin", "https://dashboard.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = http1_client().request(request).await.expect("answers");
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}
