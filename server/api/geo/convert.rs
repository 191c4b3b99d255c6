//! Protobuf ↔ route domain types: a request's problem, stops and session updates are parsed
//! once here (INVALID_ARGUMENT naming each bad field), and plans go back once.

use std::time::Duration;

use crate::api::convert::uuid;
use crate::api::error::{ApiError, Violations};
use crate::domain::LatLng;
use crate::domain::route::problem::{
    BudgetLimits, ProblemError, RouteProblem, RouteStop, StopCountError, StopId, StopTarget,
    TravelMode, Unrouted, check_stop_count, service_duration,
};
use crate::domain::route::session::UpdateError;
use crate::domain::route::trip::{Plan, Trip};
use crate::proto::v1 as pb;

/// A position; `field` is the path of the `LatLng` message.
pub fn location(field: &str, value: Option<&pb::LatLng>) -> Result<LatLng, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    LatLng::parse(value.latitude, value.longitude)
        .map_err(|e| ApiError::invalid(format!("{field}.{}", e.field()), e.to_string()))
}

pub fn to_location(at: LatLng) -> pb::LatLng {
    pb::LatLng {
        latitude: at.latitude(),
        longitude: at.longitude(),
    }
}

/// A non-negative protobuf duration.
pub fn duration(field: &str, value: &prost_types::Duration) -> Result<Duration, ApiError> {
    if value.seconds < 0 || value.nanos < 0 {
        return Err(ApiError::invalid(field, "must not be negative"));
    }
    match u32::try_from(value.nanos) {
        Ok(nanos) if nanos < 1_000_000_000 => Ok(Duration::new(value.seconds as u64, nanos)),
        _ => Err(ApiError::invalid(field, "not a valid duration")),
    }
}

pub fn to_duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9: always fits.
        nanos: value.subsec_nanos() as i32,
    }
}

/// A stop id as a client names an existing stop.
pub fn stop_id(field: &str, value: &str) -> Result<StopId, ApiError> {
    StopId::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A stop; `field` is the path of the `RouteStop` message (`problem.stops[3]`, `stop_added`).
pub fn stop(field: &str, value: &pb::RouteStop) -> Result<RouteStop, ApiError> {
    use pb::route_stop::Target;
    let mut violations = Violations::new();
    let target = match &value.target {
        None => {
            violations.add(
                format!("{field}.target"),
                "a tenant_id or a location is required",
            );
            None
        }
        Some(Target::TenantId(tenant)) => violations
            .absorb(uuid(&format!("{field}.tenant_id"), tenant))
            .map(StopTarget::Tenant),
        Some(Target::Location(at)) => violations
            .absorb(location(&format!("{field}.location"), Some(at)))
            .map(StopTarget::Point),
    };
    let id_field = format!("{field}.stop_id");
    let id = match (&value.target, value.stop_id.as_str()) {
        (Some(Target::TenantId(tenant)), "") => violations.absorb(stop_id(&id_field, tenant)),
        (Some(Target::Location(_)), "") => {
            violations.add(&id_field, "is required for a location stop");
            None
        }
        (_, id) => violations.absorb(stop_id(&id_field, id)),
    };
    let service_field = format!("{field}.service_duration");
    let service = match &value.service_duration {
        None => Some(Duration::ZERO),
        Some(d) => violations
            .absorb(duration(&service_field, d))
            .and_then(|d| violations.check(&service_field, service_duration(d))),
    };
    violations.into_result()?;
    match (id, target, service) {
        (Some(id), Some(target), Some(service)) => Ok(RouteStop {
            id,
            target,
            service,
        }),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "a stop without violations was left unparsed"
        ))),
    }
}

