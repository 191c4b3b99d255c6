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
//!   cancelled, and the planned missions of agents outside the run (a run for some agents).
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
use crate::auth::caller::{Caller, Scope};
use crate::config::MissionsConfig;
use crate::domain::planning::{self, PlanAgent, PlanCandidate};
use crate::domain::priority::{self, CandidateRules, MissionReason, TenantFacts};
use crate::domain::route::problem::Speed;
use crate::domain::{
    LatLng, MissionActor, MissionStatus, Transition, TransitionError, check_reassign,
    progress_on_action,
};
use crate::store::audit::AuditEvent;
use crate::store::begin_read;
use crate::store::missions::{
    self as store, AgentAccount, Closing, DayMission, FactsRow, MissionChange, MissionRow,
    PlanAgentRow, PlanSite, PlannedMission,
};

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

/// GenerateMissions' use case, in the caller's transaction (a dry run: in a read snapshot).
pub async fn generate(
    conn: &mut PgConnection,
    planner: &Planner,
    input: &GenerateInput,
    config: &MissionsConfig,
    speed: Speed,
) -> Result<Generated, AppError> {
    if !input.dry_run && !store::try_lock_day(conn, input.day).await? {
        return Err(AppError::GenerationRunning);
    }
    let sites = sites_of(conn, &planner.scope, input.site_ids.as_deref()).await?;
    let site_ids: Vec<Uuid> = sites.iter().map(|s| s.id).collect();
    let supervisor = match planner.scope {
        Scope::Team { supervisor_id, .. } => Some(supervisor_id),
        _ => None,
    };
    let agents =
        store::plan_agents(conn, &site_ids, input.agent_ids.as_deref(), supervisor).await?;
    if let Some(wanted) = &input.agent_ids
        && wanted.iter().any(|id| !agents.iter().any(|a| a.id == *id))
    {
        return Err(AppError::NotFound("agent"));
    }
    let facts = store::candidate_facts(conn, &site_ids, input.day).await?;
    let existing = store::day_missions(conn, input.day, &site_ids).await?;
    let planned_agents: HashSet<Uuid> = agents.iter().map(|a| a.id).collect();
    let replaceable = |m: &DayMission| {
        m.cancelled_by_generation || (m.status == "planned" && planned_agents.contains(&m.agent_id))
    };
    let mut kept_tenants = HashSet::new();
    let mut kept_per_agent: HashMap<Uuid, usize> = HashMap::new();
    let mut kept_count = 0;
    for mission in existing.iter().filter(|m| !replaceable(m)) {
        kept_tenants.insert(mission.tenant_id);
        kept_count += 1;
        if mission.status != "cancelled" {
            *kept_per_agent.entry(mission.agent_id).or_default() += 1;
        }
    }
    let plan_input = PlanInput {
        day: input.day,
        sites,
        agents,
        facts,
        kept_tenants,
        kept_per_agent,
        max_per_agent: input.max_per_agent,
        rules: config.rules,
        speed,
    };
    let (mut plan, plan_input) =
        tokio::task::spawn_blocking(move || (plan_day(&plan_input), plan_input))
            .await
            .map_err(AppError::internal)?;
    // Work kept from an earlier plan (started, finished) keeps its place in the agent's day;
    // the new route comes after it, so no two missions of an agent share a route order.
    let mut kept_last_order: HashMap<Uuid, i32> = HashMap::new();
    for mission in existing
        .iter()
        .filter(|m| !replaceable(m) && m.status != "cancelled")
    {
        let last = kept_last_order.entry(mission.agent_id).or_default();
        *last = (*last).max(mission.route_order.unwrap_or(0));
    }
    for planned in &mut plan.planned {
        planned.route_order += kept_last_order.get(&planned.agent_id).copied().unwrap_or(0);
    }

    // What differs from the stored plan.
    let stored: HashMap<Uuid, &DayMission> = existing
        .iter()
        .filter(|m| replaceable(m))
        .map(|m| (m.tenant_id, m))
        .collect();
    let changed: Vec<PlannedMission> = plan
        .planned
        .iter()
        .filter(|p| {
            stored.get(&p.tenant_id).is_none_or(|m| {
                m.status != "planned"
                    || m.agent_id != p.agent_id
                    || m.route_order != Some(p.route_order)
                    || m.priority != p.priority
                    || m.estimated_distance_m != Some(p.distance_m)
            })
        })
        .cloned()
        .collect();
    let in_plan: HashSet<Uuid> = plan.planned.iter().map(|p| p.tenant_id).collect();
    let replaced: Vec<Uuid> = existing
        .iter()
        .filter(|m| replaceable(m) && m.status == "planned" && !in_plan.contains(&m.tenant_id))
        .map(|m| m.id)
        .collect();
    let created_count = changed
        .iter()
        .filter(|p| {
            stored
                .get(&p.tenant_id)
                .is_none_or(|m| m.status != "planned")
        })
        .count() as i64;

    let missions = if input.dry_run {
        preview(
            conn,
            input.day,
            &site_ids,
            &plan.planned,
            &plan_input.agents,
            &stored,
        )
        .await?
    } else {
        store::upsert_planned(conn, input.day, &changed).await?;
        store::cancel_replaced(conn, &replaced, planner.now).await?;
        store::of_day(conn, input.day, &site_ids).await?
    };
    let missions: Vec<MissionRow> = missions
        .into_iter()
        .filter(|m| !(m.status == "cancelled" && in_plan.contains(&m.tenant_id)))
        .collect();
    let agents = summaries(&plan_input.agents, &missions, &plan_input.facts);
    Ok(Generated {
        day: input.day,
        dry_run: input.dry_run,
        missions,
        agents,
        candidate_count: plan.candidate_count,
        created_count,
        replaced_count: replaced.len() as i64,
        kept_count,
        unassigned_count: plan.unassigned_count,
    })
}

