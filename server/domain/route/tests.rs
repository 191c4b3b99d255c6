use std::sync::atomic::AtomicBool;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::domain::LatLng;

/// Iterations only: tests never depend on the machine's speed.
fn options(iterations: u64, seed: u64) -> Options {
    Options {
        budget: Budget {
            iterations,
            time: None,
            stall: None,
        },
        seed,
        ..Options::default()
    }
}

fn run(matrix: &DenseMatrix, shape: Shape, iterations: u64, seed: u64) -> Route {
    solve(
        matrix,
        shape,
        &options(iterations, seed),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap()
}

/// Length of `order` under `shape`: with the return leg for a closed tour.
fn length(matrix: &DenseMatrix, shape: Shape, order: &[usize]) -> i64 {
    let legs: i64 = order.windows(2).map(|w| matrix.dist(w[0], w[1])).sum();
    match shape {
        Shape::Closed if order.len() > 1 => legs + matrix.dist(order[order.len() - 1], 0),
        _ => legs,
    }
}

/// The route is a permutation of the points from point 0, ends where the shape says, and its
/// reported cost is its length.
fn assert_valid(matrix: &DenseMatrix, shape: Shape, route: &Route) {
    let mut sorted = route.order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..matrix.len()).collect::<Vec<_>>(),
        "not a permutation: {:?}",
        route.order
    );
    assert_eq!(route.order[0], 0, "does not start at the start");
    if let Shape::OpenTo(end) = shape {
        assert_eq!(
            route.order.last(),
            Some(&end),
            "does not end at the fixed end"
        );
    }
    assert_eq!(
        route.cost,
        length(matrix, shape, &route.order),
        "reported cost is not the length"
    );
    assert!(
        route.cost <= route.construction_cost,
        "worse than the construction"
    );
}

/// Optimum by exhaustive search with pruning (all orders of points 1..n after point 0).
fn brute_force(matrix: &DenseMatrix, shape: Shape) -> i64 {
    fn extend(
        m: &DenseMatrix,
        shape: Shape,
        path: &mut Vec<usize>,
        used: &mut [bool],
        cost: i64,
        best: &mut i64,
    ) {
        if cost >= *best {
            return;
        }
        let n = m.len();
        let last = *path.last().unwrap();
        if path.len() == n {
            let total = match shape {
                Shape::Closed => cost + m.dist(last, 0),
                Shape::Open => cost,
                Shape::OpenTo(end) if last == end => cost,
                Shape::OpenTo(_) => return,
            };
            *best = (*best).min(total);
            return;
        }
        for next in 1..n {
            if used[next]
                || matches!(shape, Shape::OpenTo(end) if end == next && path.len() + 1 < n)
            {
                continue;
            }
            used[next] = true;
            path.push(next);
            extend(m, shape, path, used, cost + m.dist(last, next), best);
            path.pop();
            used[next] = false;
        }
    }
    let mut best = i64::MAX;
    let mut used = vec![false; matrix.len()];
    used[0] = true;
    extend(matrix, shape, &mut vec![0], &mut used, 0, &mut best);
    best
}

fn random_points(rng: &mut ChaCha8Rng, n: usize, side: f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|_| {
            (
                rng.random_range(0.0..side).floor(),
                rng.random_range(0.0..side).floor(),
            )
        })
        .collect()
}

/// A symmetric matrix of random distances, not a metric: the solver must not rely on the
/// triangle inequality.
fn random_matrix(rng: &mut ChaCha8Rng, n: usize) -> DenseMatrix {
    DenseMatrix::from_fn(n, |_, _| rng.random_range(1..1000))
}

fn shapes(n: usize) -> Vec<Shape> {
    let mut shapes = vec![Shape::Closed, Shape::Open];
    if n > 1 {
        shapes.push(Shape::OpenTo(n - 1));
        shapes.push(Shape::OpenTo(1));
    }
    shapes
}

