//! SQL of the daily mission planner: the day's advisory lock, the sites, agents and candidate
//! facts it plans from, the day's missions, and its writes (planned missions upserted, replaced
//! ones cancelled). Decisions: see the parent module.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::MissionStatus;
use crate::store::error::Result;
use crate::store::markers::OWED_SQL;

/// Class of the advisory lock of a mission day (the second key is the day).
pub const PLAN_LOCK_CLASS: i32 = 0x4d49_5353; // "MISS"

/// Takes the mission day's transaction-level advisory lock if free: `false` when another
/// generation of that day holds it.
pub async fn try_lock_day(conn: &mut PgConnection, day: NaiveDate) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(PLAN_LOCK_CLASS)
            .bind(day_key(day))
            .fetch_one(conn)
            .await?,
    )
}

/// The second key of a day's advisory lock: days since 2000-01-01.
pub fn day_key(day: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
    i32::try_from((day - epoch).num_days()).unwrap_or(i32::MAX)
}

/// A site with its location (the start of agents without a known position).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanSite {
    pub id: Uuid,
    pub code: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// The sites `ids` (every site when `None`), by code.
pub async fn plan_sites(conn: &mut PgConnection, ids: Option<&[Uuid]>) -> Result<Vec<PlanSite>> {
    Ok(sqlx::query_as(
        "SELECT id, code, latitude, longitude FROM sites
         WHERE $1::uuid[] IS NULL OR id = ANY($1) ORDER BY code",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// An active agent who may be planned, with their sites and last known position.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanAgentRow {
    pub id: Uuid,
    pub full_name: String,
    pub site_ids: Vec<Uuid>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// Active agents covering one of `site_ids` (only `agent_ids` when given, only those
/// supervised by `supervisor_id` when given), by id.
pub async fn plan_agents(
    conn: &mut PgConnection,
    site_ids: &[Uuid],
    agent_ids: Option<&[Uuid]>,
    supervisor_id: Option<Uuid>,
) -> Result<Vec<PlanAgentRow>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.full_name,
                ARRAY(SELECT us.site_id FROM user_sites us
                      WHERE us.user_id = u.id AND us.site_id = ANY($1)
                      ORDER BY us.site_id) AS site_ids,
                p.latitude, p.longitude
         FROM users u
         LEFT JOIN agent_last_positions p ON p.agent_id = u.id AND NOT p.is_mock_location
         WHERE u.role_id = 'agent' AND NOT u.disabled
           AND EXISTS (SELECT 1 FROM user_sites us WHERE us.user_id = u.id AND us.site_id = ANY($1))
           AND ($2::uuid[] IS NULL OR u.id = ANY($2))
           AND ($3::uuid IS NULL OR u.supervisor_id = $3)
         ORDER BY u.id",
    )
    .bind(site_ids)
    .bind(agent_ids)
    .bind(supervisor_id)
    .fetch_all(conn)
    .await?)
}

/// What the candidate rules read of a tenant (`domain::priority::TenantFacts`), for active
/// tenants who owe something or have a promise falling due on the day.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FactsRow {
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub outstanding_gnf: i64,
    pub oldest_unpaid_due_date: Option<NaiveDate>,
    pub broken_promises: i64,
    pub promise_due: bool,
    pub promise_pending_later: bool,
    pub last_contact: Option<NaiveDate>,
}

/// The facts of the active tenants of `site_ids` on `day` who owe something (charges due by
/// the day) or have a pending promise falling due that day, by tenant id. Broken promises are
/// those whose date passed without full payment (stored broken, or still pending after their
/// date) since the last call or visit. What each owes is read from the read model
/// `tenant_open` ([`OWED_SQL`], ADR 0011), not summed from its charges.
pub async fn candidate_facts(
    conn: &mut PgConnection,
    site_ids: &[Uuid],
    day: NaiveDate,
) -> Result<Vec<FactsRow>> {
    // `$1` is the day, as `OWED_SQL` wants it.
    let sql = format!(
        "WITH owed AS (
             SELECT o.tenant_id, {OWED_SQL} AS outstanding_gnf,
                    o.open_first_due AS oldest_unpaid_due_date
             FROM tenant_open o
             WHERE o.site_id = ANY($2) AND o.active AND o.open_gnf > 0
               AND o.open_first_due <= $1),
         promised AS (
             SELECT p.tenant_id,
                    bool_or(p.status = 'pending' AND p.promised_date = $1
                            AND p.covered_gnf < p.amount_gnf) AS promise_due,
                    bool_or(p.status = 'pending' AND p.promised_date > $1) AS promise_pending_later,
                    array_agg(p.promised_date) FILTER (
                        WHERE p.status = 'broken'
                           OR (p.status = 'pending' AND p.promised_date < $1
                               AND p.covered_gnf < p.amount_gnf)) AS broken_dates
             FROM promises p JOIN tenants t ON t.id = p.tenant_id
             WHERE t.site_id = ANY($2) AND t.active AND p.status IN ('pending', 'broken')
             GROUP BY p.tenant_id),
         base AS (
             SELECT t.id, t.site_id, t.home_latitude, t.home_longitude
             FROM tenants t
             WHERE t.id IN (SELECT tenant_id FROM owed UNION SELECT tenant_id FROM promised
                            WHERE promise_due))
         SELECT b.id AS tenant_id, b.site_id, b.home_latitude AS latitude,
                b.home_longitude AS longitude,
                coalesce(o.outstanding_gnf, 0)::bigint AS outstanding_gnf,
                o.oldest_unpaid_due_date,
                (SELECT count(*) FROM unnest(pr.broken_dates) d
                 WHERE lc.last_contact IS NULL OR d >= lc.last_contact) AS broken_promises,
                coalesce(pr.promise_due, false) AS promise_due,
                coalesce(pr.promise_pending_later, false) AS promise_pending_later,
                lc.last_contact
         FROM base b
         LEFT JOIN owed o ON o.tenant_id = b.id
         LEFT JOIN promised pr ON pr.tenant_id = b.id
         LEFT JOIN LATERAL (
             SELECT (max(i.occurred_at) AT TIME ZONE 'Africa/Conakry')::date AS last_contact
             FROM interactions i WHERE i.tenant_id = b.id AND i.occurred_at < $3
         ) lc ON true
         ORDER BY b.id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(day)
        .bind(site_ids)
        .bind(crate::domain::conakry_day_start(day))
        .fetch_all(conn)
        .await?)
}

