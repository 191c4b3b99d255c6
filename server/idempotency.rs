//! Idempotency of mutating RPCs. A phone retries a call with the `request_id` it generated once
//! for the user action (see the convention at the top of `proto/akig/v1/common.proto`); the key
//! is that id scoped to the caller and the method, and a fingerprint of the request tells a
//! replay from a reuse of the id for another request:
//!
//! * a replay of a call that succeeded gets the stored response, and the work is not done again;
//! * the same id with another request answers FAILED_PRECONDITION (`ERROR_REASON_REQUEST_ID_REUSED`);
//! * a replay while the first call still runs answers ABORTED (`ERROR_REASON_REQUEST_IN_PROGRESS`);
//! * errors are never remembered: a failed call leaves no key, and a retry runs the work again.
//!
//! # How a call is made exactly once
//!
//! The key row is written **in the transaction of the work itself**: the call takes a
//! transaction-scoped advisory lock on the key (a duplicate that cannot take it does not wait:
//! it is judged by the key's committed row, replayed or refused when the key completed, ABORTED
//! when there is none yet because the first call still runs), inserts the key as `in_flight`,
//! runs the work, marks the
//! key `completed` with the encoded response and commits. Data and key therefore commit
//! together or not at all, and an `in_flight` row is never visible to anyone else. A call that
//! fails, is cancelled (the client hung up, the deadline passed: the future is dropped) or whose
//! server dies rolls back, and PostgreSQL releases the lock and the key with it: the next retry
//! proceeds at once, with no staleness window to wait out and no race between two takers.
//!
//! The staleness bound (`stale_after`) covers what remains: the transaction's
//! `idle_in_transaction_session_timeout` is set to it, so a server that stops talking to
//! PostgreSQL mid-call (host lost, network partition) has its transaction aborted, and its key
//! freed, after that long rather than after the TCP keepalive (hours). It must be longer than
//! the request deadline. A committed `in_flight` row (written by some other writer) older than
//! the bound is taken over; a younger one answers ABORTED.
//!
//! Keys live `ttl` (30 days by default) from the first call; an expired key counts as absent and
//! [`Idempotency::purge_expired`] deletes them. Payments also carry their request_id under a
//! unique constraint, so a replay after the window still cannot record a payment twice.
//!
//! The fingerprint is SHA-256 of the request re-encoded by prost, which is deterministic for a
//! given message as long as it has no `map` field (prost's default `HashMap` iterates in a random
//! order): a mutating request that gains a map field needs `.btree_map(["."])` in build.rs.

use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, QueryBuilder};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::IDEMPOTENT_CALLS;
use crate::store::audit::{self, AuditEvent};

/// How long a key is remembered by default: a phone retries within days, not months.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Default staleness bound of an in-flight call; longer than the default request deadline (30 s).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// How many times a key removed under our feet (by the purge) is claimed again.
const CLAIM_ATTEMPTS: usize = 3;

/// Keys deleted per statement by the purge: short locks, whatever the backlog.
const PURGE_BATCH: i64 = 1_000;

/// Separates our advisory-lock ids from any other use of a hash as a lock id.
const LOCK_DOMAIN: &[u8] = b"akig.idempotency\0";

/// What makes two calls "the same": the caller, the RPC and the client's request_id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The authenticated user making the call.
    pub actor_id: Uuid,
    /// The gRPC path, e.g. `/akig.v1.CollectionsService/RecordPayment`.
    pub method: &'static str,
    /// The request's `request_id`, parsed with [`parse_request_id`].
    pub request_id: Uuid,
}

impl IdempotencyKey {
    pub fn new(actor_id: Uuid, method: &'static str, request_id: Uuid) -> Self {
        Self {
            actor_id,
            method,
            request_id,
        }
    }

