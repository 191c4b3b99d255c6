//! PostgreSQL pool and migrations, and the schema check of `akig serve`.
//!
//! Decisions:
//! - A server never serves on a schema older than its migrations: every call would fail.
//!   At start, a database that answers with missing migrations is refused with what to run
//!   (`akig migrate`), unless `--migrate` (`AKIG_MIGRATE=true`) asks to apply them then
//!   ([`check_schema_at_start`]). While the database is unreachable the server starts anyway,
//!   NOT_SERVING, and says why; the health probe checks the schema again before SERVING.
//! - A schema *newer* than the binary (a newer replica migrated first, in a rolling update) is
//!   served with a warning: migrations only add.
//! - JIT compilation is off on every connection of the server and the commands ([`session_options`]):
//!   this is short-statement OLTP, where compiling costs more than it saves (65–195 ms added to a
//!   single statement on a 100,000-tenant dataset, for statements that run in 1–5 ms). Set per
//!   connection rather than per database so that no deployment step can forget it.
//! - A pooled connection is pinged before use only when it sat idle [`PING_IF_IDLE_FOR`] or
//!   longer (sqlx pings every connection it hands out by default). A ping is a round trip,
//!   and sqlx already pings each connection when it comes back to the pool; under load a
//!   connection is back in use within milliseconds, and two pings per call cost a write as
//!   much server time as its statements (a profile of RecordVisit at 32 callers: 17 % of the
//!   server's CPU in the acquire ping). A connection that died within that second (a
//!   PostgreSQL restart) fails its call with UNAVAILABLE (`store::StoreError::Unavailable`,
//!   the client retries) and fails the release ping, which drops it.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Validated database settings (`DATABASE_URL`, `AKIG_DB_*`; read by `crate::config`).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub connect_options: PgConnectOptions,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The session settings of every connection: `jit = off` (see the module documentation).
pub fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    options.options([("jit", "off")])
}

/// How long a pooled connection may sit idle and still be handed out without a ping first.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool's settings: size, acquire timeout, and a ping before use only for a connection
/// idle [`PING_IF_IDLE_FOR`] or longer (see the module's decisions).
fn pool_options(config: &DatabaseConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// A pool that connects on first use, so the server starts (and reports NOT_SERVING) while
/// PostgreSQL is still down.
pub fn lazy_pool(config: &DatabaseConfig) -> PgPool {
    pool_options(config).connect_lazy_with(session_options(config.connect_options.clone()))
}

/// Connects now, failing with the cause when PostgreSQL cannot be reached.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    pool_options(config)
        .connect_with(session_options(config.connect_options.clone()))
        .await
}

/// How the database's applied migrations (`_sqlx_migrations`) compare with [`MIGRATOR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of the binary is applied, and no other.
    Current,
    /// Migrations of the binary are not applied: `pending` of them, the first `first_pending`.
    Behind { pending: usize, first_pending: i64 },
    /// Migrations unknown to the binary are applied (a newer version migrated the database).
    Ahead { unknown: usize },
}

impl SchemaState {
    /// The error of a server that must not start on this schema, if it must not.
    pub fn refusal(&self) -> Option<String> {
        match self {
            SchemaState::Behind {
                pending,
                first_pending,
            } => Some(format!(
                "the database schema is not up to date: {pending} migration(s) of this binary \
                 not applied (the first: {first_pending}). Run `akig migrate` with the same \
                 DATABASE_URL, or start the server with --migrate (AKIG_MIGRATE=true)"
            )),
            _ => None,
        }
    }
}

/// Compares the migrations applied to the database with those embedded in the binary.
/// Errors are PostgreSQL's (unreachable, refused login, ...).
pub async fn schema_state(pool: &PgPool) -> Result<SchemaState, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(compare_migrations(
        MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version),
        &applied,
    ))
}

