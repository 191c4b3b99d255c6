//! Settings of the scheduled alert rules (`domain::alerts`).

use std::time::Duration;

use clap::Args;

use crate::app::config::AlertConfig;
use crate::setting::{self as check, ConfigError};

/// The scheduled alert rules (`domain::alerts`): how often they run and their thresholds.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Seconds between two evaluations of the alert rules; 0: no scheduled evaluation.
    #[arg(long, env = "AKIG_ALERT_EVERY_SECS", default_value_t = 300)]
    pub alert_every_secs: u64,
    /// Critical arrears: a site with more than this many charges over 60 days overdue.
    #[arg(
        long,
        env = "AKIG_ALERT_CRITICAL_OVERDUE_CHARGES",
        default_value_t = 50
    )]
    pub alert_critical_overdue_charges: u32,
    /// Broken-promise spike: more than this many promises of a site broken today...
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES", default_value_t = 5)]
    pub alert_broken_promises: u32,
    /// ... and at least this many times the daily mean of the days before (0: the count alone).
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES_FACTOR", default_value_t = 2.0)]
    pub alert_broken_promises_factor: f64,
    /// Days before today that the daily mean of broken promises covers (1..=90).
    #[arg(long, env = "AKIG_ALERT_BROKEN_PROMISES_DAYS", default_value_t = 7)]
    pub alert_broken_promises_days: u32,
    /// Africa/Conakry working hours of the agent rules, `HH:MM-HH:MM`.
    #[arg(long, env = "AKIG_ALERT_WORK_HOURS", default_value = "08:00-18:00")]
    pub alert_work_hours: String,
    /// Working days of the agent rules (mon..sun), comma separated.
    #[arg(
        long,
        env = "AKIG_ALERT_WORK_DAYS",
        value_delimiter = ',',
        default_value = "mon,tue,wed,thu,fri,sat"
    )]
    pub alert_work_days: Vec<String>,
    /// Agent inactive: nothing received from the agent for this many minutes of working hours.
    #[arg(long, env = "AKIG_ALERT_INACTIVE_MINUTES", default_value_t = 90)]
    pub alert_inactive_minutes: u32,
    /// Low score: today's score below this (0: off)...
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_TODAY", default_value_t = 3)]
    pub alert_low_score_today: u32,
    /// ... from this Africa/Conakry time on (HH:MM).
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_FROM", default_value = "14:00")]
    pub alert_low_score_from: String,
    /// Low score: the score of the 7 days before today below this (0: off).
    #[arg(long, env = "AKIG_ALERT_LOW_SCORE_WEEK", default_value_t = 15)]
    pub alert_low_score_week: u32,
    /// Sensitive site: more than this many tenants in arrears.
    #[arg(long, env = "AKIG_ALERT_SENSITIVE_TENANTS", default_value_t = 5)]
    pub alert_sensitive_tenants: u32,
    /// Far visits: more than this many far-away visits of an agent on a site today.
    #[arg(long, env = "AKIG_ALERT_FAR_VISITS", default_value_t = 2)]
    pub alert_far_visits: u32,
}

impl AlertArgs {
    pub fn parse(&self) -> Result<AlertConfig, ConfigError> {
        use chrono::Weekday;
        let time = check::local_time;
        let (start, end) = self
            .alert_work_hours
            .split_once('-')
            .ok_or_else(|| ConfigError::new("AKIG_ALERT_WORK_HOURS", "HH:MM-HH:MM"))?;
        let (start, end) = (
            time("AKIG_ALERT_WORK_HOURS", start)?,
            time("AKIG_ALERT_WORK_HOURS", end)?,
        );
        if start >= end {
            return Err(ConfigError::new(
                "AKIG_ALERT_WORK_HOURS",
                "the start must be before the end",
            ));
        }
        let mut days = Vec::new();
        for day in self.alert_work_days.iter().map(|d| d.trim()) {
            let day: Weekday = day.parse().map_err(|_| {
                ConfigError::new(
                    "AKIG_ALERT_WORK_DAYS",
                    format!("{day:?} is not a day (mon..sun)"),
                )
            })?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        let factor = self.alert_broken_promises_factor;
        if factor != 0.0 {
            check::positive("AKIG_ALERT_BROKEN_PROMISES_FACTOR", factor)?;
        }
        check::within(
            "AKIG_ALERT_BROKEN_PROMISES_DAYS",
            self.alert_broken_promises_days,
            1..=90,
        )?;
        check::at_least(
            "AKIG_ALERT_INACTIVE_MINUTES",
            self.alert_inactive_minutes,
            1,
        )?;
        Ok(AlertConfig {
            every: (self.alert_every_secs > 0).then(|| Duration::from_secs(self.alert_every_secs)),
            rules: crate::domain::alerts::AlertRules {
                critical_overdue_charges: i64::from(self.alert_critical_overdue_charges),
                broken_promises: i64::from(self.alert_broken_promises),
                broken_promises_factor: self.alert_broken_promises_factor,
                broken_promises_days: self.alert_broken_promises_days,
                working_hours: crate::domain::alerts::WorkingHours { start, end, days },
                inactive_minutes: i64::from(self.alert_inactive_minutes),
                low_score_today: i64::from(self.alert_low_score_today),
                low_score_from: time("AKIG_ALERT_LOW_SCORE_FROM", &self.alert_low_score_from)?,
                low_score_week: i64::from(self.alert_low_score_week),
                sensitive_tenants: i64::from(self.alert_sensitive_tenants),
                far_visits: i64::from(self.alert_far_visits),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::{assert_refused, parse};

    #[test]
    fn alert_settings_parse_and_name_the_bad_one() {
        let config = parse(&[]).expect("defaults");
        let alerts = &config.collections.alerts;
        assert_eq!(alerts.every, Some(Duration::from_secs(300)));
        assert_eq!(alerts.rules, crate::domain::alerts::AlertRules::default());
        let config = parse(&[
            "--alert-every-secs",
            "0",
            "--alert-work-days",
            "mon,fri",
            "--alert-work-hours",
            "07:30-16:00",
        ])
        .expect("valid");
        let rules = &config.collections.alerts.rules;
        assert_eq!(config.collections.alerts.every, None);
        assert_eq!(
            rules.working_hours.days,
            vec![chrono::Weekday::Mon, chrono::Weekday::Fri]
        );
        assert_eq!(
            rules.working_hours.start,
            chrono::NaiveTime::from_hms_opt(7, 30, 0).expect("valid")
        );
        assert_refused(&[
            ("--alert-work-hours=18:00-08:00", "AKIG_ALERT_WORK_HOURS"),
            ("--alert-work-hours=8h", "AKIG_ALERT_WORK_HOURS"),
            ("--alert-work-days=mon,holiday", "AKIG_ALERT_WORK_DAYS"),
            ("--alert-low-score-from=2pm", "AKIG_ALERT_LOW_SCORE_FROM"),
            (
                "--alert-broken-promises-days=0",
                "AKIG_ALERT_BROKEN_PROMISES_DAYS",
            ),
            (
                "--alert-broken-promises-factor=NaN",
                "AKIG_ALERT_BROKEN_PROMISES_FACTOR",
            ),
            (
                "--alert-broken-promises-factor=-1",
                "AKIG_ALERT_BROKEN_PROMISES_FACTOR",
            ),
            ("--alert-inactive-minutes=0", "AKIG_ALERT_INACTIVE_MINUTES"),
        ]);
    }
}
