//! Every metric the server exports: its name, and its description for the Prometheus endpoint.
//!
//! Decisions:
//! - Names live here and nowhere else: code records with `metrics::counter!(NAME, ..)` using
//!   these constants, so a metric cannot be described without existing or the reverse.
//! - `grpc_server_*` follow the go-grpc-prometheus names dashboards already know; ours start
//!   with `akig_`.
//! - Labels are bounded: gRPC method names come from the descriptor sets (unknown paths share
//!   one label), jobs and cache kinds are fixed strings; sites (by code) and agents (by
//!   username) are as many as the business has, a few hundred at most.
//! - Business gauges are computed by a scheduled job (`jobs::gauges`) in every replica, never
//!   on a scrape: a scrape reads numbers in memory. Every replica exports the same figures;
//!   dashboards and alerts take `max` over instances.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter: RPCs started, by `grpc_service`, `grpc_method`, `grpc_type`.
pub const GRPC_SERVER_STARTED: &str = "grpc_server_started_total";
/// Counter: RPCs completed, by `grpc_service`, `grpc_method`, `grpc_type`, `grpc_code`.
pub const GRPC_SERVER_HANDLED: &str = "grpc_server_handled_total";
/// Histogram (seconds): from request to end of response, by service, method and type.
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// Gauge: calls and streams open now, by `grpc_type`.
pub const GRPC_SERVER_IN_FLIGHT: &str = "grpc_server_in_flight";
/// Counter: handler panics answered with INTERNAL.
pub const GRPC_SERVER_PANICS: &str = "grpc_server_panics_total";
/// Gauge: 1 when PostgreSQL answered the last health probe.
pub const DB_UP: &str = "akig_database_up";
/// Gauge: 1 while Redis is connected.
pub const REDIS_UP: &str = "akig_redis_up";
/// Gauge: 1 while the read cache hears the writes' announcements (and so holds versions
/// between reads, ADR 0017).
pub const CACHE_ANNOUNCEMENTS_UP: &str = "akig_cache_announcements_up";
/// Counter: cache look-ups, by `kind` (the key's first segment, e.g. `rbac`, or `standing`)
/// and `result` (hit, miss).
pub const CACHE_REQUESTS: &str = "akig_cache_requests_total";
/// Counter: calls refused and stream messages delayed, by `limit` (user, ip, stream).
pub const RATE_LIMITED: &str = "akig_rate_limited_total";
/// Counter: idempotent writes, by `method` and `outcome` (executed, replayed, failed,
/// mismatch, in_progress).
pub const IDEMPOTENT_CALLS: &str = "akig_idempotent_calls_total";
/// Gauge (Unix seconds): when each background job last ran to completion, by `job`. An alert
/// on its age catches a job that keeps failing or has stopped.
pub const JOB_LAST_SUCCESS: &str = "akig_job_last_success_timestamp_seconds";
/// Counter: background job runs that failed, by `job`.
pub const JOB_FAILURES: &str = "akig_job_failures_total";
/// Counter: route searches ended, by `rpc` (optimize_route, route_session) and `outcome`:
/// finished (budget spent or no further progress), cancelled (the client went away or a newer
/// update replaced the search), busy (refused: every slot taken).
pub const ROUTE_SEARCHES: &str = "akig_route_searches_total";
/// Gauge: route search slots taken now.
pub const ROUTE_SEARCHES_RUNNING: &str = "akig_route_searches_running";
/// Gauge: live streams open now, by `kind` (agent_session, watch_agents).
pub const LIVE_STREAMS_OPEN: &str = "akig_live_streams_open";
/// Counter: agent positions received (before validation).
pub const POSITIONS_RECEIVED: &str = "akig_positions_received_total";
/// Counter: agent positions stored (resends already stored are not counted).
pub const POSITIONS_PERSISTED: &str = "akig_positions_persisted_total";
/// Counter: agent positions refused, by `reason` (`domain::position::RejectReason::label`).
pub const POSITIONS_REJECTED: &str = "akig_positions_rejected_total";
/// Histogram: positions per ingest transaction.
pub const POSITIONS_INGEST_BATCH_SIZE: &str = "akig_positions_ingest_batch_size";
/// Histogram (seconds): duration of one ingest transaction.
pub const POSITIONS_INGEST_SECONDS: &str = "akig_positions_ingest_seconds";
/// Histogram (seconds): from the server's receipt of a position to its send to a watcher.
pub const WATCH_LAG_SECONDS: &str = "akig_watch_lag_seconds";
/// Counter: watchers that fell behind and got a resync.
pub const WATCH_RESYNCS: &str = "akig_watch_resyncs_total";

