//! Dashboard figures of a set of sites (GetSummary, ListSites): arrears and their aging,
//! money due and collected, collection and punctuality rates, promises, agents and missions,
//! computed from facts grouped per site and day as the store reads them from the raw rows.
//!
//! Decisions:
//! - Input facts are grouped by site and day (never one row per charge), so that a company of
//!   100,000 tenants is summed from a few thousand groups; every figure is a sum over groups,
//!   and a site's figures are those of its groups only.
//! - Arrears follow the `site_arrears` view: a charge is in arrears when something is
//!   outstanding and its due date is before today; it is then at least one day overdue and
//!   falls in an aging bucket (`domain::aging`). A tenant is counted once, in the bucket of
//!   their oldest charge in arrears, so the buckets' tenant counts add up to the tenants in
//!   arrears.
//! - Charges over 60 days overdue (the critical-arrears rule input): due more than
//!   [`CRITICAL_OVERDUE_DAYS`] days before today, as the view counts them.
//! - Collection rate: what is paid now on the charges due from the first of the month up to
//!   today, over what they ask (`domain::daily::collection_rate`): 0..1, 0 when nothing is due.
//! - Punctuality: charges due in the last 12 months before today (from the same day a year
//!   ago, exclusive, to yesterday: a charge due today can still be paid on time) that were
//!   paid in full by the end of their due date, over those charges (`domain::kpi`). 0 GNF
//!   charges ask nothing and are never counted.
//! - Alerts: the unresolved ones (open or acknowledged, what ListAlerts lists by default), and
//!   of those the critical ones.
//! - Collected: payments that occurred on the day minus the reversals that occurred that day
//!   (by the payment's site), as the daily statistics count them; it may exceed what fell due.
//! - A site's trend ([`trend`]): the [`TREND_MONTHS`] months ending with today's, oldest first.
//!   Per month: what fell due in it and how much of that is paid now (collection rate); money
//!   collected in it; punctuality of its charges due before today; and the arrears at its end:
//!   the charges due by its last day (by yesterday for the current month) minus the allocation
//!   rows on them of the entries (payments, and reversals negatively) that occurred by the end
//!   of the month, as the ledger stands now (ADR 0010's replay: a payment recorded late counts
//!   on the day it occurred). For the current month that is the site's arrears now.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use uuid::Uuid;

use super::aging::{AgingBuckets, Bucket};
use super::arrears::AgingLine;
use super::clock::conakry_day_start;
use super::daily::collection_rate;
use super::kpi::Punctuality;
use super::money::MoneyOverflow;

/// Days overdue beyond which a charge counts for the critical-arrears rule.
pub const CRITICAL_OVERDUE_DAYS: i64 = 60;

/// Charges of one site due on one day that still have something outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverdueGroup {
    pub site_id: Uuid,
    pub due_date: NaiveDate,
    /// Sum of due minus paid, GNF, > 0.
    pub outstanding_gnf: i64,
    pub charge_count: i64,
}

/// Tenants of one site whose oldest charge with something outstanding is due on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestOverdue {
    pub site_id: Uuid,
    pub oldest_due_date: NaiveDate,
    pub tenant_count: i64,
}

/// Charges of one site falling due on one day (0 GNF charges left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueGroup {
    pub site_id: Uuid,
    pub due_date: NaiveDate,
    /// Sum of the amounts due, GNF.
    pub due_gnf: i64,
    /// Sum paid on them now (net of reversals), GNF, each charge within 0..=due.
    pub paid_gnf: i64,
    pub charge_count: i64,
    /// Of which paid in full by the end of their due date (`domain::kpi::ChargeFacts::on_time`).
    pub on_time_count: i64,
}

/// Money received on one site on one Africa/Conakry day, net of that day's reversals, GNF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectedDay {
    pub site_id: Uuid,
    pub day: NaiveDate,
    pub collected_gnf: i64,
}

/// Allocation rows on the charges of one site due on one day, from the entries (payments and
/// reversals) that occurred in one Africa/Conakry month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidMonth {
    pub due_date: NaiveDate,
    /// First day of the month the entries occurred in.
    pub month: NaiveDate,
    /// Sum of the rows (reversal rows negative), GNF.
    pub paid_gnf: i64,
}

