//! The alert rules, on a schedule (`AKIG_ALERT_EVERY_SECS`, default every 5 minutes): every
//! replica runs [`app::alerts::evaluate`](crate::app::alerts::evaluate), which takes an
//! advisory lock so the evaluation is done once however many replicas run; the others skip
//! their turn. Each run records the job's last success or failure (job `alert_evaluation`).

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::alerts::{self, Evaluation};
use crate::app::config::AlertConfig;
use crate::cache::Cache;
use crate::domain::alerts::AlertRules;
use crate::store::StoreError;

/// The job's name in its metrics and logs.
pub const JOB: &str = "alert_evaluation";

/// Delay of the first run after start (the promise job's, for the same reason: a server just
/// started serves first).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

/// Evaluates the rules now; answers how many alerts were opened or resolved.
pub async fn evaluate_now(
    pool: &PgPool,
    cache: &Cache,
    rules: &AlertRules,
) -> Result<u64, StoreError> {
    let Evaluation {
        opened, resolved, ..
    } = alerts::evaluate(pool, cache, rules, Utc::now()).await?;
    Ok(opened + resolved)
}

/// Runs [`evaluate_now`] every `config.every` (first run [`FIRST_RUN_AFTER`] after start, or
/// `every` if shorter) until `shutdown`; does nothing when no interval is configured.
pub async fn run_alert_job(
    pool: PgPool,
    cache: Cache,
    shutdown: CancellationToken,
    config: AlertConfig,
) {
    let Some(every) = config.every else {
        return;
    };
    let schedule = super::Schedule {
        first_after: FIRST_RUN_AFTER.min(every),
        every,
    };
    super::run_every(shutdown, schedule, JOB, || {
        evaluate_now(&pool, &cache, &config.rules)
    })
    .await;
}
