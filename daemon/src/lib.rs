//! The Passerelle daemon as a library: a structure's **node** or a network **hub**.
//!
//! [`run`] is the whole daemon: tests start it in-process with listeners on `127.0.0.1:0` and a
//! temporary `data_dir`; `passerelled` (a thin `main.rs`) starts it from a config file with signal
//! handling. [`Daemon::open`] and [`Daemon::serve`] split it in two for callers that must know the
//! store is open before announcing readiness.
//!
//! Every listener goes through the same stack: the accept loop of [`tls::incoming`] (mutual TLS,
//! or plaintext on loopback for the local operator), hyper's HTTP/2 with our per-connection limits
//! ([`serve`]), then [`limits::MessageSizeLayer`] and [`authz::AuthzLayer`] before any handler.
#![forbid(unsafe_code)]

// Public: what `passerelled`, the demo and the tests crate use (config, a hub or node opened in
// process, TLS file and peer types). Everything else is the crate's own.
pub(crate) mod api;
pub(crate) mod authz;
pub mod config;
pub(crate) mod error;
pub(crate) mod gui;
pub mod hub;
pub(crate) mod limits;
pub use limits::raise_open_file_limit;
pub(crate) mod metrics;
pub mod node;
pub(crate) mod probes;
pub(crate) mod serve;
pub(crate) mod store;
pub(crate) mod sync;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use passerelle_proto::v1::hub_admin_server::HubAdminServer;
use passerelle_proto::v1::hub_sync_server::HubSyncServer;
use passerelle_proto::v1::statistics_service_server::StatisticsServiceServer;
use passerelle_proto::v1::structure_service_server::StructureServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tower::layer::util::{Identity, Stack};

pub use config::{Config, RoleConfig, ValidConfig};
pub use error::{Error, Result};

/// The services' full names (`package.Service`): the constants generated with the servers, which
/// their `NamedService::NAME` is; the role matrix in `authz` names them the same way.
const STRUCTURE_SERVICE: &str = passerelle_proto::v1::structure_service_server::SERVICE_NAME;
const HUB_SYNC: &str = passerelle_proto::v1::hub_sync_server::SERVICE_NAME;
const STATISTICS_SERVICE: &str = passerelle_proto::v1::statistics_service_server::SERVICE_NAME;
const HUB_ADMIN: &str = passerelle_proto::v1::hub_admin_server::SERVICE_NAME;

/// The sockets a daemon serves on, bound before it starts so callers know the addresses.
#[derive(Debug)]
pub struct Listeners {
    /// The local API (structure API on a node, operator API on a hub).
    pub api: TcpListener,
    /// The hub's mutual-TLS listener, on a hub.
    pub hub: Option<TcpListener>,
    /// The Prometheus metrics listener, when `[metrics]` is configured.
    pub metrics: Option<TcpListener>,
    /// The web console's listener, when `[gui]` is configured.
    pub gui: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses `config` names (port 0 picks a free port).
    pub async fn bind(config: &ValidConfig) -> Result<Self> {
        let api = bind(config.api.listen, "api.listen").await?;
        let hub = match config.hub() {
            Some(hub) => Some(bind(hub.listen, "hub.listen").await?),
            None => None,
        };
        let metrics = match config.metrics {
            Some(addr) => Some(bind(addr, "metrics.listen").await?),
            None => None,
        };
        let gui = match &config.gui {
            Some(gui) => Some(bind(gui.listen, "gui.listen").await?),
            None => None,
        };
        Ok(Self { api, hub, metrics, gui })
    }

    /// The bound address of the web console, when there is one.
    pub fn gui_addr(&self) -> Result<Option<SocketAddr>> {
        self.gui
            .as_ref()
            .map(|l| l.local_addr().map_err(|e| Error::io("reading the gui address", e)))
            .transpose()
    }

    /// The bound address of the metrics listener, when there is one.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(|l| l.local_addr().map_err(|e| Error::io("reading the metrics address", e)))
            .transpose()
    }

    /// The bound address of the local API.
    pub fn api_addr(&self) -> Result<SocketAddr> {
        self.api.local_addr().map_err(|e| Error::io("reading the api address", e))
    }

    /// The bound address of the hub listener, on a hub.
    pub fn hub_addr(&self) -> Result<Option<SocketAddr>> {
        self.hub
            .as_ref()
            .map(|l| l.local_addr().map_err(|e| Error::io("reading the hub address", e)))
            .transpose()
    }
}

async fn bind(addr: SocketAddr, field: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| Error::io(format!("binding {field} {addr}"), e))
}

/// Every listener's tower stack, outermost last: metrics, message size, authorization.
type Layers =
    Stack<authz::AuthzLayer, Stack<limits::MessageSizeLayer, Stack<metrics::RpcMetricsLayer, Identity>>>;

/// What a daemon runs.
#[derive(Debug, Clone)]
enum Role {
    Node(Arc<node::Node>, Arc<node::sync_engine::SyncEngine>),
    Hub(Arc<hub::Hub>),
}