#[test]
fn optimal_on_small_instances_of_every_shape() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for round in 0..12 {
        // Up to 9 stops after the start.
        let n = 4 + round % 7;
        let matrix = if round % 3 == 2 {
            random_matrix(&mut rng, n)
        } else {
            euc_2d(&random_points(&mut rng, n, 1000.0))
        };
        for shape in shapes(n) {
            let route = run(&matrix, shape, 300, round as u64);
            assert_valid(&matrix, shape, &route);
            assert_eq!(
                route.cost,
                brute_force(&matrix, shape),
                "round {round}, {shape:?}, {n} points"
            );
        }
    }
}

#[test]
fn tiny_instances_are_solved_without_search() {
    for n in 1..=3 {
        let matrix = euc_2d(&[(0.0, 0.0), (3.0, 4.0), (6.0, 0.0)][..n]);
        for shape in shapes(n) {
            let route = run(&matrix, shape, 10, 1);
            assert_valid(&matrix, shape, &route);
            assert_eq!(route.cost, brute_force(&matrix, shape));
        }
    }
    // The open path from the start goes to the nearer point first.
    let matrix = euc_2d(&[(0.0, 0.0), (10.0, 0.0), (1.0, 0.0)]);
    assert_eq!(run(&matrix, Shape::Open, 0, 1).order, vec![0, 2, 1]);
    assert_eq!(run(&matrix, Shape::OpenTo(2), 0, 1).order, vec![0, 1, 2]);
}

#[test]
fn invalid_problems_are_refused() {
    let cancel = AtomicBool::new(false);
    let empty = DenseMatrix::from_fn(0, |_, _| 0);
    let refused = solve(&empty, Shape::Closed, &options(1, 1), &cancel, |_| {});
    assert_eq!(refused, Err(RouteError::NoPoint));
    let two = DenseMatrix::from_fn(2, |_, _| 5);
    for end in [0, 2] {
        let refused = solve(&two, Shape::OpenTo(end), &options(1, 1), &cancel, |_| {});
        assert_eq!(refused, Err(RouteError::BadEnd));
    }
}

#[test]
fn same_seed_and_iterations_give_the_same_route() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let matrix = euc_2d(&random_points(&mut rng, 300, 10_000.0));
    for shape in [Shape::Closed, Shape::Open, Shape::OpenTo(17)] {
        let first = run(&matrix, shape, 2_000, 42);
        let second = run(&matrix, shape, 2_000, 42);
        assert_valid(&matrix, shape, &first);
        assert_eq!(
            (&first.order, first.cost, first.iterations),
            (&second.order, second.cost, second.iterations)
        );
        assert_eq!(first.stop, Stop::Iterations);
        assert_eq!(first.iterations, 2_000);
    }
}

#[test]
fn search_improves_on_the_construction() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let matrix = euc_2d(&random_points(&mut rng, 200, 10_000.0));
    let first_optimum = run(&matrix, Shape::Closed, 0, 1);
    let searched = run(&matrix, Shape::Closed, 5_000, 1);
    assert_valid(&matrix, Shape::Closed, &searched);
    // Greedy edge is some 15–20 % above optimal on random points; 2-opt + Or-opt leaves
    // about 5 %, and the iterated search most of that.
    assert!(first_optimum.cost < first_optimum.construction_cost * 95 / 100);
    assert!(searched.cost < first_optimum.cost);
}

#[test]
fn points_on_a_circle_are_visited_around_it() {
    // The optimal tour of points on a circle is the polygon, whatever order they come in.
    let n = 120;
    let mut angles: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in (1..n).rev() {
        angles.swap(i, rng.random_range(0..=i));
    }
    let point = |k: usize| {
        let t = k as f64 * std::f64::consts::TAU / n as f64;
        (100_000.0 * t.cos(), 100_000.0 * t.sin())
    };
    let matrix = euc_2d(&angles.iter().map(|&k| point(k)).collect::<Vec<_>>());
    let polygon: i64 = (0..n)
        .map(|k| {
            let (a, b) = (point(k), point((k + 1) % n));
            ((a.0 - b.0).hypot(a.1 - b.1) + 0.5) as i64
        })
        .sum();
    let route = run(&matrix, Shape::Closed, 2_000, 1);
    assert_valid(&matrix, Shape::Closed, &route);
    assert_eq!(route.cost, polygon);
}

