//! Load generator for the collections write path: many concurrent agents recording visits or
//! payments through the real gRPC API, with throughput and latency percentiles. Driven by
//! `ops/bench.sh`, which also runs pgbench on the same PostgreSQL for the comparison.
//!
//! `--rpc backdated-payment` measures RecordPayment of payments back-dated 1 to 25 days, each
//! of which replays the tenant's whole ledger (ADR 0010; 18 months of history on the demo
//! data).
//!
//! `--rpc optimize-route --stops N` measures OptimizeRoute end to end the same way (driven by
//! `ops/bench/routes.sh`): each call orders N random tenants of the agent's sites (points near
//! them when the sites have fewer with a home), a closed tour from one of them, on foot, with
//! the default time budget and a fresh seed.
//!
//! `--rpc arrears-markers-city` and `--rpc arrears-markers-street` measure ListArrearsMarkers
//! (driven by `ops/bench/markers.sh`) as the demo director (`directeur`, every site): the
//! whole of Conakry at zoom 12 ([`CITY`], `max_markers` 100: always clusters), or a
//! box of about 440 m around a random tenant's home at zoom 17 (markers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akig::proto::v1 as pb;
use akig::proto::v1::auth_service_client::AuthServiceClient;
use akig::proto::v1::collections_service_client::CollectionsServiceClient;
use akig::proto::v1::geo_service_client::GeoServiceClient;
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Rpc {
    Visit,
    Payment,
    /// A payment back-dated 1 to 25 days: it lands before the tenant's recent payments, so
    /// the replay of the tenant's whole ledger (18 months on the demo data) shifts them.
    BackdatedPayment,
    OptimizeRoute,
    ArrearsMarkersCity,
    ArrearsMarkersStreet,
}

/// Conakry and its suburbs, (south, west, north, east) in degrees.
const CITY: (f64, f64, f64, f64) = (9.40, -13.85, 9.85, -13.40);

#[derive(Debug, Parser)]
#[command(
    about = "Measure RecordVisit / RecordPayment / OptimizeRoute / ListArrearsMarkers throughput and latency"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Database of the server, to pick the agents' tenants.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Concurrent callers (spread over the demo agents).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured time, in seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Stops per OptimizeRoute call.
    #[arg(long, default_value_t = 12)]
    stops: usize,
    /// Password of the demo agents.
    #[arg(long, default_value = "akig-demo-2026")]
    password: String,
}

/// A tenant to act on, with its home (latitude, longitude) when known.
type Target = (Uuid, Option<(f64, f64)>);

struct Agent {
    token: String,
    tenants: Vec<Target>,
    channel: Channel,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    let map = matches!(
        args.rpc,
        Rpc::ArrearsMarkersCity | Rpc::ArrearsMarkersStreet
    );
    let rows: Vec<(String, Uuid, Option<f64>, Option<f64>)> = sqlx::query_as(if map {
        "SELECT 'directeur', t.id, t.home_latitude, t.home_longitude
         FROM tenants t WHERE t.active AND t.home_latitude IS NOT NULL ORDER BY t.id"
    } else {
        "SELECT u.username, t.id, t.home_latitude, t.home_longitude
         FROM users u JOIN user_sites us ON us.user_id = u.id
         JOIN tenants t ON t.site_id = us.site_id AND t.active
         WHERE u.role_id = 'agent' AND NOT u.disabled ORDER BY u.username, t.id"
    })
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    let mut by_agent: BTreeMap<String, Vec<Target>> = BTreeMap::new();
    for (username, tenant, lat, lng) in rows {
        by_agent
            .entry(username)
            .or_default()
            .push((tenant, lat.zip(lng)));
    }
    anyhow::ensure!(
        !by_agent.is_empty(),
        "no agents with tenants: run `akig seed --demo`"
    );

    let endpoint = Channel::from_shared(args.target.clone())?;
    let mut agents = Vec::new();
    for (username, tenants) in by_agent {
        // Each agent's phone has a connection of its own.
        let channel = endpoint.connect().await?;
        let login = AuthServiceClient::new(channel.clone())
            .login(pb::LoginRequest {
                identifier: Some(pb::login_request::Identifier::Username(username.clone())),
                password: args.password.clone(),
                device: None,
            })
            .await
            .map_err(|s| anyhow::anyhow!("login of {username}: {s}"))?
            .into_inner();
        let token = login.tokens.map(|t| t.access_token).unwrap_or_default();
        agents.push(Arc::new(Agent {
            token,
            tenants,
            channel,
        }));
    }

