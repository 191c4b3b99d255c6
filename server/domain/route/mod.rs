//! Route optimisation: the order in which an agent visits stops, on any symmetric distance
//! matrix (a travelling-salesman tour, or a Hamiltonian path from the start).
//!
//! Decisions (docs/adr/0007-route-solver.md says why):
//! - The solver reads distances only through [`DistanceMatrix`], so road distances can replace
//!   the great-circle ones ([`haversine`]) later. Distances are whole units (metres) as `i64`:
//!   gains are exact and the search takes the same steps on every machine.
//! - Node 0 is the start. Open paths become closed tours through one dummy node
//!   ([`Shape::Open`], [`Shape::OpenTo`]).
//! - Construction: greedy edge over the candidate lists. Improvement: 2-opt and Or-opt (segments
//!   of 1–3 nodes, both directions) on the 10 nearest neighbours of each node, with a queue of
//!   active nodes as don't-look bits. Then iterated local search until the budget: a local
//!   segment-swap double-bridge kick, local search from the kick's six ends only, and the
//!   result kept when no longer (better or equal), else undone from a journal of reversals.
//! - Budget: iterations, rounds without a shorter route (stall) and wall time, whichever ends
//!   first, and a cancellation flag read at every iteration. With the same matrix, shape, seed
//!   and iteration and stall budgets (and no time limit reached) the answer is the same
//!   everywhere: the only randomness is a seeded ChaCha8.
//! - A lower bound ([`lower_bound`], Held–Karp) is a separate call, so the caller decides whether
//!   its `O(rounds · n²)` time is worth a gap estimate.
//! - Around the solver, in plain types: the API's problem ([`problem`]: stops, speeds, budget
//!   bounds), the trip it becomes once stops are located ([`trip`]: points, shape, and the plan
//!   with legs and times of an order), and the live state of a route session ([`session`]).

mod bound;
mod construct;
mod graph;
pub mod matrix;
pub mod problem;
mod search;
pub mod session;
mod tour;
pub mod trip;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use bound::lower_bound;
pub use matrix::{DenseMatrix, DistanceMatrix, euc_2d, haversine};

use construct::{Candidates, greedy_edge};
use graph::Graph;
use search::Search;
use tour::Tour;

/// Where the route ends. The start is always point 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A closed tour: back to the start after the last stop.
    Closed,
    /// An open path from the start, ending at whichever stop makes it shortest.
    Open,
    /// An open path from the start ending at the given point (not 0).
    OpenTo(usize),
}

/// How long to search: the search stops at the first limit reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Perturbation rounds (kick + local search) after the first local optimum.
    pub iterations: u64,
    /// Wall time, from the call. `None`: iterations only (what tests use, for determinism).
    pub time: Option<Duration>,
    /// Perturbation rounds in a row without a shorter route after which the search ends (the
    /// route is then most likely as good as this search gets it). `None`: no such end.
    /// Deterministic, like `iterations`.
    pub stall: Option<u64>,
}

/// Search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// When to stop.
    pub budget: Budget,
    /// Seed of the perturbations' random numbers.
    pub seed: u64,
    /// Candidate neighbours per point (the `k` nearest).
    pub neighbours: usize,
    /// Longest of the two adjacent segments a kick swaps, in points (1 to this many each).
    /// Measured on TSPLIB: 100 beats 30 on pr1002 (0.4 % against 1 % in 2 s), and is as good
    /// up to 200 points, where it spans the whole tour.
    pub kick_segment: usize,
}

impl Default for Options {
    /// One second or 10 million iterations (no stall limit), seed 1, 10 neighbours, kick
    /// segments up to 100.
    fn default() -> Self {
        Self {
            budget: Budget {
                iterations: 10_000_000,
                time: Some(Duration::from_secs(1)),
                stall: None,
            },
            seed: 1,
            neighbours: 10,
            kick_segment: 100,
        }
    }
}

/// Why the search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The iteration budget was spent (or the instance is too small to need a search).
    Iterations,
    /// The time budget was spent.
    Time,
    /// [`Budget::stall`] rounds in a row found no shorter route.
    Stalled,
    /// The caller's cancellation flag was raised.
    Cancelled,
}

/// A solved route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Points in visiting order, starting with 0. A closed tour returns to 0 after the last
    /// one; a [`Shape::OpenTo`] path ends with its end point.
    pub order: Vec<usize>,
    /// Length of the route (the return leg included for a closed tour), in matrix units
    /// (metres).
    pub cost: i64,
    /// Length of the greedy construction the search started from, same unit.
    pub construction_cost: i64,
    /// Perturbation rounds run.
    pub iterations: u64,
    /// Wall time spent, construction included.
    pub elapsed: Duration,
    /// Why the search stopped.
    pub stop: Stop,
}

/// Invalid problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("there must be at least one point (the start)")]
    NoPoint,
    #[error("the end must be one of the points other than the start")]
    BadEnd,
}

