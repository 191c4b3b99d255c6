//! Load generator for live positions, driven by `ops/bench/live.sh` (docs/performance.md,
//! "Live positions"). Creates its own agents (users, a session row each, and access tokens
//! signed with the server's `AKIG_JWT_KEYS`), then:
//!
//! - `ingest`: N agent streams send batches as fast as the acks come back; answers the
//!   positions persisted per second (counted in PostgreSQL), then PostgreSQL's own COPY rate
//!   of the same number of rows into the same table, as the ceiling;
//! - `watch`: N agents at one fix per second each and W watchers; answers the
//!   position-to-watcher latency (fix sent → update received) p50 and p99;
//! - `idle`: N connected sessions that only say hello, held for the duration (the script
//!   samples the server's RSS and CPU meanwhile).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use akig::auth::tokens::{AccessGrant, TokenKeys};
use akig::proto::v1 as pb;
use akig::proto::v1::geo_service_client::GeoServiceClient;
use chrono::Utc;
use clap::{Parser, ValueEnum};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Ingest,
    Watch,
    Idle,
}

#[derive(Debug, Parser)]
#[command(about = "Measure live position ingest, watcher latency and idle sessions")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50065")]
    target: String,
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "AKIG_JWT_KEYS")]
    jwt_keys: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Agent streams.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Positions per batch (ingest).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Watchers (watch).
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Connections of the COPY ceiling (ingest).
    #[arg(long, default_value_t = 2)]
    copy_connections: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: usize,
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Creates `n` agents with a session each; answers (agent id, access token).
async fn agents(pool: &PgPool, keys: &TokenKeys, n: usize) -> anyhow::Result<Vec<(Uuid, String)>> {
    let run = Uuid::new_v4().simple().to_string();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (username, full_name, role_id)
         SELECT 'bench.' || $1 || '.' || g, 'Agent ' || g, 'agent' FROM generate_series(1, $2) g
         RETURNING id",
    )
    .bind(&run[..8])
    .bind(i32::try_from(n)?)
    .fetch_all(pool)
    .await?;
    let families: Vec<Uuid> = ids.iter().map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at, family_expires_at)
         SELECT f, u, decode(md5(f::text), 'hex'), now() + interval '1 day', now() + interval '1 day'
         FROM UNNEST($1::uuid[], $2::uuid[]) AS t(f, u)",
    )
    .bind(&families)
    .bind(&ids)
    .execute(pool)
    .await?;
    Ok(ids
        .iter()
        .zip(&families)
        .map(|(&user_id, &session_id)| {
            let grant = AccessGrant {
                user_id,
                session_id,
                token_id: Uuid::new_v4(),
                token_version: 0,
                issued_at: Utc::now(),
            };
            (
                user_id,
                keys.issue_access(grant, Duration::from_secs(3600)).0,
            )
        })
        .collect())
}

async fn channels(target: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(Endpoint::from_shared(target.to_owned())?.connect().await?);
    }
    Ok(out)
}

fn hello() -> pb::AgentSessionRequest {
    pb::AgentSessionRequest {
        payload: Some(pb::agent_session_request::Payload::Hello(pb::AgentHello {
            device: Some(pb::DeviceInfo {
                device_id: "bench".into(),
                app_version: "2.0.0".into(),
                platform: "bench".into(),
            }),
            last_acked_sequence: 0,
        })),
    }
}

fn position(sequence: u64, agent: usize) -> pb::AgentPosition {
    let now = Utc::now();
    let k = agent as f64;
    pb::AgentPosition {
        sequence,
        location: Some(pb::LatLng {
            latitude: 9.5 + (k * 0.0001) % 0.3 + (sequence as f64) * 1e-6,
            longitude: -13.7 + (k * 0.0003) % 0.3,
        }),
        accuracy_m: 8.0,
        speed_mps: Some(1.2),
        heading_deg: Some(90.0),
        altitude_m: None,
        battery_percent: Some(70),
        is_mock_location: false,
        fix_time: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// An open agent session: the sender and the response stream (after the hello's answers).
async fn open(
    channel: Channel,
    token: &str,
) -> anyhow::Result<(
    mpsc::Sender<pb::AgentSessionRequest>,
    tonic::Streaming<pb::AgentSessionResponse>,
)> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello()).await?;
    let stream = GeoServiceClient::new(channel)
        .agent_session(authed(ReceiverStream::new(rx), token))
        .await?
        .into_inner();
    Ok((tx, stream))
}

