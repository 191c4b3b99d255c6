//! Geography services that are neither protobuf nor SQL: the route search runner (blocking
//! pool, per-process cap, cancellation) and the route settings.

pub mod config;
pub mod search;

pub use config::{RouteArgs, RouteConfig};
pub use search::Searches;
