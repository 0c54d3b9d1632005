//! Attacks on `serve.rs` (hyper's HTTP/2 server under the daemon's own accept loop), by peers
//! holding valid certificates and speaking HTTP/2 directly: windows they never open, connections
//! on which they never speak, every connection slot for themselves, streams reset as soon as
//! opened. Real hub, real mutual TLS, real HTTP/2 frames.

use std::time::Duration;

use passerelle_proto::identity::Role;
use passerelle_tests::InProcessDaemon;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::wire::{grpc_frame, grpc_request, h2_client, h2_client_with_ping, tls_connect};
use tokio::io::AsyncReadExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const WATCH: &str = "/grpc.health.v1.Health/Watch";
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// Hub `coorace-pdl` with `limits` as its `[limits]` section.
async fn hub(pki: &TestPki, limits: &str) -> anyhow::Result<InProcessDaemon> {
    let config =
        pki.write_hub_config("coorace-pdl", "auto_accept = true", &format!("\n[limits]\n{limits}"))?;
    InProcessDaemon::start_config(&config).await
}

/// A health check over tonic on a fresh connection with `files`: what an honest peer does.
async fn honest_check(hub: &InProcessDaemon, files: &passerelle_client::TlsFiles) -> anyhow::Result<()> {
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(files), "hub").await?;
    HealthClient::new(channel).check(HealthCheckRequest::default()).await?;
    Ok(())
}

/// A peer opens a health `Watch` with a stream window of 0 and never opens it: the first message
/// can never be sent, so the stream (and its connection) can never finish. On the old code the
/// hub's graceful shutdown waited for that connection forever; now a connection gets
/// `idle_timeout_secs` to drain after GOAWAY and is then dropped.
#[tokio::test]
async fn a_peer_that_never_opens_its_window_cannot_hold_shutdown() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = hub(&pki, "idle_timeout_secs = 1").await?;
    let member = pki.issue(Role::Node, SIRETS[0])?;
    let io = tls_connect(hub.hub_addr.expect("hub listener"), &member).await?;
    let (mut send, _connection) = h2_client(io, 0).await?;
    let (response, mut body) = send.send_request(grpc_request(WATCH), false)?;
    body.send_data(grpc_frame(&HealthCheckRequest::default()), true)?;
    let response = tokio::time::timeout(Duration::from_secs(10), response).await??;
    assert_eq!(response.status(), 200, "the call was taken");
    // The hub's first message waits for a window that never opens.
    let stopped = tokio::time::timeout(Duration::from_secs(20), hub.stop()).await;
    assert!(stopped.is_ok(), "the hub's shutdown waited for a stalled peer");
    stopped??;
    Ok(())
}

/// A member finishes the TLS handshake and never sends the HTTP/2 preface: on the old code the
/// connection held one of `max_connections` forever (no HTTP/2 handshake deadline, no idle
/// timeout). Now a connection with no call open for `idle_timeout_secs` is closed.
#[tokio::test]
async fn a_connection_that_never_speaks_http2_is_closed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = hub(&pki, "idle_timeout_secs = 1").await?;
    let member = pki.issue(Role::Node, SIRETS[0])?;
    let mut io = tls_connect(hub.hub_addr.expect("hub listener"), &member).await?;
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        // The server's SETTINGS may come first; the end of the stream is what matters.
        loop {
            match io.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "a silent connection is still open after 15 s");
    hub.stop().await
}

/// One member opens every connection the hub allows and holds a call open on each; an honest
/// member then cannot connect at all on the old code (`max_connections` is one budget for
/// everyone). Now each identity holds at most `max_connections_per_peer`.
#[tokio::test]
async fn one_member_cannot_take_every_connection_slot() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = hub(&pki, "max_connections = 4\nmax_connections_per_peer = 2").await?;
    let addr = hub.hub_addr.expect("hub listener");
    let hostile = pki.issue(Role::Node, SIRETS[0])?;
    let mut held = Vec::new();
    let mut taken = 0;
    for _ in 0..4 {
        let attempt = async {
            let io = tls_connect(addr, &hostile).await?;
            let (mut send, connection) = h2_client(io, 65_535).await?;
            let (response, mut body) = send.send_request(grpc_request(WATCH), false)?;
            body.send_data(grpc_frame(&HealthCheckRequest::default()), true)?;
            let response = response.await?;
            anyhow::Ok((send, body, response, connection))
        };
        if let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(10), attempt).await {
            taken += 1;
            held.push(connection);
        }
    }
    assert!(taken >= 1, "the hostile member got no connection at all");
    let honest = pki.issue(Role::Node, SIRETS[1])?;
    let result = tokio::time::timeout(Duration::from_secs(10), honest_check(&hub, &honest)).await;
    assert!(
        matches!(result, Ok(Ok(()))),
        "an honest member was locked out by one holding {taken} connections: {result:?}"
    );
    assert_eq!(taken, 2, "the hostile member held more than its share");
    drop(held);
    hub.stop().await
}

