//! Missions as the collections see them: a call, a visit or a payment may say it was done for
//! a mission, and the mission must then be the acting agent's, for that tenant.
//!
//! Decisions:
//! - The acting agent is the one the action is recorded for: the agent who called or visited,
//!   the agent who collected the money (not a back-office user who types it in for them).
//! - One rule for calls, visits and payments; the API answers a mismatch INVALID_ARGUMENT on
//!   `mission_id` (ERROR_REASON_MISSION_MISMATCH), an unknown mission NOT_FOUND.
//! - The lifecycle ([`MissionStatus::check_transition`]): PLANNED → IN_PROGRESS | DONE | FAILED
//!   | CANCELLED; IN_PROGRESS → DONE | FAILED | CANCELLED; DONE, FAILED and CANCELLED are final.
//!   The same status again is a no-op. Agents may not cancel; only a PLANNED mission may be
//!   reassigned ([`check_reassign`]).
//! - An action recorded with a mission_id moves the mission forward by itself
//!   ([`progress_on_action`]): a visit, or a call or payment that settles something, closes a
//!   PLANNED or IN_PROGRESS mission as DONE with a link to it; a final mission is left alone.
//! - Why a mission failed, how its arrival became known and what kind of action closed it are
//!   closed vocabularies ([`FailureReason`], [`ArrivalSource`], [`ClosingKind`]): the store
//!   decodes the columns into them and the API maps them to the wire, each in one place.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::outcome::{UnknownDbValue, db_enum};

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

/// Status of a mission (`missions.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissionStatus {
    Planned,
    InProgress,
    Done,
    Failed,
    Cancelled,
}

/// Why a mission failed (`missions.failure_reason`, required when FAILED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    TenantAbsent,
    Refused,
    TenantMoved,
    AddressNotFound,
    Unsafe,
    NoTime,
    Other,
}

db_enum!(FailureReason, "mission failure reason", [
    TenantAbsent => "tenant_absent",
    Refused => "refused",
    TenantMoved => "tenant_moved",
    AddressNotFound => "address_not_found",
    Unsafe => "unsafe",
    NoTime => "no_time",
    Other => "other",
]);

/// How the arrival at a mission's tenant became known (`missions.arrival_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrivalSource {
    /// The agent's positions entered the tenant's geofence.
    Geofence,
    /// Declared by UpdateMission (arrival_time).
    Declared,
}

db_enum!(ArrivalSource, "arrival source", [Geofence => "geofence", Declared => "declared"]);

/// The kind of action that closed a mission, as UpdateMission links it (visit_id, call_id,
/// payment_id); also what an interaction or a ledger entry named by such a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClosingKind {
    Visit,
    Call,
    Payment,
}

db_enum!(ClosingKind, "closing action kind", [
    Visit => "visit",
    Call => "call",
    Payment => "payment",
]);

/// Who changes a mission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissionActor {
    /// The mission's own agent.
    Agent,
    /// A supervisor, site manager or anyone with a wider scope.
    Supervisor,
}

/// Why a status change is refused (FAILED_PRECONDITION, ERROR_REASON_MISSION_TRANSITION_INVALID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the mission is {from}, a final status; it cannot become {to}")]
    Final {
        from: MissionStatus,
        to: MissionStatus,
    },
    #[error("a mission in progress cannot go back to planned")]
    BackToPlanned,
    #[error("agents cannot cancel a mission; ask a supervisor")]
    AgentCancel,
}

/// A reassignment of a mission that has started (FAILED_PRECONDITION,
/// ERROR_REASON_MISSION_ALREADY_STARTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a planned mission can be reassigned; this one is {0}")]
pub struct AlreadyStarted(pub MissionStatus);

/// What a status change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Same status: nothing to write.
    Same,
    /// A change; `starts` when it sets start_time, `ends` when it sets end_time.
    Change { starts: bool, ends: bool },
}

impl MissionStatus {
    pub const ALL: [MissionStatus; 5] = [
        MissionStatus::Planned,
        MissionStatus::InProgress,
        MissionStatus::Done,
        MissionStatus::Failed,
        MissionStatus::Cancelled,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MissionStatus::Planned => "planned",
            MissionStatus::InProgress => "in_progress",
            MissionStatus::Done => "done",
            MissionStatus::Failed => "failed",
            MissionStatus::Cancelled => "cancelled",
        }
    }

    /// DONE, FAILED and CANCELLED.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MissionStatus::Done | MissionStatus::Failed | MissionStatus::Cancelled
        )
    }

    /// Whether `actor` may move a mission from `self` to `to` (see the module's decisions).
    pub fn check_transition(
        self,
        to: MissionStatus,
        actor: MissionActor,
    ) -> Result<Transition, TransitionError> {
        use MissionStatus::*;
        if self == to {
            return Ok(Transition::Same);
        }
        if self.is_final() {
            return Err(TransitionError::Final { from: self, to });
        }
        if to == Planned {
            return Err(TransitionError::BackToPlanned);
        }
        if to == Cancelled && actor == MissionActor::Agent {
            return Err(TransitionError::AgentCancel);
        }
        Ok(Transition::Change {
            starts: self == Planned && to == InProgress,
            ends: to.is_final(),
        })
    }
}