async fn next_ack(
    stream: &mut tonic::Streaming<pb::AgentSessionResponse>,
) -> anyhow::Result<pb::PositionAck> {
    loop {
        let message = stream
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        if let Some(pb::agent_session_response::Payload::Ack(ack)) = message.payload {
            return Ok(ack);
        }
    }
}

async fn stored(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM agent_positions")
        .fetch_one(pool)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&args.database_url)
        .await?;
    let kid = args
        .jwt_keys
        .split('=')
        .next()
        .unwrap_or_default()
        .to_owned();
    let keys = TokenKeys::parse(&args.jwt_keys, &kid, "akig", "akig-api")?;
    let agents = agents(&pool, &keys, args.agents).await?;
    let connections = args.agents.div_ceil(args.streams_per_connection.max(1));
    let chans = channels(&args.target, connections).await?;
    let duration = Duration::from_secs(args.seconds);
    match args.mode {
        Mode::Ingest => ingest(&args, &pool, &agents, &chans, duration).await,
        Mode::Watch => watch(&args, &agents, &chans, &keys, &pool, duration).await,
        Mode::Idle => idle(&args, &agents, &chans, duration).await,
    }
}

async fn ingest(
    args: &Args,
    pool: &PgPool,
    agents: &[(Uuid, String)],
    chans: &[Channel],
    duration: Duration,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut sessions = Vec::new();
    for (i, (_, token)) in agents.iter().enumerate() {
        sessions.push(open(chans[i % chans.len()].clone(), token).await?);
    }
    let before = stored(pool).await?;
    let started = Instant::now();
    for (i, (tx, mut stream)) in sessions.into_iter().enumerate() {
        let stop = stop.clone();
        let acked = acked.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            next_ack(&mut stream).await?;
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let positions = (0..batch)
                    .map(|_| {
                        sequence += 1;
                        position(sequence, i)
                    })
                    .collect();
                tx.send(pb::AgentSessionRequest {
                    payload: Some(pb::agent_session_request::Payload::Positions(
                        pb::PositionBatch { positions },
                    )),
                })
                .await?;
                let ack = next_ack(&mut stream).await?;
                acked.fetch_add(ack.accepted_count as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let persisted = stored(pool).await? - before;
    println!(
        "ingest: {} streams, batches of {}, {:.1} s: {} positions persisted, {:.0}/s (acked {})",
        agents.len(),
        args.batch,
        elapsed,
        persisted,
        persisted as f64 / elapsed,
        acked.load(Ordering::Relaxed)
    );
    // The ceiling: PostgreSQL's COPY of as many rows into the same table, on as many
    // connections as the server has ingest writers (2 by default).
    let rows = usize::try_from(persisted).unwrap_or(0).max(10_000);
    let now = Utc::now().format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let parts = args.copy_connections.max(1);
    let mut texts = vec![String::with_capacity(rows / parts * 120); parts];
    for r in 0..rows {
        let (agent, _) = &agents[r % agents.len()];
        texts[r % parts].push_str(&format!(
            "{agent}\t{}\t9.5\t-13.7\t8\t1.2\t90\t\\N\t70\tf\t{now}\t{now}\n",
            10_000_000 + r
        ));
    }
    let started = Instant::now();
    let mut copies = Vec::new();
    for text in texts {
        let pool = pool.clone();
        copies.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut copy = conn
                .copy_in_raw(
                    "COPY agent_positions (agent_id, sequence, latitude, longitude, accuracy_m,
                         speed_mps, heading_deg, altitude_m, battery_percent, is_mock_location,
                         fix_time, received_at)
                     FROM STDIN",
                )
                .await?;
            copy.send(text.as_bytes()).await?;
            copy.finish().await?;
            anyhow::Ok(())
        }));
    }
    for copy in copies {
        copy.await??;
    }
    let copy_elapsed = started.elapsed().as_secs_f64();
    println!(
        "copy: {rows} rows on {parts} connections in {copy_elapsed:.2} s: {:.0}/s; ingest/COPY = {:.2}",
        rows as f64 / copy_elapsed,
        (persisted as f64 / elapsed) / (rows as f64 / copy_elapsed)
    );
    Ok(())
}