/// Rapid reset (CVE-2023-44487): open a call and reset it at once, in a loop. h2 bounds resets
/// of streams not yet accepted (a burst of HEADERS and RST_STREAM read in one go gets GOAWAY), so
/// the attacker paces itself: each call is opened, then a PING round trip lets hyper accept it
/// (a task, authorization, the handler waiting for its request), and only then is it reset. On
/// the old code the 2,000 calls all reached the service and the connection still served after;
/// now a connection whose peer abandons calls faster than its budget is dropped.
#[tokio::test]
async fn rapid_reset_closes_the_connection() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = hub(&pki, "").await?;
    let member = pki.issue(Role::Node, SIRETS[0])?;
    let io = tls_connect(hub.hub_addr.expect("hub listener"), &member).await?;
    let (send, mut ping, connection) = h2_client_with_ping(io, 65_535).await?;
    // How many calls were reset before the connection failed, and whether it still served after.
    let attack = async move {
        let mut send = send;
        for reset in 0..2_000 {
            send = match send.ready().await {
                Ok(send) => send,
                Err(_) => return (reset, false),
            };
            let Ok((_response, mut body)) = send.send_request(grpc_request(CHECK), false) else {
                return (reset, false);
            };
            if ping.ping(h2::Ping::opaque()).await.is_err() {
                return (reset, false);
            }
            body.send_reset(h2::Reason::CANCEL);
        }
        let served = async {
            let mut send = send.ready().await?;
            let (response, mut body) = send.send_request(grpc_request(CHECK), false)?;
            body.send_data(grpc_frame(&HealthCheckRequest::default()), true)?;
            let response = response.await?;
            anyhow::Ok(response.status() == 200)
        };
        (2_000, matches!(served.await, Ok(true)))
    };
    let (reset, served) = tokio::time::timeout(Duration::from_secs(60), attack).await?;
    assert!(
        !served && reset < 2_000,
        "the connection survived {reset} calls reset as soon as they were taken"
    );
    assert!(reset >= 100, "an honest rate of cancellations is allowed ({reset})");
    let _ = connection.await;
    // The hub still serves everyone else.
    honest_check(&hub, &pki.issue(Role::Node, SIRETS[1])?).await?;
    hub.stop().await
}

/// A member announces a message just under the limit on every stream of one connection and
/// never finishes one. tonic reads a message's bytes as they arrive (releasing HTTP/2 flow
/// control), so the windows bound nothing: on the old code the hub held every partial message
/// (`max_concurrent_calls_per_connection × max_message_bytes`, 256 MiB with the defaults) until the
/// request timeout, and no call was answered before it. Now a connection's unfinished messages
/// are bounded (twice the message limit) and the call that goes beyond gets RESOURCE_EXHAUSTED.
#[tokio::test]
async fn unfinished_messages_on_one_connection_are_bounded() -> anyhow::Result<()> {
    const LIMIT: usize = 1024 * 1024;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub =
        hub(&pki, &format!("max_message_bytes = {LIMIT}\nmax_concurrent_calls_per_connection = 16")).await?;
    let member = pki.issue(Role::Node, SIRETS[0])?;
    let io = tls_connect(hub.hub_addr.expect("hub listener"), &member).await?;
    let (mut send, connection) = h2_client(io, 65_535).await?;
    let mut answers = tokio::task::JoinSet::new();
    let mut streams = Vec::new();
    for _ in 0..8 {
        send = send.ready().await?;
        let (response, mut body) = send.send_request(grpc_request(CHECK), false)?;
        // A frame header announcing LIMIT - 1 bytes, then all but the last KiB of them.
        let mut partial = vec![0u8];
        partial.extend(u32::try_from(LIMIT - 1)?.to_be_bytes());
        partial.resize(5 + LIMIT - 1024, 0);
        body.send_data(partial.into(), false)?;
        streams.push(body);
        answers.spawn(response);
    }
    let first = tokio::time::timeout(Duration::from_secs(15), answers.join_next()).await;
    let Ok(Some(answer)) = first else {
        panic!("no call answered within 15 s while 8 unfinished messages of 1 MiB were held")
    };
    let response = answer??;
    let status = response.headers().get("grpc-status").map(|v| v.to_str().unwrap_or_default().to_string());
    assert_eq!(status.as_deref(), Some("8"), "RESOURCE_EXHAUSTED expected: {response:?}");
    drop((streams, send));
    connection.abort();
    hub.stop().await
}