    /// The advisory-lock id of the key: 64 bits of a hash, so two keys share a lock (and one
    /// answers ABORTED for the other while it runs) with negligible probability.
    fn lock_id(&self) -> i64 {
        let digest = Sha256::new()
            .chain_update(LOCK_DOMAIN)
            .chain_update(self.actor_id.as_bytes())
            .chain_update(self.method.as_bytes())
            .chain_update([0])
            .chain_update(self.request_id.as_bytes())
            .finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

/// Why a `request_id` field is refused (INVALID_ARGUMENT on the field `request_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestIdError {
    #[error("is required")]
    Missing,
    #[error("must be a UUID generated once per action")]
    Malformed,
}

/// Parses the `request_id` of a mutating request: any UUID form (hyphenated, simple, braced,
/// urn), any case, except the nil UUID (a client that forgot to set it).
pub fn parse_request_id(raw: &str) -> Result<Uuid, RequestIdError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(RequestIdError::Missing);
    }
    match Uuid::try_parse(raw) {
        Ok(id) if !id.is_nil() => Ok(id),
        _ => Err(RequestIdError::Malformed),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The request_id was already used by this caller and method for a different request.
    #[error("request_id was already used for a different request")]
    Mismatch,
    /// A call with this key is running now.
    #[error("the same request is still being processed; retry shortly")]
    InProgress,
    /// The key could not be read or written, or a stored response no longer decodes
    /// (`sqlx::Error::Decode`).
    #[error("idempotency store: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs mutating calls at most once per [`IdempotencyKey`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pool: PgPool,
    ttl: Duration,
    stale_after: Duration,
}

/// A key as stored, judged against the current request.
#[derive(sqlx::FromRow)]
struct StoredKey {
    fingerprint: Vec<u8>,
    state: String,
    response_body: Option<Vec<u8>>,
    expired: bool,
    stale: bool,
}

enum Verdict {
    /// Completed with this request: the stored response.
    Replay(Vec<u8>),
    Mismatch,
    InProgress,
    /// Expired, or in flight past the staleness bound: this call may take it.
    Claimable,
}

impl StoredKey {
    fn judge(self, fingerprint: &[u8]) -> Verdict {
        if self.expired {
            Verdict::Claimable
        } else if self.fingerprint != fingerprint {
            Verdict::Mismatch
        } else if self.state == "completed" {
            Verdict::Replay(self.response_body.unwrap_or_default())
        } else if self.stale {
            Verdict::Claimable
        } else {
            Verdict::InProgress
        }
    }
}

/// The first statement of a claim: whether it took the advisory lock and inserted the key,
/// and the key's row as committed before the statement (all `None` when there was none).
#[derive(sqlx::FromRow)]
struct FirstClaim {
    locked: bool,
    inserted: bool,
    fingerprint: Option<Vec<u8>>,
    state: Option<String>,
    response_body: Option<Vec<u8>>,
    expired: Option<bool>,
    stale: Option<bool>,
}

impl FirstClaim {
    fn stored(self) -> Option<StoredKey> {
        Some(StoredKey {
            fingerprint: self.fingerprint?,
            state: self.state?,
            response_body: self.response_body,
            expired: self.expired?,
            stale: self.stale?,
        })
    }
}

/// The outcome of claiming a key inside the call's transaction.
enum Claim {
    Owned,
    Replay(Vec<u8>),
}

const SELECT_KEY: &str = "SELECT fingerprint, state, response_body,
        expires_at <= now() AS expired,
        created_at <= now() - $4::interval AS stale
    FROM idempotency_keys
    WHERE actor_id = $1 AND method = $2 AND request_id = $3";

impl Idempotency {
    /// `ttl`: how long a key is remembered (at least 30 days in production). `stale_after`: the
    /// staleness bound of an in-flight call, longer than the request deadline; zero turns the
    /// idle-transaction guard off.
    ///
    /// # Panics
    /// If `ttl` is zero (a key must outlive its own call).
    pub fn new(pool: PgPool, ttl: Duration, stale_after: Duration) -> Self {
        assert!(!ttl.is_zero(), "idempotency ttl must be positive");
        Self {
            pool,
            ttl,
            stale_after,
        }
    }

    /// [`DEFAULT_TTL`] and [`DEFAULT_STALE_AFTER`].
    pub fn with_defaults(pool: PgPool) -> Self {
        Self::new(pool, DEFAULT_TTL, DEFAULT_STALE_AFTER)
    }

