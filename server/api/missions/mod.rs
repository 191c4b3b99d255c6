//! MissionsService: GenerateMissions, ListTodayMissions, ListAgentMissions and UpdateMission,
//! thin adapters over `app::missions`; GetAgentPerformance, GetDailyRanking, GetMonthlyRanking
//! and GetPerformanceHistory over `app::performance`.
//!
//! Decisions:
//! - Missions are shown with their tenant's card as of the answer (`app::tenants::cards`), so
//!   the phone has everything for the day in one call.
//! - GenerateMissions runs under its request_id like every write; a dry run stores nothing,
//!   not even its answer (its request_id is checked, not kept).
//! - ListAgentMissions pages by (date, agent, route order, id); a token is tied to its filters.

mod performance;
mod push;
mod views;

pub(crate) use push::after_action as after_mission_action;

use std::sync::PoisonError;

use chrono::{Days, NaiveDate, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::cached::cached_read;
use crate::api::convert;
use crate::api::error::{ApiError, Violations};
use crate::api::paging::Pager;
use crate::api::parse::{self, Text, today};
use crate::api::write::Write;
use crate::app::missions::{self as app, GenerateInput, MissionUpdate};
use crate::auth::caller::{Caller, Scope};
use crate::auth::rbac::Role;
use crate::cache::CacheKind;
use crate::domain::MissionStatus;
use crate::proto::v1 as pb;
use crate::proto::v1::missions_service_server::MissionsService;
use crate::state::AppState;
use crate::store::missions::{Cursor, ListFilter};

/// Full paths of the service's mutating RPCs: the method part of their idempotency keys.
pub mod rpc {
    pub const GENERATE_MISSIONS: &str = "/akig.v1.MissionsService/GenerateMissions";
    pub const UPDATE_MISSION: &str = "/akig.v1.MissionsService/UpdateMission";
}

const MAX_SITES: usize = 100;
const MAX_AGENTS: usize = 500;
const LIST_DAYS_MAX: i64 = 92;
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 500;
const NOTE: Text = Text::note(1_000);

#[derive(Clone)]
pub struct MissionsApi {
    state: AppState,
}

impl MissionsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn answer<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl MissionsService for MissionsApi {
    async fn generate_missions(
        &self,
        request: Request<pb::GenerateMissionsRequest>,
    ) -> Result<Response<pb::GenerateMissionsResponse>, Status> {
        answer(generate(&self.state, &request).await)
    }

    async fn list_today_missions(
        &self,
        request: Request<pb::ListTodayMissionsRequest>,
    ) -> Result<Response<pb::ListTodayMissionsResponse>, Status> {
        let state = &self.state;
        let mut response = cached_read(
            state,
            CacheKind::Missions,
            &request,
            list_today(state, &request),
        )
        .await?;
        // The server's clock, for the phone's skew check, is of this answer, not the entry's.
        response.get_mut().server_time = Some(convert::timestamp(Utc::now()));
        Ok(response)
    }

    async fn list_agent_missions(
        &self,
        request: Request<pb::ListAgentMissionsRequest>,
    ) -> Result<Response<pb::ListAgentMissionsResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Missions,
            &request,
            list_agent(state, &request),
        )
        .await
    }

    async fn update_mission(
        &self,
        request: Request<pb::UpdateMissionRequest>,
    ) -> Result<Response<pb::UpdateMissionResponse>, Status> {
        answer(update(&self.state, &request).await)
    }

    async fn get_daily_ranking(
        &self,
        request: Request<pb::GetDailyRankingRequest>,
    ) -> Result<Response<pb::GetDailyRankingResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Rankings,
            &request,
            performance::daily_ranking(state, &request),
        )
        .await
    }

    async fn get_monthly_ranking(
        &self,
        request: Request<pb::GetMonthlyRankingRequest>,
    ) -> Result<Response<pb::GetMonthlyRankingResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Rankings,
            &request,
            performance::monthly_ranking(state, &request),
        )
        .await
    }

    async fn get_agent_performance(
        &self,
        request: Request<pb::GetAgentPerformanceRequest>,
    ) -> Result<Response<pb::GetAgentPerformanceResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Performance,
            &request,
            performance::agent_performance(state, &request),
        )
        .await
    }

    async fn get_performance_history(
        &self,
        request: Request<pb::GetPerformanceHistoryRequest>,
    ) -> Result<Response<pb::GetPerformanceHistoryResponse>, Status> {
        let state = &self.state;
        cached_read(
            state,
            CacheKind::Performance,
            &request,
            performance::history(state, &request),
        )
        .await
    }
}

