//! Arrival of an agent at a tenant of the day's missions: the proof of presence recorded on
//! the mission (`missions.arrived_at`).
//!
//! Decisions:
//! - Same leniency as the visit check (`domain::presence`): the fix's accuracy radius is given
//!   to the agent, capped at the arrival radius, so a fix counts as arrived when
//!   `distance - min(accuracy, radius) <= radius`. A fix vaguer than `max_accuracy_m` proves
//!   nothing and is skipped, as are mock-location fixes.
//! - The arrival time is the fix time of the earliest qualifying fix (device clock, the moment
//!   the agent was there), not the time the server heard of it; a mission already marked
//!   arrived keeps its first time.

use chrono::{DateTime, Utc};

use super::position::Position;
use super::presence::LatLng;

/// How close a fix must come to the tenant's home.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalRule {
    /// Radius around the home, metres (default 100).
    pub radius_m: f64,
    /// Fixes with a larger accuracy radius are ignored, metres (default 150).
    pub max_accuracy_m: f64,
}

impl Default for ArrivalRule {
    fn default() -> Self {
        Self {
            radius_m: 100.0,
            max_accuracy_m: 150.0,
        }
    }
}

impl ArrivalRule {
    /// Whether `fix` puts the agent at `home` (haversine distance, see the module header).
    pub fn arrived(&self, fix: &Position, home: LatLng) -> bool {
        if fix.is_mock_location || fix.accuracy.metres() > self.max_accuracy_m {
            return false;
        }
        let slack = fix.accuracy.metres().min(self.radius_m);
        fix.location.distance_m(home) - slack <= self.radius_m
    }
}

/// A mission of the day not yet marked arrived: its id and the tenant's home.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenVisit<Id> {
    pub mission_id: Id,
    pub home: LatLng,
}

/// For each visit that one of `fixes` reaches, the mission id and the earliest fix time that
/// does; visits no fix reaches are left out. Order of the answer: that of `visits`.
pub fn arrivals<Id: Copy>(
    rule: &ArrivalRule,
    visits: &[OpenVisit<Id>],
    fixes: &[Position],
) -> Vec<(Id, DateTime<Utc>)> {
    visits
        .iter()
        .filter_map(|visit| {
            fixes
                .iter()
                .filter(|fix| rule.arrived(fix, visit.home))
                .map(|fix| fix.fix_time)
                .min()
                .map(|at| (visit.mission_id, at))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::presence::Accuracy;

    fn fix(lat: f64, lng: f64, accuracy: f64, minute: u32) -> Position {
        Position {
            sequence: 1,
            location: LatLng::parse(lat, lng).unwrap(),
            accuracy: Accuracy::parse(accuracy).unwrap(),
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
            battery_percent: None,
            is_mock_location: false,
            fix_time: Utc.with_ymd_and_hms(2026, 11, 30, 9, minute, 0).unwrap(),
        }
    }

    fn home() -> LatLng {
        LatLng::parse(9.5, -13.7).unwrap()
    }

    #[test]
    fn accuracy_helps_up_to_the_radius() {
        let rule = ArrivalRule::default();
        // 0.0015° of latitude ≈ 167 m.
        assert!(!rule.arrived(&fix(9.5015, -13.7, 10.0, 0), home()));
        assert!(rule.arrived(&fix(9.5015, -13.7, 80.0, 0), home()));
        // ≈ 222 m with 150 m accuracy: the slack is capped at 100 m.
        assert!(!rule.arrived(&fix(9.502, -13.7, 150.0, 0), home()));
        // Too vague to prove anything, however close.
        assert!(!rule.arrived(&fix(9.5, -13.7, 151.0, 0), home()));
        let mut mocked = fix(9.5, -13.7, 5.0, 0);
        mocked.is_mock_location = true;
        assert!(!rule.arrived(&mocked, home()));
    }

    #[test]
    fn the_earliest_qualifying_fix_gives_the_time() {
        let rule = ArrivalRule::default();
        let visits = [
            OpenVisit {
                mission_id: 1,
                home: home(),
            },
            OpenVisit {
                mission_id: 2,
                home: LatLng::parse(9.6, -13.6).unwrap(),
            },
        ];
        // Out of order on purpose: minute 7 then minute 5.
        let fixes = [
            fix(9.5, -13.7, 5.0, 7),
            fix(9.5001, -13.7, 5.0, 5),
            fix(9.55, -13.65, 5.0, 6),
        ];
        let found = arrivals(&rule, &visits, &fixes);
        assert_eq!(found, vec![(1, fixes[1].fix_time)]);
    }

    proptest! {
        #[test]
        fn never_arrived_beyond_twice_the_radius(
            dlat in -0.01f64..0.01,
            dlng in -0.01f64..0.01,
            accuracy in 0.0f64..10_000.0,
            radius in 1.0f64..500.0,
        ) {
            let rule = ArrivalRule { radius_m: radius, max_accuracy_m: 10_000.0 };
            let f = fix(9.5 + dlat, -13.7 + dlng, accuracy, 0);
            let distance = f.location.distance_m(home());
            if rule.arrived(&f, home()) {
                prop_assert!(distance <= 2.0 * radius + 1e-6);
            }
            if distance <= radius {
                prop_assert!(rule.arrived(&f, home()));
            }
        }
    }
}
