//! Proof of presence for visits: how far the agent's GPS fix was from the tenant's home.
//!
//! Rules, in this order:
//! 1. a fix the phone flags as mocked is `MockLocation` and counts as far away;
//! 2. no fix: `NoFix`;
//! 3. a position devices give when they have no fix is `UnreliableFix` ([`is_placeholder`]):
//!    0,0 ("null island"), the Android emulator's default position (Mountain View,
//!    37.4220,-122.0840, within 0.001°), an accuracy of 0 or less (none given: Android reports
//!    0, iOS a negative radius, when the position is not a real fix) or over
//!    [`MAX_USEFUL_ACCURACY_M`] (2 km: a cell-tower guess that cannot place anyone at a door);
//! 4. a fix taken at the wrong time is `StaleFix` ([`fix_time_problem`]): more than
//!    [`MAX_FIX_AGE`] (10 min) before `occurred_at` (a position cached from earlier in the
//!    round), more than [`MAX_FIX_LEAD`] (2 min, the skew between the GPS clock and the
//!    device's) after it (taken after the visit it should prove), before 2000-01-01 (a
//!    device clock reset), or not given at all: a position without the time it was taken
//!    may be one cached from hours earlier, so it proves nothing either. The visit is kept
//!    (refusing it would lose a visit recorded offline by an older app), shown as `StaleFix`;
//! 5. unknown home: `NoHomeLocation`;
//!
//!    `NoFix`, `UnreliableFix`, `StaleFix` and `NoHomeLocation` count neither as near nor
//!    as far away: nothing proves the agent was there, nothing proves they were elsewhere;
//! 6. otherwise the great-circle (haversine) distance decides, leniently: the fix's accuracy
//!    radius is given to the agent, so the visit is far away only when
//!    `distance - min(accuracy, max_distance) > max_distance`. A fix 250 m away with 80 m
//!    accuracy is near for a 200 m limit (it may well have been 170 m away). The slack is
//!    capped at `max_distance` so that a vague fix (accuracy 3 km) cannot vouch for a visit
//!    across town: nothing farther than twice the limit is ever near. Distance and accuracy
//!    are stored with the visit for managers to judge.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use geo::{Distance, Haversine, Point};

/// A position in degrees (WGS 84), both coordinates finite and in range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLng {
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinateProblem {
    NotFinite,
    OutOfRange,
}

/// The coordinate at fault and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LatLngError {
    #[error("{}", latitude_message(*.0))]
    Latitude(CoordinateProblem),
    #[error("{}", longitude_message(*.0))]
    Longitude(CoordinateProblem),
}

fn latitude_message(problem: CoordinateProblem) -> &'static str {
    match problem {
        CoordinateProblem::NotFinite => "latitude must be a finite number",
        CoordinateProblem::OutOfRange => "latitude must be between -90 and 90",
    }
}

fn longitude_message(problem: CoordinateProblem) -> &'static str {
    match problem {
        CoordinateProblem::NotFinite => "longitude must be a finite number",
        CoordinateProblem::OutOfRange => "longitude must be between -180 and 180",
    }
}

impl LatLngError {
    /// The field at fault, relative to the `LatLng` message.
    pub fn field(&self) -> &'static str {
        match self {
            LatLngError::Latitude(_) => "latitude",
            LatLngError::Longitude(_) => "longitude",
        }
    }
}

fn check_coordinate(value: f64, limit: f64) -> Result<f64, CoordinateProblem> {
    if !value.is_finite() {
        Err(CoordinateProblem::NotFinite)
    } else if !(-limit..=limit).contains(&value) {
        Err(CoordinateProblem::OutOfRange)
    } else {
        Ok(value)
    }
}

impl LatLng {
    /// Latitude in -90..=90, longitude in -180..=180; NaN and infinities refused. The latitude
    /// is checked first.
    pub fn parse(latitude: f64, longitude: f64) -> Result<Self, LatLngError> {
        let latitude = check_coordinate(latitude, 90.0).map_err(LatLngError::Latitude)?;
        let longitude = check_coordinate(longitude, 180.0).map_err(LatLngError::Longitude)?;
        Ok(Self {
            latitude,
            longitude,
        })
    }

    pub fn latitude(self) -> f64 {
        self.latitude
    }