async fn watch(
    args: &Args,
    agents: &[(Uuid, String)],
    chans: &[Channel],
    keys: &TokenKeys,
    pool: &PgPool,
    duration: Duration,
) -> anyhow::Result<()> {
    // Watchers: a director each (company scope).
    let directors: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (username, full_name, role_id)
         SELECT 'bench.dir.' || gen_random_uuid(), 'Directeur ' || g, 'director'
         FROM generate_series(1, $1) g RETURNING id",
    )
    .bind(i32::try_from(args.watchers)?)
    .fetch_all(pool)
    .await?;
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Latencies count only after the warm-up.
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for director in directors {
        let family = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at, family_expires_at)
             VALUES ($1, $2, decode(md5($1::text), 'hex'), now() + interval '1 day', now() + interval '1 day')",
        )
        .bind(family)
        .bind(director)
        .execute(pool)
        .await?;
        let (token, _) = keys.issue_access(
            AccessGrant {
                user_id: director,
                session_id: family,
                token_id: Uuid::new_v4(),
                token_version: 0,
                issued_at: Utc::now(),
            },
            Duration::from_secs(3600),
        );
        let channel = Endpoint::from_shared(args.target.clone())?
            .connect()
            .await?;
        let mut stream = GeoServiceClient::new(channel)
            .watch_agents(authed(pb::WatchAgentsRequest::default(), &token))
            .await?
            .into_inner();
        let latencies = latencies.clone();
        let stop = stop.clone();
        let measuring = measuring.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut resyncs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(Some(message))) =
                    tokio::time::timeout(Duration::from_millis(500), stream.message()).await
                else {
                    continue;
                };
                match message.event {
                    Some(pb::watch_agents_response::Event::PositionUpdate(location)) => {
                        if let Some(fix) = location.position.and_then(|p| p.fix_time)
                            && measuring.load(Ordering::Relaxed)
                        {
                            let sent = fix.seconds as f64 + f64::from(fix.nanos) / 1e9;
                            let now = Utc::now();
                            let now = now.timestamp() as f64
                                + f64::from(now.timestamp_subsec_nanos()) / 1e9;
                            mine.push((now - sent) * 1000.0);
                        }
                    }
                    Some(pb::watch_agents_response::Event::Resync(_)) => resyncs += 1,
                    _ => {}
                }
            }
            latencies.lock().await.extend(mine);
            resyncs
        }));
    }
    let mut senders = Vec::new();
    for (i, (_, token)) in agents.iter().enumerate() {
        let (tx, mut stream) = open(chans[i % chans.len()].clone(), token).await?;
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            next_ack(&mut stream).await?;
            // Spread the agents over the second.
            let offset = Duration::from_millis((i as u64 * 997) % 1000);
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + offset,
                Duration::from_secs(1),
            );
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                sequence += 1;
                tx.send(pb::AgentSessionRequest {
                    payload: Some(pb::agent_session_request::Payload::Positions(
                        pb::PositionBatch {
                            positions: vec![position(sequence, i)],
                        },
                    )),
                })
                .await?;
                next_ack(&mut stream).await?;
            }
            anyhow::Ok(())
        }));
    }
    // Warm-up of 3 s, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await??;
    }
    let mut resyncs = 0;
    for task in tasks {
        resyncs += task.await?;
    }
    let mut all = latencies.lock().await.clone();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "watch: {} agents x 1 Hz, {} watchers, {:.0} s: {} updates received, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, resyncs {}",
        agents.len(),
        args.watchers,
        start.elapsed().as_secs_f64(),
        all.len(),
        pct(0.5),
        pct(0.99),
        all.last().copied().unwrap_or(f64::NAN),
        resyncs
    );
    Ok(())
}

async fn idle(
    args: &Args,
    agents: &[(Uuid, String)],
    chans: &[Channel],
    duration: Duration,
) -> anyhow::Result<()> {
    let mut sessions = Vec::with_capacity(agents.len());
    let started = Instant::now();
    for (i, (_, token)) in agents.iter().enumerate() {
        let (tx, mut stream) = open(chans[i % chans.len()].clone(), token).await?;
        next_ack(&mut stream).await?;
        sessions.push((tx, stream));
    }
    println!(
        "idle: {} sessions open in {:.1} s over {} connections; holding {} s",
        sessions.len(),
        started.elapsed().as_secs_f64(),
        chans.len(),
        args.seconds
    );
    // The script samples the server now.
    println!("READY");
    tokio::time::sleep(duration).await;
    drop(sessions);
    Ok(())
}
