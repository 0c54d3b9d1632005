//! Sealing a candidate's fields to the requesting node, so the hub that carries them cannot read
//! them: ECDH on P-256 between a fresh ephemeral key and the public key of the recipient's
//! certificate, HKDF-SHA256, AES-256-GCM.
//!
//! The certificate is the one the hub verified at the recipient's handshake and forwarded; the
//! holder checks it against its own CAs first ([`verify_requester_chain`]) so a hub cannot
//! substitute a key of its own. The HKDF info binds the request id, the candidate reference and
//! both public keys, and the request id and candidate are also the AEAD's associated data: a
//! ciphertext moved to another request or candidate does not open.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p256::{PublicKey, SecretKey};
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{CandidateFields, SealedFields};
use prost::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use sha2::Sha256;

use crate::error::{Error, Result};

const INFO: &[u8] = b"passerelle introduction v1";

/// The public key of a certificate (DER), as a P-256 key.
fn certificate_key(cert: &[u8]) -> Result<PublicKey> {
    let spki =
        passerelle_proto::identity::public_key_of_certificate(cert).map_err(Error::FailedPrecondition)?;
    PublicKey::from_public_key_der(&spki)
        .map_err(|_| Error::FailedPrecondition("requester certificate: not a P-256 key".into()))
}

fn context(request_id: &str, candidate: &str, ephemeral: &[u8], recipient: &[u8]) -> Vec<u8> {
    let mut info = INFO.to_vec();
    for part in [request_id.as_bytes(), candidate.as_bytes(), ephemeral, recipient] {
        info.extend_from_slice(&(part.len() as u32).to_be_bytes());
        info.extend_from_slice(part);
    }
    info
}

fn cipher(shared: &[u8], info: &[u8]) -> Result<Aes256Gcm> {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, shared)
        .expand(info, &mut key)
        .map_err(|_| Error::Internal("hkdf expand".into()))?;
    Aes256Gcm::new_from_slice(&key).map_err(|_| Error::Internal("aes key length".into()))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// Seals `fields` to the holder of the key of certificate `recipient_cert` (DER).
pub(crate) fn seal(
    recipient_cert: &[u8],
    request_id: &str,
    candidate: &str,
    fields: &CandidateFields,
) -> Result<SealedFields> {
    let recipient = certificate_key(recipient_cert)?;
    let ephemeral = loop {
        // A uniformly random 32-byte string is a valid scalar but with negligible probability.
        if let Ok(key) = SecretKey::from_slice(&random::<32>()?) {
            break key;
        }
    };
    let ephemeral_public = ephemeral.public_key().to_sec1_bytes().to_vec();
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), recipient.as_affine());
    let info = context(request_id, candidate, &ephemeral_public, &recipient.to_sec1_bytes());
    let nonce = random::<12>()?;
    let aad = context(request_id, candidate, &[], &[]);
    let ciphertext = cipher(shared.raw_secret_bytes().as_slice(), &info)?
        .encrypt(&Nonce::from(nonce), Payload { msg: &fields.encode_to_vec(), aad: &aad })
        .map_err(|_| Error::Internal("aes-gcm encryption".into()))?;
    Ok(SealedFields { ephemeral_public_key: ephemeral_public, nonce: nonce.to_vec(), ciphertext })
}

/// Opens fields sealed to this node's key for `request_id` and `candidate`; any change to the
/// ciphertext, nonce, ephemeral key, request or candidate is refused.
pub(crate) fn open(
    key: &SecretKey,
    request_id: &str,
    candidate: &str,
    sealed: &SealedFields,
) -> Result<CandidateFields> {
    let refused = || Error::FailedPrecondition(format!("candidate {candidate}: sealed fields do not open"));
    passerelle_proto::validate::sealed_fields("sealed", sealed).map_err(|_| refused())?;
    let ephemeral = PublicKey::from_sec1_bytes(&sealed.ephemeral_public_key).map_err(|_| refused())?;
    let nonce: [u8; 12] = sealed.nonce.as_slice().try_into().map_err(|_| refused())?;
    let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), ephemeral.as_affine());
    let info =
        context(request_id, candidate, &sealed.ephemeral_public_key, &key.public_key().to_sec1_bytes());
    let aad = context(request_id, candidate, &[], &[]);
    let plain = cipher(shared.raw_secret_bytes().as_slice(), &info)?
        .decrypt(&Nonce::from(nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
        .map_err(|_| refused())?;
    CandidateFields::decode(plain.as_slice()).map_err(|_| refused())
}

/// The node's private key (`[tls] key`, PEM, PKCS#8 or SEC1) as a P-256 key.
pub(crate) fn load_secret_key(path: &Path) -> Result<SecretKey> {
    let unusable = |why: &str| Error::Config(format!("{}: {why}", path.display()));
    match crate::tls::load_key(path)? {
        PrivateKeyDer::Pkcs8(der) => {
            SecretKey::from_pkcs8_der(der.secret_pkcs8_der()).map_err(|_| unusable("not a P-256 key"))
        }
        PrivateKeyDer::Sec1(der) => {
            SecretKey::from_sec1_der(der.secret_sec1_der()).map_err(|_| unusable("not a P-256 key"))
        }
        _ => Err(unusable("introductions need a P-256 (ECDSA) key")),
    }
}

/// Checks a requester's certificate chain (DER, end entity first) against the CAs in `ca_file`
/// (one or several certificates): a valid chain, client-auth usage, in its validity period, and
/// naming `passerelle://node/SIRET` for the requester the hub says sent the request.
pub(crate) fn verify_requester_chain(ca_file: &Path, chain: &[Vec<u8>], siret: &str) -> Result<()> {
    let refused = |why: String| Error::PermissionDenied(format!("requester certificate of {siret}: {why}"));
    let (end, rest) = chain.split_first().ok_or_else(|| refused("missing".into()))?;
    let roots = std::sync::Arc::new(crate::tls::load_roots(&[ca_file])?);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| Error::Config(format!("tls.ca: {e}")))?;
    let intermediates: Vec<CertificateDer<'_>> =
        rest.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    verifier
        .verify_client_cert(&CertificateDer::from(end.as_slice()), &intermediates, UnixTime::now())
        .map_err(|e| refused(format!("not trusted here: {e}")))?;
    let (peer, _) = passerelle_proto::identity::peer_of_certificate(end).map_err(refused)?;
    if peer != (PeerId { role: Role::Node, id: siret.to_string() }) {
        return Err(refused(format!("names {peer}, not this requester")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> CandidateFields {
        CandidateFields {
            first_name: "Camille".into(),
            phone: Some("06 12 34 56 78".into()),
            ..Default::default()
        }
    }

    fn keypair() -> (SecretKey, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let secret = SecretKey::from_pkcs8_der(&key.serialize_der()).expect("pkcs8");
        (secret, cert.der().to_vec())
    }

    #[test]
    fn seals_to_the_certificate_key_only() {
        let (secret, cert) = keypair();
        let sealed = seal(&cert, "r1", "c1", &fields()).expect("seal");
        assert_eq!(open(&secret, "r1", "c1", &sealed).expect("open"), fields());
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"Camille"));
        let (other, _) = keypair();
        assert!(open(&other, "r1", "c1", &sealed).is_err(), "another key");
        assert!(open(&secret, "r2", "c1", &sealed).is_err(), "moved to another request");
        assert!(open(&secret, "r1", "c2", &sealed).is_err(), "moved to another candidate");
        for i in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[i] ^= 1;
            assert!(open(&secret, "r1", "c1", &tampered).is_err(), "byte {i} flipped");
        }
    }
}
