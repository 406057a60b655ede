//! `put`: files and folder trees into the vault, their shares spread over this node and its
//! peers.
//!
//! The pipeline, with memory bounded whatever the sizes:
//! 1. walk the paths (files, folders, links; other kinds are skipped with a warning) a
//!    window of entries at a time, and leave out the files unchanged since their newest
//!    stored version; a path that cannot be read is named and the put goes on (it ends
//!    partial). What the put holds is a window of the walk and the files not yet committed,
//!    never the whole tree;
//! 2. one blocking thread reads and cuts files into chunks; two threads id each
//!    chunk, and either find it stored already (a blob in a pack whose shares are all in
//!    place, at least as strong as asked) or seal it as a blob;
//! 3. sealed blobs are gathered into packs (shard-store's `Packing`: blobs of any files,
//!    at random among two open packs, in random order), and each pack closed is coded into
//!    `n` shares of one of a few fixed sizes;
//! 4. the dispatcher sends the shares of each pack to `n` distinct nodes (the swarm's
//!    placement, shared with repair and catalog snapshots), at most [`PACKS_IN_FLIGHT`] packs
//!    at a time; a node that fails is replaced by another that holds no share of the pack;
//! 5. a pack whose shares are all acknowledged is recorded in the catalog with its blobs, and
//!    a file becomes visible (begin + commit, one transaction per batch) only once every pack
//!    its chunks lie in is.
//!
//! Dedup and resume are the same mechanism: a chunk whose blob lies in a pack the catalog
//! records whole is referred to there and not sent again. The same file put again sends
//! nothing; a put interrupted and run again sends only the packs that were not acknowledged.
//! A pack's encoding is never changed: a chunk whose only copies are weaker than asked, or
//! have shares on nodes no longer paired, is packed again with the put's redundancy, and
//! versions stored before keep exactly the shares their manifests list.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use shard_crypto::Label;
use shard_proto::{BlobAt, ChunkId, ChunkRef, Manifest, NodeId, PackRef};
use shard_store::{
    AckedShare, ChunkSizes, EncodedChunk, EncodedPack, Feeder, FileKind, FileMeta, KeyedFastCdc,
    NewFile, PackedBlob, Packing, Redundancy, Sealed, SealedChunk, ShareRecord, ShareState,
    seal_parallel,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::jobs::{Job, Progress};
use crate::node::Node;
use crate::report::PutReport;
pub use crate::request::PutRequest;
use crate::session::Session;
use crate::swarm::Nodes;
use crate::tree::{Entry, Found, Walk, access, check_name};
use crate::{Error, FailedFile, NotPlaced, Result, WhyFailed};

/// Packs coded and not yet acknowledged at once — waiting for the dispatcher or on their
/// way (each at most 16 MiB of blobs; its shares take n/k times as much memory). Coding a
/// pack waits for one of them to finish: what bounds a put's memory.
pub const PACKS_IN_FLIGHT: usize = 3;
/// Shares in flight to one node at once (home routers choke on floods).
pub use crate::swarm::PER_NODE;

/// Bytes arriving from elsewhere (a web upload), stored as one file as they come: never held
/// whole, in memory or on disk.
pub struct Upload {
    /// The name in the vault (checked like `--as`).
    pub name: Vec<u8>,
    /// Bytes announced; a stream that ends short or runs long stores nothing.
    pub size: u64,
    /// The bytes; an error ends the put without storing the file.
    pub reader: Box<dyn Read + Send>,
}

/// What the encoder threads tell the dispatcher. Chunks of a file may arrive out of order and
/// after their file's `FileDone`; `seq` and `chunks` let the dispatcher rebuild the order. A
/// blob's place is known only once its pack is closed (`Pack`), which may come before or
/// after the blob's own message.
enum Encoded {
    /// A chunk stored before: the reference to its copy.
    Known {
        file: usize,
        seq: usize,
        chunk: ChunkRef,
    },
    /// A chunk sealed as a blob, to be found in a pack: one packed now (`fresh`; its pack
    /// comes after this message), or one met before in this put (in a pack on its way, or
    /// already recorded in the catalog).
    Blob {
        file: usize,
        seq: usize,
        chunk: ChunkId,
        len: u32,
        fresh: bool,
    },
    /// Entries of the walk about to be read (files) or stored as they are (folders, links),
    /// with their numbers in the put: sent before any chunk of theirs.
    Entries(Vec<(usize, Entry)>),
    /// Files the walk met that have not changed since their newest stored version.
    Unchanged(Unchanged),
    /// A path the walk could not read (the put goes on and ends partial).
    Unreadable(FailedFile),
    /// Something the walk left out (not a file, folder or link): a warning.
    Skipped(String),
    /// A pack closed and coded, with its place among the packs in flight.
    Pack(EncodedPack, tokio::sync::OwnedSemaphorePermit),
    FileDone {
        file: usize,
        chunks: usize,
        size: u64,
        sha256: Option<[u8; 32]>,
    },
    FileFailed {
        file: usize,
        why: WhyFailed,
    },
}

/// A reader that hashes what passes through (for `--move`'s read-back check).
struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(buf.get(..n).unwrap_or_default());
        }
        Ok(n)
    }
}

/// Threads that id and seal chunks while one reads and cuts.
const ENCODERS: usize = 2;

/// Whether a recorded share still counts: acknowledged, on this node or a paired one.
pub(crate) type Usable<'a> = &'a (dyn Fn(&ShareRecord) -> bool + Sync);

/// The copy of chunk `id` (plaintext `len` bytes) a put refers to instead of storing it: a
/// blob in a pack coded at least as strongly as `asked` whose every share is usable; among
/// several, `asked` itself first, then the fewest shares. `None`: the chunk is packed anew.
fn stored_copy(
    vault: &shard_store::VaultCatalog<'_>,
    id: &ChunkId,
    len: u32,
    asked: Redundancy,
    usable: Usable<'_>,
) -> shard_store::Result<Option<ChunkRef>> {
    let best = vault
        .blob_copies(id)?
        .into_iter()
        .filter_map(|copy| {
            let e = &copy.encoding;
            let r = Redundancy::new(e.k, e.n).ok()?;
            if r.tolerance() < asked.tolerance() {
                return None;
            }
            let shares = (0..e.n)
                .map(|i| {
                    e.shares
                        .iter()
                        .find(|s| s.index == i && usable(s))
                        .map(|s| s.id)
                })
                .collect::<Option<Vec<_>>>()?;
            let chunk = ChunkRef {
                id: *id,
                len,
                k: e.k,
                n: e.n,
                share_len: e.share_len,
                shares,
                pack: Some(copy.at),
            };
            chunk.validate().ok()?;
            Some((r != asked, e.n, chunk))
        })
        .min_by_key(|(other, n, _)| (*other, *n));
    Ok(best.map(|(.., chunk)| chunk))
}

