//! Record signatures: a node signs each shared record with the key of its own certificate
//! (ECDSA P-256, as `passerelle pki` issues them) when it commits it, and a hub that receives a
//! record through a relay checks that signature against the origin's certificate.
//!
//! The bytes signed are `passerelle_proto::signed`'s; this module only holds keys. It uses ring,
//! which rustls already brings in as its crypto provider: no second ECDSA implementation.

use std::path::Path;

use passerelle_proto::signed;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use rustls::pki_types::PrivateKeyDer;

use crate::error::{Error, Result};

/// A node's signing key and the certificate that vouches for it.
pub struct RecordSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    certificate: Vec<u8>,
    fingerprint: Vec<u8>,
    /// When the certificate expires, seconds since the Unix epoch: it signs nothing after.
    not_after: i64,
}

impl std::fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSigner")
            .field("fingerprint", &crate::hub::ingest::hex(&self.fingerprint))
            .finish()
    }
}

impl RecordSigner {
    /// The signer of the certificate `cert` (its first certificate) with key `key`, both PEM.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let chain = super::load_certs(cert)?;
        let certificate = chain[0].to_vec();
        let PrivateKeyDer::Pkcs8(pkcs8) = super::load_key(key)? else {
            return Err(Error::Config(format!(
                "{}: records are signed with a PKCS#8 ECDSA P-256 key, as `passerelle pki` writes them",
                key.display()
            )));
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.secret_pkcs8_der(), &rng)
            .map_err(|e| Error::Config(format!("{}: not an ECDSA P-256 key: {e}", key.display())))?;
        let point = passerelle_proto::identity::signing_key_of_certificate(&certificate)
            .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?;
        if pair.public_key().as_ref() != point.as_slice() {
            return Err(Error::Config(format!(
                "{}: this key does not match the certificate {}",
                key.display(),
                cert.display()
            )));
        }
        let fingerprint = signed::fingerprint(&certificate);
        let not_after = passerelle_proto::identity::inspect_certificate(&certificate)
            .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?
            .not_after;
        Ok(Self { key: pair, rng, certificate, fingerprint, not_after })
    }

    /// The signature of `bytes` (64 bytes, `r ‖ s`).
    pub fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(&self.rng, bytes)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::Unavailable("the system random generator failed".into()))
    }

    /// Whether the certificate is still valid: an expired certificate's key signs nothing (a
    /// hub ignores what it would sign of a store created after the expiry, and a signature
    /// made after it cannot be told from a forgery with a leaked key).
    pub fn is_valid_now(&self) -> bool {
        passerelle_proto::date::now_unix_ms() / 1000 <= self.not_after
    }

    /// The certificate (DER) whose key signs.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// That certificate's fingerprint.
    pub fn fingerprint(&self) -> &[u8] {
        &self.fingerprint
    }
}

/// Whether `signature` is the signature of `bytes` by the key whose uncompressed P-256 point is
/// `public_point`.
pub fn verify(public_point: &[u8], bytes: &[u8], signature: &[u8]) -> bool {
    signature.len() == signed::SIGNATURE_LEN
        && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_point).verify(bytes, signature).is_ok()
}
