//! Dashboard reads: what the caller may see, read in one snapshot, figured by the domain
//! (`domain::kpi`).
//!
//! Decisions:
//! - Everything is limited to the caller's sites (`sites_in_scope`); sites named in a request
//!   outside that scope are silently left out, and a request naming none of the caller's sites
//!   finds nothing.
//! - Good payers: the charges counted are those due in the period and before today (a charge
//!   due today can still be paid on time); a tenant is listed under the site they rent on.
//! - Summary and sites: the facts of the sites in scope are read in one snapshot (repeatable
//!   read) and figured by `domain::dashboard`; "agents active now" are those the live hub has
//!   online (an open session or a message within the offline delay). Results are plain domain
//!   values, so that a read cache keyed by scope can hold them as they are; the summary also
//!   names the agents it counted, so that a cached answer's "agents active now" is re-counted
//!   from the hub when it is served ([`agents_online`]). The summary reads its sums per day
//!   over all its sites (`site_facts::Grouping::Together`), ListSites and GetSite per site.
//! - Sites listed: text matches the name or code (case ignored); ties of the order are broken
//!   by name, then id.
//! - One site (GetSite): an unknown site is NotFound, a site outside the caller's scope
//!   OutOfScope (as a tenant's card). Its overview is ListSites' line, its aging the summary's
//!   lines; top debtors are the site's tenants with the largest arrears (charges due before
//!   today, as the site's arrears count them), shown as tenant cards; agents are the enabled
//!   agents working on the site (the overview's agent count), each with today's activity on
//!   the site's tenants (`domain::daily`) and today's missions there; the trend is
//!   `domain::dashboard::trend`. Everything is read in one snapshot.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::daily_stats::{StatsPlan, figures_in};
use super::tenants::{Card, cards};
use super::{AppError, sites_in_scope};
use crate::auth::caller::{Caller, Scope};
use crate::domain::aging::AgingBuckets;
use crate::domain::clock::conakry_day;
use crate::domain::daily::Activity;
use crate::domain::dashboard::{
    self as figures, AgentOnSites, MissionCounts, SiteFacts, Spans, Summary, TrendPoint,
};
use crate::domain::kpi::{self, GoodPayer, TenantName};
use crate::live::{LiveHub, WatchFilter};
use crate::store::dashboard::{self as store, TenantLabel};
use crate::store::site_facts::{self, Grouping, SiteRow};
use crate::store::{agents, begin_read};

/// A ranked tenant and where they rent.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedTenant {
    pub payer: GoodPayer,
    pub tenant: TenantLabel,
}

/// The good-payer ranking of the caller's tenants (of `site_filter` when not empty) over the
/// charges due in `from..=to` before `today`, tenants with fewer than `min_charges` charges
/// left out. Whole ranking; the caller pages it.
pub async fn good_payers(
    pool: &PgPool,
    caller: &Caller,
    site_filter: &[Uuid],
    (from, to): (NaiveDate, NaiveDate),
    today: NaiveDate,
    min_charges: i64,
) -> Result<Vec<RankedTenant>, AppError> {
    let requested = (!site_filter.is_empty()).then_some(site_filter);
    let Some(sites) = sites_in_scope(&caller.scope(), requested) else {
        return Ok(Vec::new());
    };
    let to = to.min(today.checked_sub_days(Days::new(1)).unwrap_or(today));
    if to < from {
        return Ok(Vec::new());
    }
    let mut tx = begin_read(pool).await?;
    let (facts, tenants) = store::charge_facts(&mut tx, sites.as_deref(), from, to).await?;
    drop(tx);
    let names: Vec<TenantName> = tenants
        .iter()
        .map(|t| TenantName {
            id: t.id,
            full_name: t.full_name.clone(),
        })
        .collect();
    let ranked = kpi::good_payers(&names, &facts, min_charges)?;
    let mut labels: std::collections::HashMap<Uuid, TenantLabel> =
        tenants.into_iter().map(|t| (t.id, t)).collect();
    Ok(ranked
        .into_iter()
        .filter_map(|payer| {
            let tenant = labels.remove(&payer.tenant_id)?;
            Some(RankedTenant { payer, tenant })
        })
        .collect())
}

