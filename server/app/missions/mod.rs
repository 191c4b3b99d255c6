//! Missions: the daily plan (GenerateMissions, and the scheduled run), the agent's day and the
//! mission lists, and the lifecycle (UpdateMission, and the actions recorded for a mission).
//!
//! Decisions:
//! - Generation reads the sites, agents, candidate facts and the day's missions in its
//!   transaction, plans on the blocking pool (`domain::planning`, pure), then writes only what
//!   differs: a run whose plan equals the stored one writes nothing.
//! - Sites are planned one after the other (by code); an agent covering several of them takes
//!   the missions of each, the loads of the earlier sites counting in the later ones' balance,
//!   and the routes follow one another in that order.
//! - Kept (never written by the planner): started and finished missions, missions a person
//!   cancelled or gave to another agent (`reassigned_at`), and the planned missions of agents
//!   outside the run (a run for some agents).
//!   Their tenants are not candidates again that day; the kept missions of a planned agent
//!   count against their cap.
//! - Tenants without a home location cannot be routed: they are counted as candidates and as
//!   unassigned.
//! - A dry run takes no lock and writes nothing; its missions have no id.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Act, AppError};
use crate::app::config::MissionsConfig;
use crate::auth::caller::{Caller, Scope};
use crate::domain::planning::{self, PlanAgent, PlanCandidate};
use crate::domain::priority::{self, CandidateRules, MissionReason, TenantFacts};
use crate::domain::route::problem::Speed;
use crate::domain::{
    ArrivalSource, ClosingKind, FailureReason, LatLng, MissionActor, MissionLink, MissionStatus,
    Transition, TransitionError, check_reassign, progress_on_action,
};
use crate::store::audit::AuditEvent;
use crate::store::begin_read;
use crate::store::missions::{
    self as store, AgentAccount, Closing, DayMission, FactsRow, MissionChange, MissionRow,
    PlanAgentRow, PlanSite, PlannedMission,
};

mod generate;
mod lifecycle;

pub use generate::*;
pub use lifecycle::*;

/// What to plan.
#[derive(Debug, Clone)]
pub struct GenerateInput {
    pub day: NaiveDate,
    /// `None`: every site of the caller's scope.
    pub site_ids: Option<Vec<Uuid>>,
    /// `None`: every active agent of the sites.
    pub agent_ids: Option<Vec<Uuid>>,
    /// 1..=50.
    pub max_per_agent: usize,
    pub dry_run: bool,
}

/// An agent's share of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSummary {
    pub agent_id: Uuid,
    pub agent_name: String,
    pub mission_count: i64,
    pub distance_m: f64,
    pub travel_secs: f64,
    pub outstanding_gnf: i64,
}

/// The outcome of a generation.
#[derive(Debug, Clone)]
pub struct Generated {
    pub day: NaiveDate,
    pub dry_run: bool,
    /// Every mission of the day on the planned sites (kept and new), by agent then route
    /// order; without id in a dry run's new ones.
    pub missions: Vec<MissionRow>,
    pub agents: Vec<AgentSummary>,
    pub candidate_count: i64,
    pub created_count: i64,
    pub replaced_count: i64,
    pub kept_count: i64,
    pub unassigned_count: i64,
    /// The agents whose missions of the day the run wrote (created, changed or replaced):
    /// none when the stored plan was already this one, or in a dry run.
    pub changed_agents: Vec<Uuid>,
}

impl Generated {
    /// The audit event of a stored generation by `act`.
    pub fn audit(&self, act: &Act<'_>) -> AuditEvent {
        act.audit("missions.generate")
            .detail("mission_date", self.day.to_string())
            .detail("created", self.created_count)
            .detail("replaced", self.replaced_count)
    }
}

/// Why a generation cannot run now.
pub const GENERATION_RUNNING: &str = "a generation of missions for this date is already running";

/// The plan computed from what was read: pure, on the blocking pool.
#[derive(Debug, Clone, Default)]
struct DayPlan {
    planned: Vec<PlannedMission>,
    candidate_count: i64,
    unassigned_count: i64,
}

