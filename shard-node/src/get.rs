//! `get`: files and trees back from the shares, with up to `n − k` nodes offline.
//!
//! For each chunk, `k` shares are fetched at once from the best sources (this node's store
//! first, then connected peers by round-trip time); a share that is missing or fails its id is
//! replaced by the next source. Several chunks are in flight; they are written in order to a
//! temporary file beside the target, which is synced and renamed into place only when complete,
//! so a failed restore leaves nothing half-written.
//!
//! A folder's files are taken a batch at a time: the small ones' chunk lists are read a page
//! per transaction, then the small files (one blob each) restored in the order their blobs
//! lie in the packs, a run of neighbours on one thread with one read per data share for the
//! whole run, as restic restores pack by pack. A peer then answers a request per run instead
//! of one per file. Large files follow one by one, as before.

use std::fs;
use std::io::Write;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use shard_proto::{ChunkId, ChunkRef, Manifest, NodeId, PackId, PackRef, Share, ShareId};
use shard_store::{
    BlobPlace, ChunkSource, FileEntry, FileKind, PackCoder, PackShape, ShareState,
    blob_from_shares, restore_parallel,
};

use crate::swarm::{Asking, Holder};

use crate::backup::job::Records;
use crate::jobs::{Job, Progress};
use crate::node::{Node, lock};
use crate::report::GetReport;
pub use crate::request::GetRequest;
use crate::session::Session;
use crate::target::Target;
use crate::tree::{Entry, access, check_name};
use crate::{Error, Result};

/// Chunks fetched at once, within a file.
const CHUNKS_AHEAD: usize = 8;

/// Small files restored at once.
const FILES_AHEAD: usize = 16;

/// Files up to this size are restored [`FILES_AHEAD`] at once; larger ones alone.
const SMALL_FILE: u64 = 1 << 20;

/// How long a restore waits before its second round of asking for a chunk's shares.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often that wait looks for a new connection.
const RECONNECT_POLL: Duration = Duration::from_millis(250);

/// Files whose chunk lists are read at once, and whose small files are then restored in the
/// order their blobs lie in the packs (see [`restore_group`]).
const BATCH_FILES: usize = 8192;

/// Small files restored together span at most this many bytes of their pack…
const GROUP_SPAN: u64 = 256 << 10;

/// …and are at most this many.
const GROUP_FILES: usize = 64;

/// A group's place in the window of restores running at once (of [`FILES_AHEAD`]): a few
/// groups at once keep the restore from waiting on the network or the disk.
const GROUP_WEIGHT: usize = 4;

/// A ranged read asks for whole aligned blocks of this many bytes (see [`fetch_blob`]).
const RANGE_BLOCK: u32 = 16 << 10;

// A range rebuilt from other shares is widened to shard-store's 64-byte coding blocks
// (`PackShape::window`): within a span read in whole range blocks only if those are whole
// coding blocks too.
const _: () = assert!(RANGE_BLOCK.is_multiple_of(64));

/// The pace (bytes a second) a ranged read is given beyond the hedge delay before its holder
/// counts as too slow: a poor home uplink's.
const SLOW_LINK_BYTES: u64 = 256 << 10;

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Where the shares of chunks can come from, best first. Gathered when a restore starts and
/// again when a chunk's first round finds too few shares: a peer that reconnected (a new
/// connection), or came online, is then used for every chunk after it too.
struct Sources {
    ordered: std::sync::RwLock<Arc<Vec<Target>>>,
    asking: Asking,
    /// Peers seen connected during this restore, and for each that was then found without
    /// a connection, until when chunks wait for it to be connected again (see
    /// [`fetch_shares`]).
    seen: std::sync::Mutex<std::collections::HashMap<NodeId, Option<tokio::time::Instant>>>,
}

impl Sources {
    fn new(node: &Node, session: &Session) -> Self {
        let sources = Self {
            ordered: std::sync::RwLock::new(Arc::new(Vec::new())),
            asking: Asking::new(node, session.vault()),
            seen: std::sync::Mutex::default(),
        };
        sources.refresh(node);
        sources
    }

    /// Of `holders`, those that were connected earlier in this restore and are not now,
    /// and whose wait has not run out: the peers a short chunk waits for. The first chunk
    /// to find one gone starts its wait ([`crate::node::RunOptions::reconnect_wait`]); every chunk after it shares
    /// that deadline, so a peer gone for good costs the restore one wait, not one per
    /// chunk. Returns them with the latest deadline.
    fn lost(&self, node: &Node, holders: &[NodeId]) -> (Vec<NodeId>, Option<tokio::time::Instant>) {
        let online = connected(node);
        let now = tokio::time::Instant::now();
        let mut seen = lock(&self.seen);
        let mut lost = Vec::new();
        let mut until = None;
        for id in holders {
            if online.contains(id) {
                continue;
            }
            let Some(deadline) = seen.get_mut(id) else {
                continue;
            };
            let deadline = *deadline.get_or_insert(now + node.options().reconnect_wait);
            if deadline > now && !lost.contains(id) {
                lost.push(*id);
                until = until.max(Some(deadline));
            }
        }
        (lost, until)
    }

    /// This node's store, then the connected peers by round-trip time.
    fn gather(node: &Node) -> Vec<Target> {
        let mut peers: Vec<_> = node.online_peers();
        peers.sort_by(|a, b| a.0.peer().hello.name.cmp(&b.0.peer().hello.name));
        let rtts = node.rtts();
        peers.sort_by_key(|(c, _)| rtts.get(&c.peer().id).copied().unwrap_or(Duration::MAX));
        let mut ordered = vec![node.local_target()];
        ordered.extend(peers.into_iter().map(|(c, _)| Target::Peer(c)));
        ordered
    }

