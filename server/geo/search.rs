//! Route searches off the async runtime: each runs on tokio's blocking pool, at most
//! `max_searches` at once per process, and stops at once when its caller goes away.
//!
//! Decisions
//! - A search takes a [`SearchPermit`] before it starts; over the cap the caller is told at
//!   once ([`Busy`]: RESOURCE_EXHAUSTED with a retry delay) rather than queued, as calls are
//!   by the admission layer. The permit travels with the search into its thread and comes back
//!   when the thread is done, so a slot is free only once its CPU is.
//! - The great-circle matrix is built in the search's thread and counts against its time
//!   budget; the solver gets what is left (at least its construction and first local search
//!   always run, so there is always an answer).
//! - Cancellation is an `AtomicBool` the solver reads every round; [`CancelOnDrop`] raises it
//!   when the handler's future is dropped (the client went away) or a session replaces the
//!   search.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinError, JoinHandle};

use crate::domain::route::trip::{Plan, Trip};
use crate::domain::route::{self, Budget, Options, RouteError, Stop};
use crate::metrics::{ROUTE_SEARCHES, ROUTE_SEARCHES_RUNNING};

/// How long a caller refused for lack of a slot is told to wait: searches last about the
/// default budget, 1 s.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Fewest rounds without progress that end a search (small problems need a few hundred
/// rounds to be sure; a round costs microseconds there).
pub const MIN_STALL_ROUNDS: u64 = 1_000;

/// The per-process cap on concurrent searches. Cheap to clone.
#[derive(Clone)]
pub struct Searches {
    permits: Arc<Semaphore>,
    max: usize,
    stall_rounds_per_stop: u64,
}

/// Every search slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {0} route search slots are busy; retry shortly")]
pub struct Busy(pub usize);

/// A search slot, held for as long as the search's thread runs.
pub struct SearchPermit {
    _permit: OwnedSemaphorePermit,
}

impl Drop for SearchPermit {
    fn drop(&mut self) {
        metrics::gauge!(ROUTE_SEARCHES_RUNNING).decrement(1.0);
    }
}

/// Raises the cancellation flag when dropped.
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What to search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub trip: Trip,
    /// Wall time for the matrix and the search.
    pub budget: Duration,
    pub seed: u64,
    /// The RPC, for the metric's label.
    pub rpc: &'static str,
}

/// A better route during a search.
#[derive(Debug, Clone)]
pub struct Improved {
    pub plan: Plan,
    /// Rounds run when it was found.
    pub iterations: u64,
}

/// The result of a search.
#[derive(Debug, Clone)]
pub struct Found {
    pub plan: Plan,
    pub iterations: u64,
    /// Matrix and search, wall time.
    pub elapsed: Duration,
    pub stop: Stop,
}