/// What the planner reads.
struct PlanInput {
    day: NaiveDate,
    sites: Vec<PlanSite>,
    agents: Vec<PlanAgentRow>,
    facts: Vec<FactsRow>,
    kept_tenants: HashSet<Uuid>,
    kept_per_agent: HashMap<Uuid, usize>,
    max_per_agent: usize,
    rules: CandidateRules,
    speed: Speed,
}

/// Who plans: the sites and agents they may plan (a caller's scope; the scheduled run plans
/// the whole company), and when.
#[derive(Debug, Clone)]
pub struct Planner {
    pub scope: Scope,
    pub now: DateTime<Utc>,
}

impl Planner {
    /// A caller's write.
    pub fn of(act: &Act<'_>) -> Self {
        Self {
            scope: act.caller.scope(),
            now: act.now,
        }
    }
}

/// Whose missions a caller may read, and whether they may read `agent_id`'s.
pub fn ensure_agent_visible(
    caller: &Caller,
    agent_id: Uuid,
    agent_supervisor: Option<Uuid>,
    agent_sites: &[Uuid],
) -> Result<(), AppError> {
    let visible = match caller.scope() {
        Scope::Company => true,
        Scope::Sites(sites) => agent_sites.iter().any(|s| sites.contains(s)),
        Scope::Team { supervisor_id, .. } => agent_supervisor == Some(supervisor_id),
        Scope::Own { agent_id: own, .. } => own == agent_id,
    };
    if visible {
        Ok(())
    } else {
        Err(AppError::OutOfScope("this agent is outside your scope"))
    }
}

/// An agent's day: the missions in route order, the start point and the plan version.
#[derive(Debug, Clone)]
pub struct AgentDay {
    pub missions: Vec<MissionRow>,
    pub start: Option<LatLng>,
    pub plan_version: String,
}

/// ListTodayMissions' use case. `agent_id` must be visible to the caller.
pub async fn agent_day(
    pool: &PgPool,
    caller: &Caller,
    agent_id: Uuid,
    day: NaiveDate,
) -> Result<AgentDay, AppError> {
    let mut tx = begin_read(pool).await?;
    let agent = agent_of(&mut tx, agent_id).await?;
    ensure_agent_visible(caller, agent_id, agent.supervisor_id, &agent.site_ids)?;
    let missions = store::of_agent_day(&mut tx, agent_id, day).await?;
    let plan_version = store::plan_version(&mut tx, agent_id, day).await?;
    let start = match located(agent.latitude, agent.longitude) {
        Some(at) => Some(at),
        None => match missions.first() {
            Some(first) => store::plan_sites(&mut tx, Some(&[first.site_id]))
                .await?
                .first()
                .and_then(|s| located(Some(s.latitude), Some(s.longitude))),
            None => None,
        },
    };
    Ok(AgentDay {
        missions,
        start,
        plan_version,
    })
}

async fn agent_of(conn: &mut PgConnection, agent_id: Uuid) -> Result<AgentAccount, AppError> {
    store::agent_account(conn, agent_id)
        .await?
        .ok_or(AppError::NotFound("agent"))
}

/// ListAgentMissions' page.
pub async fn list(
    pool: &PgPool,
    filter: &store::ListFilter,
    after: Option<store::Cursor>,
    limit: i64,
) -> Result<(Vec<MissionRow>, i64), AppError> {
    let mut tx = begin_read(pool).await?;
    Ok(store::list(&mut tx, filter, after, limit).await?)
}

/// The default day of GenerateMissions at `now`: today before the cut-off (the scheduled time),
/// tomorrow from it on.
pub fn default_day(now: DateTime<Utc>, config: &MissionsConfig) -> NaiveDate {
    let today = crate::domain::conakry_day(now);
    // Africa/Conakry is UTC+0 all year.
    match config.schedule {
        Some(cut_off) if now.time() >= cut_off => today.succ_opt().unwrap_or(today),
        _ => today,
    }
}

/// A point from stored coordinates (degrees); `None` when either is missing or out of range.
fn located(latitude: Option<f64>, longitude: Option<f64>) -> Option<LatLng> {
    LatLng::parse(latitude?, longitude?).ok()
}