/// GetSummary's figures, and the agents counted in their `agents_total`: whether those are
/// online changes by the minute, so a cached answer re-counts them ([`agents_online`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryAnswer {
    pub figures: Summary,
    /// The enabled agents working on the sites (`figures.agents_total` of them), sorted.
    pub agent_ids: Vec<Uuid>,
}

/// The key figures of the caller's sites (of `site_filter` when not empty) at `now`, with the
/// time they were computed. Nothing in scope: every figure 0.
pub async fn summary(
    pool: &PgPool,
    live: &LiveHub,
    scope: &Scope,
    site_filter: &[Uuid],
    now: DateTime<Utc>,
    buckets: &AgingBuckets,
) -> Result<SummaryAnswer, AppError> {
    let requested = (!site_filter.is_empty()).then_some(site_filter);
    let spans = Spans::of(conakry_day(now));
    let facts = match sites_in_scope(scope, requested) {
        Some(sites) => {
            let read = (sites.as_deref(), Grouping::Together);
            load_facts(pool, live, read, &spans).await?
        }
        None => SiteFacts::default(),
    };
    let mut agent_ids: Vec<Uuid> = facts.agents.iter().map(|a| a.agent_id).collect();
    agent_ids.sort_unstable();
    agent_ids.dedup();
    Ok(SummaryAnswer {
        figures: figures::summary(&facts, &spans, buckets)?,
        agent_ids,
    })
}

/// How many of `sorted_ids` (sorted, without duplicates) the live hub has online now (an open
/// session, or a message within the offline delay): "agents active now", counted at answer
/// time.
pub fn agents_online(live: &LiveHub, sorted_ids: &[Uuid]) -> i64 {
    i64::try_from(live.online_count(sorted_ids)).unwrap_or(i64::MAX)
}

/// How ListSites orders the sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SiteOrder {
    /// Largest arrears first.
    #[default]
    ArrearsDesc,
    /// Lowest collection rate first.
    CollectionRate,
    /// Highest collection rate first.
    CollectionRateDesc,
    /// By name.
    Name,
}

/// Which sites ListSites shows, and in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteQuery {
    pub only_sensitive: bool,
    /// Matched (case ignored) against the name and code; empty: every site.
    pub text: String,
    pub order: SiteOrder,
}

/// A site with its key figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteOverview {
    pub site: SiteRow,
    pub figures: Summary,
}

/// The caller's sites that `query` matches, each with its key figures at `now`, in the
/// query's order. Whole list; the caller pages it.
pub async fn sites(
    pool: &PgPool,
    live: &LiveHub,
    scope: &Scope,
    query: &SiteQuery,
    now: DateTime<Utc>,
    buckets: &AgingBuckets,
) -> Result<Vec<SiteOverview>, AppError> {
    let Some(sites) = sites_in_scope(scope, None) else {
        return Ok(Vec::new());
    };
    let spans = Spans::of(conakry_day(now));
    let text = query.text.trim().to_lowercase();
    let rows: Vec<SiteRow> = {
        let mut tx = begin_read(pool).await?;
        site_facts::sites(&mut tx, sites.as_deref()).await?
    };
    let rows: Vec<SiteRow> = rows
        .into_iter()
        .filter(|s| !query.only_sensitive || s.is_sensitive)
        .filter(|s| {
            text.is_empty()
                || s.name.to_lowercase().contains(&text)
                || s.code.to_lowercase().contains(&text)
        })
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|s| s.id).collect();
    let facts = load_facts(pool, live, (Some(&ids), Grouping::PerSite), &spans).await?;
    let mut out = Vec::with_capacity(rows.len());
    for site in rows {
        let figures = figures::summary(&facts.of_site(site.id), &spans, buckets)?;
        out.push(SiteOverview { site, figures });
    }
    out.sort_by(|a, b| {
        let (fa, fb) = (&a.figures, &b.figures);
        let by = match query.order {
            SiteOrder::ArrearsDesc => fb.arrears.arrears_gnf.cmp(&fa.arrears.arrears_gnf),
            SiteOrder::CollectionRate => fa.collection_rate.total_cmp(&fb.collection_rate),
            SiteOrder::CollectionRateDesc => fb.collection_rate.total_cmp(&fa.collection_rate),
            SiteOrder::Name => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.site.name.cmp(&b.site.name))
            .then_with(|| a.site.id.cmp(&b.site.id))
    });
    Ok(out)
}