impl Searches {
    /// At most `max` (at least 1) searches at once; a search ends after
    /// `stall_rounds_per_stop` × points (at least [`MIN_STALL_ROUNDS`]) rounds without a
    /// shorter route, 0 meaning never.
    pub fn new(max: usize, stall_rounds_per_stop: u64) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            stall_rounds_per_stop,
        }
    }

    /// A slot, or [`Busy`] at once.
    pub fn try_acquire(&self, rpc: &'static str) -> Result<SearchPermit, Busy> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                metrics::gauge!(ROUTE_SEARCHES_RUNNING).increment(1.0);
                Ok(SearchPermit { _permit: permit })
            }
            Err(_) => {
                metrics::counter!(ROUTE_SEARCHES, "rpc" => rpc, "outcome" => "busy").increment(1);
                Err(Busy(self.max))
            }
        }
    }

    /// Runs the search on the blocking pool and waits for it; dropping this future cancels
    /// the search. The slot is given back before this returns.
    pub async fn run(
        &self,
        permit: SearchPermit,
        request: SearchRequest,
    ) -> Result<Result<Found, RouteError>, JoinError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancel.clone());
        let stall = self.stall_rounds_per_stop;
        tokio::task::spawn_blocking(move || {
            let found = search(&request, stall, &cancel, None, |_| {});
            record(request.rpc, request.trip.stops.len(), &found);
            drop(permit);
            found
        })
        .await
    }

    /// Starts the search on the blocking pool and returns at once; its better routes (at most
    /// one per `every`, the first at once) and its result come through [`Running::next`].
    pub fn start(&self, permit: SearchPermit, request: SearchRequest, every: Duration) -> Running {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let (events, receiver) = mpsc::unbounded_channel();
        let stall = self.stall_rounds_per_stop;
        let handle = tokio::task::spawn_blocking(move || {
            let found = search(&request, stall, &flag, Some(every), |improved| {
                // The receiver gone means the session ended: the flag is raised too.
                let _ = events.send(Event::Improved(improved));
            });
            record(request.rpc, request.trip.stops.len(), &found);
            let _ = events.send(Event::Finished(found));
            permit
        });
        Running {
            cancel: CancelOnDrop(cancel),
            events: receiver,
            handle,
        }
    }
}

/// What a running search reports.
#[derive(Debug)]
pub enum Event {
    Improved(Improved),
    /// The last event of a search.
    Finished(Result<Found, RouteError>),
}

/// A search started by [`Searches::start`]. Dropping it cancels the search.
pub struct Running {
    cancel: CancelOnDrop,
    events: mpsc::UnboundedReceiver<Event>,
    handle: JoinHandle<SearchPermit>,
}

impl Running {
    /// The next event; `None` once the search is over (or its thread panicked).
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for the search's thread to end and gives its slot back, to reuse it at once for
    /// the next search, or `None` if the thread panicked. Cancels the search first unless it
    /// has finished.
    pub async fn stop(self) -> Option<SearchPermit> {
        let Running { cancel, handle, .. } = self;
        drop(cancel);
        handle.await.ok()
    }
}

fn record(rpc: &'static str, stops: usize, found: &Result<Found, RouteError>) {
    let Ok(found) = found else {
        return;
    };
    let outcome = match found.stop {
        Stop::Cancelled => "cancelled",
        Stop::Iterations | Stop::Time | Stop::Stalled => "finished",
    };
    metrics::counter!(ROUTE_SEARCHES, "rpc" => rpc, "outcome" => outcome).increment(1);
    tracing::debug!(
        rpc,
        stops,
        outcome,
        stop = ?found.stop,
        iterations = found.iterations,
        elapsed_ms = found.elapsed.as_millis() as u64,
        "route search ended"
    );
}

/// Builds the trip's matrix and searches for the rest of the budget, in the calling thread.
/// With `every`, `on_improve` gets the first local optimum at once and then better routes at
/// most once per `every`.
pub fn search(
    request: &SearchRequest,
    stall_rounds_per_stop: u64,
    cancel: &AtomicBool,
    every: Option<Duration>,
    mut on_improve: impl FnMut(Improved),
) -> Result<Found, RouteError> {
    let started = Instant::now();
    let trip = &request.trip;
    let matrix = trip.matrix();
    let points = matrix_len(&matrix);
    let options = Options {
        budget: Budget {
            iterations: u64::MAX,
            time: Some(request.budget.saturating_sub(started.elapsed())),
            stall: (stall_rounds_per_stop > 0)
                .then(|| (stall_rounds_per_stop * points).max(MIN_STALL_ROUNDS)),
        },
        seed: request.seed,
        ..Options::default()
    };
    let mut last_sent: Option<Instant> = None;
    let route = route::solve(&matrix, trip.shape(), &options, cancel, |progress| {
        let Some(every) = every else {
            return;
        };
        if last_sent.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        last_sent = Some(Instant::now());
        on_improve(Improved {
            plan: trip.plan(&matrix, &progress.order()),
            iterations: progress.iterations,
        });
    })?;
    Ok(Found {
        plan: trip.plan(&matrix, &route.order),
        iterations: route.iterations,
        elapsed: started.elapsed(),
        stop: route.stop,
    })
}