/// A problem (`field` is its path: `problem`), with the RPC's budget bounds and the default
/// travel mode. More than 2,000 stops are refused before any is read.
pub fn problem(
    field: &str,
    value: Option<&pb::RouteProblem>,
    limits: BudgetLimits,
    default_mode: TravelMode,
) -> Result<RouteProblem, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let stops_field = format!("{field}.stops");
    let mut violations = Violations::new();
    match check_stop_count(value.stops.len()) {
        Err(e @ StopCountError::TooMany(_)) => {
            return Err(ApiError::invalid_with_reason(
                stops_field,
                pb::ErrorReason::TooManyStops,
                e.to_string(),
            ));
        }
        Err(e) => violations.add(&stops_field, e.to_string()),
        Ok(()) => {}
    }
    let start = violations.absorb(location(&format!("{field}.start"), value.start.as_ref()));
    let mut stops = Vec::with_capacity(value.stops.len());
    for (i, raw) in value.stops.iter().enumerate() {
        if let Some(stop) = violations.absorb(stop(&format!("{stops_field}[{i}]"), raw)) {
            stops.push(stop);
        }
    }
    let mode_field = format!("{field}.travel_mode");
    let travel_mode = match pb::TravelMode::try_from(value.travel_mode) {
        Ok(pb::TravelMode::Unspecified) => Some(default_mode),
        Ok(pb::TravelMode::Walking) => Some(TravelMode::Walking),
        Ok(pb::TravelMode::MotoTaxi) => Some(TravelMode::MotoTaxi),
        Ok(pb::TravelMode::Car) => Some(TravelMode::Car),
        Err(_) => {
            violations.add(&mode_field, "unknown travel mode");
            None
        }
    };
    let budget_field = format!("{field}.time_budget");
    let requested = match &value.time_budget {
        None => Some(None),
        Some(d) => violations.absorb(duration(&budget_field, d)).map(Some),
    };
    let time_budget =
        requested.and_then(|requested| violations.check(&budget_field, limits.budget(requested)));
    violations.into_result()?;
    let (Some(start), Some(travel_mode), Some(time_budget)) = (start, travel_mode, time_budget)
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a problem without violations was left unparsed"
        )));
    };
    RouteProblem::new(
        start,
        stops,
        value.return_to_start,
        travel_mode,
        time_budget,
        value.seed,
    )
    .map_err(|e| match e {
        ProblemError::Duplicate(duplicate) => ApiError::invalid_with_reason(
            format!("{stops_field}[{}].stop_id", duplicate.index),
            pb::ErrorReason::RouteStopDuplicate,
            duplicate.to_string(),
        ),
        ProblemError::StopCount(e) => ApiError::invalid(stops_field, e.to_string()),
    })
}

/// The solution of `plan` over `trip`, with the stops left out.
pub fn solution(trip: &Trip, plan: &Plan, unrouted: &[(StopId, Unrouted)]) -> pb::RouteSolution {
    let id = |stop: Option<usize>| {
        stop.map(|i| trip.stops[i].id.to_string())
            .unwrap_or_default()
    };
    pb::RouteSolution {
        ordered_stop_ids: plan
            .order
            .iter()
            .map(|&i| trip.stops[i].id.to_string())
            .collect(),
        legs: plan
            .legs
            .iter()
            .map(|leg| pb::RouteLeg {
                from_stop_id: id(leg.from),
                to_stop_id: id(leg.to),
                to_location: Some(to_location(leg.to_location)),
                distance_m: leg.distance_m as f64,
                travel_duration: Some(to_duration(leg.travel)),
                arrival_offset: Some(to_duration(leg.arrival)),
            })
            .collect(),
        total_distance_m: plan.distance_m as f64,
        total_travel_duration: Some(to_duration(plan.travel)),
        total_duration: Some(to_duration(plan.duration)),
        unrouted_stops: unrouted
            .iter()
            .map(|(id, reason)| pb::UnroutedStop {
                stop_id: id.to_string(),
                reason: match reason {
                    Unrouted::TenantNotFound => pb::UnroutedReason::TenantNotFound,
                    Unrouted::NoLocation => pb::UnroutedReason::NoLocation,
                } as i32,
            })
            .collect(),
    }
}

/// The rejection of update `update_id` for `error`: its ErrorReason (if any) and its message.
pub fn rejection(update_id: u64, error: &ApiError) -> pb::RouteUpdateRejected {
    let reason = match error {
        ApiError::InvalidArgumentBecause { reason, .. } => *reason,
        _ => pb::ErrorReason::Unspecified,
    };
    pb::RouteUpdateRejected {
        update_id,
        reason: reason as i32,
        message: error.to_string(),
    }
}