/// A mission of the day as the planner sees it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DayMission {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: MissionStatus,
    pub cancelled_by_generation: bool,
    /// A person gave it to its agent (UpdateMission).
    pub reassigned: bool,
    pub route_order: Option<i32>,
    pub priority: f64,
    pub estimated_distance_m: Option<f64>,
}

/// The missions of `day` on `site_ids`.
pub async fn day_missions(
    conn: &mut PgConnection,
    day: NaiveDate,
    site_ids: &[Uuid],
) -> Result<Vec<DayMission>> {
    Ok(sqlx::query_as(
        "SELECT id, agent_id, tenant_id, site_id, status, cancelled_by_generation,
                reassigned_at IS NOT NULL AS reassigned, route_order, priority,
                estimated_distance_m
         FROM missions WHERE mission_date = $1 AND site_id = ANY($2)",
    )
    .bind(day)
    .bind(site_ids)
    .fetch_all(conn)
    .await?)
}

/// A planned mission to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMission {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub priority: f64,
    pub reasons: Vec<&'static str>,
    pub route_order: i32,
    pub distance_m: f64,
    pub travel_secs: f64,
}

/// Writes `planned` for `day`: a new row per tenant without one, and the planner's fields of
/// an existing PLANNED (or planner-cancelled) row otherwise, which becomes PLANNED again.
/// Answers how many rows were inserted.
pub async fn upsert_planned(
    conn: &mut PgConnection,
    day: NaiveDate,
    planned: &[PlannedMission],
) -> Result<u64> {
    if planned.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&PlannedMission) -> Uuid| planned.iter().map(f).collect::<Vec<_>>();
    let reasons: Vec<String> = planned.iter().map(|p| p.reasons.join(",")).collect();
    let inserted: i64 = sqlx::query_scalar(
        "WITH written AS (
             INSERT INTO missions AS m (mission_date, agent_id, tenant_id, site_id, priority,
                                        reasons, route_order, estimated_distance_m,
                                        estimated_travel_secs)
             SELECT $1, p.agent_id, p.tenant_id, p.site_id, p.priority,
                    string_to_array(nullif(p.reasons, ''), ','), p.route_order, p.distance_m,
                    p.travel_secs
             FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::float8[], $6::text[],
                         $7::int[], $8::float8[], $9::float8[])
                  AS p(agent_id, tenant_id, site_id, priority, reasons, route_order, distance_m,
                       travel_secs)
             ON CONFLICT (mission_date, tenant_id) DO UPDATE
             SET agent_id = EXCLUDED.agent_id, site_id = EXCLUDED.site_id,
                 priority = EXCLUDED.priority, reasons = EXCLUDED.reasons,
                 route_order = EXCLUDED.route_order,
                 estimated_distance_m = EXCLUDED.estimated_distance_m,
                 estimated_travel_secs = EXCLUDED.estimated_travel_secs,
                 status = 'planned', cancelled_by_generation = false, finished_at = NULL,
                 status_note = NULL
             WHERE m.status = 'planned' OR m.cancelled_by_generation
             RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted) FROM written",
    )
    .bind(day)
    .bind(col(|p| p.agent_id))
    .bind(col(|p| p.tenant_id))
    .bind(col(|p| p.site_id))
    .bind(planned.iter().map(|p| p.priority).collect::<Vec<_>>())
    .bind(reasons)
    .bind(planned.iter().map(|p| p.route_order).collect::<Vec<_>>())
    .bind(planned.iter().map(|p| p.distance_m).collect::<Vec<_>>())
    .bind(planned.iter().map(|p| p.travel_secs).collect::<Vec<_>>())
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// Cancels the PLANNED missions `ids` as replaced by a new plan, at `now`.
pub async fn cancel_replaced(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE missions SET status = 'cancelled', cancelled_by_generation = true,
                finished_at = greatest($2, started_at)
         WHERE id = ANY($1) AND status = 'planned'",
    )
    .bind(ids)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}
