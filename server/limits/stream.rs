//! Backpressure on the messages a user sends on inbound streams (positions, heartbeats).
//!
//! Decisions:
//! - Over the limit the next message waits instead of failing the stream: the handler stops
//!   reading meanwhile, so HTTP/2 flow control slows the phone (flushing its offline buffer,
//!   say) rather than cutting it.
//! - Keyed by user, so that two streams of one user share the budget.
//! - With Redis ([`StreamLimiter::shared_through`]) the budget is shared by the replicas
//!   (`limits::shared`); the per-process limiter answers while Redis does not.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use governor::RateLimiter;
use uuid::Uuid;

use super::calls::{Keyed, purge_keyed, quota};
use super::shared::SharedGcra;
use crate::limits::Limit;
use crate::metrics::RATE_LIMITED;

/// Slows the messages of each user's inbound streams to a [`Limit`]. Cheap to clone: the
/// clones share the same state.
#[derive(Clone)]
pub struct StreamLimiter {
    limiter: Arc<Keyed<Uuid>>,
    shared: Option<SharedGcra>,
}

impl StreamLimiter {
    pub fn new(limit: Limit) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota(limit))),
            shared: None,
        }
    }

    /// The same limit, shared with the other replicas through `redis`.
    pub fn shared_through(limit: Limit, redis: crate::redis::Redis) -> Self {
        Self {
            shared: Some(SharedGcra::new(redis, limit, "stream")),
            ..Self::new(limit)
        }
    }

    /// Wraps an inbound stream (e.g. `tonic::Streaming<T>`) of `user`.
    pub fn limit<S>(&self, user: Uuid, stream: S) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream + Send + 'static,
        S::Item: Send,
    {
        let this = self.clone();
        futures::stream::unfold(
            (Box::pin(stream), this),
            move |(mut stream, this)| async move {
                let item = stream.next().await?;
                let shared = match &this.shared {
                    Some(shared) => shared.spend(user).await,
                    None => None,
                };
                match shared {
                    Some(wait) if wait.is_zero() => {}
                    Some(wait) => {
                        metrics::counter!(RATE_LIMITED, "limit" => "stream").increment(1);
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        if this.limiter.check_key(&user).is_err() {
                            metrics::counter!(RATE_LIMITED, "limit" => "stream").increment(1);
                            this.limiter.until_key_ready(&user).await;
                        }
                    }
                }
                Some((item, (stream, this)))
            },
        )
    }

    /// Drops the users whose budget is back to full.
    pub fn purge(&self) {
        purge_keyed(&self.limiter);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn stream_limiter_slows_a_fast_stream() {
        // 20 messages/s after a burst of 2: 6 messages take at least 4 × 50 ms.
        let limiter = StreamLimiter::new(Limit {
            per_second: 20.try_into().unwrap(),
            burst: 2.try_into().unwrap(),
        });
        let user = Uuid::new_v4();
        let started = Instant::now();
        let items: Vec<u32> = limiter
            .limit(user, futures::stream::iter(0..6))
            .collect()
            .await;
        assert_eq!(items, (0..6).collect::<Vec<_>>());
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );

        // Two streams of one user share the budget: 6 messages again take at least 4 × 50 ms.
        let user = Uuid::new_v4();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            limiter.limit(user, futures::stream::iter(0..3)).count(),
            limiter.limit(user, futures::stream::iter(0..3)).count(),
        );
        assert_eq!(a + b, 6);
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );

        // Another user has a budget of their own.
        assert!(limiter.limiter.check_key(&Uuid::new_v4()).is_ok());
    }
}
