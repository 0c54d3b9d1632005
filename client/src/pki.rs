//! A network's PKI without openssl: a CA per network, and certificates carrying
//! `passerelle://ROLE/ID`.
//!
//! Who does what: a network's staff run `pki init` once, keep `ca.key` offline, and run
//! `pki issue` for each hub, member node, consumer and operator; each party receives its own
//! `ROLE.pem` + `ROLE.key` and the `ca.pem` of the networks it talks to.
//!
//! Files: `ca.pem`/`ca.key` in the CA directory; `ROLE.pem`/`ROLE.key` (+ a copy of `ca.pem`)
//! in an issue directory. Keys are written mode 0600, and nothing existing is ever overwritten.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use passerelle_proto::identity::{CA_COMMON_NAME_PREFIX, CertificateInfo, PeerId, Role, inspect_certificate};
use passerelle_proto::validate;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// How long a network CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// Default validity of an issued certificate.
pub const DEFAULT_VALIDITY_DAYS: u32 = 397;
/// Longest validity `issue` accepts.
pub const MAX_VALIDITY_DAYS: u32 = 3650;

/// A PKI failure, with the path or field concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A value is not acceptable; names the field and the rule.
    #[error(transparent)]
    Invalid(#[from] validate::FieldError),
    /// A file would be overwritten.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate or key could not be parsed or produced.
    #[error("{0}")]
    Crypto(String),
}

type Result<T> = std::result::Result<T, PkiError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

fn crypto(context: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Crypto(format!("{context}: {e}"))
}

/// A network CA loaded in memory.
pub struct CertificateAuthority {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct IssuedPem {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Who the certificate is for.
    pub peer: PeerId,
    /// DNS names for a server certificate (hub, node API); default `localhost`.
    pub dns: Vec<String>,
    /// IP addresses for a server certificate; default `127.0.0.1`.
    pub ips: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl IssueRequest {
    /// A request valid from an hour ago (clock skew) for `days` days.
    pub fn new(peer: PeerId, days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            peer,
            dns: Vec::new(),
            ips: Vec::new(),
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f; // Positive, as RFC 5280 requires.
    bytes[0] |= 0x10; // No leading zero byte, so the hex form is stable.
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// Creates a new CA for `network` (ECDSA P-256, 10 years).
    pub fn generate(network: &str) -> Result<Self> {
        validate::hub_id("network", network)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto("generating the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{CA_COMMON_NAME_PREFIX}{network}"));
        dn.push(DnType::OrganizationName, "Passerelle");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(crypto("signing the CA certificate"))?;
        Ok(Self { cert_pem: cert.pem(), key })
    }

    /// Loads the CA of a directory made by [`init`].
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(crypto("reading ca.key"))?;
        Ok(Self { cert_pem, key })
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a key and certificate for `request.peer`.
    pub fn issue(&self, request: &IssueRequest) -> Result<IssuedPem> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(crypto("reading ca.pem"))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto("generating a key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{}:{}", request.peer.role, request.peer.id));
        dn.push(DnType::OrganizationName, "Passerelle");
        params.distinguished_name = dn;
        params.serial_number = Some(random_serial());
        params.not_before = request.not_before;
        params.not_after = request.not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let uri = request.peer.uri().try_into().map_err(crypto("encoding the identity URI"))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        if is_server_role(request.peer.role) {
            params.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let dns = if request.dns.is_empty() && request.ips.is_empty() {
                vec!["localhost".to_string()]
            } else {
                request.dns.clone()
            };
            let ips = if request.dns.is_empty() && request.ips.is_empty() {
                vec![IpAddr::from([127, 0, 0, 1])]
            } else {
                request.ips.clone()
            };
            for name in dns {
                let ia5 = name
                    .clone()
                    .try_into()
                    .map_err(|_| validate::FieldError::new("dns", &name, "not a valid DNS name"))?;
                params.subject_alt_names.push(SanType::DnsName(ia5));
            }
            params.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &issuer).map_err(crypto("signing the certificate"))?;
        Ok(IssuedPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// Hubs serve the network and nodes may serve their local API over TLS: their certificates carry
/// server names. Consumers and operators are clients only.
pub fn is_server_role(role: Role) -> bool {
    matches!(role, Role::Node | Role::Hub)
}

/// Files written by [`init`] or [`issue`].
#[derive(Debug, Clone)]
pub struct Written {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (mode 0600).
    pub key: PathBuf,
}

/// `passerelle pki init`: creates a CA for `network` in `out` (`ca.pem`, `ca.key`).
pub fn init(network: &str, out: &Path) -> Result<Written> {
    let cert = out.join("ca.pem");
    let key = out.join("ca.key");
    refuse_existing(&[&cert, &key])?;
    let ca = CertificateAuthority::generate(network)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    write_new(&key, ca.key_pem().as_bytes(), true)?;
    write_new(&cert, ca.cert_pem.as_bytes(), false)?;
    Ok(Written { cert, key })
}

/// `passerelle pki issue`: issues `ROLE.pem`/`ROLE.key` into `out`, with a copy of the CA's
/// `ca.pem` (kept if an identical one is there).
pub fn issue(ca_dir: &Path, request: &IssueRequest, out: &Path) -> Result<Written> {
    let role = request.peer.role.as_str();
    let cert = out.join(format!("{role}.pem"));
    let key = out.join(format!("{role}.key"));
    refuse_existing(&[&cert, &key])?;
    let ca = CertificateAuthority::load(ca_dir)?;
    let ca_copy = out.join("ca.pem");
    if let Ok(existing) = std::fs::read_to_string(&ca_copy)
        && existing != ca.cert_pem
    {
        return Err(PkiError::Exists(ca_copy));
    }
    let issued = ca.issue(request)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    write_new(&key, issued.key_pem.as_bytes(), true)?;
    write_new(&cert, issued.cert_pem.as_bytes(), false)?;
    if !ca_copy.exists() {
        write_new(&ca_copy, ca.cert_pem.as_bytes(), false)?;
    }
    Ok(Written { cert, key })
}

/// `passerelle pki show`: reads the first certificate of a PEM file.
pub fn show(path: &Path) -> Result<CertificateInfo> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(path)
        .map_err(|e| PkiError::Crypto(format!("{}: {e}", path.display())))?;
    inspect_certificate(&der).map_err(|e| PkiError::Crypto(format!("{}: {e}", path.display())))
}

fn refuse_existing(paths: &[&Path]) -> Result<()> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(PkiError::Exists(p.to_path_buf())),
        None => Ok(()),
    }
}

fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => PkiError::Exists(path.to_path_buf()),
        _ => PkiError::Io { path: path.to_path_buf(), source: e },
    })?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_identity_and_chain_to_the_ca() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        init("coorace-pdl", dir.path())?;
        assert!(matches!(init("coorace-pdl", dir.path()), Err(PkiError::Exists(_))), "never overwrites a CA");
        let peer = PeerId::new(Role::Hub, "coorace-pdl")?;
        let out = dir.path().join("hub");
        let written = issue(dir.path(), &IssueRequest::new(peer.clone(), 30), &out)?;
        let info = show(&written.cert)?;
        assert_eq!(info.peer, Ok(peer));
        assert_eq!(info.dns_names, vec!["localhost"]);
        assert_eq!(info.ip_addresses, vec!["127.0.0.1"]);
        assert!(info.issuer.contains("Passerelle CA coorace-pdl"));
        assert!(!info.is_ca);
        assert_eq!(info.serial.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&written.key)?.permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(dir.path().join("ca.key"))?.permissions().mode() & 0o777, 0o600);
        }
        let again = issue(dir.path(), &IssueRequest::new(PeerId::new(Role::Hub, "coorace-pdl")?, 30), &out);
        assert!(matches!(again, Err(PkiError::Exists(_))));
        Ok(())
    }

    #[test]
    fn consumer_certificates_have_no_server_names() -> anyhow::Result<()> {
        let ca = CertificateAuthority::generate("fas-pdl")?;
        let issued = ca.issue(&IssueRequest::new(PeerId::new(Role::Consumer, "dreets-52")?, 30))?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(issued.cert_pem.as_bytes())
            .map(|d: rustls_pki_types::CertificateDer<'_>| d.to_vec())?;
        let info = inspect_certificate(&der).map_err(anyhow::Error::msg)?;
        assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());
        Ok(())
    }
}
