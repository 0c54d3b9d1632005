//! Sync links, seen from the side that pushes: a node towards each of its hubs, a hub towards
//! each upstream hub. Both run the same [`link`]: connect (mutual TLS, then `Hello`), backoff
//! with jitter, open/accept, a window of batches in flight and an acknowledgement-driven
//! checkpoint. What is sent comes from a [`link::ChangeSource`], which the node (its outbox,
//! `node/push.rs`) and the hub (its change feed, `hub/relay.rs`) implement.
//!
//! Invariant: this module depends on neither `node` nor `hub` (`api → node | hub → sync | store
//! | tls`); [`state`] holds the node's sync state as pure types, which the node reads and writes.

pub(crate) mod connect;
pub(crate) mod link;
pub(crate) mod state;
pub(crate) mod wire;

pub(crate) use link::LinkCounters;