    /// The sources as they are now.
    fn now(&self) -> Arc<Vec<Target>> {
        match self.ordered.read() {
            Ok(o) => o.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Gathers the sources again; whether any connection is new (a peer came online or
    /// reconnected since they were gathered).
    fn refresh(&self, node: &Node) -> bool {
        let fresh = Self::gather(node);
        let mut slot = match self.ordered.write() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        let new = fresh.iter().any(|t| match t {
            Target::Peer(c) => !slot
                .iter()
                .any(|o| matches!(o, Target::Peer(old) if Arc::ptr_eq(old, c))),
            Target::Local { .. } => false,
        });
        {
            // A peer connected (again) is waited for afresh if it is lost later.
            let mut seen = lock(&self.seen);
            for t in fresh.iter() {
                if let Target::Peer(c) = t {
                    seen.insert(c.peer().id, None);
                }
            }
        }
        *slot = Arc::new(fresh);
        new
    }
}

/// The peers connected now.
fn connected(node: &Node) -> Vec<NodeId> {
    node.online_clients().iter().map(|c| c.peer().id).collect()
}

/// `peer` among the sources `ordered`, with its rank (lower is better), if it is online.
fn ranked<'a>(ordered: &'a [Target], peer: &NodeId) -> Option<(usize, &'a Target)> {
    ordered.iter().enumerate().find(|(_, t)| t.node() == *peer)
}

/// The shares of one chunk that a restore needs, fetched from the swarm (hedged: `k` at once
/// from the best sources, a missing or bad one replaced by the next). When too few came back
/// and a second round could change that (a request failed in a way that may pass, a
/// connection is new since, or a holder was lost during the restore), the sources are
/// gathered again and, a moment later, the shares still missing are asked for; the ones
/// already fetched are kept. A holder connected earlier in the restore and gone now (its
/// connection dropped: a relayed path that stalled and was closed, a network that changed)
/// is most often connected again by the node within seconds, and it has what is missing:
/// the second round waits for it, at most [`crate::node::RunOptions::reconnect_wait`] per peer and restore. A holder
/// that was off when the restore began is not waited for.
async fn fetch_shares(
    sources: &Sources,
    session: &Session,
    node: &Node,
    chunk: &ChunkRef,
    file: &str,
) -> Result<Vec<Share>> {
    let first = fetch_round(sources, session, node, chunk, Vec::new()).await?;
    let mut round = match first {
        Round::Done(good) => return Ok(good),
        Round::Short(short) => short,
    };
    let renewed = sources.refresh(node);
    let mut holders = round.passing.clone();
    holders.extend(round.offline_ids.iter().copied());
    let (lost, until) = sources.lost(node, &holders);
    if !round.passing.is_empty() || renewed || !lost.is_empty() {
        tracing::debug!(
            "chunk {}: {} of {} shares came back; asking again",
            short_id(chunk),
            round.good.len(),
            chunk.k
        );
        tokio::time::sleep(RETRY_AFTER).await;
        if let Some(until) = until {
            while tokio::time::Instant::now() < until
                && !connected(node).iter().any(|id| lost.contains(id))
            {
                tokio::time::sleep(RECONNECT_POLL).await;
            }
        }
        // Again: a connection made during the pause counts too.
        sources.refresh(node);
        round = match fetch_round(sources, session, node, chunk, round.good).await? {
            Round::Done(good) => return Ok(good),
            Round::Short(short) => short,
        };
    }
    let mut offline = round.offline;
    offline.sort();
    offline.dedup();
    let holders = if offline.is_empty() {
        String::new()
    } else {
        format!("; other shares are on {} (offline)", offline.join(", "))
    };
    Err(Error::ChunkUnavailable {
        file: file.to_string(),
        chunk: short_id(chunk),
        have: round.good.len(),
        need: usize::from(chunk.k),
        holders,
    })
}

/// A chunk id as errors and logs show it.
fn short_id(chunk: &ChunkRef) -> String {
    chunk.id.to_hex().chars().take(12).collect()
}

/// What one round of [`fetch_shares`] brought.
enum Round {
    /// `k` verified shares.
    Done(Vec<Share>),
    /// Too few.
    Short(Shortfall),
}

/// A round that found too few shares.
struct Shortfall {
    /// The verified shares it has.
    good: Vec<Share>,
    /// The holders of requests that failed in a way that may pass.
    passing: Vec<NodeId>,
    /// The offline nodes holding the others, by name.
    offline: Vec<String>,
    /// The same nodes, by id.
    offline_ids: Vec<NodeId>,
}

/// One round of [`fetch_shares`], from the sources as they are now, on top of the shares
/// `have` (asked for only those still missing).
async fn fetch_round(
    sources: &Sources,
    session: &Session,
    node: &Node,
    chunk: &ChunkRef,
    mut have: Vec<Share>,
) -> Result<Round> {
    // Where the shares this manifest lists are, looked up by their ids: a share of another
    // encoding of the same chunk is never asked for.
    let located = node
        .catalog()
        .vault(session.account, &session.keys)
        .locate(&chunk.shares)?;
    let records: Vec<_> = (0u8..)
        .zip(&chunk.shares)
        .filter_map(|(index, id)| located.get(id).filter(|r| r.index == index))
        .filter(|r| !have.iter().any(|h| h.id() == r.id))
        .collect();
    let ordered = sources.now();
    let mut holders = Vec::new();
    let mut offline = Vec::new();
    let mut offline_ids = Vec::new();
    for r in records.iter().filter(|r| r.state == ShareState::Acked) {
        match ranked(&ordered, &r.peer) {
            Some((rank, t)) => holders.push(Holder {
                id: r.id,
                index: r.index,
                target: t.clone(),
                rank,
            }),
            None => {
                offline.push(node.name_of(&r.peer));
                offline_ids.push(r.peer);
            }
        }
    }
    let need = usize::from(chunk.k);
    let fetched = crate::swarm::fetch_some(
        chunk,
        holders,
        sources.asking,
        need.saturating_sub(have.len()),
    )
    .await;
    have.extend(fetched.good);
    if have.len() >= need {
        have.truncate(need);
        return Ok(Round::Done(have));
    }
    Ok(Round::Short(Shortfall {
        good: have,
        passing: fetched.passing,
        offline,
        offline_ids,
    }))
}

/// A pack's shares as a restore reads them by range: by share index, the id the record lists
/// there and the online source holding it.
struct PackHolders {
    pack: PackRef,
    by_index: Vec<Option<(ShareId, Target)>>,
}

impl PackHolders {
    /// Where `pack`'s shares are now (one catalog lookup).
    fn of(source: &SwarmChunks, pack: PackRef) -> Result<Self> {
        let located = source
            .node
            .catalog()
            .vault(source.session.account, &source.session.keys)
            .locate(&pack.shares)?;
        let encoding = ChunkId(pack.id.0);
        let ordered = source.sources.now();
        let by_index = (0u8..)
            .zip(&pack.shares)
            .map(|(index, id)| {
                let r = located.get(id).filter(|r| {
                    r.index == index && r.chunk == encoding && r.state == ShareState::Acked
                })?;
                Some((*id, ranked(&ordered, &r.peer)?.1.clone()))
            })
            .collect();
        Ok(Self { pack, by_index })
    }

    /// Bytes `range` of share `index`, read as whole aligned blocks of [`RANGE_BLOCK`] bytes
    /// and cut here: a holder learns which blocks of its share are read, never a blob's exact
    /// bounds (and so not the chunk's length). A holder slower than the hedge delay plus the
    /// time the bytes take at a slow link's pace counts as absent (`None`): the piece is then
    /// rebuilt from others. Blocking: the read runs on the node's runtime.
    fn read(&self, source: &SwarmChunks, index: u8, range: Range<u32>) -> Option<Bytes> {
        let Range { start, end } = self.aligned(&range);
        let block = self.read_aligned(source, index, start..end)?;
        let from = (range.start - start) as usize;
        let to = (range.end - start) as usize;
        (from <= to && to <= block.len()).then(|| block.slice(from..to))
    }

    /// `range` widened to whole [`RANGE_BLOCK`]s (at most the share's end).
    fn aligned(&self, range: &Range<u32>) -> Range<u32> {
        let start = range.start - range.start % RANGE_BLOCK;
        let end = range
            .end
            .div_ceil(RANGE_BLOCK)
            .saturating_mul(RANGE_BLOCK)
            .min(self.pack.share_len);
        start..end
    }

    /// Bytes `range` of share `index` as its holder serves them (see [`Self::read`]).
    fn read_aligned(&self, source: &SwarmChunks, index: u8, range: Range<u32>) -> Option<Bytes> {
        let (id, target) = self.by_index.get(usize::from(index))?.as_ref()?;
        let asking = source.sources.asking;
        let patience = asking.hedge_after
            + Duration::from_secs(
                u64::from(range.end.saturating_sub(range.start)) / SLOW_LINK_BYTES,
            );
        let read = target.get_range(asking.vault, *id, range, asking.timeout);
        // The timer is made inside the runtime (it needs its clock).
        match source
            .runtime
            .block_on(async { tokio::time::timeout(patience, read).await })
            .ok()?
        {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("fetching from {} failed (share {id}): {e}", target.name());
                None
            }
        }
    }
}

/// Spans of a pack's data shares read at once for a group of small files whose blobs lie
/// close together in it (see [`restore_group`]): each blob is then cut out of them instead of
/// being asked for on its own.
struct Nearby {
    holders: PackHolders,
    /// (share index, first byte, bytes).
    spans: Vec<(u8, u32, Bytes)>,
    /// Shares that were not served at some point of the run (no holder online, one too
    /// slow): the run's blobs there are rebuilt from the other shares (from bytes already
    /// read where there are some) without asking it again, so a stalled holder costs a run
    /// one wait, not one per file.
    unserved: std::sync::Mutex<Vec<u8>>,
    /// Shares whose bytes did not authenticate: not used again in the run, not even from
    /// a span.
    lied: std::sync::Mutex<Vec<u8>>,
}

/// Whether `index` is in `list`.
fn marked(list: &std::sync::Mutex<Vec<u8>>, index: u8) -> bool {
    lock(list).contains(&index)
}

/// Puts `index` in `list`.
fn mark(list: &std::sync::Mutex<Vec<u8>>, index: u8) {
    let mut list = lock(list);
    if !list.contains(&index) {
        list.push(index);
    }
}

impl Nearby {
    /// Bytes `range` of share `index`, if a span holds them.
    fn cut(&self, index: u8, range: &Range<u32>) -> Option<Bytes> {
        self.spans.iter().find_map(|(at, start, bytes)| {
            let from = range.start.checked_sub(*start)? as usize;
            let to = range.end.checked_sub(*start)? as usize;
            (*at == index && from <= to && to <= bytes.len()).then(|| bytes.slice(from..to))
        })
    }
}

/// A blob's bytes read by ranges from its pack's shares (the data shares that hold it, or
/// the same window of `k` others, decoded) and authenticated; when that fails (a holder
/// served other bytes), the pack's whole shares, each checked against its id. Runs on a
/// blocking thread: each range is fetched on the node's runtime.
fn fetch_blob(source: &SwarmChunks, chunk: &ChunkRef) -> Result<Vec<u8>> {
    let (Some(pack), Some(place)) = (chunk.pack_ref(), BlobPlace::of(chunk)) else {
        return Err(Error::Store(shard_store::Error::InvalidParameters(
            "the chunk is not a blob in a pack",
        )));
    };
    let nearby = source.nearby.as_deref().filter(|n| n.holders.pack == pack);
    let own;
    let holders = match nearby {
        Some(n) => &n.holders,
        None => {
            own = PackHolders::of(source, pack.clone())?;
            &own
        }
    };
    // `patient`: ask shares marked unserved too (what changes on a second try).
    let fetch = |patient: bool| {
        move |index: u8, range: Range<u32>| match nearby {
            Some(n) if marked(&n.lied, index) => None,
            Some(n) => n.cut(index, &range).or_else(|| {
                if !patient && marked(&n.unserved, index) {
                    return None;
                }
                let read = holders.read(source, index, range);
                if read.is_none() {
                    mark(&n.unserved, index);
                }
                read
            }),
            None => holders.read(source, index, range),
        }
    };
    let keys = &source.session.keys;
    let mut suspects = Vec::new();
    let mut read =
        PackCoder::new().read_blob_noting(keys, &pack, &place, fetch(false), &mut suspects);
    if read.is_err() && nearby.is_some() {
        // A share marked unserved may have been a passing fault: once more, asking every
        // share not caught lying, before whole shares are fetched.
        read = PackCoder::new().read_blob_noting(keys, &pack, &place, fetch(true), &mut suspects);
    }
    for index in &suspects {
        if let Some(n) = nearby {
            mark(&n.lied, *index);
        }
        let Some(Some((id, target))) = holders.by_index.get(usize::from(*index)) else {
            continue;
        };
        tracing::warn!(
            "fetching from {} failed (share {id}): the bytes it served for a range of it do not authenticate; read from the other shares",
            target.name()
        );
    }
    match read {
        Ok(plain) => Ok(plain),
        Err(e) => {
            tracing::warn!("reading a blob by ranges failed ({e}); fetching whole shares");
            let shares = source.shares(chunk)?;
            Ok(blob_from_shares(&source.session.keys, chunk, &shares)?)
        }
    }
}

/// A file's chunks from the swarm, for shard-store's parallel restore: its worker threads
/// wait here for the async fetches, which run on the node's runtime. The first chunk's shares
/// are fetched beforehand, on the runtime (a small file is one chunk: it then costs no thread
/// a wait).
struct SwarmChunks {
    runtime: tokio::runtime::Handle,
    node: Arc<Node>,
    session: Arc<Session>,
    sources: Arc<Sources>,
    file: String,
    first: std::sync::Mutex<Option<(ChunkRef, Vec<Share>)>>,
    /// Bytes of the file's pack read beforehand with its neighbours'.
    nearby: Option<Arc<Nearby>>,
}

impl SwarmChunks {
    /// The chunks of `file` (as errors name it) from `sources`. Call on the node's runtime.
    fn new(node: &Arc<Node>, session: &Arc<Session>, sources: Arc<Sources>, file: String) -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            node: node.clone(),
            session: session.clone(),
            sources,
            file,
            first: std::sync::Mutex::new(None),
            nearby: None,
        }
    }

    /// The source of `file`'s chunks, with the shares of `manifest`'s first chunk fetched.
    async fn prefetched(
        node: &Arc<Node>,
        session: &Arc<Session>,
        sources: &Arc<Sources>,
        manifest: &Manifest,
        file: String,
    ) -> Result<Self> {
        // A blob is read by ranges, on the restore's own thread.
        let first = match manifest.chunks.first().filter(|c| c.pack.is_none()) {
            Some(chunk) => Some((
                chunk.clone(),
                fetch_shares(sources, session, node, chunk, &file).await?,
            )),
            None => None,
        };
        let source = Self::new(node, session, sources.clone(), file);
        *lock(&source.first) = first;
        Ok(source)
    }

    /// The same sources for another file, with bytes of its pack read beforehand.
    fn fork(&self, file: String, nearby: Option<Arc<Nearby>>) -> Self {
        Self {
            runtime: self.runtime.clone(),
            node: self.node.clone(),
            session: self.session.clone(),
            sources: self.sources.clone(),
            file,
            first: std::sync::Mutex::new(None),
            nearby,
        }
    }
}

