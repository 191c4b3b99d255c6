//! Builds the server — listeners, tower layers, services, background tasks — and runs it until
//! a shutdown signal, then drains calls and streams and closes within the grace period.

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::map_response_body::MapResponseBodyLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::api::{self, SERVICE_NAMES};
use crate::auth::layer::Authenticate;
use crate::auth::roles::RolePermissions;
use crate::auth::standing::{self, StandingCache};
use crate::cache::Cache;
use crate::config::{CorsOrigins, ServeConfig};
use crate::idempotency::Idempotency;
use crate::layers::{self, MethodCatalog, ObserveLayer, PanicToInternal};
use crate::limits::{LoginThrottle, RateLimits};
use crate::proto::v1::{
    auth_service_server::AuthServiceServer, collections_service_server::CollectionsServiceServer,
    dashboard_service_server::DashboardServiceServer, geo_service_server::GeoServiceServer,
    missions_service_server::MissionsServiceServer,
};
use crate::redis::Redis;
use crate::state::AppState;
use crate::store::sessions;
use crate::{client_ip, db, proto, telemetry};

/// How often PostgreSQL is probed to drive the health status.
const DB_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Ended sessions are deleted this long after their last access token can have expired.
const SESSION_PURGE_MARGIN: Duration = Duration::from_secs(24 * 3600);
const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// What the background tasks and the pool get to close when the calls used the whole grace.
const CLOSE_AT_LEAST: Duration = Duration::from_millis(250);

