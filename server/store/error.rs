//! The store's one error type: what a database error means to the callers, decided here, at
//! the store's edge (ADR 0003): the named constraints the callers act on, a missing reference,
//! a database out of reach, or a fault of ours.

/// A named constraint a caller acts on when a write violates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// `payments_request_id_key`: the request_id of the client's action is stored already
    /// (a concurrent call of another user, or a retry after its idempotency key expired).
    PaymentRequestId,
    /// `payments_reverses_payment_id_key`: the payment is reversed already.
    PaymentReversed,
}

impl Constraint {
    /// Every constraint this type names.
    pub const ALL: [Constraint; 2] = [Constraint::PaymentRequestId, Constraint::PaymentReversed];

    /// The constraint's (or unique index's) name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Constraint::PaymentRequestId => "payments_request_id_key",
            Constraint::PaymentReversed => "payments_reverses_payment_id_key",
        }
    }

    fn named(name: &str) -> Option<Constraint> {
        Constraint::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write hit a named unique constraint the callers handle.
    #[error("conflict on {}", .0.name())]
    Conflict(Constraint),
    /// Another unique constraint: what the write would create exists already.
    #[error("already exists")]
    Duplicate(#[source] sqlx::Error),
    /// A foreign key names a row that does not exist.
    #[error("referenced object not found")]
    MissingReference(#[source] sqlx::Error),
    /// The database is out of reach ([`is_outage`]): worth a retry shortly.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a schema mismatch (a row that does not decode).
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

/// Whether `error` says the database is out of reach rather than that the call is wrong: a
/// lost or refused connection, the server shutting down, starting or out of connections
/// (SQLSTATE class 08 `connection_exception`, 57P01 `admin_shutdown`, 57P02 `crash_shutdown`,
/// 57P03 `cannot_connect_now`, 53300 `too_many_connections`: PostgreSQL documentation, appendix
/// A "PostgreSQL Error Codes"), the pool timed out or closed. Such a call rolled back and is
/// safe to retry. The one test of outage in the crate: the API's mapping and the jobs use it.
pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_outage(&error) {
            return Self::Unavailable(error);
        }
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                match db.constraint().and_then(Constraint::named) {
                    Some(constraint) => Self::Conflict(constraint),
                    None => Self::Duplicate(error),
                }
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::MissingReference(error)
            }
            _ => Self::Other(error),
        }
    }
}

/// Decodes a column value read as text into a domain type (for rows that cannot use
/// `#[sqlx(try_from = "String")]`): a value the type does not know is a decode error.
pub(crate) fn decode<T>(value: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .map_err(|error| StoreError::Other(sqlx::Error::Decode(Box::new(error))))
}

/// The result of a store function.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn pool_and_network_failures_are_unavailable() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(io)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
        for constraint in Constraint::ALL {
            assert_eq!(Constraint::named(constraint.name()), Some(constraint));
        }
        assert_eq!(Constraint::named("users_username_key"), None);
    }

    /// Every constraint the store names exists in the schema, as a constraint or a unique
    /// index, so a renamed one cannot silently stop being recognised.
    #[tokio::test]
    async fn named_constraints_exist() {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        for constraint in Constraint::ALL {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)
                     OR EXISTS (SELECT 1 FROM pg_indexes i JOIN pg_index x
                                  ON x.indexrelid = (quote_ident(i.schemaname) || '.'
                                                     || quote_ident(i.indexname))::regclass
                                WHERE i.indexname = $1 AND x.indisunique)",
            )
            .bind(constraint.name())
            .fetch_one(&pool)
            .await
            .expect("catalogue");
            assert!(exists, "{} is not in the schema", constraint.name());
        }
    }
}
