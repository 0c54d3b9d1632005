//! The gRPC surface of the daemon: one module per daemon kind, all thin.
//!
//! Handlers only move values between the wire and the domain layer ([`crate::node::Node`]); they
//! run the domain's blocking, fsyncing calls on tokio's blocking pool so the async workers keep
//! serving other connections.

mod hub;
mod structure;
mod view_stream;

pub(crate) use hub::HubApi;
pub(crate) use structure::StructureApi;

use tonic::{Response, Status};

use crate::error::{Error, Result};

/// Runs a blocking domain call off the async workers and maps its outcome to a gRPC response.
async fn blocking<T, F>(call: F) -> Result<Response<T>, Status>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let outcome = tokio::task::spawn_blocking(call).await.map_err(Error::from)?;
    outcome.map(Response::new).map_err(Status::from)
}