/// Packs blobs as the encoder threads seal them, and codes each pack closed (shard-store's
/// [`Packing`]), at most [`PACKS_IN_FLIGHT`] on their way at once.
struct Packer<'a> {
    packing: Packing,
    /// Chunks packed in this put whose packs the catalog does not record yet: met again,
    /// they are not packed twice (once recorded, the catalog finds them).
    met: Arc<std::sync::Mutex<HashSet<ChunkId>>>,
    tx: &'a mpsc::Sender<Encoded>,
    /// Places among the packs in flight.
    in_flight: Arc<tokio::sync::Semaphore>,
    runtime: tokio::runtime::Handle,
    /// Why packing stopped, if it failed (the put fails with it).
    failed: std::sync::Mutex<Option<Error>>,
    /// The dispatcher's files not yet committed, and entries announced so far.
    crowd: Arc<Crowd>,
    /// Entries announced when the open packs were last closed early.
    closed_at: std::sync::atomic::AtomicUsize,
}

/// Files a put holds before they are committed; past this, the open packs are closed early.
/// A file waits for every pack it has a blob in: many tiny files, or one file's bytes met in
/// thousands of files (the same licence in every package), would otherwise keep a whole
/// tree waiting on a pack that fills slowly or never.
const OPEN_FILES: usize = 32_768;

/// What the dispatcher tells the packer of its files (see [`OPEN_FILES`]).
#[derive(Default)]
struct Crowd {
    open: std::sync::atomic::AtomicUsize,
    announced: std::sync::atomic::AtomicUsize,
}

