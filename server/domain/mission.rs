//! Missions as the collections see them: a call, a visit or a payment may say it was done for
//! a mission, and the mission must then be the acting agent's, for that tenant.
//!
//! Decisions:
//! - The acting agent is the one the action is recorded for: the agent who called or visited,
//!   the agent who collected the money (not a back-office user who types it in for them).
//! - One rule for calls, visits and payments; the API answers a mismatch INVALID_ARGUMENT on
//!   `mission_id` (ERROR_REASON_MISSION_MISMATCH), an unknown mission NOT_FOUND.

use uuid::Uuid;

/// Whose mission it is, and for which tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissionLink {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
}

/// The mission named by an action is another agent's or another tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not this agent's mission for this tenant")]
pub struct MissionMismatch;

impl MissionLink {
    /// An action by `agent_id` about `tenant_id` may name this mission only if it is that
    /// agent's mission for that tenant.
    pub fn check(self, agent_id: Uuid, tenant_id: Uuid) -> Result<(), MissionMismatch> {
        if self.agent_id == agent_id && self.tenant_id == tenant_id {
            Ok(())
        } else {
            Err(MissionMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mission_must_be_the_agents_for_the_tenant() {
        let (agent, other_agent) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (tenant, other_tenant) = (Uuid::from_u128(10), Uuid::from_u128(11));
        let mission = MissionLink {
            agent_id: agent,
            tenant_id: tenant,
        };
        assert_eq!(mission.check(agent, tenant), Ok(()));
        assert_eq!(mission.check(other_agent, tenant), Err(MissionMismatch));
        assert_eq!(mission.check(agent, other_tenant), Err(MissionMismatch));
        assert_eq!(
            mission.check(other_agent, other_tenant),
            Err(MissionMismatch)
        );
        assert_eq!(
            MissionMismatch.to_string(),
            "is not this agent's mission for this tenant"
        );
    }
}
