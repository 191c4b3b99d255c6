use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const SITE: Uuid = Uuid::from_u128(10);
const OTHER_SITE: Uuid = Uuid::from_u128(11);
const AGENT: Uuid = Uuid::from_u128(20);

/// Tuesday 2026-12-01 at `hh:mm` (Africa/Conakry = UTC).
fn tuesday(hh: u32, mm: u32) -> DateTime<Utc> {
    format!("2026-12-01T{hh:02}:{mm:02}:00Z")
        .parse()
        .expect("valid instant")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn site(over_60: i64, tenants: i64, sensitive: bool) -> SiteAlertFacts {
    SiteAlertFacts {
        site_id: SITE,
        is_sensitive: sensitive,
        charges_over_60_days: over_60,
        outstanding_over_60_days_gnf: over_60 * 1_000,
        tenants_in_arrears: tenants,
    }
}

fn agent() -> AgentAlertFacts {
    AgentAlertFacts {
        agent_id: AGENT,
        site_id: Some(SITE),
        last_activity: None,
        score_today: 10,
        score_week: 50,
        far_visits_today: Vec::new(),
    }
}

fn only_sites(sites: Vec<SiteAlertFacts>) -> AlertFacts {
    AlertFacts {
        sites,
        ..AlertFacts::default()
    }
}

fn keys(conditions: &[Condition]) -> Vec<String> {
    conditions.iter().map(|c| c.key.clone()).collect()
}

#[test]
fn critical_arrears_above_fifty_charges() {
    let rules = AlertRules::default();
    let none = conditions(
        &only_sites(vec![site(50, 3, false)]),
        &rules,
        tuesday(10, 0),
    );
    assert_eq!(none, Vec::new());
    let found = conditions(
        &only_sites(vec![site(51, 3, false)]),
        &rules,
        tuesday(10, 0),
    );
    assert_eq!(
        found,
        vec![Condition {
            key: format!("critical_arrears:site:{SITE}"),
            kind: AlertKind::CriticalArrears,
            severity: Severity::Critical,
            target: Target::Site(SITE),
            site_id: SITE,
            message: "51 impayés de plus de 60 jours".to_owned(),
            details: map(&[
                ("charges_over_60_days", "51"),
                ("outstanding_over_60_days_gnf", "51000"),
                ("threshold", "50"),
            ]),
        }]
    );
}

#[test]
fn sensitive_site_warns_on_tenants_and_is_critical_with_critical_arrears() {
    let rules = AlertRules::default();
    let at = tuesday(3, 0);
    assert_eq!(
        conditions(&only_sites(vec![site(0, 5, true)]), &rules, at),
        Vec::new()
    );
    assert_eq!(
        conditions(&only_sites(vec![site(0, 9, false)]), &rules, at),
        Vec::new()
    );
    let warning = conditions(&only_sites(vec![site(2, 6, true)]), &rules, at);
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0].severity, Severity::Warning);
    assert_eq!(warning[0].message, "Site sensible : 6 locataires en impayé");
    assert_eq!(
        warning[0].details,
        map(&[
            ("charges_over_60_days", "2"),
            ("critical_arrears", "false"),
            ("tenants_in_arrears", "6"),
            ("tenants_threshold", "5"),
        ])
    );
    let critical = conditions(&only_sites(vec![site(60, 1, true)]), &rules, at);
    assert_eq!(
        keys(&critical),
        vec![
            format!("critical_arrears:site:{SITE}"),
            format!("sensitive_site:site:{SITE}")
        ]
    );
    assert_eq!(critical[1].severity, Severity::Critical);
    assert_eq!(
        critical[1].message,
        "Site sensible : 1 locataire en impayé, 60 de plus de 60 jours"
    );
}

