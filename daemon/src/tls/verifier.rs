//! The client-certificate verifier: WebPKI chain validation, then Passerelle's own checks.

use std::sync::Arc;

use passerelle_proto::identity::peer_of_certificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::DenyList;

/// Accepts a client certificate only if it chains to a trusted CA (delegated to WebPKI, which also
/// checks validity dates and the client-auth usage), carries exactly one valid `passerelle://`
/// identity, and is not revoked.
#[derive(Debug)]
pub(super) struct PasserelleClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    denied: DenyList,
}

impl PasserelleClientVerifier {
    pub(super) fn new(inner: Arc<dyn ClientCertVerifier>, denied: DenyList) -> Self {
        Self { inner, denied }
    }
}

impl ClientCertVerifier for PasserelleClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let (peer, serial) = peer_of_certificate(end_entity).map_err(|reason| {
            tracing::warn!(%reason, "refused a certificate without a passerelle identity");
            Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        })?;
        let revoked = self.denied.read().map(|d| d.contains(&serial)).unwrap_or(true);
        if revoked {
            tracing::warn!(%peer, %serial, "refused a revoked certificate");
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