impl Packer<'_> {
    /// Codes a closed pack and hands it to the dispatcher; `false` when the put stops.
    fn send(&self, pack: shard_store::Pack) -> bool {
        let in_flight = self.in_flight.clone();
        let Ok(permit) = self.runtime.block_on(in_flight.acquire_owned()) else {
            return false;
        };
        match self.packing.code(pack).map_err(Error::Store) {
            Ok(encoded) => self
                .tx
                .blocking_send(Encoded::Pack(encoded, permit))
                .is_ok(),
            Err(e) => self.fail(e),
        }
    }

    fn fail(&self, e: Error) -> bool {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(e);
        }
        false
    }

    /// Closes the open packs early when too many files wait (at most once per half of
    /// [`OPEN_FILES`] entries announced: each early pack has that many files' worth to hold).
    fn close_if_crowded(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let announced = self.crowd.announced.load(Relaxed);
        let last = self.closed_at.load(Relaxed);
        if self.crowd.open.load(Relaxed) <= OPEN_FILES || announced < last + OPEN_FILES / 2 {
            return true;
        }
        // One encoder thread closes; the other, seeing the mark moved, goes on.
        if self
            .closed_at
            .compare_exchange(last, announced, Relaxed, Relaxed)
            .is_err()
        {
            return true;
        }
        match self.packing.close_open().map_err(Error::Store) {
            Ok(packs) => packs.into_iter().all(|pack| self.send(pack)),
            Err(e) => self.fail(e),
        }
    }

    /// One chunk from the encoder threads.
    fn take(&self, c: SealedChunk) -> bool {
        if !self.close_if_crowded() {
            return false;
        }
        let (file, seq) = (c.file, c.seq);
        let blob = match c.result {
            Ok(Sealed::Known(chunk)) => {
                return self
                    .tx
                    .blocking_send(Encoded::Known { file, seq, chunk })
                    .is_ok();
            }
            Ok(Sealed::Blob(blob)) => blob,
            Err(e) => {
                return self
                    .tx
                    .blocking_send(Encoded::FileFailed {
                        file,
                        why: match e {
                            shard_store::Error::Stopped => WhyFailed::Cancelled,
                            e => WhyFailed::Local(e.to_string()),
                        },
                    })
                    .is_ok();
            }
        };
        let (chunk, len) = (blob.id(), blob.len());
        let fresh = self
            .met
            .lock()
            .map(|mut m| m.insert(chunk))
            .unwrap_or(false);
        // Announced before it is packed: its pack reaches the dispatcher after this.
        let announced = Encoded::Blob {
            file,
            seq,
            chunk,
            len,
            fresh,
        };
        if self.tx.blocking_send(announced).is_err() {
            return false;
        }
        if !fresh {
            return true;
        }
        match self.packing.add(blob).map_err(Error::Store) {
            Ok(Some(pack)) => self.send(pack),
            Ok(None) => true,
            Err(e) => self.fail(e),
        }
    }

    /// Closes and sends the packs still open.
    fn finish(&self) -> Result<()> {
        for pack in self.packing.close_open()? {
            if !self.send(pack) {
                break;
            }
        }
        match self.failed.lock().ok().and_then(|mut f| f.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Entries of the walk taken at once: looked up in the catalog together (to leave out the
/// unchanged), announced to the dispatcher, then read. What a put holds of its tree is about
/// one window and the files not yet committed, whatever the tree's size.
const WINDOW: usize = SKIP_BATCH;

/// What a put stores: the walk of its paths, or one upload.
pub(crate) struct Source {
    found: Box<dyn Iterator<Item = Found> + Send>,
    /// Whether files unchanged since their newest stored version are left alone (not with
    /// `--move`, which reads every original back, nor for an upload).
    skip: bool,
    /// Names more than one path gives (`put a/x b/x`): never left alone, for which one is
    /// newest must not depend on which was skipped.
    twice: HashSet<Vec<u8>>,
    /// When the walk started, and how close to it a file's times must not be trusted.
    scan_start: std::time::SystemTime,
    racy_window: Duration,
    /// Where the files that failed go instead of ending the put in [`Error::PartialPut`] (a
    /// backup run, whose snapshot holds what could be read).
    keep_failures: Option<Arc<std::sync::Mutex<Vec<FailedFile>>>>,
}

/// What a backup run's put did: its report, the files it could not store, and every name its
/// walk met (in walk order).
pub(crate) struct TreePut {
    pub report: PutReport,
    pub failed: Vec<FailedFile>,
    pub names: crate::backup::NameList,
}

/// The walk of a tree put, noting the name of every entry it hands on.
struct Noted<I> {
    walk: I,
    names: Arc<std::sync::Mutex<crate::backup::NameList>>,
}

impl<I: Iterator<Item = Found>> Iterator for Noted<I> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        let found = self.walk.next()?;
        if let Found::Entry(e) = &found {
            crate::node::lock(&self.names).push(&e.meta.name);
        }
        Some(found)
    }
}

/// Stores one folder for a backup run, leaving out what `exclusions` name: like a put, but
/// files that cannot be read are returned, not an error, with the names the walk met. The
/// caller holds the vault's writer lock.
pub(crate) async fn run_tree(
    node: Arc<Node>,
    session: Arc<Session>,
    request: PutRequest,
    exclusions: crate::backup::Exclusions,
    job: Arc<Job>,
) -> Result<TreePut> {
    let scan_start = std::time::SystemTime::now();
    let (req, ex) = (request.clone(), exclusions.clone());
    let walk = tokio::task::spawn_blocking(move || {
        Walk::new(&req.paths, req.name.as_deref()).map(|w| w.excluding(ex))
    })
    .await
    .map_err(|e| Error::task(&e))??;
    let counting = Counting::default();
    let (req, count_job, stop) = (request.clone(), job.clone(), counting.0.clone());
    tokio::task::spawn_blocking(move || {
        if let Ok(walk) = Walk::new(&req.paths, req.name.as_deref()) {
            count_found(walk.excluding(exclusions), &count_job.progress, &stop);
        }
    });
    let names = Arc::new(std::sync::Mutex::new(crate::backup::NameList::default()));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let source = Source {
        found: Box::new(Noted {
            walk,
            names: names.clone(),
        }),
        skip: true,
        twice: HashSet::new(),
        scan_start,
        racy_window: node.options().racy_window,
        keep_failures: Some(failures.clone()),
    };
    let report = store(node, session, source, &request, None, job).await?;
    let failed = std::mem::take(&mut *crate::node::lock(&failures));
    let names = std::mem::take(&mut *crate::node::lock(&names));
    Ok(TreePut {
        report,
        failed,
        names,
    })
}

/// Walks the source and reads and cuts its files on this thread, a window at a time; ids and
/// seals their chunks on [`ENCODERS`] threads (shard-store's parallel path, the one its
/// benchmarks measure) and packs the blobs. Each window's entries reach the dispatcher before
/// any chunk of theirs, each file's end (or failure) after it is read; its chunks may still
/// be on their way.
#[allow(clippy::too_many_arguments)]
fn encode_files(
    node: &Node,
    session: &Session,
    source: Source,
    asked: Redundancy,
    usable: Usable<'_>,
    hash: bool,
    mut upload: Option<Box<dyn Read + Send>>,
    tx: &mpsc::Sender<Encoded>,
    met: Arc<std::sync::Mutex<HashSet<ChunkId>>>,
    crowd: Arc<Crowd>,
) -> Result<()> {
    let keys = session.keys.clone();
    // One keyed chunker for the whole put: its gear table is drawn once, not per file.
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let catalog = node.catalog().vault(session.account, &session.keys);
    let known = |id: &ChunkId, len: u32| stored_copy(&catalog, id, len, asked, usable);
    // Pack and recovery buffers come back to the coder once a pack's shares are sent, and
    // the next pack takes them (see `BufferPool`).
    let packer = Packer {
        packing: Packing::new(asked)?,
        met,
        tx,
        in_flight: Arc::new(tokio::sync::Semaphore::new(PACKS_IN_FLIGHT)),
        runtime: tokio::runtime::Handle::current(),
        failed: std::sync::Mutex::new(None),
        crowd,
        closed_at: std::sync::atomic::AtomicUsize::new(0),
    };
    let emit = |c: SealedChunk| packer.take(c);
    let Source {
        mut found,
        skip,
        twice,
        scan_start,
        racy_window,
        keep_failures: _,
    } = source;
    let twice = |name: &[u8]| {
        let top = name.split(|&b| b == b'/').next().unwrap_or_default();
        twice.contains(top)
    };
    seal_parallel(
        &keys,
        &chunker,
        ENCODERS,
        &known,
        &emit,
        |feed| -> Result<()> {
            let mut next = 0usize;
            loop {
                let mut window = Vec::with_capacity(WINDOW);
                for f in found.by_ref() {
                    let message = match f {
                        Found::Entry(e) => {
                            window.push(e);
                            if window.len() == WINDOW {
                                break;
                            }
                            continue;
                        }
                        Found::Unreadable { path, reason } => Encoded::Unreadable(FailedFile {
                            path,
                            why: WhyFailed::Unreadable(reason),
                        }),
                        Found::Skipped(warning) => Encoded::Skipped(warning),
                    };
                    if tx.blocking_send(message).is_err() {
                        return Ok(());
                    }
                }
                if window.is_empty() {
                    return Ok(());
                }
                crate::tree::settle(&mut window, scan_start, racy_window);
                let (kept, unchanged) = if skip {
                    skip_unchanged(&catalog, window, asked, usable, &twice)?
                } else {
                    (window, Unchanged::default())
                };
                if unchanged.files > 0 && tx.blocking_send(Encoded::Unchanged(unchanged)).is_err() {
                    return Ok(());
                }
                let numbered: Vec<(usize, Entry)> = (next..).zip(kept).collect();
                next += numbered.len();
                if tx
                    .blocking_send(Encoded::Entries(numbered.clone()))
                    .is_err()
                {
                    return Ok(());
                }
                for (file, entry) in numbered {
                    if entry.meta.kind != FileKind::File {
                        continue;
                    }
                    let message = match read_file(feed, file, &entry, hash, &mut upload) {
                        Ok((chunks, size, sha256)) => Encoded::FileDone {
                            file,
                            chunks,
                            size,
                            sha256,
                        },
                        Err(why) => Encoded::FileFailed { file, why },
                    };
                    if tx.blocking_send(message).is_err() {
                        return Ok(());
                    }
                }
            }
        },
    )??;
    packer.finish()
}

/// Feeds one file (or the upload) to the encoders: its chunk count, size and, for `--move`,
/// SHA-256; or why nothing may be stored for it.
fn read_file(
    feed: &mut Feeder<'_, KeyedFastCdc>,
    file: usize,
    entry: &Entry,
    hash: bool,
    upload: &mut Option<Box<dyn Read + Send>>,
) -> std::result::Result<(usize, u64, Option<[u8; 32]>), WhyFailed> {
    let mut cut = |source: &mut dyn Read| -> std::result::Result<_, WhyFailed> {
        // One byte more than announced (or than the walk saw) is enough to know a stream ran
        // long or a file grew: a file swapped for an endless one is not read without end.
        let limit = entry.meta.size.saturating_add(1);
        let mut hashing = Hashing {
            inner: source.take(limit),
            hasher: hash.then(Sha256::new),
        };
        let (chunks, size) = feed.file(file, &mut hashing).map_err(unread)?;
        Ok((chunks, size, hashing.hasher.map(|h| h.finalize().into())))
    };
    if entry.streamed {
        let mut source = upload
            .take()
            .ok_or_else(|| WhyFailed::Local("the upload's bytes are gone".into()))?;
        let (chunks, size, sha256) = cut(&mut source)?;
        if size > entry.meta.size {
            return Err(WhyFailed::UploadTooLong {
                announced: entry.meta.size,
            });
        }
        if size != entry.meta.size {
            return Err(WhyFailed::UploadTooShort {
                got: size,
                announced: entry.meta.size,
            });
        }
        return Ok((chunks, size, sha256));
    }
    // What is read is the file the walk found: not a link put in its place (O_NOFOLLOW), not a
    // FIFO that would block the put (O_NONBLOCK, then the type), not another file renamed
    // over it (the inode).
    let open = |flags| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&entry.src)
    };
    let mut f = match open(libc::O_NOFOLLOW | libc::O_NONBLOCK) {
        // A lease held elsewhere (a Samba oplock, an NFS delegation) is waited for, as a
        // plain open would; a FIFO never answers so (it opens at once without a writer).
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open(libc::O_NOFOLLOW),
        other => other,
    }
    .map_err(io_why)?;
    let before = f.metadata().map_err(io_why)?;
    if !before.is_file() || (before.dev(), before.ino()) != entry.dev_ino {
        return Err(WhyFailed::Replaced);
    }
    let (chunks, size, sha256) = cut(&mut f)?;
    let after = f.metadata().map_err(io_why)?;
    let changed = after.len() != size
        || size != entry.meta.size
        || after.mtime() != entry.meta.mtime
        || u32::try_from(after.mtime_nsec()).unwrap_or(0) != entry.meta.mtime_nanos
        || (
            after.ctime(),
            u32::try_from(after.ctime_nsec()).unwrap_or(0),
        ) != entry.ctime;
    if changed {
        return Err(WhyFailed::Changed);
    }
    Ok((chunks, size, sha256))
}

