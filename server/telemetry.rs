//! Logs (tracing) and metrics (Prometheus text on its own port). The metrics themselves, names
//! and descriptions, are listed in `crate::metrics`.

use std::convert::Infallible;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written (`AKIG_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

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
                        crate::metrics::GRPC_SERVER_HANDLING_SECONDS.to_owned(),
                    ),
                    &crate::metrics::HANDLING_SECONDS_BUCKETS,
                )
                .and_then(|builder| builder.install_recorder())
                .unwrap_or_else(|e| {
                    // Another recorder is already installed (only possible when embedded):
                    // keep serving with a recorder of our own that nothing writes to.
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            crate::metrics::describe();
            handle
        })
        .clone()
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
