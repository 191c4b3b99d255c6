//! Settings of live positions: ingest, watchers, presence, arrival, retention and app versions.

use std::time::Duration;

use clap::Args;

use crate::domain::arrival::ArrivalRule;
use crate::domain::position::PositionRules;
use crate::setting::ConfigError;

/// Live position settings, from the command line or the environment.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// An agent with no open session and no message for this long is offline, in seconds.
    #[arg(long, env = "AKIG_LIVE_OFFLINE_AFTER_SECS", default_value_t = 300)]
    pub live_offline_after_secs: u64,
    /// Updates a watcher may fall behind by before it gets a resync and a fresh snapshot.
    #[arg(long, env = "AKIG_LIVE_WATCH_BUFFER", default_value_t = 1024)]
    pub live_watch_buffer: usize,
    /// Position batches waiting for the database writers, at most (then senders wait).
    #[arg(long, env = "AKIG_LIVE_INGEST_BUFFER", default_value_t = 4096)]
    pub live_ingest_buffer: usize,
    /// Largest number of positions written in one transaction.
    #[arg(long, env = "AKIG_LIVE_INGEST_MAX_ROWS", default_value_t = 10_000)]
    pub live_ingest_max_rows: usize,
    /// Database writers running at once.
    #[arg(long, env = "AKIG_LIVE_INGEST_WRITERS", default_value_t = 2)]
    pub live_ingest_writers: usize,
    /// Days of positions kept; older daily partitions are dropped.
    #[arg(long, env = "AKIG_LIVE_RETENTION_DAYS", default_value_t = 90)]
    pub live_retention_days: u32,
    /// Days of partitions created ahead of today.
    #[arg(long, env = "AKIG_LIVE_PARTITIONS_AHEAD_DAYS", default_value_t = 30)]
    pub live_partitions_ahead_days: u32,
    /// Radius around a tenant's home within which the agent has arrived, metres.
    #[arg(long, env = "AKIG_LIVE_ARRIVAL_RADIUS_METERS", default_value_t = 100.0)]
    pub live_arrival_radius_meters: f64,
    /// Fixes vaguer than this do not count for arrival, metres.
    #[arg(
        long,
        env = "AKIG_LIVE_ARRIVAL_MAX_ACCURACY_METERS",
        default_value_t = 150.0
    )]
    pub live_arrival_max_accuracy_meters: f64,
    /// Oldest app version that may open an agent session (dotted numbers).
    #[arg(long, env = "AKIG_LIVE_MIN_APP_VERSION", default_value = "1.0.0")]
    pub live_min_app_version: String,
    /// Versions below this one get an update recommendation (dotted numbers).
    #[arg(
        long,
        env = "AKIG_LIVE_RECOMMENDED_APP_VERSION",
        default_value = "1.0.0"
    )]
    pub live_recommended_app_version: String,
}

/// Validated live settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    pub offline_after: Duration,
    /// Watcher buffer, in updates (at least 1).
    pub watch_buffer: usize,
    /// A keepalive goes to a watcher after this much silence.
    pub keepalive: Duration,
    pub ingest_buffer: usize,
    pub ingest_max_rows: usize,
    pub ingest_writers: usize,
    pub retention_days: u32,
    pub partitions_ahead_days: u32,
    pub arrival: ArrivalRule,
    pub min_app_version: Vec<u32>,
    pub recommended_app_version: Vec<u32>,
    /// Fix validation (the future skew comes from `CollectionsConfig::max_clock_skew`).
    pub positions: PositionRules,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            offline_after: Duration::from_secs(300),
            watch_buffer: 1024,
            keepalive: Duration::from_secs(20),
            ingest_buffer: 4096,
            ingest_max_rows: 10_000,
            ingest_writers: 2,
            retention_days: 90,
            partitions_ahead_days: 30,
            arrival: ArrivalRule::default(),
            min_app_version: vec![1, 0, 0],
            recommended_app_version: vec![1, 0, 0],
            positions: PositionRules::default(),
        }
    }
}

/// Dotted version numbers ("2.3.1", "v2.3", "2.3.1-beta" → [2, 3, 1]); `None` when the text
/// starts with no number.
pub fn parse_version(text: &str) -> Option<Vec<u32>> {
    let text = text.trim().trim_start_matches(['v', 'V']);
    let core = text.split(['-', '+', ' ']).next().unwrap_or_default();
    let parts: Vec<u32> = core
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// Whether version `a` is below `b` (missing trailing parts count as 0).
pub fn version_below(a: &[u32], b: &[u32]) -> bool {
    let n = a.len().max(b.len());
    let part = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
    (0..n)
        .map(|i| part(a, i).cmp(&part(b, i)))
        .find(|o| o.is_ne())
        .is_some_and(|o| o.is_lt())
}

impl LiveArgs {
    pub fn parse(&self) -> Result<LiveConfig, ConfigError> {
        let positive = |setting: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError {
                    setting,
                    reason: "must be greater than 0".into(),
                })
            } else {
                Ok(value)
            }
        };
        let version = |setting: &'static str, value: &str| {
            parse_version(value).ok_or_else(|| ConfigError {
                setting,
                reason: "must be dotted numbers, e.g. 1.4.0".into(),
            })
        };
        let metres = |setting: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(ConfigError {
                    setting,
                    reason: "must be a number of metres greater than 0".into(),
                })
            }
        };
        let defaults = LiveConfig::default();
        let retention_days = positive("AKIG_LIVE_RETENTION_DAYS", self.live_retention_days.into())?;
        Ok(LiveConfig {
            offline_after: Duration::from_secs(positive(
                "AKIG_LIVE_OFFLINE_AFTER_SECS",
                self.live_offline_after_secs,
            )?),
            watch_buffer: self.live_watch_buffer.max(1),
            keepalive: defaults.keepalive,
            ingest_buffer: self.live_ingest_buffer.max(1),
            ingest_max_rows: self.live_ingest_max_rows.max(1_000),
            ingest_writers: self.live_ingest_writers.max(1),
            retention_days: self.live_retention_days,
            partitions_ahead_days: self.live_partitions_ahead_days.max(1),
            arrival: ArrivalRule {
                radius_m: metres(
                    "AKIG_LIVE_ARRIVAL_RADIUS_METERS",
                    self.live_arrival_radius_meters,
                )?,
                max_accuracy_m: metres(
                    "AKIG_LIVE_ARRIVAL_MAX_ACCURACY_METERS",
                    self.live_arrival_max_accuracy_meters,
                )?,
            },
            min_app_version: version("AKIG_LIVE_MIN_APP_VERSION", &self.live_min_app_version)?,
            recommended_app_version: version(
                "AKIG_LIVE_RECOMMENDED_APP_VERSION",
                &self.live_recommended_app_version,
            )?,
            positions: PositionRules {
                retention: Duration::from_secs(retention_days * 24 * 3600),
                ..defaults.positions
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(parse_version("v2.10.1-beta"), Some(vec![2, 10, 1]));
        assert_eq!(parse_version("dashboard-1.4.0"), None);
        assert!(version_below(&[1, 9], &[1, 10, 0]));
        assert!(!version_below(&[1, 10], &[1, 10, 0]));
        assert!(!version_below(&[2], &[1, 99]));
    }
}
