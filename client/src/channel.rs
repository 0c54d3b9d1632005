//! Opening a gRPC channel: plaintext for `http://` (a node's loopback API), mutual TLS for
//! `https://` (hubs, and APIs served off loopback).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, Result, chain};

/// How long to wait for a connection before calling the peer unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The files of a TLS client: the CA(s) the server must chain to, and the client's own identity.
/// One type for every TLS client: the CLI's `--ca/--cert/--key`, and in the daemon a node's
/// `[tls]` towards its hubs and a hub's `[[upstream]]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s), PEM, the server must chain to.
    pub ca: PathBuf,
    /// Client certificate, PEM.
    pub cert: PathBuf,
    /// Client private key, PEM.
    pub key: PathBuf,
}

fn read(path: &Path, what: &str, endpoint: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: format!("cannot read {what} {}: {e}", path.display()),
    })
}

/// Connects to `endpoint`; `what` names the peer in errors ("node", "hub").
pub async fn connect(endpoint: &str, tls: Option<&TlsFiles>, what: &'static str) -> Result<Channel> {
    let invalid = |reason: String| Error::InvalidEndpoint { endpoint: endpoint.to_string(), reason };
    let secure = endpoint.starts_with("https://");
    if !secure && !endpoint.starts_with("http://") {
        return Err(invalid("expected a URL starting with http:// or https://".into()));
    }
    let mut builder = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| invalid(chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    if secure {
        let Some(files) = tls else {
            return Err(invalid(
                "https endpoints need --ca, --cert and --key (or PASSERELLE_CA, PASSERELLE_CERT, PASSERELLE_KEY)".into(),
            ));
        };
        let host = builder.uri().host().unwrap_or("localhost").to_string();
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&files.ca, "--ca", endpoint)?))
            .identity(Identity::from_pem(
                read(&files.cert, "--cert", endpoint)?,
                read(&files.key, "--key", endpoint)?,
            ))
            .domain_name(host);
        builder = builder.tls_config(config).map_err(|e| invalid(chain(&e)))?;
    }
    builder.connect().await.map_err(|e| Error::Unreachable {
        what,
        endpoint: endpoint.to_string(),
        detail: chain(&e),
    })
}