/// Why a file's bytes did not reach the encoders (the reader's error is the source's).
fn unread(e: shard_store::Error) -> WhyFailed {
    match e {
        shard_store::Error::Stopped => WhyFailed::Cancelled,
        e => WhyFailed::Unreadable(e.to_string()),
    }
}

fn io_why(e: std::io::Error) -> WhyFailed {
    WhyFailed::Unreadable(e.to_string())
}

/// Whether `record` is a share `chunk` lists: of the encoding that holds it (its pack's, for
/// a blob), and the very id at its index (a share of another encoding never stands in for it).
fn lists(chunk: &ChunkRef, record: &ShareRecord) -> bool {
    record.chunk == chunk.encoding()
        && (record.k, record.n) == (chunk.k, chunk.n)
        && chunk.shares.get(usize::from(record.index)) == Some(&record.id)
}

/// Files a put left alone because they have not changed since their newest stored version.
#[derive(Debug, Default)]
struct Unchanged {
    files: u64,
    bytes: u64,
}

/// Names looked up in the catalog at once by [`skip_unchanged`].
const SKIP_BATCH: usize = 4096;
/// Share ids [`skip_unchanged`] looks up at once: what it holds in memory besides one file's
/// manifest, whatever the files' sizes (a thousand films are a few million shares).
const SKIP_SHARES: usize = 65_536;

/// Takes out of `entries` the regular files whose newest visible version has the same size,
/// mtime, mode, ctime and inode (restic's test against its parent snapshot), and still stands
/// as the put asks: every chunk encoded at least as strongly as `asked`, every share the
/// manifest lists acknowledged on a node that counts (`usable`). A file that fails any of
/// these is read as usual: the put then stores what it changed, re-encodes what is too weak
/// and sends again what is missing — so a put of an unchanged tree still tops it up. So is a
/// file whose stored version does not open (a damaged row is no reason to stop a backup), and
/// a name the put may meet twice (`twice`: two paths stored under one name, where which is
/// newest must not depend on which one was skipped).
fn skip_unchanged(
    vault: &shard_store::VaultCatalog<'_>,
    entries: Vec<Entry>,
    asked: Redundancy,
    usable: Usable<'_>,
    twice: &dyn Fn(&[u8]) -> bool,
) -> Result<(Vec<Entry>, Unchanged)> {
    let mut skip = vec![false; entries.len()];
    let candidates: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.meta.kind == FileKind::File
                && !e.streamed
                && e.stamp.is_some()
                && !twice(&e.meta.name)
        })
        .map(|(i, _)| i)
        .collect();
    for batch in candidates.chunks(SKIP_BATCH) {
        let names: Vec<&[u8]> = batch
            .iter()
            .filter_map(|&i| entries.get(i).map(|e| e.meta.name.as_slice()))
            .collect();
        let newest = vault.newest_stamped(&names)?;
        let same = batch.iter().zip(newest).filter_map(|(&i, found)| {
            let (stored, stamp) = found?;
            let e = entries.get(i)?;
            let m = (&stored.meta, &e.meta);
            let unchanged = m.0.kind == FileKind::File
                && (m.0.size, m.0.mtime, m.0.mtime_nanos, m.0.mode)
                    == (m.1.size, m.1.mtime, m.1.mtime_nanos, m.1.mode)
                && stamp.is_some()
                && stamp == e.stamp;
            unchanged.then_some((i, stored.id))
        });
        // Manifests read and their shares checked a group at a time, each group at most
        // [`SKIP_SHARES`] shares by the most a file of its size can have (chunks of at least
        // the smallest chunk size, at most `MAX_SHARES` shares each).
        let most = |size: u64| {
            let chunks = size / u64::try_from(ChunkSizes::DEFAULT.min).unwrap_or(1).max(1) + 1;
            usize::try_from(chunks.saturating_mul(u64::from(shard_proto::MAX_SHARES)))
                .unwrap_or(usize::MAX)
        };
        let mut group: Vec<(usize, shard_store::FileId)> = Vec::new();
        let mut shares = 0usize;
        for (i, id) in same {
            shares = shares.saturating_add(entries.get(i).map_or(0, |e| most(e.meta.size)));
            group.push((i, id));
            if shares >= SKIP_SHARES {
                still_stand(vault, &group, asked, usable, &mut skip)?;
                group.clear();
                shares = 0;
            }
        }
        still_stand(vault, &group, asked, usable, &mut skip)?;
    }
    let mut unchanged = Unchanged::default();
    let kept = entries
        .into_iter()
        .zip(skip)
        .filter_map(|(e, skip)| {
            if skip {
                unchanged.files += 1;
                unchanged.bytes += e.meta.size;
                None
            } else {
                Some(e)
            }
        })
        .collect();
    Ok((kept, unchanged))
}