fn parse_generate(
    state: &AppState,
    message: &pb::GenerateMissionsRequest,
) -> Result<(Uuid, GenerateInput), ApiError> {
    let config = &state.collections.missions;
    let mut v = Violations::new();
    let request_id = v.absorb(convert::request_id(&message.request_id));
    let day = match &message.mission_date {
        Some(date) => v.absorb(parse::date("mission_date", date)),
        None => Some(app::default_day(Utc::now(), config)),
    };
    if let Some(day) = day
        && day < today()
    {
        v.add("mission_date", "must be today or later");
    }
    let site_ids = v.absorb(parse::ids("site_ids", &message.site_ids, MAX_SITES));
    let agent_ids = v.absorb(parse::ids("agent_ids", &message.agent_ids, MAX_AGENTS));
    let max = match message.max_visits_per_agent {
        0 => Some(config.max_per_agent as usize),
        n @ 1..=50 => Some(n as usize),
        _ => {
            v.add("max_visits_per_agent", "must be 1..50 (0: the default)");
            None
        }
    };
    v.into_result()?;
    let (Some(request_id), Some(day), Some(site_ids), Some(agent_ids), Some(max)) =
        (request_id, day, site_ids, agent_ids, max)
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "unreachable: checked above"
        )));
    };
    Ok((
        request_id,
        GenerateInput {
            day,
            site_ids: (!site_ids.is_empty()).then_some(site_ids),
            agent_ids: (!agent_ids.is_empty()).then_some(agent_ids),
            max_per_agent: max,
            dry_run: message.dry_run,
        },
    ))
}

async fn generate(
    state: &AppState,
    request: &Request<pb::GenerateMissionsRequest>,
) -> Result<pb::GenerateMissionsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (request_id, input) = parse_generate(state, message)?;
    let write = Write::new(caller, rpc::GENERATE_MISSIONS, request_id);
    let config = &state.collections.missions;
    let speed = state.route.speeds.of(state.route.default_travel_mode);
    let aging = views::aging(state)?;
    let respond = async |conn: &mut sqlx::PgConnection, generated: app::Generated| {
        let missions = views::missions(conn, &generated.missions, &aging).await?;
        Ok::<_, ApiError>(views::generated(&generated, missions))
    };
    if input.dry_run {
        let mut tx = crate::store::begin_read(&state.pool).await?;
        let planner = app::Planner::of(write.act());
        let generated = app::generate(&mut tx, &planner, &input, config, speed).await?;
        return respond(&mut tx, generated).await;
    }
    // The agents whose day the generation changed, when it runs (not when the answer is a
    // stored one).
    let planned = std::sync::Mutex::new(None);
    let outcome = state
        .idempotency
        .run_audited(write.key(), message, async |conn| {
            let planner = app::Planner::of(write.act());
            let generated = app::generate(conn, &planner, &input, config, speed).await?;
            *planned.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(generated.changed_agents.clone());
            let audit = generated.audit(write.act());
            Ok::<_, ApiError>((respond(conn, generated).await?, Some(audit)))
        })
        .await;
    let response = state.cache.after_write(outcome).await?;
    let planned = planned.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(agents) = planned {
        push::after_generation(state, input.day, &agents).await;
    }
    Ok(response)
}

/// The agent a read is about: the caller when empty.
/// The agent named in `field`, or the caller when it is an agent and names none; anyone else
/// must name one (INVALID_ARGUMENT on `field`).
fn agent_or_caller(caller: &Caller, field: &str, value: &str) -> Result<Uuid, ApiError> {
    match convert::optional_uuid(field, value)? {
        Some(agent) => Ok(agent),
        None if caller.role == Role::Agent => Ok(caller.user_id),
        None => Err(ApiError::invalid(
            field,
            "is required unless the caller is an agent",
        )),
    }
}

async fn list_today(
    state: &AppState,
    request: &Request<pb::ListTodayMissionsRequest>,
) -> Result<pb::ListTodayMissionsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let agent_id = agent_or_caller(caller, "agent_id", &message.agent_id)?;
    let day = match &message.mission_date {
        Some(date) => parse::date("mission_date", date)?,
        None => today(),
    };
    let agent_day = app::agent_day(&state.pool, caller, agent_id, day).await?;
    let server_time = Some(convert::timestamp(Utc::now()));
    if !message.known_plan_version.is_empty()
        && message.known_plan_version == agent_day.plan_version
    {
        return Ok(pb::ListTodayMissionsResponse {
            mission_date: Some(parse::date_proto(day)),
            plan_version: agent_day.plan_version,
            unchanged: true,
            server_time,
            ..Default::default()
        });
    }
    let aging = views::aging(state)?;
    let mut tx = crate::store::begin_read(&state.pool).await?;
    let missions = views::missions(&mut tx, &agent_day.missions, &aging).await?;
    let live = agent_day
        .missions
        .iter()
        .filter(|m| m.status != MissionStatus::Cancelled);
    let (distance, travel) = live.fold((0.0, 0.0), |(d, t), m| {
        (
            d + m.estimated_distance_m.unwrap_or(0.0),
            t + m.estimated_travel_secs.unwrap_or(0.0),
        )
    });
    Ok(pb::ListTodayMissionsResponse {
        mission_date: Some(parse::date_proto(day)),
        plan_version: agent_day.plan_version,
        unchanged: false,
        missions,
        start_location: agent_day.start.map(|at| pb::LatLng {
            latitude: at.latitude(),
            longitude: at.longitude(),
        }),
        total_distance_m: distance,
        total_travel_duration: Some(views::duration(travel)),
        server_time,
    })
}

