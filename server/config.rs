//! Typed configuration, read from CLI flags and `AKIG_*` / standard environment variables, and
//! checked once at start so a bad value stops the process with a message naming the setting.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use sqlx::postgres::PgConnectOptions;

use crate::auth::tokens::TokenKeys;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
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

/// Business rules of collections.
#[derive(Debug, Clone, Args)]
pub struct CollectionsArgs {
    /// Upper bounds (days overdue) of the first three aging buckets; the fourth is beyond.
    #[arg(
        long,
        env = "AKIG_AGING_BUCKETS",
        value_delimiter = ',',
        default_value = "30,60,90"
    )]
    pub aging_buckets: Vec<u32>,
    /// A visit farther than this from the tenant's home (metres) is flagged.
    #[arg(long, env = "AKIG_FAR_VISIT_METERS", default_value_t = 200.0)]
    pub far_visit_meters: f64,
    /// How far in the future a device clock may be, in seconds.
    #[arg(long, env = "AKIG_MAX_CLOCK_SKEW_SECS", default_value_t = 300)]
    pub max_clock_skew_secs: u64,
    /// Oldest action accepted from a phone that was offline, in days.
    #[arg(long, env = "AKIG_MAX_OFFLINE_DAYS", default_value_t = 30)]
    pub max_offline_days: u64,
    /// Latest promised date accepted, in days after the call or visit.
    #[arg(long, env = "AKIG_PROMISE_HORIZON_DAYS", default_value_t = 90)]
    pub promise_horizon_days: u32,
    /// How long a request_id is remembered, in days (at least the offline bound).
    #[arg(long, env = "AKIG_IDEMPOTENCY_TTL_DAYS", default_value_t = 30)]
    pub idempotency_ttl_days: u64,

    #[command(flatten)]
    pub missions: MissionsArgs,

    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// The scheduled alert rules (`domain::alerts`): how often they run and their thresholds.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Seconds between two evaluations of the alert rules; 0: no scheduled evaluation.
    #[arg(long, env = "AKIG_ALERT_EVERY_SECS", default_value_t = 300)]
    pub alert_every_secs: u64,
    /// Critical arrears: a site with more than this many charges over 60 days overdue.
    #[arg(
        long,
        env = "AKIG_ALERT_CRITICAL_OVERDUE_CHARGES",
        default_value_t = 50
    )]
    pub alert_critical_overdue_charges: u32,
    /// Broken-promise spike: more than this many promises of a site broken today...
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES", default_value_t = 5)]
    pub alert_broken_promises: u32,
    /// ... and at least this many times the daily mean of the days before (0: the count alone).
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES_FACTOR", default_value_t = 2.0)]
    pub alert_broken_promises_factor: f64,
    /// Days before today that the daily mean of broken promises covers (1..=90).
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES_DAYS", default_value_t = 7)]
    pub alert_broken_promises_days: u32,
    /// Africa/Conakry working hours of the agent rules, `HH:MM-HH:MM`.
    #[arg(long, env = "AKIG_ALERT_WORK_HOURS", default_value = "08:00-18:00")]
    pub alert_work_hours: String,
    /// Working days of the agent rules (mon..sun), comma separated.
    #[arg(
        long,
        env = "AKIG_ALERT_WORK_DAYS",
        value_delimiter = ',',
        default_value = "mon,tue,wed,thu,fri,sat"
    )]
    pub alert_work_days: Vec<String>,
    /// Agent inactive: nothing received from the agent for this many minutes of working hours.
    #[arg(long, env = "AKIG_ALERT_INACTIVE_MINUTES", default_value_t = 90)]
    pub alert_inactive_minutes: u32,
    /// Low score: today's score below this (0: off)...
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_TODAY", default_value_t = 3)]
    pub alert_low_score_today: u32,
    /// ... from this Africa/Conakry time on (HH:MM).
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_FROM", default_value = "14:00")]
    pub alert_low_score_from: String,
    /// Low score: the score of the 7 days before today below this (0: off).
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_WEEK", default_value_t = 15)]
    pub alert_low_score_week: u32,
    /// Sensitive site: more than this many tenants in arrears.
    #[arg(long, env = "AKIG_ALERT_SENSITIVE_TENANTS", default_value_t = 5)]
    pub alert_sensitive_tenants: u32,
    /// Far visits: more than this many far-away visits of an agent on a site today.
    #[arg(long, env = "AKIG_ALERT_FAR_VISITS", default_value_t = 2)]
    pub alert_far_visits: u32,
}

