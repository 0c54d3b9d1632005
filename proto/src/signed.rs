//! What an origin node signs of a shared record, and how: the one canonical encoding.
//!
//! A record is signed once, by its origin node, when it is committed; the signature travels with
//! it to every hub and through every relay, so a relaying hub can withhold a record but neither
//! create, alter nor re-date one. The signed bytes ([`signed_bytes`]) are, in order:
//!
//! | part | encoding |
//! |---|---|
//! | domain | the 21 bytes `passerelle record v1\0` |
//! | kind | one byte: 1 need, 2 indicator report, 3 profile, 4 deletion |
//! | dataset | length-prefixed UTF-8 (`needs`, `indicators`, `profiles`) |
//! | key | length-prefixed UTF-8 (a need id, a month `YYYY-MM`) |
//! | origin | length-prefixed protobuf encoding of the origin's `Structure` |
//! | epoch | length-prefixed bytes (16): the origin store's epoch |
//! | epoch creation | 8 bytes, big-endian signed milliseconds since the Unix epoch |
//! | version | 8 bytes, big-endian unsigned |
//! | payload | length-prefixed protobuf encoding of the `SharedNeed`, `IndicatorReport` or `AnonymizedProfile`; empty for a deletion |
//!
//! A length prefix is 4 bytes, big-endian. The protobuf encodings are prost's: fields in tag
//! order, default values omitted, no unknown fields — deterministic for a given schema. Because
//! a hub re-encodes what it decoded, a field added to a signed message must reach hubs before
//! nodes fill it (a hub that drops an unknown field breaks the signature, and the record is
//! refused upstream rather than altered).
//!
//! The signature is ECDSA P-256 with SHA-256 over these bytes, as the fixed 64 bytes `r ‖ s`;
//! [`fingerprint`] (SHA-256 of the certificate's DER) names the certificate whose key made it.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::v1::{AnonymizedProfile, IndicatorReport, SharedNeed, Structure};

/// The domain separator every signed record starts with.
pub const DOMAIN: &[u8] = b"passerelle record v1\0";

/// Length of a signature: `r ‖ s`, 32 bytes each.
pub const SIGNATURE_LEN: usize = 64;

/// Length of a certificate fingerprint (SHA-256).
pub const FINGERPRINT_LEN: usize = 32;

/// The state a signature vouches for.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// A recruitment need.
    Need(&'a SharedNeed),
    /// A monthly indicator report.
    Indicators(&'a IndicatorReport),
    /// A profile.
    Profile(&'a AnonymizedProfile),
    /// The record was deleted at its origin at this version.
    Deleted,
}

/// Where a signed record comes from and which version of it this is.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The origin structure, as it was when the record was signed.
    pub structure: &'a Structure,
    /// The origin store's epoch.
    pub epoch: &'a [u8],
    /// When that store was created, milliseconds since the Unix epoch.
    pub epoch_created_at_ms: i64,
}

/// The canonical bytes of a record (see the module documentation).
pub fn signed_bytes(
    origin: Origin<'_>,
    dataset: &str,
    key: &str,
    version: u64,
    state: Signed<'_>,
) -> Vec<u8> {
    let (kind, payload) = match state {
        Signed::Need(need) => (1u8, need.encode_to_vec()),
        Signed::Indicators(report) => (2, report.encode_to_vec()),
        Signed::Profile(profile) => (3, profile.encode_to_vec()),
        Signed::Deleted => (4, Vec::new()),
    };
    let structure = origin.structure.encode_to_vec();
    let mut out =
        Vec::with_capacity(DOMAIN.len() + 64 + structure.len() + payload.len() + dataset.len() + key.len());
    out.extend_from_slice(DOMAIN);
    out.push(kind);
    for part in [dataset.as_bytes(), key.as_bytes(), &structure, origin.epoch] {
        push_prefixed(&mut out, part);
    }
    out.extend_from_slice(&origin.epoch_created_at_ms.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    push_prefixed(&mut out, &payload);
    out
}

fn push_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
}

/// Whether a certificate that expires at `not_after` (seconds since the Unix epoch, as X.509
/// says) can have signed a record of a store created at `epoch_created_at_ms`.
///
/// A node signs only while its certificate is valid, and its store exists before it signs, so a
/// genuine store was always created before the certificate that signs its records expired. The
/// rule bounds what the key of an expired certificate (never revoked, left on a decommissioned
/// machine) can forge: not a store dated after its expiry, whose versions would outrank every
/// version the structure signs later. What it can still date within its validity is bounded by
/// denying its serial.
pub fn signable_by(epoch_created_at_ms: i64, not_after: i64) -> bool {
    epoch_created_at_ms <= not_after.saturating_mul(1000).saturating_add(999)
}

/// The fingerprint of a certificate: SHA-256 of its DER.
pub fn fingerprint(certificate_der: &[u8]) -> Vec<u8> {
    Sha256::digest(certificate_der).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a signed deletion: what every node and hub version must agree on.
    #[test]
    fn canonical_bytes_are_fixed() {
        let structure =
            Structure { siret: "73282932000074".into(), kind: 2, name: "A".into(), departement: "49".into() };
        let origin = Origin { structure: &structure, epoch: &[7; 16], epoch_created_at_ms: 2 };
        let bytes = signed_bytes(origin, "needs", "k", 3, Signed::Deleted);
        let mut expected = b"passerelle record v1\0".to_vec();
        expected.push(4);
        expected.extend([0, 0, 0, 5]);
        expected.extend(b"needs");
        expected.extend([0, 0, 0, 1, b'k']);
        // Structure: siret (field 1), kind (field 2, varint), name (3), departement (4).
        expected.extend([0, 0, 0, 25, 0x0a, 14]);
        expected.extend(b"73282932000074");
        expected.extend([0x10, 2, 0x1a, 1, b'A', 0x22, 2, b'4', b'9']);
        expected.extend([0, 0, 0, 16]);
        expected.extend([7; 16]);
        expected.extend(2i64.to_be_bytes());
        expected.extend(3u64.to_be_bytes());
        expected.extend([0, 0, 0, 0]);
        assert_eq!(bytes, expected);
    }

    /// Every signed part changes the bytes: nothing a relay could alter is left out.
    #[test]
    fn every_part_is_signed() {
        let structure =
            Structure { siret: "73282932000074".into(), kind: 2, name: "A".into(), departement: "49".into() };
        let report = IndicatorReport { siret: structure.siret.clone(), version: 1, ..Default::default() };
        let base = |s: &Structure, epoch: &[u8], at: i64, version: u64, report: &IndicatorReport| {
            let origin = Origin { structure: s, epoch, epoch_created_at_ms: at };
            signed_bytes(origin, "indicators", "2026-07", version, Signed::Indicators(report))
        };
        let reference = base(&structure, &[1; 16], 5, 1, &report);
        let moved = Structure { departement: "72".into(), ..structure.clone() };
        let altered = IndicatorReport { submitted_at_ms: 9, ..report.clone() };
        for other in [
            base(&moved, &[1; 16], 5, 1, &report),
            base(&structure, &[2; 16], 5, 1, &report),
            base(&structure, &[1; 16], i64::MAX, 1, &report),
            base(&structure, &[1; 16], 5, 2, &report),
            base(&structure, &[1; 16], 5, 1, &altered),
        ] {
            assert_ne!(other, reference);
        }
    }
}
