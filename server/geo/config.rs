//! Settings of route optimisation (`AKIG_ROUTE_*`), read with the other server settings and
//! checked once at start.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::domain::route::problem::{BudgetLimits, Speed, Speeds, TravelMode};
use crate::setting::ConfigError;

/// How the agent travels when a request does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TravelModeArg {
    Walking,
    MotoTaxi,
    Car,
}

impl From<TravelModeArg> for TravelMode {
    fn from(mode: TravelModeArg) -> Self {
        match mode {
            TravelModeArg::Walking => TravelMode::Walking,
            TravelModeArg::MotoTaxi => TravelMode::MotoTaxi,
            TravelModeArg::Car => TravelMode::Car,
        }
    }
}

/// Route optimisation (OptimizeRoute, RouteSession).
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// Search time when a request gives none, in milliseconds.
    #[arg(long, env = "AKIG_ROUTE_DEFAULT_BUDGET_MS", default_value_t = 1_000)]
    pub route_default_budget_ms: u64,
    /// Longest search time an OptimizeRoute request may ask, in milliseconds.
    #[arg(long, env = "AKIG_ROUTE_MAX_BUDGET_MS", default_value_t = 10_000)]
    pub route_max_budget_ms: u64,
    /// Longest search time per re-plan a RouteSession may ask, in milliseconds.
    #[arg(
        long,
        env = "AKIG_ROUTE_SESSION_MAX_BUDGET_MS",
        default_value_t = 60_000
    )]
    pub route_session_max_budget_ms: u64,
    /// Route searches running at once in this process (each takes a CPU); beyond, calls get
    /// RESOURCE_EXHAUSTED. 0: the number of CPUs.
    #[arg(long, env = "AKIG_ROUTE_MAX_SEARCHES", default_value_t = 0)]
    pub route_max_searches: usize,
    /// A RouteSession with no client message for this long is closed, in seconds.
    #[arg(long, env = "AKIG_ROUTE_SESSION_IDLE_SECS", default_value_t = 1_800)]
    pub route_session_idle_secs: u64,
    /// A search ends early after this many rounds per stop (at least 1,000) without a shorter
    /// route. 0: only the time budget ends it.
    #[arg(long, env = "AKIG_ROUTE_STALL_ROUNDS_PER_STOP", default_value_t = 100)]
    pub route_stall_rounds_per_stop: u64,
    /// Speed on foot, km/h.
    #[arg(long, env = "AKIG_ROUTE_WALKING_KMH", default_value_t = 4.5)]
    pub route_walking_kmh: f64,
    /// Speed by moto-taxi, km/h.
    #[arg(long, env = "AKIG_ROUTE_MOTO_TAXI_KMH", default_value_t = 18.0)]
    pub route_moto_taxi_kmh: f64,
    /// Speed by car, km/h.
    #[arg(long, env = "AKIG_ROUTE_CAR_KMH", default_value_t = 15.0)]
    pub route_car_kmh: f64,
    /// Travel mode of requests that leave it unspecified.
    #[arg(
        long,
        env = "AKIG_ROUTE_DEFAULT_TRAVEL_MODE",
        value_enum,
        default_value_t = TravelModeArg::MotoTaxi
    )]
    pub route_default_travel_mode: TravelModeArg,
}

/// Validated route settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Time budget of OptimizeRoute.
    pub unary_budget: BudgetLimits,
    /// Time budget of each RouteSession re-plan.
    pub session_budget: BudgetLimits,
    /// Searches at once, at least 1.
    pub max_searches: usize,
    /// Idle RouteSessions are closed after this.
    pub session_idle: Duration,
    /// Rounds per stop without progress that end a search; 0: none.
    pub stall_rounds_per_stop: u64,
    pub speeds: Speeds,
    pub default_travel_mode: TravelMode,
}