#[test]
fn a_grid_is_solved_to_its_optimum() {
    // A 10 × 10 grid of unit spacing (×100): an even grid has a tour of 100 unit edges.
    let points: Vec<(f64, f64)> = (0..100)
        .map(|k| ((k % 10) as f64 * 100.0, (k / 10) as f64 * 100.0))
        .collect();
    let matrix = euc_2d(&points);
    let route = run(&matrix, Shape::Closed, 5_000, 2);
    assert_valid(&matrix, Shape::Closed, &route);
    assert_eq!(route.cost, 100 * 100);
    // The open path from a corner to the next corner along the same side: 99 edges.
    let route = run(&matrix, Shape::OpenTo(9), 5_000, 2);
    assert_valid(&matrix, Shape::OpenTo(9), &route);
    assert_eq!(route.cost, 99 * 100);
}

#[test]
fn improvements_are_reported_in_order_and_match_the_result() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let matrix = euc_2d(&random_points(&mut rng, 150, 10_000.0));
    let mut seen: Vec<(i64, u64, Vec<usize>)> = Vec::new();
    let route = solve(
        &matrix,
        Shape::Open,
        &options(3_000, 4),
        &AtomicBool::new(false),
        |p| {
            seen.push((p.cost, p.iterations, p.order()));
        },
    )
    .unwrap();
    assert!(!seen.is_empty());
    for pair in seen.windows(2) {
        assert!(pair[1].0 < pair[0].0 && pair[1].1 > pair[0].1);
    }
    for (cost, _, order) in &seen {
        assert_eq!(*cost, length(&matrix, Shape::Open, order));
    }
    let last = seen.last().unwrap();
    assert_eq!((last.0, &last.2), (route.cost, &route.order));
}

#[test]
fn a_raised_flag_stops_the_search() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let matrix = euc_2d(&random_points(&mut rng, 100, 10_000.0));
    let cancel = AtomicBool::new(true);
    let route = solve(
        &matrix,
        Shape::Closed,
        &options(u64::MAX, 1),
        &cancel,
        |_| {},
    )
    .unwrap();
    assert_eq!((route.stop, route.iterations), (Stop::Cancelled, 0));
    assert_valid(&matrix, Shape::Closed, &route);
    // Raised from the observer, during the search.
    let cancel = AtomicBool::new(false);
    let route = solve(
        &matrix,
        Shape::Closed,
        &options(u64::MAX, 1),
        &cancel,
        |_| cancel.store(true, std::sync::atomic::Ordering::Relaxed),
    )
    .unwrap();
    assert_eq!(route.stop, Stop::Cancelled);
    assert_valid(&matrix, Shape::Closed, &route);
}

#[test]
fn a_time_budget_stops_the_search() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let matrix = euc_2d(&random_points(&mut rng, 100, 10_000.0));
    let options = Options {
        budget: Budget {
            iterations: u64::MAX,
            time: Some(std::time::Duration::ZERO),
            stall: None,
        },
        ..Options::default()
    };
    let route = solve(
        &matrix,
        Shape::Closed,
        &options,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert_eq!((route.stop, route.iterations), (Stop::Time, 0));
}

#[test]
fn a_stall_limit_ends_the_search_after_rounds_without_progress() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let matrix = euc_2d(&random_points(&mut rng, 60, 10_000.0));
    let mut options = options(u64::MAX, 3);
    options.budget.stall = Some(500);
    let mut last_better = 0;
    let route = solve(
        &matrix,
        Shape::Closed,
        &options,
        &AtomicBool::new(false),
        |p| last_better = p.iterations,
    )
    .unwrap();
    assert_valid(&matrix, Shape::Closed, &route);
    assert_eq!(route.stop, Stop::Stalled);
    assert_eq!(route.iterations, last_better + 500);
    // As deterministic as an iteration budget.
    let again = solve(
        &matrix,
        Shape::Closed,
        &options,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (&again.order, again.iterations),
        (&route.order, route.iterations)
    );
}

#[test]
fn the_first_local_optimum_is_reported_at_iteration_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let matrix = euc_2d(&random_points(&mut rng, 40, 10_000.0));
    let mut first = None;
    let route = solve(
        &matrix,
        Shape::Open,
        &options(0, 1),
        &AtomicBool::new(false),
        |p| {
            first.get_or_insert((p.iterations, p.cost, p.order()));
        },
    )
    .unwrap();
    assert_eq!(first, Some((0, route.cost, route.order)));
}