fn compare_migrations(known: impl Iterator<Item = i64>, applied: &[i64]) -> SchemaState {
    let known: std::collections::BTreeSet<i64> = known.collect();
    let applied: std::collections::BTreeSet<i64> = applied.iter().copied().collect();
    let mut pending = known.difference(&applied);
    if let Some(first_pending) = pending.next() {
        return SchemaState::Behind {
            pending: 1 + pending.count(),
            first_pending: *first_pending,
        };
    }
    match applied.difference(&known).count() {
        0 => SchemaState::Current,
        unknown => SchemaState::Ahead { unknown },
    }
}

/// How long the start-up check waits for the database before starting NOT_SERVING.
const START_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The schema check of `akig serve`: an out-of-date schema is an error (or is migrated when
/// `migrate`); an unreachable database is logged — where, and why — and the server starts
/// NOT_SERVING.
pub async fn check_schema_at_start(
    pool: &PgPool,
    config: &DatabaseConfig,
    migrate: bool,
) -> anyhow::Result<()> {
    let host = config.connect_options.get_host().to_owned();
    let port = config.connect_options.get_port();
    let database = config
        .connect_options
        .get_database()
        .unwrap_or("")
        .to_owned();
    let state = match tokio::time::timeout(START_CHECK_TIMEOUT, schema_state(pool)).await {
        Ok(Ok(state)) => state,
        Ok(Err(error)) => {
            tracing::error!(
                host, port, database, error = %error,
                "database unreachable at start: serving NOT_SERVING (calls answer UNAVAILABLE) \
                 until it answers"
            );
            return Ok(());
        }
        Err(_) => {
            tracing::error!(
                host, port, database, timeout = ?START_CHECK_TIMEOUT,
                "database did not answer at start: serving NOT_SERVING (calls answer \
                 UNAVAILABLE) until it answers"
            );
            return Ok(());
        }
    };
    match state {
        SchemaState::Current => Ok(()),
        SchemaState::Ahead { unknown } => {
            tracing::warn!(
                unknown,
                "the database has migrations this binary does not know (a newer version \
                 migrated it); serving"
            );
            Ok(())
        }
        SchemaState::Behind { pending, .. } if migrate => {
            tracing::info!(pending, "applying migrations (--migrate)");
            MIGRATOR.run(pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        behind => Err(anyhow::anyhow!("{}", behind.refusal().unwrap_or_default())),
    }
}

/// True when PostgreSQL answers a trivial query within `timeout`.
pub async fn ping(pool: &PgPool, timeout: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
}

/// Runs `delete_batch` (one statement deleting at most `batch` rows, answering how many it
/// deleted) until a run deletes fewer, so that each statement holds its locks briefly however
/// large the backlog; answers the total. A `batch` of 0 or less deletes nothing.
pub async fn delete_in_batches<F, Fut>(batch: i64, mut delete_batch: F) -> Result<u64, sqlx::Error>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    if batch <= 0 {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let deleted = delete_batch(batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_migrations_are_compared_with_the_binarys() {
        let known = || [1_i64, 2, 3].into_iter();
        assert_eq!(
            compare_migrations(known(), &[1, 2, 3]),
            SchemaState::Current
        );
        assert_eq!(
            compare_migrations(known(), &[]),
            SchemaState::Behind {
                pending: 3,
                first_pending: 1
            }
        );
        assert_eq!(
            compare_migrations(known(), &[1]),
            SchemaState::Behind {
                pending: 2,
                first_pending: 2
            }
        );
        assert_eq!(
            compare_migrations(known(), &[1, 2, 3, 4]),
            SchemaState::Ahead { unknown: 1 }
        );
        let refusal = compare_migrations(known(), &[]).refusal().expect("refused");
        assert!(refusal.contains("akig migrate"), "{refusal}");
        assert!(refusal.contains("AKIG_MIGRATE"), "{refusal}");
        assert_eq!(SchemaState::Current.refusal(), None);
    }
}