    pub fn longitude(self) -> f64 {
        self.longitude
    }

    /// Great-circle distance in metres (haversine, mean Earth radius 6,371,008.8 m).
    pub fn distance_m(self, other: LatLng) -> f64 {
        Haversine.distance(self.point(), other.point())
    }

    fn point(self) -> Point<f64> {
        Point::new(self.longitude, self.latitude)
    }
}

impl fmt::Display for LatLng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.latitude, self.longitude)
    }
}

/// The largest accuracy radius of a fix that can prove anything, in metres.
pub const MAX_USEFUL_ACCURACY_M: f64 = 2_000.0;

/// The horizontal accuracy of a fix (radius, metres): finite, >= 0. 0 means the device gave
/// none (a negative radius, iOS's "no valid position", is read as none).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Accuracy(f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccuracyError {
    #[error("must be a finite number")]
    NotFinite,
}

impl Accuracy {
    /// A finite radius; negative means none (0).
    pub fn parse(metres: f64) -> Result<Self, AccuracyError> {
        if !metres.is_finite() {
            Err(AccuracyError::NotFinite)
        } else {
            // -0.0 and negative radii become 0.0.
            Ok(Self(metres.max(0.0) + 0.0))
        }
    }

    pub fn metres(self) -> f64 {
        self.0
    }
}

/// How far from the home a visit may be, in metres: finite and > 0. Default 200 m.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct MaxDistance(f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a finite number of metres greater than 0")]
pub struct MaxDistanceError;

impl MaxDistance {
    pub const DEFAULT: MaxDistance = MaxDistance(200.0);

    pub fn parse(metres: f64) -> Result<Self, MaxDistanceError> {
        if metres.is_finite() && metres > 0.0 {
            Ok(Self(metres))
        } else {
            Err(MaxDistanceError)
        }
    }

    pub fn metres(self) -> f64 {
        self.0
    }
}

impl Default for MaxDistance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The result of the location check of a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationCheck {
    Near,
    FarAway,
    NoFix,
    NoHomeLocation,
    MockLocation,
    /// A position devices give without a real fix ([`is_placeholder`]).
    UnreliableFix,
    /// A fix taken too long before the visit, after it, before 2000, or at an unknown time
    /// ([`fix_time_problem`]).
    StaleFix,
}

/// How long before `occurred_at` a fix may have been taken and still prove the visit.
pub const MAX_FIX_AGE: TimeDelta = TimeDelta::minutes(10);
/// How long after `occurred_at` a fix may have been taken: the skew between the GPS clock
/// (`fix_time`) and the device clock (`occurred_at`).
pub const MAX_FIX_LEAD: TimeDelta = TimeDelta::minutes(2);
/// No fix taken before 2000-01-01T00:00:00Z is real: a device whose clock was reset.
pub const EARLIEST_FIX_UNIX_SECS: i64 = 946_684_800;

/// Why a fix's time keeps it from proving a visit at `occurred_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixTimeProblem {
    /// The device gave no time for the fix.
    Unknown,
    /// Before 2000.
    BeforeEpoch,
    /// More than [`MAX_FIX_AGE`] before the visit.
    TooOld,
    /// More than [`MAX_FIX_LEAD`] after the visit.
    AfterVisit,
}

/// Whether a fix taken at `fix_time` (GPS clock) may prove a visit at `occurred_at` (device
/// clock): `None` when it may. A fix without a time cannot be shown to belong to the visit:
/// [`FixTimeProblem::Unknown`].
pub fn fix_time_problem(
    fix_time: Option<DateTime<Utc>>,
    occurred_at: DateTime<Utc>,
) -> Option<FixTimeProblem> {
    let Some(fix_time) = fix_time else {
        return Some(FixTimeProblem::Unknown);
    };
    if fix_time.timestamp() < EARLIEST_FIX_UNIX_SECS {
        Some(FixTimeProblem::BeforeEpoch)
    } else if fix_time < occurred_at - MAX_FIX_AGE {
        Some(FixTimeProblem::TooOld)
    } else if fix_time > occurred_at + MAX_FIX_LEAD {
        Some(FixTimeProblem::AfterVisit)
    } else {
        None
    }
}

