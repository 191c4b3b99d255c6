//! SQL of missions: whose mission it is, for which tenant (`domain::mission`), what the daily
//! planner reads (sites, agents, candidate facts, the day's missions) and writes, and the
//! reads and changes of MissionsService.
//!
//! The daily planner's reads and writes are in `plan`.
//!
//! Decisions:
//! - A regeneration writes in place: an existing PLANNED (or planner-cancelled) row of the
//!   tenant and day takes the new plan (one mission per tenant and day, the table's unique
//!   key), the planned rows no longer in the plan are cancelled by generation; started,
//!   finished and person-cancelled rows are never written by the planner.
//! - One generation per day at a time: a transaction-level advisory lock of class
//!   [`PLAN_LOCK_CLASS`] keyed by the day.

mod plan;

pub use plan::*;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::error::Result;
use crate::domain::{
    ArrivalSource, ClosingKind, FailureReason, InteractionKind, MissionLink, MissionStatus,
};

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
    #[sqlx(try_from = "String")]
    pub status: MissionStatus,
    pub failure_reason: Option<FailureReason>,
    pub status_note: Option<String>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub arrival_source: Option<ArrivalSource>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub closing_interaction_id: Option<Uuid>,
    /// The kind of `closing_interaction_id`.
    pub closing_interaction_kind: Option<InteractionKind>,
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
    pub status: MissionStatus,
    pub failure_reason: Option<FailureReason>,
    pub status_note: Option<&'a str>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub arrival_source: Option<ArrivalSource>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub closing_interaction_id: Option<Uuid>,
    pub closing_payment_id: Option<Uuid>,
}

/// Writes `change` over the mission (a person's change: a new agent sets `reassigned_at`).
pub async fn update(conn: &mut PgConnection, change: &MissionChange<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE missions SET agent_id = $2, status = $3, failure_reason = $4, status_note = $5,
                arrived_at = $6, arrival_source = $7, started_at = $8, finished_at = $9,
                closing_interaction_id = $10, closing_payment_id = $11,
                cancelled_by_generation = false,
                reassigned_at = CASE WHEN agent_id <> $2 THEN now() ELSE reassigned_at END
         WHERE id = $1",
    )
    .bind(change.id)
    .bind(change.agent_id)
    .bind(change.status.as_str())
    .bind(change.failure_reason.map(FailureReason::as_str))
    .bind(change.status_note)
    .bind(change.arrived_at)
    .bind(change.arrival_source.map(ArrivalSource::as_str))
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

/// The agent and tenant of an interaction or payment, and its kind (for a mission's closing
/// link); `None` for an unknown one. A reversal entry is not a payment here.
pub async fn action_owner(
    conn: &mut PgConnection,
    closing: Closing,
) -> Result<Option<(MissionLink, ClosingKind)>> {
    let row: Option<(Uuid, Uuid, ClosingKind)> = match closing {
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
    };
    Ok(row.map(|(tenant_id, agent_id, kind)| {
        (
            MissionLink {
                agent_id,
                tenant_id,
            },
            kind,
        )
    }))
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

#[cfg(test)]
mod tests {
    use crate::domain::{ArrivalSource, FailureReason};
    use crate::testing::TestDb;

    /// The spellings the CHECK constraint `name` lets a column hold, sorted.
    async fn allowed(pool: &sqlx::PgPool, name: &str) -> Vec<String> {
        let definition: String = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .expect(name);
        let mut spellings: Vec<String> = definition
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        spellings.sort();
        spellings
    }

    fn sorted(spellings: impl Iterator<Item = &'static str>) -> Vec<String> {
        let mut spellings: Vec<String> = spellings.map(str::to_owned).collect();
        spellings.sort();
        spellings
    }

    /// The schema and the domain agree on the failure reasons and arrival sources a mission
    /// can hold: every stored value decodes, and every value the API writes is accepted.
    #[tokio::test]
    async fn the_checks_of_missions_allow_exactly_the_domain_values() {
        let db = TestDb::new().await;
        assert_eq!(
            allowed(&db.pool, "missions_failure_reason_known").await,
            sorted(FailureReason::ALL.iter().map(|r| r.as_str()))
        );
        assert_eq!(
            allowed(&db.pool, "missions_arrival_source_known").await,
            sorted(ArrivalSource::ALL.iter().map(|s| s.as_str()))
        );
    }
}
