//! Storage behind a small trait, so the engine can be swapped (as Garage did) without touching
//! the domain code.
//!
//! The model is a handful of named ordered trees of byte keys and values. Keys are built
//! big-endian (see [`keys`]) so that byte order is the order the domain wants (creation order for
//! time-ordered ids, chronological for months). Writes go through [`Store::commit`], which applies a
//! [`WriteBatch`] atomically across trees and returns only once it is durable on disk: nothing is
//! acknowledged to a client before that.

pub(crate) mod gui_users;
pub(crate) mod keys;
mod schema;
mod sled_store;

pub(crate) use schema::{Identity, OpenError, open_store};
pub(crate) use sled_store::SledStore;

/// The trees of a node's store. Adding a tree is adding a variant (and a migration if existing
/// data must move).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Tree {
    /// Store-wide markers: schema version, epoch, owner SIRET.
    Meta,
    /// Recruitment needs by id.
    Needs,
    /// Persons by id.
    Persons,
    /// Consents by id.
    Consents,
    /// Index: person id ++ consent id → nothing.
    ConsentsByPerson,
    /// Indicator reports by month ordinal.
    Indicators,
    /// On a hub: members by `ROLE/ID`.
    Members,
    /// On a node: change log, sequence number → (dataset, key).
    Outbox,
    /// On a node: deleted records' last versions, `dataset/key` → version.
    Tombstones,
    /// On a node: sync state per hub (agreement, checkpoint, pending resends).
    SyncState,
    /// On a node: the network view held from each hub, `hub/origin/need_id` → need.
    NetworkView,
    /// On a hub: members' records, `origin/dataset/key` → record.
    Records,
    /// On a hub: the change feed, position → the `origin/dataset/key` changed by one commit, one a line.
    Feed,
    /// On a node: each person's profile version, person id → version.
    ProfileVersions,
    /// On a node: what each hub received of each person, `person_id/hub_id` → share record.
    Shares,
    /// On a node: the hash-chained audit log, sequence number → entry.
    Audit,
    /// On a hub: statistics cells, maintained with the records they count.
    Stats,
    /// On a hub: reporting periods — receipts per month and structure, closings, frozen tables.
    Periods,
    /// Introductions. On a node: its requests (`o/ID`) and those routed to it (`i/ID`). On a hub:
    /// requests (`q/ID`, ciphertext only), and per member the requests it sent (`s/SIRET/ID`) and
    /// those routed to it (`m/SIRET/ID`).
    Introductions,
    /// On a node: the signature of each shared record's current state, `dataset/key` → signature
    /// (made at commit, sent with every copy).
    Signatures,
    /// Certificates whose keys signed records, fingerprint → DER: on a node its own (current and
    /// renewed from), on a hub those of its members' records it may relay.
    Certificates,
    /// On an upstream hub: the highest (epoch creation, epoch, version) seen per relayed record,
    /// `origin/dataset/key` → floor; kept after the record goes, so no relay can bring back an
    /// older version.
    Floors,
    /// On a node: the web console's accounts, name → `GuiAccount` (role, Argon2id PHC string).
    GuiUsers,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub(crate) const ALL: [Tree; 23] = [
        Tree::Meta,
        Tree::Needs,
        Tree::Persons,
        Tree::Consents,
        Tree::ConsentsByPerson,
        Tree::Indicators,
        Tree::Members,
        Tree::Outbox,
        Tree::Tombstones,
        Tree::SyncState,
        Tree::NetworkView,
        Tree::Records,
        Tree::Feed,
        Tree::ProfileVersions,
        Tree::Shares,
        Tree::Audit,
        Tree::Stats,
        Tree::Periods,
        // Appended: a tree's tag is its position, which existing stores hold.
        Tree::Introductions,
        Tree::Signatures,
        Tree::Certificates,
        Tree::Floors,
        Tree::GuiUsers,
    ];

    /// The tree's one-byte key prefix in the single sled keyspace.
    pub(crate) fn tag(self) -> u8 {
        Tree::ALL.iter().position(|t| *t == self).map_or(u8::MAX, |i| i as u8)
    }

    /// The tree's name on disk.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Needs => "needs",
            Tree::Persons => "persons",
            Tree::Consents => "consents",
            Tree::ConsentsByPerson => "consents_by_person",
            Tree::Indicators => "indicators",
            Tree::Members => "members",
            Tree::Outbox => "outbox",
            Tree::Tombstones => "tombstones",
            Tree::SyncState => "sync_state",
            Tree::NetworkView => "network_view",
            Tree::Records => "records",
            Tree::Feed => "feed",
            Tree::ProfileVersions => "profile_versions",
            Tree::Shares => "shares",
            Tree::Audit => "audit",
            Tree::Stats => "stats",
            Tree::Periods => "periods",
            Tree::Introductions => "introductions",
            Tree::Signatures => "signatures",
            Tree::Certificates => "certificates",
            Tree::Floors => "floors",
            Tree::GuiUsers => "gui_users",
        }
    }
}

