//! The server under test: its configuration, start, health and stop.

use std::net::SocketAddr;
use std::time::Duration;

use akig::app::config::CollectionsConfig;
use akig::auth::config::AuthConfig;
use akig::auth::tokens::TokenKeys;
use akig::config::{CorsOrigins, ServeConfig};
use akig::db::DatabaseConfig;
use akig::limits::{Limit, RateLimitConfig};
use akig::redis::RedisConfig;
use akig::startup::Application;
use akig::state::AppState;
use akig::telemetry::LogFormat;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::db::TestDb;

/// Which Redis the server under test gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// The real Redis of `REDIS_URL` (default 127.0.0.1:6379), keys under a prefix of its own.
    Real,
    /// A port where nothing listens.
    Unreachable,
    /// No Redis configured: the in-process cache only.
    None,
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A connection of the test's own to the tests' Redis, to act behind the servers' backs.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

/// The configuration of a test server on `connect_options`: free ports, limits no test
/// reaches unless it lowers them, the test signing key.
pub fn test_config(connect_options: PgConnectOptions, redis: RedisMode) -> ServeConfig {
    let redis = match redis {
        RedisMode::Real => Some(redis_url()),
        RedisMode::Unreachable => Some("redis://127.0.0.1:1".to_owned()),
        RedisMode::None => None,
    }
    .map(|url| RedisConfig {
        url,
        key_prefix: format!("akig-test-{}", uuid::Uuid::new_v4()),
    });
    ServeConfig {
        database: DatabaseConfig {
            connect_options,
            max_connections: 5,
            acquire_timeout: Duration::from_secs(3),
        },
        redis,
        listen: "127.0.0.1:0".parse().expect("literal address"),
        metrics_listen: Some("127.0.0.1:0".parse().expect("literal address")),
        request_timeout: Duration::from_secs(10),
        max_concurrent_requests: 256,
        max_message_bytes: 4 * 1024 * 1024,
        http2_keepalive: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(5),
        cors: CorsOrigins::Any,
        log_format: LogFormat::Pretty,
        auth: AuthConfig {
            keys: test_keys(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(24 * 3600),
            session_max_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_grace: Duration::from_secs(2),
        },
        // High enough that only the rate-limit tests, which lower them, ever hit them.
        rate_limits: RateLimitConfig {
            per_user: limit(10_000, 10_000),
            per_ip: limit(10_000, 10_000),
            stream_messages: limit(10_000, 10_000),
            trusted_proxies: Vec::new(),
        },
        collections: CollectionsConfig::default(),
        route: akig::geo::RouteConfig::default(),
        live: akig::live::LiveConfig::default(),
        cache: akig::cache::CacheConfig::default(),
    }
}

pub fn limit(per_second: u32, burst: u32) -> Limit {
    Limit {
        per_second: per_second.try_into().expect("non-zero"),
        burst: burst.try_into().expect("non-zero"),
    }
}

/// The signing secret of test servers: tests forge tokens with it to probe the checks.
pub const TEST_SECRET: [u8; 32] = *b"test-secret-test-secret-test-sec";
pub const TEST_KID: &str = "test-2026";

pub fn test_keys() -> TokenKeys {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.encode(TEST_SECRET);
    TokenKeys::parse(
        &format!("{TEST_KID}={secret}"),
        TEST_KID,
        "akig",
        "akig-api",
    )
    .expect("valid test key")
}

/// A server running on the test's runtime.
pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// A new connection to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to test server")
    }

    pub async fn health_status(&self, service: &str) -> ServingStatus {
        let mut client = HealthClient::new(self.channel().await);
        let response = client
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health check answers");
        ServingStatus::try_from(response.into_inner().status).expect("known status")
    }

    /// Polls health until it reports `want` (the database probe runs every 2 s).
    pub async fn wait_for_health(&self, want: ServingStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.health_status("").await;
            if status == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "health stayed {status:?}, wanted {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful shutdown; fails the test if the server does not stop within `bound`.
    pub async fn stop(self, bound: Duration) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(bound, self.server)
            .await
            .expect("server stopped within the bound")
            .expect("server task did not panic")
    }
}

/// Server logs go to the test output only when `TEST_LOG` is set.
fn init_test_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        akig::telemetry::init_tracing(LogFormat::Pretty);
    }
}

/// The server with `config`, on `pool`.
pub async fn spawn_app_with(config: ServeConfig, pool: PgPool) -> TestApp {
    spawn_app_and_state(config, pool).await.0
}

/// The server with `config`, on `pool`, and its state (for a test that runs a job's work on
/// the server's own pool and cache).
pub async fn spawn_app_and_state(config: ServeConfig, pool: PgPool) -> (TestApp, AppState) {
    init_test_logs();
    let app = Application::build_with_pool(config, pool)
        .await
        .expect("application builds");
    let state = app.state().clone();
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let app = TestApp {
        addr,
        metrics_addr,
        shutdown,
        server,
    };
    (app, state)
}

/// The server on the test's database and the real Redis.
pub async fn spawn_app(db: &TestDb) -> TestApp {
    let config = test_config(db.connect_options(), RedisMode::Real);
    spawn_app_with(config, db.pool.clone()).await
}

/// A TCP relay to PostgreSQL or Redis that the test can cut and restore, to play an outage.
/// The server on `db` reached through a [`Relay`] (no Redis, a pool of 2 with a 1 s acquire
/// timeout), so that a test can cut the database away and bring it back. Returns the app, the
/// relay and PostgreSQL's own address (to restart a relay on the same port after a cut).
pub async fn spawn_app_behind_relay(db: &TestDb) -> (TestApp, Relay, SocketAddr) {
    let options = db.connect_options();
    let upstream: SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:5432".parse().expect("literal"));
    let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
    let relayed = options.clone().host("127.0.0.1").port(relay.addr.port());
    // The server's own pool settings (akig::db), sized down.
    let app_pool = akig::db::lazy_pool(&DatabaseConfig {
        connect_options: relayed.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(1),
    });
    let app = spawn_app_with(test_config(relayed, RedisMode::None), app_pool).await;
    (app, relay, upstream)
}

pub struct Relay {
    pub addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    pub async fn start(addr: SocketAddr, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("relay binds");
        let addr = listener.local_addr().expect("relay address");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { addr, tasks }
    }

    /// A relay whose connections stop passing bytes, but stay open, while the flag returned
    /// is set: a half-open link, as a dead peer behind a NAT leaves it.
    pub async fn stallable(
        addr: SocketAddr,
        upstream: SocketAddr,
    ) -> (Self, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = TcpListener::bind(addr).await.expect("relay binds");
        let addr = listener.local_addr().expect("relay address");
        let mut tasks = JoinSet::new();
        let flag = stalled.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            pass(client_read, server_write, flag.clone()),
                            pass(server_read, client_write, flag),
                        );
                    }
                });
            }
        });
        (Self { addr, tasks }, stalled)
    }

    /// Drops the listener and every relayed connection.
    pub async fn cut(mut self) -> SocketAddr {
        self.tasks.shutdown().await;
        self.addr
    }
}

/// Copies `from` to `to` until either ends, holding the bytes while `stalled` is set.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
