//! A trip to plan: from a point, through located stops, and maybe back to a point; its
//! great-circle matrix and shape for the solver; and the plan (legs, times, totals) of an order
//! the solver returns.
//!
//! Decisions
//! - Point 0 of the matrix is `from`, points 1..=n are the stops in the trip's order, and a
//!   return point other than `from` is point n + 1, the fixed end of an open path
//!   ([`Shape::OpenTo`]); a return to `from` itself is a closed tour.
//! - Leg distances are the matrix's whole metres, so the plan's total is the solver's cost.
//! - A leg's arrival offset counts travel and the service time at the stops before it.

use std::time::Duration;

use super::problem::{Located, Speed};
use super::{DenseMatrix, DistanceMatrix, Shape, haversine};
use crate::domain::LatLng;

/// The points to order and how the route ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// Where the route starts.
    pub from: LatLng,
    /// The stops to order.
    pub stops: Vec<Located>,
    /// Where the route ends after the last stop: `None` for an open path ending at the last
    /// stop.
    pub back_to: Option<LatLng>,
    /// Travel speed for the durations.
    pub speed: Speed,
}

/// One leg: from the start or a stop to a stop or the return point.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// Index in [`Trip::stops`] of the leg's origin; `None` for the start.
    pub from: Option<usize>,
    /// Index in [`Trip::stops`] of the leg's end; `None` for the return point.
    pub to: Option<usize>,
    /// Where the leg ends.
    pub to_location: LatLng,
    /// Length, whole metres.
    pub distance_m: i64,
    /// Travel time at the trip's speed.
    pub travel: Duration,
    /// Time from the start of the route to the arrival at `to_location`.
    pub arrival: Duration,
}

/// A planned route.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Indexes in [`Trip::stops`], in visiting order (every stop once).
    pub order: Vec<usize>,
    /// Legs in visiting order, the return leg last when there is one.
    pub legs: Vec<Leg>,
    /// Sum of the legs' lengths, metres.
    pub distance_m: i64,
    /// Sum of the legs' travel times.
    pub travel: Duration,
    /// Travel plus service at every stop.
    pub duration: Duration,
}

impl Trip {
    /// The matrix's points: `from`, the stops, then the return point when it is not `from`.
    pub fn points(&self) -> Vec<LatLng> {
        let mut points = Vec::with_capacity(self.stops.len() + 2);
        points.push(self.from);
        points.extend(self.stops.iter().map(|s| s.location));
        if let Some(end) = self.back_to.filter(|&end| end != self.from) {
            points.push(end);
        }
        points
    }

    /// How the solver must shape the route over [`Trip::points`].
    pub fn shape(&self) -> Shape {
        match self.back_to {
            None => Shape::Open,
            Some(end) if end == self.from => Shape::Closed,
            Some(_) => Shape::OpenTo(self.stops.len() + 1),
        }
    }

    /// Great-circle metres between [`Trip::points`] (`O(n²)`: the caller counts it in the
    /// search's time).
    pub fn matrix(&self) -> DenseMatrix {
        haversine(&self.points())
    }

