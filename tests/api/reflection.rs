use std::time::Duration;

use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::{TestDb, spawn_app};

#[tokio::test]
async fn reflection_lists_every_service_and_describes_them() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "akig.v1.GeoService".to_owned(),
            )),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream opens")
        .into_inner();

    let listed = responses.message().await.expect("ok").expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in akig::api::SERVICE_NAMES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "grpc.health.v1.Health"));

    let described = responses.message().await.expect("ok").expect("a response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn error_details_are_described_for_clients_to_decode() {
    let db = TestDb::new().await;
    let app = spawn_app(&db).await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let symbols = [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
        "google.rpc.Status",
    ];
    let requests: Vec<ServerReflectionRequest> = symbols
        .iter()
        .map(|symbol| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol((*symbol).to_owned())),
        })
        .collect();
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream opens")
        .into_inner();
    for symbol in symbols {
        let answer = responses.message().await.expect("ok").expect("a response");
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("{symbol}: expected file descriptors, got {answer:?}");
        };
        let name = symbol.rsplit('.').next().expect("a name");
        let described = files.file_descriptor_proto.iter().any(|file| {
            let file = <prost_types::FileDescriptorProto as prost::Message>::decode(&file[..])
                .expect("a file descriptor");
            file.package() == "google.rpc" && file.message_type.iter().any(|m| m.name() == name)
        });
        assert!(described, "{symbol} not described");
    }
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}
