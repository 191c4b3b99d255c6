//! UpdateMission's use case (the state machine, reassignment, links) and the actions recorded
//! for a mission.

use super::*;

/// What UpdateMission asks (the masked fields only).
#[derive(Debug, Clone, Default)]
pub struct MissionUpdate {
    pub status: Option<MissionStatus>,
    /// `Some(None)` clears it.
    pub failure_reason: Option<Option<FailureReason>>,
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
    let from = mission.status;
    let mut next = MissionChange {
        id: mission.id,
        agent_id: mission.agent_id,
        status: from,
        failure_reason: mission.failure_reason,
        status_note: mission.status_note.as_deref(),
        arrived_at: mission.arrived_at,
        arrival_source: mission.arrival_source,
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
    let owner = MissionLink {
        agent_id: next.agent_id,
        tenant_id: mission.tenant_id,
    };
    for (field, link, kind) in [
        ("mission.visit_id", change.visit_id, ClosingKind::Visit),
        ("mission.call_id", change.call_id, ClosingKind::Call),
    ] {
        if let Some(link) = link {
            if let Some(id) = link {
                check_link(conn, field, Closing::Interaction(id), kind, owner).await?;
            }
            next.closing_interaction_id = link;
        }
    }
    if let Some(link) = change.payment_id {
        if let Some(id) = link {
            let closing = Closing::Payment(id);
            check_link(
                conn,
                "mission.payment_id",
                closing,
                ClosingKind::Payment,
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
        next.arrival_source = arrival.map(|_| ArrivalSource::Declared);
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
    next.status = to;
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
        || before.failure_reason != after.failure_reason
}

/// A link of UpdateMission (`field`) must name an action of `kind` that the mission's own
/// rule allows ([`MissionLink::check`]: by the mission's agent, for its tenant).
async fn check_link(
    conn: &mut PgConnection,
    field: &'static str,
    closing: Closing,
    kind: ClosingKind,
    mission: MissionLink,
) -> Result<(), AppError> {
    match store::action_owner(conn, closing).await? {
        Some((action, found))
            if found == kind && mission.check(action.agent_id, action.tenant_id).is_ok() =>
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
    let status = mission.status;
    if progress_on_action(status).is_some() {
        store::close_by_action(conn, mission_id, closing, occurred_at).await?;
    }
    Ok(())
}
