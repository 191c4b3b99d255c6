//! Agent positions from phones: which fixes are kept, how often the phone should report, and
//! whether an agent is online.
//!
//! Decisions:
//! - A fix is checked field by field, in the order of [`RejectReason`]: the first problem is
//!   the reason given back to the phone, and the phone never resends a rejected fix.
//! - A mock-location fix is kept and flagged, never rejected (managers judge it); only arrival
//!   detection ignores it (`domain::arrival`).
//! - The device clock may run ahead of the server by [`PositionRules::max_future_skew`]
//!   (default 5 minutes) before a fix counts as "in the future"; a fix older than the
//!   retention period is refused, since its daily partition is gone (or about to be).
//! - Accuracy must be finite and within 0..=[`MAX_ACCURACY_M`] (10,000 m): a larger radius
//!   says nothing about where the phone was, and a negative one is how devices (iOS) mark a
//!   fix they do not trust. A visit reads a negative radius as "none given" and judges the fix
//!   unreliable (`presence`); a tracked position has no such second chance, so it is refused.
//! - Reporting pace: low battery wins over everything (the phone must last the day), then
//!   nearness to a tenant of the day (arrival needs fresh fixes), then idleness (not moving for
//!   a few minutes).
//! - Online: a session is open, or the last message came within `offline_after` (default 5
//!   minutes).

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use super::presence::{Accuracy, LatLng};

/// Fastest ground speed accepted, metres per second (about 1,200 km/h: above any vehicle an
/// agent rides; larger values are sensor garbage).
pub const MAX_SPEED_MPS: f64 = 340.0;
/// The largest accuracy radius a tracked position may carry, in metres.
pub const MAX_ACCURACY_M: f64 = 10_000.0;
/// Altitude bounds accepted, metres above the WGS84 ellipsoid.
pub const ALTITUDE_RANGE_M: (f64, f64) = (-1_000.0, 20_000.0);

/// Why a position is refused (the proto's `PositionRejectReason`, same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Latitude or longitude missing, not finite or out of range.
    InvalidLocation,
    /// Accuracy not finite, negative or above 10,000 m.
    InvalidAccuracy,
    /// Speed, heading, altitude or battery not finite or out of range.
    InvalidMotion,
    FixTimeMissing,
    /// More than the allowed skew ahead of the server clock.
    FixTimeInFuture,
    /// Older than the retention period.
    FixTimeTooOld,
    /// Sequence 0, or above `i64::MAX` (what PostgreSQL's bigint holds).
    SequenceInvalid,
    /// The sequence is already stored with another fix time.
    SequenceConflict,
}

impl RejectReason {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::InvalidLocation => "invalid_location",
            RejectReason::InvalidAccuracy => "invalid_accuracy",
            RejectReason::InvalidMotion => "invalid_motion",
            RejectReason::FixTimeMissing => "fix_time_missing",
            RejectReason::FixTimeInFuture => "fix_time_in_future",
            RejectReason::FixTimeTooOld => "fix_time_too_old",
            RejectReason::SequenceInvalid => "sequence_invalid",
            RejectReason::SequenceConflict => "sequence_conflict",
        }
    }
}

/// A fix as the phone sent it, nothing checked yet. `location` is `None` when the message
/// had none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawPosition {
    pub sequence: u64,
    /// (latitude, longitude), WGS84 degrees.
    pub location: Option<(f64, f64)>,
    /// Metres.
    pub accuracy_m: f64,
    /// Metres per second.
    pub speed_mps: Option<f64>,
    /// Degrees clockwise from true north.
    pub heading_deg: Option<f64>,
    /// Metres above the WGS84 ellipsoid.
    pub altitude_m: Option<f64>,
    /// 0..=100.
    pub battery_percent: Option<i32>,
    pub is_mock_location: bool,
    pub fix_time: Option<DateTime<Utc>>,
}

/// A checked fix: every field in range, ready to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// 1..=i64::MAX.
    pub sequence: i64,
    pub location: LatLng,
    pub accuracy: Accuracy,
    /// Metres per second, 0..=[`MAX_SPEED_MPS`].
    pub speed_mps: Option<f64>,
    /// Degrees, 0..360 (360 is stored as 0).
    pub heading_deg: Option<f64>,
    /// Metres, within [`ALTITUDE_RANGE_M`].
    pub altitude_m: Option<f64>,
    /// 0..=100.
    pub battery_percent: Option<i16>,
    pub is_mock_location: bool,
    /// Device clock.
    pub fix_time: DateTime<Utc>,
}

impl Position {
    /// Whether `other` is the same stored fix (a resend): same sequence and fix time.
    pub fn same_fix(&self, sequence: i64, fix_time: DateTime<Utc>) -> bool {
        self.sequence == sequence && self.fix_time == fix_time
    }
}