/// A dry run's missions: the kept ones as stored, the planned ones as they would be.
async fn preview(
    conn: &mut PgConnection,
    day: NaiveDate,
    site_ids: &[Uuid],
    planned: &[PlannedMission],
    agents: &[PlanAgentRow],
    stored: &HashMap<Uuid, &DayMission>,
) -> Result<Vec<MissionRow>, AppError> {
    let names: HashMap<Uuid, &str> = agents
        .iter()
        .map(|a| (a.id, a.full_name.as_str()))
        .collect();
    let mut rows: Vec<MissionRow> = store::of_day(conn, day, site_ids)
        .await?
        .into_iter()
        .filter(|m| !stored.contains_key(&m.tenant_id))
        .collect();
    let now = Utc::now();
    rows.extend(planned.iter().map(|p| {
        MissionRow {
            id: Uuid::nil(),
            mission_date: day,
            agent_id: p.agent_id,
            agent_name: names
                .get(&p.agent_id)
                .copied()
                .unwrap_or_default()
                .to_owned(),
            tenant_id: p.tenant_id,
            site_id: p.site_id,
            priority: p.priority,
            reasons: p.reasons.iter().map(|r| (*r).to_owned()).collect(),
            route_order: Some(p.route_order),
            estimated_distance_m: Some(p.distance_m),
            estimated_travel_secs: Some(p.travel_secs),
            status: MissionStatus::Planned.as_str().to_owned(),
            failure_reason: None,
            status_note: None,
            arrived_at: None,
            arrival_source: None,
            started_at: None,
            finished_at: None,
            closing_interaction_id: None,
            closing_interaction_kind: None,
            closing_payment_id: None,
            updated_at: now,
        }
    }));
    rows.sort_by_key(|m| (m.agent_id, m.status == "cancelled", m.route_order, m.id));
    Ok(rows)
}

/// One line per planned agent.
fn summaries(
    agents: &[PlanAgentRow],
    missions: &[MissionRow],
    facts: &[FactsRow],
) -> Vec<AgentSummary> {
    let owed: HashMap<Uuid, i64> = facts
        .iter()
        .map(|f| (f.tenant_id, f.outstanding_gnf))
        .collect();
    agents
        .iter()
        .map(|agent| {
            let mine = missions
                .iter()
                .filter(|m| m.agent_id == agent.id && m.status != "cancelled");
            let mut summary = AgentSummary {
                agent_id: agent.id,
                agent_name: agent.full_name.clone(),
                mission_count: 0,
                distance_m: 0.0,
                travel_secs: 0.0,
                outstanding_gnf: 0,
            };
            for m in mine {
                summary.mission_count += 1;
                summary.distance_m += m.estimated_distance_m.unwrap_or(0.0);
                summary.travel_secs += m.estimated_travel_secs.unwrap_or(0.0);
                summary.outstanding_gnf += owed.get(&m.tenant_id).copied().unwrap_or(0);
            }
            summary
        })
        .collect()
}