fn parse_list(
    caller: &Caller,
    message: &pb::ListAgentMissionsRequest,
) -> Result<(ListFilter, i64), ApiError> {
    let mut v = Violations::new();
    let page_size = v.absorb(convert::page_size(
        message.page_size,
        PAGE_DEFAULT,
        PAGE_MAX,
    ));
    let agent_id = v
        .absorb(convert::optional_uuid("agent_id", &message.agent_id))
        .flatten();
    let tenant_id = v
        .absorb(convert::optional_uuid("tenant_id", &message.tenant_id))
        .flatten();
    let site_ids = v.absorb(parse::ids("site_ids", &message.site_ids, MAX_SITES));
    let (from, to) = parse::date_range(&mut v, "date_range", message.date_range.as_ref());
    let to = to.unwrap_or_else(today);
    let from = from.unwrap_or_else(|| to.checked_sub_days(Days::new(6)).unwrap_or(to));
    if (to - from).num_days() >= LIST_DAYS_MAX {
        v.absorb::<()>(Err(ApiError::invalid_with_reason(
            "date_range",
            pb::ErrorReason::RangeTooLong,
            format!("at most {LIST_DAYS_MAX} days"),
        )));
    }
    let mut statuses = Vec::new();
    for (i, value) in message.statuses.iter().enumerate() {
        match views::status(*value) {
            Some(Some(status)) => statuses.push(status.as_str()),
            Some(None) => {}
            None => v.add(format!("statuses[{i}]"), "unknown mission status"),
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    v.into_result()?;
    let requested_sites = site_ids.filter(|ids| !ids.is_empty());
    let scope = caller.scope();
    let mut filter = ListFilter {
        agent_id,
        supervisor_id: None,
        site_ids: None,
        tenant_id,
        statuses,
        from,
        to,
    };
    match scope {
        Scope::Company => filter.site_ids = requested_sites,
        Scope::Sites(_) => {
            filter.site_ids = Some(
                crate::app::sites_in_scope(&scope, requested_sites.as_deref())
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        Scope::Team { supervisor_id, .. } => {
            filter.supervisor_id = Some(supervisor_id);
            filter.site_ids = requested_sites;
        }
        Scope::Own { agent_id: own, .. } => {
            if agent_id.is_some_and(|id| id != own) {
                return Err(ApiError::out_of_scope("agents see only their own missions"));
            }
            filter.agent_id = Some(own);
            filter.site_ids = requested_sites;
        }
    }
    Ok((filter, page_size.unwrap_or(PAGE_DEFAULT)))
}

async fn list_agent(
    state: &AppState,
    request: &Request<pb::ListAgentMissionsRequest>,
) -> Result<pb::ListAgentMissionsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (filter, page_size) = parse_list(caller, message)?;
    let pager = Pager::new(&("missions", &filter));
    let after = pager.position(&message.page_token, |parts| {
        Some(Cursor {
            date: parts.parse::<NaiveDate>()?,
            agent_id: parts.parse()?,
            route_order: parts.parse()?,
            id: parts.last()?.parse().ok()?,
        })
    })?;
    let (mut rows, total_size) = app::list(&state.pool, &filter, after, page_size + 1).await?;
    let more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let next_page_token = match rows.last() {
        Some(last) if more => pager.token(&[
            &last.mission_date,
            &last.agent_id,
            &last.route_order.unwrap_or(0),
            &last.id,
        ]),
        _ => String::new(),
    };
    let aging = views::aging(state)?;
    let mut tx = crate::store::begin_read(&state.pool).await?;
    Ok(pb::ListAgentMissionsResponse {
        missions: views::missions(&mut tx, &rows, &aging).await?,
        next_page_token,
        total_size,
    })
}

const UPDATE_PATHS: [&str; 8] = [
    "status",
    "failure_reason",
    "status_note",
    "agent_id",
    "arrival_time",
    "visit_id",
    "call_id",
    "payment_id",
];

fn parse_update(
    state: &AppState,
    message: &pb::UpdateMissionRequest,
) -> Result<(Uuid, Uuid, MissionUpdate), ApiError> {
    let mut v = Violations::new();
    let request_id = v.absorb(convert::request_id(&message.request_id));
    let Some(mission) = message.mission.as_ref() else {
        v.add("mission", "is required");
        v.into_result()?;
        return Err(ApiError::invalid("mission", "is required"));
    };
    let mission_id = v.absorb(convert::uuid("mission.mission_id", &mission.mission_id));
    let paths = message
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.clone())
        .unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for (i, path) in paths.iter().enumerate() {
        if !UPDATE_PATHS.contains(&path.as_str()) {
            v.add(
                format!("update_mask.paths[{i}]"),
                format!("must be one of {}", UPDATE_PATHS.join(", ")),
            );
        }
    }
    let has = |path: &str| paths.iter().any(|p| p == path);
    let now = Utc::now();
    let occurred_at = match message.occurred_at.as_ref() {
        Some(_) => parse::occurred_at(
            &mut v,
            "occurred_at",
            message.occurred_at.as_ref(),
            now,
            parse::time_bounds(&state.collections),
        )
        .map(|at| at.get()),
        None => Some(now),
    };
    let mut update = MissionUpdate {
        occurred_at: occurred_at.unwrap_or(now),
        ..MissionUpdate::default()
    };
    if has("status") {
        match views::status(mission.status) {
            Some(Some(status)) => update.status = Some(status),
            _ => v.add("mission.status", "must be a mission status"),
        }
    }
    if has("failure_reason") {
        match views::failure_reason(mission.failure_reason) {
            Some(reason) => update.failure_reason = Some(reason),
            None => v.add("mission.failure_reason", "unknown failure reason"),
        }
    }
    if has("status_note") {
        update.status_note =
            v.absorb(NOTE.parse_optional("mission.status_note", &mission.status_note));
    }
    if has("agent_id") {
        update.agent_id = v.absorb(convert::uuid("mission.agent_id", &mission.agent_id));
    }
    if has("arrival_time") {
        // A declared arrival obeys the bounds of any device time: not in the future beyond
        // the clock skew, not older than the offline window.
        update.arrival_time = Some(match mission.arrival_time.as_ref() {
            Some(at) => parse::occurred_at(
                &mut v,
                "mission.arrival_time",
                Some(at),
                now,
                parse::time_bounds(&state.collections),
            )
            .map(|at| at.get()),
            None => None,
        });
    }
    for (path, field, value, slot) in [
        (
            "visit_id",
            "mission.visit_id",
            &mission.visit_id,
            &mut update.visit_id,
        ),
        (
            "call_id",
            "mission.call_id",
            &mission.call_id,
            &mut update.call_id,
        ),
        (
            "payment_id",
            "mission.payment_id",
            &mission.payment_id,
            &mut update.payment_id,
        ),
    ] {
        if has(path) {
            *slot = v.absorb(convert::optional_uuid(field, value));
        }
    }
    v.into_result()?;
    match (request_id, mission_id) {
        (Some(request_id), Some(mission_id)) => Ok((request_id, mission_id, update)),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "unreachable: checked above"
        ))),
    }
}

