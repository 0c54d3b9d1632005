//! Serving gRPC connections: hyper's HTTP/2 server under our own accept loop, instead of tonic's
//! `serve_with_incoming`.
//!
//! Why not tonic's server: it builds hyper's HTTP/2 connection with settings we cannot reach, and
//! one of them is a size a peer controls. hyper keeps polling a response body as long as the
//! stream's send window (set by the *client*) allows, queueing frames in h2 up to 400 KiB per
//! stream. A hub with 4,000 view subscribers then held ~160 MB of queued view pages at the peak of
//! the fan-in bench; a hostile member advertising a large window and not reading could pin
//! 400 KiB per stream it opens. Here the queue is [`MAX_SEND_BUFFER`] per stream, whatever the
//! client says: the view's pages are then made only as fast as the peer reads them.
//!
//! What tonic's server did per connection, and where it went: the connection's
//! [`ConnInfo`](crate::tls::incoming::ConnInfo) goes into each request's extensions (as tonic's
//! `Connected` did); the `rpc` span wraps each call's response future; the request timeout bounds
//! the response future (not a stream's body: long streams stay open); the per-connection call cap
//! is h2's `max_concurrent_streams`, which also counts streams whose body is still flowing.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::tls::incoming::PeerStream;

/// What hyper may queue for one stream before it stops polling the stream's body: a few view
/// pages (about 4 kB each) or one large message in flight. The socket drains the connection's
/// streams in turn; beyond this a subscriber's pages wait in the hub's store, not in memory.
pub(crate) const MAX_SEND_BUFFER: usize = 16 * 1024;

/// The largest header block a peer may send (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, enforced by
/// h2 across CONTINUATION frames): a gRPC call's headers are a few hundred bytes.
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Streams a peer may reset before hyper accepts them (h2's own rapid-reset bound).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams h2 may reset for the peer's protocol errors (e.g. refused beyond the stream cap)
/// before it closes the connection with `ENHANCE_YOUR_CALM`.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// Calls a peer may abandon (reset or cancel before their response ended) on one connection in
/// a burst, and per second after that; beyond, the connection is dropped. h2 bounds only resets
/// of streams not yet accepted, and hyper accepts at once: every call reset the moment it opens
/// still reaches the service (a task, authorization, sometimes a blocking store read). An honest
/// client cancels a call now and then, not hundreds a second.
const ABANDON_BURST: f64 = 200.0;
const ABANDON_PER_SECOND: f64 = 20.0;

/// How long a connection may take to finish after GOAWAY (idle or shutdown), at most; less if
/// `idle_timeout` is shorter. A peer that never opens its window or never reads would otherwise
/// hold the graceful shutdown open forever.
const MAX_DRAIN: Duration = Duration::from_secs(10);

/// How one listener's connections are served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeSettings {
    /// A call whose response has not started by then gets CANCELLED (or earlier, when the client
    /// sent a shorter `grpc-timeout`).
    pub request_timeout: Duration,
    /// Streams open at once on one connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// A connection with no call open this long is closed (GOAWAY); a peer silent this long is
    /// sent a PING, and dropped if it does not answer within `min(idle_timeout, MAX_DRAIN)`.
    pub idle_timeout: Duration,
}

