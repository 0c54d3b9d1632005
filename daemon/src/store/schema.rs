//! What a data directory is: its schema version, its owner and its epoch, checked at every open.
//!
//! - The **schema version** lets a newer binary migrate old data (the `MIGRATIONS` hook) and
//!   stops an older binary from misreading newer data.
//! - The **owner** (`node:SIRET` or `hub:ID`) stops a configuration from being pointed at
//!   another structure's data by mistake.
//! - The **epoch** is random bytes created at first open. It changes only when the store is
//!   recreated, so a peer that sees a new epoch knows the store was reset (as Syncthing's index id).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_proto::date::now_unix_ms;

use super::{SledStore, Store, StoreError, Tree, WriteBatch};

/// Why a data directory cannot be opened. The store's own error, so the store depends on nothing
/// above it; the daemon's `Error` takes it by `From` (as `DataDir` or `Store`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory does not belong to this configuration or this version.
    #[error("data_dir {}: {reason}", path.display())]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The storage engine failed while opening, checking or migrating.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

type Result<T, E = OpenError> = std::result::Result<T, E>;

/// The schema this binary writes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// A migration from version `i + 1` to `i + 2` is `MIGRATIONS[i]`. It must leave the store
/// readable by the next one; the version marker is bumped in the same commit as its last write.
type Migration = fn(&dyn Store, &mut WriteBatch) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[];

const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_OWNER: &[u8] = b"owner";
const KEY_EPOCH: &[u8] = b"epoch";
const KEY_CREATED: &[u8] = b"created_at_ms";

/// Who a store belongs to and which incarnation of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `node:SIRET` for a structure's node, `hub:ID` for a hub.
    pub owner: String,
    /// Random bytes set when the store was created.
    pub epoch: [u8; 16],
    /// When the store was created.
    pub created_at_ms: i64,
}

fn data_dir_error(dir: &Path, reason: impl Into<String>) -> OpenError {
    OpenError::DataDir { path: dir.to_path_buf(), reason: reason.into() }
}

/// Opens the store in `dir` for `owner`, creating it on first use, migrating it if it is older,
/// and refusing it if it is newer or belongs to someone else.
pub(crate) fn open_store(dir: &Path, owner: &str) -> Result<(Arc<dyn Store>, Identity)> {
    let store = SledStore::open(dir).map_err(|e| data_dir_error(dir, e.0))?;
    let identity = match store.get(Tree::Meta, KEY_SCHEMA)? {
        None => initialise(&store, dir, owner)?,
        Some(raw) => {
            let version = decode_u32(&raw).ok_or_else(|| data_dir_error(dir, "corrupt schema marker"))?;
            if version > SCHEMA_VERSION {
                return Err(data_dir_error(
                    dir,
                    format!(
                        "written by a newer passerelle (schema {version}); this binary reads up to schema {SCHEMA_VERSION}"
                    ),
                ));
            }
            migrate(&store, version)?;
            read_identity(&store, dir)?
        }
    };
    if identity.owner != owner {
        return Err(data_dir_error(
            dir,
            format!(
                "belongs to {} but the configuration is for {owner}; point data_dir elsewhere",
                identity.owner
            ),
        ));
    }
    Ok((Arc::new(store), identity))
}

fn initialise(store: &SledStore, dir: &Path, owner: &str) -> Result<Identity> {
    for tree in Tree::ALL {
        if !store.scan(tree, &[], None, 1)?.is_empty() {
            return Err(data_dir_error(
                dir,
                "holds data without a schema marker; refusing to guess its format",
            ));
        }
    }
    let identity = Identity {
        owner: owner.to_string(),
        epoch: *uuid::Uuid::new_v4().as_bytes(),
        created_at_ms: now_unix_ms(),
    };
    let mut batch = WriteBatch::new();
    batch.put(Tree::Meta, KEY_SCHEMA, SCHEMA_VERSION.to_be_bytes());
    batch.put(Tree::Meta, KEY_OWNER, owner.as_bytes());
    batch.put(Tree::Meta, KEY_EPOCH, identity.epoch);
    batch.put(Tree::Meta, KEY_CREATED, identity.created_at_ms.to_be_bytes());
    store.commit(batch)?;
    tracing::info!(owner, dir = %dir.display(), "created a new store");
    Ok(identity)
}

fn migrate(store: &SledStore, mut version: u32) -> Result<()> {
    while version < SCHEMA_VERSION {
        let step = MIGRATIONS
            .get(version as usize - 1)
            .ok_or_else(|| StoreError(format!("no migration from schema {version}")))?;
        let mut batch = WriteBatch::new();
        step(store, &mut batch)?;
        version += 1;
        batch.put(Tree::Meta, KEY_SCHEMA, version.to_be_bytes());
        store.commit(batch)?;
        tracing::info!(version, "migrated the store");
    }
    Ok(())
}

fn read_identity(store: &SledStore, dir: &Path) -> Result<Identity> {
    let corrupt = || data_dir_error(dir, "corrupt identity markers");
    let owner = store.get(Tree::Meta, KEY_OWNER)?.ok_or_else(corrupt)?;
    let epoch = store.get(Tree::Meta, KEY_EPOCH)?.ok_or_else(corrupt)?;
    let created = store.get(Tree::Meta, KEY_CREATED)?.ok_or_else(corrupt)?;
    Ok(Identity {
        owner: String::from_utf8(owner).map_err(|_| corrupt())?,
        epoch: epoch.try_into().map_err(|_| corrupt())?,
        created_at_ms: i64::from_be_bytes(created.try_into().map_err(|_| corrupt())?),
    })
}

fn decode_u32(raw: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(raw.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_across_opens_and_owner_is_enforced() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, first) = open_store(dir.path(), "node:73282932000074")?;
        let (store, again) = open_store(dir.path(), "node:73282932000074")?;
        assert_eq!(first, again);
        drop(store);
        let err = open_store(dir.path(), "node:35600000000048").expect_err("other owner");
        assert!(err.to_string().contains("belongs to node:73282932000074"), "{err}");
        Ok(())
    }

    #[test]
    fn newer_schema_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let (store, _) = open_store(dir.path(), "node:73282932000074")?;
            let mut batch = WriteBatch::new();
            batch.put(Tree::Meta, KEY_SCHEMA, (SCHEMA_VERSION + 1).to_be_bytes());
            store.commit(batch)?;
        }
        let err = open_store(dir.path(), "node:73282932000074").expect_err("newer schema");
        assert!(err.to_string().contains("written by a newer passerelle"), "{err}");
        Ok(())
    }
}