    /// Runs `work` at most once per `key` and returns its response; a replay gets the stored
    /// response without `work` being called.
    ///
    /// `work` gets the open transaction of the call: it does all its writes through it and
    /// returns the response (or its error), and must not commit. The response is stored in the
    /// same transaction before the commit, so the data and the key commit together. When
    /// `work` fails its transaction rolls back, nothing is remembered and a retry runs `work`
    /// again; the same holds when the returned future is dropped (client gone, deadline).
    /// `work` may open savepoints with `sqlx::Connection::begin` on the connection.
    ///
    /// Validate the request before calling `run`: an invalid request then takes neither a key
    /// nor a transaction. Checks that need the locked rows (a tenant's scope) may run inside
    /// `work`: a refusal there rolls back and leaves no key. A replay is answered from the
    /// stored response before `work`, so such checks do not run again for it; that is safe
    /// because keys belong to one caller, who only ever gets back their own first answer.
    pub async fn run<Req, Resp, E, F>(
        &self,
        key: IdempotencyKey,
        request: &Req,
        work: F,
    ) -> Result<Resp, E>
    where
        Req: Message,
        Resp: Message + Default,
        E: From<IdempotencyError>,
        F: AsyncFnOnce(&mut PgConnection) -> Result<Resp, E>,
    {
        self.run_audited(key, request, async move |conn: &mut PgConnection| {
            Ok((work(conn).await?, None))
        })
        .await
    }

    /// [`run`](Self::run) for work that ends with an audit row: `work` answers its response and
    /// the audit event of what it did, and the row is written by the statement that completes
    /// the key (a data-modifying CTE of its UPDATE), one round trip fewer than an insert of its
    /// own. The row commits with the work and the key, or not at all; a replay writes none.
    pub async fn run_audited<Req, Resp, E, F>(
        &self,
        key: IdempotencyKey,
        request: &Req,
        work: F,
    ) -> Result<Resp, E>
    where
        Req: Message,
        Resp: Message + Default,
        E: From<IdempotencyError>,
        F: AsyncFnOnce(&mut PgConnection) -> Result<(Resp, Option<AuditEvent>), E>,
    {
        let fingerprint = fingerprint(request);

        // No read before the transaction: replays are rare, and the claim below tells a replay,
        // a reuse of the id and a call still running apart in the same round trips.
        let mut tx = self.pool.begin().await.map_err(IdempotencyError::from)?;
        match self.claim(&mut tx, &key, &fingerprint).await {
            Ok(Claim::Owned) => {}
            Ok(Claim::Replay(body)) => {
                rollback(tx).await;
                return replay(&key, &body).map_err(E::from);
            }
            Err(error) => {
                rollback(tx).await;
                return Err(refuse(&key, error));
            }
        }

        let (response, event) = match work(&mut tx).await {
            Ok(done) => done,
            Err(error) => {
                rollback(tx).await;
                count(&key, "failed");
                return Err(error);
            }
        };

        let mut completion = QueryBuilder::new("");
        if let Some(event) = &event {
            completion.push("WITH audit AS (");
            audit::push_insert(&mut completion, event);
            completion.push(") ");
        }
        completion
            .push("UPDATE idempotency_keys SET state = 'completed', response_code = 0, response_body = ")
            .push_bind(response.encode_to_vec())
            .push(" WHERE actor_id = ")
            .push_bind(key.actor_id)
            .push(" AND method = ")
            .push_bind(key.method)
            .push(" AND request_id = ")
            .push_bind(key.request_id)
            .push(" AND state = 'in_flight'");
        let completed = completion
            .build()
            .execute(&mut *tx)
            .await
            .map_err(IdempotencyError::from)?;
        // The row was inserted or locked by this transaction: nobody else can have changed it.
        if completed.rows_affected() != 1 {
            return Err(IdempotencyError::Database(sqlx::Error::RowNotFound).into());
        }
        tx.commit().await.map_err(IdempotencyError::from)?;
        count(&key, "executed");
        Ok(response)
    }

