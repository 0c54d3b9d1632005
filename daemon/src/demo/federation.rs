//! Sets the demo federation up on this machine: one PKI made with `passerelle pki`'s library,
//! a config file per daemon, and every daemon running in this process on free loopback ports.
//!
//! A second run on the same `--data-dir` keeps the PKI and the stores and rewrites the configs
//! (the ports are new on every run).

use std::path::{Path, PathBuf};

use anyhow::Context;
use passerelle_client::TlsFiles;
use passerelle_client::pki::{self, IssueRequest};
use passerelle_daemon::{Config, Daemon, Listeners};
use passerelle_proto::identity::{PeerId, Role};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::cast::{CONSOLIDATION, Cast, NETWORKS, STRUCTURES};

/// Days the demo's certificates are valid: enough for a demo kept with `--data-dir`.
const CERT_DAYS: u32 = 90;

/// The demo's certificate authority: one CA for the whole région, as a regional trust operator
/// would run it (see ARCHITECTURE.md for a federation with one CA per network).
pub(crate) struct Pki {
    ca_dir: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// Creates the CA in `dir/ca`, or reuses the one a previous run made.
    pub(crate) fn open_or_create(dir: &Path) -> anyhow::Result<(Self, bool)> {
        let ca_dir = dir.join("ca");
        let created = !ca_dir.join("ca.pem").exists();
        if created {
            pki::init("pdl-52", &ca_dir).context("creating the demo CA")?;
        }
        Ok((Self { ca_dir, dir: dir.to_path_buf() }, created))
    }

    /// The certificate of `role`/`id` in `dir/ROLE-ID/`, issued on first use.
    pub(crate) fn issue(&self, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let out = self.dir.join(format!("{role}-{id}"));
        let cert = out.join(format!("{role}.pem"));
        let key = out.join(format!("{role}.key"));
        if !cert.exists() {
            pki::issue(&self.ca_dir, &IssueRequest::new(PeerId::new(role, id)?, CERT_DAYS), &out)
                .with_context(|| format!("issuing the certificate of {role} {id}"))?;
        }
        Ok(TlsFiles { ca: self.ca_dir.join("ca.pem"), cert, key })
    }
}

/// One daemon running in this process.
pub(crate) struct Running {
    /// The hub id or the structure's name.
    pub(crate) name: String,
    /// Its config file.
    pub(crate) config: PathBuf,
    /// `http://127.0.0.1:PORT`: the node's API or the hub's operator API (plaintext, loopback).
    pub(crate) api: String,
    /// `https://localhost:PORT`: the hub's mutual-TLS listener, on a hub.
    pub(crate) hub: Option<String>,
    /// `http://127.0.0.1:PORT/metrics`: its Prometheus metrics.
    pub(crate) metrics: Option<String>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<passerelle_daemon::Result<()>>,
}

