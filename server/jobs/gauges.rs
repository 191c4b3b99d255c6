//! Gauges refreshed on a schedule, so that a scrape of the metrics port only reads numbers in
//! memory: the PostgreSQL pool's connections and wait, every [`POOL_EVERY`]; the business
//! figures (arrears, collected today, promises by status, agent scores, punctuality), every
//! [`BUSINESS_EVERY`], in one read-only snapshot.
//!
//! Decisions:
//! - Every replica runs both jobs: the pool is each replica's own, and the business figures
//!   are a few aggregate queries a minute, cheaper than electing a replica. Every replica then
//!   exports the same business figures; dashboards and alerts take `max` over instances.
//! - The pool's wait is measured, not estimated: the sampler times its own `acquire`, which
//!   queues behind the calls when every connection is in use.
//! - Money gauges are GNF as f64: exact up to 2^53 francs, far above any sum here.

use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{Schedule, run_every};
use crate::app::AppError;
use crate::app::dashboard::{self, SiteOverview};
use crate::domain::conakry_day;
use crate::metrics::{
    AGENT_SCORE_TODAY, ARREARS_GNF, ARREARS_OVER_60_DAYS, ARREARS_TENANTS, COLLECTED_TODAY_GNF,
    DB_POOL_CONNECTIONS, DB_POOL_MAX, DB_POOL_WAIT_SECONDS, PROMISES, PUNCTUALITY_RATIO,
    SITE_SENSITIVE,
};
use crate::store::{self, StoreError, gauges};

/// How often the pool is sampled.
pub const POOL_EVERY: Duration = Duration::from_secs(5);

/// How often the business gauges are computed.
pub const BUSINESS_EVERY: Duration = Duration::from_secs(60);

/// Samples the pool every [`POOL_EVERY`] until `shutdown` (job `pool_sampler`).
pub async fn run_pool_sampler(pool: PgPool, shutdown: CancellationToken) {
    run_every(
        shutdown,
        Schedule::every(POOL_EVERY),
        "pool_sampler",
        || sample_pool(&pool),
    )
    .await;
}

/// Sets [`DB_POOL_CONNECTIONS`] (in use, idle) and [`DB_POOL_MAX`], then times one `acquire`
/// into [`DB_POOL_WAIT_SECONDS`]. Fails when no connection comes within the pool's acquire
/// timeout (the database is out of reach or every connection is held that long).
pub async fn sample_pool(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(size - idle));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    metrics::gauge!(DB_POOL_MAX).set(f64::from(pool.options().get_max_connections()));
    let started = Instant::now();
    let connection = pool.acquire().await?;
    metrics::gauge!(DB_POOL_WAIT_SECONDS).set(started.elapsed().as_secs_f64());
    drop(connection);
    Ok(0)
}

/// Computes the business gauges at once, then every `every`, until `shutdown` (job
/// `business_gauges`).
pub async fn run_business_gauges(pool: PgPool, shutdown: CancellationToken, every: Duration) {
    run_every(shutdown, Schedule::every(every), "business_gauges", || {
        refresh_business(&pool)
    })
    .await;
}

/// Reads the business figures in one read-only snapshot and sets their gauges; answers 0 (the
/// job writes no rows). The site gauges are ListSites' figures of every site
/// (`app::dashboard::every_site`): arrears and aging on today, collected today, punctuality of
/// the charges due over the past year up to yesterday.
pub async fn refresh_business(pool: &PgPool) -> Result<u64, AppError> {
    let now = Utc::now();
    let today = conakry_day(now);
    let mut tx = store::begin_read(pool).await?;
    let sites = dashboard::every_site(&mut tx, now).await?;
    let promises = gauges::promises_by_status(&mut tx).await?;
    let scores = gauges::agent_scores(&mut tx, today).await?;
    tx.commit().await.map_err(StoreError::from)?;

    for SiteOverview { site, figures } in sites {
        let label = [("site", site.code)];
        let arrears = &figures.arrears;
        metrics::gauge!(ARREARS_TENANTS, &label).set(arrears.tenants_in_arrears as f64);
        metrics::gauge!(ARREARS_GNF, &label).set(arrears.arrears_gnf as f64);
        metrics::gauge!(ARREARS_OVER_60_DAYS, &label).set(arrears.charges_over_60_days as f64);
        metrics::gauge!(SITE_SENSITIVE, &label).set(if site.is_sensitive { 1.0 } else { 0.0 });
        metrics::gauge!(COLLECTED_TODAY_GNF, &label).set(figures.collected_today_gnf as f64);
        let punctuality = figures.punctuality;
        if punctuality.charges_count > 0 {
            metrics::gauge!(PUNCTUALITY_RATIO, &label)
                .set(punctuality.on_time_count as f64 / punctuality.charges_count as f64);
        }
    }
    for status in crate::domain::PromiseStatus::ALL {
        let count = promises
            .iter()
            .find(|(name, _)| name == status.as_str())
            .map_or(0, |(_, count)| *count);
        metrics::gauge!(PROMISES, "status" => status.as_str()).set(count as f64);
    }
    for (agent, score) in scores {
        metrics::gauge!(AGENT_SCORE_TODAY, "agent" => agent).set(score as f64);
    }
    Ok(0)
}
