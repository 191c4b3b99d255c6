//! Business alerts: which conditions hold now, from facts read per site and agent and the
//! configured thresholds ([`conditions`]), and how the stored alerts follow them
//! ([`reconcile()`]). No I/O: the store reads the facts, the job writes the plan.
//!
//! Rules (each condition has a key; at most one unresolved alert per key):
//! - **Critical arrears** (`critical_arrears:site:<site>`, critical): a site has more than
//!   [`AlertRules::critical_overdue_charges`] charges more than 60 days overdue (the seed's rule,
//!   counted as `site_arrears` and `domain::dashboard` count them).
//! - **Broken-promise spike** (`broken_promise_spike:site:<site>`, warning): more than
//!   [`AlertRules::broken_promises`] promises of the site's tenants broke today and, when
//!   [`AlertRules::broken_promises_factor`] is not 0, today's count is at least that factor
//!   times the daily mean of the [`AlertRules::broken_promises_days`] days before. A promise
//!   breaks on the day after its promised date (`domain::promise`).
//! - **Agent inactive** (`agent_inactive:agent:<agent>`, warning): during working hours (local
//!   time within [`WorkingHours`] on a working day), nothing from the agent (call, visit,
//!   payment, position) for at least [`AlertRules::inactive_minutes`]; the time before the day's
//!   start of work does not count, so an agent silent since yesterday is inactive from
//!   `start + inactive_minutes`.
//! - **Low agent score** (working hours): `low_agent_score:day:agent:<agent>` (info) from
//!   [`AlertRules::low_score_from`] when today's score is below [`AlertRules::low_score_today`];
//!   `low_agent_score:week:agent:<agent>` (info) when the score of the 7 days before today is
//!   below [`AlertRules::low_score_week`]. A threshold of 0 turns its rule off.
//! - **Sensitive site** (`sensitive_site:site:<site>`): a site flagged sensitive with more than
//!   [`AlertRules::sensitive_tenants`] tenants in arrears (warning), or whose critical-arrears
//!   condition holds (critical).
//! - **Visits far from the tenant** (`far_visit:agent:<agent>:site:<site>`, warning): more
//!   than [`AlertRules::far_visits`] of an agent's visits today on a site were flagged far away
//!   (a mocked location counts as far, `domain::presence`).
//!
//! Decisions:
//! - Agent alerts are scoped by the agent's first site by code (an agent alert needs one site
//!   for ListAlerts' scope); far visits are per agent and site, so each site sees its own.
//! - Messages are French, for the dashboard; details are strings (the API's `map<string,
//!   string>`), amounts in GNF, times RFC 3339 UTC (= Africa/Conakry).
//! - Counts compare with "more than" (the seed's "plus de 50"), scores with "below".

mod reconcile;

pub use reconcile::{Action, StoredAlert, reconcile, sites_changed};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use uuid::Uuid;

use super::aging::days_overdue;
use super::clock::{conakry_day, conakry_day_start};
use super::dashboard::{CRITICAL_OVERDUE_DAYS, OldestOverdue, OverdueGroup};
use super::outcome::{UnknownDbValue, db_enum};

/// What an alert is about (`alerts.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    CriticalArrears,
    BrokenPromiseSpike,
    AgentInactive,
    LowAgentScore,
    SensitiveSite,
    FarVisit,
}

db_enum!(AlertKind, "alert kind", [
    CriticalArrears => "critical_arrears",
    BrokenPromiseSpike => "broken_promise_spike",
    AgentInactive => "agent_inactive",
    LowAgentScore => "low_agent_score",
    SensitiveSite => "sensitive_site",
    FarVisit => "far_visit",
]);

/// How serious an alert is (`alerts.severity`), least serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

db_enum!(Severity, "alert severity", [
    Info => "info",
    Warning => "warning",
    Critical => "critical",
]);

/// Where an alert is in its life (`alerts.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

db_enum!(AlertState, "alert state", [
    Open => "open",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
]);

/// What an alert is raised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Site(Uuid),
    Agent(Uuid),
    Tenant(Uuid),
}

/// A condition that holds now: what an unresolved alert shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Identifies the condition across evaluations, e.g. `critical_arrears:site:<uuid>`.
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub target: Target,
    /// The site the alert is scoped by.
    pub site_id: Uuid,
    /// French text for the dashboard.
    pub message: String,
    /// The facts behind it, by name.
    pub details: BTreeMap<String, String>,
}

