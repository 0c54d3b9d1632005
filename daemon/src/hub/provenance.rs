//! Where records come from: the origin certificates a push session offers, the origin's
//! signature on each record, and on an upstream hub the floor each relayed record keeps.
//!
//! - A node offers its certificates in `PushOpen`; each must chain to a trusted CA, name that
//!   very node and not be revoked. Its signed changes are checked against them, stored with the
//!   record (with the structure signed) and relayed unchanged. Unsigned changes (a node older
//!   than signatures) are applied — the hub knows their origin from TLS — but never relayed.
//! - A relaying hub sends each origin's certificate once per session (`Batch.certificates`).
//!   A certificate this hub does not trust (another CA, a revoked serial) makes the records it
//!   signed ignored, not the batch refused: an honest relay cannot know this hub's trust. Evidence
//!   of tampering refuses the batch: a live record without signature, a signature by another
//!   structure's certificate or by no certificate of the session, or one that does not verify.
//! - A relayed record is ordered by (origin store creation, epoch, version), all signed; its floor
//!   (the highest seen, and whether it was a deletion) stays in the `floors` tree after the record
//!   and its tombstone go, so a relay can withhold a record but never bring back an older one.
//! - A certificate signs nothing of a store created after it expired (`signed::signable_by`):
//!   such a record is ignored. And once a newer certificate of an origin has signed, an older
//!   one signs nothing at or above the lowest record the newer one signed ([`NewestSigner`]): the
//!   key of an expired certificate can neither date a store at its expiry nor inflate a version
//!   to outrank what the structure signs with its current one.

use std::cmp::Ordering;
use std::collections::HashMap;

use passerelle_proto::signed::{self, Origin, Signed};
use passerelle_proto::v1::{Change, Structure, change};
use passerelle_proto::validate::FieldError;
use prost::Message;

use super::Hub;
use super::ingest::{HubRecord, PushSession};
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch};
use crate::tls::Peer;
use crate::tls::origin::{OriginCertificate, OriginVerifier};

/// Most origin certificates one push session may hold (a relay sends one per structure).
const MAX_SESSION_CERTIFICATES: usize = 100_000;

/// The origin certificates of one push session, by fingerprint; `None`: offered but not trusted
/// here (the records it signed are ignored).
pub(crate) type SessionCertificates = HashMap<Vec<u8>, Option<OriginCertificate>>;

/// The highest version of a relayed record seen, kept after the record goes.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Floor {
    /// When the origin's store of that version was created.
    #[prost(int64, tag = "1")]
    pub(crate) epoch_at_ms: i64,
    /// That store's epoch.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) epoch: Vec<u8>,
    /// The version.
    #[prost(uint64, tag = "3")]
    pub(crate) version: u64,
    /// Whether the origin deleted the record at that version.
    #[prost(bool, tag = "4")]
    pub(crate) deleted: bool,
}

impl Floor {
    /// Order of two positions: a later store outranks an earlier one (the epoch's bytes break a
    /// tie), then the version.
    pub(crate) fn cmp_position(&self, epoch_at_ms: i64, epoch: &[u8], version: u64) -> Ordering {
        (epoch_at_ms, epoch, version).cmp(&(self.epoch_at_ms, self.epoch.as_slice(), self.version))
    }
}

/// What a verified relayed change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provenance {
    /// Signed by its origin (a state, or a deletion at the origin).
    Signed,
    /// Unsigned: from a node older than signatures, or, relayed, a tombstone saying that the
    /// relaying hub no longer carries the record.
    Unsigned,
    /// Signed with a certificate this hub does not trust: ignored.
    Untrusted,
}

/// What [`Hub::verify_batch`] found of one change.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// Signed or not, and by whom.
    pub(crate) provenance: Provenance,
    /// The structure the origin signed.
    pub(crate) structure: Option<Structure>,
    /// Whether the signature itself was verified (not only its certificate's identity).
    pub(crate) checked: bool,
    /// The network whose CA issued the signing certificate (signed changes).
    pub(crate) network: Option<String>,
    /// When the signing certificate's validity starts (signed changes): which is newer.
    pub(crate) signed_since: Option<i64>,
}

