//! A route problem as the API receives it: a start, stops (tenants or points), the shape of the
//! route, how the agent travels and how long to search — each part parsed once into a type that
//! cannot hold an invalid value.
//!
//! Decisions
//! - A problem holds 1 to [`MAX_STOPS`] stops with distinct [`StopId`]s; a tenant stop without
//!   an id of its own is named by its tenant id.
//! - Tenant stops are resolved to their home location by the caller (a store read with the
//!   caller's scope), which yields [`Located`] stops or [`Unrouted`] reasons; the solver only
//!   ever sees points.
//! - Speeds are per travel mode and configured; durations are distance ÷ speed.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::domain::LatLng;

/// Most stops in one problem: the dense matrix of 2,001 points takes 16 MB and ~0.1–0.4 s to
/// build (docs/adr/0007-route-solver.md).
pub const MAX_STOPS: usize = 2_000;

/// Longest stop id, in characters.
pub const MAX_STOP_ID_CHARS: usize = 64;

/// Longest time spent at one stop.
pub const MAX_SERVICE: Duration = Duration::from_secs(24 * 3600);

/// A client-chosen stop id: 1 to 64 characters, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StopId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StopIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 64 characters")]
    TooLong,
}

impl StopId {
    pub fn parse(value: &str) -> Result<Self, StopIdError> {
        if value.is_empty() {
            Err(StopIdError::Empty)
        } else if value.chars().count() > MAX_STOP_ID_CHARS {
            Err(StopIdError::TooLong)
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a stop is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopTarget {
    /// At the tenant's home location (resolved within the caller's scope).
    Tenant(Uuid),
    /// At these coordinates.
    Point(LatLng),
}

/// A place to visit, and the time spent there.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStop {
    pub id: StopId,
    pub target: StopTarget,
    /// 0..=[`MAX_SERVICE`].
    pub service: Duration,
}

/// A time spent at a stop: at most [`MAX_SERVICE`].
pub fn service_duration(value: Duration) -> Result<Duration, ServiceError> {
    if value > MAX_SERVICE {
        Err(ServiceError)
    } else {
        Ok(value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at most 24 hours")]
pub struct ServiceError;

/// A stop with its position: what the solver orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub id: StopId,
    pub location: LatLng,
    pub service: Duration,
}

/// Why a stop is left out of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    /// No such tenant, or one outside the caller's scope (the two look alike on purpose).
    TenantNotFound,
    /// The tenant has no (valid) home location.
    NoLocation,
}

/// How the agent travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TravelMode {
    Walking,
    MotoTaxi,
    Car,
}

/// A travel speed, metres per second: finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Speed(f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive number of km/h, at most 200")]
pub struct SpeedError;

impl Speed {
    /// From kilometres per hour, in (0, 200].
    pub fn from_kmh(kmh: f64) -> Result<Self, SpeedError> {
        if kmh.is_finite() && kmh > 0.0 && kmh <= 200.0 {
            Ok(Self(kmh / 3.6))
        } else {
            Err(SpeedError)
        }
    }

    pub fn metres_per_second(self) -> f64 {
        self.0
    }

    /// Time to cover `metres` at this speed, rounded to the millisecond.
    pub fn travel_time(self, metres: i64) -> Duration {
        Duration::from_millis((metres.max(0) as f64 / self.0 * 1000.0).round() as u64)
    }
}

/// The speed of each travel mode. Defaults (Conakry, measured as door-to-door averages, not
/// top speeds): on foot 4.5 km/h; moto-taxi 18 km/h, weaving through traffic; car 15 km/h,
/// stuck in it (the city's main axes crawl at rush hour).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speeds {
    pub walking: Speed,
    pub moto_taxi: Speed,
    pub car: Speed,
}

impl Default for Speeds {
    fn default() -> Self {
        Self {
            walking: Speed(4.5 / 3.6),
            moto_taxi: Speed(18.0 / 3.6),
            car: Speed(15.0 / 3.6),
        }
    }
}

impl Speeds {
    pub fn of(&self, mode: TravelMode) -> Speed {
        match mode {
            TravelMode::Walking => self.walking,
            TravelMode::MotoTaxi => self.moto_taxi,
            TravelMode::Car => self.car,
        }
    }
}

/// Bounds of a search's time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    /// When the request gives none.
    pub default: Duration,
    /// The largest accepted.
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("must be greater than zero")]
    Zero,
    #[error("must be at most {} ms", .0.as_millis())]
    TooLong(Duration),
}

