//! Sets the demo federation up on this machine: the PKI made with `passerelle pki`'s library, a
//! config file per daemon, and every daemon running in this process on free loopback ports.
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

use super::cast::{CONSOLIDATION, CONSOLIDATION_NETWORK, Cast, NETWORKS, STRUCTURES};

/// Days the demo's certificates are valid: enough for a demo kept with `--data-dir`.
const CERT_DAYS: u32 = 90;

/// The demo's certificate authorities, as production runs them: one CA per network, which issues
/// its hub's certificate and its member structures' nodes', and one for the state, which issues
/// the consolidation hub's and its analyst's. Each hub says in `[[hub.trust]]` which CA vouches
/// for which roles, so no network can mint another's hub, nodes or operators.
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Creates the CAs in `dir/ca-NETWORK`, or reuses those a previous run made. Returns whether
    /// any was created.
    pub(crate) fn open_or_create(dir: &Path) -> anyhow::Result<(Self, bool)> {
        let pki = Self { dir: dir.to_path_buf() };
        let mut created = false;
        for network in Self::networks() {
            let ca_dir = pki.ca_dir(network);
            if !ca_dir.join("ca.pem").exists() {
                pki::init(network, &ca_dir).with_context(|| format!("creating the CA of {network}"))?;
                created = true;
            }
        }
        Ok((pki, created))
    }

    /// The state's network, then every network's.
    pub(crate) fn networks() -> impl Iterator<Item = &'static str> {
        std::iter::once(CONSOLIDATION_NETWORK).chain(NETWORKS.iter().map(|(_, network)| *network))
    }

    fn ca_dir(&self, network: &str) -> PathBuf {
        self.dir.join(format!("ca-{network}"))
    }

    /// The CA certificate of `network`.
    pub(crate) fn ca_pem(&self, network: &str) -> PathBuf {
        self.ca_dir(network).join("ca.pem")
    }

    /// The certificate of `role`/`id` issued by `network`'s CA, in `dir/NETWORK/ROLE-ID/`, issued
    /// on first use. Its `ca` is that CA (to verify a hub of the same network).
    pub(crate) fn issue(&self, network: &str, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let out = self.dir.join(network).join(format!("{role}-{id}"));
        let cert = out.join(format!("{role}.pem"));
        let key = out.join(format!("{role}.key"));
        if !cert.exists() {
            pki::issue(&self.ca_dir(network), &IssueRequest::new(PeerId::new(role, id)?, CERT_DAYS), &out)
                .with_context(|| format!("issuing the certificate of {role} {id} ({network})"))?;
        }
        Ok(TlsFiles { ca: self.ca_pem(network), cert, key })
    }

    /// One PEM file with the CAs of `networks`, for a node that verifies hubs of several networks.
    fn bundle(&self, networks: &[&str]) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(format!("ca-bundle-{}.pem", networks.join("+")));
        let mut pem = String::new();
        for network in networks {
            let ca = self.ca_pem(network);
            pem.push_str(&std::fs::read_to_string(&ca).with_context(|| format!("reading {}", ca.display()))?);
        }
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
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
        // The consolidation hub: its own (state) CA for its operators and analysts, each network's
        // CA for that network's hub only.
        let mut trust = vec![Anchor::new(pki, CONSOLIDATION_NETWORK, &["hub", "consumer", "operator"])];
        trust.extend(NETWORKS.iter().map(|(_, network)| Anchor::new(pki, network, &["hub"])));
        let consolidation = Running::start(
            CONSOLIDATION,
            write_hub_config(
                dir,
                &pki.issue(CONSOLIDATION_NETWORK, Role::Hub, CONSOLIDATION)?,
                CONSOLIDATION,
                CONSOLIDATION_NETWORK,
                &trust,
                "min_persons = 11",
                "",
            )?,
        )
        .await?;
        let upstream = format!(
            "\n[[upstream]]\nid = \"{CONSOLIDATION}\"\nendpoint = \"{}\"\nca = \"{}\"\n",
            consolidation.hub_endpoint()?,
            pki.ca_pem(CONSOLIDATION_NETWORK).display()
        );
        let mut networks = Vec::new();
        for (id, network) in NETWORKS {
            // A network hub: its own CA for every role; the other networks' CAs for the nodes of
            // the structures that belong to both.
            let mut trust = vec![Anchor::new(pki, network, &["node", "hub", "consumer", "operator"])];
            trust.extend(
                NETWORKS
                    .iter()
                    .filter(|(_, other)| *other != network)
                    .map(|(_, other)| Anchor::new(pki, other, &["node"])),
            );
            let files = pki.issue(network, Role::Hub, id)?;
            let config = write_hub_config(dir, &files, id, network, &trust, "k_anonymity = 5", &upstream)?;
            networks.push(Running::start(id, config).await?);
        }
        let mut nodes = Vec::new();
        for cast in &STRUCTURES {
            let hubs: Vec<(&str, &str, &str)> = cast
                .hubs
                .iter()
                .map(|id| {
                    let index = NETWORKS.iter().position(|(n, _)| n == id).context("unknown hub")?;
                    Ok((*id, NETWORKS[index].1, networks[index].hub_endpoint()?))
                })
                .collect::<anyhow::Result<_>>()?;
            let config = write_node_config(dir, pki, cast, &hubs)?;
            nodes.push(Running::start(cast.name, config).await?);
        }
        let consumer = pki.issue(CONSOLIDATION_NETWORK, Role::Consumer, "dreets-52-etudes")?;
        Ok(Self { consolidation, networks, nodes, consumer })
    }

    /// Stops every daemon, nodes first so that nothing is left half-pushed.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        for running in self.nodes.into_iter().chain(self.networks).chain([self.consolidation]) {
            running.stop().await?;
        }
        Ok(())
    }
}