/// Positions devices report when they have no real fix, within 0.001° (about 110 m):
/// 0,0 and the Android emulator's default (Google's campus, Mountain View).
const PLACEHOLDER_POSITIONS: [(f64, f64); 2] = [(0.0, 0.0), (37.4220, -122.0840)];

/// Whether a fix is a position a device gives when it has none: a placeholder position, or an
/// accuracy of 0 (none given) or over [`MAX_USEFUL_ACCURACY_M`].
pub fn is_placeholder(fix: LatLng, accuracy: Accuracy) -> bool {
    let metres = accuracy.metres();
    metres <= 0.0
        || metres > MAX_USEFUL_ACCURACY_M
        || PLACEHOLDER_POSITIONS.iter().any(|&(lat, lng)| {
            (fix.latitude - lat).abs() <= 0.001 && (fix.longitude - lng).abs() <= 0.001
        })
}

/// A visit as stored: what its location check is computed from again when it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredVisit {
    pub is_mock: bool,
    pub fix: Option<LatLng>,
    /// Metres; `None` when not stored.
    pub accuracy_m: Option<f64>,
    pub fix_time: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
    /// A distance to the home was stored (the home was known).
    pub has_distance: bool,
    /// `interactions.is_far_from_tenant`.
    pub is_far: bool,
}

/// What a stored visit shows: its location check, and whether it counts as far away, by the
/// module's rules from what was stored. A mocked fix counts as far away whatever was stored
/// (rows written otherwise, the seeded data sets, may carry the mock flag alone); a fix that
/// proves nothing never counts as far away.
pub fn stored_presence(visit: &StoredVisit) -> (LocationCheck, bool) {
    let accuracy = Accuracy::parse(visit.accuracy_m.unwrap_or(0.0)).unwrap_or_default();
    let check = match visit.fix {
        _ if visit.is_mock => LocationCheck::MockLocation,
        None => LocationCheck::NoFix,
        Some(fix) => match fix_problem(fix, accuracy, visit.fix_time, visit.occurred_at) {
            Some(problem) => problem,
            None if !visit.has_distance => LocationCheck::NoHomeLocation,
            None if visit.is_far => LocationCheck::FarAway,
            None => LocationCheck::Near,
        },
    };
    (check, counts_as_far(check))
}

/// `UnreliableFix` or `StaleFix` when the fix proves nothing (rules 3 and 4).
fn fix_problem(
    fix: LatLng,
    accuracy: Accuracy,
    fix_time: Option<DateTime<Utc>>,
    occurred_at: DateTime<Utc>,
) -> Option<LocationCheck> {
    if is_placeholder(fix, accuracy) {
        Some(LocationCheck::UnreliableFix)
    } else if fix_time_problem(fix_time, occurred_at).is_some() {
        Some(LocationCheck::StaleFix)
    } else {
        None
    }
}

fn counts_as_far(check: LocationCheck) -> bool {
    matches!(check, LocationCheck::FarAway | LocationCheck::MockLocation)
}

/// When a visit's fix was taken and when the visit happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixTiming {
    /// `fix_time` (GPS clock), if the device gave one.
    pub fix_time: Option<DateTime<Utc>>,
    /// The visit's `occurred_at` (device clock).
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceCheck {
    /// Fix to home, metres; `None` when either is unknown.
    pub distance_m: Option<f64>,
    /// Stored as `interactions.is_far_from_tenant`: `FarAway` or `MockLocation`.
    pub far_away: bool,
    pub check: LocationCheck,
}

/// Checks a visit's fix against the tenant's home by the rules on the place alone (all but 4):
/// for a caller that has judged the fix's time itself (the demo data, whose fixes are taken
/// just before their visits). A recorded visit is checked by [`check_timed_visit`].
pub fn check_visit(
    visit: Option<LatLng>,
    accuracy: Accuracy,
    is_mock: bool,
    home: Option<LatLng>,
    max_distance: MaxDistance,
) -> PresenceCheck {
    check_timed_visit(visit, accuracy, is_mock, None, home, max_distance)
}