impl Running {
    /// Starts the daemon a config file describes.
    async fn start(name: &str, config_path: PathBuf) -> anyhow::Result<Self> {
        let config = Config::load(&config_path)?;
        let listeners = Listeners::bind(&config).await?;
        let api = format!("http://{}", listeners.api_addr()?);
        let hub = listeners.hub_addr()?.map(|a| format!("https://localhost:{}", a.port()));
        let metrics = listeners.metrics_addr()?.map(|a| format!("http://{a}/metrics"));
        let daemon = tokio::task::spawn_blocking(move || Daemon::open(config))
            .await?
            .with_context(|| format!("opening {name}'s store"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.serve(listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self { name: name.to_string(), config: config_path, api, hub, metrics, stop, task })
    }

    /// Stops gracefully and waits until the store is closed.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?.with_context(|| format!("stopping {}", self.name))
    }

    /// The hub listener's endpoint (hubs only).
    pub(crate) fn hub_endpoint(&self) -> anyhow::Result<&str> {
        self.hub.as_deref().with_context(|| format!("{} is not a hub", self.name))
    }
}

/// The running federation.
pub(crate) struct Federation {
    /// The consolidation hub.
    pub(crate) consolidation: Running,
    /// The network hubs, in the order of [`NETWORKS`].
    pub(crate) networks: Vec<Running>,
    /// The structures' nodes, in the order of [`STRUCTURES`].
    pub(crate) nodes: Vec<Running>,
    /// The state analyst's consumer certificate.
    pub(crate) consumer: TlsFiles,
}

impl Federation {
    /// Issues what is missing, writes the configs and starts every daemon: the consolidation hub
    /// first, then the network hubs that relay to it, then the structures' nodes.
    pub(crate) async fn start(dir: &Path, pki: &Pki) -> anyhow::Result<Self> {
        let consolidation = Running::start(
            CONSOLIDATION,
            write_hub_config(dir, pki, CONSOLIDATION, "consolidation", "min_persons = 11", "")?,
        )
        .await?;
        let upstream = format!(
            "\n[[upstream]]\nid = \"{CONSOLIDATION}\"\nendpoint = \"{}\"\nca = \"{}\"\n",
            consolidation.hub_endpoint()?,
            pki.issue(Role::Hub, CONSOLIDATION)?.ca.display()
        );
        let mut networks = Vec::new();
        for (id, network) in NETWORKS {
            let config = write_hub_config(dir, pki, id, network, "k_anonymity = 5", &upstream)?;
            networks.push(Running::start(id, config).await?);
        }
        let mut nodes = Vec::new();
        for cast in &STRUCTURES {
            let hubs: Vec<(&str, &str)> = cast
                .hubs
                .iter()
                .map(|id| {
                    let index = NETWORKS.iter().position(|(n, _)| n == id).context("unknown hub")?;
                    Ok((*id, networks[index].hub_endpoint()?))
                })
                .collect::<anyhow::Result<_>>()?;
            let config = write_node_config(dir, pki, cast, &hubs)?;
            nodes.push(Running::start(cast.name, config).await?);
        }
        Ok(Self { consolidation, networks, nodes, consumer: pki.issue(Role::Consumer, "dreets-52-etudes")? })
    }

    /// Stops every daemon, nodes first so that nothing is left half-pushed.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        for running in self.nodes.into_iter().chain(self.networks).chain([self.consolidation]) {
            running.stop().await?;
        }
        Ok(())
    }
}

fn write_hub_config(
    dir: &Path,
    pki: &Pki,
    id: &str,
    network: &str,
    hub_extra: &str,
    tail: &str,
) -> anyhow::Result<PathBuf> {
    let files = pki.issue(Role::Hub, id)?;
    let home = dir.join(id);
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let text = format!(
        "# Written by `passerelled demo`: {id}, a hub of région Pays de la Loire.\n\
         data_dir = \"data\"\n\n\
         [hub]\nid = \"{id}\"\nnetwork = \"{network}\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n\
         # The demo accepts members as they come; in production leave this off and run\n\
         # `passerelle hub accept SIRET` for each structure.\nauto_accept = true\n{hub_extra}\n\n\
         [hub.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_cas = [\"{}\"]\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n{tail}",
        files.cert.display(),
        files.key.display(),
        files.ca.display()
    );
    let path = home.join("hub.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn write_node_config(dir: &Path, pki: &Pki, cast: &Cast, hubs: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let files = pki.issue(Role::Node, cast.siret)?;
    let home = dir.join(format!("node-{}", cast.siret));
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let mut text = format!(
        "# Written by `passerelled demo`: the node of {}.\n\
         data_dir = \"data\"\n\n\
         [node]\nsiret = \"{}\"\nkind = \"{}\"\nname = \"{}\"\ndepartement = \"{}\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cast.name,
        cast.siret,
        cast.kind,
        cast.name,
        cast.departement,
        files.ca.display(),
        files.cert.display(),
        files.key.display()
    );
    for (id, endpoint) in hubs {
        text.push_str(&format!(
            "\n[[hubs]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\nshare = [\"needs\", \"indicators\", \"profiles\"]\n"
        ));
    }
    let path = home.join("node.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