/// Every descriptor set the server serves: ours, health and reflection, and the `google.rpc`
/// error details (ErrorInfo, BadRequest, RetryInfo, ...) so that reflection clients such as
/// grpcurl print them decoded.
pub fn descriptor_sets() -> [&'static [u8]; 5] {
    [
        proto::FILE_DESCRIPTOR_SET,
        tonic_types::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

pub struct Application {
    config: ServeConfig,
    state: AppState,
    redis: Option<Redis>,
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    writers: crate::app::positions::Writers,
}

impl Application {
    /// Binds the listeners (port 0 picks a free port) with a pool that connects lazily.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let pool = db::lazy_pool(&config.database);
        Self::build_with_pool(config, pool).await
    }

    pub async fn build_with_pool(config: ServeConfig, pool: PgPool) -> anyhow::Result<Self> {
        let redis = config.redis.as_ref().map(Redis::open).transpose()?;
        let cache = Cache::with_config(redis.clone(), config.cache.clone());
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (AKIG_LISTEN): {e}", config.listen)
        })?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen on {addr} (AKIG_METRICS_LISTEN): {e}")
            })?),
            None => None,
        };
        let live = crate::live::LiveHub::new(pool.clone(), config.live.clone(), redis.clone());
        let mut position_rules = config.live.positions;
        position_rules.max_future_skew = config.collections.max_clock_skew;
        let (ingest, writers) = crate::app::positions::Ingest::new(
            pool.clone(),
            live.clone(),
            position_rules,
            config.live.arrival,
            config.live.ingest_buffer,
            config.live.ingest_max_rows,
            config.live.ingest_writers,
        );
        let state = AppState {
            live,
            ingest,
            roles: RolePermissions::new(pool.clone(), cache.clone()),
            standing: StandingCache::new(pool.clone(), redis.clone()),
            idempotency: Idempotency::new(
                pool.clone(),
                config.collections.idempotency_ttl,
                crate::idempotency::DEFAULT_STALE_AFTER,
            ),
            collections: config.collections.clone(),
            route: config.route.clone(),
            login_throttle: LoginThrottle::default().shared_through(redis.clone()),
            rate_limits: RateLimits::shared_through(&config.rate_limits, redis.clone()),
            auth: config.auth.clone(),
            pool,
            cache,
            shutdown: CancellationToken::new(),
        };
        Ok(Self {
            config,
            state,
            redis,
            listener,
            local_addr,
            metrics_listener,
            writers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The handles the services get (tests reach the caches through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token starts a graceful shutdown (what SIGTERM does in `akig serve`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            config,
            state,
            redis,
            listener,
            local_addr,
            metrics_listener,
            writers,
        } = self;
        let shutdown = state.shutdown.clone();
        // Cancelled once health says NOT_SERVING: stop accepting and end open streams.
        let drain = CancellationToken::new();
        let catalog = MethodCatalog::from_descriptor_sets(&descriptor_sets())?;
        let auth = Authenticate::new(
            state.auth.keys.clone(),
            state.pool.clone(),
            state.standing.clone(),
            state.roles.clone(),
            catalog.clone(),
            state.rate_limits.clone(),
            state.cache.clone(),
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;

        let mut background = JoinSet::new();
        background.spawn(watch_database(
            state.pool.clone(),
            health.clone(),
            shutdown.clone(),
        ));
        match redis {
            Some(redis) => {
                background.spawn(redis.run_link(shutdown.clone()));
                background.spawn(state.cache.clone().run_announcements(shutdown.clone()));
            }
            None => {
                tracing::warn!(
                    "REDIS_URL unset: this server runs alone (cache, limits, standing and live \
                     positions are not shared with other replicas)"
                );
                metrics::gauge!(crate::metrics::REDIS_UP).set(0.0);
            }
        }
        background.spawn(state.standing.clone().run_listener(shutdown.clone()));
        background.spawn(state.rate_limits.clone().run_purge(shutdown.clone()));
        background.spawn(state.login_throttle.clone().run_purge(shutdown.clone()));
        background.spawn(
            state
                .idempotency
                .clone()
                .run_purge(shutdown.clone(), crate::jobs::PURGE_EVERY),
        );
        let pool = state.pool.clone();
        let grace = state.auth.access_token_ttl + SESSION_PURGE_MARGIN;
        background.spawn(crate::jobs::run_every(
            shutdown.clone(),
            crate::jobs::Schedule::every(crate::jobs::PURGE_EVERY),
            "session_purge",
            move || {
                let pool = pool.clone();
                async move { sessions::purge_ended_families(&pool, grace, 1_000).await }
            },
        ));
        background.spawn(crate::jobs::gauges::run_pool_sampler(
            state.pool.clone(),
            shutdown.clone(),
        ));
        background.spawn(crate::jobs::gauges::run_business_gauges(
            state.pool.clone(),
            shutdown.clone(),
            crate::jobs::gauges::BUSINESS_EVERY,
        ));
        background.spawn(crate::jobs::promises::run_promise_job(
            state.pool.clone(),
            shutdown.clone(),
            crate::jobs::promises::DEFAULT_EVERY,
        ));
        background.spawn(crate::jobs::alerts::run_alert_job(
            state.pool.clone(),
            state.cache.clone(),
            shutdown.clone(),
            state.collections.alerts.clone(),
        ));
        background.spawn(crate::jobs::missions::run_mission_job(
            state.pool.clone(),
            state.cache.clone(),
            shutdown.clone(),
            state.collections.missions.clone(),
            state.route.speeds.of(state.route.default_travel_mode),
        ));
        background.spawn(state.live.clone().run(shutdown.clone()));
        background.spawn(writers.run(shutdown.clone()));
        background.spawn(crate::jobs::partitions::run_partition_job(
            state.pool.clone(),
            shutdown.clone(),
            state.live.config().partitions_ahead_days,
            state.live.config().retention_days,
        ));
        if let Some(listener) = metrics_listener {
            background.spawn(telemetry::serve_metrics(
                listener,
                telemetry::metrics_handle(),
                shutdown.clone(),
            ));
        }

        let reflection_v1 = reflection_builder().build_v1()?;
        // grpcurl and older tools still ask the v1alpha service.
        let reflection_v1alpha = reflection_builder().build_v1alpha()?;

        let max = config.max_message_bytes;
        macro_rules! limited {
            ($server:ident, $api:expr) => {
                $server::new($api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max)
            };
        }

        let layers = tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new(SharedClassifier::new(server_failures_only())).make_span_with(
                    |request: &http::Request<_>| {
                        let request_id = request
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!("rpc", path = %request.uri().path(), request_id)
                    },
                ),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(cors_layer(&config.cors))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(ObserveLayer::new(catalog, drain.clone()))
            // From here on a refusal is an `Err(Status)`; these two turn it into its answer.
            .layer(MapResponseBodyLayer::new(tonic::body::Body::new))
            .layer(tonic::service::RecoverErrorLayer::new())
            .map_err(layers::refusal_status)
            .load_shed()
            .concurrency_limit(config.max_concurrent_requests)
            .layer(layers::DeadlineLayer::new(config.request_timeout))
            .layer(layers::SpawnLayer::inline(&[
                "/akig.v1.GeoService/OptimizeRoute",
            ]))
            .layer(client_ip::layer(&config.rate_limits.trusted_proxies))
            .layer(auth.layer())
            .layer(layers::address_limit(state.rate_limits.clone()))
            .layer(MapResponseBodyLayer::new(tonic::body::Body::new))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                PanicToInternal,
            ))
            .into_inner();

        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = Server::builder()
            .accept_http1(true)
            .http2_keepalive_interval(Some(config.http2_keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(layers)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(standing::sync_after_writes(
                state.standing.clone(),
                limited!(AuthServiceServer, api::AuthApi::new(state.clone())),
            ))
            .add_service(limited!(
                CollectionsServiceServer,
                api::CollectionsApi::new(state.clone())
            ))
            .add_service(limited!(
                MissionsServiceServer,
                api::MissionsApi::new(state.clone())
            ))
            .add_service(limited!(GeoServiceServer, api::GeoApi::new(state.clone())))
            .add_service(limited!(
                DashboardServiceServer,
                api::DashboardApi::new(state.clone())
            ));

        tracing::info!(%local_addr, "serving gRPC and gRPC-web");
        let stopping = drain.clone();
        let serve = server.serve_with_incoming_shutdown(incoming, async move {
            stopping.cancelled().await;
            tracing::info!("shutting down: refusing new connections, draining calls");
        });
        tokio::pin!(serve);

        // The grace bounds the whole exit: draining the calls, then the background tasks and
        // the pool, which calls stuck on an unreachable database would otherwise hold open.
        let mut deadline = tokio::time::Instant::now() + config.shutdown_grace;
        let result = tokio::select! {
            result = &mut serve => result.map_err(anyhow::Error::from),
            () = shutdown.cancelled() => {
                deadline = tokio::time::Instant::now() + config.shutdown_grace;
                set_health(&health, ServingStatus::NotServing).await;
                drain.cancel();
                match tokio::time::timeout_at(deadline, &mut serve).await {
                    Ok(result) => result.map_err(anyhow::Error::from),
                    Err(_) => {
                        tracing::warn!(
                            grace = ?config.shutdown_grace,
                            "calls still open after the grace period; closing them"
                        );
                        Ok(())
                    }
                }
            }
        };
        shutdown.cancel();
        let close = async {
            while background.join_next().await.is_some() {}
            state.pool.close().await;
        };
        let close_by = deadline.max(tokio::time::Instant::now() + CLOSE_AT_LEAST);
        if tokio::time::timeout_at(close_by, close).await.is_err() {
            tracing::warn!(
                "background tasks or database connections still busy at the end of the grace \
                 period; abandoned"
            );
            background.abort_all();
        }
        tracing::info!("stopped");
        result
    }
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    descriptor_sets().into_iter().fold(
        tonic_reflection::server::Builder::configure(),
        |builder, set| builder.register_encoded_file_descriptor_set(set),
    )
}

/// The trace layer logs a call as failed (at ERROR) only for codes that say the server or
/// what it depends on failed. A client's bad input, missing rights or exhausted quota are
/// answers, not incidents: they are counted by code in the metrics, not paged on.
fn server_failures_only() -> GrpcErrorsAsFailures {
    [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Unauthenticated,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    )
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(tower_http::cors::Any)
        .expose_headers([
            http::HeaderName::from_static("grpc-status"),
            http::HeaderName::from_static("grpc-message"),
            http::HeaderName::from_static("grpc-status-details-bin"),
            http::HeaderName::from_static("x-request-id"),
            http::HeaderName::from_static("x-cache"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for service in SERVICE_NAMES {
        health.set_service_status(service, status).await;
    }
}

/// Drives the health status from PostgreSQL's reachability: the server is of no use without it.
async fn watch_database(pool: PgPool, health: HealthReporter, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(DB_PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let reachable = db::ping(&pool, DB_PROBE_TIMEOUT).await;
        metrics::gauge!(crate::metrics::DB_UP).set(if reachable { 1.0 } else { 0.0 });
        // Before SERVING: a schema the binary's migrations are not all applied to would fail
        // every call.
        let up = reachable && (serving || schema_is_served(&pool).await);
        if up != serving && !shutdown.is_cancelled() {
            serving = up;
            if up {
                tracing::info!("database reachable: SERVING");
                set_health(&health, ServingStatus::Serving).await;
            } else {
                tracing::error!("database unreachable: NOT_SERVING");
                set_health(&health, ServingStatus::NotServing).await;
            }
        }
    }
}

/// Whether the schema may be served; says why not (once per probe that finds it so).
async fn schema_is_served(pool: &PgPool) -> bool {
    match tokio::time::timeout(DB_PROBE_TIMEOUT, db::schema_state(pool)).await {
        Ok(Ok(state)) => match state.refusal() {
            None => true,
            Some(refusal) => {
                tracing::error!("{refusal}; NOT_SERVING");
                false
            }
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use tower_http::classify::{ClassifiedResponse, ClassifyResponse};

    use super::*;

    fn is_failure(code: tonic::Code) -> bool {
        let response = http::Response::builder()
            .header("grpc-status", (code as i32).to_string())
            .body(())
            .expect("response");
        match server_failures_only().classify_response(&response) {
            ClassifiedResponse::Ready(result) => result.is_err(),
            ClassifiedResponse::RequiresEos(_) => panic!("a trailers-only status is final"),
        }
    }

    #[test]
    fn only_server_side_codes_are_logged_as_failures() {
        use tonic::Code;
        for code in [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert!(is_failure(code), "{code:?}");
        }
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::Unauthenticated,
        ] {
            assert!(!is_failure(code), "{code:?}");
        }
    }
}
