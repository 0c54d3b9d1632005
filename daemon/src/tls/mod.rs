//! Mutual TLS for daemon listeners (rustls 0.23, ring).
//!
//! Why not tonic's `ServerTlsConfig`: the daemon needs a client-certificate verifier that refuses
//! revoked serials and certificates without a Passerelle identity at the handshake, a handshake
//! timeout and a cap on connections, and the peer's identity attached to the connection once. So it
//! builds the rustls config itself ([`server_config`]), accepts connections itself
//! ([`incoming::serve_incoming`]) and hands tonic streams that carry a [`Peer`].
//!
//! [`Peer`] and [`DenyList`] live here, below `authz` and `hub`, which both use them: identity comes
//! from the certificate this module verified, and the deny list is consulted at the handshake.

pub(crate) mod incoming;
pub(crate) mod origin;
pub mod signing;
mod trust;
mod verifier;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use passerelle_proto::identity::{PeerId, Role};

use crate::error::{Error, Result};

pub(crate) use trust::Trust;
pub use trust::{Issuer, TrustAnchor};

/// Certificate serials refused, lowercase hex; shared by the verifier and the per-call check so a
/// reload applies to both.
pub type DenyList = Arc<RwLock<HashSet<String>>>;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its identity, from its certificate.
    pub id: PeerId,
    /// Its certificate's serial (lowercase hex); `None` for the local operator on a plaintext
    /// loopback listener.
    pub serial: Option<String>,
    /// The network of the trust anchor that issued its certificate: with the role and id, its
    /// identity. `None` for the local operator.
    pub network: Option<String>,
}

impl Peer {
    /// Whoever connects to a plaintext loopback listener: someone with a shell on this machine.
    pub fn local_operator() -> Self {
        Self { id: PeerId { role: Role::Operator, id: "local".into() }, serial: None, network: None }
    }

    /// A peer whose certificate `network`'s anchor issued.
    pub fn certified(network: &str, id: PeerId, serial: Option<String>) -> Self {
        Self { id, serial, network: Some(network.to_string()) }
    }
}

/// The certificates of a PEM file, in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("{}: cannot read certificates: {e}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("{}: not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{}: no certificate in this file", path.display())));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Config(format!("{}: cannot read a private key: {e}", path.display())))
}

/// A certificate chain and its key, checked to belong together.
pub fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| Error::Config(format!("{}: unsupported private key: {e}", key.display())))?;
    let spki = passerelle_proto::identity::public_key_of_certificate(&chain[0])
        .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?;
    let matches = signing.public_key().is_some_and(|key| key.as_ref() == spki.as_slice());
    if !matches {
        return Err(Error::Config(format!(
            "{}: this key does not match the certificate {}",
            key.display(),
            cert.display()
        )));
    }
    Ok((chain, private))
}

/// The trust store made of every certificate in `ca_files`.
pub fn load_roots(ca_files: &[impl AsRef<Path>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for file in ca_files {
        for cert in load_certs(file.as_ref())? {
            roots.add(cert).map_err(|e| {
                Error::Config(format!("{}: not usable as a CA certificate: {e}", file.as_ref().display()))
            })?;
        }
    }
    Ok(roots)
}

/// The files of a TLS server that requires client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// Certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Private key, PEM.
    pub key: std::path::PathBuf,
    /// The CAs whose certificates are accepted from clients, each with what it vouches for.
    pub trust: Vec<TrustAnchor>,
}

/// A rustls server configuration that requires a client certificate chaining to one of
/// `files.trust`'s CAs, carrying a Passerelle identity, and whose serial is not in `denied`; and
/// the anchors, to tell each connection which one issued its certificate.
pub(crate) fn server_config(
    files: &ServerTlsFiles,
    denied: DenyList,
) -> Result<(Arc<rustls::ServerConfig>, Arc<Trust>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trust = Arc::new(Trust::load(&files.trust, &provider)?);
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(trust.roots()), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("trust: {e}")))?;
    let verifier = Arc::new(verifier::PasserelleClientVerifier::new(webpki, denied));
    let (chain, key) = load_identity(&files.cert, &files.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), trust))
}