/// The limits a fix is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionRules {
    /// How far ahead of the server clock a fix time may be.
    pub max_future_skew: Duration,
    /// How long positions are kept (days of partitions); older fixes are refused.
    pub retention: Duration,
}

impl Default for PositionRules {
    fn default() -> Self {
        Self {
            max_future_skew: Duration::from_secs(5 * 60),
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

fn in_range(value: Option<f64>, low: f64, high: f64) -> bool {
    value.is_none_or(|v| v.is_finite() && (low..=high).contains(&v))
}

/// Checks one fix received at `now`; the first problem found, in [`RejectReason`] order.
pub fn validate(
    raw: &RawPosition,
    now: DateTime<Utc>,
    rules: &PositionRules,
) -> Result<Position, RejectReason> {
    let (latitude, longitude) = raw.location.ok_or(RejectReason::InvalidLocation)?;
    let location = LatLng::parse(latitude, longitude).map_err(|_| RejectReason::InvalidLocation)?;
    if !in_range(Some(raw.accuracy_m), 0.0, MAX_ACCURACY_M) {
        return Err(RejectReason::InvalidAccuracy);
    }
    let accuracy = Accuracy::parse(raw.accuracy_m).map_err(|_| RejectReason::InvalidAccuracy)?;
    let motion_ok = in_range(raw.speed_mps, 0.0, MAX_SPEED_MPS)
        && in_range(raw.heading_deg, 0.0, 360.0)
        && in_range(raw.altitude_m, ALTITUDE_RANGE_M.0, ALTITUDE_RANGE_M.1)
        && raw.battery_percent.is_none_or(|b| (0..=100).contains(&b));
    if !motion_ok {
        return Err(RejectReason::InvalidMotion);
    }
    // Kept to the microsecond, PostgreSQL's precision, so that a resend compares equal.
    let fix_time = raw
        .fix_time
        .ok_or(RejectReason::FixTimeMissing)?
        .trunc_subsecs(6);
    if fix_time > now + rules.max_future_skew {
        return Err(RejectReason::FixTimeInFuture);
    }
    if fix_time < now - rules.retention {
        return Err(RejectReason::FixTimeTooOld);
    }
    let sequence = i64::try_from(raw.sequence)
        .ok()
        .filter(|s| *s > 0)
        .ok_or(RejectReason::SequenceInvalid)?;
    Ok(Position {
        sequence,
        location,
        accuracy,
        speed_mps: raw.speed_mps.map(|s| s + 0.0),
        heading_deg: raw
            .heading_deg
            .map(|h| if h >= 360.0 { 0.0 } else { h + 0.0 }),
        altitude_m: raw.altitude_m,
        battery_percent: raw.battery_percent.and_then(|b| i16::try_from(b).ok()),
        is_mock_location: raw.is_mock_location,
        fix_time,
    })
}

/// How often the phone should report (the proto's `ReportingHint`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportingHint {
    /// Take a fix at most this often.
    pub interval: Duration,
    /// Skip fixes closer than this to the last reported one, metres.
    pub min_distance_m: f64,
    /// Send once the batch holds this many positions...
    pub max_batch_size: i32,
    /// ...or once its oldest position is this old.
    pub max_batch_delay: Duration,
}

/// The reporting pace, from the fastest to the slowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pace {
    /// Within the approach radius of a tenant of the day: every 5 s.
    NearTenant,
    /// Moving: every 10 s.
    Normal,
    /// Not moving for a while: every 60 s, 25 m apart.
    Idle,
    /// Battery at or below [`LOW_BATTERY_PERCENT`]: every 120 s, 50 m apart.
    LowBattery,
}

/// Battery level at or below which the phone reports slowly.
pub const LOW_BATTERY_PERCENT: i32 = 20;

impl Pace {
    /// The pace for the phone's state: low battery first, then nearness, then idleness.
    pub fn choose(battery_percent: Option<i32>, near_tenant: bool, idle: bool) -> Pace {
        if battery_percent.is_some_and(|b| b <= LOW_BATTERY_PERCENT) {
            Pace::LowBattery
        } else if near_tenant {
            Pace::NearTenant
        } else if idle {
            Pace::Idle
        } else {
            Pace::Normal
        }
    }

