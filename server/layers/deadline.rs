//! The deadline of a call: the server's own bound (`AKIG_REQUEST_TIMEOUT_SECS`) or the
//! client's `grpc-timeout`, whichever ends first. Past it the answer is DEADLINE_EXCEEDED.
//!
//! Decisions:
//! - tonic's server also reads `grpc-timeout`, outside every layer, and answers CANCELLED when
//!   it passes (`tonic::TimeoutExpired`), where gRPC specifies DEADLINE_EXCEEDED. This layer
//!   starts its clock inside tonic's call, so it never ends later than tonic's, and tonic polls
//!   the call before its own clock: this answer is the one the client gets.
//! - Like `tower::timeout`, the deadline covers the time to the response head: a whole unary
//!   call, and the set-up of a stream (an open stream is not cut).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Request};
use tonic::Status;
use tower::{BoxError, Layer, Service};

/// Applies [`Deadline`] with the server's own bound.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    server: Duration,
}

impl DeadlineLayer {
    /// `server`: how long any call may take to its response head.
    pub fn new(server: Duration) -> Self {
        Self { server }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            server: self.server,
        }
    }
}

/// See the module documentation. Errors: `tower::timeout::error::Elapsed` past the server's
/// bound (answered by [`super::refusal_status`]), a DEADLINE_EXCEEDED `Status` past the
/// client's.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    server: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = client_timeout(request.headers()).filter(|client| *client < self.server);
        let call = self.inner.call(request);
        // Started now, before tonic starts its own clock for the same header.
        let timed = tokio::time::timeout(client.unwrap_or(self.server), call);
        Box::pin(async move {
            match timed.await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) if client.is_some() => Err(Status::deadline_exceeded(
                    "the call's deadline (grpc-timeout) passed before an answer",
                )
                .into()),
                Err(_) => Err(tower::timeout::error::Elapsed::new().into()),
            }
        })
    }
}

/// The `grpc-timeout` header: at most 8 digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`
/// (gRPC over HTTP/2, "Requests"). `None` when absent or malformed (tonic ignores it too).
pub fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn parsed(value: &'static str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static(value));
        client_timeout(&headers)
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parsed("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parsed("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parsed("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parsed("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parsed("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parsed("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S", "S1"] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
        assert_eq!(client_timeout(&HeaderMap::new()), None);
    }
}