impl fmt::Display for MissionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MissionStatus {
    type Err = UnknownDbValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MissionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownDbValue {
                kind: "mission status",
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for MissionStatus {
    type Error = UnknownDbValue;

    /// The status stored as `value` (how store rows decode it).
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// A mission may change agent only while PLANNED.
pub fn check_reassign(status: MissionStatus) -> Result<(), AlreadyStarted> {
    if status == MissionStatus::Planned {
        Ok(())
    } else {
        Err(AlreadyStarted(status))
    }
}

/// The status a mission takes when an action is recorded for it: DONE for a PLANNED or
/// IN_PROGRESS one, `None` (left alone) for a final one.
pub fn progress_on_action(status: MissionStatus) -> Option<MissionStatus> {
    (!status.is_final()).then_some(MissionStatus::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MissionActor::{Agent, Supervisor};
    use MissionStatus::*;

    #[test]
    fn the_lifecycle_table() {
        // (from, to, agent allowed, supervisor allowed)
        let legal = [
            (Planned, InProgress),
            (Planned, Done),
            (Planned, Failed),
            (Planned, Cancelled),
            (InProgress, Done),
            (InProgress, Failed),
            (InProgress, Cancelled),
        ];
        for from in MissionStatus::ALL {
            for to in MissionStatus::ALL {
                let supervisor = from.check_transition(to, Supervisor);
                let agent = from.check_transition(to, Agent);
                if from == to {
                    assert_eq!(supervisor, Ok(Transition::Same));
                    assert_eq!(agent, Ok(Transition::Same));
                } else if legal.contains(&(from, to)) {
                    let change = Transition::Change {
                        starts: from == Planned && to == InProgress,
                        ends: to != InProgress,
                    };
                    assert_eq!(supervisor, Ok(change), "{from} -> {to}");
                    if to == Cancelled {
                        assert_eq!(agent, Err(TransitionError::AgentCancel));
                    } else {
                        assert_eq!(agent, Ok(change), "{from} -> {to}");
                    }
                } else {
                    assert!(supervisor.is_err(), "{from} -> {to}");
                    assert!(agent.is_err(), "{from} -> {to}");
                }
            }
        }
        assert_eq!(
            Done.check_transition(Failed, Supervisor)
                .unwrap_err()
                .to_string(),
            "the mission is done, a final status; it cannot become failed"
        );
        assert_eq!(
            InProgress.check_transition(Planned, Supervisor),
            Err(TransitionError::BackToPlanned)
        );
    }

    #[test]
    fn reassign_and_progress() {
        assert_eq!(check_reassign(Planned), Ok(()));
        assert_eq!(check_reassign(InProgress), Err(AlreadyStarted(InProgress)));
        assert_eq!(progress_on_action(Planned), Some(Done));
        assert_eq!(progress_on_action(InProgress), Some(Done));
        for status in [Done, Failed, Cancelled] {
            assert_eq!(progress_on_action(status), None);
        }
        for status in MissionStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("PLANNED".parse::<MissionStatus>().is_err());
    }

    #[test]
    fn failure_reasons_arrival_sources_and_closing_kinds_read_their_spellings() {
        for &reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse(), Ok(reason));
        }
        assert_eq!(FailureReason::ALL.len(), 7);
        assert_eq!(
            "tenant_absent".parse::<FailureReason>(),
            Ok(FailureReason::TenantAbsent)
        );
        assert!("absent".parse::<FailureReason>().is_err());
        for &source in ArrivalSource::ALL {
            assert_eq!(source.as_str().parse(), Ok(source));
        }
        assert!("gps".parse::<ArrivalSource>().is_err());
        for &kind in ClosingKind::ALL {
            assert_eq!(ClosingKind::try_from(kind.as_str().to_owned()), Ok(kind));
        }
        assert_eq!(ClosingKind::Payment.to_string(), "payment");
    }

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
