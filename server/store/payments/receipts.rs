//! Receipt numbers: gap-free per site and calendar year (`next_receipt_number`), taken last.
//!
//! Decisions:
//! - An entry is inserted without its number ([`super::insert_entry`]) and numbered by the
//!   statement just before the key completion and COMMIT. The site's counter row stays locked
//!   until COMMIT (a rolled-back call gives its number back), so every other payment of the
//!   site waits for it: taken last, it is held for two statements and the COMMIT instead of the
//!   whole ledger write and its read-model triggers.
//! - The counter is the last lock of the transaction: whoever holds it waits for nothing else
//!   (see the lock order in `store::payments`), so two payments or reversals of a site cannot
//!   wait on each other in opposite orders.
//! - The schema keeps the rest honest: no row commits without a number (`payments_numbered`),
//!   and a row's number is given once, nothing else changed (`payments_append_only`).

use sqlx::PgConnection;
use uuid::Uuid;

use super::super::error::{Result, StoreError};
use super::DailyAdd;

/// Gives the entry `entry_id`, inserted by this transaction without a number, the next number
/// of its site's counter for `year` (a calendar year, 2000..=9999), and answers it
/// (`KAL-2026-000123`). With `daily`, first adds the entry's score to its agent's daily figures
/// in the same statement (before the counter: see the lock order in `store::payments`); the
/// numbering also counts the entry in its site's `collected_days` (trigger
/// `payments_collected_when_numbered`). Run it as the last write before the key completion:
/// the counter row stays locked until COMMIT. Errors: a database error, `StoreError::Other`
/// too when no entry without a number has this id.
pub async fn number_entry(
    conn: &mut PgConnection,
    entry_id: Uuid,
    year: i32,
    daily: Option<&DailyAdd>,
) -> Result<String> {
    // `daily` is read by the UPDATE's one-time filter (an InitPlan), so it has run, and taken
    // the agent's daily row, before the first row's SET takes the counter.
    sqlx::query_scalar(
        "WITH daily AS (
             INSERT INTO agent_daily_scores AS s
               (agent_id, day, score, payments_count, payments_gnf)
             SELECT $3, $4, $5, $6, $7 WHERE $3 IS NOT NULL
             ON CONFLICT (agent_id, day) DO UPDATE
             SET score = s.score + EXCLUDED.score,
                 payments_count = s.payments_count + EXCLUDED.payments_count,
                 payments_gnf = s.payments_gnf + EXCLUDED.payments_gnf
             RETURNING 1)
         UPDATE payments SET receipt_number = next_receipt_number(site_id, $2)
         WHERE id = $1 AND receipt_number IS NULL AND (SELECT count(*) FROM daily) >= 0
         RETURNING receipt_number",
    )
    .bind(entry_id)
    .bind(year)
    .bind(daily.map(|d| d.agent_id))
    .bind(daily.map(|d| d.day))
    .bind(daily.map(|d| d.points))
    .bind(daily.map(|d| d.payments_count))
    .bind(daily.map(|d| d.payments_gnf))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    /// A site, a tenant and an agent; answers (site, tenant, agent).
    async fn setup(conn: &mut PgConnection) -> (Uuid, Uuid, Uuid) {
        let site: Uuid = sqlx::query_scalar(
            "INSERT INTO sites (code, name, commune, latitude, longitude, kind)
             VALUES ('KAL', 'Kaloum', 'Kaloum', 9.51, -13.71, 'residential') RETURNING id",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("site");
        let tenant: Uuid = sqlx::query_scalar(
            "INSERT INTO tenants (site_id, full_name, unit, monthly_rent_gnf)
             VALUES ($1, 'Mariama Bah', 'A1', 1500000) RETURNING id",
        )
        .bind(site)
        .fetch_one(&mut *conn)
        .await
        .expect("tenant");
        let agent: Uuid = sqlx::query_scalar(
            "INSERT INTO users (username, full_name, password_hash, role_id)
             VALUES ('agent1', 'Agent Un', 'x', 'agent') RETURNING id",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("agent");
        (site, tenant, agent)
    }

    /// Inserts a payment without a number (as `insert_entry` does) and answers its id.
    async fn unnumbered(
        conn: &mut PgConnection,
        (site, tenant, agent): (Uuid, Uuid, Uuid),
    ) -> Uuid {
        sqlx::query_scalar(
            "INSERT INTO payments (tenant_id, site_id, kind, amount_gnf, method, occurred_at,
                                   agent_id, request_id)
             VALUES ($1, $2, 'payment', 50000, 'cash', now(), $3, gen_random_uuid())
             RETURNING id",
        )
        .bind(tenant)
        .bind(site)
        .bind(agent)
        .fetch_one(conn)
        .await
        .expect("payment")
    }

    #[tokio::test]
    async fn entries_are_numbered_in_turn_once_and_never_changed_after() {
        let db = TestDb::new().await;
        let mut tx = db.pool.begin().await.expect("begin");
        let ids = setup(&mut tx).await;
        let first = unnumbered(&mut tx, ids).await;
        let second = unnumbered(&mut tx, ids).await;
        assert_eq!(
            number_entry(&mut tx, first, 2026, None)
                .await
                .expect("first"),
            "KAL-2026-000001"
        );
        assert_eq!(
            number_entry(&mut tx, second, 2026, None)
                .await
                .expect("second"),
            "KAL-2026-000002"
        );
        // Numbered once: a second call finds no unnumbered entry.
        assert!(matches!(
            number_entry(&mut tx, first, 2026, None).await,
            Err(StoreError::Other(sqlx::Error::RowNotFound))
        ));
        tx.commit().await.expect("both numbered: commits");

        // Append-only after that: neither the number nor anything else changes.
        for sql in [
            "UPDATE payments SET receipt_number = 'KAL-2026-000009' WHERE id = $1",
            "UPDATE payments SET receipt_number = NULL WHERE id = $1",
            "UPDATE payments SET amount_gnf = 1 WHERE id = $1",
            "DELETE FROM payments WHERE id = $1",
        ] {
            let error = sqlx::query(sql)
                .bind(first)
                .execute(&db.pool)
                .await
                .expect_err(sql);
            assert!(error.to_string().contains("append-only"), "{sql}: {error}");
        }
        let numbers: Vec<String> =
            sqlx::query_scalar("SELECT receipt_number FROM payments ORDER BY receipt_number")
                .fetch_all(&db.pool)
                .await
                .expect("numbers");
        assert_eq!(numbers, ["KAL-2026-000001", "KAL-2026-000002"]);
    }

    #[tokio::test]
    async fn an_entry_without_a_number_does_not_commit() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let ids = setup(&mut conn).await;
        let mut tx = db.pool.begin().await.expect("begin");
        let id = unnumbered(&mut tx, ids).await;
        // Giving the number with another column changed is refused too.
        let error = sqlx::query(
            "UPDATE payments SET receipt_number = 'KAL-2026-000001', amount_gnf = 1 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect_err("number and amount");
        assert!(error.to_string().contains("append-only"), "{error}");
        drop(tx);

        let mut tx = db.pool.begin().await.expect("begin");
        unnumbered(&mut tx, ids).await;
        let error = tx.commit().await.expect_err("unnumbered at commit");
        assert!(
            error.to_string().contains("no receipt number at commit"),
            "{error}"
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(rows, 0);
    }
}
