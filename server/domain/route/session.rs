//! The state of a live route session: where the agent is, the stops still to visit, and the
//! client's updates (position, stop visited, added, removed), each checked before it applies.
//!
//! Decisions
//! - Update ids are strictly increasing: an id not above the last one seen is refused, and any
//!   message with a higher id moves the mark, even one refused for another reason.
//! - Stop ids are unique among the stops still in the problem (to visit or left out); a
//!   visited or removed stop leaves it, so its id may come back in a later `add`.
//! - After a visit the agent is at the stop: the next plan starts there (until a position
//!   update says otherwise).
//! - With `return_to_start` the route ends back at the problem's start, wherever the agent is
//!   now; otherwise it ends at the last stop.

use std::time::Duration;

use super::problem::{Located, MAX_STOPS, Speeds, StopId, TravelMode, Unrouted};
use super::trip::Trip;
use crate::domain::LatLng;

/// Why an update is refused (the session goes on with its previous state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("update_id {got} is not above the last one, {last}")]
    NotIncreasing { got: u64, last: u64 },
    #[error("no stop {0} in the problem")]
    UnknownStop(StopId),
    #[error("stop {0} is already in the problem")]
    DuplicateStop(StopId),
    #[error("the problem already has 2000 stops")]
    TooManyStops,
}

/// A stop to add: located, or left out for a reason.
#[derive(Debug, Clone, PartialEq)]
pub enum NewStop {
    Located(Located),
    Unrouted(StopId, Unrouted),
}

/// The live problem of a route session.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSessionState {
    start: LatLng,
    position: LatLng,
    return_to_start: bool,
    travel_mode: TravelMode,
    time_budget: Duration,
    seed: u64,
    remaining: Vec<Located>,
    unrouted: Vec<(StopId, Unrouted)>,
    last_update_id: u64,
    applied_update_id: u64,
}

/// What the session opens with: the problem, its stops placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub start: LatLng,
    pub located: Vec<Located>,
    pub unrouted: Vec<(StopId, Unrouted)>,
    pub return_to_start: bool,
    pub travel_mode: TravelMode,
    pub time_budget: Duration,
    pub seed: u64,
    pub update_id: u64,
}

impl RouteSessionState {
    pub fn open(opening: Opening) -> Self {
        Self {
            start: opening.start,
            position: opening.start,
            return_to_start: opening.return_to_start,
            travel_mode: opening.travel_mode,
            time_budget: opening.time_budget,
            seed: opening.seed,
            remaining: opening.located,
            unrouted: opening.unrouted,
            last_update_id: opening.update_id,
            applied_update_id: opening.update_id,
        }
    }

    /// Accepts `update_id` when it is above every id seen so far (and remembers it).
    pub fn check_update_id(&mut self, update_id: u64) -> Result<(), UpdateError> {
        if update_id <= self.last_update_id {
            return Err(UpdateError::NotIncreasing {
                got: update_id,
                last: self.last_update_id,
            });
        }
        self.last_update_id = update_id;
        Ok(())
    }

    /// The agent is now at `at`.
    pub fn move_to(&mut self, update_id: u64, at: LatLng) {
        self.position = at;
        self.applied_update_id = update_id;
    }

    /// A stop was visited: it leaves the problem, and the agent is there.
    pub fn visit(&mut self, update_id: u64, id: &StopId) -> Result<(), UpdateError> {
        if let Some(i) = self.remaining.iter().position(|s| &s.id == id) {
            let stop = self.remaining.remove(i);
            self.position = stop.location;
        } else if let Some(i) = self.unrouted.iter().position(|(s, _)| s == id) {
            self.unrouted.remove(i);
        } else {
            return Err(UpdateError::UnknownStop(id.clone()));
        }
        self.applied_update_id = update_id;
        Ok(())
    }

    /// A stop joins the problem.
    pub fn add(&mut self, update_id: u64, stop: NewStop) -> Result<(), UpdateError> {
        let id = match &stop {
            NewStop::Located(located) => &located.id,
            NewStop::Unrouted(id, _) => id,
        };
        if self.has(id) {
            return Err(UpdateError::DuplicateStop(id.clone()));
        }
        if self.remaining.len() + self.unrouted.len() >= MAX_STOPS {
            return Err(UpdateError::TooManyStops);
        }
        match stop {
            NewStop::Located(located) => self.remaining.push(located),
            NewStop::Unrouted(id, reason) => self.unrouted.push((id, reason)),
        }
        self.applied_update_id = update_id;
        Ok(())
    }

    /// A stop leaves the problem.
    pub fn remove(&mut self, update_id: u64, id: &StopId) -> Result<(), UpdateError> {
        if let Some(i) = self.remaining.iter().position(|s| &s.id == id) {
            self.remaining.remove(i);
        } else if let Some(i) = self.unrouted.iter().position(|(s, _)| s == id) {
            self.unrouted.remove(i);
        } else {
            return Err(UpdateError::UnknownStop(id.clone()));
        }
        self.applied_update_id = update_id;
        Ok(())
    }

