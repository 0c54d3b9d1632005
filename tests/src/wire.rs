//! A client speaking HTTP/2 over mutual TLS directly (the `h2` crate), for the attacks tonic's
//! client is too polite to make: the windows it advertises, streams it resets at once, bytes it
//! never reads, connections on which it never says anything.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use passerelle_client::TlsFiles;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A mutual-TLS connection to `addr` (a hub listener, server name `localhost`) with the
/// certificate `files`, ALPN `h2`; nothing sent on it yet.
pub async fn tls_connect(addr: SocketAddr, files: &TlsFiles) -> anyhow::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&files.ca)? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let name = ServerName::try_from("localhost".to_string())?;
    connector.connect(name, tcp).await.context("tls handshake")
}

/// An HTTP/2 client on `io` advertising `window` bytes for each stream (and at least that for the
/// connection); its connection is driven by a task whose result tells how the connection ended.
pub async fn h2_client(
    io: TlsStream<TcpStream>,
    window: u32,
) -> anyhow::Result<(h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>)> {
    let (send, _, task) = h2_client_with_ping(io, window).await?;
    Ok((send, task))
}

/// [`h2_client`], with the means to PING the server (a round trip: every frame sent before it
/// has been read by the server).
pub async fn h2_client_with_ping(
    io: TlsStream<TcpStream>,
    window: u32,
) -> anyhow::Result<(
    h2::client::SendRequest<Bytes>,
    h2::PingPong,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
)> {
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .initial_connection_window_size(window.max(65_535))
        .handshake(io)
        .await
        .context("http/2 handshake")?;
    let ping = connection.ping_pong().context("the connection's ping handle")?;
    Ok((send, ping, tokio::spawn(connection)))
}

/// The head of a gRPC call to `path` (`/package.Service/Method`).
pub fn grpc_request(path: &str) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = format!("https://localhost{path}").parse().expect("a valid uri");
    let headers = request.headers_mut();
    headers.insert("content-type", http::HeaderValue::from_static("application/grpc"));
    headers.insert("te", http::HeaderValue::from_static("trailers"));
    request
}

/// `message` as one gRPC frame (uncompressed).
pub fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let payload = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(0);
    frame.extend(u32::try_from(payload.len()).expect("a small message").to_be_bytes());
    frame.extend(payload);
    frame.into()
}
