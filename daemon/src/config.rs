//! The daemon's configuration file (TOML), parsed strictly and validated with precise messages.
//!
//! One file describes one daemon: a structure's **node** (a `[node]` section) or a network **hub**
//! (a `[hub]` section), never both. Unknown keys are errors (`deny_unknown_fields`), so a typo never
//! silently falls back to a default. Validation errors name the file, the line and the field, e.g.
//! `node.toml:4: node.siret "123": expected 14 digits`. Relative paths are resolved against the
//! directory of the configuration file, so a config, its certificates and its data move together.
//! Certificate and key files are read during validation, so `check-config` reports a missing file
//! or a key that does not match its certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_client::TlsFiles;
use passerelle_proto::codes::Code;
use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::{Role, normalize_serial};
use passerelle_proto::v1::{Structure, StructureKind};
use passerelle_proto::validate::{self, FieldError};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::limits::DEFAULT_MAX_MESSAGE_BYTES;
use crate::tls::{self, ServerTlsFiles, TrustAnchor};

/// Where the local API listens when the config does not say.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7401";

/// A daemon's configuration, as written in its TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding the daemon's database. Created if missing.
    pub data_dir: Spanned<PathBuf>,
    /// Present on a structure's node: the structure's identity.
    pub node: Option<NodeSection>,
    /// Present on a network hub: the hub's identity and its TLS listener.
    pub hub: Option<HubSection>,
    /// The local API: the structure API on a node, the operator API on a hub.
    #[serde(default)]
    pub api: ApiSection,
    /// On a node: the certificate it presents to hubs and the CAs it trusts for them.
    pub tls: Option<ClientTlsSection>,
    /// On a node: the hubs it syncs with and what it shares with each.
    #[serde(default)]
    pub hubs: Vec<HubLinkSection>,
    /// On a hub: the consolidation hubs it relays its members' indicator reports and needs to.
    #[serde(default)]
    pub upstream: Vec<UpstreamSection>,
    /// Limits against abuse, for every listener.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Prometheus metrics over plain HTTP, off unless this section is present.
    pub metrics: Option<MetricsSection>,
    /// On a hub: when monthly reports are due and when a month closes.
    pub periods: Option<PeriodsSection>,
    /// On a hub: how published statistics are protected.
    pub statistics: Option<StatisticsSection>,
    /// The web console (a node's for the structure's staff, a hub's for the network's staff and
    /// analysts), off unless this section is present.
    pub gui: Option<GuiSection>,
}

/// `[gui]`: the web console, served over HTTP(S) to a structure's staff (node) or a network's
/// staff and analysts (hub).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuiSection {
    /// Address to listen on, e.g. `127.0.0.1:8384`. Port 0 picks a free port. Without
    /// `[gui.tls]` it must be a loopback address (passwords and personal data cross it).
    pub listen: Spanned<String>,
    /// Further `Host` headers accepted, as the browser sends them (`console.example.org:8384`);
    /// the listen address is always accepted (and `localhost:PORT` on loopback). Any other is
    /// refused, against DNS rebinding.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Serve the console over HTTPS (required off loopback).
    pub tls: Option<GuiTlsSection>,
}

/// `[gui.tls]`: the console's HTTPS certificate (browsers present no client certificate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuiTlsSection {
    /// Certificate chain, PEM.
    pub cert: Spanned<PathBuf>,
    /// Private key, PEM.
    pub key: Spanned<PathBuf>,
}

/// `[statistics]` (hubs): the protection published tables give withheld values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsSection {
    /// An attacker solving every published table together must not narrow a withheld value `v`
    /// to less than `[v × (1 − p), v × (1 + p)]`, `p` this percentage (default 15, 5 to 50):
    /// the audit of complementary suppression checks it at every closing.
    #[serde(default = "default_protection_percent")]
    pub protection_percent: Spanned<u32>,
}

fn default_protection_percent() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_PROTECTION_PERCENT)
}

/// Default of [`StatisticsSection::protection_percent`].
pub const DEFAULT_PROTECTION_PERCENT: u32 = 15;

/// `[periods]` (hubs): due dates of monthly reports and the closing of months.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodsSection {
    /// A month's reports are due on this day of the following month, Europe/Paris (1 to 28,
    /// default 15), so every month has the day.
    #[serde(default = "default_deadline_day")]
    pub deadline_day: Spanned<u32>,
    /// `deadline` (default): a month closes at the end of its due date, Europe/Paris;
    /// `manual`: only `passerelle hub period close` closes it.
    #[serde(default = "default_close")]
    pub close: Spanned<String>,
    /// A month whose due date had passed when the hub received its first report for it (a
    /// backlog) closes this many days after that report instead (default 7, 1 to 365).
    #[serde(default = "default_history_grace_days")]
    pub history_grace_days: Spanned<u32>,
}

fn default_deadline_day() -> Spanned<u32> {
    Spanned::new(0..0, u32::from(crate::hub::periods::DEFAULT_DEADLINE_DAY))
}

fn default_close() -> Spanned<String> {
    Spanned::new(0..0, "deadline".into())
}

fn default_history_grace_days() -> Spanned<u32> {
    Spanned::new(0..0, crate::hub::periods::DEFAULT_HISTORY_GRACE_DAYS)
}

/// `[metrics]`: where Prometheus scrapes `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the plain-HTTP metrics listener, e.g. `127.0.0.1:9464`. Metrics hold counts,
    /// SIRETs and hub ids, never personal data; still, keep the port inside the operator's network.
    pub listen: Spanned<String>,
}

/// `[node]`: the identity of the structure running this node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// SIRET of the structure (14 digits, Luhn checksum).
    pub siret: Spanned<String>,
    /// Kind of structure: `ai`, `aci`, `ei`, `etti` or `eiti`.
    pub kind: Spanned<String>,
    /// Name of the structure, as partners know it.
    pub name: Spanned<String>,
    /// Département of the structure's main site, e.g. `49`.
    pub departement: Spanned<String>,
    /// How many days a candidate's fields received through an introduction are kept after its
    /// outcome or its request's expiry, then deleted (default 90, 1 to 3650).
    #[serde(default = "default_introduction_retention_days")]
    pub introduction_retention_days: Spanned<u32>,
}

fn default_introduction_retention_days() -> Spanned<u32> {
    Spanned::new(0..0, 90)
}

/// `[[hubs]]` on a node: one network hub and the sharing agreement with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubLinkSection {
    /// The hub's id, as in its certificate (`coorace-pdl`).
    pub id: Spanned<String>,
    /// The hub's address, `https://HOST:PORT`; HOST must be a name in the hub's certificate.
    pub endpoint: Spanned<String>,
    /// The datasets the structure agrees to share with this hub: `needs`, `indicators`.
    pub share: Vec<Spanned<String>>,
}

