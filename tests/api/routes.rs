//! OptimizeRoute and RouteSession through a real gRPC client: tenant and point stops, scope,
//! bad input, live updates and rejections, cancellation and the cap on concurrent searches.

use std::time::Duration;

use akig::proto::v1::{
    ErrorReason, LatLng, OptimizeRouteRequest, OptimizeRouteResponse, RoutePositionUpdate,
    RouteProblem, RouteSessionRequest, RouteSessionResponse, RouteSessionSolution, RouteStop,
    RouteStopRemoved, RouteStopVisited, RouteUpdateRejected, TravelMode, UnroutedReason,
    route_session_request::Payload, route_session_response, route_stop::Target,
};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::{
    RedisMode, TestApp, TestDb, authed, bad_fields, create_site, create_tenant, create_user,
    error_reason, spawn_app_with, test_config,
};

/// Where the test routes start (Kaloum).
const START: (f64, f64) = (9.50, -13.70);

fn at(latitude: f64, longitude: f64) -> Option<LatLng> {
    Some(LatLng {
        latitude,
        longitude,
    })
}

fn point(id: &str, latitude: f64, longitude: f64) -> RouteStop {
    RouteStop {
        stop_id: id.to_owned(),
        target: Some(Target::Location(LatLng {
            latitude,
            longitude,
        })),
        service_duration: None,
    }
}

fn tenant(id: Uuid) -> RouteStop {
    RouteStop {
        stop_id: String::new(),
        target: Some(Target::TenantId(id.to_string())),
        service_duration: Some(prost_types::Duration {
            seconds: 600,
            nanos: 0,
        }),
    }
}

fn problem(stops: Vec<RouteStop>, return_to_start: bool) -> RouteProblem {
    RouteProblem {
        start: at(START.0, START.1),
        stops,
        return_to_start,
        travel_mode: TravelMode::Walking as i32,
        time_budget: None,
        seed: 7,
    }
}

fn budget(millis: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: (millis / 1000) as i64,
        nanos: ((millis % 1000) * 1_000_000) as i32,
    })
}

/// `n` points spread over Conakry (about 15 × 15 km), the same for a given `seed`.
fn random_points(n: usize, seed: u64) -> Vec<RouteStop> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|k| {
            point(
                &format!("p{k}"),
                9.45 + rng.random_range(0.0..0.14),
                -13.75 + rng.random_range(0.0..0.14),
            )
        })
        .collect()
}

