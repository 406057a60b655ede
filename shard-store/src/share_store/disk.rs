//! Shares as files under a root folder, with an SQLite index.
//!
//! Two layouts, one mechanism:
//! - [`Layout::Plain`]: content-addressed, `<namespace hex>/<first byte of id>/<id hex>`.
//! - [`Layout::Scatter`]: the prototype's hiding idea done safely — each share lands at a
//!   random depth in random nested folders that the store itself created, under a harmless
//!   name (`debug.log`, `prefs.ini`, …, made unique). The mapping lives only in the index.
//!   Scatter hides from a casual look, not from forensics: encryption is the boundary.
//!
//! A put, for a batch of shares:
//! 1. under the lock: skip shares already held, check the quota, choose paths, and commit
//!    index rows in state *pending* (one transaction);
//! 2. write each share to `<root>/.tmp/<random>.part`, `fdatasync` it (in parallel threads, so
//!    the disk sees many syncs at once), then rename (plain) or hard-link without replacing
//!    (scatter) it into place, and fsync every folder that gained an entry;
//! 3. commit the rows as *ok* (one transaction), then return: the caller may acknowledge.
//!
//! Delete (by the owner, signed) keeps the file and marks its row *deleted* with the time: the
//! share stops being listed, counted or offered, but stays readable by its owner and is revived
//! by a put of the same share, until the grace period ends ([`ShareStore::expire`]) or the
//! store needs the room (oldest deletions first, logged). Purge marks rows *pending*, removes
//! the files, then deletes the rows. On open, every
//! *pending* row's file is removed along with the row, and stray `.part` files are deleted.
//! So after a crash at any point: no index row without a complete file, no half-written share
//! served, no file left behind that the index does not know (so scatter never leaks).

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use shard_proto::{MAX_SHARE_PAYLOAD, Namespace, SHARE_HEADER_LEN, Share, ShareHeader, ShareId};

use super::index::{Index, Row, State};
use super::scatter::{below, dir_name, file_name, valid_relpath};
use super::{ShareStore, Usage};
use crate::{Error, Result};

const TMP_DIR: &str = ".tmp";
const QUARANTINE_DIR: &str = ".quarantine";
const INDEX_FILE: &str = ".index.db";
/// Largest file the store will read as a share.
const MAX_SHARE_FILE: u64 = SHARE_HEADER_LEN as u64 + MAX_SHARE_PAYLOAD as u64;
/// Threads that write and sync the shares of one batch.
const WRITERS: usize = 4;
/// Deepest nesting of scatter folders.
const SCATTER_MAX_DEPTH: usize = 7;
/// Ids looked up in the index per hold of the store's lock (see `has`).
const HAS_PER_LOCK: usize = 256;
/// Shares per scatter folder before a new folder is preferred.
const SCATTER_FILES_PER_DIR: usize = 48;

/// How shares are laid out under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Content-addressed fan-out folders.
    Plain,
    /// Random nested folders and harmless names.
    Scatter,
}

/// Options of a [`DiskStore`].
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// The layout.
    pub layout: Layout,
    /// Bytes the store may hold; `None` for no limit but the disk.
    pub quota: Option<u64>,
    /// Where the index lives (default: `<root>/.index.db`). Keeping a scatter store's index in
    /// the node's home leaves nothing but harmless-looking files under the root.
    pub index_path: Option<PathBuf>,
}

impl DiskOptions {
    /// The given layout, no quota, index under the root.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            quota: None,
            index_path: None,
        }
    }
}

/// A durable share store on disk. See the module documentation for the write protocol.
pub struct DiskStore {
    root: PathBuf,
    layout: Layout,
    quota: Option<u64>,
    state: Mutex<Inner>,
    /// Signalled whenever shares stop being in flight.
    settled: Condvar,
}

struct Inner {
    index: Index,
    rng: ChaCha20Rng,
    /// Scatter folders (relative), with their depth and the shares placed since open.
    dirs: Vec<ScatterDir>,
    /// Shares being written or deleted right now.
    in_flight: HashSet<(Namespace, ShareId)>,
    /// Scatter folders created since the last batch took them (their parents need a sync).
    created: Vec<PathBuf>,
    used: u64,
    count: u64,
    /// Of `used`, bytes of deleted shares in their grace period.
    deleted: u64,
}

