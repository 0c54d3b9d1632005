//! The one sync link: what a node does towards each hub and a hub towards each upstream hub.
//!
//! - [`retry`]: a session again and again, with exponential backoff and jitter (capped at 60 s);
//! - [`connect`]: mutual TLS to the hub it means to reach, then `Hello`;
//! - [`push`]: `PushOpen`, the hub's `PushAccepted`, then a stream of messages with at most
//!   [`WINDOW`] in flight. Everything after `open` is acknowledged in order, so what is in flight
//!   is a FIFO of tickets; each acknowledgement pops one and hands it back to the source, which
//!   moves its checkpoint — never before the hub made the batch durable.
//!
//! What is sent comes from a [`ChangeSource`]: the node's outbox (`node/push.rs`) or the hub's
//! change feed (`hub/relay.rs`). This module knows neither: they implement the trait.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passerelle_client::TlsFiles;
use passerelle_proto::codec::BoundedCodec;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::hub_sync_server::SERVICE_NAME;
use passerelle_proto::v1::{
    HelloRequest, HelloResponse, PushOpen, PushReply, Structure, push_message, push_reply,
};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::IntoStreamingRequest;
use tonic::codec::Streaming;
use tonic::transport::Channel;

use super::wire::WirePush;
use crate::config::HubLink;
use crate::error::{Error, Result};

/// Messages in flight at most.
pub(crate) const WINDOW: usize = 8;
/// First retry delay after a failure.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// A message to send and what its acknowledgement confirms.
#[derive(Debug)]
pub(crate) struct Outgoing<T> {
    /// The message (a batch, or the end of a full resend).
    pub message: WirePush,
    /// Handed back to the source when the hub acknowledges the message.
    pub ticket: T,
}

/// What a link sends: the source of the changes and the keeper of the checkpoint. Its methods
/// read and write the store, so the link calls them on the blocking pool, one at a time per
/// kind (sends in order on the sending side, acknowledgements in order on the receiving side).
pub(crate) trait ChangeSource: Send + Sync + 'static {
    /// What an acknowledgement confirms (a checkpoint to advance, a resend completed…).
    type Ticket: Send + 'static;
    /// Where the sending side stands in the session.
    type Cursor: Send + 'static;

    /// The session's first message.
    fn open(&self) -> Result<PushOpen>;
    /// The hub accepted the session, asking for `resend` (datasets to resend in full): where to
    /// start sending.
    fn accepted(&self, resend: Vec<String>) -> Result<Self::Cursor>;
    /// The next messages to send, or none when caught up (the link then waits for
    /// [`ChangeSource::changes`]). `idle`: nothing is in flight.
    fn next(&self, cursor: &mut Self::Cursor, idle: bool) -> Result<Vec<Outgoing<Self::Ticket>>>;
    /// The hub acknowledged the message of `ticket` (in the order they were sent).
    fn acked(&self, ticket: Self::Ticket) -> Result<()>;
    /// Changes whenever there may be something new to send.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Where the link counts what went through it.
    fn counters(&self) -> &LinkCounters;
}

/// Counters of one link since the daemon started, for the metrics endpoint.
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    /// Batches sent (outbox, full resend or withdrawal).
    pub batches_sent: AtomicU64,
    /// Changes in the batches sent.
    pub records_sent: AtomicU64,
    /// Batches the hub acknowledged.
    pub batches_acked: AtomicU64,
    /// Changes in the batches acknowledged.
    pub records_acked: AtomicU64,
    /// Datasets the hub asked to be resent in full at a session start (its digest differed, or
    /// it lost its copy).
    pub resends_requested: AtomicU64,
}

/// Runs `session` until it returns `Ok` (it saw `stop`) or `stop`; after a failure waits with
/// exponential backoff and full jitter (half the delay to the delay, so many clients restarted
/// together do not come back together). `ended` is told each failure and says whether the
/// session had got going (then the delay starts over); `wake` skips the current wait.
pub(crate) async fn retry<F, Fut>(
    mut stop: watch::Receiver<bool>,
    wake: Option<&Notify>,
    mut session: F,
    mut ended: impl FnMut(&Error, Duration) -> bool,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut delay = BACKOFF_START;
    loop {
        if *stop.borrow() {
            return;
        }
        match session().await {
            Ok(()) => return,
            Err(e) => {
                if ended(&e, delay) {
                    delay = BACKOFF_START;
                }
            }
        }
        let jittered = delay.mul_f64(0.5 + 0.5 * random_unit());
        let woken = async {
            match wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(jittered) => {}
            () = woken => { delay = BACKOFF_START; }
            _ = stop.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(BACKOFF_CAP);
    }
}

/// A channel to `hub` (mutual TLS, the certificate must be that hub's) after a `Hello` as
/// `structure` (`None`: as a hub), checking the hub answers under the id it was configured with.
pub(crate) async fn connect(
    hub: &HubLink,
    tls: &TlsFiles,
    structure: Option<Structure>,
) -> Result<(Channel, HelloResponse)> {
    let channel = super::connect::connect(hub, tls).await?;
    let hello = HubSyncClient::new(channel.clone())
        .hello(HelloRequest { structure })
        .await
        .map_err(|s| Error::FailedPrecondition(status_text(&s)))?
        .into_inner();
    if hello.hub_id != hub.id {
        return Err(Error::PermissionDenied(format!(
            "{} answered as hub {}, not {}",
            hub.endpoint, hello.hub_id, hub.id
        )));
    }
    Ok((channel, hello))
}

/// Runs `source` on a tonic call.
async fn blocking<S: ChangeSource, T: Send + 'static>(
    source: &Arc<S>,
    call: impl FnOnce(&S) -> Result<T> + Send + 'static,
) -> Result<T> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || call(&source)).await?
}

