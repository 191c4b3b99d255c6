//! Request fields every service parses the same way — days, ranges, id lists, device times,
//! bounded text — and the small values every answer shows (days, months, user references,
//! optional ids). Each parser names the field it refuses, so a client learns exactly what to
//! fix (INVALID_ARGUMENT with a BadRequest field violation).
//!
//! Decisions:
//! - Text is trimmed and measured in characters (Unicode scalar values). No text field accepts
//!   a C0 control character (U+0000 to U+001F) or DEL (U+007F): they corrupt logs, exports and
//!   the database's text search, and no person types them. Free-text notes alone accept tab
//!   and newline ([`Text::note`]).
//! - A `Date` is checked part by part (`field.year` 2000..2100, `field.month`, `field.day`), so
//!   the violation names the part at fault.
//! - "Today" is the Africa/Conakry day of the server's clock (`domain::clock`).

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use uuid::Uuid;

use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::app::config::CollectionsConfig;
use crate::domain::{OccurredAt, TimeBounds, conakry_day};
use crate::proto::v1 as pb;

/// The Africa/Conakry day it is now on the server.
pub fn today() -> NaiveDate {
    conakry_day(Utc::now())
}

/// The configured limits on device times (`AKIG_MAX_CLOCK_SKEW_SECS`, `AKIG_MAX_OFFLINE_DAYS`).
pub fn time_bounds(config: &CollectionsConfig) -> TimeBounds {
    TimeBounds {
        max_skew: TimeDelta::from_std(config.max_clock_skew).unwrap_or(TimeDelta::MAX),
        max_age: TimeDelta::from_std(config.max_offline_age).unwrap_or(TimeDelta::MAX),
    }
}

/// A `Date` message: year 2000..2100, month 1..12, a day of that month.
pub fn date(field: &str, date: &pb::Date) -> Result<NaiveDate, ApiError> {
    if !(2000..=2100).contains(&date.year) {
        return Err(ApiError::invalid(
            format!("{field}.year"),
            "must be 2000..2100",
        ));
    }
    let month = u32::try_from(date.month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| ApiError::invalid(format!("{field}.month"), "must be 1..12"))?;
    let day = u32::try_from(date.day)
        .ok()
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(|| ApiError::invalid(format!("{field}.day"), "must be 1..31"))?;
    NaiveDate::from_ymd_opt(date.year, month, day)
        .ok_or_else(|| ApiError::invalid(format!("{field}.day"), "is not a day of that month"))
}

/// A `DateRange` (`field.start_date`, `field.end_date`, both optional and inclusive); an end
/// before the start is refused on `field.end_date`. Problems go to `violations`.
pub fn date_range(
    violations: &mut Violations,
    field: &str,
    range: Option<&pb::DateRange>,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let Some(range) = range else {
        return (None, None);
    };
    let start_field = format!("{field}.start_date");
    let end_field = format!("{field}.end_date");
    let start = range
        .start_date
        .as_ref()
        .and_then(|start| violations.absorb(date(&start_field, start)));
    let end = range
        .end_date
        .as_ref()
        .and_then(|end| violations.absorb(date(&end_field, end)));
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        violations.add(end_field, "must not be before start_date");
    }
    (start, end)
}

/// A `TimeRange` (`field.start_time` included, `field.end_time` excluded, both optional); an
/// end not after the start is refused on `field.end_time`. Problems go to `violations`.
pub fn time_range(
    violations: &mut Violations,
    field: &str,
    range: Option<&pb::TimeRange>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(range) = range else {
        return (None, None);
    };
    let start_field = format!("{field}.start_time");
    let end_field = format!("{field}.end_time");
    let start = range
        .start_time
        .as_ref()
        .and_then(|start| violations.absorb(convert::from_timestamp(&start_field, start)));
    let end = range
        .end_time
        .as_ref()
        .and_then(|end| violations.absorb(convert::from_timestamp(&end_field, end)));
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        violations.add(end_field, "must be after start_time");
    }
    (start, end)
}