/// `[[upstream]]` on a hub: a consolidation hub (e.g. a DREETS') this hub relays to, as a member,
/// with its own hub certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The upstream hub's id, as in its certificate (`dreets-52`).
    pub id: Spanned<String>,
    /// Its address, `https://HOST:PORT`.
    pub endpoint: Spanned<String>,
    /// The CA (PEM) its certificate must chain to.
    pub ca: Spanned<PathBuf>,
}

/// `[hub]`: a network hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    /// The hub's id, as in its certificate (`coorace-pdl`).
    pub id: Spanned<String>,
    /// The network it serves (`coorace`).
    pub network: Spanned<String>,
    /// INSEE code of its région (`52`).
    pub region: Spanned<String>,
    /// Address of the TLS-only listener members and consumers connect to.
    pub listen: Spanned<String>,
    /// Accept new members without an operator. Off by default: a new node is pending until an
    /// operator runs `passerelle hub accept SIRET`.
    #[serde(default)]
    pub auto_accept: bool,
    /// Certificate serials refused (hex, colons allowed). Re-read on SIGHUP and `passerelle hub reload`.
    #[serde(default)]
    pub denied_serials: Vec<Spanned<String>>,
    /// A published statistic counting fewer persons than this is suppressed (default 5; raise it,
    /// e.g. to 11, for state consumers; never below 5).
    #[serde(default = "default_min_persons")]
    pub min_persons: Spanned<u32>,
    /// The k of k-anonymity for the pooled profiles this hub serves (default 5, at least 2).
    #[serde(default = "default_k")]
    pub k_anonymity: Spanned<u32>,
    /// How many days a deletion (tombstone) is remembered before it is forgotten (default 30,
    /// 1 to 3650). While remembered, an older copy of the record arriving late (a lagging relay)
    /// cannot bring it back; after, only its key and version would have been left anyway.
    #[serde(default = "default_tombstone_days")]
    pub tombstone_retention_days: Spanned<u32>,
    /// How many days an introduction request stays open to answers (default 30, 1 to 365).
    #[serde(default = "default_introduction_ttl_days")]
    pub introduction_ttl_days: Spanned<u32>,
    /// How many introduction requests a structure may send per 24 hours (default 20, 1 to 10,000).
    #[serde(default = "default_introductions_per_day")]
    pub introductions_per_day: Spanned<u32>,
    /// How many days the hub keeps an introduction request after its expiry (default 30, 1 to
    /// 365): long enough for the requester's and holders' nodes to fetch its final state, after
    /// which the request, its routing and any sealed fields still held are deleted.
    #[serde(default = "default_hub_introduction_retention_days")]
    pub introduction_retention_days: Spanned<u32>,
    /// The hub's certificate and key (and, as a shorthand for `[[hub.trust]]`, `client_cas`).
    pub tls: ServerTlsSection,
    /// `[[hub.trust]]`: the CAs whose certificates this hub accepts, each naming the network it
    /// speaks for and the roles it may vouch for here. An identity is (network, role, id): the same
    /// id from another CA is another member, and operators come only from an anchor listing
    /// `operator` (normally the hub's own CA).
    #[serde(default)]
    pub trust: Vec<TrustSection>,
}

/// `[[hub.trust]]`: one trust anchor of a hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// The CA certificate (PEM) of a network, e.g. `certs/fas-ca.pem`. A CA anchors one network
    /// only; a network may have several CAs (a rotation).
    pub ca: Spanned<PathBuf>,
    /// The network it speaks for, e.g. `fas`: the first part of its members' identities.
    pub network: Spanned<String>,
    /// The roles its certificates may carry here: `node`, `hub`, `consumer`, `operator` (at least
    /// one). A certificate with another role is refused at every call.
    pub roles: Spanned<Vec<Spanned<String>>>,
}

fn default_min_persons() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}

/// The least k of k-anonymity a hub may be configured with (k = 1 publishes singletons); the
/// pooled-profiles view applies it too, whatever it is given.
pub const MIN_K: u32 = 2;
/// Default of [`HubSection::k_anonymity`].
pub const DEFAULT_K: u32 = 5;

/// Default of [`HubSection::tombstone_retention_days`].
pub const DEFAULT_TOMBSTONE_DAYS: u32 = 30;

fn default_tombstone_days() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_TOMBSTONE_DAYS)
}

fn default_introduction_ttl_days() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}

fn default_hub_introduction_retention_days() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}

fn default_introductions_per_day() -> Spanned<u32> {
    Spanned::new(0..0, 20)
}

fn default_k() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_K)
}

/// A TLS server identity and the client CAs it accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsSection {
    /// Certificate chain, PEM.
    pub cert: Spanned<PathBuf>,
    /// Private key, PEM.
    pub key: Spanned<PathBuf>,
    /// CA certificates (PEM) whose client certificates are accepted; one per trusted network.
    /// The shorthand of `[[hub.trust]]` that existing configs use: the first CA speaks for this
    /// daemon's own network (a hub's `network`; on a node, the network its subject names) with
    /// every role; each further CA for the network its subject names (`CN=Passerelle CA
    /// NETWORK`, as `passerelle pki init` writes it), with the roles `node` and `hub` only.
    #[serde(default)]
    pub client_cas: Vec<Spanned<PathBuf>>,
}

/// `[tls]` on a node: how it authenticates to hubs and which CAs it trusts for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsSection {
    /// CA certificate(s), PEM, that hubs' certificates must chain to.
    pub ca: Spanned<PathBuf>,
    /// The node's certificate, PEM.
    pub cert: Spanned<PathBuf>,
    /// The node's private key, PEM.
    pub key: Spanned<PathBuf>,
}

/// `[api]`: the local API, used by the `passerelle` command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on, e.g. `127.0.0.1:7401`. Port 0 picks a free port. Without `[api.tls]`
    /// it must be a loopback address.
    #[serde(default = "default_api_listen")]
    pub listen: Spanned<String>,
    /// Serve the API over TLS to operator certificates only (required off loopback).
    pub tls: Option<ServerTlsSection>,
}

fn default_api_listen() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_API_LISTEN.to_string())
}

impl Default for ApiSection {
    fn default() -> Self {
        Self { listen: default_api_listen(), tls: None }
    }
}

