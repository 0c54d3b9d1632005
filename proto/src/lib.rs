//! Passerelle wire protocol v1.
//!
//! This crate is the single source of truth shared by the daemon and the client:
//! - [`v1`]: the prost messages and tonic stubs generated from `proto/passerelle/v1/*.proto`;
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC server reflection;
//! - [`validate`]: the domain rules every wire value must satisfy (SIRET, ROME, départements…),
//!   checked at the edge by the daemon and, for early feedback, by the client;
//! - [`codes`]: the stable lowercase slugs of the protocol's enums (`cddi`, `garde-enfants`…),
//!   used by the CLI, the config files and JSON output;
//! - [`date`]: the small civil-calendar arithmetic the rules need;
//! - [`periods`]: when a month's reports are due (Europe/Paris), for hubs and nodes alike;
//! - [`identity`]: who a peer is (`passerelle://ROLE/ID` in its certificate).
#![forbid(unsafe_code)]

pub mod codec;
pub mod codes;
pub mod datasets;
pub mod date;
pub mod geo;
pub mod identity;
pub mod periods;
pub mod rome;
pub mod signed;
pub mod validate;

/// Generated code for the `passerelle.v1` package.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("passerelle.v1");
}

/// The encoded `FileDescriptorSet` of every Passerelle proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/passerelle_descriptor.bin"));