/// The newest certificate seen signing for an origin (by start of validity) and the lowest
/// position of a record it signed. A node signs with one certificate at a time, each newer than
/// the last, so every record an older certificate genuinely signed sits below the records of a
/// newer one: a relayed record signed by an older certificate at or above that position — a
/// store dated at the old certificate's expiry, a version inflated within the current store —
/// is the work of a leaked old key, and is ignored.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NewestSigner {
    /// The certificate's start of validity, seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub(crate) not_before: i64,
    /// The lowest position it signed: store creation, epoch, version.
    #[prost(int64, tag = "2")]
    pub(crate) epoch_at_ms: i64,
    /// (see `epoch_at_ms`)
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) epoch: Vec<u8>,
    /// (see `epoch_at_ms`)
    #[prost(uint64, tag = "4")]
    pub(crate) version: u64,
}

impl NewestSigner {
    /// Order of a position against the lowest this certificate signed.
    pub(crate) fn cmp_position(&self, epoch_at_ms: i64, epoch: &[u8], version: u64) -> Ordering {
        (epoch_at_ms, epoch, version).cmp(&(self.epoch_at_ms, self.epoch.as_slice(), self.version))
    }
}

/// What [`NewestSigner`] makes of a signed relayed record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SignerCheck {
    /// Signed by an older certificate at or above the newest one's records: ignore it.
    Stale,
    /// Accept it; `Some` is the origin's new marker to store.
    Accept(Option<NewestSigner>),
}

/// Checks a signed record at (`epoch_at_ms`, `epoch`, `version`), signed by a certificate valid
/// from `not_before`, against the origin's `newest` marker.
pub(crate) fn check_signer(
    newest: Option<&NewestSigner>,
    not_before: i64,
    epoch_at_ms: i64,
    epoch: &[u8],
    version: u64,
) -> SignerCheck {
    let here = || NewestSigner { not_before, epoch_at_ms, epoch: epoch.to_vec(), version };
    match newest {
        Some(n) if not_before < n.not_before => {
            if n.cmp_position(epoch_at_ms, epoch, version) == Ordering::Less {
                SignerCheck::Accept(None)
            } else {
                SignerCheck::Stale
            }
        }
        Some(n) if not_before == n.not_before => {
            if n.cmp_position(epoch_at_ms, epoch, version) == Ordering::Less {
                SignerCheck::Accept(Some(here()))
            } else {
                SignerCheck::Accept(None)
            }
        }
        _ => SignerCheck::Accept(Some(here())),
    }
}

/// Meta key prefix of an origin's [`NewestSigner`].
const ORIGIN_NEWEST: &[u8] = b"origin-newest/";

/// The meta key of `siret`'s newest signer.
pub(super) fn newest_signer_key(siret: &str) -> Vec<u8> {
    [ORIGIN_NEWEST, siret.as_bytes()].concat()
}

/// A signature still to verify: the change, who signed, their key and the bytes signed.
struct SignatureCheck<'c> {
    change: &'c Change,
    signer: String,
    public_key: Vec<u8>,
    bytes: Vec<u8>,
}

/// Below this many signatures a batch is verified on the calling thread (a thread costs more).
const PARALLEL_FROM: usize = 64;

/// Verifies every signature, spread over the machine's cores when the batch is large: a relay's
/// batch is hundreds of records, each an ECDSA verification, and they need nothing but the
/// bytes and the key. Refuses on the first (in batch order) that does not verify.
fn verify_all(checks: &[SignatureCheck<'_>]) -> Result<()> {
    let ok =
        |c: &SignatureCheck<'_>| crate::tls::signing::verify(&c.public_key, &c.bytes, &c.change.signature);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let results: Vec<bool> = if checks.len() < PARALLEL_FROM || threads < 2 {
        checks.iter().map(ok).collect()
    } else {
        let chunk = checks.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = checks
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(ok).collect::<Vec<_>>()))
                .collect();
            parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
        })
    };
    match checks.iter().zip(results.iter().copied().chain(std::iter::repeat(false))).find(|(_, ok)| !ok) {
        Some((c, _)) => Err(denied(format!(
            "signature: not {}'s signature of {} {} version {}",
            c.signer, c.change.dataset, c.change.key, c.change.version
        ))),
        None => Ok(()),
    }
}

/// Meta key prefix of the network an origin's records are signed under (see
/// [`Hub::origin_network`]).
const ORIGIN_NETWORK: &[u8] = b"origin-network/";

/// The meta key of `siret`'s pinned network.
pub(super) fn origin_network_key(siret: &str) -> Vec<u8> {
    [ORIGIN_NETWORK, siret.as_bytes()].concat()
}

/// How far in the future (hub clock) a relayed store's creation time may be: clock skew only.
const MAX_CLOCK_SKEW_MS: i64 = 24 * 3600 * 1000;

fn denied(message: String) -> Error {
    Error::PermissionDenied(message)
}

