//! Metrics of every call, the end of open streams on shutdown, and the codes gRPC specifies
//! for tonic's own answers to what a client sent: the one middleware written by hand, because
//! it follows the response body to its last frame (the status of a stream comes in its
//! trailers).
//!
//! Decisions:
//! - tonic answers a request message over the size limit with OUT_OF_RANGE, and with INTERNAL
//!   every request body it cannot read: a message it cannot decode (invalid UTF-8 in a string,
//!   a broken encoding), a frame flag other than 0 and 1 (text sent as gRPC, a gRPC-web
//!   trailer frame), a compressed frame without `grpc-encoding` or that does not decompress,
//!   a body that ends inside a frame, a unary call without its message, gRPC-web text that is
//!   not base64. All are the client's doing: [`correct_status`] makes the first
//!   RESOURCE_EXHAUSTED (as gRPC's own implementations answer) and the others
//!   INVALID_ARGUMENT, in one place for every service, over gRPC and gRPC-web (this layer sits
//!   under tonic-web's translation), for unary calls and streams alike. gRPC's compression
//!   document asks INTERNAL for a compressed frame without an encoding; the server answers
//!   INVALID_ARGUMENT there too, as nothing in the server failed. tonic gives these answers no
//!   type of their own, so they are known by the start of their message ([`UNREADABLE`]); the
//!   integration tests hold the texts, so an upgrade that changes them fails there.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use metrics::{Counter, Gauge, Histogram};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::catalog::{MethodCatalog, MethodInfo};
use super::encoded::EncodedAnswer;
use crate::cache::PreEncoded;
use crate::metrics::{
    GRPC_SERVER_HANDLED, GRPC_SERVER_HANDLING_SECONDS, GRPC_SERVER_IN_FLIGHT, GRPC_SERVER_STARTED,
    STREAMS_OPEN,
};

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Records `grpc_server_*` metrics for each call and, for streaming calls, ends the response
/// stream with UNAVAILABLE when the server shuts down so clients reconnect elsewhere instead of
/// holding the process open.
#[derive(Clone)]
pub struct ObserveLayer {
    catalog: MethodCatalog,
    shutdown: CancellationToken,
    /// Each method's metric handles by path, registered at its first call (`""`: every path
    /// that names no method, so that made-up paths cannot grow the map).
    handles: Arc<RwLock<HashMap<String, Arc<MethodMetrics>>>>,
}

impl ObserveLayer {
    pub fn new(catalog: MethodCatalog, shutdown: CancellationToken) -> Self {
        Self {
            catalog,
            shutdown,
            handles: Arc::default(),
        }
    }

    /// The metric handles of the method at `path` (a registry look-up with its labels costs
    /// a few allocations and hashes; a handle, an atomic add).
    fn metrics_of(&self, path: &str, info: Option<&MethodInfo>) -> Arc<MethodMetrics> {
        let key = if info.is_some() { path } else { "" };
        if let Some(found) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return found.clone();
        }
        let made = Arc::new(MethodMetrics::new(CallLabels::new(info)));
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert(made)
            .clone()
    }
}

/// One method's metric handles.
struct MethodMetrics {
    labels: CallLabels,
    started: Counter,
    in_flight: Gauge,
    /// Open streams of this method, for a streaming one.
    streams_open: Option<Gauge>,
    handling: Histogram,
    /// `grpc_server_handled_total` by code (0..=16), registered at the code's first use.
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(labels: CallLabels) -> Self {
        let base = labels.base();
        Self {
            started: metrics::counter!(GRPC_SERVER_STARTED, &base),
            in_flight: metrics::gauge!(GRPC_SERVER_IN_FLIGHT, "grpc_type" => labels.kind),
            streams_open: labels
                .streaming
                .then(|| metrics::gauge!(STREAMS_OPEN, "kind" => labels.method.to_string())),
            handling: metrics::histogram!(GRPC_SERVER_HANDLING_SECONDS, &base),
            handled: Default::default(),
            labels,
        }
    }

