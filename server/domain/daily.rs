//! Daily figures: what agents did on one Africa/Conakry day — calls, visits, promises,
//! payments, reversals, points — against what was due, per agent, per site and in total
//! (GetDailyStats; dashboards and rankings will use the same sums).
//!
//! Decisions:
//! - A row of activity counts when its site is listed: the total and the site lines are over
//!   the listed sites; an agent's line is over the rows that agent did on listed sites.
//! - An agent's `due` is over the tenants of the sites the agent covers (a tenant has no
//!   assigned agent).
//! - The collection rate is collected / due, within 0..1, and 0 when nothing is due.
//! - A disabled agent only has a line for a day they worked.
//! - Agent lines: by score (highest first), then name (case ignored), then id.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::money::MoneyOverflow;

/// Counts and sums of a day's activity. Money in whole GNF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub call_count: i64,
    pub visit_count: i64,
    pub far_away_visit_count: i64,
    pub refusal_count: i64,
    pub promise_count: i64,
    pub promised_gnf: i64,
    pub payment_count: i64,
    /// Payments minus reversals.
    pub collected_gnf: i64,
    pub reversal_count: i64,
    pub score_points: i64,
}

impl Activity {
    /// Adds `other` to these figures.
    pub fn add(&mut self, other: &Activity) -> Result<(), MoneyOverflow> {
        let add = |a: &mut i64, b: i64| -> Result<(), MoneyOverflow> {
            *a = a.checked_add(b).ok_or(MoneyOverflow)?;
            Ok(())
        };
        add(&mut self.call_count, other.call_count)?;
        add(&mut self.visit_count, other.visit_count)?;
        add(&mut self.far_away_visit_count, other.far_away_visit_count)?;
        add(&mut self.refusal_count, other.refusal_count)?;
        add(&mut self.promise_count, other.promise_count)?;
        add(&mut self.promised_gnf, other.promised_gnf)?;
        add(&mut self.payment_count, other.payment_count)?;
        add(&mut self.collected_gnf, other.collected_gnf)?;
        add(&mut self.reversal_count, other.reversal_count)?;
        add(&mut self.score_points, other.score_points)?;
        Ok(())
    }
}

/// The activity of one user on the tenants of one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteActivity {
    pub actor_id: Uuid,
    pub site_id: Uuid,
    pub activity: Activity,
}

/// A site the figures are shown for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: Uuid,
    pub name: String,
}

/// An agent the figures may be shown for, with the sites they cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub full_name: String,
    pub disabled: bool,
    pub site_ids: Vec<Uuid>,
}

/// Activity against what was due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub activity: Activity,
    /// Due at the start of the day.
    pub due_gnf: i64,
    /// collected / due, within 0..1.
    pub collection_rate: f64,
}

impl Figures {
    pub fn new(activity: Activity, due_gnf: i64) -> Self {
        Self {
            collection_rate: collection_rate(activity.collected_gnf, due_gnf),
            activity,
            due_gnf,
        }
    }
}

/// collected / due, within 0..1; 0 when nothing is due.
pub fn collection_rate(collected: i64, due: i64) -> f64 {
    if due <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = collected as f64 / due as f64;
    rate.clamp(0.0, 1.0)
}

/// The line of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFigures {
    pub agent_id: Uuid,
    pub full_name: String,
    /// The sites the agent covers.
    pub site_ids: Vec<Uuid>,
    pub figures: Figures,
}

/// The line of one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFigures {
    pub site_id: Uuid,
    pub name: String,
    pub figures: Figures,
}

/// A day's figures: the total, per agent (ranked) and per site (in the order given).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyFigures {
    pub total: Figures,
    pub agents: Vec<AgentFigures>,
    pub sites: Vec<SiteFigures>,
}