    pub fn hint(self) -> ReportingHint {
        let (interval, min_distance_m, max_batch_size, delay) = match self {
            Pace::NearTenant => (5, 0.0, 10, 10),
            Pace::Normal => (10, 10.0, 30, 30),
            Pace::Idle => (60, 25.0, 30, 120),
            Pace::LowBattery => (120, 50.0, 60, 300),
        };
        ReportingHint {
            interval: Duration::from_secs(interval),
            min_distance_m,
            max_batch_size,
            max_batch_delay: Duration::from_secs(delay),
        }
    }
}

/// Radius within which fixes count as "not moving", metres.
pub const IDLE_RADIUS_M: f64 = 30.0;
/// How long fixes must stay within [`IDLE_RADIUS_M`] for the agent to be idle.
pub const IDLE_AFTER: Duration = Duration::from_secs(5 * 60);

/// Whether the agent has stayed within [`IDLE_RADIUS_M`] of the latest fix for
/// [`IDLE_AFTER`]: `recent` holds the latest fixes (any order, mock ones left out by the
/// caller); the fixes must span at least `IDLE_AFTER`.
pub fn is_idle(recent: &[(LatLng, DateTime<Utc>)]) -> bool {
    let Some(&(last, last_time)) = recent.iter().max_by_key(|(_, at)| *at) else {
        return false;
    };
    let window_start = last_time - IDLE_AFTER;
    let spans_window = recent.iter().any(|(_, at)| *at <= window_start);
    spans_window
        && recent
            .iter()
            .filter(|(_, at)| *at >= window_start)
            .all(|(location, _)| location.distance_m(last) <= IDLE_RADIUS_M)
}

/// Whether an agent counts as online at `now`: a session is open, or the last message from
/// the phone came at most `offline_after` ago.
pub fn is_online(
    session_open: bool,
    last_seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    offline_after: Duration,
) -> bool {
    session_open
        || last_seen.is_some_and(|seen| {
            // A time ahead of `now` (another replica's clock) counts as just seen.
            match (now - seen).to_std() {
                Ok(ago) => ago <= offline_after,
                Err(_) => true,
            }
        })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
    }

    fn raw() -> RawPosition {
        RawPosition {
            sequence: 7,
            location: Some((9.5092, -13.7122)),
            accuracy_m: 12.0,
            speed_mps: Some(3.0),
            heading_deg: Some(90.0),
            altitude_m: Some(20.0),
            battery_percent: Some(80),
            is_mock_location: false,
            fix_time: Some(now() - Duration::from_secs(30)),
        }
    }

    fn check(raw: RawPosition) -> Result<Position, RejectReason> {
        validate(&raw, now(), &PositionRules::default())
    }

    #[test]
    fn a_good_fix_is_kept_with_its_fields() {
        let position = check(raw()).unwrap();
        assert_eq!(position.sequence, 7);
        assert_eq!(position.location.latitude(), 9.5092);
        assert_eq!(position.battery_percent, Some(80));
        assert!(position.same_fix(7, now() - Duration::from_secs(30)));
        assert!(!position.same_fix(7, now()));
    }

    #[test]
    fn each_bad_field_has_its_reason() {
        use RejectReason::*;
        let cases: Vec<(RawPosition, RejectReason)> = vec![
            (
                RawPosition {
                    location: None,
                    ..raw()
                },
                InvalidLocation,
            ),
            (
                RawPosition {
                    location: Some((f64::NAN, 0.0)),
                    ..raw()
                },
                InvalidLocation,
            ),
            (
                RawPosition {
                    location: Some((91.0, 0.0)),
                    ..raw()
                },
                InvalidLocation,
            ),
            (
                RawPosition {
                    location: Some((0.0, -180.5)),
                    ..raw()
                },
                InvalidLocation,
            ),
            (
                RawPosition {
                    accuracy_m: f64::INFINITY,
                    ..raw()
                },
                InvalidAccuracy,
            ),
            (
                RawPosition {
                    accuracy_m: -1.0,
                    ..raw()
                },
                InvalidAccuracy,
            ),
            (
                RawPosition {
                    accuracy_m: 50_000.0,
                    ..raw()
                },
                InvalidAccuracy,
            ),
            (
                RawPosition {
                    speed_mps: Some(-0.5),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    speed_mps: Some(1_000.0),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    heading_deg: Some(f64::NAN),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    heading_deg: Some(361.0),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    altitude_m: Some(1e9),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    battery_percent: Some(101),
                    ..raw()
                },
                InvalidMotion,
            ),
            (
                RawPosition {
                    fix_time: None,
                    ..raw()
                },
                FixTimeMissing,
            ),
            (
                RawPosition {
                    fix_time: Some(now() + Duration::from_secs(301)),
                    ..raw()
                },
                FixTimeInFuture,
            ),
            (
                RawPosition {
                    fix_time: Some(now() - Duration::from_secs(91 * 86_400)),
                    ..raw()
                },
                FixTimeTooOld,
            ),
            (
                RawPosition {
                    sequence: 0,
                    ..raw()
                },
                SequenceInvalid,
            ),
            (
                RawPosition {
                    sequence: u64::MAX,
                    ..raw()
                },
                SequenceInvalid,
            ),
        ];
        for (position, reason) in cases {
            assert_eq!(check(position), Err(reason), "{position:?}");
        }
    }

