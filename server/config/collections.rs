//! Business rules of collections and mission planning.

use std::time::Duration;

use clap::Args;

use super::AlertArgs;
use crate::app::config::{CollectionsConfig, MissionsConfig};
use crate::setting::{self as check, ConfigError};

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

impl MissionsArgs {
    pub fn parse(&self) -> Result<MissionsConfig, ConfigError> {
        check::within(
            "AKIG_MISSIONS_MAX_PER_AGENT",
            self.missions_max_per_agent,
            1..=50,
        )?;
        check::at_least(
            "AKIG_MISSIONS_MIN_OUTSTANDING_GNF",
            self.missions_min_outstanding_gnf,
            1,
        )?;
        let schedule = match self.missions_schedule.trim() {
            value if value.eq_ignore_ascii_case("off") => None,
            value => Some(check::local_time("AKIG_MISSIONS_SCHEDULE", value)?),
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
        check::positive("AKIG_FAR_VISIT_METERS", self.far_visit_meters)?;
        check::at_least("AKIG_MAX_OFFLINE_DAYS", self.max_offline_days, 1)?;
        check::at_least("AKIG_PROMISE_HORIZON_DAYS", self.promise_horizon_days, 1)?;
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