impl ChunkSource for SwarmChunks {
    type Error = Error;

    fn shares(&self, chunk: &ChunkRef) -> Result<Vec<Share>> {
        if let Ok(mut first) = self.first.lock()
            && first.as_ref().is_some_and(|(c, _)| c == chunk)
            && let Some((_, shares)) = first.take()
        {
            return Ok(shares);
        }
        self.runtime.block_on(fetch_shares(
            &self.sources,
            &self.session,
            &self.node,
            chunk,
            &self.file,
        ))
    }

    fn blob(&self, _keys: &shard_crypto::VaultKeys, chunk: &ChunkRef) -> Result<Vec<u8>> {
        fetch_blob(self, chunk)
    }
}

/// Blobs read one at a time out of the swarm, by range (how prune reads the blobs it copies).
/// Blocking: used from a blocking thread of the node's runtime.
pub(crate) struct BlobReader(SwarmChunks);

impl BlobReader {
    /// A reader over the sources online now; call on the node's runtime.
    pub(crate) fn new(node: &Arc<Node>, session: &Arc<Session>, what: String) -> Self {
        let sources = Arc::new(Sources::new(node, session));
        Self(SwarmChunks::new(node, session, sources, what))
    }

    /// The bytes of `pack`, decoded whole from `k` of its shares (each checked against its
    /// id): what a prune reads of a pack it compacts — all of it, so a holder does not learn
    /// which blobs are still used.
    pub(crate) fn pack(&self, pack: &shard_proto::PackRef) -> Result<Vec<u8>> {
        let shares = self.0.shares(&pack.as_chunk_ref())?;
        Ok(PackCoder::new().decode(pack, &shares)?)
    }
}