#[test]
fn broken_promise_spike_needs_count_and_mean() {
    let rules = AlertRules::default();
    let facts = |today: i64, previous: Vec<i64>| AlertFacts {
        broken_promises: vec![BrokenPromiseFacts {
            site_id: SITE,
            today,
            previous_days: previous,
        }],
        ..AlertFacts::default()
    };
    let at = tuesday(9, 0);
    // 5 is not more than 5.
    assert!(conditions(&facts(5, vec![0; 7]), &rules, at).is_empty());
    // 8 against a mean of 4 (factor 2): 8 >= 8 fires; 7 does not.
    let spike = conditions(&facts(8, vec![4; 7]), &rules, at);
    assert_eq!(spike.len(), 1);
    assert_eq!(
        spike[0].message,
        "8 promesses rompues aujourd'hui (moyenne 4,00 par jour sur 7 jours)"
    );
    assert_eq!(
        spike[0].details,
        map(&[
            ("broken_today", "8"),
            ("daily_mean", "4.00"),
            ("days", "7"),
            ("factor", "2"),
            ("threshold", "5"),
        ])
    );
    assert!(conditions(&facts(7, vec![4; 7]), &rules, at).is_empty());
    // Factor 0: the count alone.
    let count_only = AlertRules {
        broken_promises_factor: 0.0,
        ..AlertRules::default()
    };
    assert_eq!(conditions(&facts(7, vec![4; 7]), &count_only, at).len(), 1);
}

#[test]
fn working_hours_bound_the_agent_rules() {
    let hours = WorkingHours::default();
    assert_eq!(hours.started(tuesday(7, 59)), None);
    assert_eq!(hours.started(tuesday(8, 0)), Some(tuesday(8, 0)));
    assert_eq!(hours.started(tuesday(17, 59)), Some(tuesday(8, 0)));
    assert_eq!(hours.started(tuesday(18, 0)), None);
    let sunday: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().expect("valid");
    assert_eq!(hours.started(sunday), None);
}

#[test]
fn agent_inactive_counts_from_the_start_of_work() {
    let rules = AlertRules {
        low_score_today: 0,
        low_score_week: 0,
        ..AlertRules::default()
    };
    let facts = |last: Option<DateTime<Utc>>| AlertFacts {
        agents: vec![AgentAlertFacts {
            last_activity: last,
            ..agent()
        }],
        ..AlertFacts::default()
    };
    // Silent since yesterday: inactive from 08:00 + 90 min.
    let yesterday = Some(tuesday(17, 0) - TimeDelta::days(1));
    assert!(conditions(&facts(yesterday), &rules, tuesday(9, 29)).is_empty());
    let found = conditions(&facts(yesterday), &rules, tuesday(9, 30));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, format!("agent_inactive:agent:{AGENT}"));
    assert_eq!(found[0].target, Target::Agent(AGENT));
    assert_eq!(
        found[0].message,
        "Aucune activité depuis 90 minutes (rien depuis le début de la journée)"
    );
    assert_eq!(
        found[0].details,
        map(&[
            ("idle_minutes", "90"),
            ("last_activity", "2026-11-30T17:00:00Z"),
            ("threshold_minutes", "90"),
        ])
    );
    // A visit at 10:15: quiet until 11:45.
    let visit = Some(tuesday(10, 15));
    assert!(conditions(&facts(visit), &rules, tuesday(11, 44)).is_empty());
    let found = conditions(&facts(visit), &rules, tuesday(11, 50));
    assert_eq!(
        found[0].message,
        "Aucune activité depuis 95 minutes (dernière à 10:15)"
    );
    // Outside working hours nothing is inactive.
    assert!(conditions(&facts(None), &rules, tuesday(19, 0)).is_empty());
}

