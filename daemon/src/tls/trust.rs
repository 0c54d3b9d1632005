//! Trust anchors: which CA vouches for which network, and for which roles.
//!
//! A hub trusts several networks' CAs. Chaining to *some* trusted CA is not enough to know who a
//! peer is: `passerelle://hub/fas-pdl` minted by coorace's CA must not pass for fas's `fas-pdl`,
//! and an operator certificate from a network's CA must not administer a hub that trusts that CA
//! for its members only. So every connection learns which anchor issued its certificate — by
//! verifying the chain against each anchor alone, never by comparing names a certificate writes —
//! and its identity is the triple (the anchor's network, role, id). The role check against the
//! anchor's roles is `authz`'s, so a refused call gets a status that says why.

use std::path::PathBuf;
use std::sync::Arc;

use passerelle_proto::identity::Role;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::load_certs;
use crate::error::{Error, Result};

/// A trust anchor as configured (`[[hub.trust]]`, or derived from the `client_cas` shorthand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The CA certificate file, PEM (every certificate in it is a root of this anchor).
    pub ca: PathBuf,
    /// The network it speaks for (`fas`).
    pub network: String,
    /// The roles its certificates may carry here, sorted, without duplicates.
    pub roles: Vec<Role>,
}

/// Who vouched for a connection's certificate: the network of the anchor its chain ends at, and
/// the roles that anchor may vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The anchor's network.
    pub network: String,
    /// The anchor's roles.
    pub roles: Vec<Role>,
}

impl Issuer {
    /// Whether this issuer may vouch for `role`.
    pub fn vouches_for(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The anchors of one listener, each with a verifier that trusts it alone.
pub(crate) struct Trust {
    anchors: Vec<(Issuer, Arc<dyn ClientCertVerifier>)>,
    roots: RootCertStore,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.anchors.iter().map(|(issuer, _)| issuer)).finish()
    }
}

impl Trust {
    /// Reads every anchor's CA file. A CA certificate listed under two anchors is refused: the
    /// issuer of a chain would be ambiguous.
    pub(crate) fn load(anchors: &[TrustAnchor], provider: &Arc<CryptoProvider>) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        let mut seen: Vec<(CertificateDer<'static>, &str)> = Vec::new();
        let mut loaded = Vec::with_capacity(anchors.len());
        for anchor in anchors {
            let mut own = RootCertStore::empty();
            for cert in load_certs(&anchor.ca)? {
                if let Some((_, other)) = seen.iter().find(|(c, _)| *c == cert) {
                    return Err(Error::Config(format!(
                        "{}: this CA is already the anchor of network {other}; a CA speaks for one network",
                        anchor.ca.display()
                    )));
                }
                let usable = |e: rustls::Error| {
                    Error::Config(format!("{}: not usable as a CA certificate: {e}", anchor.ca.display()))
                };
                own.add(cert.clone()).map_err(usable)?;
                roots.add(cert.clone()).map_err(usable)?;
                seen.push((cert, &anchor.network));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(own), provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("{}: {e}", anchor.ca.display())))?;
            loaded.push((Issuer { network: anchor.network.clone(), roles: anchor.roles.clone() }, verifier));
        }
        Ok(Self { anchors: loaded, roots })
    }

    /// Every anchor's certificates, for the handshake's verifier.
    pub(crate) fn roots(&self) -> RootCertStore {
        self.roots.clone()
    }

    /// The anchor whose CA the chain `end_entity` + `intermediates` verifies against (dates,
    /// client-auth usage and signatures, as at the handshake), or `None`. Anchors are tried in
    /// order; distinct CAs make at most one match without cross-signing.
    pub(crate) fn issuer_of(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<Issuer> {
        let now = UnixTime::now();
        self.anchors
            .iter()
            .find(|(_, verifier)| verifier.verify_client_cert(end_entity, intermediates, now).is_ok())
            .map(|(issuer, _)| issuer.clone())
    }
}

#[cfg(test)]
mod tests {
    use passerelle_client::pki::{CertificateAuthority, IssueRequest};
    use passerelle_proto::identity::PeerId;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate")
    }

    /// The anchor found is the one whose CA signed the chain, whatever the certificate says and
    /// whatever the order of the anchors; a CA nobody anchors finds none.
    #[test]
    fn the_issuing_anchor_is_the_one_that_verifies_the_chain() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut anchors = Vec::new();
        let mut cas = Vec::new();
        for (network, roles) in [
            ("state", Role::ALL.to_vec()),
            ("fas", vec![Role::Node, Role::Hub]),
            ("coorace", vec![Role::Hub]),
        ] {
            let ca = CertificateAuthority::generate(network)?;
            let file = dir.path().join(format!("{network}.pem"));
            std::fs::write(&file, &ca.cert_pem)?;
            anchors.push(TrustAnchor { ca: file, network: network.into(), roles });
            cas.push(ca);
        }
        let trust = Trust::load(&anchors, &Arc::new(rustls::crypto::ring::default_provider()))?;
        let fas_pdl = PeerId::new(Role::Hub, "fas-pdl")?;
        for (ca, network) in cas.iter().zip(["state", "fas", "coorace"]) {
            let cert = der(&ca.issue(&IssueRequest::new(fas_pdl.clone(), 30))?.cert_pem);
            assert_eq!(trust.issuer_of(&cert, &[]).map(|i| i.network), Some(network.to_string()));
        }
        let stranger = CertificateAuthority::generate("fas")?;
        let forged = der(&stranger.issue(&IssueRequest::new(fas_pdl, 30))?.cert_pem);
        assert_eq!(trust.issuer_of(&forged, &[]), None, "a CA named like fas's is not fas's");

        // One CA under two anchors would make the issuer ambiguous.
        let mut twice = anchors.clone();
        twice.push(TrustAnchor { network: "iae".into(), ..anchors[1].clone() });
        let err = Trust::load(&twice, &Arc::new(rustls::crypto::ring::default_provider()))
            .expect_err("same CA twice");
        assert!(err.to_string().contains("already the anchor of network fas"), "{err}");
        Ok(())
    }
}
