//! A typed client for a Passerelle node, and the building blocks of the `passerelle` CLI.
//!
//! [`NodeClient`] wraps the generated tonic stub with one method per RPC, taking and returning the
//! protocol's types, and turns connection failures into [`Error::Unreachable`] so every caller
//! reports "cannot reach node at URL" the same way.
#![forbid(unsafe_code)]

mod error;
mod node_client;
pub mod pki;

pub use error::{Error, Result};
pub use node_client::{CALL_TIMEOUT, CONNECT_TIMEOUT, NodeClient};
