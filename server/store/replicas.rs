//! The leases of the replicas that hold standings in process, and the acknowledgements of
//! standing syncs (ADR 0015, `crate::auth::standing`). Times are PostgreSQL's own
//! (`clock_timestamp()`), so that the replicas' clocks do not matter.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Renews (or takes) `replica`'s lease for `lease` from now, on the database's clock; drops
/// the leases and acknowledgements left for over a minute (replicas gone without a word).
pub async fn renew_lease(pool: &PgPool, replica: Uuid, lease: Duration) -> Result<(), sqlx::Error> {
    let millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "WITH renewed AS (
             INSERT INTO standing_replicas (replica_id, lease_until)
             VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
             ON CONFLICT (replica_id) DO UPDATE SET lease_until = EXCLUDED.lease_until
         ), gone AS (
             DELETE FROM standing_replicas
             WHERE lease_until < clock_timestamp() - interval '1 minute'
         )
         DELETE FROM standing_sync_acks WHERE acked_at < clock_timestamp() - interval '1 minute'",
    )
    .bind(replica)
    .bind(millis)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up `replica`'s lease (a replica shutting down): syncs stop waiting for it.
pub async fn end_lease(pool: &PgPool, replica: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM standing_replicas WHERE replica_id = $1")
        .bind(replica)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records that `replica`'s listener passed the sync `token`.
pub async fn ack_sync(pool: &PgPool, token: Uuid, replica: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO standing_sync_acks (token, replica_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(token)
    .bind(replica)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many replicas still hold a lease without having acknowledged the sync `token`.
pub async fn unacknowledged(pool: &PgPool, token: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM standing_replicas r
         WHERE r.lease_until > clock_timestamp()
           AND NOT EXISTS (SELECT 1 FROM standing_sync_acks a
                           WHERE a.token = $1 AND a.replica_id = r.replica_id)",
    )
    .bind(token)
    .fetch_one(pool)
    .await
}

/// Forgets the acknowledgements of the sync `token` (its writer has them all).
pub async fn forget_sync(pool: &PgPool, token: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM standing_sync_acks WHERE token = $1")
        .bind(token)
        .execute(pool)
        .await?;
    Ok(())
}
