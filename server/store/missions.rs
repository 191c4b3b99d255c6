//! SQL of missions: whose mission it is, for which tenant (`domain::mission`), what the daily
//! planner reads (sites, agents, candidate facts, the day's missions) and writes, and the
//! reads and changes of MissionsService.
//!
//! Decisions:
//! - A regeneration writes in place: an existing PLANNED (or planner-cancelled) row of the
//!   tenant and day takes the new plan (one mission per tenant and day, the table's unique
//!   key), the planned rows no longer in the plan are cancelled by generation; started,
//!   finished and person-cancelled rows are never written by the planner.
//! - One generation per day at a time: a transaction-level advisory lock of class
//!   [`PLAN_LOCK_CLASS`] keyed by the day.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::error::Result;
use super::markers::OWED_SQL;
use crate::domain::MissionLink;

/// The agent and tenant of a mission; `None` for an unknown mission.
pub async fn link(conn: &mut PgConnection, mission_id: Uuid) -> Result<Option<MissionLink>> {
    let row: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT agent_id, tenant_id FROM missions WHERE id = $1")
            .bind(mission_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(agent_id, tenant_id)| MissionLink {
        agent_id,
        tenant_id,
    }))
}

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
    pub status: String,
    pub cancelled_by_generation: bool,
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
        "SELECT id, agent_id, tenant_id, site_id, status, cancelled_by_generation, route_order,
                priority, estimated_distance_m
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

/// A mission as the API shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MissionRow {
    pub id: Uuid,
    pub mission_date: NaiveDate,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub tenant_id: Uuid,
    pub site_id: Uuid,
    pub priority: f64,
    pub reasons: Vec<String>,
    pub route_order: Option<i32>,
    pub estimated_distance_m: Option<f64>,
    pub estimated_travel_secs: Option<f64>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub status_note: Option<String>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub arrival_source: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub closing_interaction_id: Option<Uuid>,
    /// `call` or `visit`, the kind of `closing_interaction_id`.
    pub closing_interaction_kind: Option<String>,
    pub closing_payment_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

const MISSION_COLUMNS: &str = "m.id, m.mission_date, m.agent_id, u.full_name AS agent_name,
    m.tenant_id, m.site_id, m.priority, m.reasons, m.route_order, m.estimated_distance_m,
    m.estimated_travel_secs, m.status, m.failure_reason, m.status_note, m.arrived_at,
    m.arrival_source, m.started_at, m.finished_at, m.closing_interaction_id,
    (SELECT i.kind FROM interactions i WHERE i.id = m.closing_interaction_id)
        AS closing_interaction_kind,
    m.closing_payment_id, m.updated_at
    FROM missions m JOIN users u ON u.id = m.agent_id";

/// The missions of `day` on `site_ids` (every status), by agent then route order.
pub async fn of_day(
    conn: &mut PgConnection,
    day: NaiveDate,
    site_ids: &[Uuid],
) -> Result<Vec<MissionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MISSION_COLUMNS} WHERE m.mission_date = $1 AND m.site_id = ANY($2)
         ORDER BY m.agent_id, m.status = 'cancelled', m.route_order, m.id"
    ))
    .bind(day)
    .bind(site_ids)
    .fetch_all(conn)
    .await?)
}

/// The missions of an agent on a day (every status), in route order (cancelled ones last).
pub async fn of_agent_day(
    conn: &mut PgConnection,
    agent_id: Uuid,
    day: NaiveDate,
) -> Result<Vec<MissionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MISSION_COLUMNS} WHERE m.agent_id = $1 AND m.mission_date = $2
         ORDER BY m.status = 'cancelled', m.route_order, m.id"
    ))
    .bind(agent_id)
    .bind(day)
    .fetch_all(conn)
    .await?)
}

