//! What a client sends that the handlers never see — a message over the size limit, bytes
//! that are no protobuf string, a deadline of its own — gets the status gRPC specifies.

use std::time::{Duration, Instant};

use akig::proto::v1::{LoginRequest, LoginResponse, login_request};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::support::{TestDb, spawn_app, spawn_app_on_black_hole, spawn_app_with, test_config};

const LOGIN: &str = "/akig.v1.AuthService/Login";

/// LoginRequest with bytes where the proto has strings: the same tags and wire type.
#[derive(Clone, PartialEq, prost::Message)]
struct RawLogin {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    password: Vec<u8>,
}

fn login(username: &str, password: String) -> LoginRequest {
    LoginRequest {
        identifier: Some(login_request::Identifier::Username(username.to_owned())),
        password,
        device: None,
    }
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_resource_exhausted() {
    let db = TestDb::new().await;
    let mut config = test_config(db.connect_options(), crate::support::RedisMode::None);
    config.max_message_bytes = 64 * 1024;
    let app = spawn_app_with(config, db.pool.clone()).await;

    let status = app
        .auth_client()
        .await
        .login(login("awa.camara", "x".repeat(100 * 1024)))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("65536"), "{}", status.message());

    // Under the limit, the same call is answered by the handler.
    let status = app
        .auth_client()
        .await
        .login(login("awa.camara", "x".repeat(100)))
        .await
        .expect_err("no such user");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_invalid_argument() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.expect("ready");
    let request = RawLogin {
        username: b"awa\xff\xfe.camara".to_vec(),
        password: b"secret".to_vec(),
    };
    let status = grpc
        .unary::<_, LoginResponse, _>(
            tonic::Request::new(request),
            PathAndQuery::from_static(LOGIN),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("not UTF-8");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // The message names the field (`username` is in the `identifier` oneof).
    assert!(
        status.message().contains("LoginRequest.identifier"),
        "{}",
        status.message()
    );
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn a_call_past_the_clients_deadline_is_deadline_exceeded() {
    let db = TestDb::new().await;
    // Login waits on a database that never answers.
    let (app, _hole) = spawn_app_on_black_hole(&db, Duration::from_secs(20), |_| {}).await;
    // tonic's client ends the call itself at its deadline (CANCELLED, locally); a gRPC-web
    // call over HTTP/1 leaves the answer to the server.
    let message = login("awa.camara", "secret".to_owned()).encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&message);
    let request = http::Request::post(format!("http://{}{LOGIN}", app.addr))
        .version(http::Version::HTTP_11)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("grpc-timeout", "300m")
        .body(Full::new(Bytes::from(frame)))
        .expect("request");
    let started = Instant::now();
    let response = Client::builder(TokioExecutor::new())
        .build_http()
        .request(request)
        .await
        .expect("answers");
    let status = response
        .headers()
        .get("grpc-status")
        .expect("a trailers-only answer")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        status,
        (Code::DeadlineExceeded as i32).to_string(),
        "{:?}",
        response.headers()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    app.stop(Duration::from_secs(15)).await.expect("stop");
}