    #[test]
    fn skew_within_limit_and_mock_fixes_are_kept() {
        let ahead = RawPosition {
            fix_time: Some(now() + Duration::from_secs(299)),
            is_mock_location: true,
            heading_deg: Some(360.0),
            ..raw()
        };
        let position = check(ahead).unwrap();
        assert!(position.is_mock_location);
        assert_eq!(position.heading_deg, Some(0.0));
    }

    #[test]
    fn pace_puts_battery_first_then_nearness_then_idleness() {
        assert_eq!(Pace::choose(Some(15), true, true), Pace::LowBattery);
        assert_eq!(Pace::choose(Some(80), true, true), Pace::NearTenant);
        assert_eq!(Pace::choose(None, false, true), Pace::Idle);
        assert_eq!(Pace::choose(Some(21), false, false), Pace::Normal);
        let intervals: Vec<_> = [Pace::NearTenant, Pace::Normal, Pace::Idle, Pace::LowBattery]
            .map(|p| p.hint().interval)
            .to_vec();
        assert!(intervals.windows(2).all(|w| w[0] < w[1]), "{intervals:?}");
    }

    #[test]
    fn idle_needs_a_full_window_within_the_radius() {
        let home = LatLng::parse(9.5, -13.7).unwrap();
        let near = LatLng::parse(9.5001, -13.7).unwrap(); // ~11 m
        let far = LatLng::parse(9.501, -13.7).unwrap(); // ~111 m
        let at = |minutes: i64| now() - chrono::Duration::minutes(minutes);
        assert!(is_idle(&[(home, at(6)), (near, at(3)), (home, at(0))]));
        assert!(
            !is_idle(&[(home, at(3)), (home, at(0))]),
            "window not covered"
        );
        assert!(!is_idle(&[(home, at(6)), (far, at(2)), (home, at(0))]));
        assert!(!is_idle(&[]));
    }

    #[test]
    fn online_with_a_session_or_a_recent_message() {
        let five = Duration::from_secs(300);
        assert!(is_online(true, None, now(), five));
        assert!(is_online(false, Some(now() - five), now(), five));
        assert!(!is_online(
            false,
            Some(now() - five - Duration::from_secs(1)),
            now(),
            five
        ));
        assert!(!is_online(false, None, now(), five));
    }

    proptest! {
        #[test]
        fn accepted_fixes_are_in_range(
            lat in -200.0f64..200.0,
            lng in -200.0f64..200.0,
            accuracy in -10.0f64..20_000.0,
            speed in proptest::option::of(-5.0f64..500.0),
            heading in proptest::option::of(-5.0f64..400.0),
            battery in proptest::option::of(-5i32..120),
            sequence in 0u64..u64::MAX,
            offset_s in -10_000_000i64..10_000,
        ) {
            let candidate = RawPosition {
                sequence,
                location: Some((lat, lng)),
                accuracy_m: accuracy,
                speed_mps: speed,
                heading_deg: heading,
                altitude_m: None,
                battery_percent: battery,
                is_mock_location: false,
                fix_time: Some(now() + chrono::Duration::seconds(offset_s)),
            };
            if let Ok(p) = check(candidate) {
                prop_assert!((-90.0..=90.0).contains(&p.location.latitude()));
                prop_assert!((-180.0..=180.0).contains(&p.location.longitude()));
                prop_assert!((0.0..=10_000.0).contains(&p.accuracy.metres()));
                prop_assert!(p.speed_mps.is_none_or(|s| (0.0..=MAX_SPEED_MPS).contains(&s)));
                prop_assert!(p.heading_deg.is_none_or(|h| (0.0..360.0).contains(&h)));
                prop_assert!(p.battery_percent.is_none_or(|b| (0..=100).contains(&b)));
                prop_assert!(p.sequence > 0);
                prop_assert!(p.fix_time <= now() + Duration::from_secs(300));
            } else {
                let valid = (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lng)
                    && (0.0..=10_000.0).contains(&accuracy)
                    && speed.is_none_or(|s| (0.0..=MAX_SPEED_MPS).contains(&s))
                    && heading.is_none_or(|h| (0.0..=360.0).contains(&h))
                    && battery.is_none_or(|b| (0..=100).contains(&b))
                    && sequence > 0 && sequence <= i64::MAX as u64
                    && (-90 * 86_400..=300).contains(&offset_s);
                prop_assert!(!valid, "a valid fix was refused");
            }
        }
    }
}