/// The mission `id`, locked for update when `lock`.
pub async fn get(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Option<MissionRow>> {
    let lock = if lock { " FOR UPDATE OF m" } else { "" };
    Ok(
        sqlx::query_as(&format!("SELECT {MISSION_COLUMNS} WHERE m.id = $1{lock}"))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Filters of a mission list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub agent_id: Option<Uuid>,
    /// Only agents supervised by this user.
    pub supervisor_id: Option<Uuid>,
    /// `None`: every site.
    pub site_ids: Option<Vec<Uuid>>,
    pub tenant_id: Option<Uuid>,
    pub statuses: Vec<&'static str>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Position after which a page starts: (date, agent, route order, id) of the last row sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub date: NaiveDate,
    pub agent_id: Uuid,
    pub route_order: i32,
    pub id: Uuid,
}

/// A page of missions matching `filter` after `after`, by date, agent, route order, id; and
/// the number of all matches.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<MissionRow>, i64)> {
    const WHERE: &str = "m.mission_date BETWEEN $1 AND $2
           AND ($3::uuid IS NULL OR m.agent_id = $3)
           AND ($4::uuid IS NULL OR u.supervisor_id = $4)
           AND ($5::uuid[] IS NULL OR m.site_id = ANY($5))
           AND ($6::uuid IS NULL OR m.tenant_id = $6)
           AND (cardinality($7::text[]) = 0 OR m.status = ANY($7))";
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM missions m JOIN users u ON u.id = m.agent_id WHERE {WHERE}"
    ))
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.agent_id)
    .bind(filter.supervisor_id)
    .bind(filter.site_ids.as_deref())
    .bind(filter.tenant_id)
    .bind(&filter.statuses)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {MISSION_COLUMNS} WHERE {WHERE}
           AND ($8::date IS NULL
                OR (m.mission_date, m.agent_id, coalesce(m.route_order, 0), m.id)
                   > ($8, $9, $10, $11))
         ORDER BY m.mission_date, m.agent_id, coalesce(m.route_order, 0), m.id
         LIMIT $12"
    ))
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.agent_id)
    .bind(filter.supervisor_id)
    .bind(filter.site_ids.as_deref())
    .bind(filter.tenant_id)
    .bind(&filter.statuses)
    .bind(after.map(|c| c.date))
    .bind(after.map(|c| c.agent_id))
    .bind(after.map(|c| c.route_order))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok((rows, total))
}

/// The new values of a mission after UpdateMission (the use case decided them).
#[derive(Debug, Clone)]
pub struct MissionChange<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub status: &'static str,
    pub failure_reason: Option<&'a str>,
    pub status_note: Option<&'a str>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub arrival_source: Option<&'static str>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub closing_interaction_id: Option<Uuid>,
    pub closing_payment_id: Option<Uuid>,
}

/// Writes `change` over the mission.
pub async fn update(conn: &mut PgConnection, change: &MissionChange<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE missions SET agent_id = $2, status = $3, failure_reason = $4, status_note = $5,
                arrived_at = $6, arrival_source = $7, started_at = $8, finished_at = $9,
                closing_interaction_id = $10, closing_payment_id = $11,
                cancelled_by_generation = false
         WHERE id = $1",
    )
    .bind(change.id)
    .bind(change.agent_id)
    .bind(change.status)
    .bind(change.failure_reason)
    .bind(change.status_note)
    .bind(change.arrived_at)
    .bind(change.arrival_source)
    .bind(change.started_at)
    .bind(change.finished_at)
    .bind(change.closing_interaction_id)
    .bind(change.closing_payment_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What closed a mission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Interaction(Uuid),
    Payment(Uuid),
}