/// Checks a visit's fix against the tenant's home, every rule of the module applied (the
/// fix's time when `timing` is given).
pub fn check_timed_visit(
    visit: Option<LatLng>,
    accuracy: Accuracy,
    is_mock: bool,
    timing: Option<FixTiming>,
    home: Option<LatLng>,
    max_distance: MaxDistance,
) -> PresenceCheck {
    let distance_m = visit.zip(home).map(|(fix, home)| fix.distance_m(home));
    let problem = visit.and_then(|fix| match timing {
        Some(timing) => fix_problem(fix, accuracy, timing.fix_time, timing.occurred_at),
        None => is_placeholder(fix, accuracy).then_some(LocationCheck::UnreliableFix),
    });
    let check = if is_mock {
        LocationCheck::MockLocation
    } else if visit.is_none() {
        LocationCheck::NoFix
    } else if let Some(problem) = problem {
        problem
    } else if home.is_none() {
        LocationCheck::NoHomeLocation
    } else {
        let slack = accuracy.metres().min(max_distance.metres());
        match distance_m {
            Some(distance) if distance - slack > max_distance.metres() => LocationCheck::FarAway,
            _ => LocationCheck::Near,
        }
    };
    PresenceCheck {
        distance_m,
        far_away: counts_as_far(check),
        check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kaloum, Conakry's city centre.
    fn kaloum() -> LatLng {
        LatLng::parse(9.5092, -13.7122).expect("valid")
    }

    /// ~150 m north of Kaloum (1° of latitude ≈ 111,195 m).
    fn north_150m() -> LatLng {
        LatLng::parse(9.5092 + 0.001349, -13.7122).expect("valid")
    }

    /// ~500 m east of Kaloum (1° of longitude ≈ 111,195 m × cos 9.51° ≈ 109,667 m).
    fn east_500m() -> LatLng {
        LatLng::parse(9.5092, -13.7122 + 0.004559).expect("valid")
    }

    /// ~250 m north of Kaloum.
    fn north_250m() -> LatLng {
        LatLng::parse(9.5092 + 0.002248, -13.7122).expect("valid")
    }

    fn accuracy(m: f64) -> Accuracy {
        Accuracy::parse(m).expect("valid accuracy")
    }

    fn distance(check: &PresenceCheck) -> f64 {
        check.distance_m.expect("a distance")
    }

    #[test]
    fn haversine_distances_in_conakry() {
        let near = kaloum().distance_m(north_150m());
        assert!((149.0..151.0).contains(&near), "{near}");
        let far = kaloum().distance_m(east_500m());
        assert!((499.0..501.0).contains(&far), "{far}");
        assert_eq!(kaloum().distance_m(kaloum()), 0.0);
        // Kaloum to Matoto (≈ 9.5865, -13.6190): about 13.4 km across the peninsula.
        let matoto = LatLng::parse(9.5865, -13.6190).expect("valid");
        let across = kaloum().distance_m(matoto);
        assert!((13_000.0..14_000.0).contains(&across), "{across}");
    }

    #[test]
    fn near_and_far() {
        let home = Some(kaloum());
        let near = check_visit(
            Some(north_150m()),
            accuracy(10.0),
            false,
            home,
            MaxDistance::DEFAULT,
        );
        assert_eq!(near.check, LocationCheck::Near);
        assert!(!near.far_away);
        assert!((149.0..151.0).contains(&distance(&near)));

        let far = check_visit(
            Some(east_500m()),
            accuracy(20.0),
            false,
            home,
            MaxDistance::DEFAULT,
        );
        assert_eq!(far.check, LocationCheck::FarAway);
        assert!(far.far_away);
        assert!((499.0..501.0).contains(&distance(&far)));
    }

    #[test]
    fn accuracy_is_given_to_the_agent_up_to_the_limit() {
        let home = Some(kaloum());
        let check = |fix, acc| {
            check_visit(Some(fix), accuracy(acc), false, home, MaxDistance::DEFAULT).check
        };
        // 250 m away: far with a sharp fix, near with 80 m accuracy (250 - 80 = 170 <= 200).
        assert_eq!(check(north_250m(), 5.0), LocationCheck::FarAway);
        assert_eq!(check(north_250m(), 80.0), LocationCheck::Near);
        // 500 m away with 300 m accuracy: 500 - 300 = 200 would pass, but the slack is capped
        // at the 200 m limit.
        assert_eq!(check(east_500m(), 300.0), LocationCheck::FarAway);
        assert_eq!(check(east_500m(), 2_000.0), LocationCheck::FarAway);
        let limit = MaxDistance::parse(300.0).expect("valid");
        assert_eq!(
            check_visit(Some(east_500m()), accuracy(250.0), false, home, limit).check,
            LocationCheck::Near
        );
    }

    #[test]
    fn boundary_is_near() {
        let home = kaloum();
        let fix = north_150m();
        // 1 m of accuracy given to the agent: exactly at the limit.
        let exact = MaxDistance::parse(home.distance_m(fix) - 1.0).expect("valid");
        let result = check_visit(Some(fix), accuracy(1.0), false, Some(home), exact);
        assert_eq!(result.check, LocationCheck::Near);
    }

    #[test]
    fn mock_no_fix_and_unknown_home() {
        let home = Some(kaloum());
        let mocked = check_visit(
            Some(kaloum()),
            accuracy(5.0),
            true,
            home,
            MaxDistance::DEFAULT,
        );
        assert_eq!(mocked.check, LocationCheck::MockLocation);
        assert!(mocked.far_away);
        assert_eq!(mocked.distance_m, Some(0.0));

        let mocked_without_fix = check_visit(None, accuracy(0.0), true, home, MaxDistance::DEFAULT);
        assert_eq!(mocked_without_fix.check, LocationCheck::MockLocation);
        assert!(mocked_without_fix.far_away);
        assert_eq!(mocked_without_fix.distance_m, None);

        let no_fix = check_visit(None, accuracy(0.0), false, home, MaxDistance::DEFAULT);
        assert_eq!(
            no_fix,
            PresenceCheck {
                distance_m: None,
                far_away: false,
                check: LocationCheck::NoFix
            }
        );
        let no_home = check_visit(
            Some(east_500m()),
            accuracy(5.0),
            false,
            None,
            MaxDistance::DEFAULT,
        );
        assert_eq!(
            no_home,
            PresenceCheck {
                distance_m: None,
                far_away: false,
                check: LocationCheck::NoHomeLocation
            }
        );
    }

    #[test]
    fn coordinates_are_checked_per_field() {
        assert!(LatLng::parse(90.0, 180.0).is_ok());
        assert!(LatLng::parse(-90.0, -180.0).is_ok());
        for (lat, lng, field, message) in [
            (
                f64::NAN,
                0.0,
                "latitude",
                "latitude must be a finite number",
            ),
            (
                f64::INFINITY,
                f64::NAN,
                "latitude",
                "latitude must be a finite number",
            ),
            (
                90.000_001,
                0.0,
                "latitude",
                "latitude must be between -90 and 90",
            ),
            (
                0.0,
                f64::NEG_INFINITY,
                "longitude",
                "longitude must be a finite number",
            ),
            (
                9.5,
                -180.5,
                "longitude",
                "longitude must be between -180 and 180",
            ),
        ] {
            let error = LatLng::parse(lat, lng).expect_err("invalid");
            assert_eq!(error.field(), field);
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(kaloum().to_string(), "9.509200,-13.712200");
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339")
    }

    fn stored(fix: Option<LatLng>, is_far: bool) -> StoredVisit {
        StoredVisit {
            is_mock: false,
            fix,
            accuracy_m: Some(10.0),
            fix_time: Some(at("2026-11-30T09:59:30Z")),
            occurred_at: at("2026-11-30T10:00:00Z"),
            has_distance: true,
            is_far,
        }
    }

    #[test]
    fn stored_visits_show_what_was_stored() {
        let home = Some(kaloum());
        let mocked = StoredVisit {
            is_mock: true,
            ..stored(None, false)
        };
        assert_eq!(
            stored_presence(&mocked),
            (LocationCheck::MockLocation, true)
        );
        assert_eq!(
            stored_presence(&stored(None, false)),
            (LocationCheck::NoFix, false)
        );
        let no_home = StoredVisit {
            has_distance: false,
            ..stored(home, false)
        };
        assert_eq!(
            stored_presence(&no_home),
            (LocationCheck::NoHomeLocation, false)
        );
        assert_eq!(
            stored_presence(&stored(home, true)),
            (LocationCheck::FarAway, true)
        );
        assert_eq!(
            stored_presence(&stored(home, false)),
            (LocationCheck::Near, false)
        );
        // Stored far away, but the fix proves nothing: not far away.
        let stale = StoredVisit {
            fix_time: Some(at("2026-11-30T07:00:00Z")),
            ..stored(home, true)
        };
        assert_eq!(stored_presence(&stale), (LocationCheck::StaleFix, false));
        // Near or far as stored, a fix without its time proves nothing.
        for is_far in [false, true] {
            let untimed = StoredVisit {
                fix_time: None,
                ..stored(home, is_far)
            };
            assert_eq!(stored_presence(&untimed), (LocationCheck::StaleFix, false));
        }
        let vague = StoredVisit {
            accuracy_m: Some(0.0),
            ..stored(home, true)
        };
        assert_eq!(
            stored_presence(&vague),
            (LocationCheck::UnreliableFix, false)
        );
    }

    #[test]
    fn a_fix_taken_at_the_wrong_time_proves_nothing() {
        let visit = at("2026-11-30T10:00:00Z");
        for (fix_time, problem) in [
            (None, Some(FixTimeProblem::Unknown)),
            (Some("2026-11-30T10:00:00Z"), None),
            (Some("2026-11-30T09:50:00Z"), None),
            (Some("2026-11-30T10:02:00Z"), None),
            (Some("2026-11-30T09:49:59Z"), Some(FixTimeProblem::TooOld)),
            (Some("2026-11-30T06:00:00Z"), Some(FixTimeProblem::TooOld)),
            (
                Some("2026-11-30T10:02:01Z"),
                Some(FixTimeProblem::AfterVisit),
            ),
            (
                Some("2027-01-01T00:00:00Z"),
                Some(FixTimeProblem::AfterVisit),
            ),
            (
                Some("1999-12-31T23:59:59Z"),
                Some(FixTimeProblem::BeforeEpoch),
            ),
            (
                Some("1970-01-01T00:00:00Z"),
                Some(FixTimeProblem::BeforeEpoch),
            ),
        ] {
            assert_eq!(
                fix_time_problem(fix_time.map(at), visit),
                problem,
                "{fix_time:?}"
            );
        }
        // Hours old, the fix at the door does not prove the visit; nor, 500 m away, is it
        // held against the agent.
        let home = Some(kaloum());
        let timing = |fix_time: &str| {
            Some(FixTiming {
                fix_time: Some(at(fix_time)),
                occurred_at: visit,
            })
        };
        for fix in [kaloum(), east_500m()] {
            let check = check_timed_visit(
                Some(fix),
                accuracy(10.0),
                false,
                timing("2026-11-30T07:00:00Z"),
                home,
                MaxDistance::DEFAULT,
            );
            assert_eq!(check.check, LocationCheck::StaleFix);
            assert!(!check.far_away);
        }
        let fresh = check_timed_visit(
            Some(east_500m()),
            accuracy(10.0),
            false,
            timing("2026-11-30T09:58:00Z"),
            home,
            MaxDistance::DEFAULT,
        );
        assert_eq!(fresh.check, LocationCheck::FarAway);
        // At the door or 500 m away, a fix without its time proves nothing.
        for fix in [kaloum(), east_500m()] {
            let untimed = check_timed_visit(
                Some(fix),
                accuracy(10.0),
                false,
                Some(FixTiming {
                    fix_time: None,
                    occurred_at: visit,
                }),
                home,
                MaxDistance::DEFAULT,
            );
            assert_eq!(untimed.check, LocationCheck::StaleFix, "{fix}");
            assert!(!untimed.far_away);
        }
        // A mocked fix is held against the agent whenever it was taken.
        let mocked = check_timed_visit(
            Some(kaloum()),
            accuracy(10.0),
            true,
            timing("1999-01-01T00:00:00Z"),
            home,
            MaxDistance::DEFAULT,
        );
        assert_eq!(mocked.check, LocationCheck::MockLocation);
    }

    #[test]
    fn positions_devices_give_without_a_fix_prove_nothing() {
        let home = Some(kaloum());
        let check = |fix: LatLng, acc: f64| {
            check_visit(Some(fix), accuracy(acc), false, home, MaxDistance::DEFAULT)
        };
        let null_island = LatLng::parse(0.0, 0.0).expect("valid");
        let emulator = LatLng::parse(37.421_998, -122.084).expect("valid");
        for (fix, acc) in [
            (null_island, 10.0),
            (emulator, 5.0),
            (kaloum(), 0.0),
            (east_500m(), 0.0),
            (east_500m(), -1.0),
            (east_500m(), 2_000.1),
            (east_500m(), 50_000.0),
        ] {
            let result = check(fix, acc);
            assert_eq!(result.check, LocationCheck::UnreliableFix, "{fix} {acc}");
            assert!(!result.far_away);
        }
        assert_eq!(check(kaloum(), 2_000.0).check, LocationCheck::Near);
        // Real positions near the placeholders are positions.
        let near_null = LatLng::parse(0.01, 0.0).expect("valid");
        assert_eq!(check(near_null, 5.0).check, LocationCheck::FarAway);
    }

    proptest::proptest! {
        /// A fix that proves nothing never counts as far away, wherever it is.
        #[test]
        fn a_fix_that_proves_nothing_is_never_far(
            lat in -90.0f64..=90.0,
            lng in -180.0f64..=180.0,
            acc in -10.0f64..100_000.0,
            fix_offset_secs in -86_400i64 * 365 * 30..86_400,
            is_mock in proptest::bool::ANY,
        ) {
            let fix = LatLng::parse(lat, lng).expect("in range");
            let occurred_at = at("2026-11-30T10:00:00Z");
            let fix_time = occurred_at + TimeDelta::seconds(fix_offset_secs);
            let accuracy = Accuracy::parse(acc).expect("finite");
            let result = check_timed_visit(
                Some(fix),
                accuracy,
                is_mock,
                Some(FixTiming { fix_time: Some(fix_time), occurred_at }),
                Some(kaloum()),
                MaxDistance::DEFAULT,
            );
            let proves_nothing = is_placeholder(fix, accuracy)
                || fix_time_problem(Some(fix_time), occurred_at).is_some();
            if is_mock {
                proptest::prop_assert_eq!(result.check, LocationCheck::MockLocation);
            } else if proves_nothing {
                proptest::prop_assert!(!result.far_away);
                proptest::prop_assert!(matches!(
                    result.check,
                    LocationCheck::UnreliableFix | LocationCheck::StaleFix
                ));
            } else {
                proptest::prop_assert!(matches!(
                    result.check,
                    LocationCheck::Near | LocationCheck::FarAway
                ));
            }
            // A read gives what the write gave.
            let stored = StoredVisit {
                is_mock,
                fix: Some(fix),
                accuracy_m: Some(accuracy.metres()),
                fix_time: Some(fix_time),
                occurred_at,
                has_distance: true,
                is_far: result.far_away,
            };
            proptest::prop_assert_eq!(stored_presence(&stored), (result.check, result.far_away));
        }
    }

    #[test]
    fn accuracy_and_limit_are_checked() {
        assert_eq!(Accuracy::parse(0.0).map(Accuracy::metres), Ok(0.0));
        assert_eq!(Accuracy::parse(-0.0).map(Accuracy::metres), Ok(0.0));
        assert_eq!(Accuracy::parse(-1.0).map(Accuracy::metres), Ok(0.0));
        assert_eq!(
            Accuracy::parse(50_000.0).map(Accuracy::metres),
            Ok(50_000.0)
        );
        assert_eq!(Accuracy::parse(f64::NAN), Err(AccuracyError::NotFinite));
        assert_eq!(
            Accuracy::parse(f64::INFINITY),
            Err(AccuracyError::NotFinite)
        );
        assert_eq!(MaxDistance::default().metres(), 200.0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(MaxDistance::parse(bad), Err(MaxDistanceError));
        }
    }

    #[test]
    fn any_valid_pair_gives_a_finite_distance() {
        let corners = [
            (90.0, 180.0),
            (-90.0, -180.0),
            (0.0, 180.0),
            (0.0, -180.0),
            (45.0, 0.0),
        ];
        for (a_lat, a_lng) in corners {
            for (b_lat, b_lng) in corners {
                let a = LatLng::parse(a_lat, a_lng).expect("valid");
                let b = LatLng::parse(b_lat, b_lng).expect("valid");
                let d = a.distance_m(b);
                assert!(d.is_finite() && d >= 0.0, "{d}");
            }
        }
    }
}
