//! Integration tests: the real server on a free port, a fresh PostgreSQL database per test
//! (`#[sqlx::test]`), real Redis, and real tonic / HTTP clients.

mod cache;
mod grpc_web;
mod health;
mod helpers;
mod migrations;
mod reflection;
mod seed;
mod shutdown;