/// A `[[hub.trust]]` anchor of a demo hub.
struct Anchor {
    ca: PathBuf,
    network: &'static str,
    roles: &'static [&'static str],
}

impl Anchor {
    fn new(pki: &Pki, network: &'static str, roles: &'static [&'static str]) -> Self {
        Self { ca: pki.ca_pem(network), network, roles }
    }
}

fn write_hub_config(
    dir: &Path,
    files: &TlsFiles,
    id: &str,
    network: &str,
    trust: &[Anchor],
    hub_extra: &str,
    tail: &str,
) -> anyhow::Result<PathBuf> {
    let home = dir.join(id);
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let mut anchors = String::new();
    for anchor in trust {
        let roles: Vec<String> = anchor.roles.iter().map(|r| format!("\"{r}\"")).collect();
        anchors.push_str(&format!(
            "\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"{}\"\nroles = [{}]\n",
            anchor.ca.display(),
            anchor.network,
            roles.join(", ")
        ));
    }
    let text = format!(
        "# Written by `passerelled demo`: {id}, a hub of région Pays de la Loire.\n\
         data_dir = \"data\"\n\n\
         [hub]\nid = \"{id}\"\nnetwork = \"{network}\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n\
         # The demo accepts members as they come; in production leave this off and run\n\
         # `passerelle hub accept SIRET` for each structure.\nauto_accept = true\n{hub_extra}\n\n\
         [hub.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         # Which CA vouches for which network and roles here.{anchors}\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n{tail}",
        files.cert.display(),
        files.key.display(),
    );
    let path = home.join("hub.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A node's config: its certificate from the CA of its first network (the others' hubs trust that
/// CA for nodes), and the CAs of all its hubs' networks to verify them.
fn write_node_config(
    dir: &Path,
    pki: &Pki,
    cast: &Cast,
    hubs: &[(&str, &str, &str)],
) -> anyhow::Result<PathBuf> {
    let networks: Vec<&str> = hubs.iter().map(|(_, network, _)| *network).collect();
    let home_network = networks.first().context("a structure belongs to a network")?;
    let files = pki.issue(home_network, Role::Node, cast.siret)?;
    let ca = pki.bundle(&networks)?;
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
        ca.display(),
        files.cert.display(),
        files.key.display()
    );
    for (id, _, endpoint) in hubs {
        text.push_str(&format!(
            "\n[[hubs]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\nshare = [\"needs\", \"indicators\", \"profiles\"]\n"
        ));
    }
    let path = home.join("node.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
