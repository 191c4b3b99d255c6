//! A setting that cannot work ([`ConfigError`]) and the checks the settings share. Each check
//! refuses a value with a [`ConfigError`] naming the setting (its environment variable) and what
//! it must be.
//!
//! Decisions:
//! - A leaf: the modules that own their settings (`db`, `redis`, `limits`, `live`, `geo`, …)
//!   check them with it, and `config`, which assembles them from the environment, depends on
//!   them, never the reverse.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::NaiveTime;

/// A setting that cannot work, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    /// `setting` (its environment variable) refused for `reason`.
    pub fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// `value` when it is at least `min`.
pub fn at_least<T: PartialOrd + Display>(
    setting: &'static str,
    value: T,
    min: T,
) -> Result<T, ConfigError> {
    if value >= min {
        Ok(value)
    } else {
        Err(ConfigError::new(setting, format!("must be at least {min}")))
    }
}

/// `value` when it lies in `range` (bounds included).
pub fn within<T: PartialOrd + Display>(
    setting: &'static str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        let (low, high) = range.into_inner();
        Err(ConfigError::new(
            setting,
            format!("must be between {low} and {high}"),
        ))
    }
}

/// `value` seconds, at least one.
pub fn seconds(setting: &'static str, value: u64) -> Result<Duration, ConfigError> {
    at_least(setting, value, 1).map(Duration::from_secs)
}

/// `value` when it is a finite number above 0.
pub fn positive(setting: &'static str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::new(setting, "must be a number above 0"))
    }
}

/// An Africa/Conakry time of day written `HH:MM`.
pub fn local_time(setting: &'static str, value: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M")
        .map_err(|_| ConfigError::new(setting, "must be a local time HH:MM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_its_setting_and_keeps_good_values() {
        assert_eq!(at_least("A", 3, 1).ok(), Some(3));
        assert_eq!(at_least("A", 0, 1).err().map(|e| e.setting), Some("A"));
        assert_eq!(within("B", 90, 1..=90).ok(), Some(90));
        let refused = within("B", 91, 1..=90).expect_err("refused");
        assert_eq!(
            (refused.setting, refused.reason.as_str()),
            ("B", "must be between 1 and 90")
        );
        assert_eq!(seconds("C", 2).ok(), Some(Duration::from_secs(2)));
        assert!(seconds("C", 0).is_err());
        assert_eq!(positive("D", 0.5).ok(), Some(0.5));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive("D", bad).is_err(), "{bad}");
        }
        assert_eq!(
            local_time("E", " 07:30 ").ok(),
            NaiveTime::from_hms_opt(7, 30, 0)
        );
        assert!(local_time("E", "7h30").is_err());
    }
}