    let warm_up = Duration::from_secs(2);
    let measured = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency {
        let agent = agents[worker % agents.len()].clone();
        let channel = agent.channel.clone();
        let rpc = args.rpc;
        let stops = args.stops;
        workers.spawn(async move {
            let mut geo = GeoServiceClient::new(channel.clone());
            let mut client = CollectionsServiceClient::new(channel);
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let now = Instant::now();
                if now >= start + warm_up + measured {
                    break;
                }
                let (tenant, home) = agent.tenants[rng.random_range(0..agent.tenants.len())];
                let sent = Instant::now();
                let outcome = match rpc {
                    Rpc::Visit => client
                        .record_visit(authed(visit(tenant, home, &mut rng), &agent.token))
                        .await
                        .map(drop),
                    Rpc::Payment => client
                        .record_payment(authed(payment(tenant, &mut rng), &agent.token))
                        .await
                        .map(drop),
                    Rpc::BackdatedPayment => {
                        let mut request = payment(tenant, &mut rng);
                        let days = rng.random_range(1..=25);
                        request.occurred_at = Some(akig::api::convert::timestamp(
                            chrono::Utc::now() - chrono::Duration::days(days),
                        ));
                        client
                            .record_payment(authed(request, &agent.token))
                            .await
                            .map(drop)
                    }
                    Rpc::OptimizeRoute => geo
                        .optimize_route(authed(
                            route(&agent.tenants, stops, &mut rng),
                            &agent.token,
                        ))
                        .await
                        .map(drop),
                    Rpc::ArrearsMarkersCity => geo
                        .list_arrears_markers(authed(city_map(), &agent.token))
                        .await
                        .map(drop),
                    Rpc::ArrearsMarkersStreet => geo
                        .list_arrears_markers(authed(street_map(home), &agent.token))
                        .await
                        .map(drop),
                };
                if sent < start + warm_up {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(status) => *errors.entry(format!("{:?}", status.code())).or_default() += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(result) = workers.join_next().await {
        let (l, e) = result?;
        latencies.extend(l);
        for (code, n) in e {
            *errors.entry(code).or_default() += n;
        }
    }
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = latencies.len() as f64 / measured.as_secs_f64();
    let stops = match args.rpc {
        Rpc::OptimizeRoute => format!(" stops={}", args.stops),
        Rpc::Visit
        | Rpc::Payment
        | Rpc::BackdatedPayment
        | Rpc::ArrearsMarkersCity
        | Rpc::ArrearsMarkersStreet => String::new(),
    };
    println!(
        "rpc={:?}{stops} concurrency={} seconds={} ok={} rate_per_s={:.1} p50_ms={:.2} p99_ms={:.2} errors={:?}",
        args.rpc,
        args.concurrency,
        args.seconds,
        latencies.len(),
        rate,
        percentile(0.50),
        percentile(0.99),
        errors
    );
    Ok(())
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: 0,
    }
}

fn visit(tenant: Uuid, home: Option<(f64, f64)>, rng: &mut impl Rng) -> pb::RecordVisitRequest {
    let (lat, lng) = home.unwrap_or((9.5092, -13.7122));
    pb::RecordVisitRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(now()),
        outcome: if rng.random_bool(0.5) {
            pb::InteractionOutcome::Absent
        } else {
            pb::InteractionOutcome::NoAnswer
        } as i32,
        notes: "bench".to_owned(),
        visit: Some(pb::VisitDetails {
            location: Some(pb::LatLng {
                latitude: lat + rng.random_range(-0.0005..0.0005),
                longitude: lng + rng.random_range(-0.0005..0.0005),
            }),
            accuracy_m: 10.0,
            fix_time: Some(now()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn payment(tenant: Uuid, rng: &mut impl Rng) -> pb::RecordPaymentRequest {
    pb::RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        amount_gnf: rng.random_range(1..=20) * 25_000,
        method: pb::PaymentMethod::Cash as i32,
        occurred_at: Some(now()),
        ..Default::default()
    }
}

/// A closed walking tour from one of `tenants`' homes through `stops` of them (distinct, at
/// random), padded with points within ~500 m of their homes when too few have one.
fn route(tenants: &[Target], stops: usize, rng: &mut impl Rng) -> pb::OptimizeRouteRequest {
    let homes: Vec<(Uuid, (f64, f64))> = tenants
        .iter()
        .filter_map(|&(tenant, home)| home.map(|home| (tenant, home)))
        .collect();
    let mut picked: Vec<usize> = (0..homes.len()).collect();
    for i in (1..picked.len()).rev() {
        picked.swap(i, rng.random_range(0..=i));
    }
    picked.truncate(stops);
    let mut route_stops: Vec<pb::RouteStop> = picked
        .iter()
        .map(|&i| pb::RouteStop {
            target: Some(pb::route_stop::Target::TenantId(homes[i].0.to_string())),
            ..Default::default()
        })
        .collect();
    let near = |rng: &mut dyn rand::RngCore| {
        let (lat, lng) = if homes.is_empty() {
            (9.5092, -13.7122)
        } else {
            homes[rng.random_range(0..homes.len())].1
        };
        pb::LatLng {
            latitude: lat + rng.random_range(-0.005..0.005),
            longitude: lng + rng.random_range(-0.005..0.005),
        }
    };
    for k in route_stops.len()..stops {
        route_stops.push(pb::RouteStop {
            stop_id: format!("point-{k}"),
            target: Some(pb::route_stop::Target::Location(near(rng))),
            ..Default::default()
        });
    }
    pb::OptimizeRouteRequest {
        problem: Some(pb::RouteProblem {
            start: Some(near(rng)),
            stops: route_stops,
            return_to_start: true,
            travel_mode: pb::TravelMode::Walking as i32,
            time_budget: None,
            seed: rng.random(),
        }),
    }
}

fn map_request(
    south: f64,
    west: f64,
    north: f64,
    east: f64,
    zoom: i32,
) -> pb::ListArrearsMarkersRequest {
    let at = |latitude, longitude| {
        Some(pb::LatLng {
            latitude,
            longitude,
        })
    };
    pb::ListArrearsMarkersRequest {
        bounds: Some(pb::BoundingBox {
            south_west: at(south, west),
            north_east: at(north, east),
        }),
        zoom,
        ..Default::default()
    }
}

/// The whole city at zoom 12, as clusters (above 100 tenants).
fn city_map() -> pb::ListArrearsMarkersRequest {
    let (south, west, north, east) = CITY;
    pb::ListArrearsMarkersRequest {
        max_markers: 100,
        ..map_request(south, west, north, east, 12)
    }
}

/// About 440 m (0.004°) around `home` at zoom 17.
fn street_map(home: Option<(f64, f64)>) -> pb::ListArrearsMarkersRequest {
    let (lat, lng) = home.unwrap_or((9.5092, -13.7122));
    map_request(lat - 0.002, lng - 0.002, lat + 0.002, lng + 0.002, 17)
}
