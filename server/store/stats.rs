//! SQL of the daily figures (GetDailyStats): a handful of aggregate queries over one
//! Africa/Conakry day, never one query per agent or site. The sites and agents the figures
//! are shown for come from `store::sites` and `store::agents`; the sums are the domain's
//! (`domain::daily`).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::error::{Result, StoreError};
use crate::domain::daily::{Activity, SiteActivity};
use crate::domain::report::{MissionCounts, SiteMissions};

/// Which rows a day's figures are made of.
#[derive(Debug, Clone)]
pub struct DayFilter<'a> {
    pub day: NaiveDate,
    /// [start, end) of the day.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Only rows about tenants of these sites; `None`: every site.
    pub site_ids: Option<&'a [Uuid]>,
    /// Only rows by these users; `None`: anyone.
    pub actor_ids: Option<&'a [Uuid]>,
}

/// The day's activity per (user, site) (collected: payments minus reversals).
///
/// - calls, visits, refusals: interactions whose occurred_at is in the day, by their agent;
/// - promises: made in a call or visit of the day (the promise's occurred_at), by their agent;
/// - payments: entries of kind payment whose occurred_at is in the day, by the collecting
///   agent; reversals whose occurred_at is in the day count against the agent who collected
///   the reversed payment (as the score's `payment_reversal` event does);
/// - score points: `score_events` of the day, site from the event's source.
///
/// Plans: the interactions of the day on `interactions_occurred_at_idx`; a promise's day is
/// its interaction's time (the promises of the day's interactions) or, without one, its own
/// (`promises_created_at_idx`), two branches instead of a join of every promise with its
/// interaction (480 ms for a busy day at 102,000 tenants); with sites (GetSite), the promises
/// are found through the sites' tenants; an event's site by one probe per event of the day
/// rather than joins that made the planner hash every promise and start parallel workers.
pub async fn activity(
    conn: &mut PgConnection,
    filter: &DayFilter<'_>,
) -> Result<Vec<SiteActivity>> {
    let rows = sqlx::query(
        "SELECT ev.actor_id, ev.site_id,
                sum(ev.calls)::bigint AS call_count,
                sum(ev.visits)::bigint AS visit_count,
                sum(ev.far)::bigint AS far_away_visit_count,
                sum(ev.refusals)::bigint AS refusal_count,
                sum(ev.promises)::bigint AS promise_count,
                sum(ev.promised)::bigint AS promised_gnf,
                sum(ev.payments)::bigint AS payment_count,
                sum(ev.collected)::bigint AS collected_gnf,
                sum(ev.reversals)::bigint AS reversal_count,
                sum(ev.points)::bigint AS score_points
         FROM (
             SELECT i.agent_id AS actor_id, t.site_id,
                    (i.kind = 'call')::int AS calls,
                    (i.kind = 'visit')::int AS visits,
                    (i.kind = 'visit' AND i.is_far_from_tenant)::int AS far,
                    (i.outcome = 'refused')::int AS refusals,
                    0 AS promises, 0::bigint AS promised, 0 AS payments, 0::bigint AS collected,
                    0 AS reversals, 0::bigint AS points
             FROM interactions i
             JOIN tenants t ON t.id = i.tenant_id
             WHERE i.occurred_at >= $1 AND i.occurred_at < $2
             UNION ALL
             SELECT pr.agent_id, t.site_id, 0, 0, 0, 0, 1, pr.amount_gnf, 0, 0, 0, 0
             FROM interactions i
             JOIN promises pr ON pr.interaction_id = i.id
             JOIN tenants t ON t.id = pr.tenant_id
             WHERE i.occurred_at >= $1 AND i.occurred_at < $2
               AND ($4::uuid[] IS NULL
                    OR pr.tenant_id = ANY (ARRAY(SELECT s.id FROM tenants s
                                                 WHERE s.site_id = ANY ($4))))
             UNION ALL
             SELECT pr.agent_id, t.site_id, 0, 0, 0, 0, 1, pr.amount_gnf, 0, 0, 0, 0
             FROM promises pr
             JOIN tenants t ON t.id = pr.tenant_id
             WHERE pr.interaction_id IS NULL
               AND pr.created_at >= $1 AND pr.created_at < $2
               AND ($4::uuid[] IS NULL
                    OR pr.tenant_id = ANY (ARRAY(SELECT s.id FROM tenants s
                                                 WHERE s.site_id = ANY ($4))))
             UNION ALL
             SELECT p.agent_id, p.site_id, 0, 0, 0, 0, 0, 0, 1, p.amount_gnf, 0, 0
             FROM payments p
             WHERE p.kind = 'payment' AND p.occurred_at >= $1 AND p.occurred_at < $2
             UNION ALL
             SELECT o.agent_id, r.site_id, 0, 0, 0, 0, 0, 0, 0, -r.amount_gnf, 1, 0
             FROM payments r
             JOIN payments o ON o.id = r.reverses_payment_id
             WHERE r.kind = 'reversal' AND r.occurred_at >= $1 AND r.occurred_at < $2
             UNION ALL
             SELECT se.agent_id,
                    coalesce((SELECT t.site_id FROM interactions i
                              JOIN tenants t ON t.id = i.tenant_id
                              WHERE i.id = se.interaction_id),
                             (SELECT pa.site_id FROM payments pa WHERE pa.id = se.payment_id),
                             (SELECT t.site_id FROM promises pr
                              JOIN tenants t ON t.id = pr.tenant_id
                              WHERE pr.id = se.promise_id)),
                    0, 0, 0, 0, 0, 0, 0, 0, 0, se.points::bigint
             FROM score_events se
             WHERE se.day = $3
         ) ev
         WHERE ($4::uuid[] IS NULL OR ev.site_id = ANY($4))
           AND ($5::uuid[] IS NULL OR ev.actor_id = ANY($5))
         GROUP BY ev.actor_id, ev.site_id",
    )
    .bind(filter.start)
    .bind(filter.end)
    .bind(filter.day)
    .bind(filter.site_ids)
    .bind(filter.actor_ids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SiteActivity {
                actor_id: row.try_get("actor_id")?,
                site_id: row.try_get("site_id")?,
                activity: Activity {
                    call_count: row.try_get("call_count")?,
                    visit_count: row.try_get("visit_count")?,
                    far_away_visit_count: row.try_get("far_away_visit_count")?,
                    refusal_count: row.try_get("refusal_count")?,
                    promise_count: row.try_get("promise_count")?,
                    promised_gnf: row.try_get("promised_gnf")?,
                    payment_count: row.try_get("payment_count")?,
                    collected_gnf: row.try_get("collected_gnf")?,
                    reversal_count: row.try_get("reversal_count")?,
                    score_points: row.try_get("score_points")?,
                },
            })
        })
        .collect()
}