/// A key and its value, as scans return them.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// One write of a batch: set (`Some`) or remove (`None`) a key of a tree.
pub(crate) type WriteOp = (Tree, Vec<u8>, Option<Vec<u8>>);

/// A failure of the storage engine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// What [`Store::scan_each`] calls with each key and value, borrowed.
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// A set of writes applied atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub(crate) struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `tree`.
    pub(crate) fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((tree, key.into(), Some(value.into())));
    }

    /// Removes `key` from `tree`.
    pub(crate) fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.ops.push((tree, key.into(), None));
    }

    /// Whether the batch has no write.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The writes, in order.
    pub(crate) fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// The writes, in order, to rewrite a staged value in place (a node completes its outbox
    /// entries once the batch's records are final, rather than staging each entry twice).
    pub(crate) fn ops_mut(&mut self) -> &mut [WriteOp] {
        &mut self.ops
    }
}

/// An ordered key-value store with atomic, durable multi-tree commits.
pub(crate) trait Store: std::fmt::Debug + Send + Sync + 'static {
    /// The value of `key` in `tree`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries of `tree` with `start <= key < end` (no `end`: to the last key),
    /// in key order.
    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut entries = Vec::new();
        self.scan_each(tree, start, end, limit, &mut |key, value| {
            entries.push((key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(entries)
    }

    /// [`Store::scan`] without copying: calls `visit` with each key (without its tree's prefix)
    /// and value, borrowed from the engine, so a caller decoding entries (the node's outbox during
    /// catch-up) allocates only what it keeps. Stops at the first error `visit` returns.
    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;

    /// The greatest key of `tree` with `start <= key < end` (no `end`: to the last key), read
    /// from the store itself. A hub bounds an origin's keys with it, once per batch, so a key
    /// above the bound is known to be absent without a read (and no cache can go stale).
    fn last_key(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies every write of `batch` atomically, then makes it durable (flushed and fsynced)
    /// before returning.
    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Applies every write of `batch` atomically, without waiting for it to be durable. Only for
    /// state whose loss in a crash is harmless because it is recomputed or re-fetched (a sync
    /// checkpoint that may lag behind, never run ahead); it becomes durable with the next
    /// [`Store::commit`] or [`Store::sync`].
    fn commit_relaxed(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Makes everything written so far durable (used at shutdown).
    fn sync(&self) -> Result<(), StoreError>;
}

/// The greatest key of `tree` starting with `prefix`, if any.
pub(crate) fn last_key_with_prefix(
    store: &dyn Store,
    tree: Tree,
    prefix: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let end = keys::prefix_end(prefix);
    store.last_key(tree, prefix, end.as_deref())
}

/// Every entry of `tree` whose key starts with `prefix`, in key order.
pub(crate) fn scan_prefix(store: &dyn Store, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
    let end = keys::prefix_end(prefix);
    store.scan(tree, prefix, end.as_deref(), usize::MAX)
}
