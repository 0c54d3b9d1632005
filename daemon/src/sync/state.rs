//! What a node remembers about each hub, as pure types: the sharing agreement its checkpoint
//! belongs to, the checkpoint, the resends and withdrawals still owed, and the position of its
//! copy of the hub's view. The node reads and writes them (under its sync lock); this module only
//! says what they are and how a stored agreement meets the configured one.
//!
//! The push state and the view state of a hub are separate records, because the push and the
//! pull of a hub run concurrently and each writes only its own.

use passerelle_proto::datasets::Dataset;
use prost::Message;

/// Push state for one hub.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PushState {
    /// The agreement (datasets sorted by slug) the checkpoint is for.
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

impl PushState {
    /// Full resends and withdrawals still owed.
    pub(crate) fn owed(&self) -> usize {
        self.snapshot_pending.len() + self.withdraw_pending.len()
    }
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

/// The key of a hub's push state in the sync-state tree.
pub(crate) fn push_key(hub: &str) -> Vec<u8> {
    format!("push/{hub}").into_bytes()
}

/// The key of a hub's view state in the sync-state tree.
pub(crate) fn view_key(hub: &str) -> Vec<u8> {
    format!("view/{hub}").into_bytes()
}

/// Meets a hub's stored push state with the configured agreement `datasets`: a new hub starts at
/// the current `head` with a full resend; an added dataset is resent in full; a removed one is
/// withdrawn. Returns the state and whether it changed (and must be saved durably).
pub(crate) fn reconcile(
    stored: Option<PushState>,
    hub: &str,
    datasets: &[Dataset],
    head: u64,
) -> (PushState, bool) {
    let agreed: Vec<String> = datasets.iter().map(ToString::to_string).collect();
    let Some(mut state) = stored else {
        let state = PushState {
            datasets: agreed.clone(),
            checkpoint: head,
            snapshot_pending: agreed,
            ..Default::default()
        };
        return (state, true);
    };
    if state.datasets == agreed {
        return (state, false);
    }
    let added: Vec<String> = agreed.iter().filter(|d| !state.datasets.contains(d)).cloned().collect();
    let removed: Vec<String> = state.datasets.iter().filter(|d| !agreed.contains(d)).cloned().collect();
    tracing::info!(%hub, ?added, ?removed, "sharing agreement changed");
    for d in added {
        if !state.snapshot_pending.contains(&d) {
            state.snapshot_pending.push(d);
        }
    }
    state.snapshot_pending.retain(|d| agreed.contains(d));
    for d in removed {
        if !state.withdraw_pending.contains(&d) {
            state.withdraw_pending.push(d);
        }
    }
    state.withdraw_pending.retain(|d| !agreed.contains(d));
    state.datasets = agreed;
    (state, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hub_starts_at_the_head_with_a_full_resend() {
        let (state, changed) = reconcile(None, "h", &[Dataset::Indicators, Dataset::Needs], 7);
        assert!(changed);
        assert_eq!(state.checkpoint, 7);
        assert_eq!(state.snapshot_pending, ["indicators", "needs"]);
        assert_eq!(state.datasets, ["indicators", "needs"]);
    }

    #[test]
    fn an_added_dataset_is_resent_and_a_removed_one_withdrawn() {
        let stored = PushState { datasets: vec!["needs".into()], checkpoint: 3, ..Default::default() };
        let (same, changed) = reconcile(Some(stored.clone()), "h", &[Dataset::Needs], 9);
        assert!(!changed);
        assert_eq!(same, stored);
        let (state, changed) = reconcile(Some(stored), "h", &[Dataset::Indicators], 9);
        assert!(changed);
        assert_eq!(state.checkpoint, 3, "the checkpoint of what stayed is kept");
        assert_eq!(state.snapshot_pending, ["indicators"]);
        assert_eq!(state.withdraw_pending, ["needs"]);
    }
}