    fn handled(&self, code: i32) -> Counter {
        let code = tonic::Code::from_i32(code);
        let slot = usize::try_from(code as i32).unwrap_or(2).min(16);
        self.handled[slot]
            .get_or_init(|| {
                let [service, method, kind] = self.labels.base();
                metrics::counter!(
                    GRPC_SERVER_HANDLED,
                    &[service, method, kind, ("grpc_code", format!("{code:?}"))]
                )
            })
            .clone()
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
        let path = request.uri().path();
        let info = self.layer.catalog.get(path);
        let drain_on = info
            .filter(|info| info.kind.is_streaming())
            .map(|_| self.layer.shutdown.clone().cancelled_owned());
        let method = self.layer.metrics_of(path, info);
        method.started.increment(1);
        let call = CallRecord::start(method);
        // Called now, not when the future is first polled: the layers below start their
        // clocks (`super::DeadlineLayer`) within tonic's call.
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let (parts, body) = response.into_parts();
            // A trailers-only response (an error before any message) carries its status in
            // the headers; otherwise the status comes with the trailers at the end of the body.
            let mut call = call;
            // A cached answer goes out as the cache holds it, in place of the empty message
            // its handler returned (`crate::api::cached`).
            let (mut parts, body) = match parts.extensions.get::<PreEncoded>().cloned() {
                None => (parts, body),
                Some(PreEncoded(bytes)) => match EncodedAnswer::new(bytes) {
                    Some(encoded) => (parts, Body::new(encoded)),
                    None => Status::resource_exhausted("the answer is over 4 GiB")
                        .into_http()
                        .into_parts(),
                },
            };
            correct_status(&mut parts.headers);
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

/// tonic's answer to a request message over the size limit (`codec::decode`), OUT_OF_RANGE.
const TOO_LARGE: &str = "Error, decoded message length too large";
/// The starts of the messages of tonic's INTERNAL answers to a request body it cannot read.
/// On the server these come only from reading the request (the response-side variants of the
/// same texts are a client's).
const UNREADABLE: [&str; 6] = [
    // tonic-prost: a message that is not the request type's protobuf.
    "failed to decode Protobuf message",
    // tonic `codec::decode`: a flag byte other than 0 and 1, or 1 without `grpc-encoding`.
    "protocol error: received message with",
    // tonic `codec::decode`: a compressed frame that does not decompress.
    "Error decompressing:",
    // tonic `codec::decode`: the body ends inside a frame (or inside its 5-byte header).
    "Unexpected EOF decoding stream.",
    // tonic `server::grpc`: a unary call whose body holds no message.
    "Missing request message.",
    // tonic-web: gRPC-web text that is not base64, or a body that could not be read.
    "tonic-web: ",
];

/// tonic's UNKNOWN answer to a request body whose connection failed while it was read (the
/// client's connection reset or closed mid-request, its reason unknown to HTTP/2): nobody
/// receives it, and the error-rate alert must not count a phone losing its network as a
/// server fault (seen at the end of every h2load run; reproduced by a raw HTTP/2 client
/// closing after the headers, or resetting after part of the message).
const CONNECTION_LOST: &str = "h2 protocol error: error reading a body from connection";

/// Rewrites the status in `headers` (a trailers-only answer's headers, or trailers) when it is
/// one of tonic's answers to a bad request body: over the size limit, RESOURCE_EXHAUSTED;
/// unreadable ([`UNREADABLE`]), INVALID_ARGUMENT; the connection lost while it was read
/// ([`CONNECTION_LOST`]), CANCELLED. The message, which names the limit, the field or the
/// fault, is kept.
fn correct_status(headers: &mut HeaderMap) {
    let Some(code) = grpc_code(headers) else {
        return;
    };
    let corrected = match tonic::Code::from_i32(code) {
        tonic::Code::OutOfRange | tonic::Code::Internal | tonic::Code::Unknown => {
            let Some(status) = Status::from_header_map(headers) else {
                return;
            };
            if code == tonic::Code::OutOfRange as i32 && status.message().starts_with(TOO_LARGE) {
                tonic::Code::ResourceExhausted
            } else if code == tonic::Code::Internal as i32
                && UNREADABLE
                    .iter()
                    .any(|start| status.message().starts_with(start))
            {
                tonic::Code::InvalidArgument
            } else if code == tonic::Code::Unknown as i32
                && status.message().starts_with(CONNECTION_LOST)
            {
                tonic::Code::Cancelled
            } else {
                return;
            }
        }
        _ => return,
    };
    headers.insert("grpc-status", HeaderValue::from(corrected as i32));
}

struct CallLabels {
    service: Arc<str>,
    method: Arc<str>,
    kind: &'static str,
    /// A client, server or bidirectional stream: counted in [`STREAMS_OPEN`] too.
    streaming: bool,
}

impl CallLabels {
    fn new(info: Option<&MethodInfo>) -> Self {
        match info {
            Some(info) => Self {
                service: info.service.clone(),
                method: info.method.clone(),
                kind: info.kind.as_label(),
                streaming: info.kind.is_streaming(),
            },
            None => Self {
                service: "unknown".into(),
                method: "unknown".into(),
                kind: "unknown",
                streaming: false,
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

/// One call's metrics: in-flight (and, for a stream, open by kind) while alive, and exactly one
/// `handled` count with its status code — CANCELLED when the client went away before the end.
struct CallRecord {
    method: Arc<MethodMetrics>,
    started: Instant,
    finished: bool,
}

impl CallRecord {
    fn start(method: Arc<MethodMetrics>) -> Self {
        method.in_flight.increment(1);
        if let Some(open) = &method.streams_open {
            open.increment(1);
        }
        Self {
            method,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, code: i32) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.method.handled(code).increment(1);
        self.method
            .handling
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled as i32);
        self.method.in_flight.decrement(1);
        if let Some(open) = &self.method.streams_open {
            open.decrement(1);
        }
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
        let mut polled = this.inner.poll_frame(cx);
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    correct_status(trailers);
                }
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
    fn bad_request_messages_get_the_codes_grpc_specifies() {
        let answer = |code: tonic::Code, message: &str| {
            let mut headers = HeaderMap::new();
            Status::new(code, message)
                .add_header(&mut headers)
                .expect("headers");
            correct_status(&mut headers);
            let status = Status::from_header_map(&headers).expect("status");
            (status.code(), status.message().to_owned())
        };
        let too_large =
            "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes";
        assert_eq!(
            answer(tonic::Code::OutOfRange, too_large),
            (tonic::Code::ResourceExhausted, too_large.to_owned())
        );
        for unreadable in [
            "failed to decode Protobuf message: LoginRequest.username: invalid string value: data is not UTF-8 encoded",
            "protocol error: received message with invalid compression flag: 2 (valid flags are 0 and 1), while sending request",
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            "Error decompressing: corrupt deflate stream, while sending request",
            "Unexpected EOF decoding stream.",
            "Missing request message.",
            "tonic-web: malformed base64 request",
        ] {
            assert_eq!(
                answer(tonic::Code::Internal, unreadable),
                (tonic::Code::InvalidArgument, unreadable.to_owned())
            );
        }
        let lost = "h2 protocol error: error reading a body from connection";
        assert_eq!(
            answer(tonic::Code::Unknown, lost),
            (tonic::Code::Cancelled, lost.to_owned())
        );
        // Anything else is left alone.
        for (code, message) in [
            (tonic::Code::Unknown, "something else"),
            (tonic::Code::Internal, lost),
            (tonic::Code::Internal, "internal error"),
            (tonic::Code::OutOfRange, "page out of range"),
            (tonic::Code::InvalidArgument, too_large),
            (tonic::Code::Ok, ""),
        ] {
            assert_eq!(answer(code, message), (code, message.to_owned()));
        }
    }

    #[test]
    fn grpc_code_reads_status_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(grpc_code(&headers), Some(5));
    }
}