impl BudgetLimits {
    /// The budget of a search: `requested`, or the default when unset; 0 < budget <= max.
    pub fn budget(&self, requested: Option<Duration>) -> Result<Duration, BudgetError> {
        match requested {
            None => Ok(self.default.min(self.max)),
            Some(d) if d.is_zero() => Err(BudgetError::Zero),
            Some(d) if d > self.max => Err(BudgetError::TooLong(self.max)),
            Some(d) => Ok(d),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StopCountError {
    #[error("at least one stop is required")]
    None,
    #[error("{0} stops: at most 2000 are accepted")]
    TooMany(usize),
}

/// A problem holds 1 to [`MAX_STOPS`] stops.
pub fn check_stop_count(count: usize) -> Result<(), StopCountError> {
    match count {
        0 => Err(StopCountError::None),
        n if n > MAX_STOPS => Err(StopCountError::TooMany(n)),
        _ => Ok(()),
    }
}

/// The stop at `index` reuses the id of an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stop id {id} is used twice")]
pub struct DuplicateStop {
    pub index: usize,
    pub id: StopId,
}

/// Indexes of the stops whose id an earlier stop already has, with that id.
pub fn duplicate_stops(stops: &[RouteStop]) -> Vec<DuplicateStop> {
    let mut seen = HashSet::with_capacity(stops.len());
    stops
        .iter()
        .enumerate()
        .filter(|(_, stop)| !seen.insert(&stop.id))
        .map(|(index, stop)| DuplicateStop {
            index,
            id: stop.id.clone(),
        })
        .collect()
}

/// A valid route problem.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteProblem {
    /// Where the route starts.
    pub start: LatLng,
    /// 1..=[`MAX_STOPS`] stops with distinct ids.
    pub stops: Vec<RouteStop>,
    /// Closed tour (back to `start`) or open path ending at the last stop.
    pub return_to_start: bool,
    pub travel_mode: TravelMode,
    /// Search time, within the RPC's [`BudgetLimits`].
    pub time_budget: Duration,
    /// Seed of the solver's random choices.
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemError {
    #[error(transparent)]
    StopCount(#[from] StopCountError),
    #[error(transparent)]
    Duplicate(#[from] DuplicateStop),
}

impl RouteProblem {
    /// Checks the stop count and that stop ids are distinct (reporting the first duplicate).
    pub fn new(
        start: LatLng,
        stops: Vec<RouteStop>,
        return_to_start: bool,
        travel_mode: TravelMode,
        time_budget: Duration,
        seed: u64,
    ) -> Result<Self, ProblemError> {
        check_stop_count(stops.len())?;
        if let Some(duplicate) = duplicate_stops(&stops).into_iter().next() {
            return Err(duplicate.into());
        }
        Ok(Self {
            start,
            stops,
            return_to_start,
            travel_mode,
            time_budget,
            seed,
        })
    }
}

/// The tenants named by `stops`, each once, in order of first appearance.
pub fn tenant_ids(stops: &[RouteStop]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    stops
        .iter()
        .filter_map(|stop| match stop.target {
            StopTarget::Tenant(id) => seen.insert(id).then_some(id),
            StopTarget::Point(_) => None,
        })
        .collect()
}

/// Places each stop with `locate` (tenant id → home, or why not), keeping the problem's order:
/// the located stops, and the left-out ones with their reason.
pub fn place_stops(
    stops: &[RouteStop],
    mut locate: impl FnMut(Uuid) -> Result<LatLng, Unrouted>,
) -> (Vec<Located>, Vec<(StopId, Unrouted)>) {
    let mut located = Vec::with_capacity(stops.len());
    let mut unrouted = Vec::new();
    for stop in stops {
        let location = match stop.target {
            StopTarget::Point(at) => Ok(at),
            StopTarget::Tenant(tenant) => locate(tenant),
        };
        match location {
            Ok(location) => located.push(Located {
                id: stop.id.clone(),
                location,
                service: stop.service,
            }),
            Err(reason) => unrouted.push((stop.id.clone(), reason)),
        }
    }
    (located, unrouted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(id: &str, target: StopTarget) -> RouteStop {
        RouteStop {
            id: StopId::parse(id).unwrap(),
            target,
            service: Duration::ZERO,
        }
    }

    fn at(lat: f64, lng: f64) -> StopTarget {
        StopTarget::Point(LatLng::parse(lat, lng).unwrap())
    }

    #[test]
    fn stop_ids_are_1_to_64_characters() {
        assert_eq!(StopId::parse(""), Err(StopIdError::Empty));
        assert!(StopId::parse(&"é".repeat(64)).is_ok());
        assert_eq!(StopId::parse(&"a".repeat(65)), Err(StopIdError::TooLong));
    }

    #[test]
    fn stop_counts_are_bounded() {
        assert_eq!(check_stop_count(0), Err(StopCountError::None));
        assert_eq!(check_stop_count(1), Ok(()));
        assert_eq!(check_stop_count(2_000), Ok(()));
        assert_eq!(check_stop_count(2_001), Err(StopCountError::TooMany(2_001)));
    }

    #[test]
    fn duplicates_are_the_later_stops() {
        let stops = vec![
            stop("a", at(9.5, -13.7)),
            stop("b", at(9.5, -13.7)),
            stop("a", at(9.6, -13.7)),
            stop("b", at(9.6, -13.7)),
        ];
        let found: Vec<usize> = duplicate_stops(&stops).iter().map(|d| d.index).collect();
        assert_eq!(found, [2, 3]);
        let refused = RouteProblem::new(
            LatLng::parse(9.5, -13.7).unwrap(),
            stops,
            true,
            TravelMode::Walking,
            Duration::from_secs(1),
            1,
        );
        assert!(matches!(
            refused,
            Err(ProblemError::Duplicate(DuplicateStop { index: 2, .. }))
        ));
    }

    #[test]
    fn budgets_default_and_are_bounded() {
        let limits = BudgetLimits {
            default: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(limits.budget(None), Ok(Duration::from_secs(1)));
        assert_eq!(
            limits.budget(Some(Duration::from_millis(250))),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(limits.budget(Some(Duration::ZERO)), Err(BudgetError::Zero));
        assert_eq!(
            limits.budget(Some(Duration::from_secs(11))),
            Err(BudgetError::TooLong(Duration::from_secs(10)))
        );
    }

    #[test]
    fn speeds_turn_metres_into_time() {
        let speeds = Speeds::default();
        // 4.5 km/h: 1.25 m/s, so 1 km takes 800 s.
        assert_eq!(
            speeds.of(TravelMode::Walking).travel_time(1_000),
            Duration::from_secs(800)
        );
        assert_eq!(
            speeds.of(TravelMode::MotoTaxi).travel_time(1_000),
            Duration::from_secs(200)
        );
        assert_eq!(
            speeds.of(TravelMode::Car).travel_time(1_000),
            Duration::from_secs(240)
        );
        assert!(Speed::from_kmh(0.0).is_err());
        assert!(Speed::from_kmh(f64::NAN).is_err());
        assert_eq!(Speed::from_kmh(36.0).unwrap().metres_per_second(), 10.0);
    }

    #[test]
    fn tenant_stops_are_placed_or_left_out_in_order() {
        let known = Uuid::from_u128(1);
        let homeless = Uuid::from_u128(2);
        let stops = vec![
            stop("t1", StopTarget::Tenant(known)),
            stop("p", at(9.6, -13.6)),
            stop("t2", StopTarget::Tenant(homeless)),
            stop("t3", StopTarget::Tenant(Uuid::from_u128(3))),
        ];
        assert_eq!(tenant_ids(&stops), [known, homeless, Uuid::from_u128(3)]);
        let home = LatLng::parse(9.5, -13.7).unwrap();
        let (located, unrouted) = place_stops(&stops, |id| match id {
            id if id == known => Ok(home),
            id if id == homeless => Err(Unrouted::NoLocation),
            _ => Err(Unrouted::TenantNotFound),
        });
        let ids: Vec<&str> = located.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["t1", "p"]);
        assert_eq!(located[0].location, home);
        assert_eq!(
            unrouted,
            vec![
                (StopId::parse("t2").unwrap(), Unrouted::NoLocation),
                (StopId::parse("t3").unwrap(), Unrouted::TenantNotFound)
            ]
        );
    }
}