/// Streams a file's chunks, in order, into `sink`: shard-store's parallel restore over the
/// swarm, [`CHUNKS_AHEAD`] chunks at once. Runs on a blocking thread (`runtime` is the node's).
fn stream_chunks(
    source: &SwarmChunks,
    manifest: &Manifest,
    progress: Option<&Progress>,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    restore_parallel(
        &source.session.keys,
        &manifest.chunks,
        source,
        CHUNKS_AHEAD,
        |bytes| {
            sink(bytes)?;
            if let Some(p) = progress {
                Progress::add(&p.bytes_done, bytes.len() as u64);
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Restores one file to `dest` (on a blocking thread: the chunks come through
/// [`stream_chunks`]). `within` is the restore's folder and the file's path below it: no folder
/// on that way may be a link when the temporary file is made, nor when it is renamed into
/// place (a folder swapped for a link while the file was restored is caught there).
fn restore_file(
    source: &SwarmChunks,
    manifest: &Manifest,
    entry: &FileEntry,
    (dest, within): (&Path, Option<(&Path, &[u8])>),
    progress: &Progress,
    keep_special: bool,
    sync_dir: bool,
) -> Result<()> {
    let no_link = || within.map_or(Ok(()), |(out, rel)| no_link_on_the_way(out, rel));
    no_link()?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    // A fresh name nobody can have prepared, created only if nothing is there (not even a
    // link: O_EXCL never follows one), private until it is complete.
    let mut salt = [0u8; 8];
    shard_crypto::fill_random(&mut salt)?;
    // Not derived from the file's name: a name near the file system's limit (255 bytes)
    // must restore too.
    let tmp = dir.join(format!(".shard-{}.part", hex::encode(salt)));
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| access(&tmp, &e))?;
    let written = stream_chunks(source, manifest, Some(progress), |bytes| {
        out.write_all(bytes).map_err(|e| access(&tmp, &e))
    })
    // Mode and time are set on the open file, never by a path somebody could swap.
    .and_then(|()| set_meta(&out, &tmp, entry, keep_special))
    .and_then(|()| out.sync_all().map_err(|e| access(&tmp, &e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    drop(out);
    // rename replaces whatever is at `dest`, a link included, and never follows it.
    if let Err(e) = no_link().and_then(|()| fs::rename(&tmp, dest).map_err(|e| access(dest, &e))) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if sync_dir {
        sync_folder(dir)?;
    }
    Ok(())
}

/// Makes the names renamed into `dir` durable.
fn sync_folder(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| access(dir, &e))
}

/// One file of a restore: its version, where it goes and (in a folder's restore) the
/// restore's folder and its path below it, which no link may be on.
struct Pending {
    entry: FileEntry,
    dest: PathBuf,
    within: Option<(PathBuf, Vec<u8>)>,
}

impl Pending {
    fn within(&self) -> Option<(&Path, &[u8])> {
        self.within
            .as_ref()
            .map(|(o, r)| (o.as_path(), r.as_slice()))
    }
}

/// How the small files of a batch are read together: sorted by where their one blob lies,
/// `places` (pack, first byte, sealed length) are cut into runs of one pack spanning at most
/// [`GROUP_SPAN`] bytes of it and at most [`GROUP_FILES`] files. Returns the runs' lengths.
fn group_lengths(places: &[(PackId, u64, u64)]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut run: Option<(PackId, u64, usize)> = None;
    for (pack, offset, len) in places {
        let end = offset.saturating_add(*len);
        match &mut run {
            Some((p, start, count))
                if p == pack
                    && *count < GROUP_FILES
                    && end.saturating_sub(*start) <= GROUP_SPAN =>
            {
                *count += 1;
            }
            _ => {
                if let Some((.., count)) = run {
                    lengths.push(count);
                }
                run = Some((*pack, *offset, 1));
            }
        }
    }
    if let Some((.., count)) = run {
        lengths.push(count);
    }
    lengths
}

/// Restores a run of small files whose blobs lie close together in one pack (see
/// [`group_lengths`]), on one blocking thread: the spans of the data shares that hold them
/// are read once, a request per share, and each blob is cut out of them (a blob the spans do
/// not hold, because a holder was slow or lied, is read on its own as [`fetch_blob`] does).
/// The folders the files were renamed into are synced once, at the end.
fn restore_group(
    base: &SwarmChunks,
    members: &[(Pending, Manifest)],
    progress: &Progress,
    keep_special: bool,
) -> Result<()> {
    let pack = members
        .first()
        .and_then(|(_, m)| m.chunks.first())
        .and_then(ChunkRef::pack_ref);
    let nearby = match pack {
        Some(pack) => {
            let shape = PackShape::of(&pack)?;
            // Per data share, the bytes the run's blobs take of it.
            let mut bounds = std::collections::BTreeMap::<u8, (u32, u32)>::new();
            let places = members
                .iter()
                .flat_map(|(_, m)| &m.chunks)
                .filter(|c| c.pack.is_some_and(|at| at.pack == pack.id))
                .filter_map(BlobPlace::of);
            for place in places {
                let Ok(pieces) = shape.pieces(u64::from(place.offset), place.sealed_len()) else {
                    continue;
                };
                for piece in pieces {
                    let b = bounds
                        .entry(piece.index)
                        .or_insert((piece.start, piece.end));
                    *b = (b.0.min(piece.start), b.1.max(piece.end));
                }
            }
            let holders = PackHolders::of(base, pack)?;
            let (mut spans, mut failed) = (Vec::new(), Vec::new());
            let mut unserved = Vec::new();
            let read = |index: u8, range: Range<u32>, spans: &mut Vec<(u8, u32, Bytes)>| {
                let bytes = holders.read_aligned(base, index, range.clone())?;
                (bytes.len() == (range.end - range.start) as usize)
                    .then(|| spans.push((index, range.start, bytes)))
            };
            for (index, (start, end)) in bounds {
                let range = holders.aligned(&(start..end));
                if read(index, range.clone(), &mut spans).is_none() {
                    failed.push(index);
                    unserved.push(range);
                }
            }
            // A piece of a share not served is rebuilt from the same bytes of `k` others:
            // those are read once for the run too (the other data shares first, then the
            // recovery shares, as the rebuild asks for them).
            for (range, lost) in unserved.into_iter().zip(failed.clone()) {
                let mut got = 0;
                for index in 0..shape.n {
                    if got == shape.k {
                        break;
                    }
                    if index == lost || failed.contains(&index) {
                        continue;
                    }
                    match read(index, range.clone(), &mut spans) {
                        Some(()) => got += 1,
                        None => failed.push(index),
                    }
                }
            }
            Some(Arc::new(Nearby {
                holders,
                spans,
                unserved: std::sync::Mutex::new(failed),
                lied: std::sync::Mutex::default(),
            }))
        }
        None => None,
    };
    let mut folders = std::collections::BTreeSet::new();
    for (pending, manifest) in members {
        let source = base.fork(lossy(&pending.entry.meta.name), nearby.clone());
        restore_file(
            &source,
            manifest,
            &pending.entry,
            (&pending.dest, pending.within()),
            progress,
            keep_special,
            false,
        )?;
        Progress::add(&progress.files_done, 1);
        if let Some(dir) = pending.dest.parent() {
            folders.insert(dir.to_path_buf());
        }
    }
    for dir in &folders {
        sync_folder(dir)?;
    }
    Ok(())
}

/// Restores a file's or folder's mode and time on the open `file` (`path` names it in
/// errors). Setuid, setgid and sticky bits are cleared unless `keep_special` (a restored file
/// must not become a way to run as its restorer).
fn set_meta(file: &fs::File, path: &Path, entry: &FileEntry, keep_special: bool) -> Result<()> {
    let mask = if keep_special { 0o7777 } else { 0o777 };
    file.set_permissions(fs::Permissions::from_mode(entry.meta.mode & mask))
        .map_err(|e| access(path, &e))?;
    let secs = u64::try_from(entry.meta.mtime).unwrap_or(0);
    let mtime = UNIX_EPOCH + Duration::new(secs, entry.meta.mtime_nanos);
    file.set_modified(mtime).map_err(|e| access(path, &e))
}

/// Opens a restored folder to set its mode and time, refusing a link put in its place since
/// it was made (O_NOFOLLOW).
fn open_dir(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => through_link(path),
            _ => access(path, &e),
        })
}

fn through_link(path: &Path) -> Error {
    Error::PathAccess {
        path: path.display().to_string(),
        reason: "it is a symbolic link: a restore never writes through one".into(),
    }
}

/// Refuses to restore `rel` under `out` when a folder on the way is a symbolic link (one the
/// restore itself made from a stored link, or one that was there): nothing is ever written
/// outside `out` through a link.
fn no_link_on_the_way(out: &Path, rel: &[u8]) -> Result<()> {
    let mut at = out.to_path_buf();
    let mut parts = rel.split(|b| *b == b'/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        at.push(std::ffi::OsStr::from_bytes(part));
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(through_link(&at));
        }
    }
    Ok(())
}

/// What a get restores: the version asked for and, for a folder, the newest version of each
/// name under it in name order, held as ids (their entries are read a page at a time as the
/// restore goes), with how many they are and their bytes.
struct Resolved {
    chosen: FileEntry,
    /// Each name's newest version: its row, version number and a hash of the name.
    under: Vec<(shard_store::FileId, u32, u64)>,
    count: u64,
    bytes: u64,
}

/// The entries of one page of a folder's restore, checked to be what was found when the get
/// began: a row removed since, or reused by another file (row ids are given again after a
/// removal), fails the get rather than restore something else under the folder's name.
fn page_of(
    vault: &shard_store::VaultCatalog<'_>,
    root: &[u8],
    page: &[(shard_store::FileId, u32, u64)],
) -> Result<Vec<FileEntry>> {
    let ids: Vec<shard_store::FileId> = page.iter().map(|(id, ..)| *id).collect();
    let entries = crate::files::entries_in_order(vault, &ids)?;
    let same = entries.len() == page.len()
        && entries.iter().zip(page).all(|(e, (id, version, name))| {
            e.id == *id
                && e.version == *version
                && name_hash(&e.meta.name) == *name
                && e.meta.name.get(..root.len()) == Some(root)
                && e.meta.name.get(root.len()) == Some(&b'/')
        });
    if !same {
        return Err(Error::Store(shard_store::Error::NoSuchFile(format!(
            "{}: what it holds changed in the vault during the restore (a file under it was \
             removed); run the get again",
            lossy(root)
        ))));
    }
    Ok(entries)
}

/// A name's hash, to tell that a page's row still holds the name it held (8 bytes a name
/// instead of the name).
fn name_hash(name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// The entries a get restores: one file or link, or a folder and everything under it (newest
/// versions).
fn resolve(node: &Node, session: &Session, request: &GetRequest) -> Result<Resolved> {
    resolve_to(node, session, request, Depth::Whole)
}

/// How far [`resolve_to`] looks: what a folder holds too, or only the entry named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Whole,
    Entry,
}

fn resolve_to(
    node: &Node,
    session: &Session,
    request: &GetRequest,
    depth: Depth,
) -> Result<Resolved> {
    let vault = node.catalog().vault(session.account, &session.keys);
    // Under a backup job's name, what is restored is one of its snapshots.
    let mut version = request.version;
    if let Some(job) = crate::backup::job::holder_of(&vault, &request.name)? {
        let asked = match (&request.at, request.version) {
            (Some(at), _) => Some(at.clone()),
            (None, Some(v)) => Some(v.to_string()),
            (None, None) => Records(&vault)
                .snapshots(&job)?
                .iter()
                .map(|s| s.no)
                .max()
                .map(|n| n.to_string()),
        };
        if let Some(asked) = asked {
            return resolve_snapshot(node, session, &vault, &job, &asked, &request.name, depth);
        }
    } else if let Some(at) = &request.at {
        version = Some(at.parse::<u32>().map_err(|_| {
            Error::Usage(format!(
                "{}@{at}: after @ comes a version's number ({} is not a backup job's)",
                lossy(&request.name),
                lossy(crate::backup::job::top_of(&request.name))
            ))
        })?);
    }
    let versions = vault.versions(&request.name)?;
    let chosen = match version {
        Some(v) => versions
            .iter()
            .find(|e| e.version == v)
            .cloned()
            .ok_or_else(|| {
                let have: Vec<String> = versions.iter().map(|e| e.version.to_string()).collect();
                Error::Store(shard_store::Error::NoSuchFile(format!(
                    "{}@{v} (its versions: {})",
                    lossy(&request.name),
                    if have.is_empty() {
                        "none".into()
                    } else {
                        have.join(", ")
                    }
                )))
            })?,
        None => versions
            .last()
            .cloned()
            .ok_or_else(|| Error::Store(shard_store::Error::NoSuchFile(lossy(&request.name))))?,
    };
    let mut resolved = Resolved {
        count: 1,
        bytes: chosen.meta.size,
        chosen,
        under: Vec::new(),
    };
    if resolved.chosen.meta.kind != FileKind::Dir || depth == Depth::Entry {
        return Ok(resolved);
    }
    let mut prefix = request.name.clone();
    prefix.push(b'/');
    for (name, newest) in crate::files::newest_by_name(&vault, &prefix)? {
        resolved.count += 1;
        resolved.bytes += newest.size;
        resolved
            .under
            .push((newest.id, newest.version, name_hash(&name)));
    }
    Ok(resolved)
}

/// What a restore of `name` out of snapshot `asked` of `job` restores: exactly the versions
/// the snapshot names at `name` and under it.
fn resolve_snapshot(
    node: &Node,
    session: &Session,
    vault: &shard_store::VaultCatalog<'_>,
    job: &str,
    asked: &str,
    name: &[u8],
    depth: Depth,
) -> Result<Resolved> {
    let (no, tree) = node.snapshot_tree(session, job, asked)?;
    // The entry itself comes first of what lies at and under its name.
    let under = tree.under(name);
    let wanted: Vec<(&[u8], u32)> = match depth {
        Depth::Entry => under.take(1).collect(),
        Depth::Whole => under.collect(),
    };
    if wanted.first().map(|(first, _)| *first) != Some(name) {
        return Err(Error::Store(shard_store::Error::NoSuchFile(format!(
            "{} is not in snapshot {job}@{no}",
            lossy(name)
        ))));
    }
    let mut entries = Vec::with_capacity(wanted.len());
    for page in wanted.chunks(4096) {
        for found in vault.entries_at(page)? {
            entries.push(found.ok_or(Error::Store(shard_store::Error::IndexDamaged(
                "a version a backup snapshot names is missing from the catalog",
            )))?);
        }
    }
    let mut entries = entries.into_iter();
    let Some(chosen) = entries.next() else {
        return Err(Error::Store(shard_store::Error::NoSuchFile(lossy(name))));
    };
    let mut resolved = Resolved {
        count: 1,
        bytes: chosen.meta.size,
        chosen,
        under: Vec::new(),
    };
    for e in entries {
        resolved.count += 1;
        resolved.bytes += e.meta.size;
        resolved
            .under
            .push((e.id, e.version, name_hash(&e.meta.name)));
    }
    Ok(resolved)
}

/// A file's place in the window of restores running at once: a small file one, a large one
/// all of it (it streams [`CHUNKS_AHEAD`] chunks by itself, so memory stays that of one file).
/// A small file costs a round trip or two and no CPU to speak of: several at once keep the
/// restore from waiting on the network file after file.
fn file_weight(entry: &FileEntry) -> usize {
    if entry.meta.size <= SMALL_FILE {
        1
    } else {
        FILES_AHEAD
    }
}

/// The restores running at once: each task gives back its place in the window (its
/// weight) when it succeeds, and counts the files it restored itself.
#[derive(Default)]
struct Window {
    tasks: tokio::task::JoinSet<Result<usize>>,
    in_flight: usize,
}

impl Window {
    /// A restore that ended: its place given back if it succeeded, its error otherwise.
    fn ended(
        &mut self,
        done: std::result::Result<Result<usize>, tokio::task::JoinError>,
    ) -> Result<()> {
        self.in_flight -= done.map_err(|e| Error::task(&e))??;
        Ok(())
    }

    /// Collects the restores that ended; the first failure is returned.
    fn reap(&mut self) -> Result<()> {
        while let Some(done) = self.tasks.try_join_next() {
            self.ended(done)?;
        }
        Ok(())
    }

    /// Waits until `weight` more fits.
    async fn room(&mut self, weight: usize) -> Result<()> {
        while self.in_flight + weight > FILES_AHEAD {
            let Some(done) = self.tasks.join_next().await else {
                break;
            };
            self.ended(done)?;
        }
        Ok(())
    }

    /// Waits for every restore.
    async fn drain(&mut self) -> Result<()> {
        while let Some(done) = self.tasks.join_next().await {
            self.ended(done)?;
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        weight: usize,
        task: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        self.in_flight += weight;
        self.tasks.spawn(async move { task.await.map(|()| weight) });
    }
}

/// What every file restore of one get shares.
#[derive(Clone)]
struct Restore {
    node: Arc<Node>,
    session: Arc<Session>,
    sources: Arc<Sources>,
    job: Arc<Job>,
    keep_special: bool,
}

impl Restore {
    /// Restores a batch of files: the small files' chunk lists read first, then the small
    /// files in the order their blobs lie in the packs, close ones together (see
    /// [`restore_group`]), then the others one by one (a large file's chunk list is read
    /// only when its turn comes: memory stays that of the window). Returns when the last
    /// has its place in `window`.
    async fn launch(&self, batch: Vec<Pending>, window: &mut Window) -> Result<()> {
        let (light, large): (Vec<Pending>, Vec<Pending>) = batch
            .into_iter()
            .partition(|p| p.entry.meta.size <= SMALL_FILE);
        let (node, session) = (self.node.clone(), self.session.clone());
        // Of exactly these versions: a row may have been removed (and its id given to
        // another file) since its page was read. A transaction per page, so that other
        // users of the catalog are not held up for the whole batch.
        let (light, manifests) = tokio::task::spawn_blocking(move || {
            let vault = node.catalog().vault(session.account, &session.keys);
            let mut manifests = Vec::with_capacity(light.len());
            for page in light.chunks(crate::files::LIST_BATCH) {
                let entries: Vec<FileEntry> = page.iter().map(|p| p.entry.clone()).collect();
                manifests.extend(vault.manifests_of(&entries)?);
            }
            Ok::<_, Error>((light, manifests))
        })
        .await
        .map_err(|e| Error::task(&e))??;
        let (mut small, mut other) = (Vec::new(), Vec::new());
        for (pending, manifest) in light.into_iter().zip(manifests) {
            let place = match manifest.chunks.as_slice() {
                [chunk] => chunk
                    .pack
                    .zip(BlobPlace::of(chunk))
                    .map(|(at, place)| (at.pack, u64::from(at.offset), place.sealed_len())),
                _ => None,
            };
            match place {
                Some(place) => small.push((place, pending, manifest)),
                None => other.push((pending, Some(manifest))),
            }
        }
        other.extend(large.into_iter().map(|p| (p, None)));
        small.sort_by_key(|(place, ..)| (place.0.0, place.1));
        let places: Vec<_> = small.iter().map(|(place, ..)| *place).collect();
        let mut small = small.into_iter().map(|(_, p, m)| (p, m));
        for length in group_lengths(&places) {
            let members: Vec<(Pending, Manifest)> = small.by_ref().take(length).collect();
            // A run of one (a blob larger than a run's span, or alone in its part of the
            // pack) weighs what a file restored on its own does.
            let weight = length.clamp(1, GROUP_WEIGHT);
            window.room(weight).await?;
            for (pending, _) in &members {
                make_parent(pending)?;
            }
            let base = SwarmChunks::new(
                &self.node,
                &self.session,
                self.sources.clone(),
                String::new(),
            );
            let job = self.job.clone();
            let keep = self.keep_special;
            window.spawn(weight, async move {
                tokio::task::spawn_blocking(move || {
                    restore_group(&base, &members, &job.progress, keep)
                })
                .await
                .map_err(|e| Error::task(&e))?
            });
        }
        for (pending, manifest) in other {
            let weight = file_weight(&pending.entry);
            window.room(weight).await?;
            make_parent(&pending)?;
            let this = self.clone();
            window.spawn(weight, async move {
                let manifest = match manifest {
                    Some(manifest) => manifest,
                    None => {
                        let (n, s, e) = (
                            this.node.clone(),
                            this.session.clone(),
                            pending.entry.clone(),
                        );
                        tokio::task::spawn_blocking(move || {
                            n.catalog().vault(s.account, &s.keys).manifest_of(&e)
                        })
                        .await
                        .map_err(|e| Error::task(&e))??
                    }
                };
                let name = lossy(&pending.entry.meta.name);
                let source = SwarmChunks::prefetched(
                    &this.node,
                    &this.session,
                    &this.sources,
                    &manifest,
                    name,
                )
                .await?;
                tokio::task::spawn_blocking(move || {
                    restore_file(
                        &source,
                        &manifest,
                        &pending.entry,
                        (&pending.dest, pending.within()),
                        &this.job.progress,
                        this.keep_special,
                        true,
                    )?;
                    Progress::add(&this.job.progress.files_done, 1);
                    Ok(())
                })
                .await
                .map_err(|e| Error::task(&e))?
            });
        }
        Ok(())
    }
}

/// Makes the folders a restored file goes into, after checking (again, now: the walk
/// checked it a batch ago) that no folder on its way is a link.
fn make_parent(pending: &Pending) -> Result<()> {
    if let Some((out, rel)) = pending.within() {
        no_link_on_the_way(out, rel)?;
    }
    match pending.dest.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| access(parent, &e)),
        None => Ok(()),
    }
}

/// What `request` names, as a get would find it (a file, a folder, a link): asked before a
/// restore by a caller that takes only one kind (the web UI's download takes files).
/// Only the entry named is looked up, not what a folder holds.
pub fn kind(node: &Node, session: &Session, request: &GetRequest) -> Result<FileKind> {
    Ok(resolve_to(node, session, request, Depth::Entry)?
        .chosen
        .meta
        .kind)
}

/// Runs a get; the result is the job's summary.
pub async fn run(
    node: Arc<Node>,
    session: Arc<Session>,
    request: GetRequest,
    job: Arc<Job>,
) -> Result<GetReport> {
    let resolved = resolve(&node, &session, &request)?;
    let progress = &job.progress;
    Progress::add(&progress.files_total, resolved.count);
    Progress::add(&progress.bytes_total, resolved.bytes);
    if fs::symlink_metadata(&request.out).is_ok() && !request.force {
        return Err(Error::Exists(request.out.display().to_string()));
    }
    let restore = Restore {
        sources: Arc::new(Sources::new(&node, &session)),
        node: node.clone(),
        session: session.clone(),
        job: job.clone(),
        keep_special: request.keep_special_bits,
    };
    let root_name = request.name.clone();
    let mut dirs = Vec::new();
    let mut window = Window::default();
    let mut batch = Vec::new();
    // What was restored, for the report.
    let (mut files_restored, mut links, mut bytes) = (0usize, 0usize, 0u64);
    let vault = node.catalog().vault(session.account, &session.keys);
    let mut pages = resolved.under.chunks(crate::files::LIST_BATCH);
    let mut first = Some(vec![resolved.chosen.clone()]);
    let walked: Result<()> = async {
        loop {
            let page = match first.take() {
                Some(page) => page,
                None => match pages.next() {
                    Some(page) => page_of(&vault, &request.name, page)?,
                    None => break,
                },
            };
            for entry in &page {
                // Restores that ended are collected first: a failure stops the walk at once.
                window.reap()?;
                let rel = if entry.meta.name == root_name {
                    None
                } else {
                    let rel = entry
                        .meta
                        .name
                        .get(root_name.len() + 1..)
                        .unwrap_or_default();
                    check_name(rel)?;
                    no_link_on_the_way(&request.out, rel)?;
                    Some(rel)
                };
                let dest = rel.map_or_else(
                    || request.out.clone(),
                    |rel| request.out.join(std::ffi::OsStr::from_bytes(rel)),
                );
                match entry.meta.kind {
                    FileKind::Dir => {
                        if dest != request.out
                            && fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink())
                        {
                            return Err(through_link(&dest));
                        }
                        // The folder asked for is made with its parents (as `restic restore
                        // --target` does); the ones inside it one at a time, each checked above.
                        let made = if dest == request.out {
                            fs::create_dir_all(&dest)
                        } else {
                            fs::create_dir(&dest)
                        };
                        if let Err(e) = made
                            && !(e.kind() == std::io::ErrorKind::AlreadyExists && dest.is_dir())
                        {
                            return Err(access(&dest, &e));
                        }
                        dirs.push((dest, rel.map(<[u8]>::to_vec), entry.clone()));
                    }
                    FileKind::File => {
                        files_restored += 1;
                        bytes += entry.meta.size;
                        // Its path is checked again when the file is written and when it is
                        // renamed into place (see `restore_file`).
                        batch.push(Pending {
                            entry: entry.clone(),
                            dest,
                            within: rel.map(|rel| (request.out.clone(), rel.to_vec())),
                        });
                        if batch.len() >= BATCH_FILES {
                            restore
                                .launch(std::mem::take(&mut batch), &mut window)
                                .await?;
                        }
                        continue;
                    }
                    FileKind::Symlink => {
                        let target = entry.meta.link_target.clone().unwrap_or_default();
                        if request.force {
                            let _ = fs::remove_file(&dest);
                        }
                        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &dest)
                            .map_err(|e| access(&dest, &e))?;
                        links += 1;
                    }
                }
                Progress::add(&progress.files_done, 1);
            }
        }
        restore
            .launch(std::mem::take(&mut batch), &mut window)
            .await?;
        window.drain().await
    }
    .await;
    if let Err(e) = walked {
        // Restores already running are waited for (the blocking part of one cannot be
        // stopped): nothing is written after the get has said it failed.
        while window.tasks.join_next().await.is_some() {}
        return Err(e);
    }
    // Folders last, deepest first, so writing into them does not change their times.
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (path, rel, entry) in &dirs {
        // Checked again now, not only when it was made: a folder on the way swapped for a
        // link since must not lend this folder's mode and time to whatever the link names.
        if let Some(rel) = rel {
            no_link_on_the_way(&request.out, rel)?;
        }
        set_meta(&open_dir(path)?, path, entry, request.keep_special_bits)?;
    }
    Ok(GetReport {
        files: files_restored,
        dirs: dirs.len(),
        links,
        bytes,
        out: request.out.display().to_string(),
        restored_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    })
}