/// What to add to a trend month's arrears at its end for the tenants a row sum misjudges:
/// those with a payment made before the month's end and reversed after it (the store's
/// `arrears_reversed_later`, migration `20261202010000`). Their reversed payment's rows and
/// the rows the replay then gave their later payments would both count for the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrearsCorrection {
    /// First day of the trend month.
    pub month: NaiveDate,
    /// GNF to add to the month's arrears at its end (any sign).
    pub gnf: i64,
}

/// What the arrears at the end of one trend month count: charges due on or before `cut` (the
/// month's last day, or yesterday for the current month), entries that occurred before
/// `until` (the start of the next month, Africa/Conakry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendCut {
    /// First day of the trend month.
    pub month: NaiveDate,
    pub cut: NaiveDate,
    pub until: DateTime<Utc>,
}

/// The [`TrendCut`] of each of the [`TREND_MONTHS`] months ending with `today`'s, oldest first.
pub fn trend_cuts(today: NaiveDate) -> Vec<TrendCut> {
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    trend_months(today)
        .into_iter()
        .map(|month| {
            let next = month.checked_add_months(Months::new(1)).unwrap_or(month);
            let last = next.checked_sub_days(Days::new(1)).unwrap_or(month);
            TrendCut {
                month,
                cut: last.min(yesterday),
                until: conakry_day_start(next),
            }
        })
        .collect()
}

/// Promises of one site's tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromiseFigures {
    /// Pending now.
    pub pending_count: i64,
    /// Sum of the pending promises, GNF.
    pub pending_gnf: i64,
    /// Resolved as kept this month (status change in the month).
    pub kept_count: i64,
    /// Resolved as broken this month (partially kept not included).
    pub broken_count: i64,
}

/// Missions of a day by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissionCounts {
    /// Every status except cancelled.
    pub planned: i64,
    pub in_progress: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// Unresolved alerts (open or acknowledged) of a site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub unresolved: i64,
    /// Of which critical.
    pub critical: i64,
}

/// An agent working on sites, and whether the live hub has them online now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOnSites {
    pub agent_id: Uuid,
    pub site_ids: Vec<Uuid>,
    pub online: bool,
}

/// Everything the figures of a set of sites are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteFacts {
    pub overdue: Vec<OverdueGroup>,
    pub oldest: Vec<OldestOverdue>,
    pub due: Vec<DueGroup>,
    pub collected: Vec<CollectedDay>,
    pub promises: Vec<(Uuid, PromiseFigures)>,
    pub missions_today: Vec<(Uuid, MissionCounts)>,
    pub agents: Vec<AgentOnSites>,
    /// Active tenants per site.
    pub tenants: Vec<(Uuid, i64)>,
    /// Unresolved alerts per site.
    pub alerts: Vec<(Uuid, AlertCounts)>,
}

/// The days the figures of `today` look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spans {
    pub today: NaiveDate,
    /// First of today's month.
    pub month_start: NaiveDate,
    /// Last day of today's month.
    pub month_end: NaiveDate,
    /// First day counted for punctuality (a year ago, plus one day).
    pub punctuality_start: NaiveDate,
    /// Last day counted for punctuality (yesterday).
    pub punctuality_end: NaiveDate,
}

impl Spans {
    pub fn of(today: NaiveDate) -> Self {
        let month_start = today.with_day(1).unwrap_or(today);
        let month_end = month_start
            .checked_add_months(Months::new(1))
            .and_then(|d| d.checked_sub_days(Days::new(1)))
            .unwrap_or(today);
        let punctuality_start = today
            .checked_sub_months(Months::new(12))
            .and_then(|d| d.checked_add_days(Days::new(1)))
            .unwrap_or(today);
        let punctuality_end = today.checked_sub_days(Days::new(1)).unwrap_or(today);
        Self {
            today,
            month_start,
            month_end,
            punctuality_start,
            punctuality_end,
        }
    }

    /// The first due date any figure needs.
    pub fn first_due_date(&self) -> NaiveDate {
        self.punctuality_start.min(self.month_start)
    }
}

/// Arrears of a set of sites on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrearsFigures {
    /// Total outstanding on charges in arrears, GNF.
    pub arrears_gnf: i64,
    pub tenants_in_arrears: i64,
    /// The four buckets, youngest first, zeros included.
    pub aging: Vec<AgingLine>,
    /// Charges more than [`CRITICAL_OVERDUE_DAYS`] overdue.
    pub charges_over_60_days: i64,
}