/// What is in flight, oldest first: each ticket with the number of changes of its message
/// (`None` when it is not a batch).
type InFlight<T> = Arc<Mutex<VecDeque<(T, Option<u64>)>>>;

/// One push session over `channel`: open, accepted, then what `source` gives, forever (until
/// `stop`, or an error of either side).
pub(crate) async fn push<S: ChangeSource>(
    source: Arc<S>,
    channel: Channel,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let open = blocking(&source, |s| s.open()).await?;
    let (tx, rx) = mpsc::channel::<WirePush>(WINDOW + 2);
    let _ = tx.send(push_message::Kind::Open(open).into()).await;
    let mut replies = push_call(channel, ReceiverStream::new(rx))
        .await
        .map_err(|s| Error::FailedPrecondition(status_text(&s)))?;
    let accepted = match replies.message().await.map_err(|s| Error::FailedPrecondition(status_text(&s)))? {
        Some(reply) => match reply.kind {
            Some(push_reply::Kind::Accepted(accepted)) => accepted,
            _ => return Err(Error::FailedPrecondition("the hub did not accept the push session".into())),
        },
        None => return Err(Error::FailedPrecondition("the hub closed the push session".into())),
    };
    let mut cursor = blocking(&source, move |s| s.accepted(accepted.resend)).await?;

    let in_flight: InFlight<S::Ticket> = Arc::default();
    let window = Arc::new(Semaphore::new(WINDOW));
    // Acknowledgements, in order, on their own task.
    let acks = {
        let (source, in_flight, window) = (source.clone(), in_flight.clone(), window.clone());
        tokio::spawn(async move {
            loop {
                let reply = match replies.message().await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => {
                        return Err(Error::FailedPrecondition("the hub closed the push session".into()));
                    }
                    Err(s) => return Err(Error::FailedPrecondition(status_text(&s))),
                };
                if !matches!(reply.kind, Some(push_reply::Kind::Ack(_))) {
                    return Err(Error::FailedPrecondition("unexpected reply from the hub".into()));
                }
                let Some((ticket, records)) = in_flight.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return Err(Error::FailedPrecondition("the hub acknowledged more than was sent".into()));
                };
                if let Some(records) = records {
                    let counters = source.counters();
                    counters.batches_acked.fetch_add(1, Ordering::Relaxed);
                    counters.records_acked.fetch_add(records, Ordering::Relaxed);
                }
                window.add_permits(1);
                blocking(&source, move |s| s.acked(ticket)).await?;
            }
        })
    };
    let sender = async {
        let mut changes = source.changes();
        loop {
            changes.borrow_and_update();
            let idle = in_flight.lock().map(|q| q.is_empty()).unwrap_or(false);
            let (next, moved) = blocking(&source, move |s| {
                let next = s.next(&mut cursor, idle)?;
                Ok((next, cursor))
            })
            .await?;
            cursor = moved;
            if next.is_empty() {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return Ok(()) },
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
                continue;
            }
            for Outgoing { message, ticket } in next {
                let permit =
                    window.acquire().await.map_err(|_| Error::FailedPrecondition("window closed".into()))?;
                permit.forget();
                let records = message.changes().map(|records| {
                    let records = records as u64;
                    let counters = source.counters();
                    counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                    counters.records_sent.fetch_add(records, Ordering::Relaxed);
                    records
                });
                if let Ok(mut q) = in_flight.lock() {
                    q.push_back((ticket, records));
                }
                tx.send(message)
                    .await
                    .map_err(|_| Error::FailedPrecondition("the push stream closed".into()))?;
            }
        }
    };
    tokio::pin!(acks);
    let outcome = tokio::select! {
        sent = sender => sent,
        acked = &mut acks => acked?,
    };
    acks.abort();
    outcome
}

/// `HubSync.Push` with messages of the push stream as [`WirePush`] (the generated client takes
/// `PushMessage` structs only): the same path, method and codec as the generated client's call,
/// so the hub receives the same bytes.
async fn push_call(
    channel: Channel,
    messages: ReceiverStream<WirePush>,
) -> std::result::Result<Streaming<PushReply>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unknown(format!("the hub channel was not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!("/{SERVICE_NAME}/Push"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut request = messages.into_streaming_request();
    request.extensions_mut().insert(tonic::GrpcMethod::new(SERVICE_NAME, "Push"));
    let codec = BoundedCodec::<WirePush, PushReply>::default();
    Ok(grpc.streaming(request, path, codec).await?.into_inner())
}

/// A status as a one-line reason.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = status.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// A random number in [0, 1), from the OS generator behind UUIDv4.
fn random_unit() -> f64 {
    let bytes = uuid::Uuid::new_v4();
    let n = u64::from_be_bytes(bytes.as_bytes()[..8].try_into().unwrap_or_default());
    (n >> 11) as f64 / (1u64 << 53) as f64
}
