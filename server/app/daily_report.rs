//! The end-of-day report (GetDailyReport, ExportDailyReport): the daily figures of the day and
//! of the day before (`app::daily_stats`, same plan and sums as GetDailyStats) and both days'
//! missions, read in one snapshot and put side by side by `domain::report`.
//!
//! Decisions:
//! - Scope is GetDailyStats' [`StatsPlan`] with no agent filter: sites outside the caller's
//!   scope are silently left out; an agent sees only their own rows and line.
//! - The day before is the calendar day before (Africa/Conakry).

use chrono::{Days, NaiveDate};
use sqlx::PgPool;

use super::AppError;
use super::daily_stats::{StatsPlan, figures_in};
use crate::domain::report::{self, DailyReport, ReportDay};
use crate::store::{begin_read, stats};

/// The report of `day` next to the day before, as `plan` covers them. Answers the report and
/// the day before.
pub async fn report(
    pool: &PgPool,
    plan: &StatsPlan,
    day: NaiveDate,
) -> Result<(DailyReport, NaiveDate), AppError> {
    let previous_day = day.checked_sub_days(Days::new(1)).unwrap_or(day);
    let sites = plan.sites.as_deref();
    let actors = plan.actors.as_deref();
    let mut tx = begin_read(pool).await?;
    let figures = figures_in(&mut tx, plan, day).await?;
    let previous = figures_in(&mut tx, plan, previous_day).await?;
    let missions = stats::missions_by_agent_site(&mut tx, day, sites, actors).await?;
    let previous_missions =
        stats::missions_by_agent_site(&mut tx, previous_day, sites, actors).await?;
    drop(tx);
    let report = report::daily_report(
        &ReportDay {
            figures: &figures,
            missions: &missions,
        },
        &ReportDay {
            figures: &previous,
            missions: &previous_missions,
        },
    )?;
    Ok((report, previous_day))
}
