//! A test network's PKI, made with `passerelle pki`'s library: a trusted CA with every kind of
//! party, and the certificates an attacker or a mistake would bring.

use std::path::{Path, PathBuf};

use passerelle_client::TlsFiles;
use passerelle_client::pki::{self, CertificateAuthority, IssueRequest};
use passerelle_proto::identity::{PeerId, Role};

/// SIRETs with a valid Luhn checksum, for several structures.
pub const SIRETS: [&str; 5] =
    ["73282932000074", "44306184100047", "52104378900010", "77503216600016", "33039120200018"];

/// The certificates of a test network, in `dir`.
pub struct TestPki {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The trusted network CA's directory (`ca.pem`, `ca.key`).
    pub ca_dir: PathBuf,
}

impl TestPki {
    /// Creates the network CA `coorace-pdl` in `dir/ca`.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        Self::for_network(dir, "coorace-pdl")
    }

    /// Creates the CA of `network` (its subject says `Passerelle CA NETWORK`) in `dir/ca`; give
    /// each network its own `dir`.
    pub fn for_network(dir: &Path, network: &str) -> anyhow::Result<Self> {
        let ca_dir = dir.join("ca");
        pki::init(network, &ca_dir)?;
        Ok(Self { dir: dir.to_path_buf(), ca_dir })
    }

    /// The CA certificate file.
    pub fn ca_pem(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }

    /// Issues a certificate for `role`/`id` (valid 30 days) into `dir/ROLE-ID/`, or returns the
    /// one issued before.
    pub fn issue(&self, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let out = self.dir.join(format!("{role}-{id}"));
        let existing = out.join(format!("{role}.pem"));
        if existing.exists() {
            return Ok(TlsFiles { ca: self.ca_pem(), cert: existing, key: out.join(format!("{role}.key")) });
        }
        let written = pki::issue(&self.ca_dir, &IssueRequest::new(PeerId::new(role, id)?, 30), &out)?;
        Ok(TlsFiles { ca: self.ca_pem(), cert: written.cert, key: written.key })
    }

    /// A renewal of `role`/`id`'s certificate: same identity, new key and serial (valid 30 days).
    pub fn renew(&self, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let out = self.dir.join(format!("renewed-{role}-{id}"));
        let written = pki::issue(&self.ca_dir, &IssueRequest::new(PeerId::new(role, id)?, 30), &out)?;
        Ok(TlsFiles { ca: self.ca_pem(), cert: written.cert, key: written.key })
    }

    /// A certificate of this CA valid from a day ago until `seconds` from now, and the instant
    /// it expires (seconds since the Unix epoch): to sign while valid, then act after expiry.
    pub fn issue_expiring(&self, role: Role, id: &str, seconds: i64) -> anyhow::Result<(TlsFiles, i64)> {
        let mut request = IssueRequest::new(PeerId::new(role, id)?, 1);
        let now = time::OffsetDateTime::now_utc();
        request.not_before = now - time::Duration::days(1);
        request.not_after = now + time::Duration::seconds(seconds);
        let out = self.dir.join(format!("expiring-{role}-{id}"));
        let written = pki::issue(&self.ca_dir, &request, &out)?;
        let files = TlsFiles { ca: self.ca_pem(), cert: written.cert, key: written.key };
        Ok((files, request.not_after.unix_timestamp()))
    }

    /// Returns once the clock is past `not_after` (seconds since the Unix epoch): waiting for a
    /// certificate to expire is waiting for time itself, not for another task.
    pub async fn until_expired(not_after: i64) {
        while passerelle_proto::date::now_unix_ms() / 1000 <= not_after {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A certificate of this CA whose validity ended yesterday.
    pub fn issue_expired(&self, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let mut request = IssueRequest::new(PeerId::new(role, id)?, 1);
        let now = time::OffsetDateTime::now_utc();
        request.not_before = now - time::Duration::days(30);
        request.not_after = now - time::Duration::days(1);
        let out = self.dir.join(format!("expired-{role}-{id}"));
        let written = pki::issue(&self.ca_dir, &request, &out)?;
        Ok(TlsFiles { ca: self.ca_pem(), cert: written.cert, key: written.key })
    }

    /// A certificate of another network's CA, which this network does not trust.
    pub fn issue_foreign(&self, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        let foreign = self.dir.join("foreign-ca");
        if !foreign.join("ca.pem").exists() {
            pki::init("foreign-net", &foreign)?;
        }
        let out = self.dir.join(format!("foreign-{role}-{id}"));
        let written = pki::issue(&foreign, &IssueRequest::new(PeerId::new(role, id)?, 30), &out)?;
        Ok(TlsFiles { ca: self.ca_pem(), cert: written.cert, key: written.key })
    }

    /// A certificate of the trusted CA that carries no `passerelle://` identity.
    pub fn issue_without_identity(&self) -> anyhow::Result<TlsFiles> {
        let ca = CertificateAuthority::load(&self.ca_dir)?;
        let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem())?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key)?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let out = self.dir.join("anonymous");
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("anon.pem"), cert.pem())?;
        std::fs::write(out.join("anon.key"), key.serialize_pem())?;
        Ok(TlsFiles { ca: self.ca_pem(), cert: out.join("anon.pem"), key: out.join("anon.key") })
    }

    /// Writes a node config (`node-SIRET.toml`) for a structure syncing with `hubs`
    /// (id, `https://localhost:PORT`, datasets), its API on a free loopback port.
    pub fn write_node_config(
        &self,
        siret: &str,
        departement: &str,
        hubs: &[(&str, String, &[&str])],
    ) -> anyhow::Result<PathBuf> {
        self.write_node_config_with(&self.issue(Role::Node, siret)?, siret, departement, hubs)
    }

    /// [`TestPki::write_node_config`] with the certificate and key of `files`.
    pub fn write_node_config_with(
        &self,
        files: &TlsFiles,
        siret: &str,
        departement: &str,
        hubs: &[(&str, String, &[&str])],
    ) -> anyhow::Result<PathBuf> {
        let mut text = format!(
            "data_dir = \"node-{siret}-data\"\n\n[node]\nsiret = \"{siret}\"\nkind = \"aci\"\nname = \"Structure {siret}\"\ndepartement = \"{departement}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        );
        for (id, endpoint, share) in hubs {
            let share: Vec<String> = share.iter().map(|d| format!("\"{d}\"")).collect();
            text.push_str(&format!(
                "\n[[hubs]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\nshare = [{}]\n",
                share.join(", ")
            ));
        }
        let path = self.dir.join(format!("node-{siret}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Starts hub `coorace-pdl` (accepting members as they come) and the node of `siret`, which
    /// shares `datasets` with it: the smallest federation, which many tests start from.
    pub async fn start_hub_and_member(
        &self,
        siret: &str,
        departement: &str,
        datasets: &[&str],
    ) -> anyhow::Result<(crate::InProcessDaemon, crate::InProcessDaemon)> {
        let hub = crate::InProcessDaemon::start_config(&self.write_hub_config(
            "coorace-pdl",
            "auto_accept = true",
            "",
        )?)
        .await?;
        let node = crate::InProcessDaemon::start_config(&self.write_node_config(
            siret,
            departement,
            &[("coorace-pdl", hub.hub_endpoint(), datasets)],
        )?)
        .await?;
        Ok((hub, node))
    }

    /// The `[[upstream]]` section by which a network hub relays to the consolidation hub `id`
    /// listening at `endpoint` (a certificate of this CA).
    pub fn upstream_section(&self, id: &str, endpoint: &str) -> String {
        format!(
            "[[upstream]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\nca = \"{}\"\n",
            self.ca_pem().display()
        )
    }

    /// The `--ca --cert --key` flags of the `passerelle` CLI for these files.
    pub fn cli_flags(files: &TlsFiles) -> Vec<String> {
        vec![
            "--ca".to_string(),
            files.ca.display().to_string(),
            "--cert".into(),
            files.cert.display().to_string(),
            "--key".into(),
            files.key.display().to_string(),
        ]
    }

    /// The serial of a certificate file, as the hub's deny-list wants it.
    pub fn serial(files: &TlsFiles) -> anyhow::Result<String> {
        Ok(pki::show(&files.cert)?.serial)
    }

    /// Writes a hub config (`hub.toml`) for hub `id`, listening on free loopback ports, with
    /// `extra` appended to the `[hub]` section (e.g. `auto_accept = true`).
    pub fn write_hub_config(&self, id: &str, hub_extra: &str, tail: &str) -> anyhow::Result<PathBuf> {
        self.write_hub_config_on(id, 0, hub_extra, tail)
    }

    /// [`TestPki::write_hub_config`] with a fixed TLS port, for hubs restarted by a test.
    pub fn write_hub_config_on(
        &self,
        id: &str,
        port: u16,
        hub_extra: &str,
        tail: &str,
    ) -> anyhow::Result<PathBuf> {
        let hub = self.issue(Role::Hub, id)?;
        let path = self.dir.join(format!("{id}.toml"));
        std::fs::write(
            &path,
            format!(
                "data_dir = \"{id}-data\"\n\n[hub]\nid = \"{id}\"\nnetwork = \"coorace\"\nregion = \"52\"\nlisten = \"127.0.0.1:{port}\"\n{hub_extra}\n\n[hub.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_cas = [\"{}\"]\n\n[api]\nlisten = \"127.0.0.1:0\"\n{tail}\n",
                hub.cert.display(),
                hub.key.display(),
                self.ca_pem().display()
            ),
        )?;
        Ok(path)
    }
}