/// `[limits]`: protections every listener applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest request message, in bytes; larger ones get `RESOURCE_EXHAUSTED`. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Concurrent calls per connection. Default 64.
    pub max_concurrent_calls_per_connection: usize,
    /// A unary call taking longer is cancelled with `DEADLINE_EXCEEDED`. Default 30 s.
    pub request_timeout_secs: u64,
    /// Authenticated connections per listener (TLS handshake done, or any plaintext loopback
    /// connection); more are closed at once. Default 8192: a national hub holds one session per
    /// structure (about 4,000) plus consumers and operators. The daemon raises its open-file
    /// limit at start to fit it (see the systemd units' `LimitNOFILE`).
    pub max_connections: usize,
    /// TLS handshakes in progress per listener. Unfinished handshakes have their own budget, so
    /// peers that connect and say nothing can never take the slots of authenticated traffic; when
    /// it is full, a new connection evicts the *oldest* unfinished handshake rather than being
    /// refused (a real client finishes in milliseconds, a silent one is the oldest). Not a
    /// per-address limit: thousands of nodes may share one address behind a NAT. Default 512.
    pub max_handshakes: usize,
    /// A TLS handshake taking longer is abandoned. Default 5 s.
    pub handshake_timeout_secs: u64,
    /// Connections of one certified identity (network, role, id) per TLS listener; more are
    /// closed at once. An honest peer uses one (a member's session, a consumer's client): this
    /// keeps one certificate from taking `max_connections` for itself. Default 16.
    pub max_connections_per_peer: usize,
    /// A connection with no call open for this long is closed (HTTP/2 GOAWAY), including one on
    /// which the peer never starts HTTP/2; a peer that stops answering HTTP/2 PINGs for this long
    /// is dropped; and at shutdown a connection gets at most this long (and at most 10 s) to
    /// finish after GOAWAY. Default 120 s.
    pub idle_timeout_secs: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_calls_per_connection: 64,
            request_timeout_secs: 30,
            max_connections: 8192,
            max_handshakes: 512,
            handshake_timeout_secs: 5,
            max_connections_per_peer: 16,
            idle_timeout_secs: 120,
        }
    }
}

/// Validated limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`LimitsSection::max_message_bytes`].
    pub max_message_bytes: usize,
    /// See [`LimitsSection::max_concurrent_calls_per_connection`].
    pub max_concurrent_calls_per_connection: usize,
    /// See [`LimitsSection::request_timeout_secs`].
    pub request_timeout: Duration,
    /// See [`LimitsSection::max_connections`].
    pub max_connections: usize,
    /// See [`LimitsSection::max_handshakes`].
    pub max_handshakes: usize,
    /// See [`LimitsSection::handshake_timeout_secs`].
    pub handshake_timeout: Duration,
    /// See [`LimitsSection::max_connections_per_peer`].
    pub max_connections_per_peer: usize,
    /// See [`LimitsSection::idle_timeout_secs`].
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        LimitsSection::default().into()
    }
}

impl From<LimitsSection> for Limits {
    fn from(s: LimitsSection) -> Self {
        Self {
            max_message_bytes: s.max_message_bytes,
            max_concurrent_calls_per_connection: s.max_concurrent_calls_per_connection,
            request_timeout: Duration::from_secs(s.request_timeout_secs),
            max_connections: s.max_connections,
            max_handshakes: s.max_handshakes,
            handshake_timeout: Duration::from_secs(s.handshake_timeout_secs),
            max_connections_per_peer: s.max_connections_per_peer,
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
        }
    }
}

/// A configuration that passed validation.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// The file it was read from (re-read on reload); `None` if built in memory.
    pub source: Option<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// What this daemon is.
    pub role: RoleConfig,
    /// The local API.
    pub api: ApiConfig,
    /// Limits for every listener.
    pub limits: Limits,
    /// Where Prometheus metrics are served, when enabled.
    pub metrics: Option<SocketAddr>,
    /// The web console, when enabled (nodes only).
    pub gui: Option<GuiConfig>,
}

/// The web console's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuiConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Further `Host` headers accepted (lowercase).
    pub hosts: Vec<String>,
    /// Its HTTPS certificate and key, when set.
    pub tls: Option<GuiTls>,
}

/// The console's HTTPS certificate chain and key files (checked to match at validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuiTls {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// What a daemon is.
#[derive(Debug, Clone)]
pub enum RoleConfig {
    /// A structure's node.
    Node(NodeConfig),
    /// A network hub.
    Hub(HubConfig),
}

/// A node's settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The structure's identity.
    pub structure: Structure,
    /// Its client identity towards hubs: (CA file, cert, key).
    pub tls: Option<TlsFiles>,
    /// The hubs it syncs with.
    pub hubs: Vec<HubLink>,
    /// How long a candidate's fields received through an introduction are kept after its outcome
    /// or its request's expiry.
    pub introduction_retention: Duration,
}

/// A hub a node syncs with, and the sharing agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubLink {
    /// The hub's id; its certificate must say `passerelle://hub/ID`.
    pub id: String,
    /// `https://HOST:PORT`.
    pub endpoint: String,
    /// Datasets shared, parsed from `share`, without duplicates and sorted by slug (the order
    /// the sync state has always stored the agreement in).
    pub datasets: Vec<Dataset>,
}

/// A hub's settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub's id.
    pub id: String,
    /// Its network.
    pub network: String,
    /// Its région.
    pub region: String,
    /// Its TLS listener's address.
    pub listen: SocketAddr,
    /// Whether new members are accepted without an operator.
    pub auto_accept: bool,
    /// Refused certificate serials, normalised.
    pub denied_serials: Vec<String>,
    /// The k of k-anonymity for pooled profiles.
    pub k_anonymity: u32,
    /// The person-count threshold of published statistics.
    pub min_persons: u32,
    /// How long tombstones are kept.
    pub tombstone_retention: Duration,
    /// How long an introduction request stays open.
    pub introduction_ttl: Duration,
    /// Introduction requests a structure may send per 24 hours.
    pub introductions_per_day: u32,
    /// How long a request is kept after its expiry.
    pub introduction_retention: Duration,
    /// Consolidation hubs to relay to.
    pub upstreams: Vec<Upstream>,
    /// Due dates and closing of monthly periods.
    pub periods: crate::hub::periods::PeriodsConfig,
    /// The protection level of withheld statistics, in percent (`[statistics]`).
    pub protection_percent: u32,
    /// Its TLS files.
    pub tls: ServerTlsFiles,
}

/// A consolidation hub this hub relays to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its id and endpoint; the datasets relayed are `needs` and `indicators`.
    pub link: HubLink,
    /// The upstream's CA, and this hub's own certificate and key.
    pub tls: TlsFiles,
}

