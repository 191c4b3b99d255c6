//! Background jobs that keep derived data in step with the ledger. Each runs in every replica
//! and takes a PostgreSQL advisory lock, so the work is done once however many replicas run.

pub mod promises;
