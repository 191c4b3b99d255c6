//! The daily generation of missions, on a schedule: at the configured Africa/Conakry time
//! (`AKIG_MISSIONS_SCHEDULE`), every replica plans the next day for the whole company
//! (`app::missions::generate`).
//!
//! Decisions:
//! - Once across replicas: the generation takes the day's advisory lock; a replica that finds
//!   it held skips its run (another one is planning), and a replica that runs after another
//!   finished finds the same plan and writes nothing (a generation is idempotent per day).
//! - The next day, because the scheduled time is also the cut-off after which GenerateMissions
//!   without a date plans tomorrow.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::AppError;
use crate::app::config::MissionsConfig;
use crate::app::missions::{self, GenerateInput, Planner};
use crate::auth::caller::Scope;
use crate::cache::Cache;
use crate::domain::conakry_day;
use crate::domain::route::problem::Speed;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Time from `now` to the next `at` (Africa/Conakry is UTC+0 all year).
pub fn until_next(now: DateTime<Utc>, at: NaiveTime) -> Duration {
    let today = now.date_naive().and_time(at).and_utc();
    let next = if today > now {
        today
    } else {
        today + chrono::TimeDelta::days(1)
    };
    (next - now).to_std().unwrap_or(Duration::ZERO)
}

/// Plans tomorrow for the whole company; answers how many missions were created (0 when
/// another replica holds the day's lock). After a run that changed the plan, the read cache
/// versions of the sites planned move (`cache`), so cached mission lists are read afresh.
pub async fn generate_tomorrow(
    pool: &PgPool,
    cache: Option<&Cache>,
    config: &MissionsConfig,
    speed: Speed,
) -> Result<u64, sqlx::Error> {
    let now = Utc::now();
    let day = conakry_day(now)
        .succ_opt()
        .unwrap_or_else(|| conakry_day(now));
    let input = GenerateInput {
        day,
        site_ids: None,
        agent_ids: None,
        max_per_agent: config.max_per_agent as usize,
        dry_run: false,
    };
    let planner = Planner {
        scope: Scope::Company,
        now,
    };
    let mut tx = pool.begin().await?;
    match missions::generate(&mut tx, &planner, &input, config, speed).await {
        Ok(generated) => {
            tx.commit().await?;
            if let Some(cache) = cache
                && !generated.changed_agents.is_empty()
            {
                let mut sites: Vec<Uuid> = generated.missions.iter().map(|m| m.site_id).collect();
                sites.sort_unstable();
                sites.dedup();
                cache.written(&sites).await;
            }
            Ok(u64::try_from(generated.created_count).unwrap_or(0))
        }
        Err(AppError::GenerationRunning) => Ok(0),
        Err(error) => Err(sqlx::Error::Protocol(format!(
            "mission generation: {error}"
        ))),
    }
}

/// Runs [`generate_tomorrow`] every day at `config.schedule` until `shutdown`; does nothing
/// when no schedule is configured.
pub async fn run_mission_job(
    pool: PgPool,
    cache: Cache,
    shutdown: CancellationToken,
    config: MissionsConfig,
    speed: Speed,
) {
    let Some(at) = config.schedule else {
        return;
    };
    let schedule = super::Schedule {
        first_after: until_next(Utc::now(), at),
        every: DAY,
    };
    super::run_every(shutdown, schedule, "mission_generation", || {
        generate_tomorrow(&pool, Some(&cache), &config, speed)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_is_later_today_or_tomorrow() {
        let at = NaiveTime::from_hms_opt(18, 0, 0).unwrap();
        let morning = "2026-12-01T08:00:00Z".parse().unwrap();
        assert_eq!(until_next(morning, at), Duration::from_secs(10 * 3600));
        let evening = "2026-12-01T18:00:00Z".parse().unwrap();
        assert_eq!(until_next(evening, at), DAY);
        let late = "2026-12-01T23:30:00Z".parse().unwrap();
        assert_eq!(until_next(late, at), Duration::from_secs(18 * 3600 + 1800));
    }
}
