//! `put`: files and folder trees into the vault, their shares spread over this node and its
//! peers.
//!
//! The pipeline, with memory bounded whatever the sizes:
//! 1. scan the paths (files, folders, links; other kinds are skipped with a warning);
//! 2. one blocking thread reads and encodes files into chunks of `n` shares (a bounded channel
//!    holds it back when sending lags);
//! 3. the dispatcher sends the shares of each chunk to `n` distinct nodes (the swarm's
//!    placement, shared with repair and catalog snapshots), at most [`CHUNKS_IN_FLIGHT`]
//!    chunks and [`PER_NODE`] shares per node at a time; a node that fails is replaced by
//!    another that holds no share of the chunk;
//! 4. acknowledged shares are recorded in the catalog in batches; a file becomes visible
//!    (begin + commit, one transaction per batch) only once every share of every chunk is.
//!
//! Resume and dedup are the same mechanism: before sending a chunk, the catalog is asked which
//! of its shares are already acknowledged, and only the others are sent. The same file put
//! again sends nothing; a put interrupted and run again sends only what was not acknowledged.
//!
//! A chunk stored before keeps its encoding (`choose_encoding`): its `k`-of-`n` is reused
//! when it survives at least as many losses as the put asks for, and its missing shares are
//! sent again (encoding is deterministic: the same chunk and `k`-of-`n` give the same shares).
//! Otherwise the chunk is stored a second time, with the put's redundancy, as an encoding of
//! its own: an encoding is never changed in place, so versions stored before keep exactly the
//! shares their manifests list.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use shard_crypto::Label;
use shard_proto::{ChunkId, ChunkRef, Manifest, NodeId};
use shard_store::{
    AckedShare, ChunkSizes, EncodedChunk, Encoding, Feeder, FileKind, FileMeta, KeyedFastCdc,
    NewFile, Redundancy, ShareRecord, ShareState, SplitChunk, split_parallel,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::jobs::{Job, Progress};
use crate::node::Node;
use crate::report::PutReport;
pub use crate::request::PutRequest;
use crate::session::Session;
use crate::swarm::Nodes;
use crate::tree::{Entry, access, check_name};
use crate::{Error, Result};

/// Chunks whose shares are on their way at once: many small ones (so peers get batches to
/// commit together), but never more than [`BYTES_IN_FLIGHT`] of chunk data.
pub const CHUNKS_IN_FLIGHT: usize = 64;
/// Chunk bytes on their way at once (their shares take n/k times as much memory).
pub const BYTES_IN_FLIGHT: u64 = 24 << 20;
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
/// after their file's `FileDone`; `seq` and `chunks` let the dispatcher rebuild the order.
enum Encoded {
    Chunk {
        file: usize,
        seq: usize,
        chunk: EncodedChunk,
        /// Stored before with another (at least as strong) redundancy, kept as it is.
        earlier: bool,
    },
    FileDone {
        file: usize,
        chunks: usize,
        size: u64,
        sha256: Option<[u8; 32]>,
    },
    FileFailed {
        file: usize,
        error: String,
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

/// Threads that encode chunks (id, seal, Reed-Solomon, share ids) while one reads and cuts.
const ENCODERS: usize = 2;

/// Whether a recorded share still counts: acknowledged, on this node or a paired one.
pub(crate) type Usable<'a> = &'a (dyn Fn(&ShareRecord) -> bool + Sync);

/// The encoding a chunk is stored with, given the encodings the catalog already has of it:
/// an existing one if it survives at least as many losses as `asked` and is either complete
/// (every share usable) or can be completed on the `online` nodes; among several, the complete
/// ones first, then `asked` itself, then the one missing fewest shares, then the smallest.
/// Otherwise `asked`: a new encoding of its own.
pub(crate) fn choose_encoding(
    asked: Redundancy,
    existing: &[Encoding],
    online: usize,
    usable: Usable<'_>,
) -> Redundancy {
    existing
        .iter()
        .filter_map(|e| {
            let r = Redundancy::new(e.k, e.n).ok()?;
            let have = (0..e.n)
                .filter(|i| e.shares.iter().any(|s| s.index == *i && usable(s)))
                .count();
            let missing = usize::from(e.n) - have;
            let fits = missing == 0 || usize::from(e.n) <= online;
            (r.tolerance() >= asked.tolerance() && fits).then_some((
                missing > 0,
                r != asked,
                missing,
                e.n,
                r,
            ))
        })
        .min_by_key(|(incomplete, other, missing, n, _)| (*incomplete, *other, *missing, *n))
        .map_or(asked, |(.., r)| r)
}

/// How the encoder threads pick each chunk's encoding (see [`choose_encoding`]).
struct Chooser<'a> {
    node: &'a Node,
    session: &'a Session,
    asked: Redundancy,
    online: usize,
    usable: Usable<'a>,
}

/// Reads and cuts files on this thread and encodes their chunks on [`ENCODERS`] threads
/// (shard-store's parallel split, the same path its benchmarks measure), so a single large
/// file uses more than one core. Each file's end (or failure) goes to the dispatcher after the
/// file is read; its chunks may still be on their way.
fn encode_files(
    entries: &[Entry],
    chooser: &Chooser<'_>,
    hash: bool,
    mut upload: Option<Box<dyn Read + Send>>,
    tx: &mpsc::Sender<Encoded>,
) -> Result<()> {
    let session = chooser.session;
    let asked = chooser.asked;
    let keys = session.keys.clone();
    // One keyed chunker for the whole put: its gear table is drawn once, not per file.
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let catalog = chooser.node.catalog().vault(session.account, &session.keys);
    let choose = |id: &ChunkId| {
        let existing = catalog.encodings(id)?;
        Ok(choose_encoding(
            asked,
            &existing,
            chooser.online,
            chooser.usable,
        ))
    };
    let emit = |c: SplitChunk| {
        let message = match c.result {
            Ok(chunk) => Encoded::Chunk {
                file: c.file,
                seq: c.seq,
                earlier: (chunk.chunk.k, chunk.chunk.n) != (asked.k(), asked.n()),
                chunk,
            },
            Err(e) => Encoded::FileFailed {
                file: c.file,
                error: e.to_string(),
            },
        };
        tx.blocking_send(message).is_ok()
    };
    split_parallel(&keys, asked, &chunker, ENCODERS, &choose, &emit, |feed| {
        for (file, entry) in entries.iter().enumerate() {
            if entry.meta.kind != FileKind::File {
                continue;
            }
            let outcome = read_file(feed, file, entry, hash, &mut upload);
            let message = match outcome {
                Ok((chunks, size, sha256)) => Encoded::FileDone {
                    file,
                    chunks,
                    size,
                    sha256,
                },
                Err(error) => Encoded::FileFailed { file, error },
            };
            if tx.blocking_send(message).is_err() {
                break;
            }
        }
    })?;
    Ok(())
}

/// Feeds one file (or the upload) to the encoders: its chunk count, size and, for `--move`,
/// SHA-256; or why nothing may be stored for it.
fn read_file(
    feed: &mut Feeder<'_, KeyedFastCdc>,
    file: usize,
    entry: &Entry,
    hash: bool,
    upload: &mut Option<Box<dyn Read + Send>>,
) -> std::result::Result<(usize, u64, Option<[u8; 32]>), String> {
    let mut cut = |source: &mut dyn Read| -> std::result::Result<_, String> {
        // One byte more than announced is enough to know a stream ran long.
        let limit = if entry.streamed {
            entry.meta.size.saturating_add(1)
        } else {
            u64::MAX
        };
        let mut hashing = Hashing {
            inner: source.take(limit),
            hasher: hash.then(Sha256::new),
        };
        let (chunks, size) = feed.file(file, &mut hashing).map_err(|e| match e {
            shard_store::Error::Stopped => "put cancelled".to_string(),
            e => e.to_string(),
        })?;
        Ok((chunks, size, hashing.hasher.map(|h| h.finalize().into())))
    };
    if entry.streamed {
        let mut source = upload
            .take()
            .ok_or_else(|| "the upload's bytes are gone".to_string())?;
        let (chunks, size, sha256) = cut(&mut source)?;
        if size > entry.meta.size {
            return Err(format!(
                "more than the {} bytes announced arrived; nothing was stored for it",
                entry.meta.size
            ));
        }
        if size != entry.meta.size {
            return Err(format!(
                "the upload ended after {size} of {} bytes; nothing was stored for it",
                entry.meta.size
            ));
        }
        return Ok((chunks, size, sha256));
    }
    let mut f = fs::File::open(&entry.src).map_err(|e| e.to_string())?;
    let (chunks, size, sha256) = cut(&mut f)?;
    let after = fs::symlink_metadata(&entry.src).map_err(|e| e.to_string())?;
    let changed = after.len() != size
        || size != entry.meta.size
        || after.mtime() != entry.meta.mtime
        || u32::try_from(after.mtime_nsec()).unwrap_or(0) != entry.meta.mtime_nanos
        || (after.dev(), after.ino()) != entry.dev_ino;
    if changed {
        return Err(
            "it changed while being read; nothing was stored for it (run the put again)".into(),
        );
    }
    Ok((chunks, size, sha256))
}

/// Whether `record` is a share `chunk` lists: of its chunk and encoding, and the very id at its
/// index (a share of another encoding of the same chunk never stands in for it).
fn lists(chunk: &ChunkRef, record: &ShareRecord) -> bool {
    record.chunk == chunk.id
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
/// a name the put meets twice (two paths stored under one name: which is newest must not
/// depend on which one was skipped).
fn skip_unchanged(
    vault: &shard_store::VaultCatalog<'_>,
    entries: Vec<Entry>,
    asked: Redundancy,
    usable: Usable<'_>,
) -> Result<(Vec<Entry>, Unchanged)> {
    let mut skip = vec![false; entries.len()];
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(entries.len());
    let twice: HashSet<&[u8]> = entries
        .iter()
        .map(|e| e.meta.name.as_slice())
        .filter(|name| !seen.insert(name))
        .collect();
    drop(seen);
    let candidates: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.meta.kind == FileKind::File
                && !e.streamed
                && e.stamp.is_some()
                && !twice.contains(e.meta.name.as_slice())
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

/// Sends the shares of one chunk that are not acknowledged yet; returns the new acks and
/// their bytes. Nothing is sent unless every missing share has a node to go to.
pub(crate) async fn send_chunk(
    nodes: Arc<Nodes>,
    chunk: EncodedChunk,
    acked: HashMap<u8, NodeId>,
) -> std::result::Result<(Vec<AckedShare>, u64), String> {
    let c = &chunk.chunk;
    let holding: Vec<NodeId> = acked.values().copied().collect();
    let needed: Vec<(u8, shard_proto::Share)> = (0..c.n)
        .filter(|i| !acked.contains_key(i))
        .filter_map(|i| chunk.shares.get(usize::from(i)).map(|s| (i, s.clone())))
        .collect();
    let available = nodes.available(&holding);
    if available < needed.len() {
        // Nodes an earlier chunk found full are left out: say so, or the count looks wrong.
        let full: Vec<String> = nodes
            .full()
            .iter()
            .filter_map(|n| nodes.target(n).map(|t| format!("{} is full", t.name())))
            .collect();
        return Err(format!(
            "only {} nodes can take shares of this chunk, {} needed{}",
            available + holding.len(),
            c.n,
            if full.is_empty() {
                String::new()
            } else {
                format!(" ({})", full.join("; "))
            }
        ));
    }
    let placing = nodes.place(needed, &holding, &[]).await;
    if !placing.unplaced.is_empty() {
        return Err(format!(
            "{} shares could not be placed: too few nodes accept them ({})",
            placing.unplaced.len(),
            placing.refused.join("; ")
        ));
    }
    let bytes = placing.placed.iter().map(|p| p.len).sum();
    let acks = placing
        .placed
        .into_iter()
        .map(|p| AckedShare {
            chunk: c.id,
            k: c.k,
            n: c.n,
            share_len: c.share_len,
            index: p.index,
            share: p.id,
            peer: p.node,
        })
        .collect();
    Ok((acks, bytes))
}

/// One encoding of a chunk: (chunk, k, n). The unit put tracks, dedups and commits.
type EncKey = (ChunkId, u8, u8);

fn enc_key(chunk: &shard_proto::ChunkRef) -> EncKey {
    (chunk.id, chunk.k, chunk.n)
}

/// What a chunk's send task returns: the new acks and the share bytes sent, or why it failed.
type ChunkOutcome = (EncKey, std::result::Result<(Vec<AckedShare>, u64), String>);

struct FileTrack {
    /// Chunk refs received so far, by position in the file.
    refs: std::collections::BTreeMap<usize, shard_proto::ChunkRef>,
    /// Chunk count and size, once the file is fully read.
    expected: Option<(usize, u64)>,
    manifest: Option<Manifest>,
    sha256: Option<[u8; 32]>,
    failed: Option<String>,
    committed: bool,
    /// Whether its manifest is still wanted once committed (`--move` reads everything back).
    keep_manifest: bool,
}

/// Runs a put; the result is the job's summary.
pub async fn run(
    node: Arc<Node>,
    session: Arc<Session>,
    request: PutRequest,
    job: Arc<Job>,
) -> Result<PutReport> {
    let _writer = session.writer.lock().await;
    let req = request.clone();
    let scan_start = std::time::SystemTime::now();
    let (mut entries, warnings) =
        tokio::task::spawn_blocking(move || crate::tree::scan(&req.paths, req.name.as_deref()))
            .await
            .map_err(|e| Error::task(&e))??;
    crate::tree::settle(&mut entries, scan_start, node.options().racy_window);
    store(
        node,
        session.clone(),
        entries,
        warnings,
        &request,
        None,
        job,
    )
    .await
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
    let mtime = std::time::SystemTime::now()
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
        stamp: None,
        streamed: true,
    };
    let request = PutRequest {
        paths: Vec::new(),
        name: Some(upload.name),
        redundancy,
        move_original: false,
    };
    store(
        node,
        session.clone(),
        vec![entry],
        Vec::new(),
        &request,
        Some(upload.reader),
        job,
    )
    .await
}

/// The put itself, once the entries are known (the caller holds the vault's writer lock).
async fn store(
    node: Arc<Node>,
    session: Arc<Session>,
    entries: Vec<Entry>,
    warnings: Vec<String>,
    request: &PutRequest,
    upload: Option<Box<dyn Read + Send>>,
    job: Arc<Job>,
) -> Result<PutReport> {
    let progress = &job.progress;
    let files_total = entries.len() as u64;
    Progress::add(&progress.files_total, files_total);
    Progress::add(
        &progress.bytes_total,
        entries.iter().map(|e| e.meta.size).sum(),
    );

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

    // Files stored before and unchanged since are not read again (not with `--move`, which
    // must read every original to compare it with what comes back).
    let vault = node.catalog().vault(session.account, &session.keys);
    let (entries, unchanged) = if request.move_original {
        (entries, Unchanged::default())
    } else {
        skip_unchanged(&vault, entries, redundancy, usable.as_ref())?
    };
    Progress::add(&progress.files_done, unchanged.files);
    Progress::add(&progress.bytes_done, unchanged.bytes);

    // Encoder thread.
    let (tx, mut rx) = mpsc::channel::<Encoded>(4);
    let enc_entries = entries.clone();
    let (enc_node, enc_session, enc_usable) = (node.clone(), session.clone(), usable.clone());
    let hash = request.move_original;
    let encoder = tokio::task::spawn_blocking(move || {
        let chooser = Chooser {
            node: &enc_node,
            session: &enc_session,
            asked: redundancy,
            online,
            usable: enc_usable.as_ref(),
        };
        encode_files(&enc_entries, &chooser, hash, upload, &tx)
    });

    let mut files: Vec<FileTrack> = entries
        .iter()
        .map(|e| FileTrack {
            refs: std::collections::BTreeMap::new(),
            expected: None,
            manifest: (e.meta.kind != FileKind::File).then(Manifest::default),
            sha256: None,
            failed: None,
            committed: false,
            keep_manifest: request.move_original,
        })
        .collect();
    let mut complete: HashSet<EncKey> = HashSet::new();
    let mut in_flight: HashSet<EncKey> = HashSet::new();
    let mut chunk_files: HashMap<EncKey, Vec<usize>> = HashMap::new();
    let mut chunk_len: HashMap<EncKey, u64> = HashMap::new();
    let mut pending_acks: Vec<AckedShare> = Vec::new();
    let mut set: JoinSet<ChunkOutcome> = JoinSet::new();
    let (mut chunks_total, mut chunks_sent, mut chunks_dedup, mut shares_sent, mut bytes_sent) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut chunks_earlier = 0u64;
    let mut encoder_open = true;
    let mut bytes_in_flight = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(50));

    loop {
        tokio::select! {
            message = rx.recv(), if encoder_open && set.len() < CHUNKS_IN_FLIGHT && bytes_in_flight < BYTES_IN_FLIGHT => match message {
                None => encoder_open = false,
                Some(Encoded::Chunk { file, seq, chunk, earlier }) => {
                    let id = enc_key(&chunk.chunk);
                    chunks_total += 1;
                    chunks_earlier += u64::from(earlier);
                    if let Some(track) = files.get_mut(file) {
                        track.refs.insert(seq, chunk.chunk.clone());
                        track.try_manifest();
                    }
                    chunk_files.entry(id).or_default().push(file);
                    chunk_len.insert(id, u64::from(chunk.chunk.len));
                    if complete.contains(&id) {
                        Progress::add(&progress.bytes_done, u64::from(chunk.chunk.len));
                        continue;
                    }
                    if !in_flight.insert(id) {
                        continue;
                    }
                    // Only the very shares this encoding lists count, where they still count.
                    let c = &chunk.chunk;
                    let acked: HashMap<u8, NodeId> = vault
                        .encoding_shares(&c.id, c.k, c.n)?
                        .into_iter()
                        .filter(|s| usable(s) && lists(c, s))
                        .map(|s| (s.index, s.peer))
                        .collect();
                    if acked.len() >= usize::from(c.n) {
                        chunks_dedup += 1;
                        in_flight.remove(&id);
                        complete.insert(id);
                        Progress::add(&progress.bytes_done, u64::from(c.len));
                        continue;
                    }
                    chunks_sent += 1;
                    bytes_in_flight += u64::from(chunk.chunk.len);
                    let nodes = nodes.clone();
                    set.spawn(async move { (id, send_chunk(nodes, chunk, acked).await) });
                }
                Some(Encoded::FileDone { file, chunks, size, sha256 }) => {
                    if let Some(track) = files.get_mut(file) {
                        track.expected = Some((chunks, size));
                        track.sha256 = sha256;
                        track.try_manifest();
                    }
                }
                Some(Encoded::FileFailed { file, error }) => {
                    if let Some(track) = files.get_mut(file) {
                        track.failed = Some(error);
                    }
                }
            },
            Some(joined) = set.join_next() => {
                let Ok((id, result)) = joined else { continue };
                in_flight.remove(&id);
                bytes_in_flight = bytes_in_flight.saturating_sub(chunk_len.get(&id).copied().unwrap_or(0));
                match result {
                    Ok((acks, bytes)) => {
                        shares_sent += acks.len() as u64;
                        bytes_sent += bytes;
                        pending_acks.extend(acks);
                        complete.insert(id);
                        Progress::add(&progress.bytes_done, chunk_len.get(&id).copied().unwrap_or(0));
                    }
                    Err(error) => {
                        for &file in chunk_files.get(&id).map(Vec::as_slice).unwrap_or_default() {
                            if let Some(track) = files.get_mut(file) {
                                track.failed.get_or_insert_with(|| error.clone());
                            }
                        }
                    }
                }
            },
            _ = tick.tick() => {
                flush(&vault, &mut pending_acks, &complete, &mut files, &entries, progress)?;
            },
            else => break,
        }
        if !encoder_open && set.is_empty() {
            break;
        }
    }
    encoder.await.map_err(|e| Error::task(&e))??;
    flush(
        &vault,
        &mut pending_acks,
        &complete,
        &mut files,
        &entries,
        progress,
    )?;

    let failures: Vec<String> = files
        .iter()
        .zip(&entries)
        .filter_map(|(t, e)| {
            t.failed
                .as_ref()
                .map(|f| format!("{}: {f}", e.src.display()))
        })
        .collect();
    let count = |k: FileKind| entries.iter().filter(|e| e.meta.kind == k).count();
    let mut report = PutReport {
        files: count(FileKind::File),
        unchanged: unchanged.files,
        unchanged_bytes: unchanged.bytes,
        dirs: count(FileKind::Dir),
        links: count(FileKind::Symlink),
        bytes: entries.iter().map(|e| e.meta.size).sum(),
        redundancy: redundancy.to_string(),
        chunks: chunks_total,
        chunks_sent,
        chunks_already_stored: chunks_dedup,
        chunks_kept_at_earlier_redundancy: chunks_earlier,
        shares_sent,
        share_bytes_sent: bytes_sent,
        skipped: warnings,
        failed: failures.clone(),
        moved: false,
        full_nodes: names_of(&node, &nodes.full()),
    };
    if let Some(first) = failures.first() {
        return Err(Error::PartialPut {
            failed: failures.len(),
            total: entries.len(),
            first: first.clone(),
        });
    }
    if request.move_original {
        crate::get::verify_read_back(
            &node,
            &session,
            &entries,
            &files
                .iter()
                .map(|t| (t.manifest.clone(), t.sha256))
                .collect::<Vec<_>>(),
        )
        .await?;
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
    /// Builds the manifest once every chunk of the file has been encoded.
    fn try_manifest(&mut self) {
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
        }
    }
}

/// Records acks, then makes visible every file whose chunks are all recorded.
fn flush(
    vault: &shard_store::VaultCatalog<'_>,
    pending_acks: &mut Vec<AckedShare>,
    complete: &HashSet<EncKey>,
    files: &mut [FileTrack],
    entries: &[Entry],
    progress: &Progress,
) -> Result<()> {
    if !pending_acks.is_empty() {
        vault.record_acks(pending_acks)?;
        pending_acks.clear();
        crate::crash_point!("put:acks-recorded");
    }
    let ready: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            !t.committed
                && t.failed.is_none()
                && t.manifest
                    .as_ref()
                    .is_some_and(|m| m.chunks.iter().all(|c| complete.contains(&enc_key(c))))
        })
        .map(|(i, _)| i)
        .collect();
    if ready.is_empty() {
        return Ok(());
    }
    let batch: Vec<NewFile> = ready
        .iter()
        .filter_map(|&i| {
            let entry = entries.get(i)?;
            Some(NewFile {
                meta: entry.meta.clone(),
                stamp: entry.stamp,
                manifest: files.get(i)?.manifest.clone()?,
            })
        })
        .collect();
    let begun = vault.begin_stamped(&batch)?;
    vault.commit_files(&begun.iter().map(|f| f.id).collect::<Vec<_>>())?;
    crate::crash_point!("put:committed");
    for i in ready {
        if let Some(t) = files.get_mut(i) {
            t.committed = true;
            if !t.keep_manifest {
                t.manifest = None;
            }
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