#[test]
fn low_scores_of_the_day_after_two_and_of_the_week() {
    let rules = AlertRules {
        inactive_minutes: 24 * 60,
        ..AlertRules::default()
    };
    let facts = |today: i64, week: i64| AlertFacts {
        agents: vec![AgentAlertFacts {
            score_today: today,
            score_week: week,
            ..agent()
        }],
        ..AlertFacts::default()
    };
    assert!(conditions(&facts(0, 15), &rules, tuesday(13, 59)).is_empty());
    let day = conditions(&facts(2, 15), &rules, tuesday(14, 0));
    assert_eq!(
        keys(&day),
        vec![format!("low_agent_score:day:agent:{AGENT}")]
    );
    assert_eq!(day[0].message, "Score du jour : 2 points (seuil 3)");
    assert_eq!(day[0].severity, Severity::Info);
    assert!(conditions(&facts(3, 15), &rules, tuesday(14, 0)).is_empty());
    let week = conditions(&facts(3, 14), &rules, tuesday(9, 0));
    assert_eq!(
        keys(&week),
        vec![format!("low_agent_score:week:agent:{AGENT}")]
    );
    assert_eq!(
        week[0].message,
        "Score des 7 derniers jours : 14 points (seuil 15)"
    );
    assert_eq!(
        week[0].details,
        map(&[("period", "week"), ("score", "14"), ("threshold", "15")])
    );
    // Not outside working hours.
    assert!(conditions(&facts(-1, 0), &rules, tuesday(20, 0)).is_empty());
}

#[test]
fn far_visits_per_agent_and_site() {
    let rules = AlertRules::default();
    let facts = AlertFacts {
        agents: vec![AgentAlertFacts {
            far_visits_today: vec![(SITE, 2), (OTHER_SITE, 3)],
            ..agent()
        }],
        ..AlertFacts::default()
    };
    // At night: no working-hours rule, far visits still count.
    let found = conditions(&facts, &rules, tuesday(22, 0));
    assert_eq!(
        found,
        vec![Condition {
            key: format!("far_visit:agent:{AGENT}:site:{OTHER_SITE}"),
            kind: AlertKind::FarVisit,
            severity: Severity::Warning,
            target: Target::Agent(AGENT),
            site_id: OTHER_SITE,
            message: "3 visites loin du locataire aujourd'hui".to_owned(),
            details: map(&[("far_visits_today", "3"), ("threshold", "2")]),
        }]
    );
}

#[test]
fn site_facts_from_the_overdue_groups() {
    use crate::domain::dashboard::{OldestOverdue, OverdueGroup};
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid");
    let due = |back: u64| today - chrono::Days::new(back);
    let group = |site, back, gnf, n| OverdueGroup {
        site_id: site,
        due_date: due(back),
        outstanding_gnf: gnf,
        charge_count: n,
    };
    let overdue = [
        group(SITE, 61, 500, 2),
        group(SITE, 60, 700, 3),
        group(SITE, 200, 1_000, 4),
        group(OTHER_SITE, 90, 9, 1),
    ];
    let oldest = [
        OldestOverdue {
            site_id: SITE,
            oldest_due_date: due(200),
            tenant_count: 3,
        },
        OldestOverdue {
            site_id: SITE,
            oldest_due_date: due(60),
            tenant_count: 2,
        },
    ];
    let facts = SiteAlertFacts::of_sites(
        &[(SITE, true), (Uuid::from_u128(99), false)],
        &overdue,
        &oldest,
        today,
    );
    assert_eq!(
        facts,
        vec![
            SiteAlertFacts {
                site_id: SITE,
                is_sensitive: true,
                // 61 and 200 days: more than 60; 60 days is not.
                charges_over_60_days: 6,
                outstanding_over_60_days_gnf: 1_500,
                tenants_in_arrears: 5,
            },
            SiteAlertFacts {
                site_id: Uuid::from_u128(99),
                is_sensitive: false,
                charges_over_60_days: 0,
                outstanding_over_60_days_gnf: 0,
                tenants_in_arrears: 0,
            },
        ]
    );
}

#[test]
fn broken_promises_per_day_oldest_first() {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid");
    let back = |n: u64| today - chrono::Days::new(n);
    let rows = [
        (SITE, today, 4),
        (SITE, back(1), 1),
        (SITE, back(3), 2),
        (SITE, back(3), 1),
        (SITE, back(4), 7),
        (OTHER_SITE, back(2), 5),
    ];
    assert_eq!(
        BrokenPromiseFacts::of_days(&rows, today, 3),
        vec![
            BrokenPromiseFacts {
                site_id: SITE,
                today: 4,
                previous_days: vec![3, 0, 1],
            },
            BrokenPromiseFacts {
                site_id: OTHER_SITE,
                today: 0,
                previous_days: vec![0, 5, 0],
            },
        ]
    );
}