#[test]
fn haversine_matches_geodesic_distances_between_cities() {
    // References: WGS 84 ellipsoidal (Vincenty) distances between the city centres.
    let conakry = LatLng::parse(9.5092, -13.7122).unwrap();
    let dakar = LatLng::parse(14.6928, -17.4467).unwrap();
    let paris = LatLng::parse(48.8566, 2.3522).unwrap();
    let london = LatLng::parse(51.5074, -0.1278).unwrap();
    let matrix = haversine(&[conakry, dakar, paris, london]);
    for (i, j, reference) in [(0, 1, 702_830.0), (2, 3, 343_923.0)] {
        let d = matrix.dist(i, j) as f64;
        assert!(
            (d / reference - 1.0).abs() < 0.005,
            "{i}–{j}: {d} m against {reference} m"
        );
        assert_eq!(matrix.dist(j, i), matrix.dist(i, j));
    }
    assert_eq!(matrix.dist(2, 2), 0);
}

#[test]
fn euc_2d_rounds_to_the_nearest_integer() {
    let matrix = euc_2d(&[(0.0, 0.0), (3.0, 4.0), (1.0, 1.0), (1.5, 0.0)]);
    assert_eq!(matrix.dist(0, 1), 5);
    assert_eq!(matrix.dist(0, 2), 1); // 1.414
    assert_eq!(matrix.dist(0, 3), 2); // 1.5 rounds up, as TSPLIB's (int)(x + 0.5)
}

#[test]
fn the_lower_bound_is_below_the_optimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for round in 0..10 {
        let n = 1 + round % 9;
        let matrix = if round % 3 == 2 {
            random_matrix(&mut rng, n)
        } else {
            euc_2d(&random_points(&mut rng, n, 1000.0))
        };
        for shape in shapes(n) {
            let optimum = brute_force(&matrix, shape);
            let bound = lower_bound(&matrix, shape, optimum, 100).unwrap();
            assert!(
                bound <= optimum,
                "round {round}, {shape:?}: bound {bound} > optimum {optimum}"
            );
            if n + usize::from(shape != Shape::Closed) <= 3 {
                assert_eq!(bound, optimum);
            }
        }
    }
    assert_eq!(
        lower_bound(&DenseMatrix::from_fn(3, |_, _| 1), Shape::OpenTo(3), 0, 1),
        Err(RouteError::BadEnd)
    );
}

#[test]
fn the_lower_bound_is_close_on_random_points() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let matrix = euc_2d(&random_points(&mut rng, 200, 10_000.0));
    for shape in [Shape::Closed, Shape::Open, Shape::OpenTo(5)] {
        let route = run(&matrix, shape, 20_000, 1);
        let bound = lower_bound(&matrix, shape, route.cost, 100).unwrap();
        // Held–Karp is within about 1 % of the optimum on random uniform points.
        assert!(
            bound <= route.cost && bound * 100 >= route.cost * 97,
            "{shape:?}: {bound} against {}",
            route.cost
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_instances_give_valid_routes(
        points in prop::collection::vec((0u16..200, 0u16..200), 1..60),
        shape_pick in 0usize..4,
        end_pick in any::<prop::sample::Index>(),
        seed in any::<u64>(),
        iterations in 0u64..300,
    ) {
        // Small coordinates give many equal distances and duplicate points.
        let points: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (f64::from(x), f64::from(y))).collect();
        let n = points.len();
        let matrix = euc_2d(&points);
        let shape = match shape_pick {
            0 => Shape::Closed,
            1 => Shape::Open,
            _ if n > 1 => Shape::OpenTo(1 + end_pick.index(n - 1)),
            _ => Shape::Open,
        };
        let route = run(&matrix, shape, iterations, seed);
        assert_valid(&matrix, shape, &route);
        prop_assert_eq!(route.iterations, if n + usize::from(shape != Shape::Closed) > 3 { iterations } else { 0 });
        if n <= 8 {
            prop_assert_eq!(route.cost, brute_force(&matrix, shape));
        }
    }
}
