//! AKIG: gRPC backend of the rent-collection (recouvrement) operations.

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod layers;
pub mod proto;
pub mod seed;
pub mod startup;
pub mod telemetry;