/// A scatter folder the store created.
struct ScatterDir {
    path: String,
    depth: usize,
    /// Shares placed in it since the store was opened.
    filled: usize,
}

impl ScatterDir {
    fn new(path: String) -> Self {
        let depth = path.split('/').count();
        Self {
            path,
            depth,
            filled: 0,
        }
    }
}

/// A share on its way to disk.
struct Planned<'a> {
    share: &'a Share,
    rel: String,
}

impl DiskStore {
    /// Opens (or creates) a store under `root`, which must be an existing, writable folder.
    /// Finishes or undoes whatever a crash interrupted.
    pub fn open(root: &Path, options: DiskOptions) -> Result<Self> {
        Self::open_inner(root, options).map_err(|e| match e {
            Error::Database(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ReadOnly =>
            {
                Error::ReadOnly(root.to_path_buf())
            }
            other => other,
        })
    }

    fn open_inner(root: &Path, options: DiskOptions) -> Result<Self> {
        let meta = match fs::metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::RootMissing(root.to_path_buf()));
            }
            Err(e) => return Err(e.into()),
        };
        if !meta.is_dir() {
            return Err(Error::NotADirectory(root.to_path_buf()));
        }
        let root = root.canonicalize()?;
        for dir in [TMP_DIR, QUARANTINE_DIR] {
            let path = root.join(dir);
            if let Err(e) = fs::create_dir(&path)
                && e.kind() != ErrorKind::AlreadyExists
            {
                return Err(Error::from_write(e, &root));
            }
        }
        // Probe: can we really create files here (a read-only mount or missing permission is
        // better reported now than at the first share).
        let probe = root
            .join(TMP_DIR)
            .join(format!("probe-{}.part", random_hex()?));
        File::create_new(&probe).map_err(|e| Error::from_write(e, &root))?;
        fs::remove_file(&probe)?;

        let index_path = options
            .index_path
            .clone()
            .unwrap_or_else(|| root.join(INDEX_FILE));
        let mut index = Index::open(&index_path)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| Error::Crypto(shard_crypto::Error::Random))?;
        let dirs = Self::recover(&root, &mut index)?
            .into_iter()
            .map(ScatterDir::new)
            .collect();
        let (used, count) = index.totals()?;
        let deleted = index.deleted_bytes()?;
        Ok(Self {
            root,
            layout: options.layout,
            quota: options.quota,
            state: Mutex::new(Inner {
                index,
                rng: ChaCha20Rng::from_seed(seed),
                dirs,
                in_flight: HashSet::new(),
                created: Vec::new(),
                used,
                count,
                deleted,
            }),
            settled: Condvar::new(),
        })
    }

    /// Undoes interrupted writes and deletes; returns the scatter folders that still exist.
    fn recover(root: &Path, index: &mut Index) -> Result<Vec<String>> {
        let pending = index.pending()?;
        for row in &pending {
            if valid_relpath(&row.path) {
                remove_if_present(&root.join(&row.path))?;
            }
        }
        let keys: Vec<_> = pending.iter().map(|r| (r.ns, r.id)).collect();
        match index.delete_rows(&keys) {
            Ok(()) => {}
            // On a full disk SQLite cannot log the deletion. Pending rows are invisible to
            // readers and their files are gone, so the store can open and serve; the rows go
            // at a later open.
            Err(Error::Database(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::DiskFull => {}
            Err(e) => return Err(e),
        }
        for entry in fs::read_dir(root.join(TMP_DIR))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "part") {
                remove_if_present(&path)?;
            }
        }
        let mut alive = Vec::new();
        for dir in index.dirs()? {
            let is_ours = valid_relpath(&dir)
                && fs::symlink_metadata(root.join(&dir)).is_ok_and(|m| m.is_dir());
            if is_ours {
                alive.push(dir);
            } else {
                index.remove_dir(&dir)?;
            }
        }
        Ok(alive)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // parking_lot's lock: no poisoning (every update of `Inner` is completed before the
        // lock is released, or undone by `recover` at the next open), and a fair hand-over
        // when asked for (see `has`); std's lock lets a thread that takes it again at once
        // starve the others.
        self.state.lock()
    }

    /// Waits until none of `keys` is being written or deleted by another call.
    fn wait_idle<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        keys: &[(Namespace, ShareId)],
    ) -> MutexGuard<'a, Inner> {
        while keys.iter().any(|k| inner.in_flight.contains(k)) {
            self.settled.wait(&mut inner);
        }
        inner
    }

    /// Records that a share's file is gone.
    fn mark_missing(&self, ns: &Namespace, id: &ShareId, size: u64) -> Result<()> {
        let mut inner = self.lock();
        inner.index.set_state(&[(*ns, *id)], State::Missing)?;
        inner.count = inner.count.saturating_sub(1);
        inner.used = inner.used.saturating_sub(size);
        Ok(())
    }

    fn plain_path(ns: &Namespace, id: &ShareId) -> String {
        let id = id.to_hex();
        let fan = id.get(..2).unwrap_or("00");
        format!("{}/{fan}/{id}", hex::encode(ns.to_bytes()))
    }

    /// Chooses a fresh scatter path: an existing folder of ours, or a new chain of 1–3 folders
    /// created now under the root or under one of ours; then a name unused there.
    fn scatter_path(&self, inner: &mut Inner, batch: &HashSet<String>) -> Result<String> {
        let reuse = inner
            .dirs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.filled < SCATTER_FILES_PER_DIR)
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        // Mostly into a folder with room; now and then a new one, so the tree keeps growing in
        // odd places. (Once one put in four: thousands of folders for a few thousand shares,
        // and choosing among them became a third of a small-file put.)
        let slot = if !reuse.is_empty() && below(&mut inner.rng, 16) != 0 {
            reuse[below(&mut inner.rng, reuse.len())]
        } else {
            self.new_scatter_dirs(inner)?
        };
        let dir = inner.dirs[slot].path.clone();
        for attempt in 0..64 {
            let rel = format!("{dir}/{}", file_name(&mut inner.rng, attempt));
            let free = !batch.contains(&rel)
                && !inner.index.path_taken(&rel)?
                && fs::symlink_metadata(self.root.join(&rel))
                    .is_err_and(|e| e.kind() == ErrorKind::NotFound);
            if free {
                inner.dirs[slot].filled += 1;
                return Ok(rel);
            }
        }
        Err(Error::IndexDamaged("no free file name in a scatter folder"))
    }

    /// Creates 1–3 nested folders (never inside a folder the store did not create) and
    /// returns the slot of the deepest.
    fn new_scatter_dirs(&self, inner: &mut Inner) -> Result<usize> {
        // Nest under an existing folder only where the new levels still fit under the depth
        // limit; otherwise chains would deepen with every new folder until none fits.
        let depth = 1 + below(&mut inner.rng, 3);
        let shallow: Vec<usize> = (0..inner.dirs.len())
            .filter(|&i| inner.dirs[i].depth + depth <= SCATTER_MAX_DEPTH)
            .collect();
        let mut parent = if !shallow.is_empty() && below(&mut inner.rng, 2) == 0 {
            Some(
                inner.dirs[shallow[below(&mut inner.rng, shallow.len())]]
                    .path
                    .clone(),
            )
        } else {
            None
        };
        let mut slot = None;
        for _ in 0..depth {
            let mut created = None;
            for attempt in 0..32 {
                let name = dir_name(&mut inner.rng, attempt);
                let rel = match &parent {
                    Some(p) => format!("{p}/{name}"),
                    None => name,
                };
                match fs::create_dir(self.root.join(&rel)) {
                    Ok(()) => {
                        created = Some(rel);
                        break;
                    }
                    // Someone else's folder, or one of ours: never write into it this way.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(Error::from_write(e, &self.root)),
                }
            }
            let Some(rel) = created else {
                break;
            };
            inner.index.add_dir(&rel)?;
            inner.created.push(self.root.join(&rel));
            inner.dirs.push(ScatterDir::new(rel.clone()));
            slot = Some(inner.dirs.len() - 1);
            parent = Some(rel);
        }
        slot.ok_or(Error::IndexDamaged("could not create a scatter folder"))
    }

    /// Writes, syncs and moves every planned share into place, then syncs the folders.
    /// Writes, syncs and moves every planned share into place, then syncs the folders that
    /// gained an entry, and the parents of folders created for this batch (`created`).
    fn write_files(&self, planned: &[Planned<'_>], mut created: Vec<PathBuf>) -> Result<()> {
        let tmp = self.root.join(TMP_DIR);
        let mut dirs: Vec<PathBuf> = planned
            .iter()
            .filter_map(|p| self.root.join(&p.rel).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        if self.layout == Layout::Plain {
            // Fan-out folders appear on first use; remember which, for the parent syncs.
            for dir in &dirs {
                let missing: Vec<PathBuf> = dir
                    .ancestors()
                    .take_while(|a| a.starts_with(&self.root) && !a.exists())
                    .map(Path::to_path_buf)
                    .collect();
                if !missing.is_empty() {
                    fs::create_dir_all(dir).map_err(|e| Error::from_write(e, &self.root))?;
                    created.extend(missing);
                }
            }
        }
        if planned.len() < WRITERS {
            // A thread per share costs more than it saves for small batches.
            self.write_group(&tmp, planned)?;
        } else {
            let per_thread = planned.len().div_ceil(WRITERS);
            let results: Vec<Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = planned
                    .chunks(per_thread)
                    .map(|group| scope.spawn(|| self.write_group(&tmp, group)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or(Err(Error::IndexDamaged("writer thread panicked")))
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<()>>()?;
        }
        // Folders created for this batch must be durable in their parents too. (Syncing every
        // ancestor of every folder, as at first, cost up to seven fsyncs per batch.)
        let mut parents: Vec<PathBuf> = created
            .iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect();
        parents.sort();
        parents.dedup();
        for dir in dirs.iter().chain(&parents) {
            File::open(dir)?
                .sync_all()
                .map_err(|e| Error::from_write(e, &self.root))?;
        }
        Ok(())
    }

    fn write_group(&self, tmp: &Path, group: &[Planned<'_>]) -> Result<()> {
        for p in group {
            let part = tmp.join(format!("{}.part", random_hex()?));
            let result = self.write_one(&part, p);
            if result.is_err() {
                let _ = fs::remove_file(&part);
            }
            result?;
        }
        Ok(())
    }

    fn write_one(&self, part: &Path, p: &Planned<'_>) -> Result<()> {
        let io = |e| Error::from_write(e, &self.root);
        let mut file = File::create_new(part).map_err(io)?;
        file.write_all(&p.share.header().encode()).map_err(io)?;
        file.write_all(p.share.payload()).map_err(io)?;
        file.sync_data().map_err(io)?;
        drop(file);
        let dest = self.root.join(&p.rel);
        match self.layout {
            Layout::Plain => fs::rename(part, &dest).map_err(io)?,
            Layout::Scatter => {
                // A hard link fails instead of replacing: a file that appeared there meanwhile
                // is never overwritten.
                fs::hard_link(part, &dest).map_err(io)?;
                fs::remove_file(part).map_err(io)?;
            }
        }
        Ok(())
    }

    /// The index row and file of a servable share (a deleted one is still its owner's to read
    /// through the grace period); `None` if not held, and marked missing if its file is gone.
    /// A file of the wrong kind or size is quarantined.
    fn locate(&self, ns: &Namespace, id: &ShareId) -> Result<Option<(Row, PathBuf)>> {
        let row = {
            let inner = self.wait_idle(self.lock(), &[(*ns, *id)]);
            inner.index.row(ns, id)?
        };
        let Some(row) = row.filter(|r| matches!(r.state, State::Ok | State::Deleted)) else {
            return Ok(None);
        };
        if !valid_relpath(&row.path) || row.size > MAX_SHARE_FILE {
            return Err(Error::IndexDamaged("share path or size out of range"));
        }
        let path = self.root.join(&row.path);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.mark_missing(ns, id, row.size)?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() || meta.len() != row.size {
            return Err(self.quarantine(ns, id, &row.path)?);
        }
        Ok(Some((row, path)))
    }

    /// Moves a damaged share's file aside and marks it corrupt.
    fn quarantine(&self, ns: &Namespace, id: &ShareId, rel: &str) -> Result<Error> {
        let qrel = format!(
            "{QUARANTINE_DIR}/{}-{}",
            &hex::encode(&ns.to_bytes()[..8]),
            id.to_hex()
        );
        match fs::rename(self.root.join(rel), self.root.join(&qrel)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut inner = self.lock();
        inner.index.set_corrupt(ns, id, &qrel)?;
        inner.count = inner.count.saturating_sub(1);
        Ok(Error::Corrupt { share: *id })
    }
}

impl DiskStore {
    /// SQLite reports a full or read-only disk in its own terms; say it in ours.
    fn classify(&self, e: Error) -> Error {
        use rusqlite::ErrorCode;
        match &e {
            Error::Database(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
                ErrorCode::DiskFull => Error::Full { needed: 0, free: 0 },
                ErrorCode::ReadOnly => Error::ReadOnly(self.root.clone()),
                _ => e,
            },
            _ => e,
        }
    }

    fn put_batch(&self, ns: &Namespace, shares: &[Share]) -> Result<()> {
        let keys: Vec<_> = shares.iter().map(|s| (*ns, s.id())).collect();
        let mut inner = self.wait_idle(self.lock(), &keys);

        // 1. Plan: skip what is held, check the quota, choose paths, commit pending rows.
        let mut seen = HashSet::new();
        let mut planned = Vec::new();
        let mut replaced_quarantine = Vec::new();
        let mut revived = Vec::new();
        for share in shares {
            if !seen.insert(share.id()) {
                continue;
            }
            match inner.index.row(ns, &share.id())? {
                Some(row) if row.state == State::Ok => continue,
                Some(row) if row.state == State::Deleted => {
                    // Stored again within the grace period: the file is still there. It is
                    // revived only if its bytes are this share's (read under the lock: rare,
                    // and a revival must not race a purge of the same file).
                    if self.file_holds(&row, share) {
                        revived.push((*ns, share.id()));
                        inner.deleted = inner.deleted.saturating_sub(row.size);
                        continue;
                    }
                    inner.used = inner.used.saturating_sub(row.size);
                    inner.deleted = inner.deleted.saturating_sub(row.size);
                    if self.layout == Layout::Scatter {
                        replaced_quarantine.push(row.path);
                    }
                }
                Some(row) if row.state == State::Corrupt => {
                    // The quarantined copy goes once the good one is in place.
                    inner.used = inner.used.saturating_sub(row.size);
                    replaced_quarantine.push(row.path);
                }
                _ => {}
            }
            planned.push(share);
        }
        if !revived.is_empty() {
            inner.index.set_state(&revived, State::Ok)?;
            inner.count += revived.len() as u64;
        }
        if planned.is_empty() {
            return Ok(());
        }
        let needed: u64 = planned.iter().map(|s| s.encoded_len() as u64).sum();
        if let Some(quota) = self.quota {
            let free = quota.saturating_sub(inner.used);
            if needed > free {
                return Err(Error::Full { needed, free });
            }
        }
        let mut plan = Vec::with_capacity(planned.len());
        let mut names = HashSet::new();
        for share in planned {
            let rel = match self.layout {
                Layout::Plain => Self::plain_path(ns, &share.id()),
                Layout::Scatter => self.scatter_path(&mut inner, &names)?,
            };
            names.insert(rel.clone());
            plan.push(Planned { share, rel });
        }
        let rows: Vec<Row> = plan
            .iter()
            .map(|p| Row {
                ns: *ns,
                id: p.share.id(),
                path: p.rel.clone(),
                size: p.share.encoded_len() as u64,
                state: State::Pending,
            })
            .collect();
        inner.index.insert_pending(&rows)?;
        let created = std::mem::take(&mut inner.created);
        let in_flight: Vec<_> = rows.iter().map(|r| (r.ns, r.id)).collect();
        inner.in_flight.extend(in_flight.iter().copied());
        inner.used += needed;
        drop(inner);
        for rel in replaced_quarantine {
            if valid_relpath(&rel) {
                remove_if_present(&self.root.join(rel))?;
            }
        }

        // 2. Files: write, sync, move into place, sync folders.
        let written = self.write_files(&plan, created);

        // 3. Commit (or undo) and release.
        let mut inner = self.lock();
        let outcome = match written {
            Ok(()) => inner.index.set_state(&in_flight, State::Ok).map(|()| {
                inner.count += in_flight.len() as u64;
            }),
            Err(e) => {
                for p in &plan {
                    let _ = remove_if_present(&self.root.join(&p.rel));
                }
                inner.used -= needed;
                inner.index.delete_rows(&in_flight).and(Err(e))
            }
        };
        for key in &in_flight {
            inner.in_flight.remove(key);
        }
        drop(inner);
        self.settled.notify_all();
        outcome
    }
}

impl DiskStore {
    /// Whether `row`'s file holds exactly `share` (size, then bytes).
    fn file_holds(&self, row: &Row, share: &Share) -> bool {
        if !valid_relpath(&row.path) || row.size != share.encoded_len() as u64 {
            return false;
        }
        fs::read(self.root.join(&row.path))
            .ok()
            .and_then(|bytes| Share::decode(Bytes::from(bytes)).ok())
            .is_some_and(|held| held.id() == share.id())
    }

    /// Purges deleted shares, oldest deletion first, until `needed` bytes are freed (or none
    /// is left); returns (shares, bytes) purged.
    fn reclaim(&self, needed: u64) -> Result<(u64, u64)> {
        let candidates = self.lock().index.deleted(None, 4096)?;
        let (mut count, mut bytes) = (0u64, 0u64);
        let mut take = Vec::new();
        for row in candidates {
            if bytes >= needed.max(1) {
                break;
            }
            bytes += row.size;
            count += 1;
            take.push((row.ns, row.id));
        }
        self.purge_rows(&take)?;
        Ok((count, bytes))
    }

    /// Purges `items` (any namespaces).
    fn purge_rows(&self, items: &[(Namespace, ShareId)]) -> Result<()> {
        let mut by_ns: std::collections::BTreeMap<Namespace, Vec<ShareId>> = Default::default();
        for (ns, id) in items {
            by_ns.entry(*ns).or_default().push(*id);
        }
        for (ns, ids) in by_ns {
            self.purge_batch(&ns, &ids)?;
        }
        Ok(())
    }
}

impl ShareStore for DiskStore {
    fn put(&self, ns: &Namespace, shares: &[Share]) -> Result<()> {
        match self.put_batch(ns, shares).map_err(|e| self.classify(e)) {
            Err(Error::Full { needed, free }) if self.lock().deleted > 0 => {
                // Deleted shares wait out their grace period only while there is room. (A full
                // disk reports no figures: make room for the whole batch.)
                let batch: u64 = shares.iter().map(|s| s.encoded_len() as u64).sum();
                let want = if needed == 0 {
                    batch
                } else {
                    needed - free.min(needed)
                };
                let (count, bytes) = self.reclaim(want)?;
                tracing::warn!(
                    "store full: reclaimed {count} deleted shares ({bytes} bytes) before the end of their grace period, oldest first"
                );
                self.put_batch(ns, shares).map_err(|e| self.classify(e))
            }
            other => other,
        }
    }

    fn get(&self, ns: &Namespace, id: &ShareId) -> Result<Option<Share>> {
        let Some((row, path)) = self.locate(ns, id)? else {
            return Ok(None);
        };
        let bytes = fs::read(&path)?;
        match Share::decode(Bytes::from(bytes)) {
            Ok(share) if share.id() == *id => Ok(Some(share)),
            _ => Err(self.quarantine(ns, id, &row.path)?),
        }
    }

    fn get_range(
        &self,
        ns: &Namespace,
        id: &ShareId,
        start: u32,
        end: u32,
    ) -> Result<Option<Bytes>> {
        use std::os::unix::fs::FileExt;
        let Some((row, path)) = self.locate(ns, id)? else {
            return Ok(None);
        };
        let file = File::open(&path)?;
        let mut header = [0u8; SHARE_HEADER_LEN];
        file.read_exact_at(&mut header, 0)?;
        let len = match ShareHeader::decode(&header) {
            Ok(h) if SHARE_HEADER_LEN as u64 + u64::from(h.payload_len()) == row.size => {
                h.payload_len()
            }
            _ => return Err(self.quarantine(ns, id, &row.path)?),
        };
        super::check_range(id, start, end, len)?;
        // Read into spare capacity, not a zeroed buffer: a zeroed allocation this large came
        // as fresh pages from the allocator (zero without writing them), so the read faulted
        // every page in (measured: nine in ten page faults of a peer serving a restore);
        // a plain one reuses memory freed before.
        let want = u64::from(end.saturating_sub(start));
        let mut bytes = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        let mut at = &file;
        at.seek(std::io::SeekFrom::Start(
            SHARE_HEADER_LEN as u64 + u64::from(start),
        ))?;
        at.take(want).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != want {
            return Err(std::io::Error::from(ErrorKind::UnexpectedEof).into());
        }
        Ok(Some(Bytes::from(bytes)))
    }

    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> Result<Vec<bool>> {
        // The index is read a slice of ids at a time: a batch of 65 536 must not hold the
        // store's lock (and every other request) for the whole of it.
        let mut rows: Vec<Option<Row>> = Vec::with_capacity(ids.len());
        for slice in ids.chunks(HAS_PER_LOCK) {
            let keys: Vec<(Namespace, ShareId)> = slice.iter().map(|id| (*ns, *id)).collect();
            let inner = self.wait_idle(self.lock(), &keys);
            for id in slice {
                rows.push(inner.index.row(ns, id)?);
            }
            // Handed to a waiting request, if any: taken again at once, it would starve them.
            MutexGuard::unlock_fair(inner);
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, row) in ids.iter().zip(rows) {
            let Some(row) = row.filter(|r| r.state == State::Ok) else {
                out.push(false);
                continue;
            };
            if !valid_relpath(&row.path) {
                return Err(Error::IndexDamaged("share path out of range"));
            }
            // The index alone is not enough: the file may have gone, or changed size, behind
            // the store's back. (Its bytes are checked by reads and the scrub.)
            let held = match fs::symlink_metadata(self.root.join(&row.path)) {
                Ok(m) if m.is_file() && m.len() == row.size => true,
                Ok(_) => {
                    let _ = self.quarantine(ns, id, &row.path)?;
                    false
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.mark_missing(ns, id, row.size)?;
                    false
                }
                Err(e) => return Err(e.into()),
            };
            out.push(held);
        }
        Ok(out)
    }

    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        self.soft_delete(ns, ids).map_err(|e| self.classify(e))
    }

    fn purge(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        self.purge_batch(ns, ids).map_err(|e| self.classify(e))
    }

    fn undelete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let keys: Vec<_> = ids.iter().map(|id| (*ns, *id)).collect();
        let mut inner = self.wait_idle(self.lock(), &keys);
        let mut back = Vec::new();
        let mut bytes = 0u64;
        for id in ids {
            if let Some(row) = inner.index.row(ns, id)?
                && row.state == State::Deleted
                && !back.contains(&(*ns, *id))
            {
                back.push((*ns, *id));
                bytes += row.size;
            }
        }
        if !back.is_empty() {
            inner
                .index
                .set_state(&back, State::Ok)
                .map_err(|e| self.classify(e))?;
            inner.count += back.len() as u64;
            inner.deleted = inner.deleted.saturating_sub(bytes);
        }
        Ok(back.len() as u64)
    }

    fn expire(&self, before: i64) -> Result<(u64, u64)> {
        let mut total = (0u64, 0u64);
        loop {
            let rows = self.lock().index.deleted(Some(before), 1024)?;
            if rows.is_empty() {
                return Ok(total);
            }
            total.0 += rows.len() as u64;
            total.1 += rows.iter().map(|r| r.size).sum::<u64>();
            let items: Vec<_> = rows.iter().map(|r| (r.ns, r.id)).collect();
            self.purge_rows(&items).map_err(|e| self.classify(e))?;
        }
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        self.lock().index.namespaces()
    }
    fn list(&self, ns: &Namespace, after: Option<&ShareId>, limit: usize) -> Result<Vec<ShareId>> {
        self.lock().index.list(ns, after, limit)
    }

    fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> Result<Vec<(Namespace, ShareId)>> {
        self.lock().index.walk(after, limit)
    }

    fn quarantined(&self, ns: &Namespace) -> Result<Vec<ShareId>> {
        self.lock().index.quarantined(ns)
    }

    fn move_namespace(&self, from: &Namespace, to: &Namespace) -> Result<u64> {
        // Paths live in the index, so only rows change; nothing moves on disk.
        let mut inner = self.lock();
        inner.index.move_namespace(from, to)
    }

    fn usage(&self) -> Result<Usage> {
        let inner = self.lock();
        Ok(Usage {
            used: inner.used,
            shares: inner.count,
            quota: self.quota,
            reclaimable: inner.deleted,
        })
    }
}

impl DiskStore {
    /// The owner's delete: servable shares are marked deleted (kept through the grace
    /// period); quarantined or vanished ones are purged at once. Returns how many servable
    /// shares were deleted.
    fn soft_delete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let keys: Vec<_> = ids.iter().map(|id| (*ns, *id)).collect();
        let mut inner = self.wait_idle(self.lock(), &keys);
        let mut keep = Vec::new();
        let mut purge = Vec::new();
        let mut bytes = 0u64;
        for id in ids {
            match inner.index.row(ns, id)? {
                Some(row) if row.state == State::Ok && !keep.contains(&(*ns, *id)) => {
                    keep.push((*ns, *id));
                    bytes += row.size;
                }
                Some(row) if row.state == State::Ok => {}
                Some(row) if row.state != State::Deleted => purge.push(*id),
                _ => {}
            }
        }
        if !keep.is_empty() {
            inner.index.set_deleted(&keep, crate::catalog::unix_now())?;
            inner.count = inner.count.saturating_sub(keep.len() as u64);
            inner.deleted += bytes;
        }
        drop(inner);
        if !purge.is_empty() {
            self.purge_batch(ns, &purge)?;
        }
        Ok(keep.len() as u64)
    }

    fn purge_batch(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let keys: Vec<_> = ids.iter().map(|id| (*ns, *id)).collect();
        let mut inner = self.wait_idle(self.lock(), &keys);
        let mut rows = Vec::new();
        for id in ids {
            if let Some(row) = inner.index.row(ns, id)?
                && !rows.iter().any(|r: &Row| r.id == row.id)
            {
                rows.push(row);
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let marked: Vec<_> = rows.iter().map(|r| (r.ns, r.id)).collect();
        inner.index.set_state(&marked, State::Pending)?;
        inner.in_flight.extend(marked.iter().copied());
        drop(inner);

        let mut removed = Ok(());
        let mut dirs = Vec::new();
        for row in &rows {
            if !valid_relpath(&row.path) {
                continue;
            }
            let path = self.root.join(&row.path);
            if let Err(e) = remove_if_present(&path) {
                removed = Err(e);
            }
            dirs.extend(path.parent().map(Path::to_path_buf));
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            if let Ok(f) = File::open(&dir) {
                f.sync_all()?;
            }
        }

        let mut inner = self.lock();
        let result = removed.and_then(|()| inner.index.delete_rows(&marked));
        if result.is_ok() {
            for row in &rows {
                if row.state != State::Missing {
                    inner.used = inner.used.saturating_sub(row.size);
                }
                if row.state == State::Ok {
                    inner.count = inner.count.saturating_sub(1);
                }
                if row.state == State::Deleted {
                    inner.deleted = inner.deleted.saturating_sub(row.size);
                }
            }
        }
        for key in &marked {
            inner.in_flight.remove(key);
        }
        drop(inner);
        self.settled.notify_all();
        result.map(|()| rows.iter().filter(|r| r.state == State::Ok).count() as u64)
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|_| Error::Crypto(shard_crypto::Error::Random))?;
    Ok(hex::encode(b))
}