/// A daemon whose store is open, ready to serve.
#[derive(Debug)]
pub struct Daemon {
    role: Role,
    config: ValidConfig,
    denied: tls::DenyList,
    /// Calls by method and code, for the metrics endpoint.
    rpc: Arc<metrics::RpcMetrics>,
}

impl Daemon {
    /// Opens the store described by `config` (blocking: run it off the async workers).
    pub fn open(config: ValidConfig) -> Result<Self> {
        let denied = tls::DenyList::default();
        let role = match &config.role {
            RoleConfig::Node(settings) => {
                let mut node = node::Node::open(&config.data_dir, settings.structure.clone())?;
                if let Some(files) = &settings.tls {
                    node = node.with_signer(tls::signing::RecordSigner::load(&files.cert, &files.key)?)?;
                }
                let node = Arc::new(node);
                tracing::info!(siret = %node.structure().siret, data_dir = %config.data_dir.display(), "node store open");
                let engine = node::sync_engine::SyncEngine::new(
                    node.clone(),
                    &settings.hubs,
                    settings.tls.clone(),
                    settings.introduction_retention,
                )?;
                Role::Node(node, engine)
            }
            RoleConfig::Hub(settings) => {
                let hub = hub::Hub::open(&config.data_dir, settings.clone(), denied.clone())?;
                tracing::info!(hub = %settings.id, data_dir = %config.data_dir.display(), "hub store open");
                Role::Hub(Arc::new(hub))
            }
        };
        Ok(Self { role, config, denied, rpc: Arc::default() })
    }

    /// The node's domain layer, on a node (for tests and tools in the same process).
    pub fn node(&self) -> Option<&Arc<node::Node>> {
        match &self.role {
            Role::Node(node, _) => Some(node),
            Role::Hub(_) => None,
        }
    }

    /// The hub, on a hub (for reloads on SIGHUP and for tests).
    pub fn hub(&self) -> Option<&Arc<hub::Hub>> {
        match &self.role {
            Role::Hub(hub) => Some(hub),
            Role::Node(..) => None,
        }
    }