    /// Whether a stop with this id is in the problem (to visit or left out).
    pub fn has(&self, id: &StopId) -> bool {
        self.remaining.iter().any(|s| &s.id == id) || self.unrouted.iter().any(|(s, _)| s == id)
    }

    /// The trip to plan now: from the agent's position over the stops not yet visited.
    pub fn trip(&self, speeds: &Speeds) -> Trip {
        Trip {
            from: self.position,
            stops: self.remaining.clone(),
            back_to: self.return_to_start.then_some(self.start),
            speed: speeds.of(self.travel_mode),
        }
    }

    /// Stops left out of the route, with why.
    pub fn unrouted(&self) -> &[(StopId, Unrouted)] {
        &self.unrouted
    }

    /// The last update the state reflects.
    pub fn applied_update_id(&self) -> u64 {
        self.applied_update_id
    }

    pub fn time_budget(&self) -> Duration {
        self.time_budget
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> StopId {
        StopId::parse(value).unwrap()
    }

    fn located(value: &str, lat: f64) -> Located {
        Located {
            id: id(value),
            location: LatLng::parse(lat, -13.7).unwrap(),
            service: Duration::ZERO,
        }
    }

    fn session(return_to_start: bool) -> RouteSessionState {
        RouteSessionState::open(Opening {
            start: LatLng::parse(9.5, -13.7).unwrap(),
            located: vec![located("a", 9.51), located("b", 9.52)],
            unrouted: vec![(id("ghost"), Unrouted::TenantNotFound)],
            return_to_start,
            travel_mode: TravelMode::Walking,
            time_budget: Duration::from_secs(1),
            seed: 7,
            update_id: 1,
        })
    }

    fn stop_ids(trip: &Trip) -> Vec<&str> {
        trip.stops.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn update_ids_must_increase() {
        let mut state = session(false);
        assert_eq!(
            state.check_update_id(1),
            Err(UpdateError::NotIncreasing { got: 1, last: 1 })
        );
        assert_eq!(state.check_update_id(5), Ok(()));
        assert!(state.check_update_id(3).is_err());
        assert_eq!(state.check_update_id(6), Ok(()));
    }

    #[test]
    fn a_visit_removes_the_stop_and_moves_the_agent_there() {
        let mut state = session(true);
        state.visit(2, &id("a")).unwrap();
        let trip = state.trip(&Speeds::default());
        assert_eq!(stop_ids(&trip), ["b"]);
        assert_eq!(trip.from, LatLng::parse(9.51, -13.7).unwrap());
        // Still back to the problem's start.
        assert_eq!(trip.back_to, Some(LatLng::parse(9.5, -13.7).unwrap()));
        assert_eq!(state.applied_update_id(), 2);
        assert_eq!(
            state.visit(3, &id("a")),
            Err(UpdateError::UnknownStop(id("a")))
        );
        assert_eq!(state.applied_update_id(), 2);
        // A left-out stop can be visited too (the agent found the tenant anyway).
        state.visit(4, &id("ghost")).unwrap();
        assert!(state.unrouted().is_empty());
    }

    #[test]
    fn adds_and_removals_check_ids() {
        let mut state = session(false);
        assert_eq!(
            state.add(2, NewStop::Located(located("b", 9.6))),
            Err(UpdateError::DuplicateStop(id("b")))
        );
        assert_eq!(
            state.add(2, NewStop::Unrouted(id("ghost"), Unrouted::NoLocation)),
            Err(UpdateError::DuplicateStop(id("ghost")))
        );
        state.add(3, NewStop::Located(located("c", 9.6))).unwrap();
        state.remove(4, &id("a")).unwrap();
        assert_eq!(
            state.remove(5, &id("a")),
            Err(UpdateError::UnknownStop(id("a")))
        );
        let trip = state.trip(&Speeds::default());
        assert_eq!(stop_ids(&trip), ["b", "c"]);
        assert_eq!(trip.back_to, None);
        // A removed id may come back.
        state.add(6, NewStop::Located(located("a", 9.7))).unwrap();
        assert!(state.has(&id("a")));
    }

    #[test]
    fn at_most_2000_stops() {
        let mut state = session(false);
        for k in 0..MAX_STOPS - 3 {
            state
                .add(2, NewStop::Located(located(&format!("s{k}"), 9.6)))
                .unwrap();
        }
        assert_eq!(
            state.add(3, NewStop::Located(located("one-too-many", 9.6))),
            Err(UpdateError::TooManyStops)
        );
    }

    #[test]
    fn a_position_moves_the_start_of_the_next_plan() {
        let mut state = session(false);
        let here = LatLng::parse(9.55, -13.65).unwrap();
        state.move_to(9, here);
        assert_eq!(state.trip(&Speeds::default()).from, here);
        assert_eq!(state.applied_update_id(), 9);
    }
}
