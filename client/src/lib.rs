//! Typed clients for Passerelle nodes and hubs, the network PKI, and the building blocks of the
//! `passerelle` CLI.
//!
//! [`NodeClient`] and [`HubClient`] wrap the generated tonic stubs with one method per RPC, taking
//! and returning the protocol's types, and turn connection failures into [`Error::Unreachable`] so
//! every caller reports "cannot reach node at URL" the same way. [`connect`] speaks plaintext to
//! `http://` endpoints and mutual TLS to `https://` ones.
#![forbid(unsafe_code)]

mod channel;
mod error;
mod hub_client;
pub mod import;
mod node_client;
pub mod pki;
pub mod text;

pub use channel::{CALL_TIMEOUT, CONNECT_TIMEOUT, TlsFiles, connect};
pub use error::{Error, Result, chain};
pub use hub_client::HubClient;
pub use node_client::NodeClient;