/// Mission planning.
#[derive(Debug, Clone, Args)]
pub struct MissionsArgs {
    /// Most missions per agent and day when GenerateMissions does not say (1..50).
    #[arg(long, env = "AKIG_MISSIONS_MAX_PER_AGENT", default_value_t = 12)]
    pub missions_max_per_agent: u32,
    /// Outstanding (GNF) at or above which a tenant is a candidate by arrears.
    #[arg(
        long,
        env = "AKIG_MISSIONS_MIN_OUTSTANDING_GNF",
        default_value_t = 50_000
    )]
    pub missions_min_outstanding_gnf: i64,
    /// A tenant contacted in the last this many days is not planned (0: no such rule).
    #[arg(long, env = "AKIG_MISSIONS_RECENT_CONTACT_DAYS", default_value_t = 3)]
    pub missions_recent_contact_days: u32,
    /// Africa/Conakry time (HH:MM) of the daily scheduled generation, which plans the next
    /// day; "off": no scheduled run. Also the cut-off after which a GenerateMissions without a
    /// date plans tomorrow.
    #[arg(long, env = "AKIG_MISSIONS_SCHEDULE", default_value = "18:00")]
    pub missions_schedule: String,
}

/// Token settings.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Token keys as `kid=base64secret` pairs, comma separated (secrets of 32 bytes or more).
    /// Several keys let tokens signed with an older key verify during a rotation. Unset: a
    /// random key per process (development only: tokens die with the process).
    #[arg(long, env = "AKIG_JWT_KEYS", hide_env_values = true)]
    pub jwt_keys: Option<String>,

    /// The `kid` of the key that signs new tokens (default: the only key, when there is one).
    #[arg(long, env = "AKIG_JWT_SIGNING_KID")]
    pub jwt_signing_kid: Option<String>,

    #[arg(long, env = "AKIG_JWT_ISSUER", default_value = "akig")]
    pub jwt_issuer: String,

    #[arg(long, env = "AKIG_JWT_AUDIENCE", default_value = "akig-api")]
    pub jwt_audience: String,

    /// Lifetime of an access token, in seconds (24 h).
    #[arg(long, env = "AKIG_ACCESS_TOKEN_TTL_SECS", default_value_t = 24 * 3600)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token from its issue, in seconds (14 days).
    #[arg(long, env = "AKIG_REFRESH_TOKEN_TTL_SECS", default_value_t = 14 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Absolute lifetime of a session (a refresh-token family) from login, in seconds (30 days).
    #[arg(long, env = "AKIG_SESSION_MAX_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_max_ttl_secs: u64,

    /// A refresh token reused within this many seconds of its rotation is taken as a retry
    /// after a lost response and gets the same new pair; later, as theft.
    #[arg(long, env = "AKIG_REFRESH_GRACE_SECS", default_value_t = 30)]
    pub refresh_grace_secs: u64,
}

/// Rate limits (GCRA): a sustained rate per second and a burst.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    #[arg(long, env = "AKIG_RATE_USER_PER_SEC", default_value_t = 20)]
    pub rate_user_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_USER_BURST", default_value_t = 40)]
    pub rate_user_burst: u32,
    #[arg(long, env = "AKIG_RATE_IP_PER_SEC", default_value_t = 50)]
    pub rate_ip_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_IP_BURST", default_value_t = 100)]
    pub rate_ip_burst: u32,
    /// Messages per second one user may send on streams (positions, heartbeats).
    #[arg(long, env = "AKIG_RATE_STREAM_PER_SEC", default_value_t = 10)]
    pub rate_stream_per_sec: u32,
    #[arg(long, env = "AKIG_RATE_STREAM_BURST", default_value_t = 50)]
    pub rate_stream_burst: u32,
    /// Reverse proxies (CIDR list) whose `x-forwarded-for` header is believed.
    #[arg(long, env = "AKIG_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
}

