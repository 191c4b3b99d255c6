//! Alerts: the scheduled evaluation of the rules ([`evaluate`]), ListAlerts ([`list`]) and
//! AcknowledgeAlert ([`acknowledge`]).
//!
//! Decisions:
//! - One evaluation is one transaction under a transaction-scoped advisory lock: the replica
//!   that takes it reads the facts, the unresolved alerts, and writes the reconciliation
//!   (`domain::alerts::reconcile`) before it commits; a replica that finds the lock held skips
//!   its run (another one is doing the same work).
//! - After the commit the read cache versions of the sites whose alert figures changed move
//!   (`Cache::written`), so a cached read counting alerts computes afresh.
//! - Scope is the dashboards' (`sites_in_scope` on the alert's site). An alert outside the
//!   caller's scope is NOT_FOUND to AcknowledgeAlert, as an unknown one: its existence is not
//!   told.
//! - Only an open alert can be acknowledged: a resolved one, or one already acknowledged (by
//!   anybody, with another request), answers AlertNotOpen. A retry of the same request answers
//!   the first answer (idempotency key, in the API).

use chrono::{DateTime, Days, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Act, AppError, sites_in_scope};
use crate::auth::caller::Scope;
use crate::cache::Cache;
use crate::domain::alerts::{
    self as rules, AgentAlertFacts, AlertFacts, AlertRules, AlertState, BrokenPromiseFacts,
    SiteAlertFacts,
};
use crate::domain::{conakry_day, conakry_day_start};
use crate::store::alerts::{self as store, AlertRow, Cursor, ListFilter};
use crate::store::audit::AuditEvent;
use crate::store::site_facts::Grouping;
use crate::store::{StoreError, begin_read, site_facts};

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// False when another replica held the lock (nothing was read or written).
    pub ran: bool,
    pub opened: u64,
    pub updated: u64,
    pub resolved: u64,
    /// Sites whose alert figures changed (opened, resolved, severity changed).
    pub sites_changed: Vec<Uuid>,
}

/// The facts of every site and agent at `now`, on `conn`.
pub async fn facts(
    conn: &mut PgConnection,
    rules: &AlertRules,
    now: DateTime<Utc>,
) -> Result<AlertFacts, StoreError> {
    let today = conakry_day(now);
    let sites: Vec<(Uuid, bool)> = site_facts::sites(&mut *conn, None)
        .await?
        .into_iter()
        .map(|s| (s.id, s.is_sensitive))
        .collect();
    // Only the overdue part is used: the range of money due is today alone.
    let every_site = (None, Grouping::PerSite);
    let (overdue, _) = site_facts::charges(&mut *conn, every_site, today, (today, today)).await?;
    let oldest = site_facts::oldest_overdue(&mut *conn, every_site, today).await?;
    let broken = store::broken_promises(&mut *conn, today, rules.broken_promises_days).await?;
    let agents = store::agents(&mut *conn, today).await?;
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
    let far = store::far_visits(
        &mut *conn,
        conakry_day_start(today),
        conakry_day_start(tomorrow),
    )
    .await?;
    Ok(AlertFacts {
        sites: SiteAlertFacts::of_sites(&sites, &overdue, &oldest, today),
        broken_promises: BrokenPromiseFacts::of_days(&broken, today, rules.broken_promises_days),
        agents: agents
            .into_iter()
            .map(|a| AgentAlertFacts {
                far_visits_today: far
                    .iter()
                    .filter(|(agent, _, _)| *agent == a.agent_id)
                    .map(|&(_, site, count)| (site, count))
                    .collect(),
                agent_id: a.agent_id,
                site_id: a.site_id,
                last_activity: a.last_activity,
                score_today: a.score_today,
                score_week: a.score_week,
            })
            .collect(),
    })
}

/// Evaluates the rules at `now` and reconciles the stored alerts with them, once across
/// replicas (see the module's decisions); then moves the cache versions of the sites changed.
pub async fn evaluate(
    pool: &PgPool,
    cache: &Cache,
    rules: &AlertRules,
    now: DateTime<Utc>,
) -> Result<Evaluation, StoreError> {
    let mut tx = pool.begin().await?;
    if !store::try_lock_evaluation(&mut tx).await? {
        tx.rollback().await?;
        return Ok(Evaluation::default());
    }
    let facts = facts(&mut tx, rules, now).await?;
    let conditions = rules::conditions(&facts, rules, now);
    let unresolved = store::unresolved(&mut tx).await?;
    let actions = rules::reconcile(&unresolved, &conditions, now);
    store::apply(&mut tx, &actions).await?;
    tx.commit().await?;
    let mut evaluation = Evaluation {
        ran: true,
        sites_changed: rules::sites_changed(&unresolved, &actions),
        ..Evaluation::default()
    };
    for action in &actions {
        match action {
            rules::Action::Open { .. } => evaluation.opened += 1,
            rules::Action::Update { .. } => evaluation.updated += 1,
            rules::Action::Resolve { .. } => evaluation.resolved += 1,
        }
    }
    if !evaluation.sites_changed.is_empty() {
        cache.written(&evaluation.sites_changed).await;
    }
    Ok(evaluation)
}

/// A page of ListAlerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPage {
    pub alerts: Vec<AlertRow>,
    /// More alerts follow the last one.
    pub more: bool,
    pub total_size: i64,
}

/// The alerts `filter` matches within `scope` (`filter.sites` outside it are left out), newest
/// start first, after `after`, at most `page_size`.
pub async fn list(
    pool: &PgPool,
    scope: &Scope,
    filter: &ListFilter,
    after: Option<Cursor>,
    page_size: i64,
) -> Result<AlertPage, AppError> {
    let Some(sites) = sites_in_scope(scope, filter.sites.as_deref()) else {
        return Ok(AlertPage {
            alerts: Vec::new(),
            more: false,
            total_size: 0,
        });
    };
    let filter = ListFilter {
        sites,
        ..filter.clone()
    };
    let mut tx = begin_read(pool).await?;
    let (mut alerts, total_size) =
        store::list(&mut tx, &filter, after, page_size.saturating_add(1)).await?;
    drop(tx);
    let more = crate::store::one_page(&mut alerts, page_size);
    Ok(AlertPage {
        alerts,
        more,
        total_size,
    })
}

/// Acknowledges the open alert `alert_id` with `note`, by the caller of `act`; answers it and
/// the audit event. NotFound for an unknown alert or one outside the caller's scope,
/// AlertNotOpen for one resolved or already acknowledged.
pub async fn acknowledge(
    conn: &mut PgConnection,
    act: &Act<'_>,
    alert_id: Uuid,
    note: &str,
) -> Result<(AlertRow, AuditEvent), AppError> {
    let alert = store::get_for_update(&mut *conn, alert_id)
        .await?
        .filter(|a| act.caller.scope().covers_site(a.site_id))
        .ok_or(AppError::NotFound("alert"))?;
    if alert.state != AlertState::Open {
        return Err(AppError::AlertNotOpen(alert.state));
    }
    if !store::acknowledge(&mut *conn, alert_id, act.caller.user_id, act.now, note).await? {
        return Err(AppError::AlertNotOpen(alert.state));
    }
    let alert = store::get(&mut *conn, alert_id)
        .await?
        .ok_or(AppError::NotFound("alert"))?;
    let audit = act
        .audit("dashboard.alerts.acknowledge")
        .target("alert", alert_id)
        .detail("kind", alert.kind.as_str())
        .detail("site_id", alert.site_id.to_string())
        .detail("note_chars", note.chars().count());
    Ok((alert, audit))
}
