//! The gRPC edge: generated protobuf types, wire <-> domain conversion (once,
//! here), the one place `tonic::Status` is built, and the service handlers.

/// Generated protobuf and tonic code for `callguard.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("callguard.v1");

    /// Encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/callguard_descriptor.bin"));
}

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod client;
pub mod codec;
pub mod convert;
pub mod ingest;
pub mod status;
