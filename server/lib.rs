//! AKIG: gRPC backend of the rent-collection (recouvrement) operations.
//!
//! The crate's documentation is for the people who work on it: module docs link to private
//! items, so build it with `cargo doc --no-deps --document-private-items` (CI checks that it
//! builds without warnings).

#![allow(rustdoc::private_intra_doc_links)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod client_ip;
pub mod codec;
pub mod config;
pub mod db;
pub mod domain;
pub mod geo;
pub mod idempotency;
pub mod jobs;
pub mod layers;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod proto;
pub mod redis;
pub mod seed;
pub mod setting;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub mod testing;
