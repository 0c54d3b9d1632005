//! The accept loop: TCP, then (for TLS listeners) a bounded handshake, then a stream that carries
//! its peer's identity into every request served on it.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use passerelle_proto::identity::inspect_certificate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::{Issuer, Peer, Trust};

/// What every request on a connection carries in its extensions (put there by `serve`).
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Who the client is: from its verified certificate, or the local operator on a plaintext
    /// loopback listener.
    pub peer: Peer,
    /// When the client's certificate stops being valid, seconds since the Unix epoch (`None`
    /// for the local operator). The handshake checked it once; calls and long streams on the
    /// connection are refused or ended from then on (see `authz`).
    pub expires_at_s: Option<i64>,
    /// The trust anchor that issued the client's certificate (`None` for the local operator):
    /// `authz` refuses a role it may not vouch for.
    pub issuer: Option<Issuer>,
    /// The client's certificate chain as the handshake verified it (DER, end entity first; empty
    /// for the local operator): a hub forwards a requester's with its introductions.
    pub chain: std::sync::Arc<[Vec<u8>]>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection. It holds a connection-limit permit (and, on TLS, one of its
/// identity's slots) until it is dropped.
pub(crate) struct PeerStream {
    io: Io,
    info: ConnInfo,
    _permit: OwnedSemaphorePermit,
    _slot: Option<PeerSlot>,
}

/// The connections open per certified identity on one listener.
type PerPeer = Arc<Mutex<HashMap<(Option<String>, passerelle_proto::identity::PeerId), usize>>>;

/// One of an identity's connection slots, given back when the connection is dropped.
struct PeerSlot {
    counts: PerPeer,
    key: (Option<String>, passerelle_proto::identity::PeerId),
}

impl PeerSlot {
    /// A slot for `peer` if it holds fewer than `max` connections.
    fn take(counts: &PerPeer, peer: &Peer, max: usize) -> Option<Self> {
        let key = (peer.network.clone(), peer.id.clone());
        let mut map = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = map.entry(key.clone()).or_default();
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(Self { counts: counts.clone(), key })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl PeerStream {
    /// Who is on the other end, as every request on this connection carries it.
    pub(crate) fn info(&self) -> &ConnInfo {
        &self.info
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
    /// Otherwise the server config and its trust anchors.
    pub tls: Option<(Arc<rustls::ServerConfig>, Arc<Trust>)>,
    /// Authenticated connections beyond this are closed at once.
    pub max_connections: usize,
    /// TLS connections of one identity (network, role, id) beyond this are closed at once.
    pub max_connections_per_peer: usize,
    /// Handshakes in progress beyond this evict the oldest one.
    pub max_handshakes: usize,
    /// A TLS handshake that takes longer is abandoned.
    pub handshake_timeout: Duration,
}

/// The connections of `listener`, as a stream for [`crate::serve::serve`]. The accept loop stops when
/// the stream is dropped.
pub(crate) fn serve_incoming(
    listener: TcpListener,
    policy: AcceptPolicy,
) -> ReceiverStream<std::io::Result<PeerStream>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, policy, tx));
    ReceiverStream::new(rx)
}

/// The handshakes in progress on one listener, oldest first, each with the means to abandon it.
///
/// Why eviction rather than refusal: with a fixed budget that refuses newcomers, a peer holding
/// the budget with silent sockets locks everyone out until its handshakes time out — and it can
/// renew them forever. Evicting the oldest means a silent socket lives only until enough newer
/// connections arrive, while a real client, which finishes in a few round trips, is almost never
/// the oldest. (An attacker would have to open `max_handshakes` connections within one real
/// handshake's few milliseconds, far beyond what one accept loop admits.)
#[derive(Debug, Default)]
struct Pending {
    next: u64,
    abandon: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Pending {
    /// Registers a new handshake, evicting the oldest ones beyond `max`. Returns its ticket and
    /// the receiver that fires (or closes) when it is evicted.
    fn admit(&mut self, max: usize) -> (u64, oneshot::Receiver<()>) {
        while self.abandon.len() >= max.max(1) {
            match self.abandon.pop_first() {
                Some((_, evict)) => {
                    let _ = evict.send(());
                }
                None => break,
            }
        }
        let ticket = self.next;
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.abandon.insert(ticket, tx);
        (ticket, rx)
    }

    fn done(&mut self, ticket: u64) {
        self.abandon.remove(&ticket);
    }
}

async fn accept_loop(
    listener: TcpListener,
    policy: AcceptPolicy,
    tx: mpsc::Sender<std::io::Result<PeerStream>>,
) {
    let permits = Arc::new(Semaphore::new(policy.max_connections));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let per_peer = PerPeer::default();
    let acceptor = policy.tls.map(|(config, trust)| (TlsAcceptor::from(config), trust));
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
        let _ = tcp.set_nodelay(true);
        let tx = tx.clone();
        let Some((acceptor, trust)) = acceptor.clone() else {
            // Plaintext loopback: the operator, already authenticated by being local.
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%remote, limit = policy.max_connections, "connection limit reached, closing a new connection");
                continue;
            };
            let info = ConnInfo {
                peer: Peer::local_operator(),
                expires_at_s: None,
                issuer: None,
                chain: Default::default(),
            };
            let stream = PeerStream { io: Io::Plain(tcp), info, _permit: permit, _slot: None };
            if tx.send(Ok(stream)).await.is_err() {
                return;
            }
            continue;
        };
        let (ticket, evicted) = lock(&pending).admit(policy.max_handshakes);
        let pending = pending.clone();
        let permits = permits.clone();
        let timeout = policy.handshake_timeout;
        let limit = policy.max_connections;
        let (per_peer, per_peer_limit) = (per_peer.clone(), policy.max_connections_per_peer);
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(timeout, acceptor.accept(tcp)) => Some(outcome),
                _ = evicted => None,
            };
            lock(&pending).done(ticket);
            let tls = match outcome {
                Some(Ok(Ok(tls))) => tls,
                Some(Ok(Err(e))) => {
                    tracing::info!(%remote, error = %e, "tls handshake refused");
                    return;
                }
                Some(Err(_)) => {
                    tracing::info!(%remote, ?timeout, "tls handshake timed out");
                    return;
                }
                None => {
                    tracing::info!(%remote, "unfinished tls handshake evicted by newer connections");
                    return;
                }
            };
            let Some((peer, issuer, expires_at_s)) = peer_of_stream(&tls, &trust) else {
                tracing::warn!(%remote, "tls peer without a usable identity or issuing anchor");
                return;
            };
            // One identity cannot take the listener's whole budget: an honest peer holds one
            // connection, a hostile one with a valid certificate could otherwise hold them all.
            let Some(slot) = PeerSlot::take(&per_peer, &peer, per_peer_limit) else {
                tracing::warn!(%remote, peer = %peer.id, limit = per_peer_limit, "connection limit per peer reached, closing a new connection");
                return;
            };
            // Only now does the connection count against the authenticated budget.
            let Ok(permit) = permits.try_acquire_owned() else {
                tracing::warn!(%remote, peer = %peer.id, limit, "connection limit reached, closing a new connection");
                return;
            };
            tracing::debug!(%remote, peer = %peer.id, "tls connection");
            let chain =
                tls.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect();
            let info = ConnInfo { peer, expires_at_s: Some(expires_at_s), issuer: Some(issuer), chain };
            let stream = PeerStream { io: Io::Tls(Box::new(tls)), info, _permit: permit, _slot: Some(slot) };
            let _ = tx.send(Ok(stream)).await;
        });
    }
}