/// `--move`'s check: every stored file reads back from its shares with the SHA-256 it had when
/// it was read. Any difference keeps all originals.
pub(crate) async fn verify_read_back(
    node: &Arc<Node>,
    session: &Arc<Session>,
    entries: &[Entry],
    stored: &[(Option<Manifest>, Option<[u8; 32]>)],
) -> Result<()> {
    let sources = Arc::new(Sources::new(node, session));
    for (entry, (manifest, sha)) in entries.iter().zip(stored) {
        if entry.meta.kind != FileKind::File {
            continue;
        }
        let (Some(manifest), Some(expected)) = (manifest.clone(), *sha) else {
            return Err(Error::MoveAborted(format!(
                "{} was not fully stored",
                entry.src.display()
            )));
        };
        let name = entry.src.display().to_string();
        let source = SwarmChunks::prefetched(node, session, &sources, &manifest, name.clone())
            .await
            .map_err(|e| Error::MoveAborted(format!("{name} could not be read back: {e}")))?;
        let read = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            stream_chunks(&source, &manifest, None, |bytes| {
                hasher.update(bytes);
                Ok(())
            })
            .map_err(|e| Error::MoveAborted(format!("{name} could not be read back: {e}")))?;
            let got: [u8; 32] = hasher.finalize().into();
            if got != expected {
                return Err(Error::MoveAborted(format!(
                    "{name} read back different from the original"
                )));
            }
            Ok(())
        });
        read.await.map_err(|e| Error::task(&e))??;
    }
    Ok(())
}