/// The local API's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// TLS for operators, when set.
    pub tls: Option<ServerTlsFiles>,
}

impl HubConfig {
    /// The hub settings of the config file `source`, read again for a reload (SIGHUP or
    /// `HubAdmin.Reload`). An invalid file, or one that no longer describes a hub, is refused
    /// with `FAILED_PRECONDITION` so the caller keeps what is in force.
    pub fn reread(source: Option<&Path>) -> Result<HubConfig> {
        let Some(source) = source else {
            return Err(Error::FailedPrecondition("this hub was not started from a config file".into()));
        };
        let config =
            Config::load(source).map_err(|e| Error::FailedPrecondition(format!("reload refused: {e}")))?;
        match config.role {
            RoleConfig::Hub(hub) => Ok(hub),
            RoleConfig::Node(_) => Err(Error::FailedPrecondition(format!(
                "reload refused: {} no longer describes a hub",
                source.display()
            ))),
        }
    }
}

impl ValidConfig {
    /// The hub settings, on a hub.
    pub fn hub(&self) -> Option<&HubConfig> {
        match &self.role {
            RoleConfig::Hub(hub) => Some(hub),
            RoleConfig::Node(_) => None,
        }
    }

    /// The node settings, on a node.
    pub fn node(&self) -> Option<&NodeConfig> {
        match &self.role {
            RoleConfig::Node(node) => Some(node),
            RoleConfig::Hub(_) => None,
        }
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<ValidConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        let mut valid = Self::parse(&text, path)?.validate(&text, path)?;
        valid.source = Some(path.to_path_buf());
        Ok(valid)
    }

    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
            Error::Config(format!("{}{line}: {}", path.display(), e.message().trim_end_matches('.')))
        })
    }

    /// Checks every field, resolves relative paths against `path`'s directory and reads the TLS files.
    pub fn validate(self, text: &str, path: &Path) -> Result<ValidConfig> {
        let v = Validator { text, path, base: path.parent().unwrap_or(Path::new(".")) };
        if self.data_dir.get_ref().as_os_str().is_empty() {
            return Err(v.at(
                "data_dir",
                self.data_dir.span(),
                FieldError::rule("data_dir", "must not be empty"),
            ));
        }
        let role = match (&self.node, &self.hub) {
            (Some(_), None) if !self.upstream.is_empty() => {
                return Err(v.at(
                    "upstream",
                    self.upstream[0].id.span(),
                    FieldError::rule("upstream", "is for hubs; a node lists [[hubs]]"),
                ));
            }
            (Some(_), None) if self.statistics.is_some() => {
                let span = self.statistics.as_ref().map(|s| s.protection_percent.span()).unwrap_or_default();
                return Err(v.at(
                    "statistics",
                    span,
                    FieldError::rule("statistics", "is for hubs; a node publishes no statistics"),
                ));
            }
            (Some(_), None) if self.periods.is_some() => {
                let span = self.periods.as_ref().map(|p| p.close.span()).unwrap_or_default();
                return Err(v.at(
                    "periods",
                    span,
                    FieldError::rule("periods", "is for hubs; a node learns due dates from its hubs"),
                ));
            }
            (Some(node), None) => RoleConfig::Node(v.node(node, self.tls.as_ref(), &self.hubs)?),
            (None, Some(hub)) => {
                if let Some(link) = self.hubs.first() {
                    return Err(v.at(
                        "hubs",
                        link.id.span(),
                        FieldError::rule("hubs", "is for nodes; a hub lists [[upstream]]"),
                    ));
                }
                if let Some(tls) = &self.tls {
                    return Err(v.at(
                        "tls",
                        tls.ca.span(),
                        FieldError::rule("tls", "is for nodes; a hub's TLS goes in [hub.tls]"),
                    ));
                }
                let periods = self.periods.as_ref().map(|p| v.periods(p)).transpose()?;
                let protection = self.statistics.as_ref().map(|s| v.protection(s)).transpose()?;
                let mut config = v.hub(hub, &self.upstream)?;
                config.periods = periods.unwrap_or_default();
                config.protection_percent = protection.unwrap_or(DEFAULT_PROTECTION_PERCENT);
                RoleConfig::Hub(config)
            }
            (Some(_), Some(hub)) => {
                return Err(v.at(
                    "hub",
                    hub.id.span(),
                    FieldError::rule("hub", "a daemon is a node or a hub: remove [node] or [hub]"),
                ));
            }
            (None, None) => {
                return Err(Error::Config(format!(
                    "{}: missing a [node] or a [hub] section",
                    path.display()
                )));
            }
        };
        let listen = v.addr("api.listen", &self.api.listen)?;
        let own_network = match &role {
            RoleConfig::Hub(hub) => Some(hub.network.clone()),
            RoleConfig::Node(_) => None,
        };
        let api_tls = self
            .api
            .tls
            .as_ref()
            .map(|t| v.server_tls("api.tls", t, own_network.as_deref(), &[]))
            .transpose()?;
        if api_tls.is_none() && !listen.ip().is_loopback() {
            return Err(v.at(
                "api.listen",
                self.api.listen.span(),
                FieldError::new(
                    "listen",
                    self.api.listen.get_ref(),
                    "off loopback the API requires [api.tls] with operator client certificates",
                ),
            ));
        }
        let limits = self.limits;
        for (field, value) in [
            ("limits.max_message_bytes", limits.max_message_bytes as u64),
            ("limits.max_concurrent_calls_per_connection", limits.max_concurrent_calls_per_connection as u64),
            ("limits.request_timeout_secs", limits.request_timeout_secs),
            ("limits.max_connections", limits.max_connections as u64),
            ("limits.max_handshakes", limits.max_handshakes as u64),
            ("limits.handshake_timeout_secs", limits.handshake_timeout_secs),
            ("limits.max_connections_per_peer", limits.max_connections_per_peer as u64),
            ("limits.idle_timeout_secs", limits.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{}: {field}: must be at least 1", path.display())));
            }
        }
        let metrics = self.metrics.as_ref().map(|m| v.addr("metrics.listen", &m.listen)).transpose()?;
        // The same section on both roles: a node's console for the structure's staff, a hub's for
        // the network's staff and analysts (see `gui/`).
        let gui = self.gui.as_ref().map(|gui| v.gui(gui)).transpose()?;
        Ok(ValidConfig {
            source: None,
            data_dir: v.base.join(self.data_dir.get_ref()),
            role,
            api: ApiConfig { listen, tls: api_tls },
            limits: limits.into(),
            metrics,
            gui,
        })
    }
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    base: &'a Path,
}