/// Marks in `skip` the files of `group` (entry, stored version) whose stored copies still
/// stand as the put asks (see [`skip_unchanged`]).
fn still_stand(
    vault: &shard_store::VaultCatalog<'_>,
    group: &[(usize, shard_store::FileId)],
    asked: Redundancy,
    usable: Usable<'_>,
    skip: &mut [bool],
) -> Result<()> {
    if group.is_empty() {
        return Ok(());
    }
    let ids: Vec<shard_store::FileId> = group.iter().map(|(_, id)| *id).collect();
    // All at once; if one does not open, one at a time (that one is read again).
    let manifests: Vec<Option<Manifest>> = match vault.manifests(&ids) {
        Ok(all) => all.into_iter().map(Some).collect(),
        Err(_) => ids.iter().map(|id| vault.manifest(*id).ok()).collect(),
    };
    let group: Vec<(usize, Manifest)> = group
        .iter()
        .zip(manifests)
        .filter_map(|((i, _), m)| Some((*i, m?)))
        .collect();
    let mut shares: Vec<shard_proto::ShareId> = group
        .iter()
        .flat_map(|(_, m)| m.chunks.iter().flat_map(|c| c.shares.iter().copied()))
        .collect();
    shares.sort_unstable();
    shares.dedup();
    let located = vault.locate(&shares)?;
    for (i, manifest) in &group {
        let stands = manifest.chunks.iter().all(|c| {
            c.n - c.k >= asked.tolerance()
                && (0u8..).zip(&c.shares).all(|(index, id)| {
                    located
                        .get(id)
                        .is_some_and(|r| usable(r) && r.index == index && lists(c, r))
                })
        });
        if let Some(flag) = skip.get_mut(*i) {
            *flag = stands;
        }
    }
    Ok(())
}

/// One encoding: (chunk or pack, k, n). The unit put tracks and commits.
type EncKey = (ChunkId, u8, u8);

fn enc_key(chunk: &ChunkRef) -> EncKey {
    (chunk.encoding(), chunk.k, chunk.n)
}

/// What a pack's send task returns: the new acks and the share bytes sent, or why it failed.
type PackOutcome = (
    EncKey,
    std::result::Result<(Vec<AckedShare>, u64), NotPlaced>,
);

/// The packs of one put and where the blobs it packed lie: what turns a blob's message into
/// its file's chunk reference. Per blob only a pack number and two lengths are held, and only
/// until its pack is recorded in the catalog (which then answers for it).
#[derive(Default)]
struct Placed {
    packs: Vec<PackRef>,
    blobs: HashMap<ChunkId, (usize, u32, u32)>,
    /// Blobs announced before their pack arrived: (file, seq) by chunk.
    waiting: HashMap<ChunkId, Vec<(usize, usize)>>,
}

impl Placed {
    fn chunk_ref(&self, chunk: &ChunkId) -> Option<ChunkRef> {
        let (pack, offset, len) = *self.blobs.get(chunk)?;
        let pack = self.packs.get(pack)?;
        Some(ChunkRef {
            id: *chunk,
            len,
            k: pack.k,
            n: pack.n,
            share_len: pack.share_len,
            shares: pack.shares.clone(),
            pack: Some(BlobAt {
                pack: pack.id,
                offset,
            }),
        })
    }
}

/// What a put counts as it goes.
#[derive(Default)]
struct Stats {
    chunks: u64,
    sent: u64,
    packs: u64,
    dedup: u64,
    earlier: u64,
    shares: u64,
    bytes: u64,
}

/// A file (or folder, or link) of the put from the moment its entry reaches the dispatcher
/// until it is committed; then it is forgotten (kept only for `--move`, which reads it back).
struct FileTrack {
    entry: Entry,
    /// Chunk refs received so far, by position in the file.
    refs: std::collections::BTreeMap<usize, ChunkRef>,
    /// Chunk count and size, once the file is fully read.
    expected: Option<(usize, u64)>,
    manifest: Option<Manifest>,
    sha256: Option<[u8; 32]>,
}

/// A file committed by a put with `--move`, with what it is read back against: its manifest
/// and its SHA-256.
type Moved = (Entry, Option<Manifest>, Option<[u8; 32]>);

/// The files of a put as the dispatcher sees them: those on their way, what was stored and
/// what failed. Only the files not yet committed are held (about the packs in flight's worth),
/// never the whole tree.
#[derive(Default)]
struct Files {
    /// Announced, not committed and not failed (on their way), by number.
    open: HashMap<usize, FileTrack>,
    /// Files with a manifest, not yet committed: what a flush looks at (not all the open
    /// files, which made a put of 10⁶ files quadratic). Folders and links have theirs at once.
    manifested: Vec<usize>,
    /// Entries announced, and of them files, folders, links, and the files' bytes.
    announced: usize,
    files: usize,
    dirs: usize,
    links: usize,
    bytes: u64,
    /// Paths the walk could not read.
    unreadable: usize,
    /// Why what failed failed, by its place in the walk.
    failures: Vec<(usize, FailedFile)>,
    /// With `--move`: what was committed, with the manifest and SHA-256 of each file.
    moved: Option<Vec<Moved>>,
}

impl Files {
    fn announce(&mut self, list: Vec<(usize, Entry)>) {
        for (i, entry) in list {
            self.announced += 1;
            match entry.meta.kind {
                FileKind::File => self.files += 1,
                FileKind::Dir => self.dirs += 1,
                FileKind::Symlink => self.links += 1,
            }
            self.bytes += entry.meta.size;
            let manifest = (entry.meta.kind != FileKind::File).then(Manifest::default);
            if manifest.is_some() {
                self.manifested.push(i);
            }
            self.open.insert(
                i,
                FileTrack {
                    entry,
                    refs: std::collections::BTreeMap::new(),
                    expected: None,
                    manifest,
                    sha256: None,
                },
            );
        }
    }

    /// A chunk reference reaches its file: recorded at its position, and the file learns of
    /// the pack it depends on (or that the pack failed).
    fn attach(&mut self, packs: &mut Packs, file: usize, seq: usize, chunk: ChunkRef) {
        let key = enc_key(&chunk);
        if let Some(error) = packs.failed.get(&key) {
            self.fail(file, WhyFailed::NotPlaced(error.clone()));
        } else if let Some(track) = self.open.get_mut(&file) {
            track.refs.insert(seq, chunk);
            if track.try_manifest() {
                self.manifested.push(file);
            }
        }
        // Only a pack on its way can still fail and take the file with it.
        if !packs.complete.contains(&key) {
            packs.files.entry(key).or_default().push(file);
        }
    }

    /// A file that failed leaves the open files at once (its later chunks are ignored), so
    /// that failures do not count as files waiting for their packs.
    fn fail(&mut self, file: usize, why: WhyFailed) {
        if let Some(track) = self.open.remove(&file) {
            self.failures.push((
                file,
                FailedFile {
                    path: track.entry.src,
                    why,
                },
            ));
        }
    }
}