/// Gauge: streaming calls open now, by `kind` (the streaming method, e.g. `RouteSession`).
pub const STREAMS_OPEN: &str = "akig_streams_open";
/// Gauge: connections of the PostgreSQL pool, by `state` (`in_use`, `idle`), sampled every
/// [`crate::jobs::gauges::POOL_EVERY`].
pub const DB_POOL_CONNECTIONS: &str = "akig_db_pool_connections";
/// Gauge: most connections the pool may open (`AKIG_DB_MAX_CONNECTIONS`).
pub const DB_POOL_MAX: &str = "akig_db_pool_max_connections";
/// Gauge (seconds): how long the pool sampler waited for a connection at its last sample: the
/// wait a call meets when every connection is in use (0.000x s when one is idle).
pub const DB_POOL_WAIT_SECONDS: &str = "akig_db_pool_wait_seconds";
/// Gauge: tenants with at least one charge past its due date and not fully paid, by `site`
/// (site code); the site figures ListSites shows, refreshed by the business-gauge job.
pub const ARREARS_TENANTS: &str = "akig_arrears_tenants";
/// Gauge (GNF): outstanding on charges past their due date, by `site`.
pub const ARREARS_GNF: &str = "akig_arrears_gnf";
/// Gauge: charges more than 60 days past their due date and not fully paid, by `site`.
pub const ARREARS_OVER_60_DAYS: &str = "akig_arrears_charges_over_60_days";
/// Gauge: 1 for a site flagged sensitive, 0 otherwise, by `site`.
pub const SITE_SENSITIVE: &str = "akig_site_sensitive";
/// Gauge (GNF): payments collected today (Africa/Conakry day, net of reversals), by `site`.
pub const COLLECTED_TODAY_GNF: &str = "akig_collected_today_gnf";
/// Gauge: promises by `status` (pending, kept, partially_kept, broken, cancelled) as readers
/// show them today (`promise_derived_status`).
pub const PROMISES: &str = "akig_promises";
/// Gauge (points): each agent's score today, by `agent` (username).
pub const AGENT_SCORE_TODAY: &str = "akig_agent_score_today";
/// Gauge (ratio 0-1): share of the charges due in the last 365 days (due date before today)
/// that were paid in full by their due date, by `site`.
pub const PUNCTUALITY_RATIO: &str = "akig_punctuality_ratio";

/// Every metric this module names, for the checks that dashboards and alert rules only use
/// series the server exports (a histogram also exports `_bucket`, `_sum` and `_count`).
pub const ALL: [&str; 27] = [
    GRPC_SERVER_STARTED,
    GRPC_SERVER_HANDLED,
    GRPC_SERVER_HANDLING_SECONDS,
    GRPC_SERVER_IN_FLIGHT,
    GRPC_SERVER_PANICS,
    DB_UP,
    REDIS_UP,
    CACHE_ANNOUNCEMENTS_UP,
    CACHE_REQUESTS,
    RATE_LIMITED,
    IDEMPOTENT_CALLS,
    JOB_LAST_SUCCESS,
    JOB_FAILURES,
    ROUTE_SEARCHES,
    ROUTE_SEARCHES_RUNNING,
    STREAMS_OPEN,
    DB_POOL_CONNECTIONS,
    DB_POOL_MAX,
    DB_POOL_WAIT_SECONDS,
    ARREARS_TENANTS,
    ARREARS_GNF,
    ARREARS_OVER_60_DAYS,
    SITE_SENSITIVE,
    COLLECTED_TODAY_GNF,
    PROMISES,
    AGENT_SCORE_TODAY,
    PUNCTUALITY_RATIO,
];

/// The histograms of [`ALL`]: each is exported as `<name>_bucket`, `<name>_sum` and
/// `<name>_count`.
pub const HISTOGRAMS: [&str; 1] = [GRPC_SERVER_HANDLING_SECONDS];