    /// Serves on `listeners` until `shutdown` completes, then lets in-flight calls finish and
    /// syncs the store.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stop_rx_for_streams = stop_rx.clone();
        // Tasks that hold the store (sync, relays): waited for before the store is released.
        let mut background: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let limits = &self.config.limits;
        let max = limits.max_message_bytes;
        let api_policy = self.accept_policy(self.config.api.tls.as_ref())?;
        tracing::info!(addr = %listeners.api_addr()?, tls = api_policy.tls.is_some(), "api listening");
        let api = tls::incoming::serve_incoming(listeners.api, api_policy);
        let health = probes::Health::serving(self.service_names()).await;
        {
            // Probes see "not serving" as soon as shutdown starts, while in-flight calls finish.
            let health = health.clone();
            let stopping = stopped();
            tokio::spawn(async move {
                stopping.await;
                health.shutting_down().await;
            });
        }
        if let Some(listener) = listeners.metrics {
            let scrape = match &self.role {
                Role::Node(node, engine) => {
                    metrics::Scrape::node(self.rpc.clone(), node.clone(), engine.clone())
                }
                Role::Hub(hub) => metrics::Scrape::hub(self.rpc.clone(), hub.clone()),
            };
            tracing::info!(addr = %listener.local_addr().map_err(|e| Error::io("metrics address", e))?, "metrics listening (http)");
            background.push(tokio::spawn(metrics::serve(listener, scrape, stop_rx_for_streams.clone())));
        }
        match &self.role {
            Role::Node(node, engine) => {
                background.extend(engine.start(stop_rx_for_streams.clone()));
                if let (Some(listener), Some(settings)) = (listeners.gui, &self.config.gui) {
                    let addr = listener.local_addr().map_err(|e| Error::io("gui address", e))?;
                    let tls = gui::tls_acceptor(settings)?;
                    let console = Arc::new(gui::Gui::new(
                        gui::NodeConsole { node: node.clone(), sync: engine.clone() },
                        settings,
                        addr,
                    ));
                    tracing::info!(%addr, tls = tls.is_some(), "gui listening");
                    background.push(tokio::spawn(gui::serve(
                        listener,
                        console,
                        tls,
                        stop_rx_for_streams.clone(),
                    )));
                }
                let routes = health.add_to(
                    Routes::new(
                        StructureServiceServer::new(api::StructureApi::new(node.clone(), engine.clone()))
                            .max_decoding_message_size(max),
                    ),
                    &self.service_names(),
                )?;
                serve::serve(routes, self.layers(), api, self.serve_settings(), stopped()).await;
            }
            Role::Hub(hub) => {
                let settings =
                    self.config.hub().ok_or_else(|| Error::Config("hub settings missing".into()))?;
                let hub_listener =
                    listeners.hub.ok_or_else(|| Error::Config("hub listener missing".into()))?;
                let hub_policy = self.accept_policy(Some(&settings.tls))?;
                tracing::info!(addr = %hub_listener.local_addr().map_err(|e| Error::io("hub address", e))?, "hub listening (mutual tls)");
                let hub_incoming = tls::incoming::serve_incoming(hub_listener, hub_policy);
                let service =
                    api::HubApi::new(hub.clone(), self.config.source.clone(), stop_rx_for_streams.clone());
                background.push(hub::daily::start(hub.clone(), stop_rx_for_streams.clone()));
                background.extend(hub::periods::start(hub.clone(), stop_rx_for_streams.clone()));
                background.extend(hub::relay::start(
                    hub.clone(),
                    settings.upstreams.clone(),
                    stop_rx_for_streams.clone(),
                ));
                if let (Some(listener), Some(settings)) = (listeners.gui, &self.config.gui) {
                    let addr = listener.local_addr().map_err(|e| Error::io("gui address", e))?;
                    let tls = gui::tls_acceptor(settings)?;
                    let console =
                        Arc::new(gui::Gui::new(gui::HubConsole { hub: hub.clone() }, settings, addr));
                    tracing::info!(%addr, tls = tls.is_some(), "gui listening");
                    background.push(tokio::spawn(gui::serve(
                        listener,
                        console,
                        tls,
                        stop_rx_for_streams.clone(),
                    )));
                }
                let admin = || HubAdminServer::new(service.clone()).max_decoding_message_size(max);
                let public = health.add_to(
                    Routes::new(HubSyncServer::new(service.clone()).max_decoding_message_size(max))
                        .add_service(
                            StatisticsServiceServer::new(service.clone()).max_decoding_message_size(max),
                        )
                        .add_service(admin()),
                    &self.service_names(),
                )?;
                let operator = health.add_to(Routes::new(admin()), &[HUB_ADMIN])?;
                let settings = self.serve_settings();
                tokio::join!(
                    serve::serve(public, self.layers(), hub_incoming, settings, stopped()),
                    serve::serve(operator, self.layers(), api, settings, stopped()),
                );
            }
        }
        // The servers are done; the background tasks saw the same signal. Wait for them, so that
        // when `serve` returns nothing uses the store any more (a restart can open it at once).
        for task in background {
            if tokio::time::timeout(std::time::Duration::from_secs(10), task).await.is_err() {
                tracing::warn!("a background task did not stop within 10 s");
            }
        }
        // Stream handlers (push sessions, view subscriptions) end on the same signal but on their
        // own tasks: wait, bounded, until this is the last reference to the store's owner.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.owners() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let role = self.role.clone();
        tokio::task::spawn_blocking(move || match role {
            Role::Node(node, _) => node.sync(),
            Role::Hub(hub) => hub.sync(),
        })
        .await??;
        tracing::info!("stopped cleanly");
        Ok(())
    }

    /// How many handles share the node or hub beyond this daemon's own (and, on a node, its
    /// sync engine's, which lives as long as the daemon).
    fn owners(&self) -> usize {
        match &self.role {
            Role::Node(node, _) => Arc::strong_count(node) - 1,
            Role::Hub(hub) => Arc::strong_count(hub),
        }
    }

    /// The gRPC services this daemon serves, as health checking names them.
    fn service_names(&self) -> Vec<&'static str> {
        match &self.role {
            Role::Node(..) => vec![STRUCTURE_SERVICE],
            Role::Hub(_) => vec![HUB_SYNC, STATISTICS_SERVICE, HUB_ADMIN],
        }
    }

    /// This daemon's per-call stack: metrics outermost, so refused and oversized calls are
    /// counted too; then the message size limit; then authorization.
    fn layers(&self) -> Layers {
        tower::ServiceBuilder::new()
            .layer(metrics::RpcMetricsLayer::new(self.rpc.clone()))
            .layer(limits::MessageSizeLayer::new(self.config.limits.max_message_bytes))
            .layer(authz::AuthzLayer::new(self.denied.clone()))
            .into_inner()
    }

    /// Per-connection limits from `[limits]`. Each call gets its own `rpc` span (in `serve`), so
    /// every log line of a call carries its method and, once authorization recorded it, its caller.
    fn serve_settings(&self) -> serve::ServeSettings {
        let limits = &self.config.limits;
        serve::ServeSettings {
            request_timeout: limits.request_timeout,
            max_concurrent_streams: u32::try_from(limits.max_concurrent_calls_per_connection)
                .unwrap_or(u32::MAX),
            idle_timeout: limits.idle_timeout,
        }
    }

    fn accept_policy(&self, tls_files: Option<&tls::ServerTlsFiles>) -> Result<tls::incoming::AcceptPolicy> {
        let tls = tls_files.map(|files| tls::server_config(files, self.denied.clone())).transpose()?;
        Ok(tls::incoming::AcceptPolicy {
            tls,
            max_connections: self.config.limits.max_connections,
            max_connections_per_peer: self.config.limits.max_connections_per_peer,
            max_handshakes: self.config.limits.max_handshakes,
            handshake_timeout: self.config.limits.handshake_timeout,
        })
    }
}

/// Runs a daemon: opens its store, serves on `listeners` until `shutdown` completes.
pub async fn run(
    config: ValidConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(config)).await??;
    daemon.serve(listeners, shutdown).await
}