/// Arrears facts of one site (`store::alerts::site_facts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteAlertFacts {
    pub site_id: Uuid,
    pub is_sensitive: bool,
    /// Charges with something outstanding due more than 60 days before today.
    pub charges_over_60_days: i64,
    /// GNF outstanding on those charges.
    pub outstanding_over_60_days_gnf: i64,
    /// Tenants with something outstanding due before today.
    pub tenants_in_arrears: i64,
}

/// Promises of one site's tenants that broke today, and on each of the days before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenPromiseFacts {
    pub site_id: Uuid,
    pub today: i64,
    /// One count per day before today, as many as [`AlertRules::broken_promises_days`]
    /// (days without a broken promise count 0).
    pub previous_days: Vec<i64>,
}

/// One agent's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAlertFacts {
    pub agent_id: Uuid,
    /// The agent's first site by code (the scope of the agent's inactivity and score alerts;
    /// `None`: the agent covers no site, and those rules skip them).
    pub site_id: Option<Uuid>,
    /// Latest call, visit, payment or position received from the agent (device times).
    pub last_activity: Option<DateTime<Utc>>,
    /// Today's score.
    pub score_today: i64,
    /// Score of the 7 days before today.
    pub score_week: i64,
    /// Far-away visits today, per site of the visited tenant.
    pub far_visits_today: Vec<(Uuid, i64)>,
}

/// Everything the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFacts {
    pub sites: Vec<SiteAlertFacts>,
    pub broken_promises: Vec<BrokenPromiseFacts>,
    pub agents: Vec<AgentAlertFacts>,
}

impl SiteAlertFacts {
    /// The facts of each of `sites` (id, sensitive flag) on `today` from the overdue groups the
    /// dashboards read (`store::site_facts::overdue`): charges more than
    /// [`CRITICAL_OVERDUE_DAYS`] days overdue and their outstanding, tenants in arrears.
    pub fn of_sites(
        sites: &[(Uuid, bool)],
        overdue: &[OverdueGroup],
        oldest: &[OldestOverdue],
        today: NaiveDate,
    ) -> Vec<SiteAlertFacts> {
        sites
            .iter()
            .map(|&(site_id, is_sensitive)| {
                let mut facts = SiteAlertFacts {
                    site_id,
                    is_sensitive,
                    charges_over_60_days: 0,
                    outstanding_over_60_days_gnf: 0,
                    tenants_in_arrears: 0,
                };
                for group in overdue.iter().filter(|g| g.site_id == site_id) {
                    if days_overdue(group.due_date, today) > CRITICAL_OVERDUE_DAYS {
                        facts.charges_over_60_days += group.charge_count;
                        facts.outstanding_over_60_days_gnf = facts
                            .outstanding_over_60_days_gnf
                            .saturating_add(group.outstanding_gnf);
                    }
                }
                facts.tenants_in_arrears = oldest
                    .iter()
                    .filter(|g| g.site_id == site_id && g.oldest_due_date < today)
                    .map(|g| g.tenant_count)
                    .sum();
                facts
            })
            .collect()
    }
}

impl BrokenPromiseFacts {
    /// Per site, from (site, day the promises broke, how many): today's count and one count
    /// per day of the `days` before today, oldest first. Sites without a broken promise in the
    /// window are left out.
    pub fn of_days(rows: &[(Uuid, NaiveDate, i64)], today: NaiveDate, days: u32) -> Vec<Self> {
        let mut sites: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        sites.sort_unstable();
        sites.dedup();
        let count = |site: Uuid, day: NaiveDate| -> i64 {
            rows.iter()
                .filter(|r| r.0 == site && r.1 == day)
                .map(|r| r.2)
                .sum()
        };
        sites
            .into_iter()
            .map(|site_id| BrokenPromiseFacts {
                site_id,
                today: count(site_id, today),
                previous_days: (1..=u64::from(days))
                    .rev()
                    .filter_map(|back| today.checked_sub_days(Days::new(back)))
                    .map(|day| count(site_id, day))
                    .collect(),
            })
            .collect()
    }
}

/// Africa/Conakry working hours: `start <= time < end` on `days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: Vec<Weekday>,
}

impl Default for WorkingHours {
    /// 08:00 to 18:00, Monday to Saturday.
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
            ],
        }
    }
}

impl WorkingHours {
    /// When today's work started, if `now` is within working hours.
    pub fn started(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let day = conakry_day(now);
        let start = conakry_day_start(day) + (self.start - NaiveTime::MIN);
        let end = conakry_day_start(day) + (self.end - NaiveTime::MIN);
        (self.days.contains(&day.weekday()) && start <= now && now < end).then_some(start)
    }
}

