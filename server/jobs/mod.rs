//! Background jobs: those that keep derived data in step with the ledger run in every replica
//! and take a PostgreSQL advisory lock, so the work is done once however many replicas run;
//! purges of rows past their retention run in every replica too, sharing the rows with
//! `SKIP LOCKED`; the gauges of the metrics port are computed on a schedule in every replica
//! (`gauges`), never on a scrape.

pub mod alerts;
pub mod gauges;
pub mod missions;
pub mod partitions;
pub mod promises;

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::{JOB_FAILURES, JOB_LAST_SUCCESS};

/// How often each replica deletes rows past their retention (expired idempotency keys, ended
/// sessions): tables that would otherwise grow with every call or login, forever.
pub const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// When a job first runs, then how often.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first_after: Duration,
    pub every: Duration,
}

impl Schedule {
    /// At once, then every `every`.
    pub fn every(every: Duration) -> Self {
        Self {
            first_after: Duration::ZERO,
            every,
        }
    }
}

/// Runs `work` on `schedule` until `shutdown`. `work` answers how many rows it handled, logged
/// under `what` (the job's metric label) when not zero; a failed run, whatever its error type
/// (`sqlx::Error`, `StoreError`, ...), is logged with its causes, counted in
/// [`JOB_FAILURES`] and retried at the next tick. A run that succeeds sets
/// [`JOB_LAST_SUCCESS`] to the time it ended (seconds since the Unix epoch).
pub async fn run_every<F, Fut, E>(
    shutdown: CancellationToken,
    schedule: Schedule,
    what: &'static str,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::error::Error,
{
    metrics::counter!(JOB_FAILURES, "job" => what).increment(0);
    let every = schedule.every.max(Duration::from_millis(10));
    let first = tokio::time::Instant::now() + schedule.first_after;
    let mut interval = tokio::time::interval_at(first, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = work() => match result {
                Ok(rows) => {
                    if rows > 0 {
                        tracing::info!(job = what, rows, "done");
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |since| since.as_secs_f64());
                    metrics::gauge!(JOB_LAST_SUCCESS, "job" => what).set(now);
                }
                Err(error) => {
                    metrics::counter!(JOB_FAILURES, "job" => what).increment(1);
                    let error = causes(&error);
                    tracing::warn!(job = what, error, "failed; retried at the next run");
                }
            },
        }
    }
}

/// `error` and its sources, joined by `: ` (a `StoreError` alone says only "database error").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
