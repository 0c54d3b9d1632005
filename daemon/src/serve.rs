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

/// How one listener's connections are served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeSettings {
    /// A call whose response has not started by then gets CANCELLED (or earlier, when the client
    /// sent a shorter `grpc-timeout`).
    pub request_timeout: Duration,
    /// Streams open at once on one connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
}

/// Serves the connections of `incoming` with `routes` behind `layers` until `signal` completes;
/// then stops accepting, asks every connection to finish (HTTP/2 GOAWAY: calls in flight end
/// normally), and returns once all are closed.
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
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_send_buf_size(MAX_SEND_BUFFER);
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
        let service = service.clone();
        let timeout = settings.request_timeout;
        let per_request = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(info.clone());
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
                Ok::<_, Infallible>(response)
            }
            .instrument(span)
        });
        let connection = builder.serve_connection(TokioIo::new(io), per_request);
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error while closing");
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
    use std::sync::Arc;
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
        let settings =
            ServeSettings { request_timeout: Duration::from_millis(200), max_concurrent_streams: 4 };
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
        let settings = ServeSettings { request_timeout: Duration::from_secs(60), max_concurrent_streams: 1 };
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