/// The packs of a put as the dispatcher sees them.
#[derive(Default)]
struct Packs {
    /// Encodings whose every share is acknowledged (this put's, and those it refers to).
    complete: HashSet<EncKey>,
    failed: HashMap<EncKey, NotPlaced>,
    /// Files with a blob in each pack on its way (told if the pack fails).
    files: HashMap<EncKey, Vec<usize>>,
    /// The blobs of each pack on its way, and their plaintext bytes.
    blobs: HashMap<EncKey, (Vec<PackedBlob>, u64)>,
    /// Acks and blobs not yet recorded in the catalog.
    pending_acks: Vec<AckedShare>,
    pending_blobs: Vec<PackedBlob>,
}

/// Runs a put; the result is the job's summary.
pub async fn run(
    node: Arc<Node>,
    session: Arc<Session>,
    request: PutRequest,
    job: Arc<Job>,
) -> Result<PutReport> {
    let _writer = session.writer.lock().await;
    let names: Vec<Vec<u8>> = request
        .paths
        .iter()
        .filter_map(|p| {
            request
                .name
                .clone()
                .or_else(|| p.file_name().map(|n| n.as_bytes().to_vec()))
        })
        .collect();
    refuse_jobs_names(&node, &session, &names)?;
    let scan_start = std::time::SystemTime::now();
    let req = request.clone();
    let walk = tokio::task::spawn_blocking(move || Walk::new(&req.paths, req.name.as_deref()))
        .await
        .map_err(|e| Error::task(&e))??;
    // The progress totals come from a second walk that only looks (the put's own walk is as
    // slow as the reading it feeds); it stops when the put ends.
    let counting = Counting::default();
    let (req, count_job, stop) = (request.clone(), job.clone(), counting.0.clone());
    tokio::task::spawn_blocking(move || {
        count_totals(&req.paths, req.name.as_deref(), &count_job.progress, &stop);
    });
    let source = Source {
        found: Box::new(walk),
        skip: !request.move_original,
        twice: Walk::names_twice(&request.paths, request.name.as_deref()),
        scan_start,
        racy_window: node.options().racy_window,
        keep_failures: None,
    };
    store(node, session.clone(), source, &request, None, job).await
}

/// A put under a backup job's name is refused: only the job's runs store there (its
/// retention would remove what no snapshot names).
fn refuse_jobs_names(node: &Node, session: &Session, names: &[Vec<u8>]) -> Result<()> {
    let vault = node.catalog().vault(session.account, &session.keys);
    for name in names {
        if let Some(job) = crate::backup::job::holder_of(&vault, name)? {
            return Err(Error::JobsName {
                name: String::from_utf8_lossy(name).into_owned(),
                job,
            });
        }
    }
    Ok(())
}