#[test]
fn database_spellings_round_trip() {
    for kind in AlertKind::ALL {
        assert_eq!(kind.as_str().parse::<AlertKind>(), Ok(*kind));
    }
    for severity in Severity::ALL {
        assert_eq!(severity.as_str().parse::<Severity>(), Ok(*severity));
    }
    for state in AlertState::ALL {
        assert_eq!(state.as_str().parse::<AlertState>(), Ok(*state));
    }
    assert!("loud".parse::<Severity>().is_err());
    assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
}

// ---------------------------------------------------------------------------------------
// Reconciliation, against a model of the table.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: Uuid,
    key: String,
    site_id: Uuid,
    state: AlertState,
    severity: Severity,
    start: DateTime<Utc>,
    update: DateTime<Utc>,
    resolve: Option<DateTime<Utc>>,
    acknowledged: bool,
}

fn unresolved(rows: &[Row]) -> Vec<StoredAlert> {
    rows.iter()
        .filter(|r| r.state != AlertState::Resolved)
        .map(|r| StoredAlert {
            id: r.id,
            key: r.key.clone(),
            site_id: r.site_id,
            severity: r.severity,
        })
        .collect()
}

/// What the store does with the actions (ids of new rows: the next integers).
fn apply(rows: &[Row], actions: &[Action]) -> Vec<Row> {
    let mut rows = rows.to_vec();
    for action in actions {
        match action {
            Action::Open { condition, at } => {
                let id = Uuid::from_u128(1_000 + rows.len() as u128);
                rows.push(Row {
                    id,
                    key: condition.key.clone(),
                    site_id: condition.site_id,
                    state: AlertState::Open,
                    severity: condition.severity,
                    start: *at,
                    update: *at,
                    resolve: None,
                    acknowledged: false,
                });
            }
            Action::Update { id, condition, at } => {
                let row = rows.iter_mut().find(|r| r.id == *id).expect("known row");
                row.severity = condition.severity;
                row.update = *at;
            }
            Action::Resolve { id, at, .. } => {
                let row = rows.iter_mut().find(|r| r.id == *id).expect("known row");
                row.state = AlertState::Resolved;
                row.resolve = Some(*at);
            }
        }
    }
    rows
}

fn condition(key: &str, severity: Severity) -> Condition {
    Condition {
        key: key.to_owned(),
        kind: AlertKind::CriticalArrears,
        severity,
        target: Target::Site(SITE),
        site_id: SITE,
        message: String::new(),
        details: BTreeMap::new(),
    }
}

#[test]
fn reconcile_opens_updates_and_resolves() {
    let before = tuesday(9, 0);
    let now = tuesday(9, 5);
    let stored = vec![
        StoredAlert {
            id: Uuid::from_u128(1),
            key: "a".into(),
            site_id: SITE,
            severity: Severity::Warning,
        },
        StoredAlert {
            id: Uuid::from_u128(2),
            key: "b".into(),
            site_id: OTHER_SITE,
            severity: Severity::Info,
        },
    ];
    let holding = vec![
        condition("a", Severity::Critical),
        condition("c", Severity::Info),
    ];
    let actions = reconcile(&stored, &holding, now);
    assert_eq!(
        actions,
        vec![
            Action::Open {
                condition: holding[1].clone(),
                at: now
            },
            Action::Update {
                id: Uuid::from_u128(1),
                condition: holding[0].clone(),
                at: now
            },
            Action::Resolve {
                id: Uuid::from_u128(2),
                site_id: OTHER_SITE,
                at: now
            },
        ]
    );
    assert_eq!(sites_changed(&stored, &actions), vec![SITE, OTHER_SITE]);
    // Same severity, nothing opened or resolved: no site changes.
    let quiet = reconcile(&stored[..1], &[condition("a", Severity::Warning)], before);
    assert_eq!(sites_changed(&stored[..1], &quiet), Vec::<Uuid>::new());
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Info),
        Just(Severity::Warning),
        Just(Severity::Critical)
    ]
}