/// The figures of `sites` and `agents` from the day's `activity` and what was `due` per site
/// at the start of the day (see the module's decisions).
pub fn daily_figures(
    sites: &[Site],
    agents: &[Agent],
    activity: &[SiteActivity],
    due: &[(Uuid, i64)],
) -> Result<DailyFigures, MoneyOverflow> {
    let listed: HashSet<Uuid> = sites.iter().map(|s| s.id).collect();
    let due_of: HashMap<Uuid, i64> = due
        .iter()
        .copied()
        .filter(|(site, _)| listed.contains(site))
        .collect();

    let mut total = Activity::default();
    let mut per_site: HashMap<Uuid, Activity> = HashMap::new();
    let mut per_agent: HashMap<Uuid, Activity> = HashMap::new();
    for row in activity.iter().filter(|row| listed.contains(&row.site_id)) {
        total.add(&row.activity)?;
        per_site
            .entry(row.site_id)
            .or_default()
            .add(&row.activity)?;
        per_agent
            .entry(row.actor_id)
            .or_default()
            .add(&row.activity)?;
    }
    let total_due = sum(due_of.values().copied())?;

    let site_lines = sites
        .iter()
        .map(|site| SiteFigures {
            site_id: site.id,
            name: site.name.clone(),
            figures: Figures::new(
                per_site.remove(&site.id).unwrap_or_default(),
                due_of.get(&site.id).copied().unwrap_or(0),
            ),
        })
        .collect();

    let mut agent_lines = Vec::new();
    for agent in agents {
        let activity = per_agent.remove(&agent.id);
        if agent.disabled && activity.is_none() {
            continue;
        }
        let due = sum(agent
            .site_ids
            .iter()
            .filter_map(|site| due_of.get(site).copied()))?;
        agent_lines.push(AgentFigures {
            agent_id: agent.id,
            full_name: agent.full_name.clone(),
            site_ids: agent.site_ids.clone(),
            figures: Figures::new(activity.unwrap_or_default(), due),
        });
    }
    agent_lines.sort_by(|a, b| {
        b.figures
            .activity
            .score_points
            .cmp(&a.figures.activity.score_points)
            .then_with(|| {
                (a.full_name.to_lowercase(), a.agent_id)
                    .cmp(&(b.full_name.to_lowercase(), b.agent_id))
            })
    });

    Ok(DailyFigures {
        total: Figures::new(total, total_due),
        agents: agent_lines,
        sites: site_lines,
    })
}

fn sum(amounts: impl IntoIterator<Item = i64>) -> Result<i64, MoneyOverflow> {
    amounts
        .into_iter()
        .try_fold(0_i64, |sum, amount| sum.checked_add(amount))
        .ok_or(MoneyOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_rate_is_capped() {
        assert_eq!(collection_rate(50, 200), 0.25);
        assert_eq!(collection_rate(500, 200), 1.0);
        assert_eq!(collection_rate(-50, 200), 0.0);
        assert_eq!(collection_rate(50, 0), 0.0);
    }

    #[test]
    fn daily_figures_add_up_per_agent_and_site() {
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (a1, a2, boss) = (
            Uuid::from_u128(11),
            Uuid::from_u128(12),
            Uuid::from_u128(13),
        );
        let sites = [
            Site {
                id: s1,
                name: "Alpha".into(),
            },
            Site {
                id: s2,
                name: "Beta".into(),
            },
        ];
        let agents = [
            Agent {
                id: a1,
                full_name: "Zed".into(),
                disabled: false,
                site_ids: vec![s1],
            },
            Agent {
                id: a2,
                full_name: "Amy".into(),
                disabled: false,
                site_ids: vec![s1, s2],
            },
            Agent {
                id: Uuid::from_u128(14),
                full_name: "Gone".into(),
                disabled: true,
                site_ids: vec![s1],
            },
        ];
        let row = |actor, site, collected, points| SiteActivity {
            actor_id: actor,
            site_id: site,
            activity: Activity {
                visit_count: 1,
                payment_count: 1,
                collected_gnf: collected,
                score_points: points,
                ..Default::default()
            },
        };
        let activity = [
            row(a1, s1, 100, 4),
            row(a2, s2, 300, 4),
            row(boss, s1, 50, 0),
        ];
        let due = [(s1, 1_000), (s2, 200), (Uuid::from_u128(99), 5)];
        let f = daily_figures(&sites, &agents, &activity, &due).expect("figures");
        let total = f.total.activity;
        assert_eq!((total.collected_gnf, total.visit_count), (450, 3));
        assert_eq!(f.total.due_gnf, 1_200);
        assert_eq!(f.total.collection_rate, 450.0 / 1_200.0);
        let names: Vec<&str> = f.agents.iter().map(|a| a.full_name.as_str()).collect();
        assert_eq!(names, ["Amy", "Zed"]);
        let amy = f.agents[0].figures;
        assert_eq!(amy.due_gnf, 1_200);
        assert_eq!(amy.collection_rate, 0.25);
        let beta = f.sites[1].figures;
        assert_eq!((beta.due_gnf, beta.collection_rate), (200, 1.0));
    }
}