/// Restoring files, for a program that drives the node directly.
impl Node {
    /// Restores a file or tree as `user`; returns the get's summary.
    pub async fn get(
        self: &Arc<Self>,
        user: Option<&str>,
        request: GetRequest,
    ) -> Result<GetReport> {
        let session = self.session(user)?;
        let job = self.jobs().create("get");
        run(self.clone(), session, request, job).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8) -> PackId {
        PackId([n; 32])
    }

    #[test]
    fn small_files_are_grouped_by_pack_and_span() {
        // Three close blobs, one far beyond the span, then another pack.
        let places = [
            (pack(1), 0, 4_000),
            (pack(1), 4_000, 4_000),
            (pack(1), 8_000, 500),
            (pack(1), GROUP_SPAN + 1, 4_000),
            (pack(2), 8_000, 4_000),
        ];
        assert_eq!(group_lengths(&places), vec![3, 1, 1]);
        assert!(group_lengths(&[]).is_empty());
    }

    #[test]
    fn a_group_ends_at_its_span_and_its_count() {
        // A blob that ends exactly at the span's end is in; one byte more is not.
        let exact = [(pack(1), 100, 10), (pack(1), 100 + GROUP_SPAN - 10, 10)];
        assert_eq!(group_lengths(&exact), vec![2]);
        let over = [(pack(1), 100, 10), (pack(1), 100 + GROUP_SPAN - 9, 10)];
        assert_eq!(group_lengths(&over), vec![1, 1]);
        let many: Vec<_> = (0..GROUP_FILES as u64 * 2 + 1)
            .map(|i| (pack(3), i * 16, 16))
            .collect();
        assert_eq!(
            group_lengths(&many),
            vec![GROUP_FILES, GROUP_FILES, 1],
            "no group holds more than {GROUP_FILES} files"
        );
    }
}
