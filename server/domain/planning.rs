//! The daily plan of a site: which agent visits which candidate, and in which order.
//! docs/adr/0012-mission-planning.md says why it is done this way.
//!
//! Decisions:
//! - Cluster first, route second (Fisher & Jaikumar 1981; the capacitated clustering of
//!   Mulvey & Beck 1984): every agent of a site walks alone from their own start point, with a
//!   cap on visits rather than on time, so the hard part is the partition; each part is then a
//!   path from the start that the route optimiser (`domain::route`) orders.
//! - What is planned: the candidates of highest priority, as many as the agents can take
//!   (ties broken by the order the caller gives, which is by tenant id). Lower ones are left
//!   unassigned, whatever their place.
//! - Balance first: each agent's number of new visits is fixed before any geography, by
//!   water-filling over the visits they already keep for the day (started or finished
//!   missions), so that no two agents of a site differ by more than one visit unless one of
//!   them reached the cap ([`targets`]).
//! - Geography second: a capacitated k-means whose centres start at the agents' start points;
//!   each round assigns candidate–agent pairs greedily by distance up to each agent's target
//!   (a greedy transportation assignment), then moves each centre to the mean of its points
//!   and its start point. Ten rounds at most, fewer when the assignment stops changing. The
//!   start point in the mean keeps an agent's area near where they begin the day.
//! - Deterministic: same input, same plan (no randomness; the route search has an iteration
//!   budget and a fixed seed, no time limit).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::LatLng;
use super::route::{self, Budget, DistanceMatrix, Options, Shape, haversine};

/// An agent of the site, as the plan sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanAgent {
    /// Where the agent's route begins (last known position, else the site).
    pub start: LatLng,
    /// Missions the agent keeps for the day already (started or finished ones).
    pub kept: usize,
    /// Most missions of the day (kept ones included).
    pub capacity: usize,
}

/// A candidate, located.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanCandidate {
    pub location: LatLng,
    /// Higher first ([`super::priority::priority`]).
    pub priority: f64,
}

/// One agent's route: candidate indexes in visiting order, with each leg's length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentRoute {
    /// Indexes into the candidates, in visiting order.
    pub stops: Vec<usize>,
    /// Length of the leg to each stop from the previous one (or the start), metres.
    pub legs_m: Vec<i64>,
    /// Sum of `legs_m`.
    pub distance_m: i64,
}

/// The plan of a site.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SitePlan {
    /// One route per agent, in the agents' order.
    pub routes: Vec<AgentRoute>,
    /// Candidates left out for lack of capacity, by priority.
    pub unassigned: Vec<usize>,
}

/// Route search effort per agent: rounds of the iterated local search (a route of a dozen
/// stops is optimal or close after a few hundred).
pub const ROUTE_ITERATIONS: u64 = 300;

/// Rounds of the capacitated k-means at most.
pub const CLUSTER_ROUNDS: usize = 10;

/// How many new visits each agent gets when `total` are shared: one at a time to the agent
/// with the fewest missions so far (kept + given) among those below their capacity, the
/// earlier agent on a tie. The sum is `min(total, room)`; two agents below their capacity
/// never differ by more than one in kept + given, unless one's kept missions alone exceed
/// the other's total.
pub fn targets(agents: &[PlanAgent], total: usize) -> Vec<usize> {
    let mut given = vec![0usize; agents.len()];
    for _ in 0..total {
        let next = agents
            .iter()
            .enumerate()
            .filter(|(i, a)| a.kept + given[*i] < a.capacity)
            .min_by_key(|(i, a)| (a.kept + given[*i], *i))
            .map(|(i, _)| i);
        match next {
            Some(i) => given[i] += 1,
            None => break,
        }
    }
    given
}

/// Plans a site: `candidates` in the caller's order (ties of priority keep it).
pub fn plan_site(agents: &[PlanAgent], candidates: &[PlanCandidate]) -> SitePlan {
    let mut by_priority: Vec<usize> = (0..candidates.len()).collect();
    by_priority.sort_by(|&a, &b| {
        candidates[b]
            .priority
            .total_cmp(&candidates[a].priority)
            .then(a.cmp(&b))
    });
    let room: usize = agents
        .iter()
        .map(|a| a.capacity.saturating_sub(a.kept))
        .sum();
    let take = room.min(candidates.len());
    let chosen = &by_priority[..take];
    let unassigned = by_priority[take..].to_vec();
    let quotas = targets(agents, take);
    let groups = cluster(agents, candidates, chosen, &quotas);
    let routes = agents
        .iter()
        .zip(groups)
        .map(|(agent, group)| route_of(agent.start, candidates, group))
        .collect();
    SitePlan { routes, unassigned }
}

