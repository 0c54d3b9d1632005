//! Certificates of records' origins, as a hub receives them: from a node in its `PushOpen`, or
//! from a relaying hub in its batches. A record is taken as signed by a structure only if its
//! certificate chains to a trusted CA, names that structure's node, and is not revoked.
//!
//! Expiry is not a reason to refuse: a record signed while its certificate was valid stays valid
//! after the certificate expires or is renewed, so the chain is checked as of a moment within
//! the certificate's validity (now, if it is still valid). A leaked key is ended by denying its
//! serial, which refuses every record it signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passerelle_proto::identity::{PeerId, Role, inspect_certificate, signing_key_of_certificate};
use passerelle_proto::signed;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::DenyList;
use crate::error::{Error, Result};

/// A verified origin certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginCertificate {
    /// The node it names.
    pub(crate) peer: PeerId,
    /// Its serial, lowercase hex.
    pub(crate) serial: String,
    /// Its public key (the uncompressed P-256 point).
    pub(crate) public_key: Vec<u8>,
    /// Its fingerprint.
    pub(crate) fingerprint: Vec<u8>,
    /// The network of the anchor whose CA issued it: with the SIRET, the origin's identity.
    pub(crate) network: String,
    /// The end of its validity, seconds since the Unix epoch: no store created after it has
    /// records it signed (`signed::signable_by`).
    pub(crate) not_after: i64,
    /// The start of its validity: which of an origin's certificates is newer.
    pub(crate) not_before: i64,
}

/// Checks origin certificates against the CAs a hub trusts, one anchor at a time, so each
/// certificate is known by the network that issued it.
#[derive(Debug)]
pub(crate) struct OriginVerifier {
    anchors: Vec<(String, Arc<dyn ClientCertVerifier>)>,
    denied: DenyList,
    /// Certificates whose chain verified, by fingerprint. Why: a relay offers every origin's
    /// certificate in every session, and a member its own at every `PushOpen`; the chain's
    /// verdict cannot change (it is checked as of a moment within the certificate's validity,
    /// against anchors fixed for the process), so it is computed once. The serial is checked
    /// against the deny list on every call, so a revocation still applies at once.
    verified: Mutex<HashMap<Vec<u8>, OriginCertificate>>,
}

/// Most verified certificates remembered (a national hub: a few per structure); past it the
/// memory is cleared and refilled.
const MAX_REMEMBERED: usize = 65_536;

impl OriginVerifier {
    /// A verifier for the CAs of `anchors` (network, CA file) and the revocations of `denied`.
    pub(crate) fn new(anchors: &[(String, &std::path::Path)], denied: DenyList) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let anchors = anchors
            .iter()
            .map(|(network, ca)| {
                let roots = Arc::new(super::load_roots(&[ca])?);
                let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| Error::Config(format!("hub.trust {network}: {e}")))?;
                Ok((network.clone(), webpki))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { anchors, denied, verified: Mutex::default() })
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, OriginCertificate>> {
        self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node a certificate (DER) names, if it chains to a trusted CA and is not revoked; why
    /// not otherwise.
    pub(crate) fn verify(&self, der: &[u8]) -> std::result::Result<OriginCertificate, String> {
        let fingerprint = signed::fingerprint(der);
        let known = self.remembered().get(&fingerprint).cloned();
        let cert = match known {
            Some(cert) => cert,
            None => {
                let cert = self.verify_chain(der)?;
                let mut remembered = self.remembered();
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
                remembered.insert(fingerprint, cert.clone());
                cert
            }
        };
        let revoked = self.denied.read().map(|d| d.contains(&cert.serial)).unwrap_or(true);
        if revoked {
            return Err(format!("{}'s certificate {} is revoked", cert.peer, cert.serial));
        }
        Ok(cert)
    }

    /// [`OriginVerifier::verify`] without the memory and the deny list.
    fn verify_chain(&self, der: &[u8]) -> std::result::Result<OriginCertificate, String> {
        let info = inspect_certificate(der)?;
        let peer = info.peer?;
        if peer.role != Role::Node {
            return Err(format!("{peer} is not a node: only nodes sign records"));
        }
        let now = passerelle_proto::date::now_unix_ms() / 1000;
        let at = now.clamp(info.not_before, info.not_after).max(0);
        let at = UnixTime::since_unix_epoch(Duration::from_secs(at.unsigned_abs()));
        let mut last = String::from("no trust anchor vouches for nodes or hubs");
        let mut network = None;
        for (name, verifier) in &self.anchors {
            match verifier.verify_client_cert(&CertificateDer::from(der), &[], at) {
                Ok(_) => {
                    network = Some(name.clone());
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let network = network.ok_or_else(|| format!("{peer}'s certificate is not trusted here: {last}"))?;
        Ok(OriginCertificate {
            peer,
            serial: info.serial,
            public_key: signing_key_of_certificate(der)?,
            fingerprint: signed::fingerprint(der),
            network,
            not_after: info.not_after,
            not_before: info.not_before,
        })
    }
}
