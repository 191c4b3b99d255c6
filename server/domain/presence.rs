//! Proof of presence for visits: how far the agent's GPS fix was from the tenant's home.
//!
//! Rules, in this order:
//! 1. a fix the phone flags as mocked is `MockLocation` and counts as far away;
//! 2. no fix: `NoFix`; unknown home: `NoHomeLocation` (neither counts as far away: nothing
//!    proves the agent was elsewhere);
//! 3. otherwise the great-circle (haversine) distance decides, leniently: the fix's accuracy
//!    radius is given to the agent, so the visit is far away only when
//!    `distance - min(accuracy, max_distance) > max_distance`. A fix 250 m away with 80 m
//!    accuracy is near for a 200 m limit (it may well have been 170 m away). The slack is
//!    capped at `max_distance` so that a vague fix (accuracy 3 km) cannot vouch for a visit
//!    across town: nothing farther than twice the limit is ever near. Distance and accuracy
//!    are stored with the visit for managers to judge.

use std::fmt;

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

/// The largest accuracy radius accepted, in metres.
pub const MAX_ACCURACY_M: f64 = 10_000.0;

/// The horizontal accuracy of a fix (radius, metres): finite, 0..=10,000. 0 means the device
/// gave none.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Accuracy(f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccuracyError {
    #[error("must be a finite number")]
    NotFinite,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most 10000 metres")]
    TooLarge,
}

impl Accuracy {
    pub fn parse(metres: f64) -> Result<Self, AccuracyError> {
        if !metres.is_finite() {
            Err(AccuracyError::NotFinite)
        } else if metres < 0.0 {
            Err(AccuracyError::Negative)
        } else if metres > MAX_ACCURACY_M {
            Err(AccuracyError::TooLarge)
        } else {
            // -0.0 becomes 0.0.
            Ok(Self(metres + 0.0))
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
}

/// What a stored visit shows, from the flags the server stored with it: its location check,
/// and whether it counts as far away. A mocked fix counts as far away whatever was stored
/// (rows written otherwise, the seeded data sets, may carry the mock flag alone).
pub fn stored_presence(
    is_mock: bool,
    has_fix: bool,
    has_distance: bool,
    is_far: bool,
) -> (LocationCheck, bool) {
    let check = if is_mock {
        LocationCheck::MockLocation
    } else if !has_fix {
        LocationCheck::NoFix
    } else if !has_distance {
        LocationCheck::NoHomeLocation
    } else if is_far {
        LocationCheck::FarAway
    } else {
        LocationCheck::Near
    };
    (check, is_far || is_mock)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceCheck {
    /// Fix to home, metres; `None` when either is unknown.
    pub distance_m: Option<f64>,
    /// Stored as `interactions.is_far_from_tenant`: `FarAway` or `MockLocation`.
    pub far_away: bool,
    pub check: LocationCheck,
}

/// Checks a visit's fix against the tenant's home (see the module's rules).
pub fn check_visit(
    visit: Option<LatLng>,
    accuracy: Accuracy,
    is_mock: bool,
    home: Option<LatLng>,
    max_distance: MaxDistance,
) -> PresenceCheck {
    let distance_m = visit.zip(home).map(|(fix, home)| fix.distance_m(home));
    let check = if is_mock {
        LocationCheck::MockLocation
    } else if visit.is_none() {
        LocationCheck::NoFix
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
        far_away: matches!(check, LocationCheck::FarAway | LocationCheck::MockLocation),
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
        assert_eq!(check(east_500m(), 10_000.0), LocationCheck::FarAway);
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
        let exact = MaxDistance::parse(home.distance_m(fix)).expect("valid");
        let result = check_visit(Some(fix), Accuracy::default(), false, Some(home), exact);
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

    #[test]
    fn stored_visits_show_what_was_stored() {
        assert_eq!(
            stored_presence(true, false, false, false),
            (LocationCheck::MockLocation, true)
        );
        assert_eq!(
            stored_presence(false, false, false, false),
            (LocationCheck::NoFix, false)
        );
        assert_eq!(
            stored_presence(false, true, false, false),
            (LocationCheck::NoHomeLocation, false)
        );
        assert_eq!(
            stored_presence(false, true, true, true),
            (LocationCheck::FarAway, true)
        );
        assert_eq!(
            stored_presence(false, true, true, false),
            (LocationCheck::Near, false)
        );
    }

    #[test]
    fn accuracy_and_limit_are_checked() {
        assert_eq!(Accuracy::parse(0.0).map(Accuracy::metres), Ok(0.0));
        assert_eq!(Accuracy::parse(-0.0).map(Accuracy::metres), Ok(0.0));
        assert_eq!(
            Accuracy::parse(10_000.0).map(Accuracy::metres),
            Ok(10_000.0)
        );
        assert_eq!(Accuracy::parse(10_000.1), Err(AccuracyError::TooLarge));
        assert_eq!(Accuracy::parse(-1.0), Err(AccuracyError::Negative));
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