    /// The plan of `order`, a route over [`Trip::points`] from point 0 as the solver returns
    /// it for [`Trip::shape`], with distances from `matrix` (built by [`Trip::matrix`]).
    pub fn plan(&self, matrix: &DenseMatrix, order: &[usize]) -> Plan {
        let n = self.stops.len();
        // Point k of the matrix is stop k - 1; the return point (k = n + 1) or point 0 at the
        // end of a closed tour is the end of the route.
        let mut points: Vec<usize> = order.to_vec();
        if self.shape() == Shape::Closed && n > 0 {
            points.push(0);
        }
        let stop_of = |point: usize| (1..=n).contains(&point).then(|| point - 1);
        let mut legs = Vec::with_capacity(points.len().saturating_sub(1));
        let (mut clock, mut distance_m, mut travel) = (Duration::ZERO, 0, Duration::ZERO);
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let from = stop_of(a);
            if let Some(stop) = from {
                clock += self.stops[stop].service;
            }
            let length = matrix.dist(a, b);
            let time = self.speed.travel_time(length);
            clock += time;
            distance_m += length;
            travel += time;
            let to = stop_of(b);
            legs.push(Leg {
                from,
                to,
                to_location: match to {
                    Some(stop) => self.stops[stop].location,
                    None => self.back_to.unwrap_or(self.from),
                },
                distance_m: length,
                travel: time,
                arrival: clock,
            });
        }
        let stops: Vec<usize> = points.iter().filter_map(|&p| stop_of(p)).collect();
        let service: Duration = stops.iter().map(|&s| self.stops[s].service).sum();
        Plan {
            order: stops,
            legs,
            distance_m,
            travel,
            duration: travel + service,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::route::problem::{Speed, StopId};

    fn point(lat: f64, lng: f64) -> LatLng {
        LatLng::parse(lat, lng).unwrap()
    }

    fn located(id: &str, at: LatLng, service_s: u64) -> Located {
        Located {
            id: StopId::parse(id).unwrap(),
            location: at,
            service: Duration::from_secs(service_s),
        }
    }

    /// Start, then two stops due east of it, 0.01° apart (~1,097 m at 9.5° N).
    fn trip(back_to: Option<LatLng>) -> Trip {
        Trip {
            from: point(9.5, -13.70),
            stops: vec![
                located("far", point(9.5, -13.68), 600),
                located("near", point(9.5, -13.69), 300),
            ],
            back_to,
            speed: Speed::from_kmh(36.0).unwrap(),
        }
    }

    #[test]
    fn an_open_path_has_one_leg_per_stop() {
        let trip = trip(None);
        assert_eq!(trip.shape(), Shape::Open);
        let matrix = trip.matrix();
        assert_eq!(matrix.len(), 3);
        let plan = trip.plan(&matrix, &[0, 2, 1]);
        assert_eq!(plan.order, [1, 0]);
        assert_eq!(plan.legs.len(), 2);
        let (first, second) = (&plan.legs[0], &plan.legs[1]);
        assert_eq!((first.from, first.to), (None, Some(1)));
        assert_eq!((second.from, second.to), (Some(1), Some(0)));
        assert_eq!(second.to_location, point(9.5, -13.68));
        assert!(
            (first.distance_m - 1_097).abs() <= 2,
            "{}",
            first.distance_m
        );
        // 10 m/s.
        assert_eq!(
            first.travel,
            Duration::from_millis(first.distance_m as u64 * 100)
        );
        assert_eq!(first.arrival, first.travel);
        // The 300 s at "near" come before the second arrival.
        assert_eq!(
            second.arrival,
            first.travel + Duration::from_secs(300) + second.travel
        );
        assert_eq!(plan.distance_m, first.distance_m + second.distance_m);
        assert_eq!(plan.travel, first.travel + second.travel);
        assert_eq!(plan.duration, plan.travel + Duration::from_secs(900));
    }

    #[test]
    fn a_closed_tour_ends_with_the_return_leg() {
        let trip = trip(Some(point(9.5, -13.70)));
        assert_eq!(trip.shape(), Shape::Closed);
        let matrix = trip.matrix();
        let plan = trip.plan(&matrix, &[0, 2, 1]);
        assert_eq!(plan.order, [1, 0]);
        assert_eq!(plan.legs.len(), 3);
        let back = &plan.legs[2];
        assert_eq!((back.from, back.to), (Some(0), None));
        assert_eq!(back.to_location, trip.from);
        assert_eq!(back.distance_m, matrix.dist(1, 0));
        assert_eq!(plan.duration, plan.travel + Duration::from_secs(900));
        assert_eq!(back.arrival, plan.duration);
    }

    #[test]
    fn a_return_elsewhere_is_a_fixed_end() {
        let home = point(9.51, -13.70);
        let trip = trip(Some(home));
        assert_eq!(trip.shape(), Shape::OpenTo(3));
        let matrix = trip.matrix();
        assert_eq!(matrix.len(), 4);
        let plan = trip.plan(&matrix, &[0, 2, 1, 3]);
        assert_eq!(plan.order, [1, 0]);
        let back = plan.legs.last().unwrap();
        assert_eq!((back.to, back.to_location), (None, home));
    }

    #[test]
    fn no_stops_means_no_leg_unless_going_back_elsewhere() {
        let mut empty = trip(Some(point(9.5, -13.70)));
        empty.stops.clear();
        let plan = empty.plan(&empty.matrix(), &[0]);
        assert!(plan.legs.is_empty() && plan.order.is_empty());
        assert_eq!(plan.duration, Duration::ZERO);
        empty.back_to = Some(point(9.51, -13.70));
        let plan = empty.plan(&empty.matrix(), &[0, 1]);
        assert_eq!(plan.legs.len(), 1);
        assert_eq!(plan.legs[0].to, None);
    }
}