/// Capacitated k-means: the chosen candidates split into one group per agent of exactly
/// `quotas[a]` candidates.
fn cluster(
    agents: &[PlanAgent],
    candidates: &[PlanCandidate],
    chosen: &[usize],
    quotas: &[usize],
) -> Vec<Vec<usize>> {
    let mut centres: Vec<(f64, f64)> = agents.iter().map(|a| plane(a.start)).collect();
    let points: Vec<(f64, f64)> = chosen
        .iter()
        .map(|&c| plane(candidates[c].location))
        .collect();
    let mut owner = vec![usize::MAX; chosen.len()];
    for _ in 0..CLUSTER_ROUNDS {
        let next = assign(&points, &centres, quotas);
        if next == owner {
            break;
        }
        owner = next;
        for (a, centre) in centres.iter_mut().enumerate() {
            let start = plane(agents[a].start);
            let (mut x, mut y, mut n) = (start.0, start.1, 1.0);
            for (p, _) in owner.iter().enumerate().filter(|(_, o)| **o == a) {
                x += points[p].0;
                y += points[p].1;
                n += 1.0;
            }
            *centre = (x / n, y / n);
        }
    }
    let mut groups = vec![Vec::new(); agents.len()];
    for (p, &a) in owner.iter().enumerate() {
        if a != usize::MAX {
            groups[a].push(chosen[p]);
        }
    }
    groups
}