async fn update(
    state: &AppState,
    request: &Request<pb::UpdateMissionRequest>,
) -> Result<pb::UpdateMissionResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (request_id, mission_id, change) = parse_update(state, message)?;
    let write = Write::new(caller, rpc::UPDATE_MISSION, request_id);
    let aging = views::aging(state)?;
    // Set when the change runs (not when the answer is a stored one).
    let updated = std::sync::Mutex::new(None);
    let outcome = state
        .idempotency
        .run_audited(write.key(), message, async |conn| {
            let app::Updated {
                row,
                previous_agent_id,
                audit,
            } = app::update(conn, write.act(), mission_id, &change).await?;
            *updated.lock().unwrap_or_else(PoisonError::into_inner) = Some(push::Updated {
                previous_agent_id,
                agent_id: row.agent_id,
                day: row.mission_date,
                cancelled: row.status == MissionStatus::Cancelled,
            });
            let mut missions = views::missions(conn, std::slice::from_ref(&row), &aging).await?;
            Ok::<_, ApiError>((
                pb::UpdateMissionResponse {
                    mission: missions.pop(),
                },
                Some(audit),
            ))
        })
        .await;
    let response = state.cache.after_write(outcome).await?;
    let updated = updated.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let (Some(updated), Some(mission)) = (updated, &response.mission) {
        push::after_update(state, updated, mission).await;
    }
    Ok(response)
}
