//! Typed configuration, read from CLI flags and `AKIG_*` / standard environment variables, and
//! checked once at start so a bad value stops the process with a message naming the setting.
//!
//! Decisions:
//! - Each module owns its settings (`db::DatabaseConfig`, `redis::RedisConfig`,
//!   `limits::RateLimitConfig`, `auth::config::AuthConfig`, `app::config`, `live::config`,
//!   `geo::config`, `cache::CacheConfig`, `telemetry::LogFormat`); this module only reads them
//!   from the flags and the environment into [`ServeConfig`] and depends on them, never the
//!   reverse (`ops/check-import-loops.sh`). Refusals are `crate::setting::ConfigError`.

mod alerts;
mod auth;
mod collections;
mod limits;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use sqlx::postgres::PgConnectOptions;

use crate::app::config::CollectionsConfig;
use crate::auth::config::AuthConfig;
use crate::db::DatabaseConfig;
use crate::limits::RateLimitConfig;
use crate::redis::RedisConfig;
use crate::setting::{self as check, ConfigError};
use crate::telemetry::LogFormat;

pub use alerts::AlertArgs;
pub use auth::AuthArgs;
pub use collections::{CollectionsArgs, MissionsArgs};
pub use limits::RateLimitArgs;

/// Where the database is. Shared by every command that touches PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL, e.g. postgres://akig@127.0.0.1:5432/akig
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of pooled PostgreSQL connections.
    #[arg(long, env = "AKIG_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// How long a request waits for a pooled connection before failing, in seconds.
    #[arg(long, env = "AKIG_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
}

/// Everything `akig serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Redis URL. Unset: the server runs on its in-process cache only.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this server writes (lets several deployments share one Redis).
    #[arg(long, env = "AKIG_REDIS_PREFIX", default_value = "akig")]
    pub redis_prefix: String,

    /// Apply pending database migrations at start. Without it, a server on an out-of-date
    /// schema refuses to start and says to run `akig migrate`.
    #[arg(long, env = "AKIG_MIGRATE", default_value_t = false)]
    pub migrate: bool,

    /// Address for gRPC (HTTP/2) and gRPC-web (HTTP/1.1) on the same port.
    #[arg(long, env = "AKIG_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "AKIG_METRICS_LISTEN", default_value = "0.0.0.0:9100")]
    pub metrics_listen: SocketAddr,

    /// Deadline of a unary call when the client sends none shorter, in seconds.
    #[arg(long, env = "AKIG_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Calls handled at once across all connections; beyond it calls get RESOURCE_EXHAUSTED.
    #[arg(long, env = "AKIG_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Largest request or response message, in bytes.
    #[arg(long, env = "AKIG_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Interval of HTTP/2 keepalive pings, in seconds (keeps long streams alive through NATs).
    #[arg(long, env = "AKIG_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,

    /// On SIGTERM/SIGINT, how long open calls and streams may take to finish, in seconds.
    #[arg(long, env = "AKIG_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Origins allowed to call gRPC-web from a browser, comma separated; `*` allows any.
    #[arg(
        long,
        env = "AKIG_CORS_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Log output format.
    #[arg(long, env = "AKIG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub rate_limits: RateLimitArgs,

    #[command(flatten)]
    pub collections: CollectionsArgs,

    #[command(flatten)]
    pub route: crate::geo::RouteArgs,

    #[command(flatten)]
    pub live: crate::live::config::LiveArgs,
}

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    pub listen: SocketAddr,
    /// `None` disables the metrics endpoint (tests run many servers in one process).
    pub metrics_listen: Option<SocketAddr>,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_message_bytes: usize,
    pub http2_keepalive: Duration,
    pub shutdown_grace: Duration,
    pub cors: CorsOrigins,
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitConfig,
    pub collections: CollectionsConfig,
    pub route: crate::geo::RouteConfig,
    pub live: crate::live::LiveConfig,
    /// Lifetime of each kind of cached read (`AKIG_CACHE_TTL_<KIND>_SECS`).
    pub cache: crate::cache::CacheConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<http::HeaderValue>),
}

impl DatabaseArgs {
    pub fn parse(&self) -> Result<DatabaseConfig, ConfigError> {
        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://",
            ));
        }
        let connect_options: PgConnectOptions = self
            .database_url
            .parse()
            .map_err(|e| ConfigError::new("DATABASE_URL", format!("not a PostgreSQL URL ({e})")))?;
        check::at_least("AKIG_DB_MAX_CONNECTIONS", self.db_max_connections, 1)?;
        Ok(DatabaseConfig {
            connect_options,
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs.max(1)),
        })
    }
}

