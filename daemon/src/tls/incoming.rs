//! The accept loop: TCP, then (for TLS listeners) a bounded handshake, then a stream that carries
//! its peer's identity into every request tonic builds from it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use passerelle_proto::identity::peer_of_certificate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::Peer;

/// What tonic puts in every request's extensions for a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Who the client is: from its verified certificate, or the local operator on a plaintext
    /// loopback listener.
    pub peer: Peer,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection. It holds a connection-limit permit until it is dropped.
pub(crate) struct PeerStream {
    io: Io,
    info: ConnInfo,
    _permit: OwnedSemaphorePermit,
}

impl Connected for PeerStream {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// How a listener accepts connections.
#[derive(Debug, Clone)]
pub(crate) struct AcceptPolicy {
    /// `None`: plaintext, loopback only (the caller checked), every client is the local operator.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// A TLS handshake that takes longer is abandoned.
    pub handshake_timeout: Duration,
}

/// The connections of `listener`, as a stream for `serve_with_incoming`. The accept loop stops when
/// the stream is dropped.
pub(crate) fn serve_incoming(
    listener: TcpListener,
    policy: AcceptPolicy,
) -> ReceiverStream<std::io::Result<PeerStream>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, policy, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    policy: AcceptPolicy,
    tx: mpsc::Sender<std::io::Result<PeerStream>>,
) {
    let permits = Arc::new(Semaphore::new(policy.max_connections));
    let acceptor = policy.tls.map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%remote, limit = policy.max_connections, "connection limit reached, closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tx = tx.clone();
        let acceptor = acceptor.clone();
        let timeout = policy.handshake_timeout;
        tokio::spawn(async move {
            let stream = match acceptor {
                None => PeerStream {
                    io: Io::Plain(tcp),
                    info: ConnInfo { peer: Peer::local_operator() },
                    _permit: permit,
                },
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let Some(peer) = peer_of_stream(&tls) else {
                            tracing::warn!(%remote, "tls peer without a usable identity");
                            return;
                        };
                        tracing::debug!(%remote, peer = %peer.id, "tls connection");
                        PeerStream { io: Io::Tls(Box::new(tls)), info: ConnInfo { peer }, _permit: permit }
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%remote, error = %e, "tls handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, ?timeout, "tls handshake timed out");
                        return;
                    }
                },
            };
            let _ = tx.send(Ok(stream)).await;
        });
    }
}

/// The identity of the verified client certificate (the verifier already refused any without one).
fn peer_of_stream(tls: &TlsStream<TcpStream>) -> Option<Peer> {
    let cert = tls.get_ref().1.peer_certificates()?.first()?;
    let (id, serial) = peer_of_certificate(cert).ok()?;
    Some(Peer { id, serial: Some(serial) })
}