/// A member opens a health `Watch`, then never reads its socket again (what a peer that stalls
/// a large view does, the pages piling up in the socket buffers). Its call stays open, so the
/// idle timeout does not apply; hyper's keep-alive PING (sent after `idle_timeout_secs` without a
/// frame from the peer) goes unanswered, and the connection is dropped: the identity's only
/// connection slot is free again. On the old code (no keep-alive) it was held forever.
#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = hub(&pki, "idle_timeout_secs = 1\nmax_connections_per_peer = 1").await?;
    let member = pki.issue(Role::Node, SIRETS[0])?;
    let io = tls_connect(hub.hub_addr.expect("hub listener"), &member).await?;
    let (mut send, connection) = h2::client::handshake(io).await?;
    let mut connection = std::pin::pin!(connection);
    let (response, mut body) = send.send_request(grpc_request(WATCH), false)?;
    body.send_data(grpc_frame(&HealthCheckRequest::default()), true)?;
    // The connection is driven (its socket read) only until the response's head arrives.
    let response = tokio::select! {
        response = response => response?,
        result = connection.as_mut() => anyhow::bail!("the connection ended: {result:?}"),
    };
    assert_eq!(response.status(), 200);
    // From here nothing reads. The same identity gets its slot back once the hub dropped it.
    let freed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if honest_check(&hub, &member).await.is_ok() {
                return;
            }
            // Refused at once while the stalled connection holds the slot: try again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "a peer that reads nothing still holds its connection after 20 s");
    drop((send, body));
    hub.stop().await
}

/// The patched h2 (`vendor/h2`) gives its write buffer back after every complete flush and
/// allocates it again for the next frame, starts its read buffer at 1 KiB and its HPACK buffer
/// empty. What it writes and reads must not change: responses whose header blocks need
/// CONTINUATION frames (four 24 KiB values, 16 KiB frames), bodies sent as chained DATA frames,
/// then trailers, one after the other on one connection, each after a PING round trip (so every
/// response starts from a buffer given back), all arrive intact in both directions of the patch.
#[tokio::test]
async fn header_blocks_across_continuation_frames_survive_the_lazy_buffers() -> anyhow::Result<()> {
    const ROUNDS: usize = 3;
    fn value(i: usize, n: usize) -> String {
        let letter = char::from(b'a' + u8::try_from((i * 7 + n * 3) % 26).unwrap_or_default());
        // Huffman-coded in at least 5 bits a letter: the four values take at least 60 KiB.
        std::iter::repeat_n(letter, 24 * 1024).collect()
    }
    fn body(n: usize) -> Vec<u8> {
        (0..40 * 1024).map(|i| u8::try_from((i * 31 + n) % 251).unwrap_or_default()).collect()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (io, _) = listener.accept().await?;
        let mut connection = h2::server::handshake(io).await?;
        while let Some(request) = connection.accept().await {
            let (request, mut respond) = request?;
            let n: usize = request.uri().path().trim_start_matches('/').parse()?;
            let mut response = http::Response::new(());
            for i in 0..4 {
                response.headers_mut().insert(
                    http::HeaderName::try_from(format!("x-big-{i}"))?,
                    http::HeaderValue::try_from(value(i, n))?,
                );
            }
            let mut send = respond.send_response(response, false)?;
            send.send_data(body(n).into(), false)?;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-round", http::HeaderValue::from(n));
            send.send_trailers(trailers)?;
        }
        anyhow::Ok(())
    });
    let io = tokio::net::TcpStream::connect(addr).await?;
    let (send, mut connection) = h2::client::handshake(io).await?;
    let mut ping = connection.ping_pong().ok_or_else(|| anyhow::anyhow!("no ping handle"))?;
    let driver = tokio::spawn(connection);
    for n in 0..ROUNDS {
        let mut send = send.clone().ready().await?;
        let request = http::Request::get(format!("http://localhost/{n}")).body(())?;
        let (response, _) = send.send_request(request, true)?;
        let response = tokio::time::timeout(Duration::from_secs(10), response).await??;
        for i in 0..4 {
            let got = response.headers().get(format!("x-big-{i}")).map(http::HeaderValue::as_bytes);
            assert!(got == Some(value(i, n).as_bytes()), "round {n}: header {i} changed");
        }
        let mut stream = response.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk?;
            stream.flow_control().release_capacity(chunk.len())?;
            got.extend_from_slice(&chunk);
        }
        assert!(got == body(n), "round {n}: the body changed ({} bytes)", got.len());
        let trailers = stream.trailers().await?.unwrap_or_default();
        assert_eq!(trailers.get("x-round").and_then(|v| v.to_str().ok()), Some(n.to_string().as_str()));
        tokio::time::timeout(Duration::from_secs(10), ping.ping(h2::Ping::opaque())).await??;
    }
    drop(send);
    driver.abort();
    server.abort();
    Ok(())
}
