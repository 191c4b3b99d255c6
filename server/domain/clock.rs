//! Time as the business sees it: Africa/Conakry days, and device clocks kept honest.
//!
//! Guinea keeps UTC all year (no daylight saving time), so Africa/Conakry is a fixed offset of
//! zero. The offset lives here and only here: every "which day is it" of the collections code
//! goes through [`conakry_day`] and [`conakry_day_start`].

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeDelta, Utc};

/// Offset of Africa/Conakry from UTC, in seconds: zero, all year (no DST).
pub const CONAKRY_UTC_OFFSET_SECS: i32 = 0;

/// The Africa/Conakry offset (evaluated at compile time).
pub const CONAKRY_OFFSET: FixedOffset = match FixedOffset::east_opt(CONAKRY_UTC_OFFSET_SECS) {
    Some(offset) => offset,
    None => panic!("CONAKRY_UTC_OFFSET_SECS must be less than a day"),
};

/// The Africa/Conakry calendar day of an instant.
pub fn conakry_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&CONAKRY_OFFSET).date_naive()
}

/// The instant an Africa/Conakry day starts (00:00 local).
pub fn conakry_day_start(day: NaiveDate) -> DateTime<Utc> {
    let local = day.and_time(NaiveTime::MIN);
    // Only fails at the very ends of chrono's range; the offset is zero anyway.
    local
        .checked_sub_offset(CONAKRY_OFFSET)
        .unwrap_or(local)
        .and_utc()
}

/// Limits on a device-reported time (`occurred_at` of calls, visits, payments...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// How far ahead of the server's clock a device may be.
    pub max_skew: TimeDelta,
    /// How old a reported action may be (offline phones sync late, but not months late).
    pub max_age: TimeDelta,
}

impl TimeBounds {
    /// The same bounds without the offline window: for the late retry of an action already
    /// recorded (the window bounds new actions; a stored one is answered whatever its age).
    pub fn without_max_age(self) -> Self {
        Self {
            max_age: TimeDelta::MAX,
            ..self
        }
    }
}

impl Default for TimeBounds {
    fn default() -> Self {
        Self {
            max_skew: TimeDelta::minutes(5),
            max_age: TimeDelta::days(30),
        }
    }
}

/// A device time within [`TimeBounds`] of the server's clock (bounds inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OccurredAt(DateTime<Utc>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OccurredAtError {
    #[error("is in the future")]
    InFuture,
    #[error("is older than {}", Span(*max_age))]
    TooOld { max_age: TimeDelta },
}

impl OccurredAt {
    pub fn parse(
        device_time: DateTime<Utc>,
        server_now: DateTime<Utc>,
        bounds: TimeBounds,
    ) -> Result<Self, OccurredAtError> {
        let ahead = device_time.signed_duration_since(server_now);
        if ahead > bounds.max_skew {
            return Err(OccurredAtError::InFuture);
        }
        if -ahead > bounds.max_age {
            return Err(OccurredAtError::TooOld {
                max_age: bounds.max_age,
            });
        }
        Ok(Self(device_time))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }

    /// The Africa/Conakry day it happened on.
    pub fn day(self) -> NaiveDate {
        conakry_day(self.0)
    }
}

impl From<OccurredAt> for DateTime<Utc> {
    fn from(at: OccurredAt) -> Self {
        at.0
    }
}

/// A duration in the largest whole unit: "30 days", "12 hours", "5 minutes", "90 seconds".
struct Span(TimeDelta);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.num_seconds();
        let (n, unit) = match secs {
            s if s != 0 && s % 86_400 == 0 => (s / 86_400, "day"),
            s if s != 0 && s % 3_600 == 0 => (s / 3_600, "hour"),
            s if s != 0 && s % 60 == 0 => (s / 60, "minute"),
            s => (s, "second"),
        };
        let plural = if n == 1 { "" } else { "s" };
        write!(f, "{n} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn conakry_days_are_utc_days() {
        assert_eq!(
            conakry_day(at("2026-03-14T23:59:59Z")),
            NaiveDate::from_ymd_opt(2026, 3, 14).expect("date")
        );
        assert_eq!(
            conakry_day(at("2026-03-15T00:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 3, 15).expect("date")
        );
        // A Paris phone's 00:30 on the 15th is still the 14th in Conakry.
        assert_eq!(
            conakry_day(at("2026-03-15T00:30:00+01:00")),
            NaiveDate::from_ymd_opt(2026, 3, 14).expect("date")
        );
        let day = NaiveDate::from_ymd_opt(2026, 12, 31).expect("date");
        assert_eq!(conakry_day_start(day), at("2026-12-31T00:00:00Z"));
        assert_eq!(conakry_day(conakry_day_start(day)), day);
        // The ends of the calendar do not panic.
        let _ = conakry_day_start(NaiveDate::MIN);
        let _ = conakry_day_start(NaiveDate::MAX);
        let _ = conakry_day(DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn device_times_within_bounds_are_accepted_inclusively() {
        let now = at("2026-03-15T10:00:00Z");
        let bounds = TimeBounds::default();
        for ok in [
            "2026-03-15T10:00:00Z",
            "2026-03-15T10:05:00Z",
            "2026-02-13T10:00:00Z",
        ] {
            assert_eq!(
                OccurredAt::parse(at(ok), now, bounds).map(OccurredAt::get),
                Ok(at(ok))
            );
        }
        assert_eq!(
            OccurredAt::parse(at("2026-03-15T10:05:01Z"), now, bounds),
            Err(OccurredAtError::InFuture)
        );
        assert_eq!(
            OccurredAt::parse(at("2026-02-13T09:59:59Z"), now, bounds),
            Err(OccurredAtError::TooOld {
                max_age: TimeDelta::days(30)
            })
        );
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let now = at("2026-03-15T10:00:00Z");
        let bounds = TimeBounds::default();
        assert_eq!(
            OccurredAt::parse(DateTime::<Utc>::MAX_UTC, now, bounds),
            Err(OccurredAtError::InFuture)
        );
        assert!(matches!(
            OccurredAt::parse(DateTime::<Utc>::MIN_UTC, now, bounds),
            Err(OccurredAtError::TooOld { .. })
        ));
        let wide = TimeBounds {
            max_skew: TimeDelta::MAX,
            max_age: TimeDelta::MAX,
        };
        assert!(OccurredAt::parse(DateTime::<Utc>::MIN_UTC, now, wide).is_ok());
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(OccurredAtError::InFuture.to_string(), "is in the future");
        assert_eq!(
            OccurredAtError::TooOld {
                max_age: TimeDelta::days(30)
            }
            .to_string(),
            "is older than 30 days"
        );
        assert_eq!(
            OccurredAtError::TooOld {
                max_age: TimeDelta::hours(1)
            }
            .to_string(),
            "is older than 1 hour"
        );
        assert_eq!(
            OccurredAtError::TooOld {
                max_age: TimeDelta::seconds(90)
            }
            .to_string(),
            "is older than 90 seconds"
        );
    }

    #[test]
    fn occurred_at_knows_its_day() {
        let now = at("2026-03-15T00:10:00Z");
        let occurred = OccurredAt::parse(at("2026-03-14T23:50:00Z"), now, TimeBounds::default())
            .expect("within bounds");
        assert_eq!(
            occurred.day(),
            NaiveDate::from_ymd_opt(2026, 3, 14).expect("date")
        );
    }
}