impl Validator<'_> {
    fn at(&self, field: &str, span: std::ops::Range<usize>, e: FieldError) -> Error {
        let located = FieldError { field: field.to_string(), ..e };
        let line =
            if span.is_empty() { String::new() } else { format!(":{}", line_of(self.text, span.start)) };
        Error::Config(format!("{}{line}: {located}", self.path.display()))
    }

    fn check(
        &self,
        field: &str,
        value: &Spanned<String>,
        rule: impl Fn(&str, &str) -> validate::Result,
    ) -> Result<String> {
        rule(field, value.get_ref()).map_err(|e| self.at(field, value.span(), e))?;
        Ok(value.get_ref().clone())
    }

    fn addr(&self, field: &str, value: &Spanned<String>) -> Result<SocketAddr> {
        value.get_ref().parse().map_err(|_| {
            self.at(
                field,
                value.span(),
                FieldError::new(field, value.get_ref(), "expected an address like 127.0.0.1:7401"),
            )
        })
    }

    /// `[gui]`: the address, the extra hosts, and TLS (required off loopback).
    fn gui(&self, gui: &GuiSection) -> Result<GuiConfig> {
        let listen = self.addr("gui.listen", &gui.listen)?;
        let tls = match &gui.tls {
            Some(t) => {
                let cert = self.file("gui.tls.cert", &t.cert)?;
                let key = self.file("gui.tls.key", &t.key)?;
                tls::load_identity(&cert, &key).map_err(|e| self.tls_error("gui.tls.key", &t.key, e))?;
                Some(GuiTls { cert, key })
            }
            None if !listen.ip().is_loopback() => {
                return Err(self.at(
                    "gui.listen",
                    gui.listen.span(),
                    FieldError::new(
                        "listen",
                        gui.listen.get_ref(),
                        "off loopback the console requires [gui.tls] (passwords and personal data cross it)",
                    ),
                ));
            }
            None => None,
        };
        let mut hosts = Vec::new();
        for host in &gui.hosts {
            let value = host.get_ref();
            let ok = !value.is_empty()
                && value.len() <= 253
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !ok {
                return Err(self.at(
                    "gui.hosts",
                    host.span(),
                    FieldError::new(
                        "hosts",
                        value,
                        "expected a host name, optionally with :PORT, as browsers send it",
                    ),
                ));
            }
            hosts.push(value.to_ascii_lowercase());
        }
        Ok(GuiConfig { listen, hosts, tls })
    }

    /// Resolves a path and checks the file can be read (its content is checked by the caller).
    fn file(&self, field: &str, value: &Spanned<PathBuf>) -> Result<PathBuf> {
        let path = self.base.join(value.get_ref());
        std::fs::metadata(&path).map_err(|e| {
            self.at(
                field,
                value.span(),
                FieldError::new(field, path.display().to_string(), format!("cannot read: {e}")),
            )
        })?;
        Ok(path)
    }

    /// Re-locates a TLS loading error at the config line of `value`.
    fn tls_error(&self, field: &str, value: &Spanned<PathBuf>, e: Error) -> Error {
        self.at(field, value.span(), FieldError::rule(field, e.to_string()))
    }

    /// A count between 1 and `max` (days, requests), located at its line when out of range.
    fn days(&self, field: &str, value: &Spanned<u32>, max: u32) -> Result<u32> {
        let n = *value.get_ref();
        if !(1..=max).contains(&n) {
            let name = field.rsplit('.').next().unwrap_or(field);
            return Err(self.at(
                field,
                value.span(),
                FieldError::new(name, n.to_string(), format!("must be between 1 and {max}")),
            ));
        }
        Ok(n)
    }

    /// A TLS listener's files and trust anchors: `trust` (`[[hub.trust]]`) or the `client_cas`
    /// shorthand, one of them. `own_network` is the daemon's network (a hub's), which the first
    /// of `client_cas` speaks for.
    fn server_tls(
        &self,
        section: &str,
        t: &ServerTlsSection,
        own_network: Option<&str>,
        trust: &[TrustSection],
    ) -> Result<ServerTlsFiles> {
        let cert = self.file(&format!("{section}.cert"), &t.cert)?;
        let key = self.file(&format!("{section}.key"), &t.key)?;
        tls::load_identity(&cert, &key).map_err(|e| self.tls_error(&format!("{section}.key"), &t.key, e))?;
        let cas_field = format!("{section}.client_cas");
        let mut anchors: Vec<(TrustAnchor, &Spanned<PathBuf>, &str)> = Vec::new();
        match (t.client_cas.first(), trust.first()) {
            (Some(_), Some(anchor)) => {
                return Err(self.at(
                    "hub.trust",
                    anchor.ca.span(),
                    FieldError::rule(
                        "hub.trust",
                        format!("{cas_field} is its shorthand: list the CAs in one of them, not both"),
                    ),
                ));
            }
            (None, None) => {
                let what =
                    if section == "hub.tls" { "[[hub.trust]] (or hub.tls.client_cas)" } else { "client_cas" };
                return Err(Error::Config(format!(
                    "{}: {section}: at least one trusted CA is required: {what}",
                    self.path.display()
                )));
            }
            (Some(_), None) => {
                for (i, ca) in t.client_cas.iter().enumerate() {
                    let file = self.file(&cas_field, ca)?;
                    let first = tls::load_certs(&file).map_err(|e| self.tls_error(&cas_field, ca, e))?;
                    let named = passerelle_proto::identity::network_of_ca(&first[0]);
                    let (network, roles) = match (i, own_network, named) {
                        (0, Some(own), _) => (own.to_string(), Role::ALL.to_vec()),
                        (0, None, named) => (named.unwrap_or_else(|_| "local".into()), Role::ALL.to_vec()),
                        // The network a further CA names for itself is only a claim: one that
                        // another anchor already speaks for would let that CA mint its members.
                        (_, _, Ok(named)) if anchors.iter().any(|(a, _, _)| a.network == named) => {
                            return Err(self.at(
                                &cas_field,
                                ca.span(),
                                FieldError::new(
                                    &cas_field,
                                    file.display().to_string(),
                                    format!(
                                        "its subject names network {named}, which an earlier CA already speaks for: say which network it speaks for with [[hub.trust]]"
                                    ),
                                ),
                            ));
                        }
                        (_, _, Ok(named)) => (named, vec![Role::Node, Role::Hub]),
                        (_, _, Err(reason)) => {
                            return Err(self.at(
                                &cas_field,
                                ca.span(),
                                FieldError::new(
                                    &cas_field,
                                    file.display().to_string(),
                                    format!("{reason}: say which network it speaks for with [[hub.trust]]"),
                                ),
                            ));
                        }
                    };
                    anchors.push((TrustAnchor { ca: file, network, roles }, ca, cas_field.as_str()));
                }
            }
            (None, Some(_)) => {
                for anchor in trust {
                    let file = self.file("hub.trust.ca", &anchor.ca)?;
                    let network = self.check("hub.trust.network", &anchor.network, validate::hub_id)?;
                    if anchor.roles.get_ref().is_empty() {
                        return Err(self.at(
                            "hub.trust.roles",
                            anchor.roles.span(),
                            FieldError::rule(
                                "roles",
                                "must list at least one of node, hub, consumer, operator",
                            ),
                        ));
                    }
                    let mut roles = Vec::new();
                    for role in anchor.roles.get_ref() {
                        let parsed = Role::parse(role.get_ref()).ok_or_else(|| {
                            self.at(
                                "hub.trust.roles",
                                role.span(),
                                FieldError::new(
                                    "roles",
                                    role.get_ref(),
                                    "expected node, hub, consumer or operator",
                                ),
                            )
                        })?;
                        if roles.contains(&parsed) {
                            return Err(self.at(
                                "hub.trust.roles",
                                role.span(),
                                FieldError::new("roles", role.get_ref(), "listed twice"),
                            ));
                        }
                        // Statistics go to the consumers of this hub's own network only: a
                        // consumer reading both a network hub and the consolidation hub could
                        // difference their tables (see ARCHITECTURE.md, statistics).
                        if parsed == Role::Consumer && own_network.is_some_and(|own| own != network) {
                            return Err(self.at(
                                "hub.trust.roles",
                                role.span(),
                                FieldError::new(
                                    "roles",
                                    role.get_ref(),
                                    format!(
                                        "consumers come only from an anchor of this hub's own network ({}), not {network}",
                                        own_network.unwrap_or_default()
                                    ),
                                ),
                            ));
                        }
                        roles.push(parsed);
                    }
                    roles.sort();
                    anchors.push((TrustAnchor { ca: file, network, roles }, &anchor.ca, "hub.trust.ca"));
                }
            }
        }
        // A CA anchors one network: with the same certificate under two anchors, which network
        // issued a chain would be ambiguous.
        let mut seen: Vec<(rustls::pki_types::CertificateDer<'static>, String)> = Vec::new();
        for (anchor, span, field) in &anchors {
            let certs = tls::load_roots(&[&anchor.ca])
                .and_then(|_| tls::load_certs(&anchor.ca))
                .map_err(|e| self.tls_error(field, span, e))?;
            for cert in certs {
                if let Some((_, other)) = seen.iter().find(|(c, _)| *c == cert) {
                    return Err(self.at(
                        field,
                        span.span(),
                        FieldError::new(
                            *field,
                            anchor.ca.display().to_string(),
                            format!(
                                "already the CA of network {other}'s anchor: a CA speaks for one network"
                            ),
                        ),
                    ));
                }
                seen.push((cert, anchor.network.clone()));
            }
        }
        Ok(ServerTlsFiles { cert, key, trust: anchors.into_iter().map(|(a, _, _)| a).collect() })
    }

    fn node(
        &self,
        node: &NodeSection,
        tls: Option<&ClientTlsSection>,
        links: &[HubLinkSection],
    ) -> Result<NodeConfig> {
        let siret = self.check("node.siret", &node.siret, validate::siret)?;
        let kind = StructureKind::from_slug(node.kind.get_ref()).ok_or_else(|| {
            self.at(
                "node.kind",
                node.kind.span(),
                FieldError::new(
                    "kind",
                    node.kind.get_ref(),
                    format!("expected one of {}", StructureKind::choices()),
                ),
            )
        })?;
        let name = self.check("node.name", &node.name, |f, v| validate::line(f, v, 1, 200))?;
        let departement = self.check("node.departement", &node.departement, validate::departement)?;
        let tls = match tls {
            None => None,
            Some(t) => {
                let ca = self.file("tls.ca", &t.ca)?;
                tls::load_roots(&[&ca]).map_err(|e| self.tls_error("tls.ca", &t.ca, e))?;
                let cert = self.file("tls.cert", &t.cert)?;
                let key = self.file("tls.key", &t.key)?;
                tls::load_identity(&cert, &key).map_err(|e| self.tls_error("tls.key", &t.key, e))?;
                Some(TlsFiles { ca, cert, key })
            }
        };
        let mut hubs: Vec<HubLink> = Vec::new();
        for link in links {
            let id = self.check("hubs.id", &link.id, validate::hub_id)?;
            if hubs.iter().any(|h| h.id == id) {
                return Err(self.at("hubs.id", link.id.span(), FieldError::new("id", &id, "listed twice")));
            }
            let endpoint = self.check("hubs.endpoint", &link.endpoint, |f, v| {
                let ok = v.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
                if ok {
                    Ok(())
                } else {
                    Err(FieldError::new(f, v, "expected https://HOST:PORT (hubs speak mutual TLS only)"))
                }
            })?;
            let mut datasets = Vec::new();
            for dataset in &link.share {
                let name = self.check("hubs.share", dataset, |f, v| Dataset::parse(f, v).map(drop))?;
                // Checked just above: parsing again cannot fail.
                let parsed = Dataset::parse("hubs.share", &name)?;
                if !datasets.contains(&parsed) {
                    datasets.push(parsed);
                }
            }
            datasets.sort_by_key(|d| d.as_str());
            hubs.push(HubLink { id, endpoint, datasets });
        }
        if !hubs.is_empty() && tls.is_none() {
            return Err(Error::Config(format!(
                "{}: [[hubs]] needs a [tls] section with the node's certificate (passerelle pki issue --role node)",
                self.path.display()
            )));
        }
        let retention =
            self.days("node.introduction_retention_days", &node.introduction_retention_days, 3650)?;
        Ok(NodeConfig {
            structure: Structure { siret, kind: kind as i32, name, departement },
            tls,
            hubs,
            introduction_retention: Duration::from_secs(u64::from(retention) * 24 * 3600),
        })
    }

    fn hub(&self, hub: &HubSection, upstream: &[UpstreamSection]) -> Result<HubConfig> {
        let id = self.check("hub.id", &hub.id, validate::hub_id)?;
        let network = self.check("hub.network", &hub.network, validate::hub_id)?;
        let region = self.check("hub.region", &hub.region, |f, v| {
            if passerelle_proto::geo::is_region(v) {
                Ok(())
            } else {
                Err(FieldError::new(f, v, "expected a région INSEE code, e.g. 52 for Pays de la Loire"))
            }
        })?;
        let listen = self.addr("hub.listen", &hub.listen)?;
        let mut denied_serials = Vec::new();
        for serial in &hub.denied_serials {
            let normal = normalize_serial(serial.get_ref());
            if !normal.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.at(
                    "hub.denied_serials",
                    serial.span(),
                    FieldError::new(
                        "denied_serials",
                        serial.get_ref(),
                        "expected a hexadecimal serial number",
                    ),
                ));
            }
            denied_serials.push(normal);
        }
        let k = *hub.k_anonymity.get_ref();
        if k < MIN_K {
            return Err(self.at(
                "hub.k_anonymity",
                hub.k_anonymity.span(),
                FieldError::new(
                    "k_anonymity",
                    k.to_string(),
                    "must be at least 2 (k = 1 publishes singletons)",
                ),
            ));
        }
        let min_persons = *hub.min_persons.get_ref();
        if min_persons < 5 {
            return Err(self.at(
                "hub.min_persons",
                hub.min_persons.span(),
                FieldError::new(
                    "min_persons",
                    min_persons.to_string(),
                    "must be at least 5 (it may be raised, never lowered)",
                ),
            ));
        }
        let days = *hub.tombstone_retention_days.get_ref();
        if !(1..=3650).contains(&days) {
            return Err(self.at(
                "hub.tombstone_retention_days",
                hub.tombstone_retention_days.span(),
                FieldError::new("tombstone_retention_days", days.to_string(), "must be between 1 and 3650"),
            ));
        }
        let ttl = self.days("hub.introduction_ttl_days", &hub.introduction_ttl_days, 365)?;
        let per_day = self.days("hub.introductions_per_day", &hub.introductions_per_day, 10_000)?;
        let retention =
            self.days("hub.introduction_retention_days", &hub.introduction_retention_days, 365)?;
        let tls = self.server_tls("hub.tls", &hub.tls, Some(&network), &hub.trust)?;
        let mut upstreams = Vec::new();
        for up in upstream {
            let up_id = self.check("upstream.id", &up.id, validate::hub_id)?;
            if up_id == id {
                return Err(self.at(
                    "upstream.id",
                    up.id.span(),
                    FieldError::new("id", &up_id, "a hub cannot relay to itself"),
                ));
            }
            let endpoint = self.check("upstream.endpoint", &up.endpoint, |f, v| {
                let ok = v.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
                if ok { Ok(()) } else { Err(FieldError::new(f, v, "expected https://HOST:PORT")) }
            })?;
            let ca = self.file("upstream.ca", &up.ca)?;
            tls::load_roots(&[&ca]).map_err(|e| self.tls_error("upstream.ca", &up.ca, e))?;
            upstreams.push(Upstream {
                link: HubLink {
                    id: up_id,
                    endpoint,
                    datasets: {
                        let mut relayed: Vec<Dataset> =
                            Dataset::ALL.into_iter().filter(|d| d.is_relayed()).collect();
                        relayed.sort_by_key(|d| d.as_str());
                        relayed
                    },
                },
                tls: TlsFiles { ca, cert: tls.cert.clone(), key: tls.key.clone() },
            });
        }
        Ok(HubConfig {
            upstreams,
            id,
            network,
            region,
            listen,
            auto_accept: hub.auto_accept,
            denied_serials,
            k_anonymity: k,
            min_persons,
            tombstone_retention: Duration::from_secs(u64::from(days) * 24 * 3600),
            introduction_ttl: Duration::from_secs(u64::from(ttl) * 24 * 3600),
            introduction_retention: Duration::from_secs(u64::from(retention) * 24 * 3600),
            introductions_per_day: per_day,
            periods: crate::hub::periods::PeriodsConfig::default(),
            protection_percent: DEFAULT_PROTECTION_PERCENT,
            tls,
        })
    }

    fn protection(&self, statistics: &StatisticsSection) -> Result<u32> {
        let percent = *statistics.protection_percent.get_ref();
        if !(5..=50).contains(&percent) {
            return Err(self.at(
                "statistics.protection_percent",
                statistics.protection_percent.span(),
                FieldError::new("protection_percent", percent.to_string(), "must be between 5 and 50"),
            ));
        }
        Ok(percent)
    }

    fn periods(&self, periods: &PeriodsSection) -> Result<crate::hub::periods::PeriodsConfig> {
        let day = *periods.deadline_day.get_ref();
        let deadline_day = u8::try_from(day).ok().filter(|d| (1..=28).contains(d)).ok_or_else(|| {
            self.at(
                "periods.deadline_day",
                periods.deadline_day.span(),
                FieldError::new("deadline_day", day.to_string(), "must be between 1 and 28"),
            )
        })?;
        let close = crate::hub::periods::CloseRule::parse(periods.close.get_ref()).ok_or_else(|| {
            self.at(
                "periods.close",
                periods.close.span(),
                FieldError::new("close", periods.close.get_ref(), "expected deadline or manual"),
            )
        })?;
        let grace = *periods.history_grace_days.get_ref();
        if !(1..=365).contains(&grace) {
            return Err(self.at(
                "periods.history_grace_days",
                periods.history_grace_days.span(),
                FieldError::new("history_grace_days", grace.to_string(), "must be between 1 and 365"),
            ));
        }
        Ok(crate::hub::periods::PeriodsConfig { deadline_day, close, history_grace_days: grace })
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "data"
[node]
siret = "73282932000074"
kind = "ai"
name = "Tremplin Travail"
departement = "49"
[api]
listen = "127.0.0.1:0"
"#;

    fn check(text: &str) -> Result<ValidConfig> {
        let path = Path::new("/etc/passerelle/node.toml");
        Config::parse(text, path)?.validate(text, path)
    }

    #[test]
    fn good_config_resolves_data_dir_next_to_the_file() -> anyhow::Result<()> {
        let config = check(GOOD)?;
        assert_eq!(config.data_dir, PathBuf::from("/etc/passerelle/data"));
        assert_eq!(config.node().map(|n| n.structure.kind), Some(StructureKind::Ai as i32));
        assert_eq!(config.limits, Limits::default());
        Ok(())
    }

    #[test]
    fn bad_siret_names_line_and_field() {
        let text = GOOD.replace("73282932000074", "73282932000075");
        let err = check(&text).expect_err("bad checksum").to_string();
        assert_eq!(
            err,
            "/etc/passerelle/node.toml:4: node.siret \"73282932000075\": Luhn checksum fails (check for a typing error)"
        );
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        let err =
            check(&GOOD.replace("kind = \"ai\"", "kind = \"ai\"\nsirett = \"x\"")).expect_err("unknown key");
        assert!(err.to_string().contains(":6: unknown field `sirett`"), "{err}");
        let err = check(&GOOD.replace("\"ai\"", "\"asso\"")).expect_err("bad kind");
        assert!(err.to_string().contains("node.kind \"asso\": expected one of ai|aci|ei|etti|eiti"), "{err}");
    }

    #[test]
    fn non_loopback_api_needs_tls() {
        let err = check(&GOOD.replace("127.0.0.1:0", "0.0.0.0:7401")).expect_err("public plaintext");
        assert!(
            err.to_string().contains("api.listen \"0.0.0.0:7401\": off loopback the API requires [api.tls]"),
            "{err}"
        );
    }

    #[test]
    fn the_console_is_off_unless_configured_and_loopback_unless_tls() -> anyhow::Result<()> {
        assert_eq!(check(GOOD)?.gui, None);
        let on = check(&format!(
            "{GOOD}[gui]\nlisten = \"127.0.0.1:8384\"\nhosts = [\"Console.Example:8384\"]\n"
        ))?;
        let gui = on.gui.expect("configured");
        assert_eq!(gui.listen, "127.0.0.1:8384".parse()?);
        assert_eq!(gui.hosts, vec!["console.example:8384".to_string()], "compared lowercase");
        assert_eq!(gui.tls, None);
        let err = check(&format!("{GOOD}[gui]\nlisten = \"0.0.0.0:8384\"\n")).expect_err("public plaintext");
        assert!(
            err.to_string()
                .contains(":11: gui.listen \"0.0.0.0:8384\": off loopback the console requires [gui.tls]"),
            "{err}"
        );
        let err = check(&format!("{GOOD}[gui]\nlisten = \"127.0.0.1:8384\"\nhosts = [\"a b\"]\n"))
            .expect_err("space");
        assert!(err.to_string().contains(":12: gui.hosts \"a b\": expected a host name"), "{err}");
        let err =
            check(&format!("{GOOD}[gui]\nlisten = \"127.0.0.1:8384\"\nport = 1\n")).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
        Ok(())
    }

    #[test]
    fn node_and_hub_are_exclusive_and_one_is_required() {
        let err = check("data_dir = \"d\"\n").expect_err("neither");
        assert!(err.to_string().contains("missing a [node] or a [hub] section"), "{err}");
    }

    #[test]
    fn metrics_are_off_unless_configured_and_checked_when_they_are() -> anyhow::Result<()> {
        assert_eq!(check(GOOD)?.metrics, None);
        let on = check(&format!("{GOOD}[metrics]\nlisten = \"127.0.0.1:9464\"\n"))?;
        assert_eq!(on.metrics, Some("127.0.0.1:9464".parse()?));
        let err = check(&format!("{GOOD}[metrics]\nlisten = \"localhost\"\n")).expect_err("no port");
        assert!(
            err.to_string()
                .contains(":11: metrics.listen \"localhost\": expected an address like 127.0.0.1:7401"),
            "{err}"
        );
        let err = check(&format!("{GOOD}[metrics]\nport = 9464\n")).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
        Ok(())
    }

    #[test]
    fn tombstone_retention_is_bounded() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let text = |days: &str| {
            format!(
                "data_dir = \"d\"\n[hub]\nid = \"coorace-pdl\"\nnetwork = \"coorace\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n{days}\n[hub.tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\nclient_cas = []\n"
            )
        };
        let path = dir.path().join("hub.toml");
        let err = Config::parse(&text("tombstone_retention_days = 0"), &path)?
            .validate(&text("tombstone_retention_days = 0"), &path)
            .expect_err("zero days");
        assert!(
            err.to_string().contains(":7: hub.tombstone_retention_days \"0\": must be between 1 and 3650"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn periods_are_checked_with_their_line() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let text = |periods: &str| {
            format!(
                "data_dir = \"d\"\n[hub]\nid = \"coorace-pdl\"\nnetwork = \"coorace\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n[hub.tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\nclient_cas = []\n[periods]\n{periods}\n"
            )
        };
        let path = dir.path().join("hub.toml");
        for (line, rule) in [
            ("deadline_day = 29", ":12: periods.deadline_day \"29\": must be between 1 and 28"),
            ("deadline_day = 0", ":12: periods.deadline_day \"0\": must be between 1 and 28"),
            ("close = \"monthly\"", ":12: periods.close \"monthly\": expected deadline or manual"),
            ("history_grace_days = 0", ":12: periods.history_grace_days \"0\": must be between 1 and 365"),
        ] {
            let err = Config::parse(&text(line), &path)?.validate(&text(line), &path).expect_err(line);
            assert!(err.to_string().contains(rule), "{err}");
        }
        let err = Config::parse(&text("deadline = 15"), &path).expect_err("unknown key");
        assert!(err.to_string().contains(":12: unknown field `deadline`"), "{err}");
        Ok(())
    }

    #[test]
    fn the_protection_level_is_checked_with_its_line() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("hub.toml");
        let text = |line: &str| {
            format!(
                "data_dir = \"d\"\n[hub]\nid = \"coorace-pdl\"\nnetwork = \"coorace\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n[hub.tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\nclient_cas = []\n[statistics]\n{line}\n"
            )
        };
        for (line, rule) in [
            ("protection_percent = 4", ":12: statistics.protection_percent \"4\": must be between 5 and 50"),
            (
                "protection_percent = 51",
                ":12: statistics.protection_percent \"51\": must be between 5 and 50",
            ),
        ] {
            let err = Config::parse(&text(line), &path)?.validate(&text(line), &path).expect_err(line);
            assert!(err.to_string().contains(rule), "{err}");
        }
        Ok(())
    }

    #[test]
    fn zero_limits_are_refused() {
        let err = check(&format!("{GOOD}[limits]\nmax_connections = 0\n")).expect_err("zero");
        assert!(err.to_string().contains("limits.max_connections: must be at least 1"), "{err}");
    }

    #[test]
    fn missing_tls_files_are_reported_with_their_line() {
        let text = format!(
            "{GOOD}\n[api.tls]\ncert = \"certs/api.pem\"\nkey = \"certs/api.key\"\nclient_cas = [\"certs/ca.pem\"]\n"
        );
        let err = check(&text.replace("[api]\nlisten = \"127.0.0.1:0\"\n", "")).expect_err("no such file");
        assert!(
            err.to_string().contains(":10: api.tls.cert \"/etc/passerelle/certs/api.pem\": cannot read"),
            "{err}"
        );
    }
}