/// Stops a put's counting walk when the put ends, however it ends.
#[derive(Default)]
struct Counting(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Counting {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Adds what a walk of `paths` meets to the progress totals, until `stop`.
fn count_totals(
    paths: &[PathBuf],
    as_name: Option<&[u8]>,
    progress: &Progress,
    stop: &std::sync::atomic::AtomicBool,
) {
    let Ok(walk) = Walk::new(paths, as_name) else {
        return;
    };
    count_found(walk, progress, stop);
}

/// Adds what `walk` meets to the progress totals, until `stop`.
fn count_found(
    walk: impl Iterator<Item = Found>,
    progress: &Progress,
    stop: &std::sync::atomic::AtomicBool,
) {
    for found in walk {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Found::Entry(e) = found {
            Progress::add(&progress.files_total, 1);
            Progress::add(&progress.bytes_total, e.meta.size);
        }
    }
}

/// Stores an [`Upload`] as it arrives (the web UI's uploads); the result is the job's summary.
pub async fn run_upload(
    node: Arc<Node>,
    session: Arc<Session>,
    upload: Upload,
    redundancy: Option<(u8, u8)>,
    job: Arc<Job>,
) -> Result<PutReport> {
    let _writer = session.writer.lock().await;
    check_name(&upload.name)?;
    refuse_jobs_names(&node, &session, std::slice::from_ref(&upload.name))?;
    let now = std::time::SystemTime::now();
    let mtime = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let entry = Entry {
        src: PathBuf::new(),
        meta: FileMeta {
            name: upload.name.clone(),
            kind: FileKind::File,
            size: upload.size,
            mtime,
            mtime_nanos: 0,
            mode: 0o600,
            link_target: None,
        },
        dev_ino: (0, 0),
        ctime: (0, 0),
        stamp: None,
        streamed: true,
    };
    Progress::add(&job.progress.files_total, 1);
    Progress::add(&job.progress.bytes_total, upload.size);
    let request = PutRequest {
        paths: Vec::new(),
        name: Some(upload.name),
        redundancy,
        move_original: false,
    };
    let source = Source {
        found: Box::new(std::iter::once(Found::Entry(entry))),
        skip: false,
        twice: HashSet::new(),
        scan_start: now,
        racy_window: node.options().racy_window,
        keep_failures: None,
    };
    store(
        node,
        session.clone(),
        source,
        &request,
        Some(upload.reader),
        job,
    )
    .await
}

/// The put itself (the caller holds the vault's writer lock).
async fn store(
    node: Arc<Node>,
    session: Arc<Session>,
    source: Source,
    request: &PutRequest,
    upload: Option<Box<dyn Read + Send>>,
    job: Arc<Job>,
) -> Result<PutReport> {
    let progress = &job.progress;
    let keep_failures = source.keep_failures.clone();
    let nodes = Arc::new(Nodes::gather(&node, session.vault(), &HashSet::new()));
    let online = nodes.online();
    // The default comes from the nodes paired, not those online: a put while peers are away
    // must not quietly store with less redundancy; it is refused and says how many are missing.
    let paired = node.peers().len() + 1;
    let redundancy = match request.redundancy {
        Some((k, n)) => Redundancy::new(k, n).map_err(Error::Store)?,
        None => Redundancy::for_peers(paired).map_err(Error::Store)?,
    };
    if usize::from(redundancy.n()) > online {
        return Err(Error::NotEnoughNodes {
            online,
            peers: online - 1,
            needed: usize::from(redundancy.n()),
            k: usize::from(redundancy.k()),
        });
    }

    // Shares that still count: acknowledged, on this node or a paired one (a share on a node
    // since unpaired is sent again, to another).
    let me = node.node_id();
    let paired: HashSet<NodeId> = node.peer_names().into_iter().map(|(id, _)| id).collect();
    let usable = Arc::new(move |s: &ShareRecord| {
        s.state == ShareState::Acked && (s.peer == me || paired.contains(&s.peer))
    });
    let vault = node.catalog().vault(session.account, &session.keys);

    // The walk, the reading and the encoder threads; files stored before and unchanged since
    // are left out there, a window at a time.
    let met = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let crowd = Arc::new(Crowd::default());
    let enc_crowd = crowd.clone();
    let (tx, mut rx) = mpsc::channel::<Encoded>(4);
    let (enc_node, enc_session, enc_usable, enc_met) =
        (node.clone(), session.clone(), usable.clone(), met.clone());
    let hash = request.move_original;
    let encoder = tokio::task::spawn_blocking(move || {
        encode_files(
            &enc_node,
            &enc_session,
            source,
            redundancy,
            enc_usable.as_ref(),
            hash,
            upload,
            &tx,
            enc_met,
            enc_crowd,
        )
    });

    let mut files = Files {
        moved: request.move_original.then(Vec::new),
        ..Files::default()
    };
    let mut packs = Packs::default();
    let mut placed = Placed::default();
    let mut unchanged = Unchanged::default();
    let mut warnings = Vec::new();
    let mut set: JoinSet<PackOutcome> = JoinSet::new();
    let mut stats = Stats::default();
    let mut encoder_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(50));

    loop {
        tokio::select! {
            message = rx.recv(), if encoder_open => match message {
                None => encoder_open = false,
                Some(Encoded::Entries(list)) => files.announce(list),
                Some(Encoded::Unchanged(u)) => {
                    Progress::add(&progress.files_done, u.files);
                    Progress::add(&progress.bytes_done, u.bytes);
                    unchanged.files += u.files;
                    unchanged.bytes += u.bytes;
                }
                Some(Encoded::Unreadable(why)) => {
                    files.unreadable += 1;
                    files.failures.push((files.announced, why));
                }
                Some(Encoded::Skipped(warning)) => warnings.push(warning),
                Some(Encoded::Known { file, seq, chunk }) => {
                    stats.chunks += 1;
                    stats.dedup += 1;
                    stats.earlier += u64::from((chunk.k, chunk.n) != (redundancy.k(), redundancy.n()));
                    Progress::add(&progress.bytes_done, u64::from(chunk.len));
                    packs.complete.insert(enc_key(&chunk));
                    files.attach(&mut packs, file, seq, chunk);
                }
                Some(Encoded::Blob { file, seq, chunk, len, fresh }) => {
                    stats.chunks += 1;
                    // A chunk met before in this put: its pack is on its way, or recorded
                    // already (and forgotten here: the catalog has it).
                    let before = if fresh {
                        None
                    } else {
                        match placed.chunk_ref(&chunk) {
                            Some(r) => Some(r),
                            None => stored_copy(&vault, &chunk, len, redundancy, usable.as_ref())?,
                        }
                    };
                    match before {
                        Some(r) => {
                            stats.dedup += 1;
                            files.attach(&mut packs, file, seq, r);
                        }
                        None => placed.waiting.entry(chunk).or_default().push((file, seq)),
                    }
                }
                Some(Encoded::Pack(encoded, permit)) => {
                    let number = placed.packs.len();
                    let as_chunk = encoded.pack.as_chunk_ref();
                    let key = enc_key(&as_chunk);
                    placed.packs.push(encoded.pack.clone());
                    let mut blobs = Vec::with_capacity(encoded.blobs.len());
                    let mut plain = 0u64;
                    for b in &encoded.blobs {
                        placed.blobs.insert(b.chunk, (number, b.offset, b.len));
                        blobs.push((b.chunk, BlobAt { pack: encoded.pack.id, offset: b.offset }, b.len));
                        plain += u64::from(b.len);
                        let waiting = placed.waiting.remove(&b.chunk).unwrap_or_default();
                        // The first is the blob packed; any other, the same chunk met again.
                        stats.sent += u64::from(!waiting.is_empty());
                        stats.dedup += waiting.len().saturating_sub(1) as u64;
                        for (file, seq) in waiting {
                            if let Some(r) = placed.chunk_ref(&b.chunk) {
                                files.attach(&mut packs, file, seq, r);
                            }
                        }
                    }
                    packs.blobs.insert(key, (blobs, plain));
                    let nodes = nodes.clone();
                    let chunk = EncodedChunk { chunk: as_chunk, shares: encoded.shares };
                    set.spawn(async move {
                        let sent = crate::swarm::send_chunk(nodes, chunk, HashMap::new()).await;
                        drop(permit);
                        (key, sent)
                    });
                }
                Some(Encoded::FileDone { file, chunks, size, sha256 }) => {
                    if let Some(track) = files.open.get_mut(&file) {
                        track.expected = Some((chunks, size));
                        track.sha256 = sha256;
                        if track.try_manifest() {
                            files.manifested.push(file);
                        }
                    }
                }
                Some(Encoded::FileFailed { file, why }) => files.fail(file, why),
            },
            Some(joined) = set.join_next() => {
                let Ok((key, result)) = joined else { continue };
                let (blobs, plain) = packs.blobs.remove(&key).unwrap_or_default();
                match result {
                    Ok((acks, bytes)) => {
                        stats.packs += 1;
                        stats.shares += acks.len() as u64;
                        stats.bytes += bytes;
                        packs.pending_acks.extend(acks);
                        packs.pending_blobs.extend(blobs);
                        packs.complete.insert(key);
                        Progress::add(&progress.bytes_done, plain);
                    }
                    Err(error) => {
                        for file in packs.files.get(&key).cloned().unwrap_or_default() {
                            files.fail(file, WhyFailed::NotPlaced(error.clone()));
                        }
                        packs.failed.insert(key, error);
                    }
                }
                packs.files.remove(&key);
            },
            _ = tick.tick() => {
                flush(&vault, &mut packs, &mut files, &mut placed, &met, progress)?;
            },
            else => break,
        }
        crowd
            .open
            .store(files.open.len(), std::sync::atomic::Ordering::Relaxed);
        crowd
            .announced
            .store(files.announced, std::sync::atomic::Ordering::Relaxed);
        if !encoder_open && set.is_empty() {
            break;
        }
    }
    encoder.await.map_err(|e| Error::task(&e))??;
    flush(&vault, &mut packs, &mut files, &mut placed, &met, progress)?;
    // Every file is committed or failed; one that is neither lost a chunk on the way (a bug):
    // it is reported, never dropped in silence.
    for (i, track) in files.open.drain() {
        if track.entry.meta.kind == FileKind::File {
            files.failures.push((
                i,
                FailedFile {
                    path: track.entry.src,
                    why: WhyFailed::Incomplete,
                },
            ));
        }
    }
    files.failures.sort_by_key(|(i, _)| *i);
    let failures: Vec<FailedFile> = files.failures.into_iter().map(|(_, f)| f).collect();
    let mut report = PutReport {
        files: files.files,
        unchanged: unchanged.files,
        unchanged_bytes: unchanged.bytes,
        dirs: files.dirs,
        links: files.links,
        bytes: files.bytes,
        redundancy: redundancy.to_string(),
        chunks: stats.chunks,
        chunks_sent: stats.sent,
        packs_sent: stats.packs,
        chunks_already_stored: stats.dedup,
        chunks_kept_at_earlier_redundancy: stats.earlier,
        shares_sent: stats.shares,
        share_bytes_sent: stats.bytes,
        skipped: warnings,
        failed: Vec::new(),
        moved: false,
        full_nodes: names_of(&node, &nodes.full()),
    };
    if let Some(kept) = keep_failures {
        crate::node::lock(&kept).extend(failures);
        return Ok(report);
    }
    let failed = failures.len();
    if let Some(first) = failures.into_iter().next() {
        // Paths the walk could not read count with the entries it announced.
        return Err(Error::PartialPut {
            failed,
            total: files.announced + files.unreadable,
            first,
        });
    }
    if let Some(moved) = files.moved {
        let (entries, stored): (Vec<Entry>, Vec<_>) =
            moved.into_iter().map(|(e, m, s)| (e, (m, s))).unzip();
        crate::get::verify_read_back(&node, &session, &entries, &stored).await?;
        remove_originals(&entries)?;
        report.moved = true;
    }
    Ok(report)
}

/// Display names of `nodes` (this node's own name for itself), sorted.
pub(crate) fn names_of(node: &Node, nodes: &[NodeId]) -> Vec<String> {
    let mut names: Vec<String> = nodes.iter().map(|id| node.name_of(id)).collect();
    names.sort();
    names
}

impl FileTrack {
    /// Builds the manifest once every chunk of the file has been encoded; true when this call
    /// built it.
    fn try_manifest(&mut self) -> bool {
        if let Some((count, size)) = self.expected
            && self.manifest.is_none()
            && self.refs.len() == count
        {
            // The refs move into the manifest: a put of 10⁵ files holds each file's chunk
            // list once, and (below) only until the file is committed.
            self.manifest = Some(Manifest {
                size,
                chunks: std::mem::take(&mut self.refs).into_values().collect(),
            });
            return true;
        }
        false
    }
}

/// Records acks and the blobs of the packs they complete, then makes visible every file whose
/// chunks are all recorded.
fn flush(
    vault: &shard_store::VaultCatalog<'_>,
    packs: &mut Packs,
    files: &mut Files,
    placed: &mut Placed,
    met: &std::sync::Mutex<HashSet<ChunkId>>,
    progress: &Progress,
) -> Result<()> {
    if !packs.pending_acks.is_empty() || !packs.pending_blobs.is_empty() {
        vault.record_acks_and_blobs(&packs.pending_acks, &packs.pending_blobs)?;
        crate::crash_point!("put:acks-recorded");
        // Blobs the catalog records are found there when met again: forgotten here, so what
        // the put holds per chunk is that of the packs on their way.
        if let Ok(mut met) = met.lock() {
            for (chunk, ..) in &packs.pending_blobs {
                met.remove(chunk);
            }
        }
        for (chunk, ..) in &packs.pending_blobs {
            placed.blobs.remove(chunk);
        }
        packs.pending_acks.clear();
        packs.pending_blobs.clear();
    }
    // Failed files leave the list; those whose packs are all acknowledged are committed now;
    // the rest wait for the next flush.
    let mut ready = Vec::new();
    let Files {
        open, manifested, ..
    } = &mut *files;
    manifested.retain(|&i| {
        let Some(t) = open.get(&i) else {
            return false;
        };
        let whole = t.manifest.as_ref().is_some_and(|m| {
            m.chunks
                .iter()
                .all(|c| packs.complete.contains(&enc_key(c)))
        });
        if whole {
            ready.push(i);
        }
        !whole
    });
    if ready.is_empty() {
        return Ok(());
    }
    let batch: Vec<NewFile> = ready
        .iter()
        .filter_map(|i| {
            let t = open.get(i)?;
            Some(NewFile {
                meta: t.entry.meta.clone(),
                stamp: t.entry.stamp,
                manifest: t.manifest.clone()?,
            })
        })
        .collect();
    let begun = vault.begin_stamped(&batch)?;
    vault.commit_files(&begun.iter().map(|f| f.id).collect::<Vec<_>>())?;
    crate::crash_point!("put:committed");
    for i in ready {
        if let Some(t) = files.open.remove(&i)
            && let Some(moved) = &mut files.moved
        {
            moved.push((t.entry, t.manifest, t.sha256));
        }
    }
    Progress::add(&progress.files_done, batch.len() as u64);
    Ok(())
}

/// After a verified `--move`: removes the stored files and links, then the folders that are
/// left empty (deepest first). Only what the put stored is touched.
fn remove_originals(entries: &[Entry]) -> Result<()> {
    // Only what was read: a path that now leads elsewhere (a folder on the way swapped for a
    // link by someone who can write there) names another file, which must not be deleted.
    let same = |e: &Entry| {
        fs::symlink_metadata(&e.src)
            .is_ok_and(|md| (md.dev(), md.ino()) == e.dev_ino && kind_of(&md) == e.meta.kind)
    };
    if let Some(changed) = entries.iter().find(|e| !same(e)) {
        return Err(Error::MoveAborted(format!(
            "{} is no longer what was stored (moved, replaced, or a folder on its way became a link); nothing was deleted",
            changed.src.display()
        )));
    }
    for e in entries.iter().filter(|e| e.meta.kind != FileKind::Dir) {
        if !same(e) {
            return Err(Error::MoveAborted(format!(
                "{} changed while the originals were being deleted; it and the rest were kept",
                e.src.display()
            )));
        }
        fs::remove_file(&e.src).map_err(|err| access(&e.src, &err))?;
    }
    let mut dirs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.meta.kind == FileKind::Dir)
        .collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.src.components().count()));
    for d in dirs {
        // A folder that still holds something the put did not store stays.
        if same(d) {
            let _ = fs::remove_dir(&d.src);
        }
    }
    Ok(())
}

fn kind_of(md: &fs::Metadata) -> FileKind {
    let t = md.file_type();
    if t.is_dir() {
        FileKind::Dir
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::File
    }
}

/// Storing files, for a program that drives the node directly.
impl Node {
    /// Stores files as `user` (or the only unlocked account); returns the put's summary.
    pub async fn put(
        self: &Arc<Self>,
        user: Option<&str>,
        request: PutRequest,
    ) -> Result<PutReport> {
        let session = self.session(user)?;
        let job = self.jobs().create("put");
        run(self.clone(), session, request, job).await
    }
}