/// The thresholds of the rules (`AKIG_ALERT_*`, see `config/alerts.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// Critical arrears: more than this many charges over 60 days overdue (50).
    pub critical_overdue_charges: i64,
    /// Broken-promise spike: more than this many promises broken today on a site (5).
    pub broken_promises: i64,
    /// ... and at least this factor times the daily mean of the days before (2.0; 0: off).
    pub broken_promises_factor: f64,
    /// Days before today the mean is taken over (7).
    pub broken_promises_days: u32,
    pub working_hours: WorkingHours,
    /// Agent inactive: nothing for at least this many minutes of working hours (90).
    pub inactive_minutes: i64,
    /// Low score: today's score below this (3; 0: off)...
    pub low_score_today: i64,
    /// ... once this local time has passed (14:00).
    pub low_score_from: NaiveTime,
    /// Low score: the score of the 7 days before today below this (15; 0: off).
    pub low_score_week: i64,
    /// Sensitive site: more than this many tenants in arrears (5).
    pub sensitive_tenants: i64,
    /// Far visits: more than this many far-away visits of an agent on a site today (2).
    pub far_visits: i64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            critical_overdue_charges: 50,
            broken_promises: 5,
            broken_promises_factor: 2.0,
            broken_promises_days: 7,
            working_hours: WorkingHours::default(),
            inactive_minutes: 90,
            low_score_today: 3,
            low_score_from: NaiveTime::from_hms_opt(14, 0, 0).unwrap_or(NaiveTime::MIN),
            low_score_week: 15,
            sensitive_tenants: 5,
            far_visits: 2,
        }
    }
}

