//! Tower layers around every gRPC and gRPC-web call: metrics, admission control, a server-side
//! deadline, ending open streams on shutdown, and turning a handler panic into INTERNAL.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tonic::body::Body;
use tonic_types::StatusExt;
use tower::{Layer, Service};

use crate::api::error::ApiError;
use crate::client_ip::ClientIp;
use crate::limits::RateLimits;
use crate::limits::calls::{RateLimitChecked, is_exempt};
use crate::metrics::{
    GRPC_SERVER_HANDLED, GRPC_SERVER_HANDLING_SECONDS, GRPC_SERVER_IN_FLIGHT, GRPC_SERVER_PANICS,
    GRPC_SERVER_STARTED,
};

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The shape of an RPC, as declared in its service descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcKind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl RpcKind {
    fn as_label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }

    pub fn is_streaming(self) -> bool {
        self != Self::Unary
    }
}

#[derive(Debug, Clone)]
pub struct MethodInfo {
    pub service: Arc<str>,
    pub method: Arc<str>,
    pub kind: RpcKind,
}

/// Every RPC the server exposes, keyed by HTTP path (`/akig.v1.GeoService/AgentSession`), read
/// from the descriptor sets. Unknown paths are reported under one label so a client sending
/// random paths cannot blow up metric cardinality.
#[derive(Debug, Clone, Default)]
pub struct MethodCatalog {
    by_path: Arc<HashMap<String, MethodInfo>>,
}

impl MethodCatalog {
    pub fn from_descriptor_sets(encoded_sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut by_path = HashMap::new();
        for encoded in encoded_sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    let full_service: Arc<str> = if package.is_empty() {
                        service.name().into()
                    } else {
                        format!("{package}.{}", service.name()).into()
                    };
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => RpcKind::Unary,
                            (true, false) => RpcKind::ClientStream,
                            (false, true) => RpcKind::ServerStream,
                            (true, true) => RpcKind::BidiStream,
                        };
                        by_path.insert(
                            format!("/{full_service}/{}", method.name()),
                            MethodInfo {
                                service: full_service.clone(),
                                method: method.name().into(),
                                kind,
                            },
                        );
                    }
                }
            }
        }
        Ok(Self {
            by_path: Arc::new(by_path),
        })
    }

    pub fn get(&self, path: &str) -> Option<&MethodInfo> {
        self.by_path.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MethodInfo)> {
        self.by_path
            .iter()
            .map(|(path, info)| (path.as_str(), info))
    }
}

fn status_response(status: Status) -> Response<Body> {
    status.into_http()
}

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

/// How long a call refused by [`AdmissionLayer`] is told to wait before retrying.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Caps the calls handled at once across all connections. Over the cap a call is refused at
/// once with RESOURCE_EXHAUSTED rather than queued: a phone on 3G is better served by a fast
/// answer it can retry with backoff than by a request that waits behind a backlog. A stream
/// holds its place only until its response starts.
#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
}

impl AdmissionLayer {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, B> Service<Request<B>> for Admission<S>
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
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(async {
                Ok(status_response(Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    "server busy, retry with backoff",
                    tonic_types::ErrorDetails::with_retry_info(Some(BUSY_RETRY_AFTER)),
                )))
            });
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}

/// Answers DEADLINE_EXCEEDED when a handler has not produced its response within the server's
/// bound. It covers the time to the response head: a whole unary call, and the set-up of a
/// stream (an open stream is not cut).
#[derive(Clone)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(response) => response,
                Err(_) => Ok(status_response(Status::deadline_exceeded(
                    "the server did not answer in time",
                ))),
            }
        })
    }
}

/// Applies the per-address call limit to calls the authentication layer has not limited
/// already (public ones: Login, Refresh; unknown paths). A stream counts as one call; its
/// messages are limited by [`crate::limits::StreamLimiter`]. Reads the [`ClientIp`] that
/// [`crate::client_ip::layer`] put in the extensions.
#[derive(Clone)]
pub struct AddressLimitLayer {
    limits: RateLimits,
}

impl AddressLimitLayer {
    pub fn new(limits: RateLimits) -> Self {
        Self { limits }
    }
}

