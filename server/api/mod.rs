//! gRPC services, one module per service: each turns protobuf into domain types, checks the
//! caller's scope and calls the domain and store layers. RPCs whose feature has not landed yet
//! answer UNIMPLEMENTED (the generated default); README lists the live ones.

pub mod auth;
pub mod cached;
pub mod collections;
pub mod convert;
pub mod dashboard;
pub mod error;
pub mod geo;
pub mod missions;
pub mod paging;
pub mod parse;
pub mod streams;
pub mod views;
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use crate::proto::FILE_DESCRIPTOR_SET;

    /// The idempotency-key methods of the services whose modules have no such test of their
    /// own are RPCs of the descriptor set.
    #[test]
    fn mutating_rpc_paths_are_rpcs() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("set");
        let rpcs: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
            .flat_map(|(package, s)| {
                s.method
                    .iter()
                    .map(move |m| format!("/{package}.{}/{}", s.name(), m.name()))
            })
            .collect();
        for path in [
            super::dashboard::rpc::ACKNOWLEDGE_ALERT,
            super::missions::rpc::GENERATE_MISSIONS,
            super::missions::rpc::UPDATE_MISSION,
        ] {
            assert!(rpcs.iter().any(|rpc| rpc == path), "{path} is not an RPC");
        }
    }
}
