//! GetAgentTrack: an agent's stored fixes between two times, simplified for drawing.
//!
//! Decisions:
//! - Both bounds are required and at most 48 hours apart (RANGE_TOO_LONG); the agent must be
//!   visible to the caller (same rule as WatchAgents: an agent outside the scope is NOT_FOUND,
//!   like a missing one).
//! - At most 200,000 raw fixes are read (48 h at one fix per second is 172,800), then
//!   simplified with the client's tolerance (`domain::track::simplify`); `distance_m` is the
//!   length of the returned polyline.

use chrono::{DateTime, Utc};
use tonic::Request;

use crate::api::convert::{timestamp, uuid};
use crate::api::error::{ApiError, Violations};
use crate::api::parse;
use crate::auth::caller::Caller;
use crate::domain::presence::LatLng;
use crate::domain::track::{TrackFix, distance_m, simplify};
use crate::live::WatchFilter;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::positions as store;

/// Longest time range, hours.
const MAX_RANGE_HOURS: i64 = 48;
/// Most raw fixes read.
const MAX_RAW: i64 = 200_000;

pub(super) async fn get_agent_track(
    state: &AppState,
    request: &Request<pb::GetAgentTrackRequest>,
) -> Result<pb::GetAgentTrackResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let agent_id = v.absorb(uuid("agent_id", &message.agent_id));
    let (start, end) = parse::time_range(&mut v, "time_range", message.time_range.as_ref());
    let tolerance = message.simplify_tolerance_m;
    if !(0.0..=1_000.0).contains(&tolerance) {
        v.add("simplify_tolerance_m", "must be between 0 and 1000 metres");
    }
    let max_points = match message.max_points {
        0 => Some(5_000),
        n if (1..=20_000).contains(&n) => Some(n),
        _ => {
            v.add("max_points", "must be between 0 and 20000");
            None
        }
    };
    if message.time_range.is_some() && (start.is_none() || end.is_none()) {
        v.add("time_range", "both start_time and end_time are required");
    }
    if message.time_range.is_none() {
        v.add("time_range", "is required");
    }
    v.into_result()?;
    let (Some(agent_id), Some(start), Some(end), Some(max_points)) =
        (agent_id, start, end, max_points)
    else {
        return Err(ApiError::invalid("time_range", "is required"));
    };
    if end - start > chrono::Duration::hours(MAX_RANGE_HOURS) {
        return Err(ApiError::invalid_with_reason(
            "time_range",
            pb::ErrorReason::RangeTooLong,
            "at most 48 hours",
        ));
    }
    let filter = WatchFilter {
        scope: caller.scope(),
        site_ids: Vec::new(),
        agent_ids: Vec::new(),
        bounds: None,
        online_only: false,
    };
    let info = state
        .live
        .agent_info(agent_id)
        .await
        .map_err(ApiError::from)?
        .filter(|info| filter.admits(info))
        .ok_or(ApiError::NotFound("agent"))?;
    let fixes = store::track(
        &state.pool,
        agent_id,
        start,
        end,
        message.include_mock_locations,
        MAX_RAW,
    )
    .await
    .map_err(ApiError::from)?;
    // The stored coordinates are in range (table checks); `origin` maps back to `fixes`.
    let (origin, track): (Vec<usize>, Vec<TrackFix>) = fixes
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let location = LatLng::parse(f.latitude, f.longitude).ok()?;
            Some((
                i,
                TrackFix {
                    location,
                    fix_time: f.fix_time,
                },
            ))
        })
        .unzip();
    let kept = simplify(&track, tolerance);
    let limit = usize::try_from(max_points).unwrap_or(5_000);
    let truncated = kept.len() > limit;
    let kept = &kept[..kept.len().min(limit)];
    let points: Vec<LatLng> = kept.iter().map(|&i| track[i].location).collect();
    Ok(pb::GetAgentTrackResponse {
        agent: Some(parse::user_ref(info.id, &info.full_name)),
        points: kept
            .iter()
            .map(|&i| {
                let f = &fixes[origin[i]];
                point(
                    f.latitude,
                    f.longitude,
                    f.fix_time,
                    f.accuracy_m,
                    f.speed_mps,
                    f.is_mock_location,
                )
            })
            .collect(),
        raw_point_count: i64::try_from(fixes.len()).unwrap_or(i64::MAX),
        distance_m: distance_m(&points),
        truncated,
    })
}

fn point(
    latitude: f64,
    longitude: f64,
    fix_time: DateTime<Utc>,
    accuracy_m: Option<f32>,
    speed_mps: Option<f32>,
    is_mock_location: bool,
) -> pb::TrackPoint {
    pb::TrackPoint {
        location: Some(pb::LatLng {
            latitude,
            longitude,
        }),
        fix_time: Some(timestamp(fix_time)),
        accuracy_m: accuracy_m.map_or(0.0, f64::from),
        speed_mps: speed_mps.map(f64::from),
        is_mock_location,
    }
}