impl ServeArgs {
    pub fn parse(&self) -> Result<ServeConfig, ConfigError> {
        let redis = match self.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                redis::Client::open(url)
                    .map_err(|e| ConfigError::new("REDIS_URL", format!("not a Redis URL ({e})")))?;
                Some(RedisConfig {
                    url: url.to_owned(),
                    key_prefix: self.redis_prefix.clone(),
                })
            }
        };
        check::at_least(
            "AKIG_MAX_CONCURRENT_REQUESTS",
            self.max_concurrent_requests,
            1,
        )?;
        check::at_least("AKIG_MAX_MESSAGE_BYTES", self.max_message_bytes, 1024)?;
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return Err(ConfigError::new(
                "AKIG_METRICS_LISTEN",
                "must differ from AKIG_LISTEN",
            ));
        }
        Ok(ServeConfig {
            database: self.database.parse()?,
            redis,
            listen: self.listen,
            metrics_listen: Some(self.metrics_listen),
            request_timeout: check::seconds(
                "AKIG_REQUEST_TIMEOUT_SECS",
                self.request_timeout_secs,
            )?,
            max_concurrent_requests: self.max_concurrent_requests,
            max_message_bytes: self.max_message_bytes,
            http2_keepalive: check::seconds(
                "AKIG_HTTP2_KEEPALIVE_SECS",
                self.http2_keepalive_secs,
            )?,
            shutdown_grace: check::seconds("AKIG_SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs)?,
            cors: parse_cors_origins(&self.cors_origins)?,
            log_format: self.log_format,
            auth: self.auth.parse()?,
            rate_limits: self.rate_limits.parse()?,
            collections: self.collections.parse()?,
            route: self.route.parse()?,
            live: self.live.parse()?,
            cache: crate::cache::CacheConfig::from_vars(|name| std::env::var(name).ok())
                .map_err(|(setting, reason)| ConfigError::new(setting, reason))?,
        })
    }
}

fn parse_cors_origins(origins: &[String]) -> Result<CorsOrigins, ConfigError> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() || origins.contains(&"*") {
        return Ok(CorsOrigins::Any);
    }
    origins
        .iter()
        .map(|origin| {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::new(
                    "AKIG_CORS_ORIGINS",
                    format!("{origin:?} is not an http(s) origin"),
                ));
            }
            http::HeaderValue::from_str(origin).map_err(|_| {
                ConfigError::new(
                    "AKIG_CORS_ORIGINS",
                    format!("{origin:?} is not a valid origin"),
                )
            })
        })
        .collect::<Result<_, _>>()
        .map(CorsOrigins::List)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The settings of `akig serve` with `args` added to a database URL.
    pub(super) fn parse(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["akig", "--database-url", "postgres://u@localhost/db"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv)
            .expect("flags parse")
            .serve
            .parse()
    }

    /// Asserts that each `--flag=value` is refused with an error naming its setting.
    pub(super) fn assert_refused(cases: &[(&str, &str)]) {
        for &(arg, setting) in cases {
            let refused = parse(&[arg]).expect_err(arg);
            assert_eq!(refused.setting, setting, "{arg}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.listen.port(), 50051);
        assert_eq!(config.metrics_listen.map(|a| a.port()), Some(9100));
        assert_eq!(config.cors, CorsOrigins::Any);
    }

    #[test]
    fn empty_redis_url_means_in_process_cache() {
        let config = parse(&["--redis-url", ""]).expect("valid");
        assert!(config.redis.is_none());
        let config = parse(&["--redis-url", "redis://127.0.0.1:6379"]).expect("valid");
        assert_eq!(config.redis.map(|r| r.key_prefix), Some("akig".to_owned()));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = parse(&["--redis-url", "http://nope"]).unwrap_err();
        assert_eq!(err.setting, "REDIS_URL");
        let err = parse(&["--request-timeout-secs", "0"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_REQUEST_TIMEOUT_SECS");
        let err = parse(&["--cors-origins", "example.com"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_CORS_ORIGINS");
        assert_refused(&[
            ("--max-offline-days=0", "AKIG_MAX_OFFLINE_DAYS"),
            ("--promise-horizon-days=0", "AKIG_PROMISE_HORIZON_DAYS"),
            ("--far-visit-meters=-5", "AKIG_FAR_VISIT_METERS"),
            ("--missions-max-per-agent=51", "AKIG_MISSIONS_MAX_PER_AGENT"),
            ("--missions-schedule=6pm", "AKIG_MISSIONS_SCHEDULE"),
            ("--max-message-bytes=1023", "AKIG_MAX_MESSAGE_BYTES"),
            ("--rate-user-per-sec=0", "AKIG_RATE_USER_PER_SEC"),
            ("--rate-user-burst=0", "AKIG_RATE_USER_BURST"),
            ("--rate-ip-burst=0", "AKIG_RATE_IP_BURST"),
            ("--rate-stream-burst=0", "AKIG_RATE_STREAM_BURST"),
            (
                "--access-token-ttl-secs=1209601",
                "AKIG_ACCESS_TOKEN_TTL_SECS",
            ),
        ]);
        for off in ["off", "OFF", " Off "] {
            let arg = format!("--missions-schedule={off}");
            let config = parse(&[&arg]).expect("off in any case");
            assert_eq!(config.collections.missions.schedule, None, "{off}");
        }
        let err = parse(&[
            "--listen",
            "0.0.0.0:9000",
            "--metrics-listen",
            "0.0.0.0:9000",
        ])
        .unwrap_err();
        assert_eq!(err.setting, "AKIG_METRICS_LISTEN");
    }

    #[test]
    fn database_url_must_be_postgres() {
        let args = DatabaseArgs {
            database_url: "mysql://x".into(),
            db_max_connections: 5,
            db_acquire_timeout_secs: 5,
        };
        assert_eq!(args.parse().unwrap_err().setting, "DATABASE_URL");
    }

    #[test]
    fn cors_list_is_parsed() {
        let config = parse(&["--cors-origins", "https://a.example,https://b.example"]).unwrap();
        assert!(matches!(config.cors, CorsOrigins::List(ref l) if l.len() == 2));
    }
}
