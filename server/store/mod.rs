//! SQL, one module per aggregate. Runtime-checked queries; every one is exercised by the
//! integration tests against real PostgreSQL.
//!
//! Decisions:
//! - Rows are decoded into domain types at this edge (`#[sqlx(try_from = "String")]` for the
//!   closed vocabularies of `domain`, `text` for the nullable ones): callers never compare
//!   column strings.
//! - Database errors become [`StoreError`] here, named constraints included (ADR 0003); the
//!   API maps a `StoreError` to a status in one place.
//! - One function per question, whoever asks it: one tenant lock ([`tenants::lock`]), one
//!   mission lookup ([`missions::link`]), one score writer ([`scores::add`]).

pub mod agents;
pub mod alerts;
pub mod arrivals;
pub mod audit;
pub mod charges;
pub mod dashboard;
pub mod error;
pub mod gauges;
pub mod interactions;
pub mod locations;
pub mod markers;
pub mod missions;
pub mod payments;
pub mod positions;
pub mod promises;
pub mod replicas;
pub mod scores;
pub mod sessions;
pub mod site_facts;
pub mod sites;
pub mod stats;
pub mod tenant_search;
pub mod tenants;
mod text;
pub mod users;

pub use error::{Constraint, StoreError};

use sqlx::{PgPool, Postgres, Transaction};

/// A read-only transaction on one snapshot (REPEATABLE READ), for the several queries of one
/// read: a tenant card's balance, last interaction and pending promise agree with each other.
/// One statement, one round trip.
pub async fn begin_read(pool: &PgPool) -> error::Result<Transaction<'static, Postgres>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?)
}

/// Cuts `rows`, read with a limit of `page_size + 1`, to one page; answers whether more rows
/// follow (the last row kept is then where the next page starts).
pub fn one_page<T>(rows: &mut Vec<T>, page_size: i64) -> bool {
    let size = usize::try_from(page_size).unwrap_or(usize::MAX);
    let more = rows.len() > size;
    rows.truncate(size);
    more
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_page_cuts_the_extra_row() {
        let mut rows = vec![1, 2, 3];
        assert!(super::one_page(&mut rows, 2));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert!(!super::one_page(&mut rows, 2));
        assert_eq!(rows, [1, 2]);
    }
}