/// The first local optimum, or a better route found later, handed to the caller's observer.
pub struct Progress<'a> {
    /// Length of the route, in matrix units (metres).
    pub cost: i64,
    /// Perturbation rounds run so far.
    pub iterations: u64,
    /// Wall time since the call.
    pub elapsed: Duration,
    tour: &'a Tour,
    dummy: Option<usize>,
}

impl Progress<'_> {
    /// Points in visiting order, as in [`Route::order`] (`O(n)`: call it only when needed).
    pub fn order(&self) -> Vec<usize> {
        route_order(self.tour, self.dummy)
    }
}

/// Refuses an empty matrix and an end that is not one of the other points.
fn check(n: usize, shape: Shape) -> Result<(), RouteError> {
    if n == 0 {
        return Err(RouteError::NoPoint);
    }
    if let Shape::OpenTo(end) = shape
        && (end == 0 || end >= n)
    {
        return Err(RouteError::BadEnd);
    }
    Ok(())
}

/// The caller's points in visiting order from point 0, in the direction away from the dummy
/// node (if any), which is left out.
fn route_order(tour: &Tour, dummy: Option<usize>) -> Vec<usize> {
    let forward = dummy.is_none_or(|dummy| tour.prev(0) == dummy);
    let mut order = Vec::with_capacity(tour.len());
    let mut at = 0;
    loop {
        if Some(at) != dummy {
            order.push(at);
        }
        at = tour.step(at, forward);
        if at == 0 {
            return order;
        }
    }
}

/// Finds a short route through all the points of `matrix` from point 0, in the given `shape`.
///
/// `on_improve` is called with the first local optimum (at iteration 0, when there are more
/// than three points to order), then with each better route found (often, early on: callers
/// throttle). The search polls `cancel` at every iteration and stops soon
/// after it is raised, returning the best route so far; the time budget is checked every 16
/// iterations. The candidate lists, the construction and the first local search run to their
/// end before either is looked at (some tens of milliseconds at 2,000 points).
///
/// Algorithms: greedy-edge construction (Bentley 1992), 2-opt (Croes 1958) and Or-opt (Or
/// 1976) local search on nearest-neighbour candidate lists with don't-look bits (Bentley 1992;
/// Johnson & McGeoch 1997), iterated local search with double-bridge kicks (Martin, Otto &
/// Felten 1991; Lourenço, Martin & Stützle, "Iterated local search", 2003), accepting equal or
/// better tours.
pub fn solve<M: DistanceMatrix + ?Sized>(
    matrix: &M,
    shape: Shape,
    options: &Options,
    cancel: &AtomicBool,
    mut on_improve: impl FnMut(&Progress<'_>),
) -> Result<Route, RouteError> {
    let started = Instant::now();
    let n = matrix.len();
    check(n, shape)?;
    if n == 1 {
        // The start alone (no dummy node: a free end would be the start itself).
        return Ok(Route {
            order: vec![0],
            cost: 0,
            construction_cost: 0,
            iterations: 0,
            elapsed: started.elapsed(),
            stop: Stop::Iterations,
        });
    }
    let mut graph = Graph::new(matrix, shape);
    let (candidates, longest) = Candidates::nearest(&graph, options.neighbours.max(1));
    graph.set_longest(longest);
    let size = graph.size();
    let order = greedy_edge(&graph, &candidates);
    let offset = graph.offset();
    let construction_cost = graph.tour_cost(order.iter().copied()) - offset;

    let mut search = Search::new(&graph, &candidates, &order);
    let mut cost = construction_cost + offset;
    let mut iterations = 0;
    let mut stop = Stop::Iterations;
    if size > 3 {
        for a in order.iter().copied() {
            search.activate(a);
        }
        cost -= search.local_search();
        search.tour.commit();
        on_improve(&Progress {
            cost: cost - offset,
            iterations,
            elapsed: started.elapsed(),
            tour: &search.tour,
            dummy: graph.dummy(),
        });
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let deadline = options.budget.time.map(|t| started + t);
        let mut last_better = 0;
        while iterations < options.budget.iterations {
            if cancel.load(Ordering::Relaxed) {
                stop = Stop::Cancelled;
                break;
            }
            if options
                .budget
                .stall
                .is_some_and(|stall| iterations - last_better >= stall)
            {
                stop = Stop::Stalled;
                break;
            }
            if iterations % 16 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                stop = Stop::Time;
                break;
            }
            iterations += 1;
            let delta = search.kick(&mut rng, options.kick_segment);
            let candidate = cost + delta - search.local_search();
            if candidate <= cost {
                search.tour.commit();
                if candidate < cost {
                    cost = candidate;
                    last_better = iterations;
                    on_improve(&Progress {
                        cost: cost - offset,
                        iterations,
                        elapsed: started.elapsed(),
                        tour: &search.tour,
                        dummy: graph.dummy(),
                    });
                }
            } else {
                search.tour.undo();
            }
        }
    }
    Ok(Route {
        order: route_order(&search.tour, graph.dummy()),
        cost: cost - offset,
        construction_cost,
        iterations,
        elapsed: started.elapsed(),
        stop,
    })
}