/// The sites planned: those asked (NotFound for an unknown one or one outside the scope), or
/// every site of the scope.
async fn sites_of(
    conn: &mut PgConnection,
    scope: &Scope,
    requested: Option<&[Uuid]>,
) -> Result<Vec<PlanSite>, AppError> {
    let sites = store::plan_sites(conn, requested).await?;
    if let Some(requested) = requested
        && requested
            .iter()
            .any(|id| !sites.iter().any(|s| s.id == *id) || !scope.covers_site(*id))
    {
        return Err(AppError::NotFound("site"));
    }
    Ok(sites
        .into_iter()
        .filter(|s| scope.covers_site(s.id))
        .collect())
}

/// The day's plan from what was read (see the module's decisions).
fn plan_day(input: &PlanInput) -> DayPlan {
    let mut plan = DayPlan::default();
    let mut given: HashMap<Uuid, usize> = HashMap::new();
    let mut next_order: HashMap<Uuid, i32> = HashMap::new();
    let metres_per_second = input.speed.metres_per_second();
    for site in &input.sites {
        let Ok(site_location) = LatLng::parse(site.latitude, site.longitude) else {
            continue;
        };
        let agents: Vec<&PlanAgentRow> = input
            .agents
            .iter()
            .filter(|a| a.site_ids.contains(&site.id))
            .collect();
        let mut candidates = Vec::new();
        let mut chosen: Vec<(&FactsRow, Vec<MissionReason>)> = Vec::new();
        for row in input.facts.iter().filter(|f| f.site_id == site.id) {
            if input.kept_tenants.contains(&row.tenant_id) {
                continue;
            }
            let facts = tenant_facts(row);
            let Some(reasons) = priority::select(&facts, input.day, &input.rules) else {
                continue;
            };
            plan.candidate_count += 1;
            match located(row.latitude, row.longitude) {
                Some(location) => {
                    candidates.push(PlanCandidate {
                        location,
                        priority: priority::priority(&facts, input.day),
                    });
                    chosen.push((row, reasons));
                }
                None => plan.unassigned_count += 1,
            }
        }
        let plan_agents: Vec<PlanAgent> = agents
            .iter()
            .map(|a| PlanAgent {
                start: located(a.latitude, a.longitude).unwrap_or(site_location),
                kept: input.kept_per_agent.get(&a.id).copied().unwrap_or(0)
                    + given.get(&a.id).copied().unwrap_or(0),
                capacity: input.max_per_agent,
            })
            .collect();
        let site_plan = planning::plan_site(&plan_agents, &candidates);
        plan.unassigned_count += site_plan.unassigned.len() as i64;
        for (agent, route) in agents.iter().zip(&site_plan.routes) {
            *given.entry(agent.id).or_default() += route.stops.len();
            // From 1; `generate` moves the route after the agent's kept work.
            let order = next_order.entry(agent.id).or_insert(0);
            for (&c, &leg) in route.stops.iter().zip(&route.legs_m) {
                *order += 1;
                let (row, reasons) = &chosen[c];
                plan.planned.push(PlannedMission {
                    agent_id: agent.id,
                    tenant_id: row.tenant_id,
                    site_id: site.id,
                    priority: candidates[c].priority,
                    reasons: reasons.iter().map(|r| r.as_str()).collect(),
                    route_order: *order,
                    distance_m: leg as f64,
                    travel_secs: planning::travel_time(leg, metres_per_second).as_secs_f64(),
                });
            }
        }
    }
    plan
}

fn located(latitude: Option<f64>, longitude: Option<f64>) -> Option<LatLng> {
    LatLng::parse(latitude?, longitude?).ok()
}