/// Closes a PLANNED or IN_PROGRESS mission as DONE by the action `closing` at `at` (a final
/// mission is left alone; a link already set is kept). Answers whether it changed.
pub async fn close_by_action(
    conn: &mut PgConnection,
    mission_id: Uuid,
    closing: Closing,
    at: DateTime<Utc>,
) -> Result<bool> {
    let (interaction, payment) = match closing {
        Closing::Interaction(id) => (Some(id), None),
        Closing::Payment(id) => (None, Some(id)),
    };
    Ok(sqlx::query(
        "UPDATE missions SET status = 'done', finished_at = greatest($2, started_at),
                closing_interaction_id = coalesce(closing_interaction_id, $3),
                closing_payment_id = coalesce(closing_payment_id, $4)
         WHERE id = $1 AND status IN ('planned', 'in_progress')",
    )
    .bind(mission_id)
    .bind(at)
    .bind(interaction)
    .bind(payment)
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}

/// The tenant and agent of an interaction or payment (for a mission's closing link); `None`
/// for an unknown one. A reversal entry is not a payment here.
pub async fn action_owner(
    conn: &mut PgConnection,
    closing: Closing,
) -> Result<Option<(Uuid, Uuid, String)>> {
    Ok(match closing {
        Closing::Interaction(id) => {
            sqlx::query_as("SELECT tenant_id, agent_id, kind FROM interactions WHERE id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await?
        }
        Closing::Payment(id) => {
            sqlx::query_as(
                "SELECT tenant_id, agent_id, 'payment'::text FROM payments
                 WHERE id = $1 AND kind = 'payment'",
            )
            .bind(id)
            .fetch_optional(conn)
            .await?
        }
    })
}

/// A fingerprint of an agent's plan of a day: changes with any change of its missions or of
/// their tenants' balances and promises.
pub async fn plan_version(
    conn: &mut PgConnection,
    agent_id: Uuid,
    day: NaiveDate,
) -> Result<String> {
    let versions = plan_versions(conn, &[agent_id], day).await?;
    Ok(versions
        .into_iter()
        .next()
        .map(|(_, version)| version)
        .unwrap_or_default())
}

/// [`plan_version`] of each of `agent_ids` (one row per agent, in no particular order).
pub async fn plan_versions(
    conn: &mut PgConnection,
    agent_ids: &[Uuid],
    day: NaiveDate,
) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT a.agent_id,
                md5(coalesce(string_agg(m.id::text || m.updated_at::text || t.updated_at::text
                                      || coalesce(t.credit_gnf, 0)::text
                                      || coalesce((SELECT max(c.updated_at) FROM charges c
                                                   WHERE c.tenant_id = t.id)::text, '')
                                      || coalesce((SELECT max(p.updated_at) FROM promises p
                                                   WHERE p.tenant_id = t.id)::text, ''),
                                      ',' ORDER BY m.id), ''))
         FROM unnest($1::uuid[]) AS a(agent_id)
         LEFT JOIN missions m ON m.agent_id = a.agent_id AND m.mission_date = $2
         LEFT JOIN tenants t ON t.id = m.tenant_id
         GROUP BY a.agent_id",
    )
    .bind(agent_ids)
    .bind(day)
    .fetch_all(conn)
    .await?)
}

/// Every agent's mission in progress of `day` (the one started last): (agent id, mission id).
/// Served by `missions_in_progress_idx`.
pub async fn in_progress<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    day: NaiveDate,
) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (agent_id) agent_id, id FROM missions
         WHERE mission_date = $1 AND status = 'in_progress'
         ORDER BY agent_id, started_at DESC NULLS LAST, id DESC",
    )
    .bind(day)
    .fetch_all(executor)
    .await?)
}

/// An agent's supervisor, sites and last known position, for scope checks and start points.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentAccount {
    pub full_name: String,
    pub supervisor_id: Option<Uuid>,
    pub site_ids: Vec<Uuid>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// The account of the agent `agent_id`; `None` for an unknown user or one who is not an agent.
pub async fn agent_account(
    conn: &mut PgConnection,
    agent_id: Uuid,
) -> Result<Option<AgentAccount>> {
    Ok(sqlx::query_as(
        "SELECT u.full_name, u.supervisor_id,
                ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id
                      ORDER BY us.site_id) AS site_ids,
                p.latitude, p.longitude
         FROM users u LEFT JOIN agent_last_positions p ON p.agent_id = u.id
         WHERE u.id = $1 AND u.role_id = 'agent'",
    )
    .bind(agent_id)
    .fetch_optional(conn)
    .await?)
}