/// Stored rows: each key 0..6 has at most one unresolved row (open or acknowledged) and any
/// number of resolved ones.
fn table() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0_u8..6,
            0_u8..3,
            severity(),
            proptest::collection::vec(0_u8..6, 0..4),
        ),
        0..6,
    )
    .prop_map(|entries| {
        let start = tuesday(8, 0);
        let mut rows: Vec<Row> = Vec::new();
        for (key, state, severity, resolved_keys) in entries {
            let key = format!("k{key}");
            if state < 2 && !rows.iter().any(|r| r.key == key && r.resolve.is_none()) {
                let id = Uuid::from_u128(rows.len() as u128 + 1);
                rows.push(Row {
                    id,
                    key,
                    site_id: SITE,
                    state: if state == 0 {
                        AlertState::Open
                    } else {
                        AlertState::Acknowledged
                    },
                    severity,
                    start,
                    update: start,
                    resolve: None,
                    acknowledged: state == 1,
                });
            }
            for old in resolved_keys {
                let id = Uuid::from_u128(rows.len() as u128 + 1);
                rows.push(Row {
                    id,
                    key: format!("k{old}"),
                    site_id: SITE,
                    state: AlertState::Resolved,
                    severity: Severity::Info,
                    start,
                    update: start,
                    resolve: Some(start),
                    acknowledged: false,
                });
            }
        }
        rows
    })
}

fn holding() -> impl Strategy<Value = Vec<Condition>> {
    proptest::collection::vec((0_u8..6, severity()), 0..8).prop_map(|list| {
        list.into_iter()
            .map(|(key, severity)| condition(&format!("k{key}"), severity))
            .collect()
    })
}

proptest! {
    #[test]
    fn reconciliation_follows_the_conditions(rows in table(), conditions in holding()) {
        let now = tuesday(9, 0);
        let after = apply(&rows, &reconcile(&unresolved(&rows), &conditions, now));
        let mut first: HashMap<&str, Severity> = HashMap::new();
        for c in &conditions {
            first.entry(c.key.as_str()).or_insert(c.severity);
        }
        // Every condition has exactly one unresolved alert, with its severity, seen now.
        for (key, severity) in &first {
            let open: Vec<&Row> = after
                .iter()
                .filter(|r| r.key == *key && r.state != AlertState::Resolved)
                .collect();
            prop_assert_eq!(open.len(), 1);
            prop_assert_eq!(open[0].severity, *severity);
            prop_assert_eq!(open[0].update, now);
        }
        // Nothing unresolved without its condition; nothing resolved that still holds.
        for row in &after {
            if row.state != AlertState::Resolved {
                prop_assert!(first.contains_key(row.key.as_str()));
            }
        }
        for (old, new) in rows.iter().zip(&after) {
            prop_assert_eq!(old.id, new.id);
            prop_assert_eq!(old.start, new.start);
            prop_assert_eq!(old.acknowledged, new.acknowledged);
            if old.state == AlertState::Resolved {
                prop_assert_eq!(old, new);
            } else if first.contains_key(old.key.as_str()) {
                prop_assert_eq!(new.state, old.state);
            } else {
                prop_assert_eq!(new.state, AlertState::Resolved);
                prop_assert_eq!(new.resolve, Some(now));
            }
        }
        // Idempotent: the same conditions again change nothing, now or later.
        let again = apply(&after, &reconcile(&unresolved(&after), &conditions, now));
        prop_assert_eq!(&again, &after);
        let later = reconcile(&unresolved(&after), &conditions, now + TimeDelta::minutes(5));
        let only_updates = later.iter().all(|a| matches!(a, Action::Update { .. }));
        prop_assert!(only_updates);
        prop_assert!(sites_changed(&unresolved(&after), &later).is_empty());
    }
}
