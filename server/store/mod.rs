//! SQL, one module per aggregate. Runtime-checked queries; every one is exercised by the
//! integration tests against real PostgreSQL.

pub mod audit;
pub mod interactions;
pub mod locations;
pub mod payments;
pub mod promises;
pub mod sessions;
pub mod stats;
pub mod tenants;
pub mod users;
