//! GenerateMissions' use case: read, plan on the blocking pool, write what differs (see the
//! parent module's decisions).

use super::*;

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
        m.cancelled_by_generation
            || (m.status == MissionStatus::Planned
                && !m.reassigned
                && planned_agents.contains(&m.agent_id))
    };
    let mut kept_tenants = HashSet::new();
    let mut kept_per_agent: HashMap<Uuid, usize> = HashMap::new();
    let mut kept_count = 0;
    for mission in existing.iter().filter(|m| !replaceable(m)) {
        kept_tenants.insert(mission.tenant_id);
        kept_count += 1;
        if mission.status != MissionStatus::Cancelled {
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
        .filter(|m| !replaceable(m) && m.status != MissionStatus::Cancelled)
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
                m.status != MissionStatus::Planned
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
        .filter(|m| {
            replaceable(m) && m.status == MissionStatus::Planned && !in_plan.contains(&m.tenant_id)
        })
        .map(|m| m.id)
        .collect();
    let created_count = changed
        .iter()
        .filter(|p| {
            stored
                .get(&p.tenant_id)
                .is_none_or(|m| m.status != MissionStatus::Planned)
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
        .filter(|m| !(m.status == MissionStatus::Cancelled && in_plan.contains(&m.tenant_id)))
        .collect();
    let agents = summaries(&plan_input.agents, &missions, &plan_input.facts);
    let mut changed_agents: Vec<Uuid> = if input.dry_run {
        Vec::new()
    } else {
        changed
            .iter()
            .map(|p| p.agent_id)
            .chain(
                stored
                    .values()
                    .filter(|m| replaced.contains(&m.id))
                    .map(|m| m.agent_id),
            )
            .chain(
                changed
                    .iter()
                    .filter_map(|p| stored.get(&p.tenant_id).map(|m| m.agent_id)),
            )
            .collect()
    };
    changed_agents.sort_unstable();
    changed_agents.dedup();
    Ok(Generated {
        changed_agents,
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
            status: MissionStatus::Planned,
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
    rows.sort_by_key(|m| {
        (
            m.agent_id,
            m.status == MissionStatus::Cancelled,
            m.route_order,
            m.id,
        )
    });
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
                .filter(|m| m.agent_id == agent.id && m.status != MissionStatus::Cancelled);
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