/// The key figures of a set of sites (GetSummary).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub arrears: ArrearsFigures,
    /// Collected today, GNF (net of today's reversals).
    pub collected_today_gnf: i64,
    /// Charges falling due today, GNF.
    pub due_today_gnf: i64,
    /// Collected since the first of the month, GNF (net of reversals).
    pub collected_month_gnf: i64,
    /// Charges falling due in the whole month, GNF.
    pub due_month_gnf: i64,
    /// Paid / due of the charges due from the first of the month to today, 0..1.
    pub collection_rate: f64,
    pub promises: PromiseFigures,
    pub punctuality: Punctuality,
    pub agents_active: i64,
    pub agents_total: i64,
    pub missions_today: MissionCounts,
    /// Active tenants.
    pub tenants: i64,
    /// Unresolved alerts.
    pub alerts: AlertCounts,
}

fn add(a: i64, b: i64) -> Result<i64, MoneyOverflow> {
    a.checked_add(b).ok_or(MoneyOverflow)
}

/// The arrears of the groups on `today` (see the module's decisions).
pub fn arrears_figures(
    overdue: &[OverdueGroup],
    oldest: &[OldestOverdue],
    today: NaiveDate,
    buckets: &AgingBuckets,
) -> Result<ArrearsFigures, MoneyOverflow> {
    let mut aging: Vec<AgingLine> = Bucket::ALL
        .into_iter()
        .map(|bucket| AgingLine {
            bucket,
            outstanding: 0,
            charge_count: 0,
            tenant_count: 0,
        })
        .collect();
    let mut arrears_gnf = 0;
    let mut over_60 = 0;
    for group in overdue {
        let Some(bucket) = buckets.bucket_on(group.due_date, today) else {
            continue;
        };
        let line = &mut aging[bucket.index()];
        line.outstanding = add(line.outstanding, group.outstanding_gnf)?;
        line.charge_count += group.charge_count;
        arrears_gnf = add(arrears_gnf, group.outstanding_gnf)?;
        if super::aging::days_overdue(group.due_date, today) > CRITICAL_OVERDUE_DAYS {
            over_60 += group.charge_count;
        }
    }
    let mut tenants_in_arrears = 0;
    for group in oldest {
        if let Some(bucket) = buckets.bucket_on(group.oldest_due_date, today) {
            aging[bucket.index()].tenant_count += group.tenant_count;
            tenants_in_arrears += group.tenant_count;
        }
    }
    Ok(ArrearsFigures {
        arrears_gnf,
        tenants_in_arrears,
        aging,
        charges_over_60_days: over_60,
    })
}

/// The key figures of every site in `facts` (see the module's decisions).
pub fn summary(
    facts: &SiteFacts,
    spans: &Spans,
    buckets: &AgingBuckets,
) -> Result<Summary, MoneyOverflow> {
    let arrears = arrears_figures(&facts.overdue, &facts.oldest, spans.today, buckets)?;
    let (mut due_today, mut due_month, mut due_mtd, mut paid_mtd) = (0, 0, 0, 0);
    let mut punctuality = Punctuality::default();
    for group in &facts.due {
        let d = group.due_date;
        if d == spans.today {
            due_today = add(due_today, group.due_gnf)?;
        }
        if (spans.month_start..=spans.month_end).contains(&d) {
            due_month = add(due_month, group.due_gnf)?;
        }
        if (spans.month_start..=spans.today).contains(&d) {
            due_mtd = add(due_mtd, group.due_gnf)?;
            paid_mtd = add(paid_mtd, group.paid_gnf.clamp(0, group.due_gnf))?;
        }
        if (spans.punctuality_start..=spans.punctuality_end).contains(&d) {
            punctuality.charges_count += group.charge_count;
            punctuality.on_time_count += group.on_time_count.clamp(0, group.charge_count);
        }
    }
    let (mut collected_today, mut collected_month) = (0, 0);
    for day in &facts.collected {
        if day.day == spans.today {
            collected_today = add(collected_today, day.collected_gnf)?;
        }
        if (spans.month_start..=spans.today).contains(&day.day) {
            collected_month = add(collected_month, day.collected_gnf)?;
        }
    }
    let mut promises = PromiseFigures::default();
    for (_, p) in &facts.promises {
        promises.pending_count += p.pending_count;
        promises.pending_gnf = add(promises.pending_gnf, p.pending_gnf)?;
        promises.kept_count += p.kept_count;
        promises.broken_count += p.broken_count;
    }
    let mut missions_today = MissionCounts::default();
    for (_, m) in &facts.missions_today {
        missions_today.planned += m.planned;
        missions_today.in_progress += m.in_progress;
        missions_today.done += m.done;
        missions_today.failed += m.failed;
        missions_today.cancelled += m.cancelled;
    }
    let mut alerts = AlertCounts::default();
    for (_, a) in &facts.alerts {
        alerts.unresolved += a.unresolved;
        alerts.critical += a.critical;
    }
    let agents_total = i64::try_from(facts.agents.len()).unwrap_or(i64::MAX);
    let agents_active =
        i64::try_from(facts.agents.iter().filter(|a| a.online).count()).unwrap_or(i64::MAX);
    Ok(Summary {
        arrears,
        collected_today_gnf: collected_today,
        due_today_gnf: due_today,
        collected_month_gnf: collected_month,
        due_month_gnf: due_month,
        collection_rate: collection_rate(paid_mtd, due_mtd),
        promises,
        punctuality,
        agents_active,
        agents_total,
        missions_today,
        tenants: facts.tenants.iter().map(|(_, n)| n).sum(),
        alerts,
    })
}