/// The number of CPUs the process may use (1 when unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for RouteConfig {
    /// 1 s by default, at most 10 s (OptimizeRoute) and 60 s (RouteSession); one search per
    /// CPU; sessions closed after 30 idle minutes; 100 stall rounds per stop; the speeds of
    /// [`Speeds::default`]; moto-taxi.
    fn default() -> Self {
        Self {
            unary_budget: BudgetLimits {
                default: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
            session_budget: BudgetLimits {
                default: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            max_searches: cpus(),
            session_idle: Duration::from_secs(30 * 60),
            stall_rounds_per_stop: 100,
            speeds: Speeds::default(),
            default_travel_mode: TravelMode::MotoTaxi,
        }
    }
}

impl RouteArgs {
    pub fn parse(&self) -> Result<RouteConfig, ConfigError> {
        let millis = |setting: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError {
                    setting,
                    reason: "must be greater than 0".into(),
                })
            } else {
                Ok(Duration::from_millis(value))
            }
        };
        let default = millis("AKIG_ROUTE_DEFAULT_BUDGET_MS", self.route_default_budget_ms)?;
        let max = millis("AKIG_ROUTE_MAX_BUDGET_MS", self.route_max_budget_ms)?;
        let session_max = millis(
            "AKIG_ROUTE_SESSION_MAX_BUDGET_MS",
            self.route_session_max_budget_ms,
        )?;
        if default > max || default > session_max {
            return Err(ConfigError {
                setting: "AKIG_ROUTE_DEFAULT_BUDGET_MS",
                reason:
                    "must not exceed AKIG_ROUTE_MAX_BUDGET_MS or AKIG_ROUTE_SESSION_MAX_BUDGET_MS"
                        .into(),
            });
        }
        if self.route_session_idle_secs == 0 {
            return Err(ConfigError {
                setting: "AKIG_ROUTE_SESSION_IDLE_SECS",
                reason: "must be greater than 0".into(),
            });
        }
        let speed = |setting: &'static str, kmh: f64| {
            Speed::from_kmh(kmh).map_err(|e| ConfigError {
                setting,
                reason: e.to_string(),
            })
        };
        Ok(RouteConfig {
            unary_budget: BudgetLimits { default, max },
            session_budget: BudgetLimits {
                default,
                max: session_max,
            },
            max_searches: match self.route_max_searches {
                0 => cpus(),
                n => n,
            },
            session_idle: Duration::from_secs(self.route_session_idle_secs),
            stall_rounds_per_stop: self.route_stall_rounds_per_stop,
            speeds: Speeds {
                walking: speed("AKIG_ROUTE_WALKING_KMH", self.route_walking_kmh)?,
                moto_taxi: speed("AKIG_ROUTE_MOTO_TAXI_KMH", self.route_moto_taxi_kmh)?,
                car: speed("AKIG_ROUTE_CAR_KMH", self.route_car_kmh)?,
            },
            default_travel_mode: self.route_default_travel_mode.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        route: RouteArgs,
    }

    fn parse(args: &[&str]) -> Result<RouteConfig, ConfigError> {
        let mut argv = vec!["akig"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("flags parse")
            .route
            .parse()
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        assert_eq!(parse(&[]).expect("defaults"), RouteConfig::default());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = parse(&["--route-car-kmh", "0"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_ROUTE_CAR_KMH");
        let err = parse(&["--route-default-budget-ms", "20000"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_ROUTE_DEFAULT_BUDGET_MS");
        let err = parse(&["--route-max-budget-ms", "0"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_ROUTE_MAX_BUDGET_MS");
        let err = parse(&["--route-session-idle-secs", "0"]).unwrap_err();
        assert_eq!(err.setting, "AKIG_ROUTE_SESSION_IDLE_SECS");
    }

    #[test]
    fn zero_searches_means_one_per_cpu() {
        let config = parse(&["--route-max-searches", "0"]).unwrap();
        assert_eq!(config.max_searches, cpus());
        let config = parse(&[
            "--route-max-searches",
            "3",
            "--route-default-travel-mode",
            "walking",
        ])
        .unwrap();
        assert_eq!(config.max_searches, 3);
        assert_eq!(config.default_travel_mode, TravelMode::Walking);
    }
}