/// A list of at most `max` UUIDs, sorted and without repeats; `field[i]` names a bad one.
pub fn ids(field: &str, values: &[String], max: usize) -> Result<Vec<Uuid>, ApiError> {
    if values.len() > max {
        return Err(ApiError::invalid(field, format!("at most {max} ids")));
    }
    let mut ids = values
        .iter()
        .enumerate()
        .map(|(i, value)| convert::uuid(&format!("{field}[{i}]"), value))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// A required device time (`occurred_at` and the like): set and a valid timestamp. Its bounds
/// are the caller's business ([`occurred_at`]), since a retry may carry an old one.
pub fn device_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    convert::from_timestamp(field, value)
}

/// A required device time within `bounds` of `now` (`domain::clock::OccurredAt`); a time out
/// of bounds carries its ErrorReason. Problems go to `violations`.
pub fn occurred_at(
    violations: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
    bounds: TimeBounds,
) -> Option<OccurredAt> {
    let device = violations.absorb(device_time(field, value))?;
    violations.check_reasoned(field, OccurredAt::parse(device, now, bounds))
}

/// Whether `refusal` says only that a device time is older than the offline window
/// (`OCCURRED_AT_TOO_OLD` on one field): the request may be the late retry of an action
/// recorded in time, to be parsed again with [`TimeBounds::without_max_age`] when its
/// request_id is stored.
pub fn refused_only_as_too_old(refusal: &ApiError) -> bool {
    matches!(
        refusal,
        ApiError::InvalidArgumentBecause {
            violations,
            reason: pb::ErrorReason::OccurredAtTooOld,
        } if violations.len() == 1
    )
}

/// What a text field may hold: its length in characters after trimming, and whether it is a
/// free-text note (tab and newline allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    min: usize,
    max: usize,
    note: bool,
}

impl Text {
    /// A single-line text of `min..=max` characters (0: optional).
    pub const fn line(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            note: false,
        }
    }

    /// A free-text note of at most `max` characters, possibly empty; tab and newline allowed.
    pub const fn note(max: usize) -> Self {
        Self {
            min: 0,
            max,
            note: true,
        }
    }

    /// Trims `value` and checks it; INVALID_ARGUMENT on `field` for a control character, a
    /// missing value or a wrong length.
    pub fn parse(self, field: &str, value: &str) -> Result<String, ApiError> {
        let value = value.trim();
        let allowed = |c: char| self.note && matches!(c, '\t' | '\n');
        if value.chars().any(|c| is_control(c) && !allowed(c)) {
            let message = if self.note {
                "must not contain control characters other than tab and newline"
            } else {
                "must not contain control characters"
            };
            return Err(ApiError::invalid(field, message));
        }
        let length = value.chars().count();
        if length == 0 && self.min > 0 {
            return Err(ApiError::invalid(field, "is required"));
        }
        if length < self.min || length > self.max {
            let message = if self.min <= 1 {
                format!("must be at most {} characters", self.max)
            } else {
                format!("must be {} to {} characters", self.min, self.max)
            };
            return Err(ApiError::invalid(field, message));
        }
        Ok(value.to_owned())
    }

    /// [`Text::parse`] where empty means "not given".
    pub fn parse_optional(self, field: &str, value: &str) -> Result<Option<String>, ApiError> {
        let text = self.parse(field, value)?;
        Ok((!text.is_empty()).then_some(text))
    }
}

/// The device a request comes from (`DeviceInfo`): each part optional, each checked as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// The app installation's id, at most 128 characters.
    pub device_id: Option<String>,
    /// The app's version, at most 64 characters.
    pub app_version: Option<String>,
    /// Platform and OS version, at most 64 characters.
    pub platform: Option<String>,
}

const DEVICE_ID: Text = Text::line(0, 128);
const DEVICE_LABEL: Text = Text::line(0, 64);

