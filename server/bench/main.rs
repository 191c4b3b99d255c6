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
//! whole of Conakry at zoom 12 ([`requests::CITY`], `max_markers` 100: always clusters), or a
//! box of about 440 m around a random tenant's home at zoom 17 (markers).
//!
//! `--rpc summary` and `--rpc summary-site` measure GetSummary as the demo director: the whole
//! company, or one site picked at random per call; `--rpc site` measures GetSite of a random
//! site per call (10 top debtors), as the demo director. They go through the server's read
//! cache: for uncached figures start the server with the kind's caching off
//! (`AKIG_CACHE_TTL_STATISTICS_SECS=0` for GetSummary, `AKIG_CACHE_TTL_SITES_SECS=0` for
//! GetSite).
//!
//! `--rpc reads --out DIR` prepares the read benchmark of `ops/bench/reads.sh`: it logs in as
//! the demo director, writes `DIR/token` and one gRPC-framed request per read
//! (`DIR/<name>.bin`, `DIR/<name>.path`) for h2load — GetTenant, GetTenantArrears, a timeline
//! page (GetTenantHistory, 50 entries), SearchTenants on the commonest surname, GetDailyStats
//! for the company's day, WhoAmI and the health check — and measures each one's single-caller
//! latency (`--seconds` each, one call at a time), one line per read.

mod reads;
mod requests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akig::proto::v1 as pb;
use akig::proto::v1::auth_service_client::AuthServiceClient;
use akig::proto::v1::collections_service_client::CollectionsServiceClient;
use akig::proto::v1::dashboard_service_client::DashboardServiceClient;
use akig::proto::v1::geo_service_client::GeoServiceClient;
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use uuid::Uuid;

use reads::reads;
use requests::{city_map, payment, route, street_map, visit};

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
    /// The read benchmark's requests and single-caller latencies (see the module docs).
    Reads,
    /// GetSummary of the whole company, as the demo director, uncached.
    Summary,
    /// GetSummary of one random site, as the demo director, uncached.
    SummarySite,
    /// GetSite of one random site, as the demo director, uncached.
    Site,
}

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
    /// Where `--rpc reads` writes its requests.
    #[arg(long, default_value = "target/bench-reads")]
    out: std::path::PathBuf,
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
    if matches!(args.rpc, Rpc::Reads) {
        return reads(&args).await;
    }
    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    let map = matches!(
        args.rpc,
        Rpc::ArrearsMarkersCity
            | Rpc::ArrearsMarkersStreet
            | Rpc::Summary
            | Rpc::SummarySite
            | Rpc::Site
    );
    let site_ids: Arc<Vec<Uuid>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM sites ORDER BY id")
            .fetch_all(&pool)
            .await?,
    );
    let rows: Vec<(String, Uuid, Option<f64>, Option<f64>)> = sqlx::query_as(if map {
        "SELECT 'directeur', t.id, t.home_latitude, t.home_longitude
         FROM tenants t WHERE t.active AND t.home_latitude IS NOT NULL ORDER BY t.id"
    } else {
        "SELECT u.username, t.id, t.home_latitude, t.home_longitude
         FROM users u JOIN user_sites us ON us.user_id = u.id
         JOIN tenants t ON t.site_id = us.site_id AND t.active
         WHERE u.role_id = 'agent' AND NOT u.disabled
           -- Agents who can log in: the scale seed's users have no password.
           AND u.password_hash IS NOT NULL
         ORDER BY u.username, t.id"
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
        let site_ids = site_ids.clone();
        workers.spawn(async move {
            let mut dashboard = DashboardServiceClient::new(channel.clone());
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
                    Rpc::Summary => dashboard
                        .get_summary(authed(pb::GetSummaryRequest::default(), &agent.token))
                        .await
                        .map(drop),
                    Rpc::SummarySite => {
                        let site = site_ids[rng.random_range(0..site_ids.len())];
                        dashboard
                            .get_summary(authed(
                                pb::GetSummaryRequest {
                                    site_ids: vec![site.to_string()],
                                },
                                &agent.token,
                            ))
                            .await
                            .map(drop)
                    }
                    Rpc::Site => {
                        let site = site_ids[rng.random_range(0..site_ids.len())];
                        dashboard
                            .get_site(authed(
                                pb::GetSiteRequest {
                                    site_id: site.to_string(),
                                    top_debtor_count: 0,
                                },
                                &agent.token,
                            ))
                            .await
                            .map(drop)
                    }
                    Rpc::Reads => unreachable!("handled before the load loop"),
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
    let percentile = |p: f64| percentile_ms(&latencies, p);
    let rate = latencies.len() as f64 / measured.as_secs_f64();
    let stops = match args.rpc {
        Rpc::OptimizeRoute => format!(" stops={}", args.stops),
        Rpc::Visit
        | Rpc::Payment
        | Rpc::BackdatedPayment
        | Rpc::ArrearsMarkersCity
        | Rpc::ArrearsMarkersStreet
        | Rpc::Summary
        | Rpc::SummarySite
        | Rpc::Site
        | Rpc::Reads => String::new(),
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

/// The `p` quantile (0..=1, nearest rank) of `sorted` latencies, in milliseconds; 0 if none.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