impl<S> Layer<S> for AddressLimitLayer {
    type Service = AddressLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AddressLimit {
            inner,
            limits: self.limits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AddressLimit<S> {
    inner: S,
    limits: RateLimits,
}

impl<S, B> Service<Request<B>> for AddressLimit<S>
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
        let ip = request.extensions().get::<ClientIp>().map(|ip| ip.0);
        let checked = request.extensions().get::<RateLimitChecked>().is_some();
        if !checked
            && !is_exempt(request.uri().path())
            && let Err(limited) = self.limits.check(None, ip)
        {
            let refused = Status::from(ApiError::from(limited));
            return Box::pin(async move { Ok(status_response(refused)) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}

/// Turns a handler panic into an INTERNAL answer (the connection and its other calls live on).
#[derive(Clone, Copy)]
pub struct PanicToInternal;

impl tower_http::catch_panic::ResponseForPanic for PanicToInternal {
    type ResponseBody = Body;

    fn response_for_panic(
        &mut self,
        err: Box<dyn std::any::Any + Send + 'static>,
    ) -> Response<Self::ResponseBody> {
        let detail = err
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %detail, "handler panicked");
        metrics::counter!(GRPC_SERVER_PANICS).increment(1);
        status_response(Status::internal("internal error"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_reads_method_shapes_from_descriptors() {
        let catalog = MethodCatalog::from_descriptor_sets(&[
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        ])
        .expect("descriptor sets decode");
        let check = catalog.get("/grpc.health.v1.Health/Check").expect("Check");
        assert_eq!(check.kind, RpcKind::Unary);
        assert_eq!(&*check.service, "grpc.health.v1.Health");
        let watch = catalog.get("/grpc.health.v1.Health/Watch").expect("Watch");
        assert_eq!(watch.kind, RpcKind::ServerStream);
        let reflection = catalog
            .get("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
            .expect("reflection");
        assert_eq!(reflection.kind, RpcKind::BidiStream);
        assert!(catalog.get("/nope.Service/Method").is_none());
    }

    #[test]
    fn grpc_code_reads_status_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(grpc_code(&headers), Some(5));
    }

    #[tokio::test]
    async fn a_call_over_the_cap_is_refused_with_when_to_retry() {
        use tower::ServiceExt;

        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let admission = AdmissionLayer::new(0).layer(inner);
        let response = admission
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("response");
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(BUSY_RETRY_AFTER));
    }

    mod address_limit {
        use std::convert::Infallible;
        use std::net::SocketAddr;

        use tonic::Code;
        use tonic::transport::server::TcpConnectInfo;
        use tower::ServiceExt;

        use super::*;
        use crate::config::{Limit, RateLimitConfig};
        use crate::limits::RateLimitChecked;

        const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
        const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        const WHO_AM_I: &str = "/akig.v1.AuthService/WhoAmI";

        fn limit(per_second: u32, burst: u32) -> Limit {
            Limit {
                per_second: per_second.try_into().unwrap(),
                burst: burst.try_into().unwrap(),
            }
        }

        fn config(per_user: Limit, per_ip: Limit) -> RateLimitConfig {
            RateLimitConfig {
                per_user,
                per_ip,
                stream_messages: limit(20, 2),
                trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            }
        }

        fn request(path: &str, peer: &str) -> Request<Body> {
            let mut request = Request::builder()
                .uri(format!("http://akig{path}"))
                .body(Body::empty())
                .unwrap();
            request.extensions_mut().insert(TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(SocketAddr::new(peer.parse().unwrap(), 40000)),
            });
            request
        }

        fn forwarded(mut request: Request<Body>, value: &'static str) -> Request<Body> {
            request
                .headers_mut()
                .append("x-forwarded-for", http::HeaderValue::from_static(value));
            request
        }

        /// Calls through the client-address layer and the limit; the inner service answers OK
        /// with the ClientIp it saw.
        async fn call(limits: &RateLimits, request: Request<Body>) -> Response<Body> {
            let inner = tower::service_fn(|request: Request<Body>| async move {
                let mut response = Response::new(Body::empty());
                if let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>() {
                    response
                        .headers_mut()
                        .insert("x-client-ip", ip.to_string().parse().unwrap());
                }
                Ok::<_, Infallible>(response)
            });
            let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            tower::ServiceBuilder::new()
                .layer(crate::client_ip::layer(&trusted))
                .layer(AddressLimitLayer::new(limits.clone()))
                .service(inner)
                .oneshot(request)
                .await
                .unwrap()
        }

        fn code(response: &Response<Body>) -> Code {
            tonic::Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code())
        }

        fn seen_ip(response: &Response<Body>) -> &str {
            response.headers()["x-client-ip"].to_str().unwrap()
        }

        #[tokio::test]
        async fn burst_then_resource_exhausted_with_retry_info_then_recovers() {
            // 4/s after a burst of 2: a cell comes back every 250 ms, so a slow machine does
            // not refill one between these calls.
            let limits = RateLimits::new(&config(limit(4, 2), limit(4, 2)));
            for _ in 0..2 {
                let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
                assert_eq!(code(&response), Code::Ok);
            }
            let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
            let status = tonic::Status::from_header_map(response.headers()).expect("a status");
            assert_eq!(status.code(), Code::ResourceExhausted);
            assert!(status.message().contains("address"), "{}", status.message());
            let wait = status
                .get_details_retry_info()
                .and_then(|info| info.retry_delay)
                .expect("RetryInfo with a delay");
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_millis(250),
                "{wait:?}"
            );

            // A hair more: the limiter's clock and tokio's timer are different clocks.
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
            let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
            assert_eq!(code(&response), Code::Ok);
        }

        #[tokio::test]
        async fn addresses_are_limited_independently() {
            let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
            let first = request(WHO_AM_I, "198.51.100.1");
            assert_eq!(code(&call(&limits, first).await), Code::Ok);
            let again = request(WHO_AM_I, "198.51.100.1");
            assert_eq!(code(&call(&limits, again).await), Code::ResourceExhausted);
            let other = request(WHO_AM_I, "198.51.100.2");
            assert_eq!(code(&call(&limits, other).await), Code::Ok);
            // One IPv6 client holds a /64: its addresses share one budget.
            let v6 = request(WHO_AM_I, "2001:db8:1:2::1");
            assert_eq!(code(&call(&limits, v6).await), Code::Ok);
            let same_64 = request(WHO_AM_I, "2001:db8:1:2::ffff");
            assert_eq!(code(&call(&limits, same_64).await), Code::ResourceExhausted);
        }

        #[tokio::test]
        async fn forwarded_for_is_believed_only_from_trusted_proxies() {
            let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
            // From an untrusted peer the header is ignored.
            let spoofed = forwarded(request(WHO_AM_I, "203.0.113.5"), "192.0.2.1");
            let response = call(&limits, spoofed).await;
            assert_eq!(seen_ip(&response), "203.0.113.5");

            // Through trusted proxies: the rightmost hop that is not a proxy; left of it, the
            // client's own claims.
            let proxied = forwarded(
                request(WHO_AM_I, "10.0.0.1"),
                "192.0.2.1, 198.51.100.7, 10.0.0.2",
            );
            let response = call(&limits, proxied).await;
            assert_eq!(seen_ip(&response), "198.51.100.7");
            // ...and the limit applies to that client, not to the proxy.
            let same = forwarded(request(WHO_AM_I, "10.0.0.1"), "198.51.100.7");
            assert_eq!(code(&call(&limits, same).await), Code::ResourceExhausted);
            let other = forwarded(request(WHO_AM_I, "10.0.0.1"), "198.51.100.8");
            assert_eq!(code(&call(&limits, other).await), Code::Ok);
        }

        #[tokio::test]
        async fn a_call_the_authentication_layer_limited_passes_untouched() {
            let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
            for _ in 0..3 {
                let mut checked = request(WHO_AM_I, "198.51.100.1");
                checked.extensions_mut().insert(RateLimitChecked);
                let response = call(&limits, checked).await;
                assert_eq!(code(&response), Code::Ok);
                assert_eq!(seen_ip(&response), "198.51.100.1");
            }
            // Nothing of the address's budget was spent by them.
            let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
            assert_eq!(code(&response), Code::Ok);
        }

        #[tokio::test]
        async fn health_and_reflection_are_exempt() {
            let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
            for _ in 0..5 {
                let health = request(HEALTH_CHECK, "198.51.100.1");
                assert_eq!(code(&call(&limits, health).await), Code::Ok);
                let reflection = request(REFLECTION, "198.51.100.1");
                assert_eq!(code(&call(&limits, reflection).await), Code::Ok);
            }
            // They spent nothing of the address's budget, and still get the client address.
            let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
            assert_eq!(code(&response), Code::Ok);
            assert_eq!(seen_ip(&response), "198.51.100.1");
        }
    }
}