    /// Takes the key for this transaction: the advisory lock, then the row (inserted as
    /// `in_flight`, or an expired/stale row reset to it). A key another call holds is judged
    /// by its committed row: a completed one is replayed (or refused as a reuse of the id)
    /// whoever holds the lock, and only a call still running answers ABORTED.
    async fn claim(
        &self,
        conn: &mut PgConnection,
        key: &IdempotencyKey,
        fingerprint: &[u8],
    ) -> Result<Claim, IdempotencyError> {
        // The advisory lock, the insert of the key (only when the lock was taken) and the row
        // as committed before this statement, in one round trip.
        let first: FirstClaim = sqlx::query_as(
            "WITH lock AS (
                 SELECT pg_try_advisory_xact_lock($6) AS locked
                 FROM set_config('idle_in_transaction_session_timeout', $7, true)),
             claimed AS (
                 INSERT INTO idempotency_keys
                   (actor_id, method, request_id, fingerprint, state, created_at, expires_at)
                 SELECT $1, $2, $3, $4, 'in_flight', now(), now() + $5::interval
                 FROM lock WHERE locked
                 ON CONFLICT (actor_id, method, request_id) DO NOTHING
                 RETURNING 1)
             SELECT lock.locked, EXISTS (SELECT 1 FROM claimed) AS inserted,
                    k.fingerprint, k.state, k.response_body,
                    k.expires_at <= now() AS expired,
                    k.created_at <= now() - $8::interval AS stale
             FROM lock LEFT JOIN idempotency_keys k
               ON k.actor_id = $1 AND k.method = $2 AND k.request_id = $3",
        )
        .bind(key.actor_id)
        .bind(key.method)
        .bind(key.request_id)
        .bind(fingerprint)
        .bind(self.ttl)
        .bind(key.lock_id())
        .bind(format!("{}ms", self.stale_after.as_millis()))
        .bind(self.stale_after)
        .fetch_one(&mut *conn)
        .await?;
        if first.inserted {
            return Ok(Claim::Owned);
        }
        let locked = first.locked;
        let verdict = first.stored().map(|stored| stored.judge(fingerprint));
        match (locked, verdict) {
            (_, Some(Verdict::Replay(body))) => Ok(Claim::Replay(body)),
            (_, Some(Verdict::Mismatch)) => Err(IdempotencyError::Mismatch),
            // Another call holds the key and nothing completed is committed: it is running.
            (false, _) | (true, Some(Verdict::InProgress)) => Err(IdempotencyError::InProgress),
            // Ours to take over, or committed since this statement's snapshot: decided again
            // on the locked row.
            (true, Some(Verdict::Claimable) | None) => {
                self.claim_locked(conn, key, fingerprint).await
            }
        }
    }

    /// [`claim`](Self::claim) once the advisory lock is held and the row exists: judged on the
    /// locked row, and taken over when expired or stale. Under the lock only the purge can
    /// touch the row, so the loop runs once in practice.
    async fn claim_locked(
        &self,
        conn: &mut PgConnection,
        key: &IdempotencyKey,
        fingerprint: &[u8],
    ) -> Result<Claim, IdempotencyError> {
        for attempt in 0..CLAIM_ATTEMPTS {
            if attempt > 0 {
                let again = sqlx::query(
                    "INSERT INTO idempotency_keys
                       (actor_id, method, request_id, fingerprint, state, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, 'in_flight', now(), now() + $5::interval)
                     ON CONFLICT (actor_id, method, request_id) DO NOTHING",
                )
                .bind(key.actor_id)
                .bind(key.method)
                .bind(key.request_id)
                .bind(fingerprint)
                .bind(self.ttl)
                .execute(&mut *conn)
                .await?;
                if again.rows_affected() == 1 {
                    return Ok(Claim::Owned);
                }
            }

            let existing: Option<StoredKey> = sqlx::query_as(&format!("{SELECT_KEY} FOR UPDATE"))
                .bind(key.actor_id)
                .bind(key.method)
                .bind(key.request_id)
                .bind(self.stale_after)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(existing) = existing else {
                continue; // purged meanwhile
            };
            return match existing.judge(fingerprint) {
                Verdict::Replay(body) => Ok(Claim::Replay(body)),
                Verdict::Mismatch => Err(IdempotencyError::Mismatch),
                Verdict::InProgress => Err(IdempotencyError::InProgress),
                Verdict::Claimable => {
                    tracing::info!(
                        method = key.method,
                        request_id = %key.request_id,
                        "taking over an expired or stale idempotency key"
                    );
                    sqlx::query(
                        "UPDATE idempotency_keys
                         SET fingerprint = $4, state = 'in_flight', response_code = NULL,
                             response_body = NULL, created_at = now(),
                             expires_at = now() + $5::interval
                         WHERE actor_id = $1 AND method = $2 AND request_id = $3",
                    )
                    .bind(key.actor_id)
                    .bind(key.method)
                    .bind(key.request_id)
                    .bind(fingerprint)
                    .bind(self.ttl)
                    .execute(&mut *conn)
                    .await?;
                    Ok(Claim::Owned)
                }
            };
        }
        Err(IdempotencyError::InProgress)
    }

    /// Runs [`purge_expired`](Self::purge_expired) at once, then every `every`, until
    /// `shutdown`. Every replica runs it: `SKIP LOCKED` makes concurrent purges share the rows
    /// instead of waiting on each other.
    pub async fn run_purge(self, shutdown: CancellationToken, every: Duration) {
        let schedule = crate::jobs::Schedule::every(every);
        crate::jobs::run_every(shutdown, schedule, "idempotency_purge", || {
            self.purge_expired(PURGE_BATCH)
        })
        .await;
    }

    /// Deletes expired keys, `batch` rows per statement (short locks, skipping rows a call
    /// holds), until none is left; returns how many were deleted.
    pub async fn purge_expired(&self, batch: i64) -> Result<u64, sqlx::Error> {
        crate::db::delete_in_batches(batch, async |limit| {
            let done = sqlx::query(
                "DELETE FROM idempotency_keys
                 WHERE (actor_id, method, request_id) IN (
                     SELECT actor_id, method, request_id FROM idempotency_keys
                     WHERE expires_at <= now()
                     ORDER BY expires_at
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED)",
            )
            .bind(limit)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

/// SHA-256 of the request as prost encodes it (fields in number order, defaults left out), so
/// the same message always has the same fingerprint whatever bytes the client sent.
fn fingerprint(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

fn replay<Resp: Message + Default>(
    key: &IdempotencyKey,
    body: &[u8],
) -> Result<Resp, IdempotencyError> {
    let response = Resp::decode(body)
        .map_err(|e| IdempotencyError::Database(sqlx::Error::Decode(e.into())))?;
    tracing::debug!(method = key.method, request_id = %key.request_id, "idempotent replay");
    count(key, "replayed");
    Ok(response)
}

fn refuse<E: From<IdempotencyError>>(key: &IdempotencyKey, error: IdempotencyError) -> E {
    match &error {
        IdempotencyError::Mismatch => count(key, "mismatch"),
        IdempotencyError::InProgress => count(key, "in_progress"),
        IdempotencyError::Database(_) => {}
    }
    error.into()
}

fn count(key: &IdempotencyKey, outcome: &'static str) {
    metrics::counter!(IDEMPOTENT_CALLS, "method" => key.method, "outcome" => outcome).increment(1);
}

/// Best effort: if the rollback cannot be sent, the connection is dropped and PostgreSQL rolls
/// back when it goes away.
async fn rollback(tx: sqlx::Transaction<'static, sqlx::Postgres>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rollback of an idempotent call failed");
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::api::error::ApiError;

    const METHOD: &str = "/akig.v1.CollectionsService/RecordPayment";
    const OTHER_METHOD: &str = "/akig.v1.CollectionsService/RecordPromise";

    /// The test's error type: what a handler's error would be.
    #[derive(Debug)]
    enum TestError {
        Idempotency(IdempotencyError),
        Work(&'static str),
    }

    impl From<IdempotencyError> for TestError {
        fn from(error: IdempotencyError) -> Self {
            Self::Idempotency(error)
        }
    }

    impl From<sqlx::Error> for TestError {
        fn from(error: sqlx::Error) -> Self {
            Self::Idempotency(error.into())
        }
    }

    fn idempotency(pool: &PgPool) -> Idempotency {
        Idempotency::with_defaults(pool.clone())
    }

    fn key(actor_id: Uuid, method: &'static str, request_id: Uuid) -> IdempotencyKey {
        IdempotencyKey::new(actor_id, method, request_id)
    }

    fn request(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    fn response(seconds: i64) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos: 7 }
    }

    /// A real write, counted through `calls`.
    async fn audit(conn: &mut PgConnection, calls: &AtomicUsize) -> Result<(), sqlx::Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        sqlx::query("INSERT INTO audit_log (action, outcome) VALUES ('test', 'ok')")
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn audit_rows(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    async fn key_rows(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// One call whose work writes an audit row and answers `response(answer)`.
    async fn call(
        idem: &Idempotency,
        key: IdempotencyKey,
        req: &prost_types::Timestamp,
        calls: &AtomicUsize,
        answer: i64,
    ) -> Result<prost_types::Duration, TestError> {
        idem.run(key, req, async |conn: &mut PgConnection| {
            audit(conn, calls).await?;
            Ok(response(answer))
        })
        .await
    }

    /// A pool of ten connections, for calls that overlap.
    async fn ten_connections(db: &TestDb) -> PgPool {
        PgPoolOptions::new()
            .max_connections(10)
            .connect_with(db.connect_options())
            .await
            .unwrap()
    }

    async fn insert_key(pool: &PgPool, key: IdempotencyKey, fingerprint: &[u8], sql_rest: &str) {
        sqlx::query(&format!(
            "INSERT INTO idempotency_keys
               (actor_id, method, request_id, fingerprint,
                state, created_at, expires_at, response_code, response_body)
             VALUES ($1, $2, $3, $4, {sql_rest})"
        ))
        .bind(key.actor_id)
        .bind(key.method)
        .bind(key.request_id)
        .bind(fingerprint)
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn replay_returns_the_first_response_without_running_again() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        let first = call(&idem, key, &request(1), &calls, 100).await.unwrap();
        assert_eq!(first, response(100));
        // The replay's work would answer something else: it must not run.
        let again = call(&idem, key, &request(1), &calls, 200).await.unwrap();
        assert_eq!(again, response(100));

        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(audit_rows(&pool).await, 1);
        let (state, code): (String, i32) = sqlx::query_as(
            "SELECT state, response_code FROM idempotency_keys
             WHERE expires_at >= now() + interval '29 days'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((state.as_str(), code), ("completed", 0));
    }

    #[tokio::test]
    async fn same_request_id_with_another_request_is_refused() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        call(&idem, key, &request(1), &calls, 100).await.unwrap();

        let refused = call(&idem, key, &request(2), &calls, 200).await;
        assert!(matches!(
            refused,
            Err(TestError::Idempotency(IdempotencyError::Mismatch))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(audit_rows(&pool).await, 1);
        assert_eq!(key_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn keys_are_scoped_to_actor_and_method() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let (alice, bob, request_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

        let a = call(
            &idem,
            key(alice, METHOD, request_id),
            &request(1),
            &calls,
            1,
        )
        .await;
        assert_eq!(a.unwrap(), response(1));
        let b = call(&idem, key(bob, METHOD, request_id), &request(2), &calls, 2).await;
        assert_eq!(b.unwrap(), response(2));
        let c = call(
            &idem,
            key(alice, OTHER_METHOD, request_id),
            &request(3),
            &calls,
            3,
        )
        .await;
        assert_eq!(c.unwrap(), response(3));

        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(audit_rows(&pool).await, 3);
        assert_eq!(key_rows(&pool).await, 3);
    }

    #[tokio::test]
    async fn failed_work_is_not_remembered_and_can_be_retried() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        let failed: Result<prost_types::Duration, TestError> = idem
            .run(key, &request(1), async |conn: &mut PgConnection| {
                audit(conn, &calls).await?;
                Err(TestError::Work("tenant not found"))
            })
            .await;
        assert!(matches!(failed, Err(TestError::Work("tenant not found"))));
        assert_eq!(audit_rows(&pool).await, 0, "the work's write rolled back");
        assert_eq!(key_rows(&pool).await, 0, "no key left behind");

        let retried = call(&idem, key, &request(1), &calls, 5).await.unwrap();
        assert_eq!(retried, response(5));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(audit_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_dropped_call_frees_its_key_at_once() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        // The client hangs up (or the deadline passes) while the work runs.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(200),
            idem.run(key, &request(1), async |conn: &mut PgConnection| {
                audit(conn, &calls).await?;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, TestError>(response(1))
            }),
        )
        .await;
        assert!(cancelled.is_err());

        // The rollback of the dropped transaction is sent when its connection goes back to the
        // pool, in a spawned task: until then the retry may be told to wait, never longer.
        let mut answer = None;
        for _ in 0..50 {
            match call(&idem, key, &request(1), &calls, 2).await {
                Ok(response) => {
                    answer = Some(response);
                    break;
                }
                Err(TestError::Idempotency(IdempotencyError::InProgress)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answer, Some(response(2)));
        assert_eq!(
            audit_rows(&pool).await,
            1,
            "only the retry's write committed"
        );
    }

    #[tokio::test]
    async fn a_call_whose_server_goes_silent_loses_its_key_after_the_staleness_bound() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = Idempotency::new(pool.clone(), DEFAULT_TTL, Duration::from_millis(300));
        let calls = Arc::new(AtomicUsize::new(0));
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        // A call that stops talking to PostgreSQL mid-transaction (a hung or cut-off server).
        let silent = tokio::spawn({
            let (idem, calls) = (idem.clone(), calls.clone());
            async move {
                idem.run(key, &request(1), async |conn: &mut PgConnection| {
                    audit(conn, &calls).await?;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    audit(conn, &calls).await?;
                    Ok::<_, TestError>(response(1))
                })
                .await
            }
        });

        let started = std::time::Instant::now();
        let answer = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match call(&idem, key, &request(1), &calls, 2).await {
                Ok(answer) => break answer,
                Err(TestError::Idempotency(IdempotencyError::InProgress)) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(4),
                        "key never freed"
                    );
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(answer, response(2));
        assert!(
            silent.await.unwrap().is_err(),
            "PostgreSQL ended the silent call"
        );
        // Counted on a fresh connection: the pool may still hold the one PostgreSQL closed.
        let mut fresh = <PgConnection as sqlx::Connection>::connect_with(&pool.connect_options())
            .await
            .unwrap();
        let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(&mut fresh)
            .await
            .unwrap();
        assert_eq!(committed, 1, "only the retry's write committed");
    }

    #[tokio::test]
    async fn work_may_use_savepoints() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        let answer = idem
            .run(key, &request(1), async |conn: &mut PgConnection| {
                let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
                let refused =
                    sqlx::query("INSERT INTO audit_log (action, outcome) VALUES ('t', '?')")
                        .execute(&mut *savepoint)
                        .await;
                assert!(refused.is_err());
                savepoint.rollback().await?;
                audit(conn, &calls).await?;
                Ok::<_, TestError>(response(1))
            })
            .await
            .unwrap();
        assert_eq!(answer, response(1));
        assert_eq!(audit_rows(&pool).await, 1);
        assert_eq!(key_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn concurrent_duplicates_run_the_work_once() {
        let db = TestDb::new().await;
        let pool = ten_connections(&db).await;
        let idem = idempotency(&pool);
        let calls = Arc::new(AtomicUsize::new(0));
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());

        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (idem, calls) = (idem.clone(), calls.clone());
                tokio::spawn(async move {
                    idem.run(key, &request(9), async |conn: &mut PgConnection| {
                        audit(conn, &calls).await?;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, TestError>(response(i))
                    })
                    .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        let mut in_progress = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(answer) => answers.push(answer),
                Err(TestError::Idempotency(IdempotencyError::InProgress)) => in_progress += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }

        assert_eq!(calls.load(Ordering::SeqCst), 1, "work ran once");
        assert_eq!(audit_rows(&pool).await, 1);
        assert!(!answers.is_empty());
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert!(in_progress > 0, "the duplicates overlapped the first call");
        assert_eq!(answers.len() + in_progress, 50);

        let replay = idem
            .run(key, &request(9), async |_: &mut PgConnection| {
                Err::<prost_types::Duration, _>(TestError::Work("must not run"))
            })
            .await
            .unwrap();
        assert_eq!(replay, answers[0]);
    }

    #[tokio::test]
    async fn simultaneous_replays_of_a_completed_call_get_its_answer() {
        let db = TestDb::new().await;
        let pool = ten_connections(&db).await;
        let idem = idempotency(&pool);
        let calls = Arc::new(AtomicUsize::new(0));
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        let first = call(&idem, key, &request(9), &calls, 1).await.unwrap();

        // 30 replays and 30 reuses of the id with another body, all at once.
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let (idem, calls) = (idem.clone(), calls.clone());
                let body = if i % 2 == 0 { 9 } else { 10 };
                tokio::spawn(async move { call(&idem, key, &request(body), &calls, 2).await })
            })
            .collect();
        let (mut replayed, mut refused) = (0, 0);
        for (i, task) in tasks.into_iter().enumerate() {
            match (i % 2, task.await.unwrap()) {
                (0, Ok(answer)) => {
                    assert_eq!(answer, first);
                    replayed += 1;
                }
                (1, Err(TestError::Idempotency(IdempotencyError::Mismatch))) => refused += 1,
                (_, other) => panic!("call {i}: unexpected {other:?}"),
            }
        }
        assert_eq!((replayed, refused), (30, 30));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the work ran once");
        assert_eq!(audit_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_stale_in_flight_key_is_taken_over_and_a_fresh_one_is_not() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let req = request(1);
        let stale = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        let fresh = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        insert_key(
            &pool,
            stale,
            &fingerprint(&req),
            "'in_flight', now() - interval '10 minutes', now() + interval '30 days', NULL, NULL",
        )
        .await;
        insert_key(
            &pool,
            fresh,
            &fingerprint(&req),
            "'in_flight', now() - interval '5 seconds', now() + interval '30 days', NULL, NULL",
        )
        .await;

        let taken = call(&idem, stale, &req, &calls, 3).await.unwrap();
        assert_eq!(taken, response(3));
        let state: String = sqlx::query_scalar(
            "SELECT state FROM idempotency_keys WHERE request_id = $1 AND created_at > now() - interval '1 minute'",
        )
        .bind(stale.request_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(state, "completed");

        let waiting = call(&idem, fresh, &req, &calls, 4).await;
        assert!(matches!(
            waiting,
            Err(TestError::Idempotency(IdempotencyError::InProgress))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(audit_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn an_expired_key_counts_as_absent() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let calls = AtomicUsize::new(0);
        let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        // Completed long ago for another request: neither replayed nor a mismatch any more.
        insert_key(
            &pool,
            key,
            &fingerprint(&request(1)),
            "'completed', now() - interval '40 days', now() - interval '10 days', 0, ''",
        )
        .await;

        let answer = call(&idem, key, &request(2), &calls, 8).await.unwrap();
        assert_eq!(answer, response(8));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = call(&idem, key, &request(2), &calls, 9).await.unwrap();
        assert_eq!(again, response(8));
        assert_eq!(key_rows(&pool).await, 1);
    }

    #[tokio::test]
    async fn purge_removes_only_expired_keys() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        for _ in 0..5 {
            let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
            let rest =
                "'in_flight', now() - interval '31 days', now() - interval '1 day', NULL, NULL";
            insert_key(&pool, key, b"x", rest).await;
        }
        for _ in 0..3 {
            let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
            let rest =
                "'in_flight', now() - interval '1 day', now() + interval '29 days', NULL, NULL";
            insert_key(&pool, key, b"x", rest).await;
        }

        assert_eq!(idem.purge_expired(2).await.unwrap(), 5);
        assert_eq!(key_rows(&pool).await, 3);
        let expired: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE expires_at <= now()")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(expired, 0);
        assert_eq!(idem.purge_expired(100).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_purge_job_deletes_expired_keys_until_shut_down() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let idem = idempotency(&pool);
        let add_key = async |rest: &str| {
            let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
            insert_key(&pool, key, b"x", rest).await;
        };
        let expired = "'completed', now() - interval '31 days', now() - interval '1 day', 0, ''";
        add_key(expired).await;
        add_key("'completed', now(), now() + interval '30 days', 0, ''").await;

        let shutdown = CancellationToken::new();
        let job = tokio::spawn(
            idem.clone()
                .run_purge(shutdown.clone(), Duration::from_millis(20)),
        );
        // A key found expired after the first run goes at a later one.
        tokio::time::sleep(Duration::from_millis(50)).await;
        add_key(expired).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while key_rows(&pool).await > 1 {
            assert!(tokio::time::Instant::now() < deadline, "expired keys left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), job)
            .await
            .expect("the job stops when shut down")
            .expect("the job does not panic");
        assert_eq!(key_rows(&pool).await, 1, "the live key stays");
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = Uuid::new_v4();
        assert_eq!(parse_request_id(&id.to_string()), Ok(id));
        assert_eq!(parse_request_id(&id.to_string().to_uppercase()), Ok(id));
        assert_eq!(parse_request_id(" "), Err(RequestIdError::Missing));
        assert_eq!(parse_request_id("12345"), Err(RequestIdError::Malformed));
        assert_eq!(
            parse_request_id("00000000-0000-0000-0000-000000000000"),
            Err(RequestIdError::Malformed)
        );
    }

    #[test]
    fn fingerprints_and_lock_ids_depend_on_what_they_should() {
        assert_eq!(fingerprint(&request(1)), fingerprint(&request(1)));
        assert_ne!(fingerprint(&request(1)), fingerprint(&request(2)));
        let k = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
        assert_eq!(k.lock_id(), k.lock_id());
        assert_ne!(
            k.lock_id(),
            IdempotencyKey {
                method: OTHER_METHOD,
                ..k
            }
            .lock_id()
        );
    }

    /// Handlers run under `#[tonic::async_trait]`, whose futures must be `Send`: a `run` whose
    /// work borrows the handler's state and request must be too.
    #[allow(dead_code)]
    fn handler_futures_are_send<'a>(
        idem: &'a Idempotency,
        req: &'a prost_types::Timestamp,
        calls: &'a AtomicUsize,
    ) -> Pin<Box<dyn Future<Output = Result<prost_types::Duration, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let key = key(Uuid::new_v4(), METHOD, Uuid::new_v4());
            idem.run(key, req, async |conn: &mut PgConnection| {
                audit(conn, calls).await?;
                Ok(response(req.seconds))
            })
            .await
        })
    }
}