/// The pending set's lock; a panic elsewhere cannot leave it inconsistent (each operation is a
/// single map insert or removal), so a poisoned lock is used as is.
fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The identity of the verified client certificate (the verifier already refused any without one)
/// bound to the anchor that issued it; also the certificate's end of validity.
fn peer_of_stream(tls: &TlsStream<TcpStream>, trust: &Trust) -> Option<(Peer, Issuer, i64)> {
    let (cert, intermediates) = tls.get_ref().1.peer_certificates()?.split_first()?;
    let info = inspect_certificate(cert).ok()?;
    let issuer = trust.issuer_of(cert, intermediates)?;
    let peer = Peer::certified(&issuer.network, info.peer.ok()?, Some(info.serial));
    Some((peer, issuer, info.not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_handshake_budget_evicts_the_oldest() {
        let mut pending = Pending::default();
        let (a, mut rx_a) = pending.admit(2);
        let (_b, mut rx_b) = pending.admit(2);
        assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err(), "nobody evicted yet");
        let (_c, _rx_c) = pending.admit(2);
        assert_eq!(rx_a.try_recv(), Ok(()), "the oldest goes");
        assert!(rx_b.try_recv().is_err(), "the others stay");
        pending.done(a);
        assert_eq!(pending.abandon.len(), 2);
    }
}
