//! What a node remembers about each hub, durably: the sharing agreement its checkpoint belongs
//! to, the checkpoint, and the resends and withdrawals still owed.
//!
//! The push state and the view state of a hub are separate records, because the push and the
//! pull of a hub run concurrently and each writes only its own.

use prost::Message;

use crate::config::HubLink;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::store::{StoreError, Tree, WriteBatch};

/// Push state for one hub.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PushState {
    /// The agreement (sorted datasets) the checkpoint is for.
    #[prost(string, repeated, tag = "1")]
    pub datasets: Vec<String>,
    /// Highest outbox sequence number the hub acknowledged.
    #[prost(uint64, tag = "2")]
    pub checkpoint: u64,
    /// Datasets to resend in full (new agreement, reset hub, digest mismatch), until acked.
    #[prost(string, repeated, tag = "3")]
    pub snapshot_pending: Vec<String>,
    /// Datasets no longer shared, to withdraw from the hub, until acked.
    #[prost(string, repeated, tag = "4")]
    pub withdraw_pending: Vec<String>,
    /// Last acknowledgement, milliseconds since the Unix epoch.
    #[prost(int64, tag = "5")]
    pub last_ack_at_ms: i64,
}

/// View state for one hub: the position of the local copy of its network view.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ViewState {
    /// The hub's store epoch the position belongs to.
    #[prost(bytes = "vec", tag = "1")]
    pub hub_epoch: Vec<u8>,
    /// Position in the hub's view feed.
    #[prost(uint64, tag = "2")]
    pub position: u64,
}

fn push_key(hub: &str) -> Vec<u8> {
    format!("push/{hub}").into_bytes()
}

/// The key of a hub's view state.
pub(crate) fn view_key(hub: &str) -> Vec<u8> {
    format!("view/{hub}").into_bytes()
}

fn decode<M: Message + Default>(raw: &[u8]) -> Result<M> {
    M::decode(raw).map_err(|_| Error::Store(StoreError("corrupt sync state".into())))
}

/// Loads a hub's push state and reconciles it with the configured agreement: a new hub starts
/// at the current head with a full resend; an added dataset is resent in full; a removed one is
/// withdrawn.
pub(crate) fn reconcile(node: &Node, link: &HubLink) -> Result<PushState> {
    let key = push_key(&link.id);
    let mut state = match node.store().get(Tree::SyncState, &key)? {
        Some(raw) => decode::<PushState>(&raw)?,
        None => {
            let state = PushState {
                datasets: link.datasets.clone(),
                checkpoint: node.head_seq(),
                snapshot_pending: link.datasets.clone(),
                ..Default::default()
            };
            save_push(node, &link.id, &state)?;
            return Ok(state);
        }
    };
    if state.datasets != link.datasets {
        let added: Vec<String> =
            link.datasets.iter().filter(|d| !state.datasets.contains(d)).cloned().collect();
        let removed: Vec<String> =
            state.datasets.iter().filter(|d| !link.datasets.contains(d)).cloned().collect();
        tracing::info!(hub = %link.id, ?added, ?removed, "sharing agreement changed");
        for d in added {
            if !state.snapshot_pending.contains(&d) {
                state.snapshot_pending.push(d);
            }
        }
        state.snapshot_pending.retain(|d| link.datasets.contains(d));
        for d in removed {
            if !state.withdraw_pending.contains(&d) {
                state.withdraw_pending.push(d);
            }
        }
        state.withdraw_pending.retain(|d| !link.datasets.contains(d));
        state.datasets = link.datasets.clone();
        save_push(node, &link.id, &state)?;
    }
    Ok(state)
}

/// Saves a hub's push state durably (agreement changes, owed resends).
pub(crate) fn save_push(node: &Node, hub: &str, state: &PushState) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(Tree::SyncState, push_key(hub), state.encode_to_vec());
    Ok(node.store().commit(batch)?)
}

/// Saves a hub's push state after an acknowledgement, without an fsync: a checkpoint lost in a
/// crash only lags behind the hub's, and resending what the hub already has changes nothing
/// there (idempotent apply). It never runs ahead of an acknowledgement.
pub(crate) fn save_push_relaxed(node: &Node, hub: &str, state: &PushState) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(Tree::SyncState, push_key(hub), state.encode_to_vec());
    Ok(node.store().commit_relaxed(batch)?)
}

/// Loads a hub's view state.
pub(crate) fn load_view(node: &Node, hub: &str) -> Result<ViewState> {
    Ok(match node.store().get(Tree::SyncState, &view_key(hub))? {
        Some(raw) => decode(&raw)?,
        None => ViewState::default(),
    })
}
