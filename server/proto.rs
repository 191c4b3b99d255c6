//! Generated protobuf and gRPC code for `akig.v1`, plus the descriptor set used by reflection.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("akig.v1");
}

/// Encoded `FileDescriptorSet` of every file under `proto/`, for gRPC server reflection and for
/// walking the API's methods (streaming or unary, permission table coverage).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/akig_descriptor.bin"));
