//! The settings of the use cases: collections, missions and alerts (`AKIG_*`; read from the
//! environment by `crate::config`).

use std::time::Duration;

/// Collection rules: aging buckets, far visits, offline and promise horizons, and the mission
/// and alert settings.
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
