//! Integration tests: the real server on a free port, a fresh PostgreSQL database per test
//! (`#[sqlx::test]`), real Redis, and real tonic / HTTP clients.

mod auth;
mod cache;
mod daily_stats;
mod fixtures;
mod grpc_web;
mod health;
mod helpers;
mod interactions;
mod migrations;
mod payments;
mod promises;
mod rate_limit;
mod rbac;
mod reflection;
mod seed;
mod shutdown;
mod tenants;