/// Greedy transportation: pairs by squared distance (then point, then centre), each point to
/// the nearest centre that still has room.
fn assign(points: &[(f64, f64)], centres: &[(f64, f64)], quotas: &[usize]) -> Vec<usize> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::with_capacity(points.len() * centres.len());
    for (p, point) in points.iter().enumerate() {
        for (c, centre) in centres.iter().enumerate() {
            if quotas[c] > 0 {
                let (dx, dy) = (point.0 - centre.0, point.1 - centre.1);
                pairs.push((dx * dx + dy * dy, p, c));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut owner = vec![usize::MAX; points.len()];
    let mut left = quotas.to_vec();
    for (_, p, c) in pairs {
        if owner[p] == usize::MAX && left[c] > 0 {
            owner[p] = c;
            left[c] -= 1;
        }
    }
    owner
}

/// Equirectangular plane coordinates in metres around Conakry's latitude: good to a fraction
/// of a per cent over a city, and enough to compare distances for clustering.
fn plane(at: LatLng) -> (f64, f64) {
    const METRES_PER_DEGREE: f64 = 111_195.0;
    let cos = 9.6_f64.to_radians().cos();
    (
        at.longitude() * METRES_PER_DEGREE * cos,
        at.latitude() * METRES_PER_DEGREE,
    )
}

/// The shortest open path the route optimiser finds from `start` through `group`.
pub fn route_of(start: LatLng, candidates: &[PlanCandidate], group: Vec<usize>) -> AgentRoute {
    if group.is_empty() {
        return AgentRoute::default();
    }
    let mut points = Vec::with_capacity(group.len() + 1);
    points.push(start);
    points.extend(group.iter().map(|&c| candidates[c].location));
    let matrix = haversine(&points);
    let options = Options {
        budget: Budget {
            iterations: ROUTE_ITERATIONS,
            time: None,
            stall: None,
        },
        ..Options::default()
    };
    let never = AtomicBool::new(false);
    let order = match route::solve(&matrix, Shape::Open, &options, &never, |_| {}) {
        Ok(found) => found.order,
        // Cannot happen: there is always a start point. Keep the given order.
        Err(_) => (0..points.len()).collect(),
    };
    let mut legs_m = Vec::with_capacity(group.len());
    for pair in order.windows(2) {
        legs_m.push(matrix.dist(pair[0], pair[1]));
    }
    AgentRoute {
        stops: order.iter().skip(1).map(|&p| group[p - 1]).collect(),
        distance_m: legs_m.iter().sum(),
        legs_m,
    }
}

/// The travel time of `metres` at `metres_per_second`.
pub fn travel_time(metres: i64, metres_per_second: f64) -> Duration {
    Duration::from_secs_f64(metres.max(0) as f64 / metres_per_second.max(0.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(lat: f64, lon: f64) -> LatLng {
        LatLng::parse(lat, lon).unwrap()
    }

    fn agent(lat: f64, lon: f64, kept: usize, capacity: usize) -> PlanAgent {
        PlanAgent {
            start: at(lat, lon),
            kept,
            capacity,
        }
    }

    #[test]
    fn targets_fill_the_emptiest_first() {
        let agents = [
            agent(9.6, -13.6, 0, 5),
            agent(9.6, -13.6, 3, 5),
            agent(9.6, -13.6, 0, 2),
        ];
        assert_eq!(targets(&agents, 0), [0, 0, 0]);
        assert_eq!(targets(&agents, 3), [2, 0, 1]);
        assert_eq!(targets(&agents, 6), [4, 0, 2]);
        assert_eq!(targets(&agents, 7), [4, 1, 2]);
        // Room is 5 + 2 + 2 = 9.
        assert_eq!(targets(&agents, 100), [5, 2, 2]);
    }

    #[test]
    fn two_towns_two_agents_each_takes_the_near_one() {
        // Agent 0 starts in the west town, agent 1 in the east one, 10 km apart.
        let agents = [agent(9.55, -13.70, 0, 4), agent(9.55, -13.61, 0, 4)];
        let mut candidates = Vec::new();
        for i in 0..4 {
            let d = f64::from(i) * 0.001;
            candidates.push(PlanCandidate {
                location: at(9.55 + d, -13.61 + d),
                priority: 1.0,
            });
            candidates.push(PlanCandidate {
                location: at(9.55 + d, -13.70 - d),
                priority: 1.0,
            });
        }
        let plan = plan_site(&agents, &candidates);
        let mut west = plan.routes[0].stops.clone();
        west.sort_unstable();
        assert_eq!(west, [1, 3, 5, 7]);
        let mut east = plan.routes[1].stops.clone();
        east.sort_unstable();
        assert_eq!(east, [0, 2, 4, 6]);
        // Each route walks out along its diagonal: nearest first.
        assert_eq!(plan.routes[1].stops, [0, 2, 4, 6]);
        assert!(plan.unassigned.is_empty());
        assert_eq!(plan.routes[0].legs_m.len(), 4);
        assert_eq!(
            plan.routes[0].distance_m,
            plan.routes[0].legs_m.iter().sum::<i64>()
        );
    }

    #[test]
    fn lowest_priorities_are_left_when_capacity_runs_out() {
        let agents = [agent(9.55, -13.70, 1, 2)];
        let candidates: Vec<_> = [3.0, 9.0, 1.0, 9.0]
            .into_iter()
            .map(|priority| PlanCandidate {
                location: at(9.55, -13.70),
                priority,
            })
            .collect();
        let plan = plan_site(&agents, &candidates);
        assert_eq!(plan.routes[0].stops, [1]);
        assert_eq!(plan.unassigned, [3, 0, 2]);
    }

    fn arb_site() -> impl Strategy<Value = (Vec<PlanAgent>, Vec<PlanCandidate>)> {
        let agent =
            (0.0..0.1f64, 0.0..0.1f64, 0usize..4, 1usize..8).prop_map(|(y, x, kept, cap)| {
                PlanAgent {
                    start: at(9.5 + y, -13.7 + x),
                    kept: kept.min(cap),
                    capacity: cap,
                }
            });
        let candidate =
            (0.0..0.1f64, 0.0..0.1f64, 0.0..100.0f64).prop_map(|(y, x, priority)| PlanCandidate {
                location: at(9.5 + y, -13.7 + x),
                priority,
            });
        (
            proptest::collection::vec(agent, 1..6),
            proptest::collection::vec(candidate, 0..40),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn plans_are_partitions_within_capacity_and_balanced((agents, candidates) in arb_site()) {
            let plan = plan_site(&agents, &candidates);
            let mut seen = vec![0u32; candidates.len()];
            for route in &plan.routes {
                for &c in &route.stops {
                    seen[c] += 1;
                }
            }
            for &c in &plan.unassigned {
                seen[c] += 1;
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "every candidate exactly once");
            let loads: Vec<usize> = agents
                .iter()
                .zip(&plan.routes)
                .map(|(a, r)| a.kept + r.stops.len())
                .collect();
            for (a, load) in agents.iter().zip(&loads) {
                prop_assert!(*load <= a.capacity.max(a.kept));
            }
            // Balanced: an agent below capacity has at least (max load of those who were given
            // something) - 1.
            let given_max = agents
                .iter()
                .zip(&plan.routes)
                .zip(&loads)
                .filter(|((_, r), _)| !r.stops.is_empty())
                .map(|(_, l)| *l)
                .max();
            if let Some(max) = given_max {
                for (a, load) in agents.iter().zip(&loads) {
                    prop_assert!(*load + 1 >= max || *load >= a.capacity);
                }
            }
            // Whatever is unassigned has no higher priority than anything assigned, and is
            // there only when every agent is full.
            if !plan.unassigned.is_empty() {
                prop_assert!(agents.iter().zip(&loads).all(|(a, l)| *l >= a.capacity));
                let lowest_assigned = plan.routes.iter().flat_map(|r| &r.stops)
                    .map(|&c| candidates[c].priority).fold(f64::INFINITY, f64::min);
                for &c in &plan.unassigned {
                    prop_assert!(candidates[c].priority <= lowest_assigned);
                }
            }
            prop_assert_eq!(plan_site(&agents, &candidates), plan, "deterministic");
        }
    }
}
