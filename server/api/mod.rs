//! gRPC services, one module per service: each turns protobuf into domain types, checks the
//! caller's scope and calls the domain and store layers. RPCs whose feature has not landed yet
//! answer UNIMPLEMENTED (the generated default); README lists the live ones.

pub mod auth;
pub mod collections;
pub mod convert;
pub mod dashboard;
pub mod error;
pub mod geo;
pub mod missions;
pub mod paging;
pub mod parse;
pub mod write;

pub use auth::AuthApi;
pub use collections::CollectionsApi;
pub use dashboard::DashboardApi;
pub use geo::GeoApi;
pub use missions::MissionsApi;

/// Fully-qualified names of the five `akig.v1` services, as health and reflection report them.
pub const SERVICE_NAMES: [&str; 5] = [
    "akig.v1.AuthService",
    "akig.v1.CollectionsService",
    "akig.v1.MissionsService",
    "akig.v1.GeoService",
    "akig.v1.DashboardService",
];
