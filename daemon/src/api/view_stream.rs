//! A member's view `Subscribe` stream, computed lazily: the next message is made only when
//! HTTP/2 asks for it.
//!
//! Why: with thousands of members subscribed at once, each a full view behind, what the hub
//! holds per subscriber is what bounds its memory. A task per subscriber pushing pages into a
//! channel held two decoded pages each (the one buffered and the one waiting to be), about 30 kB
//! of `NetworkNeed`s, whether or not the connection could take them. Polled lazily, a subscriber
//! that HTTP/2 is not writing to holds its position and a shared handle on the view, and a page
//! exists only while it is being encoded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use passerelle_proto::v1::ViewBatch;
use tokio::sync::{Semaphore, watch};
use tokio_stream::Stream;
use tonic::Status;

use super::hub::{access_lost, run_blocking};
use crate::hub::Hub;
use crate::hub::view::{FullView, ViewUpdate};
use crate::tls::Peer;

/// What one subscription needs between two messages.
pub(super) struct Subscription {
    pub(super) hub: Arc<Hub>,
    pub(super) peer: Peer,
    pub(super) expires_at_s: Option<i64>,
    /// The epoch and feed position the subscriber holds.
    pub(super) hub_epoch: Vec<u8>,
    pub(super) position: u64,
    /// Becomes `true` at shutdown.
    pub(super) stop: watch::Receiver<bool>,
    /// Bumped when the hub's access rules change.
    pub(super) access: watch::Receiver<u64>,
    /// Wakes when the feed moves.
    pub(super) feed: watch::Receiver<u64>,
    /// View computations at once, across every subscription.
    pub(super) gate: Arc<Semaphore>,
    /// A full view being paged, and where its next page starts.
    full: Option<(FullView, usize)>,
    /// Nothing sent yet: the first message goes even if empty (it tells the subscriber it is
    /// up to date).
    first: bool,
    /// The last computation has been sent whole: wait for the feed before the next one.
    sent: bool,
    /// An error was sent: the stream ends.
    done: bool,
}

impl Subscription {
    /// A subscription of `peer` at `position` of `hub_epoch`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        hub: Arc<Hub>,
        peer: Peer,
        expires_at_s: Option<i64>,
        hub_epoch: Vec<u8>,
        position: u64,
        stop: watch::Receiver<bool>,
        gate: Arc<Semaphore>,
    ) -> Self {
        let (access, feed) = (hub.watch_access(), hub.watch_feed());
        Self {
            hub,
            peer,
            expires_at_s,
            hub_epoch,
            position,
            stop,
            access,
            feed,
            gate,
            full: None,
            first: true,
            sent: false,
            done: false,
        }
    }

    /// The stream of the subscription's messages.
    pub(super) fn into_stream(self) -> impl Stream<Item = Result<ViewBatch, Status>> + Send + 'static {
        Lazy { state: Some(self), pending: None }
    }

    /// The next message, or `None` when the stream ends (shutdown, or after an error).
    async fn next(mut self) -> Option<(Result<ViewBatch, Status>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some((full, from)) = self.full.take() {
                let (page, more) = full.page(from);
                if let Some(at) = more {
                    self.full = Some((full, at));
                }
                if let Some(page) = self.progressed(page) {
                    return Some((Ok(page), self));
                }
                continue;
            }
            if self.sent && self.position >= self.hub.feed_head() {
                let (hub, peer) = (self.hub.clone(), self.peer.clone());
                let lost = tokio::select! {
                    changed = self.feed.changed() => if changed.is_err() { return None } else { None },
                    _ = self.stop.wait_for(|s| *s) => return None,
                    status = access_lost(hub, peer, self.expires_at_s, &mut self.access) => Some(status),
                };
                if let Some(status) = lost {
                    self.done = true;
                    return Some((Err(status), self));
                }
            }
            self.sent = true;
            self.feed.borrow_and_update();
            let (hub, epoch, viewer, who) =
                (self.hub.clone(), self.hub_epoch.clone(), self.peer.id.id.clone(), self.peer.clone());
            let position = self.position;
            // A few views are computed at once: when a batch wakes every subscriber, the others
            // wait here (their wakes coalesce) instead of taking every core from the pushes
            // being acknowledged.
            let Ok(permit) = self.gate.clone().acquire_owned().await else { return None };
            let update = run_blocking(move || {
                hub.check_access(&who)?;
                hub.view_update(&epoch, position, &viewer)
            })
            .await;
            drop(permit);
            match update {
                Err(status) => {
                    self.done = true;
                    return Some((Err(status), self));
                }
                Ok(ViewUpdate::Full(full)) => self.full = Some((full, 0)),
                Ok(ViewUpdate::Batch(batch)) => {
                    if let Some(batch) = self.progressed(batch) {
                        return Some((Ok(batch), self));
                    }
                }
            }
        }
    }

    /// Takes in what `batch` moves the subscriber to; the batch if it is worth sending (the
    /// first, a reset, a move, or changes).
    fn progressed(&mut self, batch: ViewBatch) -> Option<ViewBatch> {
        let progressed = self.first
            || batch.reset
            || batch.position != self.position
            || !batch.upserts.is_empty()
            || !batch.removals.is_empty();
        self.first = false;
        if !batch.hub_epoch.is_empty() {
            self.hub_epoch.clone_from(&batch.hub_epoch);
            self.position = batch.position;
        }
        progressed.then_some(batch)
    }
}

type Step = Pin<Box<dyn Future<Output = Option<(Result<ViewBatch, Status>, Subscription)>> + Send>>;

/// A stream that runs [`Subscription::next`] only when polled.
struct Lazy {
    state: Option<Subscription>,
    pending: Option<Step>,
}

impl Stream for Lazy {
    type Item = Result<ViewBatch, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let step = match &mut this.pending {
            Some(step) => step,
            None => match this.state.take() {
                Some(state) => this.pending.insert(Box::pin(state.next())),
                None => return Poll::Ready(None),
            },
        };
        match step.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(next) => {
                this.pending = None;
                Poll::Ready(next.map(|(item, state)| {
                    this.state = Some(state);
                    item
                }))
            }
        }
    }
}
