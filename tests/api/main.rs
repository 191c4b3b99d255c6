//! Integration tests: the real server on a free port, a fresh PostgreSQL database per test
//! ([`support::TestDb`]), real Redis, and real tonic / HTTP clients. See [`support`].

mod support;

mod agent_performance;
mod alerts;
mod auth;
mod cache;
mod cancellation;
mod daily_report;
mod daily_stats;
mod dashboard;
mod dashboard_site;
mod dashboard_summary;
mod edges;
mod fuzz;
mod grpc_web;
mod health;
mod instances;
mod interactions;
mod ledger;
mod markers;
mod metrics;
mod migrations;
mod mission_push;
mod missions;
mod monitoring;
mod payments;
mod performance;
mod positions;
mod promises;
mod rate_limit;
mod rbac;
mod read_models;
mod recipes;
mod reflection;
mod routes;
mod search;
mod seed;
mod shutdown;
mod tenants;
mod watch;
