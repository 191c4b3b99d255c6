//! Mission changes told, after their commit, to the agents' phones
//! ([`LiveHub::push_mission`](crate::live::LiveHub::push_mission): a `MissionPush` on the
//! agent's AgentSession, on whichever replica holds it).
//!
//! Decisions:
//! - Only changes of today's missions (Conakry day) are pushed: the phone's day is today;
//!   other days are read with ListAgentMissions. (The live map's mission in progress is read
//!   by the hub itself, see `crate::live`.)
//! - UpdateMission pushes UPDATED (CANCELLED when the mission is cancelled) to the mission's
//!   agent; a reassignment pushes REMOVED to the previous agent and CREATED to the new one.
//!   GenerateMissions pushes PLAN_CHANGED (reload the day) to every agent whose day it
//!   changed (none when the stored plan was already the one it made).
//!   Each push carries the agent's plan_version after the change, as ListTodayMissions
//!   answers it, so a phone that reloads is answered `unchanged` when nothing else moved.
//! - A retried UpdateMission or GenerateMissions answered from its stored response pushes
//!   nothing: the first one did.
//! - A call, visit or payment recorded for a mission of today (which may close it:
//!   `app::missions::on_action`) pushes UPDATED with the mission as it stands; a retry of that
//!   request may push it again (the same state).
//! - Best effort: the change is committed; a failure to read the plan versions is logged and
//!   the pushes go out without one (the phone then reloads its day in full).

use std::collections::HashMap;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::api::parse::today;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::missions as store;

/// What an UpdateMission changed, taken in its transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Updated {
    /// The mission's agent before the change (another one after a reassignment).
    pub previous_agent_id: Uuid,
    /// Its agent after the change.
    pub agent_id: Uuid,
    /// The mission's day.
    pub day: NaiveDate,
    /// The change cancelled it.
    pub cancelled: bool,
}

/// Tells the phones about a committed UpdateMission; `mission` is the answer's mission.
pub(super) async fn after_update(state: &AppState, updated: Updated, mission: &pb::Mission) {
    if updated.day != today() {
        return;
    }
    let reassigned = updated.previous_agent_id != updated.agent_id;
    let agents: Vec<Uuid> = if reassigned {
        vec![updated.previous_agent_id, updated.agent_id]
    } else {
        vec![updated.agent_id]
    };
    let versions = plan_versions(state, &agents, updated.day).await;
    let push = |agent: Uuid, kind: pb::MissionPushKind| {
        send(state, &versions, agent, kind, Some(mission.clone()));
    };
    if reassigned {
        push(updated.previous_agent_id, pb::MissionPushKind::Removed);
        push(updated.agent_id, pb::MissionPushKind::Created);
    } else if updated.cancelled {
        push(updated.agent_id, pb::MissionPushKind::Cancelled);
    } else {
        push(updated.agent_id, pb::MissionPushKind::Updated);
    }
}

/// Tells the agents of a committed GenerateMissions of `day` to reload it.
pub(super) async fn after_generation(state: &AppState, day: NaiveDate, agents: &[Uuid]) {
    if day != today() || agents.is_empty() {
        return;
    }
    let versions = plan_versions(state, agents, day).await;
    for agent in agents {
        send(
            state,
            &versions,
            *agent,
            pb::MissionPushKind::PlanChanged,
            None,
        );
    }
}

/// Pushes `kind` (with `mission`) to `agent`'s session, with the agent's plan version.
fn send(
    state: &AppState,
    versions: &HashMap<Uuid, String>,
    agent: Uuid,
    kind: pb::MissionPushKind,
    mission: Option<pb::Mission>,
) {
    state.live.push_mission(
        agent,
        pb::MissionPush {
            kind: kind.into(),
            mission,
            plan_version: versions.get(&agent).cloned().unwrap_or_default(),
        },
    );
}

/// The plan versions of `agents` for `day`; empty (logged) when they cannot be read.
async fn plan_versions(state: &AppState, agents: &[Uuid], day: NaiveDate) -> HashMap<Uuid, String> {
    let read = async {
        let mut conn = state.pool.acquire().await?;
        store::plan_versions(&mut conn, agents, day).await
    };
    match read.await {
        Ok(versions) => versions.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "mission push: cannot read the plan versions");
            HashMap::new()
        }
    }
}

/// Tells the phone of the mission's agent about a call, visit or payment recorded for
/// `mission_id` (see the module's decisions); nothing for another day's mission.
pub(crate) async fn after_action(state: &AppState, mission_id: Uuid) {
    let read = async {
        let aging = super::views::aging(state)?;
        let mut tx = crate::store::begin_read(&state.pool).await?;
        let Some(row) = store::get(&mut tx, mission_id, false).await? else {
            return Ok(None);
        };
        if row.mission_date != today() {
            return Ok(None);
        }
        let mut missions =
            super::views::missions(&mut tx, std::slice::from_ref(&row), &aging).await?;
        Ok::<_, ApiError>(missions.pop().map(|m| (row.agent_id, row.mission_date, m)))
    };
    match read.await {
        Ok(Some((agent, day, mission))) => {
            let versions = plan_versions(state, &[agent], day).await;
            send(
                state,
                &versions,
                agent,
                pb::MissionPushKind::Updated,
                Some(mission),
            );
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(?error, "mission push: cannot read the mission"),
    }
}