/// Months in a site's trend, the current one included.
pub const TREND_MONTHS: u32 = 12;

/// One month of a site's trend (see the module's decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendPoint {
    /// First day of the month.
    pub month: NaiveDate,
    /// Charges falling due in the month, GNF.
    pub due_gnf: i64,
    /// Paid now on those charges, GNF.
    pub paid_gnf: i64,
    /// Money received in the month, net of its reversals, GNF.
    pub collected_gnf: i64,
    /// Outstanding at the end of the month (now, for the current month), GNF.
    pub arrears_end_gnf: i64,
    /// The month's charges due before today, and how many were paid by their due date.
    pub punctuality: Punctuality,
}

impl TrendPoint {
    /// Paid over due of the month's charges, 0..1 (0 when nothing fell due).
    pub fn collection_rate(&self) -> f64 {
        collection_rate(self.paid_gnf, self.due_gnf)
    }
}

/// The first days of the [`TREND_MONTHS`] months ending with `today`'s, oldest first.
pub fn trend_months(today: NaiveDate) -> Vec<NaiveDate> {
    let current = today.with_day(1).unwrap_or(today);
    (0..TREND_MONTHS)
        .rev()
        .filter_map(|back| current.checked_sub_months(Months::new(back)))
        .collect()
}

/// One site's trend on `today` from its charges per due date (`due`: every due date up to the
/// end of today's month), its allocation rows per due date and month (`paid`), the money
/// collected per day (`collected`) and the corrections of the arrears at each month's end
/// ([`ArrearsCorrection`]).
pub fn trend(
    due: &[DueGroup],
    paid: &[PaidMonth],
    collected: &[CollectedDay],
    corrections: &[ArrearsCorrection],
    today: NaiveDate,
) -> Result<Vec<TrendPoint>, MoneyOverflow> {
    let mut points = Vec::new();
    for TrendCut { month, cut, .. } in trend_cuts(today) {
        let last = month
            .checked_add_months(Months::new(1))
            .and_then(|d| d.checked_sub_days(Days::new(1)))
            .unwrap_or(month);
        let in_month = |d: NaiveDate| (month..=last).contains(&d);
        let mut point = TrendPoint {
            month,
            due_gnf: 0,
            paid_gnf: 0,
            collected_gnf: 0,
            arrears_end_gnf: 0,
            punctuality: Punctuality::default(),
        };
        for group in due {
            if in_month(group.due_date) {
                point.due_gnf = add(point.due_gnf, group.due_gnf)?;
                point.paid_gnf = add(point.paid_gnf, group.paid_gnf.clamp(0, group.due_gnf))?;
                if group.due_date <= cut {
                    point.punctuality.charges_count += group.charge_count;
                    point.punctuality.on_time_count +=
                        group.on_time_count.clamp(0, group.charge_count);
                }
            }
            if group.due_date <= cut {
                point.arrears_end_gnf = add(point.arrears_end_gnf, group.due_gnf)?;
            }
        }
        for rows in paid {
            if rows.due_date <= cut && rows.month <= month {
                point.arrears_end_gnf = point
                    .arrears_end_gnf
                    .checked_sub(rows.paid_gnf)
                    .ok_or(MoneyOverflow)?;
            }
        }
        for day in collected {
            if in_month(day.day) {
                point.collected_gnf = add(point.collected_gnf, day.collected_gnf)?;
            }
        }
        for correction in corrections.iter().filter(|c| c.month == month) {
            point.arrears_end_gnf = add(point.arrears_end_gnf, correction.gnf)?;
        }
        points.push(point);
    }
    Ok(points)
}

