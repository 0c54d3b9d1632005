//! The plain-HTTP listener Prometheus scrapes: `GET /metrics` (HTTP/1.1, hyper), nothing else.
//!
//! Connections watch the daemon's shutdown signal and close gracefully, and [`serve`] returns
//! only once they are all closed, so a scraper's kept-alive connection never holds the store
//! open past shutdown.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Scrape;

/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// More simultaneous scrapers than this are turned away.
const MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` on `listener` until `stop` turns true, then closes every connection.
pub(crate) async fn serve(listener: TcpListener, scrape: Scrape, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                while connections.try_join_next().is_some() {}
                if connections.len() >= MAX_CONNECTIONS {
                    tracing::warn!(%remote, "metrics: too many connections, closing this one");
                    continue;
                }
                let (scrape, mut stop) = (scrape.clone(), for_connections.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request| respond(request, scrape.clone()));
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    let stopping = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        () = stopping => {}
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
    scrape: Scrape,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, content_type: &str, body: String| {
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(reply(404, "text/plain; charset=utf-8", "not found: metrics are at /metrics\n".into()));
    }
    if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
        return Ok(reply(405, "text/plain; charset=utf-8", "only GET /metrics\n".into()));
    }
    match tokio::task::spawn_blocking(move || scrape.render()).await {
        Ok(Ok(text)) => Ok(reply(200, "text/plain; version=0.0.4; charset=utf-8", text)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "metrics: reading the store failed");
            Ok(reply(500, "text/plain; charset=utf-8", "metrics unavailable, see the daemon's log\n".into()))
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: task failed");
            Ok(reply(500, "text/plain; charset=utf-8", "metrics unavailable, see the daemon's log\n".into()))
        }
    }
}