/// The facts of `sites` (`None`: every site) in one snapshot, with the live hub's presence;
/// the sums per day grouped as `sites.1` says.
async fn load_facts(
    pool: &PgPool,
    live: &LiveHub,
    sites: (Option<&[Uuid]>, Grouping),
    spans: &Spans,
) -> Result<SiteFacts, AppError> {
    let mut tx = begin_read(pool).await?;
    facts_in(&mut tx, &online_agents(live), sites, spans).await
}

/// Every site with its key figures at `now`, each as ListSites computes them, read in one
/// snapshot on `conn` (the business gauges, `jobs::gauges`). Nobody counts as online: the live
/// hub is the replica's own, and the gauges export no presence.
pub async fn every_site(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<SiteOverview>, AppError> {
    let spans = Spans::of(conakry_day(now));
    let rows = site_facts::sites(&mut *conn, None).await?;
    let facts = facts_in(conn, &HashSet::new(), (None, Grouping::PerSite), &spans).await?;
    let buckets = AgingBuckets::default();
    let mut out = Vec::with_capacity(rows.len());
    for site in rows {
        let figures = figures::summary(&facts.of_site(site.id), &spans, &buckets)?;
        out.push(SiteOverview { site, figures });
    }
    Ok(out)
}

/// [`load_facts`] read on `conn` (a read snapshot shared with other reads), with the agents
/// `online` now.
async fn facts_in(
    conn: &mut PgConnection,
    online: &HashSet<Uuid>,
    read: (Option<&[Uuid]>, Grouping),
    spans: &Spans,
) -> Result<SiteFacts, AppError> {
    let tx = conn;
    let sites = read.0;
    let (overdue, due) = site_facts::charges(
        &mut *tx,
        read,
        spans.today,
        (spans.first_due_date(), spans.month_end),
    )
    .await?;
    let oldest = site_facts::oldest_overdue(&mut *tx, read, spans.today).await?;
    let collected = site_facts::collected(&mut *tx, read, spans.month_start, spans.today).await?;
    let promises = site_facts::promises(&mut *tx, sites, spans.month_start).await?;
    let missions_today = site_facts::missions(&mut *tx, sites, spans.today).await?;
    let agents = site_facts::agents(&mut *tx, sites).await?;
    let tenants = site_facts::tenants(&mut *tx, sites).await?;
    let alerts = site_facts::alerts(&mut *tx, sites).await?;
    Ok(SiteFacts {
        overdue,
        oldest,
        due,
        collected,
        promises,
        missions_today,
        agents: agents
            .into_iter()
            .map(|(agent_id, site_ids)| AgentOnSites {
                online: online.contains(&agent_id),
                agent_id,
                site_ids,
            })
            .collect(),
        tenants,
        alerts,
    })
}

/// The agents the live hub has online now.
fn online_agents(live: &LiveHub) -> HashSet<Uuid> {
    live.snapshot(&WatchFilter {
        scope: Scope::Company,
        site_ids: Vec::new(),
        agent_ids: Vec::new(),
        bounds: None,
        online_only: true,
    })
    .into_iter()
    .map(|state| state.info.id)
    .collect()
}

// ---------------------------------------------------------------------------------------------
// GetSite

/// Top debtors GetSite lists when the request says 0.
pub const TOP_DEBTORS_DEFAULT: i64 = 10;
/// Most top debtors GetSite lists.
pub const TOP_DEBTORS_MAX: i64 = 50;

/// An agent working on a site, with today's work there.
#[derive(Debug, Clone)]
pub struct SiteAgentLine {
    pub agent_id: Uuid,
    pub full_name: String,
    /// Online now (live hub).
    pub online: bool,
    /// Today's activity on the site's tenants and score (`domain::daily`).
    pub today: Activity,
    /// Today's missions on the site.
    pub missions_today: MissionCounts,
}

/// A site's page (GetSite).
#[derive(Debug, Clone)]
pub struct SiteDetail {
    /// The site and its key figures, as ListSites shows them (the aging lines included).
    pub overview: SiteOverview,
    /// The tenants owing the most on charges due before today, largest first (ties by name).
    pub top_debtors: Vec<Card>,
    /// Enabled agents working on the site, by name.
    pub agents: Vec<SiteAgentLine>,
    /// The last [`figures::TREND_MONTHS`] months, oldest first.
    pub trend: Vec<TrendPoint>,
}

/// The page of `site_id` at `now`, with `top_debtors` (1..=[`TOP_DEBTORS_MAX`]) debtors.
///
/// Errors: `NotFound` (no such site), `OutOfScope` (a site the caller does not see).
pub async fn site(
    pool: &PgPool,
    live: &LiveHub,
    caller: &Caller,
    site_id: Uuid,
    top_debtors: i64,
    now: DateTime<Utc>,
    buckets: &AgingBuckets,
) -> Result<SiteDetail, AppError> {
    let spans = Spans::of(conakry_day(now));
    let mut tx = begin_read(pool).await?;
    let site = site_facts::sites(&mut tx, Some(&[site_id]))
        .await?
        .pop()
        .ok_or(AppError::NotFound("site"))?;
    if !caller.scope().covers_site(site_id) {
        return Err(AppError::OutOfScope("this site is outside your sites"));
    }
    let only = [site_id];
    let one_site = (Some(&only[..]), Grouping::PerSite);
    let facts = facts_in(&mut tx, &online_agents(live), one_site, &spans).await?;
    let figures = figures::summary(&facts, &spans, buckets)?;

    let (_, history) = site_facts::charges(
        &mut tx,
        one_site,
        spans.today,
        (TREND_EPOCH, spans.month_end),
    )
    .await?;
    let paid = site_facts::paid_months(&mut tx, site_id).await?;
    let first_month = figures::trend_months(spans.today)
        .first()
        .copied()
        .unwrap_or(spans.month_start);
    let collected = site_facts::collected(&mut tx, one_site, first_month, spans.today).await?;
    let cuts = figures::trend_cuts(spans.today);
    let corrections = site_facts::arrears_reversed_later(&mut tx, site_id, &cuts).await?;
    let trend = figures::trend(&history, &paid, &collected, &corrections, spans.today)?;

    let debtors: Vec<Uuid> = site_facts::top_debtors(&mut tx, site_id, spans.today, top_debtors)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let top_debtors = cards(&mut tx, &debtors, spans.today, buckets).await?;

    let agents = agents::list(
        &mut tx,
        &agents::AgentFilter {
            covering: Some(&only),
            supervisor_id: None,
            agent_ids: None,
        },
    )
    .await?;
    let plan = StatsPlan {
        sites: Some(only.to_vec()),
        actors: None,
        agents_covering: Some(only.to_vec()),
        supervisor_id: None,
    };
    let day = figures_in(&mut tx, &plan, spans.today).await?;
    let mut missions: HashMap<Uuid, MissionCounts> =
        site_facts::missions_by_agent(&mut tx, site_id, spans.today)
            .await?
            .into_iter()
            .collect();
    drop(tx);
    let mut activity: HashMap<Uuid, Activity> = day
        .agents
        .into_iter()
        .map(|a| (a.agent_id, a.figures.activity))
        .collect();
    let online: HashSet<Uuid> = facts
        .agents
        .iter()
        .filter(|a| a.online)
        .map(|a| a.agent_id)
        .collect();
    let agents = agents
        .into_iter()
        .filter(|a| !a.disabled)
        .map(|a| SiteAgentLine {
            online: online.contains(&a.id),
            today: activity.remove(&a.id).unwrap_or_default(),
            missions_today: missions.remove(&a.id).unwrap_or_default(),
            agent_id: a.id,
            full_name: a.full_name,
        })
        .collect();
    Ok(SiteDetail {
        overview: SiteOverview { site, figures },
        top_debtors,
        agents,
        trend,
    })
}

/// A day before any charge: the trend's arrears sum every due date from there.
const TREND_EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};