impl SiteFacts {
    /// The facts of one site only (an agent counts for every site they work on).
    pub fn of_site(&self, site_id: Uuid) -> SiteFacts {
        let mine = |id: &Uuid| *id == site_id;
        SiteFacts {
            overdue: self
                .overdue
                .iter()
                .filter(|g| mine(&g.site_id))
                .copied()
                .collect(),
            oldest: self
                .oldest
                .iter()
                .filter(|g| mine(&g.site_id))
                .copied()
                .collect(),
            due: self
                .due
                .iter()
                .filter(|g| mine(&g.site_id))
                .copied()
                .collect(),
            collected: self
                .collected
                .iter()
                .filter(|g| mine(&g.site_id))
                .copied()
                .collect(),
            promises: self
                .promises
                .iter()
                .filter(|g| mine(&g.0))
                .copied()
                .collect(),
            missions_today: self
                .missions_today
                .iter()
                .filter(|g| mine(&g.0))
                .copied()
                .collect(),
            agents: self
                .agents
                .iter()
                .filter(|a| a.site_ids.contains(&site_id))
                .cloned()
                .collect(),
            tenants: self
                .tenants
                .iter()
                .filter(|g| mine(&g.0))
                .copied()
                .collect(),
            alerts: self.alerts.iter().filter(|g| mine(&g.0)).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    const A: Uuid = Uuid::from_u128(1);
    const B: Uuid = Uuid::from_u128(2);

    #[test]
    fn spans_of_a_day() {
        let s = Spans::of(day(2026, 3, 15));
        assert_eq!(s.month_start, day(2026, 3, 1));
        assert_eq!(s.month_end, day(2026, 3, 31));
        assert_eq!(s.punctuality_start, day(2025, 3, 16));
        assert_eq!(s.punctuality_end, day(2026, 3, 14));
        assert_eq!(s.first_due_date(), day(2025, 3, 16));
        let feb = Spans::of(day(2028, 2, 29));
        assert_eq!(feb.month_end, day(2028, 2, 29));
        assert_eq!(feb.punctuality_start, day(2027, 3, 1));
    }

    #[test]
    fn arrears_bucket_charges_and_oldest_tenants() {
        let today = day(2026, 6, 30);
        let overdue = [
            OverdueGroup {
                site_id: A,
                due_date: day(2026, 6, 30),
                outstanding_gnf: 999,
                charge_count: 1,
            }, // due today: not in arrears
            OverdueGroup {
                site_id: A,
                due_date: day(2026, 6, 29),
                outstanding_gnf: 100,
                charge_count: 1,
            }, // 1 day
            OverdueGroup {
                site_id: A,
                due_date: day(2026, 5, 1),
                outstanding_gnf: 200,
                charge_count: 2,
            }, // 60 days
            OverdueGroup {
                site_id: B,
                due_date: day(2026, 4, 30),
                outstanding_gnf: 300,
                charge_count: 3,
            }, // 61 days
            OverdueGroup {
                site_id: B,
                due_date: day(2026, 1, 5),
                outstanding_gnf: 400,
                charge_count: 4,
            }, // 176 days
        ];
        let oldest = [
            OldestOverdue {
                site_id: A,
                oldest_due_date: day(2026, 6, 30),
                tenant_count: 7,
            },
            OldestOverdue {
                site_id: A,
                oldest_due_date: day(2026, 5, 1),
                tenant_count: 2,
            },
            OldestOverdue {
                site_id: B,
                oldest_due_date: day(2026, 1, 5),
                tenant_count: 3,
            },
        ];
        let f = arrears_figures(&overdue, &oldest, today, &AgingBuckets::default()).expect("sum");
        assert_eq!(f.arrears_gnf, 1_000);
        assert_eq!(f.tenants_in_arrears, 5);
        assert_eq!(f.charges_over_60_days, 7);
        let lines: Vec<(i64, i64, i64)> = f
            .aging
            .iter()
            .map(|l| (l.outstanding, l.charge_count, l.tenant_count))
            .collect();
        assert_eq!(lines, [(100, 1, 0), (200, 2, 2), (300, 3, 0), (400, 4, 3)]);
    }

    #[test]
    fn summary_sums_spans_and_rates() {
        let today = day(2026, 6, 10);
        let spans = Spans::of(today);
        let due = |d, due_gnf, paid_gnf, n, on_time| DueGroup {
            site_id: A,
            due_date: d,
            due_gnf,
            paid_gnf,
            charge_count: n,
            on_time_count: on_time,
        };
        let facts = SiteFacts {
            due: vec![
                due(day(2025, 6, 10), 500, 500, 1, 1), // a year ago: not counted for punctuality
                due(day(2025, 6, 11), 500, 500, 1, 1),
                due(day(2026, 6, 5), 1_000, 400, 2, 1),
                due(day(2026, 6, 10), 3_000, 600, 3, 3), // today: month to date, not punctuality
                due(day(2026, 6, 20), 5_000, 0, 5, 0),   // later this month
            ],
            collected: vec![
                CollectedDay {
                    site_id: A,
                    day: day(2026, 5, 31),
                    collected_gnf: 9_000,
                },
                CollectedDay {
                    site_id: A,
                    day: day(2026, 6, 1),
                    collected_gnf: 700,
                },
                CollectedDay {
                    site_id: B,
                    day: today,
                    collected_gnf: 300,
                },
            ],
            agents: vec![
                AgentOnSites {
                    agent_id: A,
                    site_ids: vec![A, B],
                    online: true,
                },
                AgentOnSites {
                    agent_id: B,
                    site_ids: vec![B],
                    online: false,
                },
            ],
            ..SiteFacts::default()
        };
        let s = summary(&facts, &spans, &AgingBuckets::default()).expect("sum");
        assert_eq!((s.due_today_gnf, s.due_month_gnf), (3_000, 9_000));
        assert_eq!((s.collected_today_gnf, s.collected_month_gnf), (300, 1_000));
        assert_eq!(s.collection_rate, 1_000.0 / 4_000.0);
        assert_eq!(
            s.punctuality,
            Punctuality {
                charges_count: 3,
                on_time_count: 2
            }
        );
        assert_eq!((s.agents_active, s.agents_total), (1, 2));
        let b = summary(&facts.of_site(B), &spans, &AgingBuckets::default()).expect("sum");
        assert_eq!(
            (b.collected_today_gnf, b.due_month_gnf, b.agents_total),
            (300, 0, 2)
        );
        assert_eq!(b.collection_rate, 0.0);
    }

    #[test]
    fn alerts_add_up_per_site() {
        let counts = |unresolved, critical| AlertCounts {
            unresolved,
            critical,
        };
        let facts = SiteFacts {
            alerts: vec![(A, counts(3, 1)), (B, counts(2, 2))],
            ..SiteFacts::default()
        };
        let spans = Spans::of(day(2026, 6, 10));
        let buckets = AgingBuckets::default();
        let whole = summary(&facts, &spans, &buckets).expect("sum");
        assert_eq!(whole.alerts, counts(5, 3));
        let b = summary(&facts.of_site(B), &spans, &buckets).expect("sum");
        assert_eq!(b.alerts, counts(2, 2));
    }

    #[test]
    fn trend_of_a_site() {
        let today = day(2026, 6, 10);
        let due = |d, due_gnf, paid_gnf, n, on_time| DueGroup {
            site_id: A,
            due_date: d,
            due_gnf,
            paid_gnf,
            charge_count: n,
            on_time_count: on_time,
        };
        let groups = [
            due(day(2025, 5, 5), 700, 700, 1, 1), // before the trend: arrears only
            due(day(2025, 7, 5), 1_000, 1_000, 2, 1), // first month of the trend
            due(day(2026, 5, 5), 2_000, 500, 2, 0),
            due(day(2026, 6, 5), 3_000, 1_000, 3, 1),
            due(day(2026, 6, 10), 4_000, 4_000, 1, 1), // due today: not yet in arrears nor punctuality
        ];
        let paid_row = |d, m, paid_gnf| PaidMonth {
            due_date: d,
            month: m,
            paid_gnf,
        };
        let paid = [
            paid_row(day(2025, 5, 5), day(2025, 5, 1), 700),
            paid_row(day(2025, 7, 5), day(2025, 6, 1), 400), // paid ahead
            paid_row(day(2025, 7, 5), day(2025, 8, 1), 600),
            paid_row(day(2026, 5, 5), day(2026, 5, 1), 800),
            paid_row(day(2026, 5, 5), day(2026, 6, 1), -300), // a reversal in June
            paid_row(day(2026, 6, 5), day(2026, 6, 1), 1_000),
            paid_row(day(2026, 6, 10), day(2026, 6, 1), 4_000),
        ];
        let collected = [
            CollectedDay {
                site_id: A,
                day: day(2025, 6, 30),
                collected_gnf: 400,
            },
            CollectedDay {
                site_id: A,
                day: day(2025, 7, 1),
                collected_gnf: 50,
            },
            CollectedDay {
                site_id: A,
                day: day(2026, 6, 10),
                collected_gnf: 4_700,
            },
        ];
        let points = trend(&groups, &paid, &collected, &[], today).expect("sum");
        assert_eq!(points.len(), 12);
        assert_eq!(points[0].month, day(2025, 7, 1));
        assert_eq!(points[11].month, day(2026, 6, 1));
        let july = points[0];
        assert_eq!(
            (july.due_gnf, july.paid_gnf, july.collected_gnf),
            (1_000, 1_000, 50)
        );
        // End of July 2025: 700 + 1,000 due, 700 + 400 paid by then.
        assert_eq!(july.arrears_end_gnf, 600);
        assert_eq!(
            july.punctuality,
            Punctuality {
                charges_count: 2,
                on_time_count: 1
            }
        );
        assert_eq!(points[1].arrears_end_gnf, 0); // August: the 600 came
        let may = points[10];
        assert_eq!((may.due_gnf, may.paid_gnf), (2_000, 500));
        assert_eq!(may.arrears_end_gnf, 1_200); // the June reversal is not yet counted
        assert_eq!(may.collection_rate(), 0.25);
        let june = points[11];
        // Now: charges due before today (700 + 1,000 + 2,000 + 3,000) minus all their rows.
        assert_eq!(june.arrears_end_gnf, 6_700 - 1_700 - 500 - 1_000);
        assert_eq!(
            (june.due_gnf, june.paid_gnf, june.collected_gnf),
            (7_000, 5_000, 4_700)
        );
        assert_eq!(
            june.punctuality,
            Punctuality {
                charges_count: 3,
                on_time_count: 1
            }
        );
    }

    proptest! {
        #[test]
        fn sites_add_up_to_the_whole(
            groups in proptest::collection::vec((0_u128..3, 0_u64..200, 1_i64..10_000, 1_i64..5), 0..40),
        ) {
            let today = day(2026, 6, 10);
            let overdue: Vec<OverdueGroup> = groups
                .iter()
                .map(|&(site, back, gnf, n)| OverdueGroup {
                    site_id: Uuid::from_u128(site),
                    due_date: today - Days::new(back),
                    outstanding_gnf: gnf,
                    charge_count: n,
                })
                .collect();
            let facts = SiteFacts { overdue, ..SiteFacts::default() };
            let buckets = AgingBuckets::default();
            let whole = summary(&facts, &Spans::of(today), &buckets).expect("sum");
            let mut parts = 0;
            for site in 0..3 {
                let part = summary(&facts.of_site(Uuid::from_u128(site)), &Spans::of(today), &buckets)
                    .expect("sum");
                parts += part.arrears.arrears_gnf;
            }
            prop_assert_eq!(whole.arrears.arrears_gnf, parts);
            let bucket_sum: i64 = whole.arrears.aging.iter().map(|l| l.outstanding).sum();
            prop_assert_eq!(bucket_sum, whole.arrears.arrears_gnf);
        }
    }
}
