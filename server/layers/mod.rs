//! Tower middleware around every gRPC and gRPC-web call. `crate::startup` stacks it, outermost
//! first: request id and trace, CORS and gRPC-web, [`ObserveLayer`] (metrics, end of streams on
//! shutdown), then the refusals — admission (a cap on calls at once), the deadline (the
//! server's or the client's `grpc-timeout`, [`DeadlineLayer`]), [`SpawnLayer`] (the rest of the
//! call runs as a task, to completion), the client address (`crate::client_ip`), authentication (`crate::auth::layer`), the
//! per-address limit ([`address_limit`]) — and [`PanicToInternal`] next to the services.
//!
//! Decisions:
//! - Built from tower's own middleware (`load_shed`, `concurrency_limit`, `timeout`,
//!   `filter`, `map_request`) rather than hand-written services. A refusal is an
//!   `Err(Status)`; tonic's `RecoverErrorLayer`, stacked under [`ObserveLayer`], turns it into
//!   the gRPC answer, and [`refusal_status`] gives tower's own refusals (overload, timeout)
//!   their status. [`ObserveLayer`] is the one hand-written service: it follows the response
//!   body.
//! - Over the cap a call is refused at once with RESOURCE_EXHAUSTED rather than queued: a phone
//!   on 3G is better served by a fast answer it can retry with backoff than by a request that
//!   waits behind a backlog. A stream holds its place only until its response starts.
//! - The deadline covers the time to the response head: a whole unary call, and the set-up of a
//!   stream (an open stream is not cut).

mod catalog;
mod deadline;
mod encoded;
mod observe;
mod spawn;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;
use tonic_types::StatusExt;
use tower::BoxError;
use tower::filter::{AsyncFilterLayer, AsyncPredicate};

pub use catalog::{MethodCatalog, MethodInfo, RpcKind};
pub use deadline::{Deadline, DeadlineLayer, client_timeout};
pub use observe::{Observe, ObserveLayer};
pub use spawn::{SpawnLayer, SpawnToCompletion};

use crate::api::error::ApiError;
use crate::client_ip::ClientIp;
use crate::limits::RateLimits;
use crate::limits::calls::{RateLimitChecked, is_exempt};
use crate::metrics::GRPC_SERVER_PANICS;

/// How long a call refused for want of capacity is told to wait before retrying.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The status of a refusal by tower's middleware: over capacity (`load_shed`) is
/// RESOURCE_EXHAUSTED with when to retry, past the deadline (`timeout`) is DEADLINE_EXCEEDED;
/// any other error (a `Status` already) passes unchanged.
pub fn refusal_status(error: BoxError) -> BoxError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Box::new(Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "server busy, retry with backoff",
            tonic_types::ErrorDetails::with_retry_info(Some(BUSY_RETRY_AFTER)),
        ));
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Box::new(Status::deadline_exceeded(
            "the server did not answer in time",
        ));
    }
    error
}

/// Applies the per-address call limit to calls the authentication layer has not limited
/// already (public ones: Login, Refresh; unknown paths), keyed by the [`ClientIp`] in the
/// extensions: shared by the replicas through Redis in a round trip of its own when there is
/// Redis ([`RateLimits::check_shared`]). A stream counts as one call; its messages are limited
/// by [`crate::limits::StreamLimiter`].
pub fn address_limit(limits: RateLimits) -> AsyncFilterLayer<AddressLimit> {
    AsyncFilterLayer::new(AddressLimit { limits })
}

/// The predicate of [`address_limit`].
#[derive(Clone)]
pub struct AddressLimit {
    limits: RateLimits,
}

impl<B: Send + 'static> AsyncPredicate<Request<B>> for AddressLimit {
    type Future = Pin<Box<dyn Future<Output = Result<Request<B>, BoxError>> + Send>>;
    type Request = Request<B>;

    fn check(&mut self, request: Request<B>) -> Self::Future {
        let limits = self.limits.clone();
        Box::pin(async move {
            let checked = request.extensions().get::<RateLimitChecked>().is_some();
            if checked || is_exempt(request.uri().path()) {
                return Ok(request);
            }
            let ip = request.extensions().get::<ClientIp>().map(|ip| ip.0);
            match limits.check_shared(None, ip).await {
                Ok(()) => Ok(request),
                Err(limited) => Err(Box::new(Status::from(ApiError::from(limited))) as BoxError),
            }
        })
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
        Status::internal("internal error").into_http()
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_call_over_the_cap_is_refused_with_when_to_retry() {
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let admission = tower::ServiceBuilder::new()
            .layer(tonic::service::RecoverErrorLayer::new())
            .map_err(refusal_status)
            .load_shed()
            .concurrency_limit(0)
            .service(inner);
        let response = admission
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("response");
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(BUSY_RETRY_AFTER));
    }

    #[tokio::test]
    async fn a_late_answer_is_deadline_exceeded() {
        let inner = tower::service_fn(|_: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let deadline = tower::ServiceBuilder::new()
            .layer(tonic::service::RecoverErrorLayer::new())
            .map_err(refusal_status)
            .timeout(Duration::from_millis(20))
            .service(inner);
        let response = deadline
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("response");
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }

    mod address_limit {
        use std::convert::Infallible;

        use tonic::Code;
        use tower::ServiceExt;

        use super::*;
        use crate::limits::RateLimitChecked;
        use crate::limits::{Limit, RateLimitConfig};

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

        use crate::client_ip::testing::{forwarded, request};

        /// Calls through the client-address layer and the limit, a refusal turned into its
        /// answer as in the server; the inner service answers OK with the ClientIp it saw.
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
                .layer(tower_http::map_response_body::MapResponseBodyLayer::new(
                    Body::new,
                ))
                .layer(tonic::service::RecoverErrorLayer::new())
                .layer(crate::client_ip::layer(&trusted))
                .layer(address_limit(limits.clone()))
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
