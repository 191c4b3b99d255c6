//! The end-of-day report (GetDailyReport, ExportDailyReport): a day's figures (`domain::daily`,
//! the same sums as GetDailyStats) and the day's missions, per agent and per site, next to the
//! calendar day before.
//!
//! Decisions:
//! - Activity (calls, visits, far-away visits, refusals, promises, payments, money collected
//!   net of reversals, points) is `domain::daily`'s, unchanged: the report never sums rows a
//!   second way.
//! - A mission counts on its `mission_date`, for its agent and its site, when its site is
//!   listed (as a row of activity does); "planned" is every status except cancelled.
//! - Agent lines: every agent of either day's figures (a disabled agent who worked only the day
//!   before keeps a line, zeros for the day), by the day's score (highest first), then name
//!   (case ignored), then id. Site lines: the sites in the order given (by name).

use std::collections::HashMap;

use uuid::Uuid;

use super::daily::{Activity, DailyFigures};
use super::money::MoneyOverflow;

/// Missions of a day by status (counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissionCounts {
    /// Every status except cancelled.
    pub planned: i64,
    pub in_progress: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl MissionCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &MissionCounts) -> Result<(), MoneyOverflow> {
        for (a, b) in [
            (&mut self.planned, other.planned),
            (&mut self.in_progress, other.in_progress),
            (&mut self.done, other.done),
            (&mut self.failed, other.failed),
            (&mut self.cancelled, other.cancelled),
        ] {
            *a = a.checked_add(b).ok_or(MoneyOverflow)?;
        }
        Ok(())
    }
}

/// The missions of one agent on one site on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteMissions {
    pub agent_id: Uuid,
    pub site_id: Uuid,
    pub counts: MissionCounts,
}

/// One day's figures of a report line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportFigures {
    pub activity: Activity,
    pub missions: MissionCounts,
}

/// A report line of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReportLine {
    pub agent_id: Uuid,
    pub full_name: String,
    /// The sites the agent covers.
    pub site_ids: Vec<Uuid>,
    pub day: ReportFigures,
    pub previous_day: ReportFigures,
}

/// A report line of one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteReportLine {
    pub site_id: Uuid,
    pub name: String,
    pub day: ReportFigures,
    pub previous_day: ReportFigures,
}

/// The end-of-day report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyReport {
    pub total: ReportFigures,
    pub previous_total: ReportFigures,
    pub agents: Vec<AgentReportLine>,
    pub sites: Vec<SiteReportLine>,
}

/// One day's input: its figures and its missions.
#[derive(Debug, Clone, Copy)]
pub struct ReportDay<'a> {
    pub figures: &'a DailyFigures,
    pub missions: &'a [SiteMissions],
}

/// Mission sums of one day over the listed sites: (total, per agent, per site).
type MissionSums = (
    MissionCounts,
    HashMap<Uuid, MissionCounts>,
    HashMap<Uuid, MissionCounts>,
);

fn mission_sums(day: &ReportDay<'_>) -> Result<MissionSums, MoneyOverflow> {
    let listed: std::collections::HashSet<Uuid> =
        day.figures.sites.iter().map(|s| s.site_id).collect();
    let mut total = MissionCounts::default();
    let mut per_agent: HashMap<Uuid, MissionCounts> = HashMap::new();
    let mut per_site: HashMap<Uuid, MissionCounts> = HashMap::new();
    for row in day.missions.iter().filter(|m| listed.contains(&m.site_id)) {
        total.add(&row.counts)?;
        per_agent
            .entry(row.agent_id)
            .or_default()
            .add(&row.counts)?;
        per_site.entry(row.site_id).or_default().add(&row.counts)?;
    }
    Ok((total, per_agent, per_site))
}

