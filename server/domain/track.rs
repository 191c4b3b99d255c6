//! An agent's track: the stored fixes between two times, simplified for drawing, with the
//! distance travelled and the stops made.
//!
//! Decisions:
//! - Simplification is Ramer–Douglas–Peucker (`geo::SimplifyIdx`) on a local equirectangular
//!   projection in metres around the track's mean latitude, so that the tolerance is in metres;
//!   over a city (tens of kilometres) the projection's error is far below GPS noise. The
//!   points kept are original fixes (indices), never moved.
//! - Distance is the sum of haversine legs (`presence::LatLng::distance_m`) of the points
//!   given: of the simplified polyline when the caller measures what it draws.
//! - A stop is a run of consecutive fixes that stay within `radius_m` of the run's first fix
//!   for at least `min_duration` (defaults 50 m, 5 minutes): the place where the agent stood,
//!   e.g. a visit. Found on the raw fixes, before simplification.

use std::time::Duration;

use chrono::{DateTime, Utc};
use geo::{Coord, LineString, SimplifyIdx};

use super::presence::LatLng;

/// A fix of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackFix {
    pub location: LatLng,
    pub fix_time: DateTime<Utc>,
}

/// Metres per degree of latitude (mean Earth radius 6,371,008.8 m).
const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

/// The indices of the fixes kept by Douglas–Peucker with `tolerance_m` (metres; 0 or less
/// keeps every fix). The first and last fixes are always kept; indices ascend.
pub fn simplify(fixes: &[TrackFix], tolerance_m: f64) -> Vec<usize> {
    if tolerance_m <= 0.0 || fixes.len() <= 2 || !tolerance_m.is_finite() {
        return (0..fixes.len()).collect();
    }
    let mean_lat = fixes.iter().map(|f| f.location.latitude()).sum::<f64>() / fixes.len() as f64;
    let x_scale = METRES_PER_DEGREE * mean_lat.to_radians().cos();
    let line: LineString<f64> = fixes
        .iter()
        .map(|f| Coord {
            x: f.location.longitude() * x_scale,
            y: f.location.latitude() * METRES_PER_DEGREE,
        })
        .collect();
    line.simplify_idx(tolerance_m)
}

/// Length of the polyline through `points`, metres (sum of haversine legs).
pub fn distance_m(points: &[LatLng]) -> f64 {
    points.windows(2).map(|w| w[0].distance_m(w[1])).sum()
}

/// Where and when the agent stood still.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    /// The first fix of the stop.
    pub location: LatLng,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Fixes in the stop.
    pub fix_count: usize,
}

/// The stops in `fixes` (by fix time): runs within `radius_m` of their first fix lasting at
/// least `min_duration`.
pub fn stops(fixes: &[TrackFix], radius_m: f64, min_duration: Duration) -> Vec<Stop> {
    let mut found = Vec::new();
    let mut start = 0;
    while start < fixes.len() {
        let anchor = fixes[start];
        let mut end = start;
        while end + 1 < fixes.len()
            && fixes[end + 1].location.distance_m(anchor.location) <= radius_m
        {
            end += 1;
        }
        let lasted = (fixes[end].fix_time - anchor.fix_time)
            .to_std()
            .unwrap_or_default();
        if end > start && lasted >= min_duration {
            found.push(Stop {
                location: anchor.location,
                start: anchor.fix_time,
                end: fixes[end].fix_time,
                fix_count: end - start + 1,
            });
            start = end + 1;
        } else {
            start += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(lat: f64, lng: f64, minute: i64) -> TrackFix {
        TrackFix {
            location: LatLng::parse(lat, lng).unwrap(),
            fix_time: Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
                + chrono::Duration::minutes(minute),
        }
    }

    #[test]
    fn a_straight_line_keeps_its_ends() {
        let line: Vec<_> = (0..20)
            .map(|i| at(9.5 + 0.001 * i as f64, -13.7, i))
            .collect();
        assert_eq!(simplify(&line, 1.0), vec![0, 19]);
        assert_eq!(simplify(&line, 0.0).len(), 20);
    }

    #[test]
    fn a_corner_is_kept_and_noise_is_not() {
        // East for 10 fixes then north; ~5 m of sideways noise on the way.
        let mut fixes = Vec::new();
        for i in 0..10 {
            let noise = if i % 2 == 0 { 0.00004 } else { 0.0 };
            fixes.push(at(9.5 + noise, -13.7 + 0.001 * i as f64, i));
        }
        for i in 1..10 {
            fixes.push(at(9.5 + 0.001 * i as f64, -13.691, 9 + i));
        }
        let kept = simplify(&fixes, 20.0);
        assert_eq!(kept, vec![0, 9, 18]);
        let points: Vec<_> = kept.iter().map(|&i| fixes[i].location).collect();
        // ≈ 989 m east then ≈ 1,001 m north.
        let d = distance_m(&points);
        assert!((d - 1_990.0).abs() < 20.0, "{d}");
    }

    #[test]
    fn stops_need_time_in_one_place() {
        let mut fixes = vec![at(9.50, -13.7, 0), at(9.51, -13.7, 2)];
        // Ten minutes within ~20 m.
        for i in 0..6 {
            fixes.push(at(9.52 + 0.0001 * (i % 2) as f64, -13.7, 4 + 2 * i));
        }
        fixes.push(at(9.53, -13.7, 16));
        // Two minutes only: not a stop.
        fixes.push(at(9.53, -13.7, 18));
        let found = stops(&fixes, 50.0, Duration::from_secs(300));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fix_count, 6);
        assert_eq!(found[0].start, fixes[2].fix_time);
        assert_eq!(found[0].end, fixes[7].fix_time);
    }

    proptest! {
        #[test]
        fn simplified_track_is_a_sub_track_no_longer_than_the_raw(
            steps in proptest::collection::vec((-0.001f64..0.001, -0.001f64..0.001), 0..200),
            tolerance in 0.0f64..200.0,
        ) {
            let mut lat = 9.5;
            let mut lng = -13.7;
            let fixes: Vec<_> = steps.iter().enumerate().map(|(i, (dlat, dlng))| {
                lat += dlat;
                lng += dlng;
                at(lat, lng, i as i64)
            }).collect();
            let kept = simplify(&fixes, tolerance);
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]));
            if !fixes.is_empty() {
                prop_assert_eq!(kept.first().copied(), Some(0));
                prop_assert_eq!(kept.last().copied(), Some(fixes.len() - 1));
            }
            let raw: Vec<_> = fixes.iter().map(|f| f.location).collect();
            let simple: Vec<_> = kept.iter().map(|&i| fixes[i].location).collect();
            prop_assert!(distance_m(&simple) <= distance_m(&raw) + 1e-6);
            let found = stops(&fixes, 50.0, Duration::from_secs(300));
            prop_assert!(found.iter().all(|s| s.end - s.start >= chrono::Duration::minutes(5)));
            prop_assert!(found.windows(2).all(|w| w[0].end < w[1].start));
        }
    }
}
