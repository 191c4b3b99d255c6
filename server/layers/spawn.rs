//! Runs each call's handler as its own task, to completion, whether or not the client is still
//! there to read the answer.
//!
//! Decisions:
//! - A handler future dropped at an `.await` inside its database work (the client disconnected,
//!   the deadline passed) can leave a pooled connection inside an open transaction: sqlx 0.8.6
//!   returns to the pool a connection whose `BEGIN` was in flight when its future was dropped
//!   (sqlx issue #4393, fixed upstream by PR #4394; no 0.8.x release carries the fix, 0.8.6
//!   is the last). The next borrower then fails ("SET TRANSACTION ISOLATION LEVEL must be called before
//!   any query") and the connection holds its locks until recycled. Spawning the handler future
//!   means nothing ever drops it half-way: a unit of database work always ends with its
//!   `COMMIT` or `ROLLBACK`, whatever the client does.
//! - Stacked under the deadline and the admission cap, over authentication and the services:
//!   past the deadline the client gets DEADLINE_EXCEEDED at once while the work finishes in the
//!   background; authentication's own reads are covered too. A disconnected client's work keeps
//!   its pool connection until it ends, so it stays bounded by the pool (`max_connections`,
//!   `acquire_timeout`), not by the admission cap.
//! - A panic in the handler is resumed in the caller's future, so the panic layer above answers
//!   INTERNAL as before. The task keeps the call's tracing span.
//! - Calls whose work must stop when their client leaves run inline instead
//!   ([`SpawnLayer::inline`]): OptimizeRoute's search is CPU work with no transaction, and
//!   dropping it frees its search slot at once (no CPU burnt for nobody).
//! - Streams: the handler future ends when the response head is ready; the messages of a
//!   response stream are produced by its body, which is not spawned (a stream's database work
//!   runs in tasks of its own).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};
use tracing::Instrument;

/// Applies [`SpawnToCompletion`].
#[derive(Debug, Clone, Default)]
pub struct SpawnLayer {
    inline: Arc<[&'static str]>,
}

impl SpawnLayer {
    /// Runs the calls of these paths (`/package.Service/Method`) inline: dropped with their
    /// client, as without this layer.
    pub fn inline(paths: &[&'static str]) -> Self {
        Self {
            inline: paths.into(),
        }
    }
}

impl<S> Layer<S> for SpawnLayer {
    type Service = SpawnToCompletion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SpawnToCompletion {
            inner,
            inline: self.inline.clone(),
        }
    }
}

/// See the module documentation. Errors: the inner service's, unchanged.
#[derive(Debug, Clone)]
pub struct SpawnToCompletion<S> {
    inner: S,
    inline: Arc<[&'static str]>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<Request<B>> for SpawnToCompletion<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.inline.contains(&request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let task = tokio::spawn(self.inner.call(request).in_current_span());
        Box::pin(async move {
            match task.await {
                Ok(answer) => answer,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Tasks are cancelled only when the runtime shuts down, when nobody awaits this.
                Err(error) => panic!("handler task cancelled: {error}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// Calls `path` through a layer running `inline` paths inline, with a handler that takes
    /// 50 ms; the caller gives up after 5 ms. Answers whether the handler ran to its end.
    async fn ran_to_its_end(layer: SpawnLayer, path: &str) -> bool {
        let finished = Arc::new(AtomicBool::new(false));
        let seen = finished.clone();
        let inner = tower::service_fn(move |_: Request<()>| {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.store(true, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(())
            }
        });
        let mut request = Request::new(());
        *request.uri_mut() = path.parse().unwrap();
        let call = layer.layer(inner).oneshot(request);
        let gave_up = tokio::time::timeout(Duration::from_millis(5), call).await;
        assert!(gave_up.is_err());
        assert!(!seen.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_call_dropped_half_way_still_runs_to_its_end() {
        let layer = SpawnLayer::inline(&["/akig.v1.GeoService/OptimizeRoute"]);
        assert!(ran_to_its_end(layer, "/akig.v1.CollectionsService/GetTenant").await);
    }

    #[tokio::test]
    async fn an_inline_path_is_dropped_with_its_caller() {
        let layer = SpawnLayer::inline(&["/akig.v1.GeoService/OptimizeRoute"]);
        assert!(!ran_to_its_end(layer, "/akig.v1.GeoService/OptimizeRoute").await);
    }

    #[tokio::test]
    async fn a_panic_reaches_the_caller() {
        let inner = tower::service_fn(|_: Request<()>| async {
            if true {
                panic!("boom");
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let call = tokio::spawn(SpawnLayer::default().layer(inner).oneshot(Request::new(())));
        let error = call.await.expect_err("the panic is resumed");
        assert!(error.is_panic());
    }
}