impl Hub {
    /// The verifier of origin certificates (built at first use from the hub's client CAs).
    fn origin_verifier(&self) -> Result<&OriginVerifier> {
        if let Some(verifier) = self.origins.get() {
            return Ok(verifier);
        }
        // A record's origin is a node, certified by a network's CA: the anchors that vouch for
        // nodes here, and those of networks whose hubs relay here (at a consolidation hub the
        // networks' CAs vouch for their hubs only, but they certify the nodes whose records
        // those hubs relay). The state's own CA (consumers, operators) certifies no origin.
        let anchors: Vec<(String, &std::path::Path)> = self
            .config
            .tls
            .trust
            .iter()
            .filter(|a| {
                a.roles.contains(&passerelle_proto::identity::Role::Node)
                    || a.roles.contains(&passerelle_proto::identity::Role::Hub)
            })
            .map(|a| (a.network.clone(), a.ca.as_path()))
            .collect();
        let verifier = OriginVerifier::new(&anchors, self.denied.clone())?;
        let _ = self.origins.set(verifier);
        self.origins.get().ok_or_else(|| Error::Config("origin verifier".into()))
    }

    /// A node's `PushOpen.certificates`: each must be trusted and name the node itself. Returns
    /// them by fingerprint. Reads nothing from the store, so it runs outside the write lock.
    pub(super) fn verify_node_certificates(
        &self,
        peer: &Peer,
        certificates: &[Vec<u8>],
    ) -> Result<SessionCertificates> {
        let mut out = SessionCertificates::new();
        for der in certificates {
            let cert = self
                .origin_verifier()?
                .verify(der)
                .map_err(|reason| denied(format!("certificates: {reason}")))?;
            if cert.peer != peer.id {
                return Err(denied(format!(
                    "certificates: {} cannot offer {}'s certificate",
                    peer.id, cert.peer
                )));
            }
            out.insert(cert.fingerprint.clone(), Some(cert));
        }
        Ok(out)
    }

    /// Stages in `batch` the certificates of `ders` (verified into `verified`) not stored yet,
    /// to relay them later.
    pub(super) fn stage_new_certificates(
        &self,
        verified: &SessionCertificates,
        ders: &[Vec<u8>],
        batch: &mut WriteBatch,
    ) -> Result<()> {
        for der in ders {
            let fingerprint = signed::fingerprint(der);
            if verified.contains_key(&fingerprint)
                && self.store.get(Tree::Certificates, &fingerprint)?.is_none()
            {
                batch.put(Tree::Certificates, fingerprint, der.clone());
            }
        }
        Ok(())
    }

    /// A relay batch's certificates, added to the session's (untrusted ones as `None`).
    pub(super) fn learn_relayed_certificates(
        &self,
        session: &PushSession,
        certificates: &[Vec<u8>],
    ) -> Result<()> {
        if certificates.is_empty() {
            return Ok(());
        }
        let mut known = session.certificates();
        for der in certificates {
            let fingerprint = signed::fingerprint(der);
            if known.contains_key(&fingerprint) {
                continue;
            }
            if known.len() >= MAX_SESSION_CERTIFICATES {
                return Err(Error::FailedPrecondition(format!(
                    "certificates: at most {MAX_SESSION_CERTIFICATES} origins per session"
                )));
            }
            let verified = match self.origin_verifier()?.verify(der) {
                Ok(cert) => Some(cert),
                Err(reason) => {
                    tracing::warn!(%reason, "ignoring the records signed by a relayed certificate");
                    None
                }
            };
            known.insert(fingerprint, verified);
        }
        Ok(())
    }