/// Serves the connections of `incoming` with `routes` behind `layers` until `signal` completes;
/// then stops accepting, asks every connection to finish (HTTP/2 GOAWAY: calls in flight end
/// normally), and returns once all are closed or their drain time is up.
pub(crate) async fn serve<L, ResBody>(
    routes: Routes,
    layers: L,
    incoming: impl Stream<Item = std::io::Result<PeerStream>>,
    settings: ServeSettings,
    signal: impl Future<Output = ()>,
) where
    L: Layer<Routes>,
    L::Service: Service<http::Request<Body>, Response = http::Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    <L::Service as Service<http::Request<Body>>>::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = layers.layer(routes.prepare());
    let drain = settings.idle_timeout.min(MAX_DRAIN);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_send_buf_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(settings.idle_timeout)
        .keep_alive_timeout(drain);
    // Every connection holds a receiver; the sender learns when the last one is gone.
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    // Boxed, so it can be dropped (stopping the accept loop) before the connections drain.
    let mut incoming = Box::pin(incoming);
    let mut signal = std::pin::pin!(signal);
    loop {
        let io = tokio::select! {
            () = &mut signal => break,
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accepting a connection failed");
                    continue;
                }
                None => break,
            },
        };
        let info = io.info().clone();
        let peer = info.peer.id.clone();
        let service = service.clone();
        let timeout = settings.request_timeout;
        let calls = Arc::new(Calls::new());
        let partial = crate::limits::PartialMessages::default();
        let watched = calls.state.subscribe();
        let per_request = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let guard = CallGuard::new(&calls);
            let abandoned = guard.abandoned.clone();
            let mut request = request.map(|body| Body::new(Broken { inner: body, abandoned }));
            request.extensions_mut().insert(info.clone());
            request.extensions_mut().insert(partial.clone());
            let span =
                tracing::info_span!("rpc", method = %request.uri().path(), peer = tracing::field::Empty);
            let deadline = grpc_timeout(request.headers()).map_or(timeout, |t| t.min(timeout));
            let call = service.clone().oneshot(request);
            async move {
                let response = match tokio::time::timeout(deadline, call).await {
                    Ok(Ok(response)) => response.map(Body::new),
                    Ok(Err(never)) => match never {},
                    Err(_) => Status::cancelled("timeout expired").into_http(),
                };
                Ok::<_, Infallible>(response.map(|body| Body::new(Counted { inner: body, guard })))
            }
            .instrument(span)
        });
        let connection = builder.serve_connection(TokioIo::new(io), per_request);
        let mut closing = closing_rx.clone();
        let idle_timeout = settings.idle_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut abandoning = watched.clone();
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing) => {}
                () = idle(watched, idle_timeout) => {
                    tracing::debug!(%peer, ?idle_timeout, "closing an idle connection");
                }
                _ = abandoning.wait_for(|state| state.abusive) => {
                    tracing::warn!(%peer, "peer abandons calls faster than allowed (rapid reset?): dropping its connection");
                    return;
                }
            }
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(drain, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "connection ended with an error while closing"),
                Err(_) => tracing::info!(%peer, ?drain, "connection did not finish after GOAWAY: dropped"),
            }
            drop(closing);
        });
    }
    // Stop accepting at once (dropping the stream stops the accept loop), then drain.
    drop(incoming);
    drop(closing_rx);
    let _ = closing_tx.send(true);
    closing_tx.closed().await;
}

/// Completes once `calls` has had no call open for `after` (not at all while one is open).
async fn idle(mut calls: tokio::sync::watch::Receiver<CallState>, after: Duration) {
    loop {
        let open = calls.borrow_and_update().open;
        let changed = if open == 0 {
            match tokio::time::timeout(after, calls.changed()).await {
                Err(_) => return,
                Ok(changed) => changed,
            }
        } else {
            calls.changed().await
        };
        if changed.is_err() {
            // The connection is gone; its own branch ends the task.
            return std::future::pending().await;
        }
    }
}

/// What a connection's task watches of its calls.
#[derive(Debug, Default, Clone, Copy)]
struct CallState {
    /// Calls whose response body has not ended (or been dropped).
    open: usize,
    /// The peer abandoned more calls than [`ABANDON_BURST`] and [`ABANDON_PER_SECOND`] allow.
    abusive: bool,
}

