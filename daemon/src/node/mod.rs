//! A structure's own records and the rules that need the store to check them.
//!
//! [`Node`] is the domain layer between the API and the [`Store`]: it validates what the API hands
//! it (with `passerelle_proto::validate`), assigns ids, versions and timestamps, and turns each
//! change into one atomic, durable [`WriteBatch`].
//!
//! Invariants:
//! - every write goes through `commit` while holding `writer`, so read-modify-write sequences
//!   (version increments, "one consent in force per person × purpose × hub") never interleave;
//! - a record and its index entries are written in the same batch;
//! - a call returns only after its batch is durable.

pub mod audit;
mod consents;
mod gui_users;
mod indicators;
pub(crate) mod introductions;
mod introductions_sync;
mod missing;
mod needs;
pub mod network;
pub mod outbox;
mod persons;
pub mod profiles;
pub mod projection;
mod push;
pub(crate) mod sealing;
pub mod signatures;
pub(crate) mod sync_engine;

use std::sync::{Arc, Mutex, MutexGuard};

use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::Structure;
use passerelle_proto::validate::{self, FieldError};
use prost::Message;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{self, Identity, Store, StoreError, Tree, WriteBatch};

/// The records of the structure running this node.
pub struct Node {
    store: Arc<dyn Store>,
    structure: Structure,
    identity: Identity,
    writer: Mutex<()>,
    /// Serialises sync state (checkpoints, view positions), apart from `writer`: see
    /// [`Node::sync_lock`].
    sync_lock: Mutex<()>,
    /// The outbox head, watched by sync tasks.
    head: tokio::sync::watch::Sender<u64>,
    /// When recent changes were committed, for the sync lag metric.
    commit_times: Mutex<outbox::CommitTimes>,
    /// The key records are signed with (see [`signatures`]); none without a certificate.
    signer: Option<crate::tls::signing::RecordSigner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("siret", &self.structure.siret).finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the node's store in `data_dir` for `structure` (whose identity must be valid).
    pub fn open(data_dir: &std::path::Path, structure: Structure) -> Result<Self> {
        validate::structure(&structure)?;
        let (store, identity) = store::open_store(data_dir, &format!("node:{}", structure.siret))?;
        Self::ensure_pseudonym_key(store.as_ref())?;
        let head = match store.get(Tree::Meta, outbox::HEAD_KEY)? {
            Some(raw) => u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| Error::Store(StoreError("corrupt outbox head".into())))?,
            ),
            None => 0,
        };
        let commit_times = Mutex::new(outbox::CommitTimes::new(head, now_unix_ms()));
        let (head, _) = tokio::sync::watch::channel(head);
        Ok(Self {
            store,
            structure,
            identity,
            writer: Mutex::new(()),
            sync_lock: Mutex::new(()),
            head,
            commit_times,
            signer: None,
        })
    }

    /// The structure this node belongs to.
    pub fn structure(&self) -> &Structure {
        &self.structure
    }

    /// The store's identity (owner, epoch).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Makes everything durable; called at shutdown.
    pub fn sync(&self) -> Result<()> {
        Ok(self.store.sync()?)
    }

    /// Serialises writers; held across a read-modify-write and its commit.
    fn write_lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic in another writer cannot leave it inconsistent.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.store.commit(batch)?)
    }

    fn load<M: Message + Default>(&self, tree: Tree, key: &[u8]) -> Result<Option<M>> {
        self.store.get(tree, key)?.map(|raw| decode(tree, &raw)).transpose()
    }

    /// How many records the node holds, by kind (for the metrics endpoint; scans keys only).
    pub fn record_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut counts = Vec::new();
        for tree in [Tree::Needs, Tree::Indicators, Tree::Persons, Tree::Consents] {
            counts.push((tree.name(), self.store.scan(tree, &[], None, usize::MAX)?.len() as u64));
        }
        Ok(counts)
    }

    fn load_all<M: Message + Default>(&self, tree: Tree) -> Result<Vec<M>> {
        self.store.scan(tree, &[], None, usize::MAX)?.into_iter().map(|(_, raw)| decode(tree, &raw)).collect()
    }
}

fn decode<M: Message + Default>(tree: Tree, raw: &[u8]) -> Result<M> {
    M::decode(raw).map_err(|e| Error::Store(StoreError(format!("corrupt record in {}: {e}", tree.name()))))
}

/// Parses a record id given by a client.
fn parse_id(field: &str, id: &str) -> Result<Uuid> {
    validate::record_id(field, id)?;
    Uuid::parse_str(id).map_err(|_| FieldError::new(field, id, "expected a record id (a UUID)").into())
}

/// Unwraps a required sub-message.
fn required<T>(field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| FieldError::rule(field, "is required").into())
}

/// Turns `Some("")` into `None`, so an emptied optional text is the same as an absent one.
/// Refuses an import larger than [`validate::MAX_IMPORT_ROWS`] before looking at its rows.
fn check_size(rows: usize) -> Result<()> {
    if rows > passerelle_proto::validate::MAX_IMPORT_ROWS {
        return Err(passerelle_proto::validate::FieldError::rule(
            "rows",
            format!("at most {} rows per import, got {rows}", passerelle_proto::validate::MAX_IMPORT_ROWS),
        )
        .into());
    }
    Ok(())
}

/// The line a row error names: the file's line, or the row's position (from 1) when the rows
/// did not come from a file.
fn row_line(line: u32, index: usize) -> u32 {
    if line > 0 { line } else { u32::try_from(index + 1).unwrap_or(u32::MAX) }
}

fn none_if_empty(value: &mut Option<String>) {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        *value = None;
    }
}

#[cfg(test)]
mod tests;
