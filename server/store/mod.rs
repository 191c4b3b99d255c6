//! SQL, one module per aggregate. Runtime-checked queries; every one is exercised by the
//! integration tests against real PostgreSQL.

pub mod audit;
pub mod sessions;
pub mod users;