fn details<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// "1 charge", "2 charges" (French plural of a count: 0 and 1 are singular).
fn plural(n: i64, one: &str, many: &str) -> String {
    if n.abs() < 2 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The conditions that hold at `now` (Africa/Conakry day and time), by key.
pub fn conditions(facts: &AlertFacts, rules: &AlertRules, now: DateTime<Utc>) -> Vec<Condition> {
    let mut out = Vec::new();
    for site in &facts.sites {
        site_conditions(site, rules, &mut out);
    }
    for site in &facts.broken_promises {
        out.extend(broken_promise_spike(site, rules));
    }
    let working = rules.working_hours.started(now);
    for agent in &facts.agents {
        if let Some(started) = working {
            out.extend(inactive(agent, rules, started, now));
            out.extend(low_score(agent, rules, now));
        }
        out.extend(far_visits(agent, rules));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

fn site_conditions(site: &SiteAlertFacts, rules: &AlertRules, out: &mut Vec<Condition>) {
    let critical = site.charges_over_60_days > rules.critical_overdue_charges;
    if critical {
        out.push(Condition {
            key: format!("critical_arrears:site:{}", site.site_id),
            kind: AlertKind::CriticalArrears,
            severity: Severity::Critical,
            target: Target::Site(site.site_id),
            site_id: site.site_id,
            message: format!(
                "{} de plus de 60 jours",
                plural(site.charges_over_60_days, "impayé", "impayés")
            ),
            details: details([
                (
                    "charges_over_60_days",
                    site.charges_over_60_days.to_string(),
                ),
                (
                    "outstanding_over_60_days_gnf",
                    site.outstanding_over_60_days_gnf.to_string(),
                ),
                ("threshold", rules.critical_overdue_charges.to_string()),
            ]),
        });
    }
    let many_tenants = site.tenants_in_arrears > rules.sensitive_tenants;
    if site.is_sensitive && (critical || many_tenants) {
        out.push(Condition {
            key: format!("sensitive_site:site:{}", site.site_id),
            kind: AlertKind::SensitiveSite,
            severity: if critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            target: Target::Site(site.site_id),
            site_id: site.site_id,
            message: format!(
                "Site sensible : {} en impayé{}",
                plural(site.tenants_in_arrears, "locataire", "locataires"),
                if critical {
                    format!(", {} de plus de 60 jours", site.charges_over_60_days)
                } else {
                    String::new()
                }
            ),
            details: details([
                ("tenants_in_arrears", site.tenants_in_arrears.to_string()),
                ("tenants_threshold", rules.sensitive_tenants.to_string()),
                (
                    "charges_over_60_days",
                    site.charges_over_60_days.to_string(),
                ),
                ("critical_arrears", critical.to_string()),
            ]),
        });
    }
}

fn broken_promise_spike(site: &BrokenPromiseFacts, rules: &AlertRules) -> Option<Condition> {
    if site.today <= rules.broken_promises {
        return None;
    }
    let days = site.previous_days.len().max(1) as f64;
    let mean = site.previous_days.iter().sum::<i64>() as f64 / days;
    if rules.broken_promises_factor > 0.0
        && (site.today as f64) < rules.broken_promises_factor * mean
    {
        return None;
    }
    let mean_text = format!("{mean:.2}");
    Some(Condition {
        key: format!("broken_promise_spike:site:{}", site.site_id),
        kind: AlertKind::BrokenPromiseSpike,
        severity: Severity::Warning,
        target: Target::Site(site.site_id),
        site_id: site.site_id,
        message: format!(
            "{} aujourd'hui (moyenne {} par jour sur {} jours)",
            plural(site.today, "promesse rompue", "promesses rompues"),
            mean_text.replace('.', ","),
            site.previous_days.len()
        ),
        details: details([
            ("broken_today", site.today.to_string()),
            ("daily_mean", mean_text),
            ("days", site.previous_days.len().to_string()),
            ("threshold", rules.broken_promises.to_string()),
            ("factor", rules.broken_promises_factor.to_string()),
        ]),
    })
}

fn inactive(
    agent: &AgentAlertFacts,
    rules: &AlertRules,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Condition> {
    let site_id = agent.site_id?;
    let since = agent.last_activity.map_or(started, |at| at.max(started));
    let idle = now - since;
    if idle < TimeDelta::minutes(rules.inactive_minutes) {
        return None;
    }
    let minutes = idle.num_minutes();
    let last = match agent.last_activity {
        Some(at) if at >= started => format!("dernière à {}", at.format("%H:%M")),
        _ => "rien depuis le début de la journée".to_owned(),
    };
    Some(Condition {
        key: format!("agent_inactive:agent:{}", agent.agent_id),
        kind: AlertKind::AgentInactive,
        severity: Severity::Warning,
        target: Target::Agent(agent.agent_id),
        site_id,
        message: format!("Aucune activité depuis {minutes} minutes ({last})"),
        details: details([
            ("idle_minutes", minutes.to_string()),
            (
                "last_activity",
                agent.last_activity.map(rfc3339).unwrap_or_default(),
            ),
            ("threshold_minutes", rules.inactive_minutes.to_string()),
        ]),
    })
}

fn low_score(agent: &AgentAlertFacts, rules: &AlertRules, now: DateTime<Utc>) -> Vec<Condition> {
    let mut out = Vec::new();
    let Some(site_id) = agent.site_id else {
        return out;
    };
    let after = now.with_timezone(&super::clock::CONAKRY_OFFSET).time() >= rules.low_score_from;
    let mut push = |period: &str, score: i64, threshold: i64, message: String| {
        out.push(Condition {
            key: format!("low_agent_score:{period}:agent:{}", agent.agent_id),
            kind: AlertKind::LowAgentScore,
            severity: Severity::Info,
            target: Target::Agent(agent.agent_id),
            site_id,
            message,
            details: details([
                ("period", period.to_owned()),
                ("score", score.to_string()),
                ("threshold", threshold.to_string()),
            ]),
        });
    };
    if after && rules.low_score_today > 0 && agent.score_today < rules.low_score_today {
        push(
            "day",
            agent.score_today,
            rules.low_score_today,
            format!(
                "Score du jour : {} (seuil {})",
                plural(agent.score_today, "point", "points"),
                rules.low_score_today
            ),
        );
    }
    if rules.low_score_week > 0 && agent.score_week < rules.low_score_week {
        push(
            "week",
            agent.score_week,
            rules.low_score_week,
            format!(
                "Score des 7 derniers jours : {} (seuil {})",
                plural(agent.score_week, "point", "points"),
                rules.low_score_week
            ),
        );
    }
    out
}

fn far_visits(agent: &AgentAlertFacts, rules: &AlertRules) -> Vec<Condition> {
    agent
        .far_visits_today
        .iter()
        .filter(|(_, count)| *count > rules.far_visits)
        .map(|&(site_id, count)| Condition {
            key: format!("far_visit:agent:{}:site:{site_id}", agent.agent_id),
            kind: AlertKind::FarVisit,
            severity: Severity::Warning,
            target: Target::Agent(agent.agent_id),
            site_id,
            message: format!(
                "{} loin du locataire aujourd'hui",
                plural(count, "visite", "visites")
            ),
            details: details([
                ("far_visits_today", count.to_string()),
                ("threshold", rules.far_visits.to_string()),
            ]),
        })
        .collect()
}

#[cfg(test)]
mod tests;