/// The rejection of update `update_id` the session state refused.
pub fn update_rejection(update_id: u64, error: &UpdateError) -> pb::RouteUpdateRejected {
    let reason = match error {
        UpdateError::NotIncreasing { .. } => pb::ErrorReason::Unspecified,
        UpdateError::UnknownStop(_) => pb::ErrorReason::RouteStopUnknown,
        UpdateError::DuplicateStop(_) => pb::ErrorReason::RouteStopDuplicate,
        UpdateError::TooManyStops => pb::ErrorReason::TooManyStops,
    };
    pb::RouteUpdateRejected {
        update_id,
        reason: reason as i32,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;
    use crate::domain::route::problem::{Located, Speed};

    const LIMITS: BudgetLimits = BudgetLimits {
        default: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };

    fn at(latitude: f64, longitude: f64) -> Option<pb::LatLng> {
        Some(pb::LatLng {
            latitude,
            longitude,
        })
    }

    fn point_stop(id: &str, latitude: f64) -> pb::RouteStop {
        pb::RouteStop {
            stop_id: id.to_owned(),
            target: Some(pb::route_stop::Target::Location(pb::LatLng {
                latitude,
                longitude: -13.7,
            })),
            service_duration: None,
        }
    }

    fn tenant_stop(tenant: &str) -> pb::RouteStop {
        pb::RouteStop {
            stop_id: String::new(),
            target: Some(pb::route_stop::Target::TenantId(tenant.to_owned())),
            service_duration: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
        }
    }

    fn raw(stops: Vec<pb::RouteStop>) -> pb::RouteProblem {
        pb::RouteProblem {
            start: at(9.5, -13.7),
            stops,
            return_to_start: true,
            travel_mode: pb::TravelMode::Unspecified as i32,
            time_budget: None,
            seed: 9,
        }
    }

    fn parse(value: &pb::RouteProblem) -> Result<RouteProblem, tonic::Status> {
        problem("problem", Some(value), LIMITS, TravelMode::MotoTaxi).map_err(Into::into)
    }

    fn fields(status: &tonic::Status) -> Vec<String> {
        status
            .get_details_bad_request()
            .map(|d| d.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    }

    fn reason(status: &tonic::Status) -> String {
        status
            .get_details_error_info()
            .map(|i| i.reason)
            .unwrap_or_default()
    }

    #[test]
    fn a_valid_problem_is_parsed_once() {
        let tenant = "6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab";
        let parsed = parse(&raw(vec![point_stop("depot", 9.51), tenant_stop(tenant)])).unwrap();
        assert_eq!(parsed.start, LatLng::parse(9.5, -13.7).unwrap());
        assert_eq!(parsed.travel_mode, TravelMode::MotoTaxi);
        assert_eq!(parsed.time_budget, Duration::from_secs(1));
        assert!(parsed.return_to_start);
        assert_eq!(parsed.seed, 9);
        assert_eq!(parsed.stops[0].id.as_str(), "depot");
        // A tenant stop without an id is named by its tenant.
        assert_eq!(parsed.stops[1].id.as_str(), tenant);
        assert_eq!(
            parsed.stops[1].target,
            StopTarget::Tenant(tenant.parse().unwrap())
        );
        assert_eq!(parsed.stops[1].service, Duration::from_secs(300));
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut value = raw(vec![
            point_stop("a", f64::NAN),
            point_stop("", 9.5),
            tenant_stop("not-a-uuid"),
            pb::RouteStop::default(),
        ]);
        value.start = at(9.5, 200.0);
        value.travel_mode = 42;
        value.time_budget = Some(prost_types::Duration {
            seconds: 11,
            nanos: 0,
        });
        let status = parse(&value).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            fields(&status),
            [
                "problem.start.longitude",
                "problem.stops[0].location.latitude",
                "problem.stops[1].stop_id",
                "problem.stops[2].tenant_id",
                "problem.stops[3].target",
                "problem.stops[3].stop_id",
                "problem.travel_mode",
                "problem.time_budget",
            ]
        );
    }

    #[test]
    fn missing_parts_and_bad_durations_are_refused() {
        let status: tonic::Status = problem("problem", None, LIMITS, TravelMode::Car)
            .unwrap_err()
            .into();
        assert_eq!(fields(&status), ["problem"]);
        let mut value = raw(Vec::new());
        value.start = None;
        value.time_budget = Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        });
        let status = parse(&value).unwrap_err();
        assert_eq!(
            fields(&status),
            ["problem.stops", "problem.start", "problem.time_budget"]
        );
        let mut value = raw(vec![point_stop("a", 9.5)]);
        value.time_budget = Some(prost_types::Duration::default());
        assert_eq!(fields(&parse(&value).unwrap_err()), ["problem.time_budget"]);
        value.time_budget = None;
        value.stops[0].service_duration = Some(prost_types::Duration {
            seconds: 25 * 3600,
            nanos: 0,
        });
        assert_eq!(
            fields(&parse(&value).unwrap_err()),
            ["problem.stops[0].service_duration"]
        );
    }

    #[test]
    fn too_many_stops_is_its_own_reason() {
        let value = raw((0..2_001)
            .map(|k| point_stop(&format!("s{k}"), 9.5))
            .collect());
        let status = parse(&value).unwrap_err();
        assert_eq!(fields(&status), ["problem.stops"]);
        assert_eq!(reason(&status), "ERROR_REASON_TOO_MANY_STOPS");
        let value = raw((0..2_000)
            .map(|k| point_stop(&format!("s{k}"), 9.5))
            .collect());
        assert!(parse(&value).is_ok());
    }

    #[test]
    fn a_duplicate_stop_id_names_the_later_stop() {
        let tenant = "6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab";
        let value = raw(vec![
            tenant_stop(tenant),
            point_stop("x", 9.5),
            tenant_stop(tenant),
        ]);
        let status = parse(&value).unwrap_err();
        assert_eq!(fields(&status), ["problem.stops[2].stop_id"]);
        assert_eq!(reason(&status), "ERROR_REASON_ROUTE_STOP_DUPLICATE");
    }

    #[test]
    fn durations_convert_both_ways() {
        let d = Duration::new(90, 500_000_000);
        assert_eq!(duration("d", &to_duration(d)).unwrap(), d);
        let bad = prost_types::Duration {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert!(duration("d", &bad).is_err());
    }

    #[test]
    fn a_plan_becomes_a_solution() {
        let start = LatLng::parse(9.5, -13.70).unwrap();
        let trip = Trip {
            from: start,
            stops: vec![
                Located {
                    id: StopId::parse("a").unwrap(),
                    location: LatLng::parse(9.5, -13.69).unwrap(),
                    service: Duration::from_secs(60),
                },
                Located {
                    id: StopId::parse("b").unwrap(),
                    location: LatLng::parse(9.5, -13.68).unwrap(),
                    service: Duration::ZERO,
                },
            ],
            back_to: Some(start),
            speed: Speed::from_kmh(36.0).unwrap(),
        };
        let plan = trip.plan(&trip.matrix(), &[0, 1, 2]);
        let unrouted = [(StopId::parse("gone").unwrap(), Unrouted::TenantNotFound)];
        let solution = solution(&trip, &plan, &unrouted);
        assert_eq!(solution.ordered_stop_ids, ["a", "b"]);
        let ends: Vec<(&str, &str)> = solution
            .legs
            .iter()
            .map(|l| (l.from_stop_id.as_str(), l.to_stop_id.as_str()))
            .collect();
        assert_eq!(ends, [("", "a"), ("a", "b"), ("b", "")]);
        assert_eq!(solution.legs[2].to_location, at(9.5, -13.70));
        assert_eq!(solution.total_distance_m, plan.distance_m as f64);
        assert_eq!(
            solution.total_duration,
            Some(to_duration(plan.travel + Duration::from_secs(60)))
        );
        assert_eq!(solution.unrouted_stops.len(), 1);
        assert_eq!(
            solution.unrouted_stops[0].reason,
            pb::UnroutedReason::TenantNotFound as i32
        );
    }

    #[test]
    fn rejections_carry_the_reason() {
        let error = stop("stop_added", &point_stop("a", 91.0)).unwrap_err();
        let rejected = rejection(7, &error);
        assert_eq!(rejected.update_id, 7);
        assert_eq!(rejected.reason, pb::ErrorReason::Unspecified as i32);
        assert!(rejected.message.contains("stop_added.location.latitude"));
        let duplicate =
            update_rejection(8, &UpdateError::DuplicateStop(StopId::parse("a").unwrap()));
        assert_eq!(duplicate.reason, pb::ErrorReason::RouteStopDuplicate as i32);
        let too_many = update_rejection(9, &UpdateError::TooManyStops);
        assert_eq!(too_many.reason, pb::ErrorReason::TooManyStops as i32);
    }
}