/// One connection's calls.
struct Calls {
    state: tokio::sync::watch::Sender<CallState>,
    /// Token bucket of calls the peer may still abandon, and when it was last filled.
    budget: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl Calls {
    fn new() -> Self {
        Self {
            state: tokio::sync::watch::Sender::new(CallState::default()),
            budget: std::sync::Mutex::new((ABANDON_BURST, std::time::Instant::now())),
        }
    }

    /// Takes one abandoned call from the budget; `false` when it is spent.
    fn abandon(&self) -> bool {
        let mut budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = &mut *budget;
        let now = std::time::Instant::now();
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * ABANDON_PER_SECOND).min(ABANDON_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A call's place in its connection's count, from its request's arrival until its response body
/// ends or is dropped. The peer abandoned the call if its request body broke off (a reset
/// stream: the handler then answers an error of its own) or the call was dropped before its
/// response ended (hyper drops a call whose stream is reset before it answers).
struct CallGuard {
    calls: Arc<Calls>,
    finished: bool,
    abandoned: Abandoned,
}

/// Set once a call has been found abandoned, by its request body or its guard (counted once).
#[derive(Clone)]
struct Abandoned {
    calls: Arc<Calls>,
    once: Arc<std::sync::atomic::AtomicBool>,
}

impl Abandoned {
    /// Charges the call to its connection's budget, the first time only.
    fn charge(&self) {
        if !self.once.swap(true, std::sync::atomic::Ordering::Relaxed) && !self.calls.abandon() {
            self.calls.state.send_modify(|state| state.abusive = true);
        }
    }
}

impl CallGuard {
    fn new(calls: &Arc<Calls>) -> Self {
        calls.state.send_modify(|state| state.open += 1);
        let abandoned = Abandoned { calls: calls.clone(), once: Default::default() };
        Self { calls: calls.clone(), finished: false, abandoned }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.charge();
        }
        self.calls.state.send_modify(|state| state.open = state.open.saturating_sub(1));
    }
}

/// A request body that charges its call as abandoned when it breaks off (the peer reset the
/// stream or the connection failed).
struct Broken {
    inner: Incoming,
    abandoned: Abandoned,
}

impl http_body::Body for Broken {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Err(_)) = &frame {
            this.abandoned.charge();
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells its call's guard when it has ended.
struct Counted {
    inner: Body,
    guard: CallGuard,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) if !frame.is_trailers() => {}
            // Trailers, the end, or the server's own error: the call is over.
            _ => this.guard.finished = true,
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // hyper does not poll a body that says it is at its end (a trailers-only answer).
        if http_body::Body::is_end_stream(&self.inner) {
            self.guard.finished = true;
        }
    }
}

/// The client's deadline, from the `grpc-timeout` header (`<digits><unit>`, at most 8 digits;
/// units H, M, S, m, u, n). A malformed header is ignored: the server's own timeout still holds.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::tls::incoming::{AcceptPolicy, serve_incoming};

    /// A service that takes every call and never answers, under the health service's name so a
    /// stock client can call it. It counts the calls that reach it and wakes `arrived` on each.
    #[derive(Clone, Default)]
    struct NeverAnswers {
        calls: Arc<AtomicUsize>,
        arrived: Arc<tokio::sync::Notify>,
    }

    impl tonic::server::NamedService for NeverAnswers {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    impl Service<http::Request<Body>> for NeverAnswers {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Pending<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.arrived.notify_one();
            std::future::pending()
        }
    }