fn tenant_facts(row: &FactsRow) -> TenantFacts {
    TenantFacts {
        outstanding_gnf: row.outstanding_gnf,
        oldest_unpaid_due_date: row.oldest_unpaid_due_date,
        broken_promises: u32::try_from(row.broken_promises).unwrap_or(u32::MAX),
        promise_due: row.promise_due,
        promise_pending_later: row.promise_pending_later,
        last_contact: row.last_contact,
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

/// What UpdateMission asks (the masked fields only).
#[derive(Debug, Clone, Default)]
pub struct MissionUpdate {
    pub status: Option<MissionStatus>,
    /// The database spelling; `Some(None)` clears it.
    pub failure_reason: Option<Option<&'static str>>,
    pub status_note: Option<Option<String>>,
    pub agent_id: Option<Uuid>,
    pub arrival_time: Option<Option<DateTime<Utc>>>,
    pub visit_id: Option<Option<Uuid>>,
    pub call_id: Option<Option<Uuid>>,
    pub payment_id: Option<Option<Uuid>>,
    /// When the change happened (device clock).
    pub occurred_at: DateTime<Utc>,
}

/// A mission changed by [`update`] (not committed yet).
pub struct Updated {
    /// The mission after the change.
    pub row: MissionRow,
    /// Its agent before the change (another one after a reassignment).
    pub previous_agent_id: Uuid,
    pub audit: AuditEvent,
}

/// UpdateMission's use case, in the caller's transaction; answers the mission after the change.
pub async fn update(
    conn: &mut PgConnection,
    act: &Act<'_>,
    mission_id: Uuid,
    change: &MissionUpdate,
) -> Result<Updated, AppError> {
    let caller = act.caller;
    let mission = store::get(conn, mission_id, true)
        .await?
        .ok_or(AppError::NotFound("mission"))?;
    let actor = match caller.scope() {
        Scope::Own { agent_id, .. } => {
            if mission.agent_id != agent_id {
                return Err(AppError::OutOfScope("this mission is another agent's"));
            }
            MissionActor::Agent
        }
        _ => {
            let agent = agent_of(conn, mission.agent_id).await?;
            ensure_agent_visible(
                caller,
                mission.agent_id,
                agent.supervisor_id,
                &agent.site_ids,
            )?;
            MissionActor::Supervisor
        }
    };
    let from: MissionStatus = mission.status.parse().map_err(AppError::internal)?;
    let mut next = MissionChange {
        id: mission.id,
        agent_id: mission.agent_id,
        status: from.as_str(),
        failure_reason: mission.failure_reason.as_deref(),
        status_note: mission.status_note.as_deref(),
        arrived_at: mission.arrived_at,
        arrival_source: mission.arrival_source.as_deref().and_then(arrival_source),
        started_at: mission.started_at,
        finished_at: mission.finished_at,
        closing_interaction_id: mission.closing_interaction_id,
        closing_payment_id: mission.closing_payment_id,
    };
    if let Some(agent_id) = change.agent_id
        && agent_id != mission.agent_id
    {
        if actor == MissionActor::Agent {
            return Err(AppError::NotAllowed("agents cannot reassign a mission"));
        }
        check_reassign(from).map_err(AppError::MissionAlreadyStarted)?;
        let agent = agent_of(conn, agent_id)
            .await
            .map_err(|_| AppError::invalid("mission.agent_id", "is not an agent"))?;
        if !agent.site_ids.contains(&mission.site_id) {
            return Err(AppError::invalid(
                "mission.agent_id",
                "the agent does not cover the mission's site",
            ));
        }
        ensure_agent_visible(caller, agent_id, agent.supervisor_id, &agent.site_ids)?;
        next.agent_id = agent_id;
    }
    // Links: each must be an action of the same tenant and of the mission's agent.
    let owner = next.agent_id;
    for (field, link, kind) in [
        ("mission.visit_id", change.visit_id, "visit"),
        ("mission.call_id", change.call_id, "call"),
    ] {
        if let Some(link) = link {
            if let Some(id) = link {
                check_link(
                    conn,
                    field,
                    Closing::Interaction(id),
                    kind,
                    mission.tenant_id,
                    owner,
                )
                .await?;
            }
            next.closing_interaction_id = link;
        }
    }
    if let Some(link) = change.payment_id {
        if let Some(id) = link {
            check_link(
                conn,
                "mission.payment_id",
                Closing::Payment(id),
                "payment",
                mission.tenant_id,
                owner,
            )
            .await?;
        }
        next.closing_payment_id = link;
    }
    if let Some(note) = &change.status_note {
        next.status_note = note.as_deref();
    }
    if let Some(arrival) = change.arrival_time {
        next.arrived_at = arrival;
        next.arrival_source = arrival.map(|_| "declared");
    }
    if let Some(reason) = change.failure_reason {
        next.failure_reason = reason;
    }
    let to = change.status.unwrap_or(from);
    match from
        .check_transition(to, actor)
        .map_err(AppError::MissionTransition)?
    {
        Transition::Same => {}
        Transition::Change { starts, ends } => {
            if starts {
                next.started_at = Some(change.occurred_at);
            }
            if ends {
                next.finished_at = Some(
                    next.started_at
                        .map_or(change.occurred_at, |s| s.max(change.occurred_at)),
                );
            }
        }
    }
    next.status = to.as_str();
    if to == MissionStatus::Done
        && next.closing_interaction_id.is_none()
        && next.closing_payment_id.is_none()
    {
        return Err(AppError::invalid(
            "update_mask",
            "DONE needs the visit, call or payment that closed the mission (visit_id, call_id or payment_id)",
        ));
    }
    if to == MissionStatus::Failed && next.failure_reason.is_none() {
        return Err(AppError::invalid(
            "mission.failure_reason",
            "is required with MISSION_STATUS_FAILED",
        ));
    }
    if to != MissionStatus::Failed && change.failure_reason.flatten().is_some() {
        return Err(AppError::invalid(
            "mission.failure_reason",
            "only a FAILED mission has a failure reason",
        ));
    }
    if from.is_final() && to == from && frozen_fields_changed(&mission, &next) {
        return Err(AppError::MissionTransition(TransitionError::Final {
            from,
            to,
        }));
    }
    store::update(conn, &next).await?;
    let row = store::get(conn, mission_id, false)
        .await?
        .ok_or(AppError::NotFound("mission"))?;
    let audit = act
        .audit("missions.update")
        .target("mission", mission_id)
        .detail("status", to.as_str());
    Ok(Updated {
        row,
        previous_agent_id: mission.agent_id,
        audit,
    })
}

/// A final mission's links and agent no longer change (its note may).
fn frozen_fields_changed(before: &MissionRow, after: &MissionChange<'_>) -> bool {
    before.agent_id != after.agent_id
        || before.closing_interaction_id != after.closing_interaction_id
        || before.closing_payment_id != after.closing_payment_id
        || before.failure_reason.as_deref() != after.failure_reason
}

fn arrival_source(value: &str) -> Option<&'static str> {
    match value {
        "geofence" => Some("geofence"),
        "declared" => Some("declared"),
        _ => None,
    }
}

async fn check_link(
    conn: &mut PgConnection,
    field: &'static str,
    closing: Closing,
    kind: &str,
    tenant_id: Uuid,
    agent_id: Uuid,
) -> Result<(), AppError> {
    match store::action_owner(conn, closing).await? {
        Some((tenant, agent, found))
            if found == kind && tenant == tenant_id && agent == agent_id =>
        {
            Ok(())
        }
        Some(_) => Err(AppError::invalid(
            field,
            format!("is not a {kind} of this mission's tenant by its agent"),
        )),
        None => Err(AppError::invalid(field, format!("no such {kind}"))),
    }
}

/// Moves the mission an action was recorded for forward (`domain::progress_on_action`): DONE,
/// linked to the action, unless it is final already. Called by the use cases that record
/// calls, visits and payments, in their transaction, after the mission was checked to be the
/// agent's for the tenant.
pub async fn on_action(
    conn: &mut PgConnection,
    mission_id: Uuid,
    closing: Closing,
    occurred_at: DateTime<Utc>,
) -> Result<(), AppError> {
    let Some(mission) = store::get(conn, mission_id, true).await? else {
        return Ok(());
    };
    let status: MissionStatus = mission.status.parse().map_err(AppError::internal)?;
    if progress_on_action(status).is_some() {
        store::close_by_action(conn, mission_id, closing, occurred_at).await?;
    }
    Ok(())
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
