//! The Passerelle daemon as a library.
//!
//! [`run`] is the whole daemon: tests start it in-process on `127.0.0.1:0` with a temporary
//! `data_dir`, and `passerelled` (a thin `main.rs`) starts it from a config file with signal
//! handling. [`Daemon::open`] and [`Daemon::serve`] split it in two for callers that need to know
//! the store is open before announcing readiness.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod error;
pub mod node;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use passerelle_proto::v1::structure_service_server::StructureServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use config::{Config, ValidConfig};
pub use error::{Error, Result};

/// A daemon whose store is open, ready to serve.
#[derive(Debug)]
pub struct Daemon {
    node: Arc<node::Node>,
}

impl Daemon {
    /// Opens the store described by `config` (blocking: run it off the async workers).
    pub fn open(config: &ValidConfig) -> Result<Self> {
        let node = node::Node::open(&config.data_dir, config.structure.clone())?;
        tracing::info!(
            siret = %node.structure().siret,
            data_dir = %config.data_dir.display(),
            "store open"
        );
        Ok(Self { node: Arc::new(node) })
    }

    /// The node's domain layer (for tests and tools in the same process).
    pub fn node(&self) -> &Arc<node::Node> {
        &self.node
    }

    /// Serves the local API on `listener` until `shutdown` completes, then lets in-flight calls
    /// finish and syncs the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(|e| Error::io("reading the listener address", e))?;
        tracing::info!(%addr, "local api listening");
        tonic::transport::Server::builder()
            .add_service(StructureServiceServer::new(api::StructureApi::new(self.node.clone())))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await?;
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.sync()).await??;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Runs a daemon: opens its store, serves on `listener` until `shutdown` completes.
pub async fn run(
    config: ValidConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(&config)).await??;
    daemon.serve(listener, shutdown).await
}
