//! Limits against abuse that tonic does not express the way gRPC clients expect.
//!
//! tonic refuses an oversized message with `OUT_OF_RANGE`; gRPC's convention (grpc-go, grpc-java)
//! is `RESOURCE_EXHAUSTED`. [`MessageSizeLayer`] reads the 5-byte gRPC frame headers as request
//! bytes stream in and fails the call with `RESOURCE_EXHAUSTED` as soon as a frame announces more
//! than the limit — before the payload is buffered. tonic surfaces a `Status` found in a body error
//! unchanged.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Default largest decoded message: 4 MiB, as gRPC's default.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The bytes of request messages received but not yet complete on one connection (`serve.rs`
/// puts it in every request's extensions). tonic reads a message's bytes as they arrive, which
/// releases HTTP/2 flow control: the windows do not bound what it holds. Without this, a peer
/// announcing a large message on every stream and never finishing one made the server hold
/// `max_concurrent_calls_per_connection × max_message_bytes` per connection (256 MiB by default).
#[derive(Debug, Clone, Default)]
pub(crate) struct PartialMessages(Arc<AtomicUsize>);

/// How many bytes of unfinished messages one connection may hold, in multiples of the message
/// limit: one large upload and another starting.
const PARTIAL_MESSAGES_PER_CONNECTION: usize = 2;

/// Tower layer enforcing a maximum gRPC message size on requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageSizeLayer {
    limit: usize,
}

impl MessageSizeLayer {
    /// Refuses request messages larger than `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> tower::Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;

    fn layer(&self, inner: S) -> MessageSize<S> {
        MessageSize { inner, limit: self.limit }
    }
}

/// The service made by [`MessageSizeLayer`].
#[derive(Debug, Clone)]
pub(crate) struct MessageSize<S> {
    inner: S,
    limit: usize,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for MessageSize<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let limit = self.limit;
        let partial = request.extensions().get::<PartialMessages>().cloned();
        self.inner.call(request.map(|body| {
            let mut limited = LimitedBody::new(body, limit);
            limited.partial = partial;
            tonic::body::Body::new(limited)
        }))
    }
}

/// A request body that fails as soon as a gRPC frame header announces more than `limit` bytes.
struct LimitedBody {
    inner: tonic::body::Body,
    limit: usize,
    header: [u8; 5],
    header_len: usize,
    payload_left: usize,
    /// The connection's unfinished-message bytes, when served by `serve.rs`.
    partial: Option<PartialMessages>,
    /// This body's share of them: the bytes of the message being received.
    received: usize,
}

impl LimitedBody {
    fn new(inner: tonic::body::Body, limit: usize) -> Self {
        Self { inner, limit, header: [0; 5], header_len: 0, payload_left: 0, partial: None, received: 0 }
    }

    /// Counts `bytes` more of the message being received against the connection's budget.
    fn hold(&mut self, bytes: usize) -> Result<(), Status> {
        let Some(partial) = &self.partial else { return Ok(()) };
        self.received += bytes;
        let held = partial.0.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let budget = self.limit.saturating_mul(PARTIAL_MESSAGES_PER_CONNECTION);
        if held > budget {
            return Err(Status::resource_exhausted(format!(
                "unfinished messages on this connection exceed {budget} bytes (limits.max_message_bytes × {PARTIAL_MESSAGES_PER_CONNECTION})"
            )));
        }
        Ok(())
    }

    /// The message being received is complete (or abandoned): its bytes leave the budget.
    fn release(&mut self) {
        if let Some(partial) = &self.partial {
            partial.0.fetch_sub(self.received, Ordering::Relaxed);
        }
        self.received = 0;
    }

    /// Follows the gRPC framing (1 flag byte, 4 length bytes, payload) across chunks.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(data.len());
                self.payload_left -= skip;
                data = &data[skip..];
                if self.payload_left == 0 {
                    self.release();
                } else {
                    self.hold(skip)?;
                }
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if self.header_len == self.header.len() {
                self.header_len = 0;
                let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]])
                    as usize;
                if len > self.limit {
                    return Err(Status::resource_exhausted(format!(
                        "message of {len} bytes exceeds the limit of {} bytes (limits.max_message_bytes)",
                        self.limit
                    )));
                }
                self.payload_left = len;
            }
        }
        Ok(())
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        self.release();
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.scan(data)
                {
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(status)) => Poll::Ready(Some(Err(status))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The open-file limit the daemon asks for at start: every connection is a file descriptor, and
/// a hub's `[limits] max_connections` (8,192 by default) plus its unfinished handshakes, store
/// files and outgoing links must fit. Distributions often start services at a soft limit of 1,024.
pub(crate) const WANTED_OPEN_FILES: u64 = 65_536;

/// Raises the process's soft open-file limit towards [`WANTED_OPEN_FILES`], never above the hard
/// limit (only root could raise that; the systemd units set `LimitNOFILE=` for it). Returns the
/// (before, after) soft limits so the caller can log them; `None` if the platform has no limit
/// to read.
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current?;
    let wanted = match limit.maximum {
        Some(hard) => WANTED_OPEN_FILES.min(hard),
        None => WANTED_OPEN_FILES,
    };
    if before >= wanted {
        return Some((before, before));
    }
    let raised = rustix::process::Rlimit { current: Some(wanted), maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some((before, wanted)),
        Err(_) => Some((before, before)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend(len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn unfinished_messages_count_against_their_connection_until_complete_or_dropped() {
        let partial = PartialMessages::default();
        let body = |partial: &PartialMessages| {
            let mut body = LimitedBody::new(tonic::body::Body::empty(), 10);
            body.partial = Some(partial.clone());
            body
        };
        let (mut a, mut b) = (body(&partial), body(&partial));
        let whole = frame(10);
        a.scan(&whole[..12]).expect("7 of 10 bytes");
        assert_eq!(partial.0.load(Ordering::Relaxed), 7);
        b.scan(&whole[..15]).expect("10 of 10 bytes: complete, nothing held");
        assert_eq!(partial.0.load(Ordering::Relaxed), 7);
        let mut c = body(&partial);
        c.scan(&whole[..14]).expect("7 + 9 bytes held: within twice the limit");
        let err = b.scan(&whole[..10]).expect_err("7 + 9 + 5 bytes held: beyond twice the limit");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        a.scan(&whole[12..]).expect("a completes");
        drop((b, c));
        assert_eq!(partial.0.load(Ordering::Relaxed), 0, "everything released");
    }

    #[test]
    fn frames_split_across_chunks_are_followed() {
        let mut body = LimitedBody::new(tonic::body::Body::empty(), 10);
        let stream: Vec<u8> = [frame(10), frame(3), frame(0)].concat();
        for chunk in stream.chunks(3) {
            body.scan(chunk).expect("within the limit");
        }
        let mut body = LimitedBody::new(tonic::body::Body::empty(), 10);
        let big = frame(11);
        let err = body.scan(&big[..2]).and_then(|()| body.scan(&big[2..])).expect_err("too big");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    }
}
