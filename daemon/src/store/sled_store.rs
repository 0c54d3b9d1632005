//! [`Store`] on sled 0.34, with commits that are really durable.
//!
//! Every logical [`Tree`] lives in one sled keyspace under a one-byte prefix ([`Tree::tag`]), so
//! a commit touching several logical trees is a single `apply_batch` — atomic, and several times
//! cheaper than a sled multi-tree transaction (measured in BENCHMARKS.md).
//!
//! sled 0.34's `flush()` writes its log with `sync_file_range`, which does not persist file
//! metadata and is not a durability guarantee; and values larger than a segment's share go to
//! `blobs/` files that sled never fsyncs. So a commit here is: `apply_batch`, `flush()`, then
//! `fdatasync` of the `db` file and `fsync` of any blob file (and of the blob directory) not
//! synced before.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Store, StoreError, Tree, Visit, WriteBatch};

/// sled's page cache. Its default (1 GiB) let a hub taking 4,000 members' first pushes grow to
/// 800 MB: every batch rewrites the same statistics cells, and sled keeps each page's chain of
/// updates cached until it compacts it. The working set of a hub or a node is far smaller; what
/// falls out is read back from the OS's page cache. 64 MiB still left 50 MB of sled pages live in
/// a hub holding 4,000 idle sessions (heap profile); 16 MiB is what a member's batch touches many
/// times over.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long `open` waits for another handle's lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A sled database in a directory; the logical trees share one sled tree.
pub(crate) struct SledStore {
    db: sled::Db,
    keyspace: sled::Tree,
    dir: PathBuf,
    db_file: File,
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn err(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{context}: {e}"))
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`. Fails if another process has it open.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        // sled releases its file lock from its own threads shortly after the last handle is
        // dropped (a daemon that just stopped, a predecessor still exiting): wait for that, a
        // little, before calling the directory in use.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open() {
                Ok(db) => break db,
                // sled reports its file lock as an `Other` I/O error carrying this text.
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError(format!(
                            "{} is in use by another process (is another passerelled running with this data_dir?)",
                            dir.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(err(&format!("opening the database in {}", dir.display()), other)),
            }
        };
        let keyspace = db.open_tree("passerelle").map_err(|e| err("opening the keyspace", e))?;
        let db_file = File::open(dir.join("db")).map_err(|e| err("opening the db file", e))?;
        // The directory entries sled just created must survive a crash too.
        sync_dir(dir)?;
        let store = Self { db, keyspace, dir: dir.to_path_buf(), db_file, synced_blobs: Mutex::default() };
        store.sync()?;
        Ok(store)
    }

    /// Fsyncs the blob files written since the last call, and the blob directory if any was new.
    fn sync_blobs(&self) -> Result<(), StoreError> {
        let blobs = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err("listing blobs", e)),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut any_new = false;
        for entry in entries {
            let entry = entry.map_err(|e| err("listing blobs", e))?;
            let name = entry.file_name();
            if synced.contains(&name) {
                continue;
            }
            match File::open(entry.path()).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                // sled removes blobs it no longer needs; a vanished one needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err("syncing a blob", e)),
            }
            synced.insert(name);
            any_new = true;
        }
        if any_new {
            sync_dir(&blobs)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err(&format!("syncing {}", dir.display()), e))
}

/// `tag ++ key`.
fn prefixed(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(tree.tag());
    out.extend_from_slice(key);
    out
}

/// The sled keys of `tree` with `start <= key < end` (no `end`: to the tree's last key).
fn key_range(tree: Tree, start: &[u8], end: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let upper = match end {
        Some(end) => Bound::Excluded(prefixed(tree, end)),
        None if tree.tag() == u8::MAX => Bound::Unbounded,
        None => Bound::Excluded(vec![tree.tag() + 1]),
    };
    (Bound::Included(prefixed(tree, start)), upper)
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.keyspace.get(prefixed(tree, key)).map_err(|e| err("reading", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        for kv in self.keyspace.range(key_range(tree, start, end)).take(limit) {
            let (k, v) = kv.map_err(|e| err("scanning", e))?;
            visit(&k[1..], &v)?;
        }
        Ok(())
    }

    fn last_key(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        match self.keyspace.range(key_range(tree, start, end)).next_back() {
            Some(kv) => kv.map(|(k, _)| Some(k[1..].to_vec())).map_err(|e| err("scanning", e)),
            None => Ok(None),
        }
    }

    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_relaxed(batch)?;
        self.sync()
    }

    fn commit_relaxed(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut write = sled::Batch::default();
        // Each key is prefixed in a buffer reused for the whole batch, then copied once into
        // sled's own `IVec` (a hub commits several writes per change it applies).
        let mut key_buf = Vec::with_capacity(128);
        for (tree, key, value) in batch.ops() {
            key_buf.clear();
            key_buf.push(tree.tag());
            key_buf.extend_from_slice(key);
            let key = sled::IVec::from(key_buf.as_slice());
            match value {
                Some(v) => write.insert(key, v.as_slice()),
                None => write.remove(key),
            }
        }
        self.keyspace.apply_batch(write).map_err(|e| err("committing", e))
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| err("flushing", e))?;
        self.db_file.sync_data().map_err(|e| err("syncing the db file", e))?;
        self.sync_blobs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_atomically_across_trees_and_reopens() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let store = SledStore::open(dir.path())?;
            let mut batch = WriteBatch::new();
            batch.put(Tree::Needs, b"a".to_vec(), b"1".to_vec());
            batch.put(Tree::Persons, b"b".to_vec(), b"2".to_vec());
            batch.put(Tree::Needs, b"c".to_vec(), b"3".to_vec());
            batch.delete(Tree::Needs, b"c".to_vec());
            store.commit(batch)?;
        }
        let store = SledStore::open(dir.path())?;
        assert_eq!(store.get(Tree::Needs, b"a")?, Some(b"1".to_vec()));
        assert_eq!(store.get(Tree::Persons, b"b")?, Some(b"2".to_vec()));
        assert_eq!(store.get(Tree::Needs, b"c")?, None);
        Ok(())
    }

    #[test]
    fn large_values_go_to_synced_blobs() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SledStore::open(dir.path())?;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Needs, b"big".to_vec(), vec![7u8; 1 << 20]);
        store.commit(batch)?;
        let blobs = store.synced_blobs.lock().map(|s| s.len()).unwrap_or_default();
        assert!(blobs >= 1, "a 1 MiB value is a blob and was fsynced");
        Ok(())
    }

    #[test]
    fn scans_ranges_in_key_order() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SledStore::open(dir.path())?;
        let mut batch = WriteBatch::new();
        for k in [3u8, 1, 2, 5] {
            batch.put(Tree::Indicators, vec![k], vec![k]);
        }
        store.commit(batch)?;
        let keys: Vec<u8> =
            store.scan(Tree::Indicators, &[2], Some(&[5]), 10)?.into_iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, vec![2, 3]);
        Ok(())
    }

    #[test]
    fn scan_each_visits_what_scan_returns_and_stops_at_an_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SledStore::open(dir.path())?;
        let mut batch = WriteBatch::new();
        for k in [4u8, 1, 2, 3] {
            batch.put(Tree::Outbox, vec![k], vec![k * 10]);
        }
        batch.put(Tree::Tombstones, vec![0], vec![0]);
        store.commit(batch)?;
        let mut seen = Vec::new();
        store.scan_each(Tree::Outbox, &[2], None, 2, &mut |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        assert_eq!(seen, store.scan(Tree::Outbox, &[2], None, 2)?, "same entries, same order");
        assert_eq!(seen, vec![(vec![2], vec![20]), (vec![3], vec![30])]);
        let mut visits = 0;
        let failed = store.scan_each(Tree::Outbox, &[], None, usize::MAX, &mut |_, _| {
            visits += 1;
            Err(StoreError("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(visits, 1, "the first error ends the scan");
        Ok(())
    }
}