/// Two sites; an agent of the first; tenants of the first with and without a home, and one of
/// the second.
struct World {
    app: TestApp,
    agent_token: String,
    /// Homes east of the start, 0.01° (about 1.1 km) apart, in that order.
    east: Vec<Uuid>,
    homeless: Uuid,
    other_site: Uuid,
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// The world, with the server's route settings changed by `adjust`.
    async fn with(adjust: impl FnOnce(&mut akig::geo::RouteConfig)) -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        create_user(pool, "agent.kal", "agent", &[kal], None).await;
        let mut east = Vec::new();
        for k in 1..=3 {
            let home = (START.0, START.1 + 0.01 * f64::from(k));
            east.push(create_tenant(pool, kal, &format!("Est {k}"), 500_000, Some(home)).await);
        }
        let homeless = create_tenant(pool, kal, "Sans Adresse", 500_000, None).await;
        let other_site = create_tenant(pool, mat, "Matoto", 500_000, Some(START)).await;
        let mut config = test_config(db.connect_options(), RedisMode::Real);
        adjust(&mut config.route);
        let app = spawn_app_with(config, db.pool.clone()).await;
        let agent_token = app.token("agent.kal").await;
        Self {
            app,
            agent_token,
            east,
            homeless,
            other_site,
            _db: db,
        }
    }

    async fn optimize(
        &self,
        problem: RouteProblem,
    ) -> Result<OptimizeRouteResponse, tonic::Status> {
        self.app
            .geo_client()
            .await
            .optimize_route(authed(
                OptimizeRouteRequest {
                    problem: Some(problem),
                },
                &self.agent_token,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Opens a session with `problem` as update 1.
    async fn session(&self, problem: RouteProblem) -> Result<Session, tonic::Status> {
        let (updates, outbound) = mpsc::channel(16);
        updates
            .send(RouteSessionRequest {
                update_id: 1,
                payload: Some(Payload::Problem(problem)),
            })
            .await
            .expect("queue the problem");
        let responses = self
            .app
            .geo_client()
            .await
            .route_session(authed(ReceiverStream::new(outbound), &self.agent_token))
            .await?
            .into_inner();
        Ok(Session { updates, responses })
    }
}

struct Session {
    updates: mpsc::Sender<RouteSessionRequest>,
    responses: Streaming<RouteSessionResponse>,
}

impl Session {
    async fn send(&self, update_id: u64, payload: Payload) {
        self.updates
            .send(RouteSessionRequest {
                update_id,
                payload: Some(payload),
            })
            .await
            .expect("session open");
    }

    /// The next server message; fails after 60 s (debug builds are slow).
    async fn next(&mut self) -> Option<RouteSessionResponse> {
        tokio::time::timeout(Duration::from_secs(60), self.responses.message())
            .await
            .expect("a message within 60 s")
            .expect("stream not failed")
    }

    async fn solution(&mut self) -> RouteSessionSolution {
        match self.next().await.and_then(|r| r.payload) {
            Some(route_session_response::Payload::Solution(solution)) => solution,
            other => panic!("expected a solution, got {other:?}"),
        }
    }

    /// Solutions up to the search's last one, which is returned.
    async fn finished(&mut self) -> RouteSessionSolution {
        loop {
            let solution = self.solution().await;
            if solution.search_finished {
                return solution;
            }
        }
    }

    async fn rejected(&mut self) -> RouteUpdateRejected {
        match self.next().await.and_then(|r| r.payload) {
            Some(route_session_response::Payload::Rejected(rejected)) => rejected,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}

fn ids(solution: &RouteSessionSolution) -> Vec<String> {
    solution
        .solution
        .as_ref()
        .expect("route")
        .ordered_stop_ids
        .clone()
}

#[tokio::test]
async fn optimize_route_orders_tenant_and_point_stops() {
    let world = World::new().await;
    let [e1, e2, e3] = world.east[..] else {
        panic!("three tenants")
    };
    // Out of order on purpose; the shortest open path goes east, nearest first.
    let stops = vec![
        tenant(e3),
        point("pharmacie", START.0, START.1 + 0.025),
        tenant(e1),
        tenant(e2),
    ];
    let answer = world.optimize(problem(stops, false)).await.expect("route");
    let route = answer.solution.expect("solution");
    let (s1, s2, s3) = (e1.to_string(), e2.to_string(), e3.to_string());
    assert_eq!(
        route.ordered_stop_ids,
        [s1.as_str(), s2.as_str(), "pharmacie", s3.as_str()]
    );
    assert!(route.unrouted_stops.is_empty());
    assert_eq!(route.legs.len(), 4);
    let ends: Vec<(&str, &str)> = route
        .legs
        .iter()
        .map(|l| (l.from_stop_id.as_str(), l.to_stop_id.as_str()))
        .collect();
    assert_eq!(
        ends,
        [
            ("", s1.as_str()),
            (s1.as_str(), s2.as_str()),
            (s2.as_str(), "pharmacie"),
            ("pharmacie", s3.as_str())
        ]
    );
    // 0.03° of longitude at 9.5° N: about 3,290 m in all.
    let total: f64 = route.legs.iter().map(|l| l.distance_m).sum();
    assert_eq!(route.total_distance_m, total);
    assert!((3_250.0..3_330.0).contains(&total), "{total}");
    // On foot, 4.5 km/h: 1.25 m/s. Three tenants at 10 min each before the last arrival but
    // the last one's own service; the total counts all four stops' service (the point has none).
    let travel = route.total_travel_duration.expect("travel");
    let travel_s = travel.seconds as f64 + f64::from(travel.nanos) / 1e9;
    assert!((travel_s - total / 1.25).abs() < 1.0, "{travel_s}");
    let whole = route.total_duration.expect("total");
    assert_eq!(whole.seconds - travel.seconds, 3 * 600);
    let last = route.legs[3].arrival_offset.expect("arrival");
    assert_eq!(last.seconds - travel.seconds, 2 * 600);
    assert_eq!(route.legs[3].to_location, at(START.0, START.1 + 0.03));
    assert!(answer.solve_duration.is_some());
    assert!(answer.iteration_count >= 0);

    // A closed tour comes back to the start.
    let answer = world
        .optimize(problem(vec![tenant(e2), tenant(e1)], true))
        .await
        .expect("tour");
    let route = answer.solution.expect("solution");
    assert_eq!(route.legs.len(), 3);
    let back = &route.legs[2];
    assert_eq!(back.to_stop_id, "");
    assert_eq!(back.to_location, at(START.0, START.1));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_route() {
    let world = World::new().await;
    let mut request = problem(random_points(40, 3), true);
    // Room for the search to end on its own (no progress) rather than on the clock.
    request.time_budget = budget(10_000);
    let first = world.optimize(request.clone()).await.expect("first");
    let second = world.optimize(request.clone()).await.expect("second");
    let (a, b) = (first.solution.expect("a"), second.solution.expect("b"));
    assert_eq!(a.ordered_stop_ids.len(), 40);
    assert_eq!(a.ordered_stop_ids, b.ordered_stop_ids);
    assert_eq!(a.total_distance_m, b.total_distance_m);
    assert_eq!(first.iteration_count, second.iteration_count);
    assert!(
        first.solve_duration.expect("duration").seconds < 10,
        "the search should end on its own before the budget"
    );
}

#[tokio::test]
async fn tenants_out_of_scope_or_without_home_are_left_out() {
    let world = World::new().await;
    let unknown = Uuid::new_v4();
    let stops = vec![
        tenant(world.other_site),
        tenant(world.east[0]),
        tenant(world.homeless),
        tenant(unknown),
    ];
    let route = world
        .optimize(problem(stops, true))
        .await
        .expect("route")
        .solution
        .expect("solution");
    assert_eq!(route.ordered_stop_ids, [world.east[0].to_string()]);
    let unrouted: Vec<(String, i32)> = route
        .unrouted_stops
        .iter()
        .map(|u| (u.stop_id.clone(), u.reason))
        .collect();
    assert_eq!(
        unrouted,
        [
            (
                world.other_site.to_string(),
                UnroutedReason::TenantNotFound as i32
            ),
            (
                world.homeless.to_string(),
                UnroutedReason::NoLocation as i32
            ),
            (unknown.to_string(), UnroutedReason::TenantNotFound as i32),
        ]
    );
}

#[tokio::test]
async fn bad_problems_name_the_field() {
    let world = World::new().await;
    let status = world
        .optimize(problem(random_points(2_001, 1), true))
        .await
        .expect_err("too many");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["problem.stops"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOO_MANY_STOPS");

    let stops = vec![point("a", 9.5, -13.6), point("a", 9.6, -13.6)];
    let status = world
        .optimize(problem(stops, true))
        .await
        .expect_err("duplicate");
    assert_eq!(bad_fields(&status), ["problem.stops[1].stop_id"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_ROUTE_STOP_DUPLICATE");

    let stops = vec![point("a", f64::NAN, -13.6), point("b", 9.6, -190.0)];
    let status = world
        .optimize(problem(stops, true))
        .await
        .expect_err("coordinates");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&status),
        [
            "problem.stops[0].location.latitude",
            "problem.stops[1].location.longitude"
        ]
    );

    let mut request = problem(vec![point("a", 9.5, -13.6)], true);
    request.time_budget = budget(10_001);
    let status = world.optimize(request).await.expect_err("budget");
    assert_eq!(bad_fields(&status), ["problem.time_budget"]);

    let status = world
        .app
        .geo_client()
        .await
        .optimize_route(authed(
            OptimizeRouteRequest { problem: None },
            &world.agent_token,
        ))
        .await
        .expect_err("no problem");
    assert_eq!(bad_fields(&status), ["problem"]);
}

#[tokio::test]
async fn a_session_streams_solutions_and_replans_after_a_visit() {
    let world = World::new().await;
    let [e1, e2, e3] = world.east[..] else {
        panic!("three tenants")
    };
    let mut session = world
        .session(problem(
            vec![tenant(e2), tenant(e3), tenant(e1), tenant(world.homeless)],
            false,
        ))
        .await
        .expect("session opens");
    let first = session.finished().await;
    assert_eq!(first.applied_update_id, 1);
    assert_eq!(ids(&first), [e1, e2, e3].map(|t| t.to_string()));
    let route = first.solution.as_ref().expect("route");
    assert_eq!(route.unrouted_stops.len(), 1);
    assert_eq!(route.legs[0].from_stop_id, "");

    // Visited e2 first after all: the rest is re-planned from there.
    session
        .send(
            2,
            Payload::StopVisited(RouteStopVisited {
                stop_id: e2.to_string(),
                occurred_at: None,
            }),
        )
        .await;
    let replanned = session.finished().await;
    assert_eq!(replanned.applied_update_id, 2);
    let mut rest = ids(&replanned);
    rest.sort();
    let mut expected = vec![e1.to_string(), e3.to_string()];
    expected.sort();
    assert_eq!(rest, expected);
    // From e2 (0.02° east), e3 and e1 are each about 1.1 km away: 1.1 + 2.2 km either way.
    let total = replanned.solution.as_ref().expect("route").total_distance_m;
    assert!((3_200.0..3_400.0).contains(&total), "{total}");

    // A position update re-plans from there: from e3's door, e3 comes first.
    session
        .send(
            3,
            Payload::Position(RoutePositionUpdate {
                location: at(START.0, START.1 + 0.031),
                accuracy_m: 10.0,
                fix_time: None,
            }),
        )
        .await;
    let moved = session.finished().await;
    assert_eq!(moved.applied_update_id, 3);
    assert_eq!(ids(&moved), [e3.to_string(), e1.to_string()]);
}

#[tokio::test]
async fn rejected_updates_keep_the_session_open() {
    let world = World::new().await;
    let mut session = world
        .session(problem(
            vec![point("a", 9.51, -13.70), point("b", 9.52, -13.70)],
            true,
        ))
        .await
        .expect("session opens");
    session.finished().await;

    let unknown = RouteStopRemoved {
        stop_id: "nowhere".into(),
    };
    session.send(2, Payload::StopRemoved(unknown)).await;
    let rejected = session.rejected().await;
    assert_eq!(rejected.update_id, 2);
    assert_eq!(rejected.reason, ErrorReason::RouteStopUnknown as i32);

    // Not above 2.
    session
        .send(2, Payload::StopAdded(point("c", 9.53, -13.70)))
        .await;
    let rejected = session.rejected().await;
    assert_eq!(rejected.reason, ErrorReason::Unspecified as i32);
    assert!(
        rejected.message.contains("update_id"),
        "{}",
        rejected.message
    );

    session
        .send(3, Payload::StopAdded(point("a", 9.53, -13.70)))
        .await;
    assert_eq!(
        session.rejected().await.reason,
        ErrorReason::RouteStopDuplicate as i32
    );

    session
        .send(4, Payload::StopAdded(point("c", 95.3, -13.70)))
        .await;
    let rejected = session.rejected().await;
    assert_eq!(rejected.update_id, 4);
    assert!(
        rejected.message.contains("stop_added.location.latitude"),
        "{}",
        rejected.message
    );

    session
        .send(
            5,
            Payload::Position(RoutePositionUpdate {
                location: at(f64::NAN, -13.7),
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(session.rejected().await.update_id, 5);

    // The session goes on.
    session
        .send(6, Payload::StopAdded(point("c", 9.53, -13.70)))
        .await;
    let solution = session.finished().await;
    assert_eq!(solution.applied_update_id, 6);
    assert_eq!(ids(&solution).len(), 3);
}

#[tokio::test]
async fn the_first_message_must_be_the_problem() {
    let world = World::new().await;
    let (updates, outbound) = mpsc::channel(4);
    updates
        .send(RouteSessionRequest {
            update_id: 1,
            payload: Some(Payload::StopRemoved(RouteStopRemoved {
                stop_id: "a".into(),
            })),
        })
        .await
        .expect("queue");
    let status = world
        .app
        .geo_client()
        .await
        .route_session(authed(ReceiverStream::new(outbound), &world.agent_token))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["problem"]);

    let status = world
        .session(problem(vec![point("a", 9.5, 200.0)], true))
        .await
        .err()
        .expect("invalid problem");
    assert_eq!(bad_fields(&status), ["problem.stops[0].location.longitude"]);
}

#[tokio::test]
async fn an_idle_session_is_closed() {
    let world = World::with(|route| route.session_idle = Duration::from_secs(1)).await;
    let mut session = world
        .session(problem(vec![point("a", 9.51, -13.70)], true))
        .await
        .expect("session opens");
    session.finished().await;
    let started = tokio::time::Instant::now();
    assert!(session.next().await.is_none(), "closed with status OK");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// One search at a time, searches never stopping early: a long search holds the only slot.
async fn one_slot_world() -> World {
    World::with(|route| {
        route.max_searches = 1;
        route.stall_rounds_per_stop = 0;
    })
    .await
}

/// A small problem with a short budget, to probe whether the slot is free.
fn probe() -> RouteProblem {
    let mut probe = problem(vec![point("a", 9.51, -13.70)], true);
    probe.time_budget = budget(50);
    probe
}

/// Probes until a search gets the slot; fails after `bound`.
async fn wait_for_free_slot(world: &World, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match world.optimize(probe()).await {
            Ok(_) => return,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot was not given back within {bound:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("probe failed: {status:?}"),
        }
    }
}

async fn cancelled_session_searches(world: &World) -> u64 {
    let body =
        crate::grpc_web::http1_get(world.app.metrics_addr.expect("metrics"), "/metrics").await;
    body.lines()
        .find(|line| {
            line.starts_with("akig_route_searches_total")
                && line.contains("rpc=\"route_session\"")
                && line.contains("outcome=\"cancelled\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn over_the_cap_searches_are_refused_and_a_client_that_leaves_frees_its_slot() {
    let world = one_slot_world().await;
    let mut request = problem(random_points(150, 5), true);
    request.time_budget = budget(60_000);
    let mut session = world.session(request).await.expect("session opens");
    // The first local optimum comes at once, long before the search ends.
    let first = session.solution().await;
    assert!(!first.search_finished);

    let status = world.optimize(probe()).await.expect_err("no slot left");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.get_details_retry_info().is_some(), "{status:?}");
    let status = world
        .session(probe())
        .await
        .err()
        .expect("no slot for a session either");
    assert_eq!(status.code(), Code::ResourceExhausted);

    // The client goes away: its search stops at once, not after its 60 s.
    let before = cancelled_session_searches(&world).await;
    drop(session);
    wait_for_free_slot(&world, Duration::from_secs(15)).await;
    assert!(cancelled_session_searches(&world).await > before);
}

#[tokio::test]
async fn a_unary_client_that_leaves_frees_its_slot() {
    let world = one_slot_world().await;
    let mut request = problem(random_points(300, 6), true);
    request.time_budget = budget(10_000);
    let mut geo = world.app.geo_client().await;
    let token = world.agent_token.clone();
    let call = tokio::spawn(async move {
        geo.optimize_route(authed(
            OptimizeRouteRequest {
                problem: Some(request),
            },
            &token,
        ))
        .await
    });
    // The long search holds the slot...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !call.is_finished(),
        "the long search was refused or ended early"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match world.optimize(probe()).await {
            Err(status) if status.code() == Code::ResourceExhausted => break,
            // The probe ran before the long call took the slot.
            Ok(_) => {}
            Err(status) => panic!("probe failed: {status:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the long search never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...until its caller gives up.
    let left = tokio::time::Instant::now();
    call.abort();
    wait_for_free_slot(&world, Duration::from_secs(5)).await;
    assert!(left.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn closing_the_client_side_ends_the_session() {
    let world = World::new().await;
    let Session {
        updates,
        mut responses,
    } = world
        .session(problem(vec![point("a", 9.51, -13.70)], true))
        .await
        .expect("session opens");
    drop(updates);
    // Whatever was on its way, then the end (status OK).
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), responses.message())
        .await
        .expect("ends within 30 s")
        .expect("status OK")
    {
        assert!(matches!(
            message.payload,
            Some(route_session_response::Payload::Solution(_))
        ));
    }
}
