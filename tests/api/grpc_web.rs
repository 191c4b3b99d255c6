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

/// The status of a gRPC or gRPC-web answer: from the headers of a trailers-only answer, else
/// from the trailers (gRPC) or the trailer frame at the end of the body (gRPC-web).
async fn answered_status(response: http::Response<tonic::body::Body>, web: bool) -> tonic::Status {
    let (parts, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status;
    }
    let collected = body.collect().await.expect("body");
    if web {
        let bytes = collected.to_bytes();
        let frames = grpc_web_frames(&bytes);
        let (_, trailers) = frames
            .iter()
            .find(|(flags, _)| flags & 0x80 == 0x80)
            .expect("a trailer frame");
        let mut headers = http::HeaderMap::new();
        for line in String::from_utf8_lossy(trailers).split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(
                    http::HeaderName::from_bytes(name.trim().as_bytes()).expect("name"),
                    http::HeaderValue::from_str(value.trim()).expect("value"),
                );
            }
        }
        tonic::Status::from_header_map(&headers).expect("status in the trailer frame")
    } else {
        let trailers = collected.trailers().cloned().expect("trailers");
        tonic::Status::from_header_map(&trailers).expect("status in the trailers")
    }
}

/// Sends `body` as it is to `path`: over gRPC-web on HTTP/1.1 (`web`), else over gRPC on
/// HTTP/2, with the extra headers given.
async fn raw_call(
    app: &crate::support::TestApp,
    path: &str,
    web: bool,
    headers: &[(&'static str, &'static str)],
    body: &'static [u8],
) -> tonic::Status {
    use tower::ServiceExt;
    let mut request = http::Request::post(format!("http://{}{path}", app.addr));
    if web {
        request = request
            .version(http::Version::HTTP_11)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1");
    } else {
        request = request
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    }
    for (name, value) in headers {
        let headers = request.headers_mut().expect("valid request");
        headers.insert(*name, http::HeaderValue::from_static(value));
    }
    if web {
        let response = http1_client()
            .request(
                request
                    .body(Full::new(Bytes::from_static(body)))
                    .expect("request"),
            )
            .await
            .expect("answers");
        let (parts, body) = response.into_parts();
        let response = http::Response::from_parts(parts, tonic::body::Body::new(body));
        answered_status(response, true).await
    } else {
        let request = request
            .body(tonic::body::Body::new(Full::new(Bytes::from_static(body))))
            .expect("request");
        let response = app.channel().await.oneshot(request).await.expect("answers");
        answered_status(response, false).await
    }
}

/// Request bodies that break gRPC's framing or the message inside it, over gRPC and gRPC-web:
/// the client's doing, so INVALID_ARGUMENT, never INTERNAL.
#[tokio::test]
async fn malformed_request_bodies_are_invalid_arguments_over_grpc_and_grpc_web() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    app.wait_for_health(ServingStatus::Serving).await;

    use tonic::Code::{InvalidArgument, Unimplemented};
    let plain: &[(&str, &str)] = &[];
    let gzip: &[(&str, &str)] = &[("grpc-encoding", "gzip")];
    let text: &[(&str, &str)] = &[("content-type", "application/grpc-web-text")];
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [u8],
        tonic::Code,
    );
    let cases: [Case; 9] = [
        (
            "a compression flag that is neither 0 nor 1",
            plain,
            &[2, 0, 0, 0, 0],
            InvalidArgument,
        ),
        (
            "the trailer flag on a request frame",
            plain,
            &[0x80, 0, 0, 0, 0],
            InvalidArgument,
        ),
        (
            "a compressed frame without grpc-encoding",
            plain,
            &[1, 0, 0, 0, 1, 0],
            InvalidArgument,
        ),
        (
            "a frame shorter than its length",
            plain,
            &[0, 0, 0, 0, 9, 0x0a, 0x01],
            InvalidArgument,
        ),
        ("half a frame header", plain, &[0, 0], InvalidArgument),
        ("text, not gRPC", plain, b"hello, world", InvalidArgument),
        ("no message at all", plain, b"", InvalidArgument),
        (
            "a message that is not protobuf",
            plain,
            &[0, 0, 0, 0, 3, 0xff, 0xff, 0xff],
            InvalidArgument,
        ),
        // gRPC's answer to a compression the server does not take.
        (
            "a compression the server does not take",
            gzip,
            &[1, 0, 0, 0, 4, 1, 2, 3, 4],
            Unimplemented,
        ),
    ];
    let mut wrong = Vec::new();
    for path in ["/grpc.health.v1.Health/Check", "/akig.v1.AuthService/Login"] {
        for web in [false, true] {
            for (case, headers, body, expected) in cases {
                let status = raw_call(&app, path, web, headers, body).await;
                if status.code() != expected {
                    wrong.push(format!(
                        "{case} to {path} (gRPC-web: {web}): {:?} {}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
        // gRPC-web text whose body is not base64.
        let status = raw_call(&app, path, true, text, b"!!!!").await;
        if status.code() != InvalidArgument {
            wrong.push(format!(
                "gRPC-web text not in base64 to {path}: {:?} {}",
                status.code(),
                status.message()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Still serving.
    app.wait_for_health(ServingStatus::Serving).await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

/// A cached read answers gRPC-web callers too, with the same message as over gRPC, whether
/// computed (MISS) or sent as the cache holds it (HIT).
#[tokio::test]
async fn a_cached_read_answers_grpc_web_the_same_message_as_grpc() {
    use akig::proto::v1::{GetTenantRequest, GetTenantResponse};
    use prost::Message;

    use crate::support::{KALOUM, authed, create_charges, create_site, create_tenant, create_user};

    let db = TestDb::new().await;
    let site = create_site(&db.pool, "KAL").await;
    create_user(&db.pool, "manager.kal", "site_manager", &[site], None).await;
    let tenant = create_tenant(&db.pool, site, "Mariama Diallo", 1_500_000, Some(KALOUM)).await;
    create_charges(
        &db.pool,
        tenant,
        crate::support::today() - chrono::Days::new(40),
        1,
        1_500_000,
    )
    .await;
    let app = spawn_app(&db).await;
    let token = app.token("manager.kal").await;
    let request = GetTenantRequest {
        tenant_id: tenant.to_string(),
    };

    let web_call = || async {
        let mut body = vec![0];
        body.extend(u32::try_from(request.encoded_len()).unwrap().to_be_bytes());
        body.extend(request.encode_to_vec());
        let call = http::Request::post(format!(
            "http://{}/akig.v1.CollectionsService/GetTenant",
            app.addr
        ))
        .version(http::Version::HTTP_11)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .expect("request");
        let response = http1_client().request(call).await.expect("answers");
        let x_cache = response.headers()["x-cache"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let frames = grpc_web_frames(&bytes);
        assert_eq!(frames.len(), 2, "one message, then the trailers");
        let trailers = String::from_utf8_lossy(&frames[1].1).to_lowercase();
        assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");
        let message = GetTenantResponse::decode(&frames[0].1[..]).expect("a GetTenantResponse");
        (x_cache, message)
    };
    let (first, computed) = web_call().await;
    let (second, kept) = web_call().await;
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    let over_grpc = app
        .collections(&token)
        .await
        .get_tenant(authed(request.clone(), &token))
        .await
        .expect("over gRPC")
        .into_inner();
    assert_eq!(computed, kept);
    assert_eq!(kept, over_grpc);
    let tenant = kept.tenant.expect("a tenant");
    assert_eq!(tenant.full_name, "Mariama Diallo");
    assert_eq!(tenant.outstanding_gnf, 1_500_000);
}
