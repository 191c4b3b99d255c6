//! Logs (tracing) and metrics (Prometheus text on its own port). Metric names live here, in one
//! place, with their descriptions.

use std::convert::Infallible;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub const GRPC_SERVER_STARTED: &str = "grpc_server_started_total";
pub const GRPC_SERVER_HANDLED: &str = "grpc_server_handled_total";
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
pub const GRPC_SERVER_IN_FLIGHT: &str = "grpc_server_in_flight";
pub const GRPC_SERVER_PANICS: &str = "grpc_server_panics_total";
pub const DB_UP: &str = "akig_database_up";
pub const REDIS_UP: &str = "akig_redis_up";
pub const CACHE_REQUESTS: &str = "akig_cache_requests_total";

/// Installs the global tracing subscriber. `RUST_LOG` filters (default `info`). Calling it
/// twice is harmless (the second call keeps the first subscriber), which tests rely on.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}

/// The process-wide Prometheus recorder; installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        GRPC_SERVER_HANDLING_SECONDS.to_owned(),
                    ),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .and_then(|builder| builder.install_recorder())
                .unwrap_or_else(|e| {
                    // Another recorder is already installed (only possible when embedded):
                    // keep serving with a recorder of our own that nothing writes to.
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(GRPC_SERVER_STARTED, "RPCs started, by service and method.");
    describe_counter!(
        GRPC_SERVER_HANDLED,
        "RPCs completed, by service, method and gRPC status code."
    );
    describe_histogram!(
        GRPC_SERVER_HANDLING_SECONDS,
        Unit::Seconds,
        "Time from request to end of response (whole stream for streaming RPCs)."
    );
    describe_gauge!(GRPC_SERVER_IN_FLIGHT, "RPCs and streams open now, by kind.");
    describe_counter!(GRPC_SERVER_PANICS, "Handler panics answered with INTERNAL.");
    describe_gauge!(DB_UP, "1 when PostgreSQL answered the last health probe.");
    describe_gauge!(
        REDIS_UP,
        "1 when Redis is connected, 0 when on the in-process cache."
    );
    describe_counter!(
        CACHE_REQUESTS,
        "Cache look-ups, by kind and result (hit/miss)."
    );
    describe_gauge!(
        crate::jobs::JOB_LAST_SUCCESS,
        Unit::Seconds,
        "When each background job last completed (Unix time), by job."
    );
    describe_counter!(
        crate::jobs::JOB_FAILURES,
        "Failed background job runs, by job."
    );
    describe_counter!(
        crate::geo::search::ROUTE_SEARCHES,
        "Route searches ended, by rpc and outcome (finished, cancelled, busy)."
    );
    describe_gauge!(
        crate::geo::search::ROUTE_SEARCHES_RUNNING,
        "Route searches running now."
    );
}

/// Serves `GET /metrics` until `shutdown` fires.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        http::Response::builder()
                            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                            .body(http_body_util::Full::new(bytes::Bytes::from(
                                handle.render(),
                            )))
                    } else {
                        http::Response::builder()
                            .status(http::StatusCode::NOT_FOUND)
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                b"not found; try /metrics\n",
                            )))
                    };
                    Ok::<_, Infallible>(response.expect("static response parts are valid"))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
