//! Metrics of every call, and the end of open streams on shutdown: the one middleware written
//! by hand, because it follows the response body to its last frame (the status of a stream
//! comes in its trailers).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::catalog::{MethodCatalog, MethodInfo};
use crate::metrics::{
    GRPC_SERVER_HANDLED, GRPC_SERVER_HANDLING_SECONDS, GRPC_SERVER_IN_FLIGHT, GRPC_SERVER_STARTED,
};

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Records `grpc_server_*` metrics for each call and, for streaming calls, ends the response
/// stream with UNAVAILABLE when the server shuts down so clients reconnect elsewhere instead of
/// holding the process open.
#[derive(Clone)]
pub struct ObserveLayer {
    catalog: MethodCatalog,
    shutdown: CancellationToken,
}

impl ObserveLayer {
    pub fn new(catalog: MethodCatalog, shutdown: CancellationToken) -> Self {
        Self { catalog, shutdown }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S, B> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let info = self.layer.catalog.get(request.uri().path()).cloned();
        let labels = CallLabels::new(info.as_ref());
        let drain_on = info
            .as_ref()
            .filter(|info| info.kind.is_streaming())
            .map(|_| self.layer.shutdown.clone().cancelled_owned());
        metrics::counter!(GRPC_SERVER_STARTED, &labels.base()).increment(1);
        let call = CallRecord::start(labels);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            let (parts, body) = response.into_parts();
            // A trailers-only response (an error before any message) carries its status in
            // the headers; otherwise the status comes with the trailers at the end of the body.
            let mut call = call;
            if let Some(code) = grpc_code(&parts.headers) {
                call.finish(code);
            }
            let body = ObservedBody {
                inner: body,
                call,
                drain_on: drain_on.map(Box::pin),
                drained: false,
            };
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

fn grpc_code(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

struct CallLabels {
    service: Arc<str>,
    method: Arc<str>,
    kind: &'static str,
}

impl CallLabels {
    fn new(info: Option<&MethodInfo>) -> Self {
        match info {
            Some(info) => Self {
                service: info.service.clone(),
                method: info.method.clone(),
                kind: info.kind.as_label(),
            },
            None => Self {
                service: "unknown".into(),
                method: "unknown".into(),
                kind: "unknown",
            },
        }
    }

    fn base(&self) -> [(&'static str, String); 3] {
        [
            ("grpc_service", self.service.to_string()),
            ("grpc_method", self.method.to_string()),
            ("grpc_type", self.kind.to_owned()),
        ]
    }
}

/// One call's metrics: in-flight while alive, and exactly one `handled` count with its status
/// code — CANCELLED when the client went away before the end.
struct CallRecord {
    labels: CallLabels,
    started: Instant,
    finished: bool,
}

impl CallRecord {
    fn start(labels: CallLabels) -> Self {
        metrics::gauge!(GRPC_SERVER_IN_FLIGHT, "grpc_type" => labels.kind).increment(1);
        Self {
            labels,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, code: i32) {
        if self.finished {
            return;
        }
        self.finished = true;
        let code_name = format!("{:?}", tonic::Code::from_i32(code));
        let [service, method, kind] = self.labels.base();
        metrics::counter!(
            GRPC_SERVER_HANDLED,
            &[
                service.clone(),
                method.clone(),
                kind.clone(),
                ("grpc_code", code_name)
            ]
        )
        .increment(1);
        metrics::histogram!(GRPC_SERVER_HANDLING_SECONDS, &[service, method, kind])
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled as i32);
        metrics::gauge!(GRPC_SERVER_IN_FLIGHT, "grpc_type" => self.labels.kind).decrement(1);
    }
}

pin_project_lite::pin_project! {
    struct ObservedBody {
        #[pin]
        inner: Body,
        call: CallRecord,
        drain_on: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        drained: bool,
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.drained {
            return Poll::Ready(None);
        }
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(tonic::Code::Internal as i32),
            Poll::Ready(None) => this.call.finish(tonic::Code::Ok as i32),
            Poll::Pending => {
                // Only while the stream is idle: what it already had to say goes out first,
                // and the cut falls between messages.
                if let Some(drain_on) = this.drain_on.as_mut()
                    && drain_on.as_mut().poll(cx).is_ready()
                {
                    *this.drained = true;
                    this.call.finish(tonic::Code::Unavailable as i32);
                    let mut trailers = HeaderMap::new();
                    trailers.insert(
                        "grpc-status",
                        HeaderValue::from(tonic::Code::Unavailable as i32),
                    );
                    trailers.insert(
                        "grpc-message",
                        HeaderValue::from_static("server%20is%20shutting%20down;%20reconnect"),
                    );
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.drained || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_code_reads_status_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(grpc_code(&headers), Some(5));
    }
}