fn matrix_len(matrix: &route::DenseMatrix) -> u64 {
    use route::DistanceMatrix;
    matrix.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LatLng;
    use crate::domain::route::problem::{Located, Speed, StopId};

    fn trip(n: usize) -> Trip {
        // Points on a 0.3° square around Conakry, spread deterministically.
        let stops = (0..n)
            .map(|k| Located {
                id: StopId::parse(&format!("s{k}")).unwrap(),
                location: LatLng::parse(
                    9.45 + ((k * 37) % 97) as f64 * 0.003,
                    -13.75 + ((k * 61) % 89) as f64 * 0.003,
                )
                .unwrap(),
                service: Duration::from_secs(60),
            })
            .collect();
        Trip {
            from: LatLng::parse(9.5, -13.7).unwrap(),
            stops,
            back_to: None,
            speed: Speed::from_kmh(18.0).unwrap(),
        }
    }

    fn request(n: usize, budget: Duration) -> SearchRequest {
        SearchRequest {
            trip: trip(n),
            budget,
            seed: 4,
            rpc: "test",
        }
    }

    #[test]
    fn a_stalled_search_is_deterministic() {
        let request = request(30, Duration::from_secs(60));
        let cancel = AtomicBool::new(false);
        let first = search(&request, 100, &cancel, None, |_| {}).unwrap();
        let second = search(&request, 100, &cancel, None, |_| {}).unwrap();
        assert_eq!(first.stop, Stop::Stalled);
        assert_eq!(first.plan, second.plan);
        assert_eq!(first.iterations, second.iterations);
        let mut order = first.plan.order.clone();
        order.sort_unstable();
        assert_eq!(order, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn improvements_are_throttled_and_the_first_comes_at_once() {
        let request = request(60, Duration::from_secs(60));
        let cancel = AtomicBool::new(false);
        let mut seen = Vec::new();
        let found = search(
            &request,
            100,
            &cancel,
            Some(Duration::from_secs(3600)),
            |i| seen.push(i),
        )
        .unwrap();
        assert_eq!(seen.len(), 1, "one per hour at most");
        assert_eq!(seen[0].iterations, 0);
        assert!(found.plan.distance_m <= seen[0].plan.distance_m);
    }

    #[test]
    fn the_cap_refuses_the_search_too_many() {
        let searches = Searches::new(1, 0);
        let permit = searches.try_acquire("test").unwrap();
        assert_eq!(searches.try_acquire("test").err(), Some(Busy(1)));
        drop(permit);
        assert!(searches.try_acquire("test").is_ok());
    }

    #[tokio::test]
    async fn dropping_a_running_search_cancels_it_and_frees_its_slot() {
        let searches = Searches::new(1, 0);
        let permit = searches.try_acquire("test").unwrap();
        let mut running = searches.start(
            permit,
            request(200, Duration::from_secs(600)),
            Duration::from_millis(10),
        );
        assert!(matches!(running.next().await, Some(Event::Improved(_))));
        let started = Instant::now();
        let permit = running.stop().await.expect("thread ended");
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(permit);
        assert!(searches.try_acquire("test").is_ok());
    }

    #[tokio::test]
    async fn a_dropped_unary_call_cancels_its_search() {
        let searches = Searches::new(1, 0);
        let permit = searches.try_acquire("test").unwrap();
        let call = searches.run(permit, request(200, Duration::from_secs(600)));
        // The caller gives up (as tonic drops a handler whose client left).
        assert!(
            tokio::time::timeout(Duration::from_millis(200), call)
                .await
                .is_err()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while searches.try_acquire("test").is_err() {
            assert!(Instant::now() < deadline, "the search kept its slot");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