/// A `DeviceInfo` (`field.device_id`, `field.app_version`, `field.platform`); absent, it is
/// the empty [`Device`]. Problems go to `violations`, one per part at fault.
pub fn device(violations: &mut Violations, field: &str, device: Option<&pb::DeviceInfo>) -> Device {
    let Some(device) = device else {
        return Device::default();
    };
    let mut part = |name: &str, text: Text, value: &str| {
        violations
            .absorb(text.parse_optional(&format!("{field}.{name}"), value))
            .flatten()
    };
    Device {
        device_id: part("device_id", DEVICE_ID, &device.device_id),
        app_version: part("app_version", DEVICE_LABEL, &device.app_version),
        platform: part("platform", DEVICE_LABEL, &device.platform),
    }
}

/// C0 control characters and DEL.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}')
}

// ---------------------------------------------------------------------------------------------
// Values shown in answers.

/// A day as a `Date` message.
pub fn date_proto(day: NaiveDate) -> pb::Date {
    pb::Date {
        year: day.year(),
        month: i32::try_from(day.month()).unwrap_or(0),
        day: i32::try_from(day.day()).unwrap_or(0),
    }
}

/// The month of a day as a `YearMonth` message.
pub fn month_proto(day: NaiveDate) -> pb::YearMonth {
    pb::YearMonth {
        year: day.year(),
        month: i32::try_from(day.month()).unwrap_or(0),
    }
}

