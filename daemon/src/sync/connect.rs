//! Connecting to a hub: mutual TLS where the node checks not only that the hub's certificate
//! chains to its CA and names the endpoint's host, but that it is the certificate of the hub it
//! means to talk to (`passerelle://hub/ID`). tonic's own TLS cannot check the latter, so the TLS
//! handshake happens here, in a connector, and tonic speaks HTTP/2 over the verified stream.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use passerelle_client::TlsFiles;
use passerelle_proto::identity::{PeerId, Role, peer_of_certificate};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::HubLink;
use crate::error::{Error, Result};
use crate::tls::{load_identity, load_roots};

/// Verifies a hub's certificate: WebPKI (chain, dates, host name), then its Passerelle identity.
#[derive(Debug)]
struct HubVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: PeerId,
}

impl ServerCertVerifier for HubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        match peer_of_certificate(end_entity) {
            Ok((peer, _)) if peer == self.expected => Ok(ServerCertVerified::assertion()),
            Ok((peer, _)) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(Error::PermissionDenied(format!(
                    "the server's certificate is {}, not {}",
                    peer.uri(),
                    self.expected.uri()
                )))),
            ))),
            Err(reason) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(Error::PermissionDenied(format!(
                    "the server's certificate has no passerelle identity: {reason}"
                )))),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A channel to `hub` over mutual TLS, verifying that the server is that hub.
pub(crate) async fn connect(hub: &HubLink, tls: &TlsFiles) -> Result<Channel> {
    let config_error = |e: String| Error::Config(format!("hubs.endpoint {}: {e}", hub.endpoint));
    let uri: Uri = hub.endpoint.parse().map_err(|e| config_error(format!("{e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| config_error("no host".into()))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let expected = PeerId::new(Role::Hub, &hub.id).map_err(|e| config_error(e.to_string()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(load_roots(&[&tls.ca])?);
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("tls.ca: {e}")))?;
    let (chain, key) = load_identity(&tls.cert, &tls.key)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HubVerifier { inner, expected }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::Config(format!("tls.cert: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(host.clone()).map_err(|e| config_error(format!("{e}")))?;

    // tonic sees plain HTTP/2: the TLS is this connector's.
    let endpoint =
        Endpoint::from_shared(format!("http://{}", uri.authority().map(|a| a.as_str()).unwrap_or(&host)))
            .map_err(|e| config_error(format!("{e}")))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
    let dial = tower::service_fn(move |_: Uri| {
        let (connector, server_name, host) = (connector.clone(), server_name.clone(), host.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint.connect_with_connector(dial).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot reach hub {} at {}: {}",
            hub.id,
            hub.endpoint,
            crate::error::chain(&e)
        ))
    })
}