    /// Serves `service` on a loopback listener with `settings`; returns a channel to it.
    async fn serve_never_answers(
        service: NeverAnswers,
        settings: ServeSettings,
    ) -> tonic::transport::Channel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let policy = AcceptPolicy {
            tls: None,
            max_connections: 8,
            max_connections_per_peer: 8,
            max_handshakes: 8,
            handshake_timeout: Duration::from_secs(5),
        };
        let incoming = serve_incoming(listener, policy);
        let layers = tower::layer::util::Identity::new();
        tokio::spawn(serve(Routes::new(service), layers, incoming, settings, std::future::pending()));
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    #[tokio::test]
    async fn a_call_that_never_answers_is_cancelled_at_the_request_timeout() {
        let settings = ServeSettings {
            request_timeout: Duration::from_millis(200),
            max_concurrent_streams: 4,
            idle_timeout: Duration::from_secs(60),
        };
        let mut client = HealthClient::new(serve_never_answers(NeverAnswers::default(), settings).await);
        let started = std::time::Instant::now();
        let status = client.check(HealthCheckRequest::default()).await.expect_err("no answer comes");
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
        assert_eq!(status.message(), "timeout expired");
        // The configured 200 ms, not some other bound (generous for a loaded machine).
        assert!(started.elapsed() < Duration::from_secs(10), "cancelled after {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn calls_beyond_the_stream_cap_wait_for_a_free_stream() {
        let settings = ServeSettings {
            request_timeout: Duration::from_secs(60),
            max_concurrent_streams: 1,
            idle_timeout: Duration::from_secs(60),
        };
        let service = NeverAnswers::default();
        let channel = serve_never_answers(service.clone(), settings).await;
        // The first call holds the connection's only stream (its answer never comes).
        let mut first = HealthClient::new(channel.clone());
        let held = tokio::spawn(async move { first.check(HealthCheckRequest::default()).await });
        service.arrived.notified().await;
        // The second, on the same connection, cannot open a stream: it ends on its own deadline
        // without ever reaching the server.
        let mut second = HealthClient::new(channel);
        let mut request = tonic::Request::new(HealthCheckRequest::default());
        request.set_timeout(Duration::from_millis(300));
        let status = second.check(request).await.expect_err("no stream is free");
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
        assert_eq!(service.calls.load(Ordering::SeqCst), 1, "the second call reached the server");
        assert!(!held.is_finished(), "the first call still holds its stream");
        held.abort();
    }

    /// The body of a stream that never ends, 4 KiB at a time as fast as hyper polls it (what a
    /// view being paged is to a subscriber that is far behind); it counts what it produced.
    struct Endless {
        produced: Arc<AtomicUsize>,
        grew: Arc<tokio::sync::Notify>,
    }

    static CHUNK: [u8; 4096] = [7; 4096];

    impl http_body::Body for Endless {
        type Data = bytes::Bytes;
        type Error = Status;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
            self.produced.fetch_add(CHUNK.len(), Ordering::SeqCst);
            self.grew.notify_waiters();
            Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(&CHUNK)))))
        }
    }

    /// Answers every call with an [`Endless`] body sharing its counters.
    #[derive(Clone, Default)]
    struct EndlessService {
        produced: Arc<AtomicUsize>,
        grew: Arc<tokio::sync::Notify>,
    }

    impl tonic::server::NamedService for EndlessService {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    impl Service<http::Request<Body>> for EndlessService {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            let body = Endless { produced: self.produced.clone(), grew: self.grew.clone() };
            std::future::ready(Ok(http::Response::new(Body::new(body))))
        }
    }

    /// Whether `produced` reaches `bytes` within `within`.
    async fn reaches(service: &EndlessService, bytes: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let grew = service.grew.notified();
            let mut grew = std::pin::pin!(grew);
            grew.as_mut().enable();
            if service.produced.load(Ordering::SeqCst) >= bytes {
                return true;
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                return false;
            }
        }
    }

    /// A subscriber advertising 1 GiB of window (stream and connection) that never reads the
    /// socket: what the server makes of the stream's body stays within the send queue (16 KiB)
    /// plus what the sockets hold (made small here, as a busy host's are). With hyper's default
    /// queue (400 KiB, tonic's server) the same subscriber has the server make 400 KiB per stream.
    #[tokio::test]
    async fn a_peer_that_never_reads_gets_no_more_than_the_send_queue() {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(4096).expect("send buffer");
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let addr = socket.local_addr().expect("address");
        let listener = socket.listen(8).expect("listen");
        let policy = AcceptPolicy {
            tls: None,
            max_connections: 8,
            max_connections_per_peer: 8,
            max_handshakes: 8,
            handshake_timeout: Duration::from_secs(5),
        };
        let service = EndlessService::default();
        let settings = ServeSettings {
            request_timeout: Duration::from_secs(60),
            max_concurrent_streams: 4,
            idle_timeout: Duration::from_secs(60),
        };
        let routes = Routes::new(service.clone());
        let layers = tower::layer::util::Identity::new();
        let incoming = serve_incoming(listener, policy);
        tokio::spawn(serve(routes, layers, incoming, settings, std::future::pending()));

        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        let tcp = socket.connect(addr).await.expect("connect");
        let (mut send, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 30)
            .initial_connection_window_size(1 << 30)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .expect("http/2 handshake");
        let mut connection = std::pin::pin!(connection);
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = "http://localhost/grpc.health.v1.Health/Watch".parse().expect("uri");
        let (response, _body) = send.send_request(request, true).expect("request");
        // The connection is driven (the socket read) only until the response's head arrives.
        let response = tokio::select! {
            response = response => response.expect("response"),
            result = connection.as_mut() => panic!("the connection ended: {result:?}"),
        };
        assert_eq!(response.status(), 200);
        // From here nothing reads the socket.
        assert!(
            reaches(&service, MAX_SEND_BUFFER, Duration::from_secs(10)).await,
            "the server stopped before filling the send queue"
        );
        let bound = 256 * 1024;
        assert!(
            !reaches(&service, bound, Duration::from_secs(2)).await,
            "the server made {} bytes for a peer that reads nothing",
            service.produced.load(Ordering::SeqCst)
        );
        drop(send);
    }

    fn header(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().expect("header value"));
        headers
    }

    #[test]
    fn grpc_timeout_reads_every_unit_and_ignores_the_malformed() {
        assert_eq!(grpc_timeout(&header("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(&header("3M")), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout(&header("5S")), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout(&header("250m")), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(&header("7u")), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(&header("9n")), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "123456789S", "5s", "-5S", "5 S", "5.0S"] {
            let headers = if bad.is_empty() { http::HeaderMap::new() } else { header(bad) };
            assert_eq!(grpc_timeout(&headers), None, "{bad:?}");
        }
    }
}