/// Buckets of [`GRPC_SERVER_HANDLING_SECONDS`], in seconds.
pub const HANDLING_SECONDS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Describes every metric to the installed recorder (the Prometheus `# HELP` lines), and
/// registers at zero the series whose labels are known in advance ([`register_zeros`]).
pub fn describe() {
    describe_counter!(GRPC_SERVER_STARTED, "RPCs started, by service and method.");
    describe_counter!(
        GRPC_SERVER_HANDLED,
        "RPCs completed, by service, method and gRPC status code."
    );
    describe_histogram!(
        GRPC_SERVER_HANDLING_SECONDS,
        Unit::Seconds,
        "Time from request to end of response (whole stream for streaming RPCs)."
    );
    describe_gauge!(GRPC_SERVER_IN_FLIGHT, "RPCs and streams open now, by kind.");
    describe_counter!(GRPC_SERVER_PANICS, "Handler panics answered with INTERNAL.");
    describe_gauge!(DB_UP, "1 when PostgreSQL answered the last health probe.");
    describe_gauge!(
        REDIS_UP,
        "1 when Redis is connected, 0 when on the in-process cache."
    );
    describe_gauge!(
        CACHE_ANNOUNCEMENTS_UP,
        "1 while the read cache hears the writes' announcements and holds versions between reads."
    );
    describe_counter!(
        CACHE_REQUESTS,
        "Cache look-ups, by kind and result (hit/miss)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Calls refused and stream messages delayed by a rate limit, by limit (user, ip, stream)."
    );
    describe_counter!(
        IDEMPOTENT_CALLS,
        "Writes carrying a request_id, by method and outcome (executed, replayed, failed, \
         mismatch, in_progress)."
    );
    describe_gauge!(
        JOB_LAST_SUCCESS,
        Unit::Seconds,
        "When each background job last completed (Unix time), by job."
    );
    describe_counter!(JOB_FAILURES, "Failed background job runs, by job.");
    describe_counter!(
        ROUTE_SEARCHES,
        "Route searches ended, by rpc and outcome (finished, cancelled, busy)."
    );
    describe_gauge!(ROUTE_SEARCHES_RUNNING, "Route search slots taken now.");
    describe_gauge!(STREAMS_OPEN, "Streaming calls open now, by kind (method).");
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "PostgreSQL pool connections, by state (in_use, idle)."
    );
    describe_gauge!(
        DB_POOL_MAX,
        "Most connections the PostgreSQL pool may open."
    );
    describe_gauge!(
        DB_POOL_WAIT_SECONDS,
        Unit::Seconds,
        "How long the pool sampler last waited for a connection."
    );
    describe_gauge!(
        ARREARS_TENANTS,
        "Tenants with a charge past its due date and not fully paid, by site."
    );
    describe_gauge!(
        ARREARS_GNF,
        "GNF outstanding on charges past their due date, by site."
    );
    describe_gauge!(
        ARREARS_OVER_60_DAYS,
        "Charges more than 60 days past their due date and not fully paid, by site."
    );
    describe_gauge!(SITE_SENSITIVE, "1 for a site flagged sensitive, by site.");
    describe_gauge!(
        COLLECTED_TODAY_GNF,
        "GNF collected today (Africa/Conakry), net of reversals, by site."
    );
    describe_gauge!(PROMISES, "Promises to pay by status as shown today.");
    describe_gauge!(AGENT_SCORE_TODAY, "Each agent's score today, by agent.");
    describe_gauge!(
        PUNCTUALITY_RATIO,
        "Share of the charges due in the last 365 days paid in full by their due date, by site."
    );
    describe_gauge!(LIVE_STREAMS_OPEN, "Live streams open now, by kind.");
    describe_counter!(POSITIONS_RECEIVED, "Agent positions received.");
    describe_counter!(POSITIONS_PERSISTED, "Agent positions stored.");
    describe_counter!(POSITIONS_REJECTED, "Agent positions refused, by reason.");
    describe_histogram!(
        POSITIONS_INGEST_BATCH_SIZE,
        "Positions per ingest transaction."
    );
    describe_histogram!(
        POSITIONS_INGEST_SECONDS,
        Unit::Seconds,
        "Duration of one ingest transaction."
    );
    describe_histogram!(
        WATCH_LAG_SECONDS,
        Unit::Seconds,
        "From the receipt of a position to its send to a watcher."
    );
    describe_counter!(WATCH_RESYNCS, "Watchers that fell behind and got a resync.");
    register_zeros();
}

/// Registers at zero the counters and gauges whose labels are known in advance, so that their
/// series exist from the start: a rate or an alert over them sees 0, not an absent series.
/// Job failures are registered by each job when it starts (`jobs::run_every`).
fn register_zeros() {
    ::metrics::counter!(GRPC_SERVER_PANICS).increment(0);
    for limit in ["user", "ip", "stream"] {
        ::metrics::counter!(RATE_LIMITED, "limit" => limit).increment(0);
    }
    for rpc in ["optimize_route", "route_session"] {
        for outcome in ["finished", "cancelled", "busy"] {
            ::metrics::counter!(ROUTE_SEARCHES, "rpc" => rpc, "outcome" => outcome).increment(0);
        }
    }
    ::metrics::gauge!(ROUTE_SEARCHES_RUNNING).increment(0.0);
}