/// A setting that cannot work, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// Validated database settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub connect_options: PgConnectOptions,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
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

#[derive(Debug, Clone, PartialEq)]
pub struct CollectionsConfig {
    pub aging_bounds: [u32; 3],
    pub far_visit_meters: f64,
    pub max_clock_skew: Duration,
    pub max_offline_age: Duration,
    pub promise_horizon_days: u32,
    pub idempotency_ttl: Duration,
    pub missions: MissionsConfig,
    pub alerts: AlertConfig,
}

/// Alert rule settings (`AlertArgs`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Interval of the scheduled evaluation; `None`: none.
    pub every: Option<Duration>,
    pub rules: crate::domain::alerts::AlertRules,
}

impl Default for AlertConfig {
    /// The default thresholds, no scheduled evaluation (as `MissionsConfig`'s default: servers
    /// built in tests run no job that writes behind their back).
    fn default() -> Self {
        Self {
            every: None,
            rules: crate::domain::alerts::AlertRules::default(),
        }
    }
}

impl AlertArgs {
    pub fn parse(&self) -> Result<AlertConfig, ConfigError> {
        use chrono::{NaiveTime, Weekday};
        let time = |setting, value: &str| {
            NaiveTime::parse_from_str(value.trim(), "%H:%M")
                .map_err(|_| ConfigError::new(setting, "a local time HH:MM"))
        };
        let (start, end) = self
            .alert_work_hours
            .split_once('-')
            .ok_or_else(|| ConfigError::new("AKIG_ALERT_WORK_HOURS", "HH:MM-HH:MM"))?;
        let (start, end) = (
            time("AKIG_ALERT_WORK_HOURS", start)?,
            time("AKIG_ALERT_WORK_HOURS", end)?,
        );
        if start >= end {
            return Err(ConfigError::new(
                "AKIG_ALERT_WORK_HOURS",
                "the start must be before the end",
            ));
        }
        let mut days = Vec::new();
        for day in self.alert_work_days.iter().map(|d| d.trim()) {
            let day: Weekday = day.parse().map_err(|_| {
                ConfigError::new(
                    "AKIG_ALERT_WORK_DAYS",
                    format!("{day:?} is not a day (mon..sun)"),
                )
            })?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        if !(self.alert_broken_promises_factor.is_finite()
            && self.alert_broken_promises_factor >= 0.0)
        {
            return Err(ConfigError::new(
                "AKIG_ALERT_BROKEN_PROMISES_FACTOR",
                "must be 0 or a positive number",
            ));
        }
        if !(1..=90).contains(&self.alert_broken_promises_days) {
            return Err(ConfigError::new(
                "AKIG_ALERT_BROKEN_PROMISES_DAYS",
                "must be between 1 and 90",
            ));
        }
        if self.alert_inactive_minutes == 0 {
            return Err(ConfigError::new(
                "AKIG_ALERT_INACTIVE_MINUTES",
                "must be at least 1 minute",
            ));
        }
        Ok(AlertConfig {
            every: (self.alert_every_secs > 0).then(|| Duration::from_secs(self.alert_every_secs)),
            rules: crate::domain::alerts::AlertRules {
                critical_overdue_charges: i64::from(self.alert_critical_overdue_charges),
                broken_promises: i64::from(self.alert_broken_promises),
                broken_promises_factor: self.alert_broken_promises_factor,
                broken_promises_days: self.alert_broken_promises_days,
                working_hours: crate::domain::alerts::WorkingHours { start, end, days },
                inactive_minutes: i64::from(self.alert_inactive_minutes),
                low_score_today: i64::from(self.alert_low_score_today),
                low_score_from: time("AKIG_ALERT_LOW_SCORE_FROM", &self.alert_low_score_from)?,
                low_score_week: i64::from(self.alert_low_score_week),
                sensitive_tenants: i64::from(self.alert_sensitive_tenants),
                far_visits: i64::from(self.alert_far_visits),
            },
        })
    }
}

/// Mission planning settings (`MissionsArgs`).
#[derive(Debug, Clone, PartialEq)]
pub struct MissionsConfig {
    /// Default of GenerateMissions' max_visits_per_agent.
    pub max_per_agent: u32,
    pub rules: crate::domain::priority::CandidateRules,
    /// Africa/Conakry local time of the scheduled run (and the cut-off of the default date);
    /// `None`: no scheduled run, and the default date is always today.
    pub schedule: Option<chrono::NaiveTime>,
}

impl Default for MissionsConfig {
    /// 12 visits, 50,000 GNF, 3 days, no scheduled run.
    fn default() -> Self {
        Self {
            max_per_agent: 12,
            rules: crate::domain::priority::CandidateRules::default(),
            schedule: None,
        }
    }
}

impl MissionsArgs {
    pub fn parse(&self) -> Result<MissionsConfig, ConfigError> {
        if !(1..=50).contains(&self.missions_max_per_agent) {
            return Err(ConfigError::new(
                "AKIG_MISSIONS_MAX_PER_AGENT",
                "must be between 1 and 50",
            ));
        }
        if self.missions_min_outstanding_gnf < 1 {
            return Err(ConfigError::new(
                "AKIG_MISSIONS_MIN_OUTSTANDING_GNF",
                "must be at least 1 franc",
            ));
        }
        let schedule = match self.missions_schedule.trim() {
            "off" => None,
            value => Some(
                chrono::NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| {
                    ConfigError::new("AKIG_MISSIONS_SCHEDULE", "a local time HH:MM, or off")
                })?,
            ),
        };
        Ok(MissionsConfig {
            max_per_agent: self.missions_max_per_agent,
            rules: crate::domain::priority::CandidateRules {
                min_outstanding_gnf: self.missions_min_outstanding_gnf,
                recent_contact_days: i64::from(self.missions_recent_contact_days),
            },
            schedule,
        })
    }
}

