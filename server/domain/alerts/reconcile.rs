//! How the stored alerts follow the conditions of an evaluation: a pure plan of writes.
//!
//! Decisions:
//! - A condition without an unresolved alert of its key opens one (`start_time` = update time
//!   = now).
//! - An unresolved alert whose condition still holds is updated: update time now; severity,
//!   message and details as the condition says now. Its start time, state (open or
//!   acknowledged) and acknowledgement stay.
//! - An unresolved alert whose condition no longer holds is resolved at now. It is final: if
//!   the condition comes back later, that is a new alert (the acknowledgement does not carry
//!   over).
//! - Conditions sharing a key (none do when they come from `conditions`) count once, the first
//!   one; stored alerts sharing a key (the partial unique index forbids it) keep the first,
//!   the others resolve.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Condition, Severity};

/// An unresolved alert as the evaluator reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub id: Uuid,
    pub key: String,
    pub site_id: Uuid,
    pub severity: Severity,
}

/// One write of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new alert for the condition, started at `at`.
    Open {
        condition: Condition,
        at: DateTime<Utc>,
    },
    /// The alert `id` still holds: its figures as the condition says, evaluated at `at`.
    Update {
        id: Uuid,
        condition: Condition,
        at: DateTime<Utc>,
    },
    /// The alert `id` no longer holds: resolved at `at`.
    Resolve {
        id: Uuid,
        site_id: Uuid,
        at: DateTime<Utc>,
    },
}

impl Action {
    /// The site of the alert the action writes.
    pub fn site_id(&self) -> Uuid {
        match self {
            Action::Open { condition, .. } | Action::Update { condition, .. } => condition.site_id,
            Action::Resolve { site_id, .. } => *site_id,
        }
    }
}

/// The writes that make the unresolved alerts match `conditions` at `now` (see the module's
/// decisions): opens in the conditions' order, then updates and resolutions in the stored
/// alerts' order.
pub fn reconcile(
    unresolved: &[StoredAlert],
    conditions: &[Condition],
    now: DateTime<Utc>,
) -> Vec<Action> {
    let mut holding: HashMap<&str, &Condition> = HashMap::new();
    for condition in conditions {
        holding.entry(condition.key.as_str()).or_insert(condition);
    }
    let mut kept: HashSet<&str> = HashSet::new();
    let mut actions = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for condition in conditions {
        let key = condition.key.as_str();
        if seen.insert(key) && !unresolved.iter().any(|a| a.key == key) {
            actions.push(Action::Open {
                condition: condition.clone(),
                at: now,
            });
        }
    }
    for alert in unresolved {
        let key = alert.key.as_str();
        match holding.get(key) {
            Some(condition) if kept.insert(key) => actions.push(Action::Update {
                id: alert.id,
                condition: (*condition).clone(),
                at: now,
            }),
            _ => actions.push(Action::Resolve {
                id: alert.id,
                site_id: alert.site_id,
                at: now,
            }),
        }
    }
    actions
}

/// The sites whose alert figures an evaluation changes: those of opened and resolved alerts,
/// and of updated alerts whose severity changed (what the dashboards count).
pub fn sites_changed(unresolved: &[StoredAlert], actions: &[Action]) -> Vec<Uuid> {
    let severity: HashMap<Uuid, Severity> = unresolved.iter().map(|a| (a.id, a.severity)).collect();
    let mut sites: Vec<Uuid> = actions
        .iter()
        .filter(|action| match action {
            Action::Update { id, condition, .. } => severity.get(id) != Some(&condition.severity),
            Action::Open { .. } | Action::Resolve { .. } => true,
        })
        .map(Action::site_id)
        .collect();
    sites.sort_unstable();
    sites.dedup();
    sites
}