    /// Every change's provenance and the structure its origin signed (a relayed change names
    /// it; a node's names it or is the session's), refusing the batch on a signature that is not
    /// the origin's.
    pub(super) fn verify_batch(&self, session: &PushSession, changes: &[Change]) -> Result<Vec<Verified>> {
        let none = Structure::default();
        // What this hub relays it verifies once, on receipt (relays always); a hub that relays
        // nothing keeps a node's signatures without the cost (`relay_change` verifies any record
        // still unverified before it vouches for it).
        let verify = session.relay() || !self.config.upstreams.is_empty();
        let now_ms = passerelle_proto::date::now_unix_ms();
        let mut checks: Vec<SignatureCheck<'_>> = Vec::new();
        let verified = changes
            .iter()
            .map(|change| {
                if change.key.is_empty() {
                    // A dataset-wide withdrawal, from a node only (`check_change`).
                    return Ok(Verified {
                        provenance: Provenance::Unsigned,
                        structure: None,
                        checked: false,
                        network: None,
                        signed_since: None,
                    });
                }
                let (structure, epoch, epoch_created_at_ms) = if session.relay() {
                    // A store cannot have been created in the future: a creation time beyond the
                    // hub's clock (with a day's slack for skew) would set a floor no genuine
                    // version could ever pass.
                    if change.origin_epoch_created_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
                        return Err(FieldError::new(
                            "origin_epoch_created_at_ms",
                            change.origin_epoch_created_at_ms.to_string(),
                            "is in the future: a store cannot have been created after now",
                        )
                        .into());
                    }
                    (change.origin.clone(), change.origin_epoch.as_slice(), change.origin_epoch_created_at_ms)
                } else {
                    let (epoch, at) = session.epoch();
                    (self.direct_structure(session, change)?, epoch, at)
                };
                let origin =
                    Origin { structure: structure.as_ref().unwrap_or(&none), epoch, epoch_created_at_ms };
                let (provenance, check) = self.check_signature(session, change, origin, verify)?;
                checks.extend(check);
                // What the apply needs of the signing certificate, not a copy of it (its key,
                // serial, fingerprint and identity: five allocations per change of a catch-up).
                let signer = (provenance == Provenance::Signed)
                    .then(|| {
                        let certificates = session.certificates();
                        let cert = certificates.get(&change.certificate_fingerprint)?.as_ref()?;
                        Some((cert.not_before, cert.network.clone()))
                    })
                    .flatten();
                let (signed_since, network) = signer.unzip();
                Ok(Verified {
                    provenance,
                    structure,
                    checked: verify && provenance == Provenance::Signed,
                    signed_since,
                    network,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        verify_all(&checks)?;
        Ok(verified)
    }

    /// Checks a change's signature against the session's certificates: `origin` is the
    /// structure it claims, signed with the epoch and creation time given. Returns whether it is
    /// signed; refuses a signature that is not the origin's.
    fn check_signature<'c>(
        &self,
        session: &PushSession,
        change: &'c Change,
        origin: Origin<'_>,
        verify: bool,
    ) -> Result<(Provenance, Option<SignatureCheck<'c>>)> {
        if change.signature.is_empty() {
            return Ok((Provenance::Unsigned, None));
        }
        let certificates = session.certificates();
        let cert = match certificates.get(&change.certificate_fingerprint) {
            None => {
                return Err(denied(
                    "certificate_fingerprint: no certificate of this session has it".to_string(),
                ));
            }
            Some(None) => return Ok((Provenance::Untrusted, None)),
            Some(Some(cert)) => cert,
        };
        // A session's certificates were checked when it learnt them; a serial denied since (a
        // reload while the stream is open) signs nothing more on it.
        if self.denied.read().map(|d| d.contains(&cert.serial)).unwrap_or(true) {
            if session.relay() {
                return Ok((Provenance::Untrusted, None));
            }
            return Err(denied(format!(
                "certificates: {}'s certificate {} is revoked",
                cert.peer, cert.serial
            )));
        }
        if cert.peer.id != origin.structure.siret {
            return Err(denied(format!(
                "signature: made by {}, not by the origin {}",
                cert.peer, origin.structure.siret
            )));
        }
        if !signed::signable_by(origin.epoch_created_at_ms, cert.not_after) {
            // Not evidence against the relay (it may not check dates), but nothing this
            // certificate can have signed: a store created after it expired.
            tracing::warn!(
                origin = %cert.peer, serial = %cert.serial, dataset = %change.dataset, key = %change.key,
                "ignoring a record of a store created after its signing certificate expired"
            );
            return Ok((Provenance::Untrusted, None));
        }
        let state = match &change.payload {
            Some(change::Payload::Need(need)) => Signed::Need(need),
            Some(change::Payload::Indicators(report)) => Signed::Indicators(report),
            Some(change::Payload::Profile(profile)) => Signed::Profile(profile),
            Some(change::Payload::Tombstone(_)) => Signed::Deleted,
            None => return Err(FieldError::rule("payload", "is required").into()),
        };
        if !verify {
            return Ok((Provenance::Signed, None));
        }
        let bytes = signed::signed_bytes(origin, &change.dataset, &change.key, change.version, state);
        let check = SignatureCheck {
            change,
            signer: cert.peer.to_string(),
            public_key: cert.public_key.clone(),
            bytes,
        };
        Ok((Provenance::Signed, Some(check)))
    }

    /// The structure a node's change was signed under: the one it names (its own SIRET, valid),
    /// or the one the node introduced at open.
    pub(super) fn direct_structure(
        &self,
        session: &PushSession,
        change: &Change,
    ) -> Result<Option<Structure>> {
        match &change.origin {
            Some(named) => {
                if named.siret != session.origin() {
                    return Err(super::datasets::impersonation(session.origin(), &named.siret));
                }
                passerelle_proto::validate::structure(named)?;
                Ok(Some(named.clone()))
            }
            None => Ok(session.structure().cloned()),
        }
    }

    /// Whether a stored record's signature is its origin's, by the certificate it names (held
    /// in the `certificates` tree): checked before a record never verified is relayed.
    pub(super) fn verify_stored(
        &self,
        origin: &str,
        dataset: &str,
        key: &str,
        record: &HubRecord,
    ) -> Result<bool> {
        let Some(der) = self.store.get(Tree::Certificates, &record.certificate_fingerprint)? else {
            return Ok(false);
        };
        let Ok((peer, _)) = passerelle_proto::identity::peer_of_certificate(&der) else { return Ok(false) };
        let Ok(info) = passerelle_proto::identity::inspect_certificate(&der) else { return Ok(false) };
        if !signed::signable_by(record.epoch_at_ms, info.not_after) {
            return Ok(false);
        }
        let Ok(public_key) = passerelle_proto::identity::signing_key_of_certificate(&der) else {
            return Ok(false);
        };
        let Some(structure) = record.origin.as_ref().filter(|s| s.siret == origin && peer.id == origin)
        else {
            return Ok(false);
        };
        let state = match (&record.need, &record.indicators) {
            _ if record.deleted => Signed::Deleted,
            (Some(need), _) => Signed::Need(need),
            (_, Some(report)) => Signed::Indicators(report),
            _ => return Ok(false),
        };
        let origin = Origin { structure, epoch: &record.epoch, epoch_created_at_ms: record.epoch_at_ms };
        let bytes = signed::signed_bytes(origin, dataset, key, record.version, state);
        Ok(crate::tls::signing::verify(&public_key, &bytes, &record.signature))
    }

    /// The newest certificate seen signing for `siret`, if any.
    pub(super) fn newest_signer(&self, siret: &str) -> Result<Option<NewestSigner>> {
        self.store
            .get(Tree::Meta, &newest_signer_key(siret))?
            .map(|raw| {
                NewestSigner::decode(raw.as_slice())
                    .map_err(|_| Error::Store(StoreError("corrupt newest signer".into())))
            })
            .transpose()
    }

    /// The floor of a relayed record (`RecordKey` bytes).
    pub(super) fn floor_of(&self, record_key: &[u8]) -> Result<Option<Floor>> {
        self.store
            .get(Tree::Floors, record_key)?
            .map(|raw| {
                Floor::decode(raw.as_slice()).map_err(|_| Error::Store(StoreError("corrupt floor".into())))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_certificate_signs_nothing_above_its_successor() {
        let (old, new) = (100, 200);
        let e = [1u8; 16];
        // First signer seen: it becomes the marker.
        let SignerCheck::Accept(Some(first)) = check_signer(None, new, 10, &e, 50) else {
            panic!("the first signer is the newest")
        };
        // The same certificate lower down lowers the marker; higher up changes nothing.
        assert!(
            matches!(check_signer(Some(&first), new, 10, &e, 40), SignerCheck::Accept(Some(m)) if m.version == 40)
        );
        assert_eq!(check_signer(Some(&first), new, 10, &e, 60), SignerCheck::Accept(None));
        // An older certificate: below its successor's records (a genuine late relay) accepted,
        // at or above (an inflated version, a store dated later) stale.
        assert_eq!(check_signer(Some(&first), old, 10, &e, 49), SignerCheck::Accept(None));
        assert_eq!(check_signer(Some(&first), old, 10, &e, 50), SignerCheck::Stale);
        assert_eq!(check_signer(Some(&first), old, 10, &e, u64::MAX), SignerCheck::Stale);
        assert_eq!(check_signer(Some(&first), old, 11, &[0; 16], 1), SignerCheck::Stale);
        assert_eq!(check_signer(Some(&first), old, 9, &[9; 16], 1_000), SignerCheck::Accept(None));
        // A newer certificate takes over wherever it signs.
        assert!(
            matches!(check_signer(Some(&first), 300, 10, &e, 70), SignerCheck::Accept(Some(m)) if m.not_before == 300)
        );
    }
}