/// The report of `day` next to `previous` (see the module's decisions).
pub fn daily_report(
    day: &ReportDay<'_>,
    previous: &ReportDay<'_>,
) -> Result<DailyReport, MoneyOverflow> {
    let (total, agent_missions, site_missions) = mission_sums(day)?;
    let (previous_total, previous_agent_missions, previous_site_missions) = mission_sums(previous)?;

    let mut agents: Vec<AgentReportLine> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (is_day, figures) in [(true, day.figures), (false, previous.figures)] {
        for line in &figures.agents {
            let i = *index.entry(line.agent_id).or_insert_with(|| {
                agents.push(AgentReportLine {
                    agent_id: line.agent_id,
                    full_name: line.full_name.clone(),
                    site_ids: line.site_ids.clone(),
                    day: ReportFigures {
                        missions: agent_missions
                            .get(&line.agent_id)
                            .copied()
                            .unwrap_or_default(),
                        ..Default::default()
                    },
                    previous_day: ReportFigures {
                        missions: previous_agent_missions
                            .get(&line.agent_id)
                            .copied()
                            .unwrap_or_default(),
                        ..Default::default()
                    },
                });
                agents.len() - 1
            });
            let target = if is_day {
                &mut agents[i].day
            } else {
                &mut agents[i].previous_day
            };
            target.activity = line.figures.activity;
        }
    }
    agents.sort_by(|a, b| {
        b.day
            .activity
            .score_points
            .cmp(&a.day.activity.score_points)
            .then_with(|| {
                (a.full_name.to_lowercase(), a.agent_id)
                    .cmp(&(b.full_name.to_lowercase(), b.agent_id))
            })
    });

    let previous_sites: HashMap<Uuid, Activity> = previous
        .figures
        .sites
        .iter()
        .map(|s| (s.site_id, s.figures.activity))
        .collect();
    let sites = day
        .figures
        .sites
        .iter()
        .map(|s| SiteReportLine {
            site_id: s.site_id,
            name: s.name.clone(),
            day: ReportFigures {
                activity: s.figures.activity,
                missions: site_missions.get(&s.site_id).copied().unwrap_or_default(),
            },
            previous_day: ReportFigures {
                activity: previous_sites.get(&s.site_id).copied().unwrap_or_default(),
                missions: previous_site_missions
                    .get(&s.site_id)
                    .copied()
                    .unwrap_or_default(),
            },
        })
        .collect();

    Ok(DailyReport {
        total: ReportFigures {
            activity: day.figures.total.activity,
            missions: total,
        },
        previous_total: ReportFigures {
            activity: previous.figures.total.activity,
            missions: previous_total,
        },
        agents,
        sites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::daily::{Agent, Site, SiteActivity, daily_figures};

    fn activity(calls: i64, collected: i64, points: i64) -> Activity {
        Activity {
            call_count: calls,
            collected_gnf: collected,
            score_points: points,
            ..Default::default()
        }
    }

    fn missions(done: i64, failed: i64) -> MissionCounts {
        MissionCounts {
            planned: done + failed,
            done,
            failed,
            ..Default::default()
        }
    }

    #[test]
    fn report_puts_each_day_next_to_the_day_before() {
        let (s1, s2, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let (a1, a2, gone) = (
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
        let agent = |id, name: &str, disabled| Agent {
            id,
            full_name: name.into(),
            disabled,
            site_ids: vec![s1],
        };
        let agents = [
            agent(a1, "Zed", false),
            agent(a2, "amy", false),
            agent(gone, "Gone", true),
        ];
        let row = |actor, site, a| SiteActivity {
            actor_id: actor,
            site_id: site,
            activity: a,
        };
        let today = daily_figures(
            &sites,
            &agents,
            &[
                row(a1, s1, activity(2, 500, 5)),
                row(a2, s2, activity(1, -100, 1)),
            ],
            &[],
        )
        .expect("day");
        let yesterday = daily_figures(
            &sites,
            &agents,
            &[
                row(gone, s1, activity(3, 300, 3)),
                row(a2, other, activity(9, 9, 9)),
            ],
            &[],
        )
        .expect("previous");
        let m = |agent_id, site_id, counts| SiteMissions {
            agent_id,
            site_id,
            counts,
        };
        let day_missions = [
            m(a1, s1, missions(2, 1)),
            m(a1, s2, missions(1, 0)),
            m(a2, other, missions(5, 5)),
        ];
        let previous_missions = [m(gone, s1, missions(0, 2))];
        let report = daily_report(
            &ReportDay {
                figures: &today,
                missions: &day_missions,
            },
            &ReportDay {
                figures: &yesterday,
                missions: &previous_missions,
            },
        )
        .expect("report");

        assert_eq!(report.total.activity, activity(3, 400, 6));
        assert_eq!(report.total.missions, missions(3, 1));
        assert_eq!(report.previous_total.activity, activity(3, 300, 3));
        assert_eq!(report.previous_total.missions, missions(0, 2));
        let lines: Vec<(&str, i64, i64, MissionCounts, MissionCounts)> = report
            .agents
            .iter()
            .map(|l| {
                (
                    l.full_name.as_str(),
                    l.day.activity.score_points,
                    l.previous_day.activity.call_count,
                    l.day.missions,
                    l.previous_day.missions,
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("Zed", 5, 0, missions(3, 1), MissionCounts::default()),
                (
                    "amy",
                    1,
                    0,
                    MissionCounts::default(),
                    MissionCounts::default()
                ),
                ("Gone", 0, 3, MissionCounts::default(), missions(0, 2)),
            ]
        );
        assert_eq!(report.agents[0].site_ids, [s1]);
        let alpha = &report.sites[0];
        assert_eq!(alpha.day.activity, activity(2, 500, 5));
        assert_eq!(alpha.day.missions, missions(2, 1));
        assert_eq!(alpha.previous_day.activity, activity(3, 300, 3));
        assert_eq!(alpha.previous_day.missions, missions(0, 2));
        let beta = &report.sites[1];
        assert_eq!(beta.day.activity, activity(1, -100, 1));
        assert_eq!(beta.day.missions, missions(1, 0));
    }
}