impl Default for CollectionsConfig {
    fn default() -> Self {
        Self {
            aging_bounds: [30, 60, 90],
            far_visit_meters: 200.0,
            max_clock_skew: Duration::from_secs(300),
            max_offline_age: Duration::from_secs(30 * 24 * 3600),
            promise_horizon_days: 90,
            idempotency_ttl: Duration::from_secs(30 * 24 * 3600),
            missions: MissionsConfig::default(),
            alerts: AlertConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: TokenKeys,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_ttl: Duration,
    pub refresh_grace: Duration,
}

/// A sustained rate and the burst allowed on top of it (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

const fn limit(per_second: u32, burst: u32) -> Limit {
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (Some(per_second), Some(burst)) => Limit { per_second, burst },
        _ => panic!("a limit must be at least 1"),
    }
}

/// Call and stream limits of one server process (`crate::limits`), and the proxies whose
/// `x-forwarded-for` names the client (`crate::client_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Calls of one authenticated user, whatever their address.
    pub per_user: Limit,
    /// Calls from one client address (an IPv6 client is counted per /64).
    pub per_ip: Limit,
    /// Messages one user sends on inbound streams, all their streams together.
    pub stream_messages: Limit,
    /// Reverse proxies whose `x-forwarded-for` is believed. Empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_user: limit(20, 40),
            // Higher than per user: agents on one mobile carrier share its NAT addresses.
            per_ip: limit(50, 100),
            // A phone flushing its offline buffer sends a burst, then is slowed to the rate.
            stream_messages: limit(10, 50),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub key_prefix: String,
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
        if self.db_max_connections == 0 {
            return Err(ConfigError::new(
                "AKIG_DB_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
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
        let positive = |setting, value: u64| {
            if value == 0 {
                Err(ConfigError::new(setting, "must be greater than 0"))
            } else {
                Ok(Duration::from_secs(value))
            }
        };
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::new(
                "AKIG_MAX_CONCURRENT_REQUESTS",
                "must be greater than 0",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::new(
                "AKIG_MAX_MESSAGE_BYTES",
                "must be at least 1024",
            ));
        }
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
            request_timeout: positive("AKIG_REQUEST_TIMEOUT_SECS", self.request_timeout_secs)?,
            max_concurrent_requests: self.max_concurrent_requests,
            max_message_bytes: self.max_message_bytes,
            http2_keepalive: positive("AKIG_HTTP2_KEEPALIVE_SECS", self.http2_keepalive_secs)?,
            shutdown_grace: positive("AKIG_SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs)?,
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

impl AuthArgs {
    pub fn parse(&self) -> Result<AuthConfig, ConfigError> {
        let keys = match self.jwt_keys.as_deref().map(str::trim) {
            None | Some("") => {
                tracing::warn!(
                    "AKIG_JWT_KEYS unset: signing with a random key; tokens end with this process"
                );
                TokenKeys::ephemeral(&self.jwt_issuer, &self.jwt_audience)
            }
            Some(keys) => {
                let signing_kid = match &self.jwt_signing_kid {
                    Some(kid) => kid.clone(),
                    None => match keys.split(',').filter(|p| !p.trim().is_empty()).count() {
                        1 => keys.split('=').next().unwrap_or_default().trim().to_owned(),
                        _ => {
                            return Err(ConfigError::new(
                                "AKIG_JWT_SIGNING_KID",
                                "required when AKIG_JWT_KEYS holds several keys",
                            ));
                        }
                    },
                };
                TokenKeys::parse(keys, &signing_kid, &self.jwt_issuer, &self.jwt_audience)
                    .map_err(|e| ConfigError::new("AKIG_JWT_KEYS", e.to_string()))?
            }
        };
        let seconds = |setting, value: u64| {
            if value == 0 {
                Err(ConfigError::new(setting, "must be greater than 0"))
            } else {
                Ok(Duration::from_secs(value))
            }
        };
        let config = AuthConfig {
            keys,
            access_token_ttl: seconds("AKIG_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs)?,
            refresh_token_ttl: seconds("AKIG_REFRESH_TOKEN_TTL_SECS", self.refresh_token_ttl_secs)?,
            session_max_ttl: seconds("AKIG_SESSION_MAX_TTL_SECS", self.session_max_ttl_secs)?,
            refresh_grace: Duration::from_secs(self.refresh_grace_secs),
        };
        if config.session_max_ttl < config.refresh_token_ttl {
            return Err(ConfigError::new(
                "AKIG_SESSION_MAX_TTL_SECS",
                "must be at least AKIG_REFRESH_TOKEN_TTL_SECS",
            ));
        }
        Ok(config)
    }
}

impl CollectionsArgs {
    pub fn parse(&self) -> Result<CollectionsConfig, ConfigError> {
        let aging_bounds: [u32; 3] = match self.aging_buckets.as_slice() {
            &[a, b, c] if 0 < a && a < b && b < c => [a, b, c],
            _ => {
                return Err(ConfigError::new(
                    "AKIG_AGING_BUCKETS",
                    "three increasing day counts, e.g. 30,60,90",
                ));
            }
        };
        if !(self.far_visit_meters.is_finite() && self.far_visit_meters > 0.0) {
            return Err(ConfigError::new(
                "AKIG_FAR_VISIT_METERS",
                "must be a positive distance",
            ));
        }
        if self.max_offline_days == 0 || self.promise_horizon_days == 0 {
            return Err(ConfigError::new(
                "AKIG_MAX_OFFLINE_DAYS",
                "offline and promise horizons must be at least one day",
            ));
        }
        if self.idempotency_ttl_days < self.max_offline_days {
            return Err(ConfigError::new(
                "AKIG_IDEMPOTENCY_TTL_DAYS",
                "must be at least AKIG_MAX_OFFLINE_DAYS: a phone back after days offline retries",
            ));
        }
        let days = |d: u64| Duration::from_secs(d * 24 * 3600);
        Ok(CollectionsConfig {
            aging_bounds,
            far_visit_meters: self.far_visit_meters,
            max_clock_skew: Duration::from_secs(self.max_clock_skew_secs),
            max_offline_age: days(self.max_offline_days),
            promise_horizon_days: self.promise_horizon_days,
            idempotency_ttl: days(self.idempotency_ttl_days),
            missions: self.missions.parse()?,
            alerts: self.alerts.parse()?,
        })
    }
}

impl RateLimitArgs {
    pub fn parse(&self) -> Result<RateLimitConfig, ConfigError> {
        let limit = |setting, per_second: u32, burst: u32| match (
            NonZeroU32::new(per_second),
            NonZeroU32::new(burst),
        ) {
            (Some(per_second), Some(burst)) => Ok(Limit { per_second, burst }),
            _ => Err(ConfigError::new(
                setting,
                "rates and bursts must be at least 1",
            )),
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new("AKIG_TRUSTED_PROXIES", format!("{p:?} is not a CIDR"))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(RateLimitConfig {
            per_user: limit(
                "AKIG_RATE_USER_PER_SEC",
                self.rate_user_per_sec,
                self.rate_user_burst,
            )?,
            per_ip: limit(
                "AKIG_RATE_IP_PER_SEC",
                self.rate_ip_per_sec,
                self.rate_ip_burst,
            )?,
            stream_messages: limit(
                "AKIG_RATE_STREAM_PER_SEC",
                self.rate_stream_per_sec,
                self.rate_stream_burst,
            )?,
            trusted_proxies,
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

    fn parse(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["akig", "--database-url", "postgres://u@localhost/db"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv)
            .expect("flags parse")
            .serve
            .parse()
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
    fn alert_settings_parse_and_name_the_bad_one() {
        let config = parse(&[]).expect("defaults");
        let alerts = &config.collections.alerts;
        assert_eq!(alerts.every, Some(Duration::from_secs(300)));
        assert_eq!(alerts.rules, crate::domain::alerts::AlertRules::default());
        let config = parse(&[
            "--alert-every-secs",
            "0",
            "--alert-work-days",
            "mon,fri",
            "--alert-work-hours",
            "07:30-16:00",
        ])
        .expect("valid");
        let rules = &config.collections.alerts.rules;
        assert_eq!(config.collections.alerts.every, None);
        assert_eq!(
            rules.working_hours.days,
            vec![chrono::Weekday::Mon, chrono::Weekday::Fri]
        );
        assert_eq!(
            rules.working_hours.start,
            chrono::NaiveTime::from_hms_opt(7, 30, 0).expect("valid")
        );
        for (flag, value, setting) in [
            ("--alert-work-hours", "18:00-08:00", "AKIG_ALERT_WORK_HOURS"),
            ("--alert-work-hours", "8h", "AKIG_ALERT_WORK_HOURS"),
            ("--alert-work-days", "mon,holiday", "AKIG_ALERT_WORK_DAYS"),
            ("--alert-low-score-from", "2pm", "AKIG_ALERT_LOW_SCORE_FROM"),
            (
                "--alert-broken-promises-days",
                "0",
                "AKIG_ALERT_BROKEN_PROMISES_DAYS",
            ),
            (
                "--alert-broken-promises-factor",
                "NaN",
                "AKIG_ALERT_BROKEN_PROMISES_FACTOR",
            ),
            (
                "--alert-inactive-minutes",
                "0",
                "AKIG_ALERT_INACTIVE_MINUTES",
            ),
        ] {
            assert_eq!(
                parse(&[flag, value]).unwrap_err().setting,
                setting,
                "{flag} {value}"
            );
        }
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