/// Amount due at the start of the day, per site: charges due on or before the day, minus
/// what had been paid on them by payments and reversals whose occurred_at is before the day.
///
/// Computed as the current outstanding of the charges due by the day (the read model
/// `open_due`: per site, due date and tenant shard, kept by the triggers of `charges`,
/// migration `20261130012000`; a few rows per site and month, whatever the number of tenants)
/// plus the allocations of entries from the day on (they were not paid yet at the start of the
/// day; a later reversal's negative allocation takes back what it reopened), which reads only
/// recent ledger rows, plus the correction for the tenants with a payment made before the day
/// and reversed since (SQL `arrears_reversed_later`, migration `20261202010000`: their
/// reversed payment's rows and the rows the replay then gave their later payments would both
/// count).
pub async fn due_by_site(
    conn: &mut PgConnection,
    day: NaiveDate,
    start: DateTime<Utc>,
    site_ids: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(
        "SELECT x.site_id, sum(x.amount)::bigint FROM (
             SELECT o.site_id, o.open_gnf AS amount
             FROM open_due o
             WHERE o.due_date <= $1
             UNION ALL
             SELECT t.site_id, pa.amount_gnf
             FROM payments p
             JOIN payment_allocations pa ON pa.payment_id = p.id
             JOIN charges c ON c.id = pa.charge_id
             JOIN tenants t ON t.id = c.tenant_id
             WHERE p.occurred_at >= $2 AND c.due_date <= $1
             UNION ALL
             SELECT a.site_id, a.correction_gnf
             FROM arrears_reversed_later(ARRAY[$1::date], ARRAY[$2::timestamptz], $3) a
         ) x
         WHERE $3::uuid[] IS NULL OR x.site_id = ANY($3)
         GROUP BY x.site_id",
    )
    .bind(day)
    .bind(start)
    .bind(site_ids)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from)
}

/// The missions of `day` per (agent, site) by status ("planned": every status except
/// cancelled), of the listed sites (`None`: every site) and agents (`None`: anyone).
pub async fn missions_by_agent_site(
    conn: &mut PgConnection,
    day: NaiveDate,
    site_ids: Option<&[Uuid]>,
    agent_ids: Option<&[Uuid]>,
) -> Result<Vec<SiteMissions>> {
    let rows = sqlx::query(
        "SELECT agent_id, site_id,
                count(*) FILTER (WHERE status <> 'cancelled') AS planned,
                count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
                count(*) FILTER (WHERE status = 'done') AS done,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'cancelled') AS cancelled
         FROM missions
         WHERE mission_date = $1
           AND ($2::uuid[] IS NULL OR site_id = ANY($2))
           AND ($3::uuid[] IS NULL OR agent_id = ANY($3))
         GROUP BY agent_id, site_id",
    )
    .bind(day)
    .bind(site_ids)
    .bind(agent_ids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SiteMissions {
                agent_id: row.try_get("agent_id")?,
                site_id: row.try_get("site_id")?,
                counts: MissionCounts {
                    planned: row.try_get("planned")?,
                    in_progress: row.try_get("in_progress")?,
                    done: row.try_get("done")?,
                    failed: row.try_get("failed")?,
                    cancelled: row.try_get("cancelled")?,
                },
            })
        })
        .collect()
}