/// An optional id as the API spells it: empty when absent.
pub fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// A user as lists show them.
pub fn user_ref(id: Uuid, full_name: &str) -> pb::UserRef {
    pb::UserRef {
        user_id: id.to_string(),
        full_name: full_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn fields(error: ApiError) -> Vec<String> {
        error
            .field_violations()
            .expect("field violations")
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn dates_are_checked_field_by_field() {
        let ok = pb::Date {
            year: 2026,
            month: 2,
            day: 28,
        };
        assert_eq!(date("d", &ok).expect("valid"), day(2026, 2, 28));
        assert_eq!(date_proto(day(2026, 2, 28)), ok);
        for (bad, field) in [
            ((1999, 1, 1), "d.year"),
            ((2026, 13, 1), "d.month"),
            ((2026, 0, 1), "d.month"),
            ((2026, 2, 30), "d.day"),
            ((2026, 2, -1), "d.day"),
        ] {
            let value = pb::Date {
                year: bad.0,
                month: bad.1,
                day: bad.2,
            };
            let error = date("d", &value).expect_err("invalid");
            let ApiError::InvalidArgument(violations) = error else {
                panic!("not invalid argument")
            };
            assert_eq!(violations[0].field, field, "{bad:?}");
        }
        assert_eq!(
            month_proto(day(2026, 3, 17)),
            pb::YearMonth {
                year: 2026,
                month: 3
            }
        );
    }

    #[test]
    fn ranges_name_the_bound_at_fault() {
        let mut v = Violations::new();
        let range = pb::DateRange {
            start_date: Some(date_proto(day(2026, 3, 5))),
            end_date: Some(date_proto(day(2026, 3, 4))),
        };
        assert_eq!(
            date_range(&mut v, "r", Some(&range)),
            (Some(day(2026, 3, 5)), Some(day(2026, 3, 4)))
        );
        assert_eq!(
            fields(v.into_result().expect_err("end first")),
            ["r.end_date"]
        );

        let mut v = Violations::new();
        let at = convert::timestamp(Utc::now());
        let range = pb::TimeRange {
            start_time: Some(at),
            end_time: Some(at),
        };
        time_range(&mut v, "t", Some(&range));
        assert_eq!(fields(v.into_result().expect_err("empty")), ["t.end_time"]);

        let mut v = Violations::new();
        assert_eq!(time_range(&mut v, "t", None), (None, None));
        assert_eq!(date_range(&mut v, "r", None), (None, None));
        assert!(v.into_result().is_ok());
    }

    #[test]
    fn id_lists_are_bounded_sorted_and_deduplicated() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let values = [b.to_string(), a.to_string(), b.to_string()];
        assert_eq!(ids("ids", &values, 3).expect("valid"), [a, b]);
        assert_eq!(
            fields(ids("ids", &values, 2).expect_err("too many")),
            ["ids"]
        );
        let bad = [a.to_string(), "x".into()];
        assert_eq!(fields(ids("ids", &bad, 5).expect_err("bad")), ["ids[1]"]);
        assert_eq!(id_or_empty(None), "");
        assert_eq!(id_or_empty(Some(a)), a.to_string());
    }

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        let reason = Text::line(3, 500);
        assert_eq!(reason.parse("r", "  abc  ").expect("valid"), "abc");
        assert!(reason.parse("r", &"é".repeat(500)).is_ok());
        assert!(reason.parse("r", &"é".repeat(501)).is_err());
        assert!(reason.parse("r", " ab ").is_err());
        assert_eq!(fields(reason.parse("r", "").expect_err("empty")), ["r"]);
        for hostile in ["a\u{0}bc", "abc\u{1b}[2J", "ab\tc", "ab\nc", "ab\u{7f}c"] {
            assert_eq!(
                fields(reason.parse("r", hostile).expect_err("control")),
                ["r"],
                "{hostile:?}"
            );
        }

        let notes = Text::note(10);
        assert_eq!(notes.parse("n", "").expect("empty"), "");
        assert_eq!(
            notes.parse("n", "a\tb\nc").expect("tab, newline"),
            "a\tb\nc"
        );
        for hostile in ["a\u{0}b", "a\rb", "a\u{7}b"] {
            assert!(notes.parse("n", hostile).is_err(), "{hostile:?}");
        }
        assert!(notes.parse("n", &"x".repeat(11)).is_err());
        assert_eq!(
            Text::line(0, 64).parse_optional("q", "  ").expect("empty"),
            None
        );
        assert_eq!(
            Text::line(0, 64)
                .parse_optional("q", " KAL-1 ")
                .expect("given"),
            Some("KAL-1".to_owned())
        );
    }

    #[test]
    fn device_parts_are_text() {
        let mut v = Violations::new();
        assert_eq!(device(&mut v, "device", None), Device::default());
        let info = pb::DeviceInfo {
            device_id: " a1b2 ".into(),
            app_version: String::new(),
            platform: "android 13".into(),
        };
        assert_eq!(
            device(&mut v, "device", Some(&info)),
            Device {
                device_id: Some("a1b2".into()),
                app_version: None,
                platform: Some("android 13".into()),
            }
        );
        assert!(v.into_result().is_ok());
        let hostile = pb::DeviceInfo {
            device_id: "a\u{0}b".into(),
            app_version: "x".repeat(65),
            platform: "ios\n17".into(),
        };
        let mut v = Violations::new();
        device(&mut v, "device", Some(&hostile));
        assert_eq!(
            fields(v.into_result().expect_err("refused")),
            ["device.device_id", "device.app_version", "device.platform"]
        );
    }

    #[test]
    fn device_times_are_required_and_bounded() {
        let now = Utc::now();
        let mut v = Violations::new();
        assert!(occurred_at(&mut v, "at", None, now, TimeBounds::default()).is_none());
        let future = convert::timestamp(now + TimeDelta::hours(1));
        assert!(occurred_at(&mut v, "at", Some(&future), now, TimeBounds::default()).is_none());
        let error = v.into_result().expect_err("invalid");
        assert_eq!(fields(error), ["at", "at"]);
        let fine = convert::timestamp(now);
        let mut v = Violations::new();
        assert!(occurred_at(&mut v, "at", Some(&fine), now, TimeBounds::default()).is_some());
    }
}
