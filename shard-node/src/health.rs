//! Health of a vault: `check` (is every share where the catalog says, and intact?), `repair`
//! (rebuild what is missing or bad from `k` good shares, onto nodes without a share of the
//! chunk), the peer-side background scrub, and the node's automatic repair.
//!
//! A share is *good* (its node has it; with `--read-data`, its bytes hash to its id),
//! *missing* (its node says it has not, quarantined it as corrupt, is removed, or has been
//! gone longer than the repair threshold), *bad* (its bytes were read and are wrong) or
//! *unknown* (its node is offline: not counted as lost). A chunk is healthy with `n` good
//! shares, degraded when some are missing or bad but `k` good or unknown remain, lost below
//! that; a file is as bad as its worst chunk.
//!
//! Everything goes by the share ids each manifest lists, never by chunk: a chunk may be stored
//! in several encodings (`k`-of-`n`), and a share of one must never pass for a share of
//! another. A listed share that no node ever acknowledged is missing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shard_proto::{ChunkId, ChunkRef, NodeId, Share, ShareId};
use shard_store::{AckedShare, ChunkDecoder, FileEntry, FileKind, ShareRecord, ShareState};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::jobs::{Job, Progress};
use crate::node::Node;
use crate::report::{
    CheckReport, ChunkHealth, DeletedInGrace, FileHealth, NodeCheck, NodeCheckState, PeerRemoval,
    Picture, PictureChunk, PictureNode, PictureShare, ReadSummary, RepairReport, ShareView,
    SharesMoved, WorstChunk,
};
use crate::session::Session;
use crate::swarm::{Asking, Holder, Nodes};
use crate::target::Target;
use crate::{Error, Result};

/// Chunks repaired at the same time.
const REPAIR_PARALLEL: usize = 4;
/// Shares read at the same time by `check --read-data`.
const READ_PARALLEL: usize = 8;

/// What is known of one share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Good,
    Missing,
    Bad,
    Unknown,
}

/// One share a manifest lists: its id and index, what the catalog records of it (nothing if
/// no node ever acknowledged it), and what was seen.
#[derive(Clone)]
struct Slot {
    id: ShareId,
    index: u8,
    record: Option<ShareRecord>,
    seen: Seen,
}

impl Slot {
    /// The node holding it, if any.
    fn holder(&self) -> Option<NodeId> {
        self.record.as_ref().map(|r| r.peer)
    }
}

/// One encoding of a chunk: (chunk, k, n).
type EncKey = (ChunkId, u8, u8);

/// One chunk encoding: its reference and, by index, the shares its manifest entry lists.
struct ChunkState {
    chunk: ChunkRef,
    shares: Vec<Slot>,
}

impl ChunkState {
    fn count(&self, seen: Seen) -> usize {
        self.shares.iter().filter(|s| s.seen == seen).count()
    }

    /// Good shares beyond the `k` needed: how many more the chunk may lose.
    fn margin(&self) -> i64 {
        i64::try_from(self.count(Seen::Good)).unwrap_or(i64::MAX) - i64::from(self.chunk.k)
    }

    /// healthy / degraded / unknown / lost, as the module says.
    fn state(&self) -> ChunkHealth {
        let (good, unknown) = (self.count(Seen::Good), self.count(Seen::Unknown));
        let (k, n) = (usize::from(self.chunk.k), usize::from(self.chunk.n));
        if good >= n {
            ChunkHealth::Healthy
        } else if good + unknown < k {
            ChunkHealth::Lost
        } else if good + unknown < n {
            ChunkHealth::Degraded
        } else {
            ChunkHealth::Unknown
        }
    }
}

/// One chunk of a file as a survey sees it: the encoding that holds it and, for a blob, the
/// data shares its bytes lie in (first and last index).
struct Part {
    key: EncKey,
    data: Option<(u8, u8)>,
}

impl Part {
    fn of(c: &ChunkRef) -> Self {
        let data = c.pack.and_then(|at| {
            let shape = shard_store::PackShape {
                k: c.k,
                n: c.n,
                share_len: c.share_len,
            };
            let pieces = shape
                .pieces(
                    u64::from(at.offset),
                    u64::from(c.len) + shard_proto::BLOB_OVERHEAD,
                )
                .ok()?;
            Some((pieces.first()?.index, pieces.last()?.index))
        });
        Self {
            key: (c.encoding(), c.k, c.n),
            data,
        }
    }

    /// The chunk's health: its encoding's, except that a blob of a pack with fewer than `k`
    /// shares left still restores when the data shares it lies in are good (the code is
    /// systematic): degraded then, not lost (unknown if some of them were not read).
    fn state(&self, c: &ChunkState) -> ChunkHealth {
        let state = c.state();
        let Some((first, last)) = self.data else {
            return state;
        };
        if state != ChunkHealth::Lost {
            return state;
        }
        let seen: Vec<Seen> = (first..=last)
            .map(|i| {
                c.shares
                    .get(usize::from(i))
                    .map_or(Seen::Missing, |s| s.seen)
            })
            .collect();
        if seen.iter().all(|s| *s == Seen::Good) {
            ChunkHealth::Degraded
        } else if seen.iter().all(|s| matches!(s, Seen::Good | Seen::Unknown)) {
            ChunkHealth::Unknown
        } else {
            ChunkHealth::Lost
        }
    }
}

/// What a survey found. The files themselves are not kept (a vault may have millions): what
/// is said of each is worked out by a second pass over the catalog ([`for_each_selected`]).
struct Survey {
    chunks: HashMap<EncKey, ChunkState>,
    /// Per node: (shares asked, missing, bad, error if it could not be asked).
    nodes: HashMap<NodeId, (u64, u64, u64, Option<String>)>,
    /// Shares read, of which bad, and of which not given by a node that said it holds them.
    read: (u64, u64, u64),
}

fn selected(entry: &FileEntry, names: &[Vec<u8>]) -> bool {
    names.is_empty()
        || names.iter().any(|n| {
            entry.meta.name == *n
                || (entry.meta.name.starts_with(n) && entry.meta.name.get(n.len()) == Some(&b'/'))
        })
}

/// Manifests read from the catalog at a time by [`for_each_selected`].
const MANIFEST_PAGE: usize = 512;

/// Files a report lists at most in each state (worst first, then by name): their counts are
/// always whole, but a vault of 10⁶ files has no use for — and a node no room for — a report
/// line per file. `check NAME` narrows it.
pub const LISTED_PER_STATE: usize = 10_000;

/// Which file versions a survey looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The visible ones: what `check` reports on.
    Visible,
    /// Those and the ones in the trash: what `repair` (and unpairing, which repairs) keeps
    /// whole, since the trash promises they can be restored.
    WithTrash,
}

/// Calls `each` with every selected regular file version (in `scope`) and its chunk list, a
/// page of the catalog at a time in the catalog's order: nothing per file is kept.
fn for_each_selected(
    vault: &shard_store::VaultCatalog<'_>,
    names: &[Vec<u8>],
    scope: Scope,
    mut each: impl FnMut(FileEntry, shard_proto::Manifest),
) -> shard_store::Result<()> {
    let mut page: Vec<FileEntry> = Vec::with_capacity(MANIFEST_PAGE);
    let mut run = |page: &mut Vec<FileEntry>| -> shard_store::Result<()> {
        let ids: Vec<_> = page.iter().map(|e| e.id).collect();
        for (entry, manifest) in page.drain(..).zip(vault.manifests(&ids)?) {
            each(entry, manifest);
        }
        Ok(())
    };
    let mut offer = |e: FileEntry| {
        if e.meta.kind == FileKind::File && selected(&e, names) {
            page.push(e);
            if page.len() == MANIFEST_PAGE {
                run(&mut page)?;
            }
        }
        Ok(())
    };
    vault.for_each_entry(&mut offer)?;
    if scope == Scope::WithTrash {
        vault.for_each_trashed(|t| offer(t.entry))?;
    }
    run(&mut page)
}

/// The first `cap` values by key, and how many more there were.
struct Capped<K, V> {
    kept: std::collections::BTreeMap<K, V>,
    cap: usize,
    left_out: usize,
}

impl<K: Ord, V> Capped<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            kept: std::collections::BTreeMap::new(),
            cap,
            left_out: 0,
        }
    }

    /// Keeps `value` if its key is among the first `cap`; `value` is made only then.
    fn offer(&mut self, key: K, value: impl FnOnce() -> V) {
        if self.kept.len() >= self.cap {
            self.left_out += 1;
            match self.kept.last_key_value() {
                Some((last, _)) if key < *last => {
                    self.kept.pop_last();
                }
                _ => return,
            }
        }
        self.kept.insert(key, value());
    }
}

/// Whether to read share `id` back, for a sample of `fraction` (stable within one run).
fn sampled(salt: &[u8; 16], id: &ShareId, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let mut input = salt.to_vec();
    input.extend_from_slice(&id.0);
    let digest = shard_crypto::sha256(&input);
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    #[allow(clippy::cast_precision_loss)]
    let point = u64::from_le_bytes(first) as f64 / u64::MAX as f64;
    point < fraction
}

/// Looks at every share of the selected files: `have` from every reachable node (batched),
/// quarantine lists, and with `read_fraction > 0` the bytes of a sample. Shares on `lost`
/// nodes, and on nodes no longer paired, count as missing. The catalog learns what was seen.
async fn survey(
    node: &Arc<Node>,
    session: &Arc<Session>,
    names: &[Vec<u8>],
    scope: Scope,
    read_fraction: f64,
    lost: &HashSet<NodeId>,
    job: Option<&Job>,
) -> Result<Survey> {
    let t0 = Instant::now();
    // The catalog side, off the async threads: files, manifests, share records.
    let (files, mut chunks) = {
        let (node, session, names) = (node.clone(), session.clone(), names.to_vec());
        tokio::task::spawn_blocking(move || -> Result<_> {
            let vault = node.catalog().vault(session.account, &session.keys);
            let mut files = 0u64;
            let mut chunks: HashMap<EncKey, ChunkState> = HashMap::new();
            // Each chunk list is folded into the chunk table as it is read.
            for_each_selected(&vault, &names, scope, |_, manifest| {
                files += 1;
                for chunk in manifest.chunks {
                    let key = (chunk.encoding(), chunk.k, chunk.n);
                    if chunks.contains_key(&key) {
                        continue;
                    }
                    // A blob stands for its pack: the encoding checked and repaired.
                    let chunk = chunk.pack_ref().map_or(chunk, |p| p.as_chunk_ref());
                    let shares = (0u8..)
                        .zip(&chunk.shares)
                        .map(|(index, id)| Slot {
                            id: *id,
                            index,
                            record: None,
                            seen: Seen::Missing,
                        })
                        .collect();
                    chunks.insert(key, ChunkState { chunk, shares });
                }
            })?;
            // Every share record, one row at a time, straight into its slot: only a record of
            // this very share, for this chunk, encoding and index.
            vault.for_each_share(|r| {
                let Some(slot) = chunks
                    .get_mut(&(r.chunk, r.k, r.n))
                    .and_then(|c| c.shares.get_mut(usize::from(r.index)))
                    .filter(|slot| slot.id == r.id)
                else {
                    return;
                };
                slot.record = Some(r);
                slot.seen = Seen::Unknown;
            })?;
            Ok((files, chunks))
        })
        .await
        .map_err(|e| Error::task(&e))??
    };
    tracing::debug!("survey: catalog read in {:?}", t0.elapsed());
    let me = node.node_id();
    let paired: HashSet<NodeId> = node.peer_names().into_iter().map(|(id, _)| id).collect();
    // Shares read wrong before (few): a node still offering one does not make it good.
    let previously_bad: HashSet<ShareId> = chunks
        .values()
        .flat_map(|c| c.shares.iter().filter_map(|s| s.record.as_ref()))
        .filter(|r| r.state == ShareState::Bad)
        .map(|r| r.id)
        .collect();

    // Who holds what.
    let mut by_node: HashMap<NodeId, Vec<ShareId>> = HashMap::new();
    for c in chunks.values_mut() {
        for slot in &mut c.shares {
            let Some(peer) = slot.holder() else { continue };
            if lost.contains(&peer) || (peer != me && !paired.contains(&peer)) {
                slot.seen = Seen::Missing;
            } else {
                by_node.entry(peer).or_default().push(slot.id);
            }
        }
    }
    if let Some(job) = job {
        Progress::add(&job.progress.files_total, files);
    }
    let vault = session.vault();
    let timeout = node.options().request_timeout;
    let targets: HashMap<NodeId, Target> =
        node.targets().into_iter().map(|t| (t.node(), t)).collect();
    let mut result: HashMap<ShareId, Seen> = HashMap::new();
    let mut nodes = HashMap::new();
    // Every node at once: each answers from its own disk.
    let mut asking = JoinSet::new();
    for (holder, ids) in &by_node {
        let Some(target) = targets.get(holder).cloned() else {
            nodes.insert(
                *holder,
                (ids.len() as u64, 0, 0, Some("offline".to_string())),
            );
            continue;
        };
        let (holder, ids) = (*holder, ids.clone());
        asking.spawn(async move {
            let have = target.have(vault, &ids, timeout).await;
            let quarantined = target.quarantined(vault, timeout).await.unwrap_or_default();
            (holder, ids, have, quarantined)
        });
    }
    while let Some(answer) = asking.join_next().await {
        let Ok((holder, ids, have, quarantined)) = answer else {
            continue;
        };
        let holder = &holder;
        match have {
            Ok(have) => {
                let quarantined: HashSet<ShareId> = quarantined.into_iter().collect();
                let mut missing = 0;
                let mut still_bad = 0;
                for (id, has) in ids.iter().zip(have) {
                    let seen = if has && !previously_bad.contains(id) {
                        Seen::Good
                    } else if has {
                        // Read wrong before, and the node still offers it: it stays bad.
                        still_bad += 1;
                        Seen::Bad
                    } else {
                        missing += 1;
                        Seen::Missing
                    };
                    result.insert(*id, seen);
                }
                let bad = quarantined
                    .iter()
                    .filter(|id| result.get(id).is_some_and(|s| *s != Seen::Bad))
                    .count()
                    + still_bad;
                nodes.insert(*holder, (ids.len() as u64, missing, bad as u64, None));
            }
            Err(e) => {
                nodes.insert(*holder, (ids.len() as u64, 0, 0, Some(e.to_string())));
            }
        }
    }

    tracing::debug!("survey: nodes asked in {:?}", t0.elapsed());
    // The bytes of a sample.
    let mut read = (0u64, 0u64, 0u64);
    let mut unreadable: HashMap<NodeId, (u64, String)> = HashMap::new();
    if read_fraction > 0.0 {
        let mut salt = [0u8; 16];
        shard_crypto::fill_random(&mut salt)?;
        let sample: Vec<(NodeId, ShareId)> = by_node
            .iter()
            .flat_map(|(holder, ids)| ids.iter().map(move |id| (*holder, *id)))
            .filter(|(_, id)| {
                result.get(id) == Some(&Seen::Good) && sampled(&salt, id, read_fraction)
            })
            .collect();
        let limit = Arc::new(Semaphore::new(READ_PARALLEL));
        let mut set = JoinSet::new();
        for (holder, id) in sample {
            let Some(target) = targets.get(&holder).cloned() else {
                continue;
            };
            let limit = limit.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (holder, id, target.get(vault, id, timeout).await)
            });
        }
        while let Some(done) = set.join_next().await {
            let Ok((holder, id, outcome)) = done else {
                continue;
            };
            read.0 += 1;
            let seen = match outcome {
                Ok(Some(share)) => {
                    if let Some(job) = job {
                        Progress::add(&job.progress.bytes_done, share.payload().len() as u64);
                    }
                    Seen::Good
                }
                Ok(None) => Seen::Missing,
                Err(Error::Store(shard_store::Error::Corrupt { .. })) => Seen::Bad,
                Err(e) if e.remote_code() == Some(shard_proto::ErrorCode::Corrupt) => Seen::Bad,
                // The node answered, and not with the share it had just said it holds.
                Err(e) if e.remote_code().is_some() => {
                    tracing::warn!("reading share {id} back failed: {e}");
                    let entry = unreadable.entry(holder).or_insert((0, e.to_string()));
                    entry.0 += 1;
                    Seen::Unknown
                }
                // No answer (a timeout, a dropped connection): nothing is known.
                Err(e) => {
                    tracing::warn!("reading share {id} back failed: {e}");
                    Seen::Unknown
                }
            };
            if seen == Seen::Bad {
                read.1 += 1;
                if let Some(n) = nodes.get_mut(&holder) {
                    n.2 += 1;
                }
            }
            result.insert(id, seen);
        }
    }

    // Record what was seen.
    let mut updates = Vec::new();
    for c in chunks.values_mut() {
        for slot in &mut c.shares {
            let Some(record) = &slot.record else { continue };
            if let Some(s) = result.get(&slot.id) {
                slot.seen = *s;
            }
            let state = match slot.seen {
                Seen::Good => ShareState::Acked,
                Seen::Missing => ShareState::Missing,
                Seen::Bad => ShareState::Bad,
                Seen::Unknown => continue,
            };
            if state != record.state {
                updates.push((record.id, state));
            }
        }
    }
    if !updates.is_empty() {
        let (node, session) = (node.clone(), session.clone());
        tokio::task::spawn_blocking(move || {
            node.catalog()
                .vault(session.account, &session.keys)
                .set_share_states(&updates)
        })
        .await
        .map_err(|e| Error::task(&e))??;
    }
    // A node that said it holds shares and then did not give them: named, and counted.
    read.2 = unreadable.values().map(|(n, _)| n).sum();
    for (holder, (count, error)) in unreadable {
        if let Some(n) = nodes.get_mut(&holder) {
            n.3.get_or_insert(format!(
                "said it holds {count} shares that it then did not give when read: {error}"
            ));
        }
    }
    Ok(Survey {
        chunks,
        nodes,
        read,
    })
}

fn node_name(node: &Node, id: &NodeId) -> String {
    if *id == node.node_id() {
        return "this node".into();
    }
    node.peer_names()
        .into_iter()
        .find(|(p, _)| p == id)
        .map(|(_, name)| name)
        .unwrap_or_else(|| {
            format!(
                "removed node {}",
                shard_net::identity::short_fingerprint(id)
            )
        })
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// `shard check`: the state of every selected file, worst chunk first.
pub async fn check(
    node: Arc<Node>,
    session: Arc<Session>,
    names: Vec<Vec<u8>>,
    read_fraction: f64,
    job: Arc<Job>,
) -> Result<CheckReport> {
    let started = Instant::now();
    let survey = survey(
        &node,
        &session,
        &names,
        Scope::Visible,
        read_fraction,
        &HashSet::new(),
        Some(&job),
    )
    .await?;
    let Survey {
        chunks,
        nodes,
        read,
    } = survey;
    let chunk_count = chunks.len();
    let share_count = chunks.values().map(|c| c.shares.len()).sum();
    // Shares manifests list that no node ever acknowledged (counted missing).
    let unrecorded = chunks
        .values()
        .flat_map(|c| &c.shares)
        .filter(|s| s.record.is_none())
        .count();
    // Each file's state from a second pass over the catalog: counted, and listed up to
    // [`LISTED_PER_STATE`] a state.
    let (totals, listed) = {
        let (node, session, job) = (node.clone(), session.clone(), job.clone());
        tokio::task::spawn_blocking(move || -> Result<_> {
            let vault = node.catalog().vault(session.account, &session.keys);
            let mut totals: HashMap<ChunkHealth, usize> = HashMap::new();
            let mut listed: HashMap<ChunkHealth, Capped<(Vec<u8>, u32), FileHealth>> =
                HashMap::new();
            for_each_selected(&vault, &names, Scope::Visible, |entry, manifest| {
                let mut worst: Option<(ChunkHealth, &ChunkState)> = None;
                // A chunk the survey did not see: stored (or moved by a prune) since the
                // survey's pass. Its file is not known healthy.
                let mut unseen = false;
                for part in manifest.chunks.iter().map(Part::of) {
                    let Some(c) = chunks.get(&part.key) else {
                        unseen = true;
                        continue;
                    };
                    let state = part.state(c);
                    if worst.is_none_or(|(ws, w)| (state, -c.margin()) > (ws, -w.margin())) {
                        worst = Some((state, c));
                    }
                }
                let mut state = worst.map_or(ChunkHealth::Healthy, |(s, _)| s);
                if unseen && state == ChunkHealth::Healthy {
                    state = ChunkHealth::Unknown;
                }
                let worst = worst.map(|(_, c)| c);
                *totals.entry(state).or_default() += 1;
                Progress::add(&job.progress.files_done, 1);
                let line = || FileHealth {
                    name: lossy(&entry.meta.name),
                    name_hex: hex::encode(&entry.meta.name),
                    version: entry.version,
                    size: entry.meta.size,
                    state,
                    chunks: manifest.chunks.len(),
                    worst_chunk: worst.map(|c| WorstChunk {
                        k: c.chunk.k,
                        n: c.chunk.n,
                        good: c.count(Seen::Good),
                        missing: c.count(Seen::Missing),
                        bad: c.count(Seen::Bad),
                        unknown: c.count(Seen::Unknown),
                        // More shares of the worst chunk that may be lost before the file is.
                        survives_losses: c.margin().max(-1),
                    }),
                };
                listed
                    .entry(state)
                    .or_insert_with(|| Capped::new(LISTED_PER_STATE))
                    .offer((entry.meta.name.clone(), entry.version), line);
            })?;
            Ok((totals, listed))
        })
        .await
        .map_err(|e| Error::task(&e))??
    };
    // Worst first, then by name and version.
    let mut states: Vec<_> = listed.into_iter().collect();
    states.sort_by_key(|(state, _)| std::cmp::Reverse(*state));
    let mut files = Vec::new();
    let mut files_not_listed = 0;
    for (_, capped) in states {
        files_not_listed += capped.left_out;
        files.extend(capped.kept.into_values());
    }
    let mut peers: Vec<NodeCheck> = nodes
        .iter()
        .map(|(id, (asked, missing, bad, error))| NodeCheck {
            node: node_name(&node, id),
            id: shard_net::identity::fingerprint(id),
            shares: *asked,
            missing: *missing,
            bad: *bad,
            state: if error.is_some() {
                NodeCheckState::Unknown
            } else {
                NodeCheckState::Checked
            },
            error: error.clone(),
        })
        .collect();
    peers.sort_by(|a, b| a.node.cmp(&b.node));
    let count = |s: ChunkHealth| totals.get(&s).copied().unwrap_or(0);
    // Shares of removed files that peers still keep through their grace period.
    let (in_grace, oldest) = node.catalog().deletions_in_grace(session.account)?;
    // A catalog head that did not reach the peers: a new machine would recover an older one.
    let snapshot_failure = node.snapshot_failure(session.account);
    let ok = count(ChunkHealth::Degraded) == 0
        && count(ChunkHealth::Lost) == 0
        && read.2 == 0
        && snapshot_failure.is_none();
    Ok(CheckReport {
        catalog_snapshot_failure: snapshot_failure,
        deleted_in_grace: DeletedInGrace {
            shares: in_grace,
            oldest_deleted_at: oldest,
            grace_days: node.store_config().deleted_grace_days,
        },
        files,
        files_not_listed,
        healthy: count(ChunkHealth::Healthy),
        degraded: count(ChunkHealth::Degraded),
        lost: count(ChunkHealth::Lost),
        unknown: count(ChunkHealth::Unknown),
        chunks: chunk_count,
        shares: share_count,
        unrecorded,
        nodes: peers,
        read: ReadSummary {
            shares: read.0,
            bad: read.1,
            unreadable: read.2,
            fraction: read_fraction,
        },
        ok,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// What one chunk's repair did.
enum Outcome {
    Repaired { shares: u64, bytes: u64 },
    NoRoom(String),
    Failed(String),
}

/// `shard repair`: rebuilds the missing and bad shares of the selected files (shares on
/// `lost` nodes count as missing); returns what it did.
pub async fn repair(
    node: Arc<Node>,
    session: Arc<Session>,
    names: Vec<Vec<u8>>,
    lost: HashSet<NodeId>,
    job: Arc<Job>,
) -> Result<RepairReport> {
    let started = Instant::now();
    let _writer = session.writer.lock().await;
    let survey = survey(
        &node,
        &session,
        &names,
        Scope::WithTrash,
        0.0,
        &lost,
        Some(&job),
    )
    .await?;
    // A file is lost when one of its chunks cannot be read: its encoding has fewer than `k`
    // good shares and (for a blob) the data shares it lies in are not all good. Found by a
    // second pass over the catalog when some encoding is short (the first
    // [`LISTED_PER_STATE`] by name).
    let short = survey.chunks.values().any(|c| {
        c.count(Seen::Missing) + c.count(Seen::Bad) > 0
            && c.count(Seen::Good) < usize::from(c.chunk.k)
    });
    let (lost_files, lost_not_listed, chunks) = if short {
        let (node, session, names) = (node.clone(), session.clone(), names.clone());
        let chunks = survey.chunks;
        tokio::task::spawn_blocking(move || -> Result<_> {
            let vault = node.catalog().vault(session.account, &session.keys);
            let mut lost = Capped::new(LISTED_PER_STATE);
            for_each_selected(&vault, &names, Scope::WithTrash, |entry, manifest| {
                let is_lost = manifest.chunks.iter().map(Part::of).any(|p| {
                    chunks.get(&p.key).is_some_and(|c| {
                        // Shares merely unknown (their nodes offline) lose nothing.
                        c.count(Seen::Missing) + c.count(Seen::Bad) > 0
                            && c.count(Seen::Good) < usize::from(c.chunk.k)
                            && p.state(c) != ChunkHealth::Degraded
                    })
                });
                if is_lost {
                    lost.offer((entry.meta.name.clone(), entry.version), || {
                        lossy(&entry.meta.name)
                    });
                }
            })?;
            let left_out = lost.left_out;
            Ok((
                lost.kept.into_values().collect::<Vec<String>>(),
                left_out,
                chunks,
            ))
        })
        .await
        .map_err(|e| Error::task(&e))??
    } else {
        (Vec::new(), 0, survey.chunks)
    };
    // Encodings that cannot be rebuilt (fewer than `k` good shares).
    let mut lost_chunks = HashSet::new();
    let mut work = Vec::new();
    for c in chunks.into_values() {
        let broken = c.count(Seen::Missing) + c.count(Seen::Bad);
        if broken == 0 {
            continue;
        }
        if c.count(Seen::Good) < usize::from(c.chunk.k) {
            lost_chunks.insert((c.chunk.id, c.chunk.k, c.chunk.n));
            continue;
        }
        Progress::add(
            &job.progress.bytes_total,
            u64::from(c.chunk.share_len) * broken as u64,
        );
        work.push(c);
    }
    let degraded = work.len();

    let ctx = Arc::new(RepairCtx::new(&node, &session, lost));
    let limit = Arc::new(Semaphore::new(REPAIR_PARALLEL));
    let mut set = JoinSet::new();
    for c in work {
        let (ctx, limit, job) = (ctx.clone(), limit.clone(), job.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let outcome = ctx.repair_chunk(c).await;
            if let Outcome::Repaired { bytes, .. } = &outcome {
                Progress::add(&job.progress.bytes_done, *bytes);
            }
            outcome
        });
    }
    let (mut repaired, mut shares, mut bytes) = (0u64, 0u64, 0u64);
    let mut waiting = Vec::new();
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Outcome::Repaired {
                shares: s,
                bytes: b,
            }) => {
                repaired += 1;
                shares += s;
                bytes += b;
            }
            Ok(Outcome::NoRoom(why)) => waiting.push(why),
            Ok(Outcome::Failed(why)) => failures.push(why),
            Err(e) => failures.push(format!("repair task failed: {e}")),
        }
    }
    waiting.dedup();
    failures.truncate(20);
    let secs = started.elapsed().as_secs_f64();
    if repaired > 0 {
        tracing::info!(
            "repaired {repaired} chunks: {shares} shares rebuilt ({bytes} bytes) in {secs:.1} s"
        );
    }
    Ok(RepairReport {
        chunks_degraded: degraded,
        chunks_repaired: repaired,
        shares_rebuilt: shares,
        bytes_rebuilt: bytes,
        chunks_lost: lost_chunks.len(),
        files_lost: lost_files,
        files_lost_not_listed: lost_not_listed,
        chunks_waiting_for_room: waiting.len(),
        waiting: waiting.first().cloned(),
        failures,
        full_nodes: crate::put::names_of(&node, &ctx.nodes.full()),
        ok: usize::try_from(repaired).is_ok_and(|r| r == degraded) && lost_chunks.is_empty(),
        elapsed_secs: secs,
        catalog_snapshot_failure: None,
    })
}

/// Where a repair can fetch from and place to.
struct RepairCtx {
    node: Arc<Node>,
    session: Arc<Session>,
    /// Every node reachable now, the lost ones included (shares are fetched from, and old
    /// copies deleted on, whichever answers).
    targets: HashMap<NodeId, Target>,
    /// Where rebuilt shares can go: the reachable nodes less the lost ones.
    nodes: Nodes,
    lost: HashSet<NodeId>,
    /// The vault, and how its shares are asked for.
    asking: Asking,
}

impl RepairCtx {
    fn new(node: &Arc<Node>, session: &Arc<Session>, lost: HashSet<NodeId>) -> Self {
        let targets: HashMap<NodeId, Target> =
            node.targets().into_iter().map(|t| (t.node(), t)).collect();
        Self {
            node: node.clone(),
            session: session.clone(),
            targets,
            nodes: Nodes::gather(node, session.vault(), &lost),
            lost,
            asking: Asking::new(node, session.vault()),
        }
    }

    /// `k` verified shares of the chunk, data shares first, and the ids of shares whose
    /// holder served other bytes on the way (they are rebuilt too).
    async fn fetch(&self, c: &ChunkState) -> (Vec<Share>, HashSet<ShareId>) {
        let holders = c
            .shares
            .iter()
            .filter(|slot| slot.seen == Seen::Good)
            .filter_map(|slot| {
                let target = slot.holder().and_then(|p| self.targets.get(&p))?;
                Some(Holder {
                    id: slot.id,
                    index: slot.index,
                    target: target.clone(),
                    // This node first; peers alike.
                    rank: usize::from(target.node() != self.node.node_id()),
                })
            })
            .collect();
        let fetched = crate::swarm::fetch(&c.chunk, holders, self.asking).await;
        (fetched.good, fetched.bad)
    }

    async fn repair_chunk(&self, c: ChunkState) -> Outcome {
        let id = c.chunk.id;
        let (sources, served_bad) = self.fetch(&c).await;
        if sources.len() < usize::from(c.chunk.k) {
            return Outcome::Failed(format!(
                "chunk {id}: only {} of the {} good shares needed could be read",
                sources.len(),
                c.chunk.k
            ));
        }
        let mut c = c;
        for slot in &mut c.shares {
            if served_bad.contains(&slot.id) {
                slot.seen = Seen::Bad;
            }
        }
        let broken: Vec<Slot> = c
            .shares
            .iter()
            .filter(|s| matches!(s.seen, Seen::Missing | Seen::Bad))
            .cloned()
            .collect();
        let wanted: Vec<u8> = broken.iter().map(|s| s.index).collect();
        let (chunk, keys) = (c.chunk.clone(), self.session.keys.clone());
        let rebuilt = tokio::task::spawn_blocking(move || {
            ChunkDecoder::new(keys).rebuild(&chunk, &sources, &wanted)
        })
        .await;
        let rebuilt = match rebuilt {
            Ok(Ok(shares)) => shares,
            Ok(Err(e)) => return Outcome::Failed(format!("chunk {id}: {e}")),
            Err(e) => return Outcome::Failed(format!("chunk {id}: {e}")),
        };
        // Nodes holding a good (or possibly good) share of the chunk get no second one; nodes
        // that served bad bytes come last.
        let exclude: Vec<NodeId> = c
            .shares
            .iter()
            .filter(|s| matches!(s.seen, Seen::Good | Seen::Unknown))
            .filter_map(Slot::holder)
            .collect();
        let bad_holders: Vec<NodeId> = broken
            .iter()
            .filter(|s| s.seen == Seen::Bad)
            .filter_map(Slot::holder)
            .collect();
        let by_index: HashMap<u8, &Slot> = broken.iter().map(|s| (s.index, s)).collect();
        let rebuilt: Vec<(u8, Share)> = broken.iter().map(|s| s.index).zip(rebuilt).collect();
        // The report counts payload bytes, as it always has.
        let payload: HashMap<u8, u64> = rebuilt
            .iter()
            .map(|(i, s)| (*i, s.payload().len() as u64))
            .collect();
        let placing = self.nodes.place(rebuilt, &exclude, &bad_holders).await;
        let (mut shares, mut bytes) = (0u64, 0u64);
        let mut acks = Vec::new();
        for placed in placing.placed {
            let Some(slot) = by_index.get(&placed.index) else {
                continue;
            };
            shares += 1;
            bytes += payload.get(&placed.index).copied().unwrap_or(0);
            acks.push(AckedShare {
                chunk: c.chunk.id,
                k: c.chunk.k,
                n: c.chunk.n,
                share_len: c.chunk.share_len,
                index: slot.index,
                share: slot.id,
                peer: placed.node,
            });
            if let Some(record) = &slot.record
                && record.peer != placed.node
            {
                self.forget_old_copy(record).await;
            }
        }
        let placed = acks.len();
        if !acks.is_empty() {
            crate::crash_point!("repair:placed");
            let (node, session) = (self.node.clone(), self.session.clone());
            let recorded = tokio::task::spawn_blocking(move || {
                node.catalog()
                    .vault(session.account, &session.keys)
                    .record_acks(&acks)
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                return Outcome::Failed(format!(
                    "chunk {id}: the catalog could not record the repair"
                ));
            }
            crate::crash_point!("repair:recorded");
        }
        if placed < broken.len() {
            return Outcome::NoRoom(format!(
                "{} of the chunk's {} shares need a node that holds none of its shares; start or pair more nodes",
                broken.len() - placed,
                c.chunk.n
            ));
        }
        Outcome::Repaired { shares, bytes }
    }

    /// The share's old copy: deleted where it is reachable, otherwise queued for deletion.
    async fn forget_old_copy(&self, record: &ShareRecord) {
        let deleted = match self.targets.get(&record.peer) {
            Some(t) if !self.lost.contains(&record.peer) => t
                .delete(
                    self.asking.vault,
                    vec![record.id],
                    false,
                    self.session.keys.authority(),
                    self.asking.timeout,
                )
                .await
                .is_ok(),
            _ => false,
        };
        if !deleted {
            let (node, session, pair) = (
                self.node.clone(),
                self.session.clone(),
                (record.peer, record.id),
            );
            let vault = self.asking.vault;
            let _ = tokio::task::spawn_blocking(move || {
                node.catalog()
                    .vault(session.account, &session.keys)
                    .queue_deletions(&vault, &[pair])
            })
            .await;
        }
    }
}

/// Sleeps `wait`; false if the node is stopping meanwhile.
async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, wait: Duration) -> bool {
    let slept = tokio::select! {
        () = tokio::time::sleep(wait) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    slept && !*stop.borrow()
}

/// The peer-side scrub: re-reads every share this node keeps, at most at the configured rate,
/// so that corrupt ones are quarantined (and reported to their owners, who ask) before anyone
/// needs them. One pass, then a pause, again.
pub(crate) async fn scrub_loop(node: Arc<Node>) {
    let mut stop = node.shutdown_signal();
    // Not right at start-up: let the node settle first.
    if !pause(&mut stop, Duration::from_secs(2)).await {
        return;
    }
    loop {
        let config = node.health_config();
        if config.scrub_kib_per_sec > 0 {
            let rate = config.scrub_kib_per_sec.saturating_mul(1024) as f64;
            let started = Instant::now();
            let (mut bytes, mut checked, mut corrupt) = (0u64, 0u64, 0u64);
            let mut cursor = None;
            'pass: loop {
                let store = node.store().clone();
                let after = cursor;
                let page =
                    tokio::task::spawn_blocking(move || store.walk(after.as_ref(), 64)).await;
                let page = match page {
                    Ok(Ok(page)) => page,
                    Ok(Err(e)) => {
                        tracing::warn!("scrub: cannot list the store: {e}");
                        break;
                    }
                    Err(_) => break,
                };
                let Some(last) = page.last().copied() else {
                    break;
                };
                for (ns, id) in page {
                    let store = node.store().clone();
                    let read = tokio::task::spawn_blocking(move || store.get(&ns, &id)).await;
                    checked += 1;
                    match read {
                        Ok(Ok(Some(share))) => bytes += share.encoded_len() as u64,
                        Ok(Err(shard_store::Error::Corrupt { .. })) => {
                            corrupt += 1;
                            tracing::warn!(
                                "scrub: share {id} is corrupt; quarantined, its owner will be told"
                            );
                        }
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => tracing::warn!("scrub: share {id}: {e}"),
                        Err(_) => break 'pass,
                    }
                    // Paced: the pass may not run ahead of `rate`.
                    #[allow(clippy::cast_precision_loss)]
                    let due = Duration::from_secs_f64(bytes as f64 / rate);
                    let ahead = due.saturating_sub(started.elapsed());
                    if !ahead.is_zero() && !pause(&mut stop, ahead).await {
                        return;
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
                cursor = Some(last);
            }
            if checked > 0 {
                tracing::info!(
                    "scrub pass: {checked} shares ({bytes} bytes) re-read in {:.1} s, {corrupt} corrupt",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if !pause(
            &mut stop,
            Duration::from_secs(config.scrub_every_secs.max(1)),
        )
        .await
        {
            return;
        }
    }
}

/// Whether `session`'s vault has shares to rebuild on its own: on peers gone longer than the
/// threshold (`lost`), on nodes no longer paired, or reported corrupt by a peer. (Shares a
/// `check` found missing wait for `shard repair`, which the check's output names.)
async fn needs_repair(
    node: &Arc<Node>,
    session: &Arc<Session>,
    lost: &HashSet<NodeId>,
) -> Result<bool> {
    let me = node.node_id();
    let paired: HashSet<NodeId> = node.peer_names().into_iter().map(|(id, _)| id).collect();
    let holders = {
        let (node, session) = (node.clone(), session.clone());
        tokio::task::spawn_blocking(move || {
            node.catalog()
                .vault(session.account, &session.keys)
                .holders()
        })
        .await
        .map_err(|e| Error::task(&e))??
    };
    let broken = holders.iter().any(|(peer, _, count)| {
        *count > 0 && (lost.contains(peer) || (*peer != me && !paired.contains(peer)))
    });
    if broken {
        return Ok(true);
    }
    let vault = session.vault();
    for target in node.targets() {
        let Ok(ids) = target
            .quarantined(vault, node.options().request_timeout)
            .await
        else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        let (n, s) = (node.clone(), session.clone());
        let known = tokio::task::spawn_blocking(move || {
            n.catalog().vault(s.account, &s.keys).known_shares(&ids)
        })
        .await
        .map_err(|e| Error::task(&e))??;
        if known > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The automatic repair: every `repair_check_secs` (and when a peer connects), for each
/// unlocked account, rebuilds shares that are missing, reported corrupt, or on peers gone
/// longer than `repair_after_secs`. Locked accounts wait for their next login. Before it,
/// the automatic compaction ([`crate::prune::automatic`]) of an account whose files were
/// removed since.
pub(crate) async fn repair_loop(node: Arc<Node>) {
    let mut stop = node.shutdown_signal();
    loop {
        let config = node.health_config();
        let wait = Duration::from_secs(config.repair_check_secs.max(1));
        let woken = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = node.health_woken() => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        // Woken by a connection: let it settle (pings, usage) before looking.
        if woken && !pause(&mut stop, Duration::from_secs(1)).await {
            return;
        }
        let lost: HashSet<NodeId> = node
            .gone_for(Duration::from_secs(config.repair_after_secs))
            .into_iter()
            .collect();
        for user in node.users() {
            let Ok(session) = node.session(Some(&user)) else {
                continue;
            };
            // A catalog snapshot that could not be written, or that a holder away or lost is
            // owed, is written again here — on a connection, most often the peer's return —
            // rather than only at the vault's next change.
            match node.settle_snapshot(&session, &lost).await {
                Some(Ok(seq)) => tracing::info!("catalog snapshot of {user} written again ({seq})"),
                Some(Err(e)) => tracing::warn!("catalog snapshot of {user} still not written: {e}"),
                None => {}
            }
            // Compaction first: what it frees need not be repaired.
            crate::prune::automatic(&node, &session).await;
            match needs_repair(&node, &session, &lost).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!("automatic repair of {user}: {e}");
                    continue;
                }
            }
            let job = node.jobs().create("repair");
            match repair(node.clone(), session.clone(), Vec::new(), lost.clone(), job).await {
                Ok(result) => {
                    tracing::info!(
                        "automatic repair of {user}: {} chunks repaired, {} shares rebuilt, {} chunks lost",
                        result.chunks_repaired,
                        result.shares_rebuilt,
                        result.chunks_lost
                    );
                    // The rebuilt shares' new holders get the head, and the snapshot says
                    // where the shares are now.
                    if result.shares_rebuilt > 0
                        && let Err(e) = node.write_snapshot(&session).await
                    {
                        tracing::warn!("catalog snapshot of {user} after the repair: {e}");
                    }
                }
                Err(e) => tracing::warn!("automatic repair of {user}: {e}"),
            }
        }
    }
}

/// Where a stored file's shares are, for the web UI's picture: each chunk, each of its `n`
/// shares with the node holding it and its state — present (acknowledged, node online),
/// offline (node not connected), missing (known lost or bad), pending (not acknowledged) —
/// from the catalog and the connections, without asking any peer.
pub fn picture(
    node: &Node,
    session: &Session,
    name: &[u8],
    version: Option<u32>,
) -> Result<Picture> {
    let vault = node.catalog().vault(session.account, &session.keys);
    let versions = vault.versions(name)?;
    let entry = match version {
        Some(v) => versions.into_iter().find(|e| e.version == v),
        None => versions.into_iter().max_by_key(|e| e.version),
    }
    .ok_or_else(|| Error::Store(shard_store::Error::NoSuchFile(lossy(name))))?;
    let me = node.node_id();
    let online: HashSet<NodeId> = node
        .online_clients()
        .iter()
        .map(|c| c.peer().id)
        .chain(std::iter::once(me))
        .collect();
    let names: HashMap<NodeId, String> = node.peer_names().into_iter().collect();
    let label = |id: &NodeId| {
        if *id == me {
            "this node".to_string()
        } else {
            names.get(id).cloned().unwrap_or_else(|| {
                format!(
                    "removed node {}",
                    shard_net::identity::short_fingerprint(id)
                )
            })
        }
    };
    let manifest = if entry.meta.kind == FileKind::File {
        vault.manifest(entry.id)?
    } else {
        shard_proto::Manifest {
            size: 0,
            chunks: Vec::new(),
        }
    };
    let mut holders: HashSet<NodeId> = HashSet::new();
    let mut chunks = Vec::new();
    for chunk in &manifest.chunks {
        // The shares this version lists, by id: another encoding's never stand in for them.
        let located = vault.locate(&chunk.shares)?;
        let shares: Vec<PictureShare> = (0u8..)
            .zip(&chunk.shares)
            .map(|(index, id)| {
                let Some(r) = located.get(id).filter(|r| r.index == index) else {
                    return PictureShare {
                        index,
                        node: None,
                        node_name: "no node".to_string(),
                        state: ShareView::Missing,
                    };
                };
                holders.insert(r.peer);
                let state = match r.state {
                    ShareState::Missing | ShareState::Bad => ShareView::Missing,
                    ShareState::Pending => ShareView::Pending,
                    ShareState::Acked if online.contains(&r.peer) => ShareView::Present,
                    ShareState::Acked => ShareView::Offline,
                };
                PictureShare {
                    index: r.index,
                    node: Some(shard_net::identity::short_fingerprint(&r.peer)),
                    node_name: label(&r.peer),
                    state,
                }
            })
            .collect();
        chunks.push(PictureChunk {
            id: hex::encode(chunk.id.0.get(..6).unwrap_or_default()),
            size: chunk.len,
            k: chunk.k,
            n: chunk.n,
            pack: chunk
                .pack
                .map(|at| hex::encode(at.pack.0.get(..6).unwrap_or_default())),
            shares,
        });
    }
    let mut nodes: Vec<PictureNode> = holders
        .iter()
        .map(|id| PictureNode {
            node: shard_net::identity::short_fingerprint(id),
            name: label(id),
            online: online.contains(id),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Picture {
        name: lossy(name),
        version: entry.version,
        size: entry.meta.size,
        kind: entry.meta.kind.into(),
        chunks,
        nodes,
    })
}

/// Unpairing, which moves a peer's shares first.
impl Node {
    /// Unpairs a peer. Unless `now`, first moves every share it holds for this node's
    /// accounts to other nodes (a repair that counts it as lost); accounts with shares there
    /// must be unlocked for that. With `now`, it is forgotten at once and the automatic
    /// repair rebuilds its shares later.
    pub async fn remove_peer(self: &Arc<Self>, id: NodeId, now: bool) -> Result<PeerRemoval> {
        let name = self
            .paired_name(&id)
            .ok_or_else(|| Error::UnknownPeer("that node is not paired with this one".into()))?;
        let mut moved = Vec::new();
        if !now {
            let holders = self.catalog().shares_on_peer(&id)?;
            let unlocked = self.users();
            if let Some((user, count)) = holders.iter().find(|(u, _)| !unlocked.contains(u)) {
                return Err(Error::NotLoggedIn(format!(
                    "account {user:?} has {count} shares on {name} and is locked: unlock it (`shard login {user}`) so they can be moved, or forget the peer at once with --now and let repair rebuild them"
                )));
            }
            for (user, _) in &holders {
                let session = self.session(Some(user))?;
                let job = self.jobs().create("repair");
                let lost = std::iter::once(id).collect();
                let result = repair(self.clone(), session, Vec::new(), lost, job).await?;
                if !result.ok {
                    return Err(Error::SharesNotMoved {
                        peer: name,
                        reason: result
                            .waiting
                            .as_deref()
                            .or_else(|| result.failures.first().map(String::as_str))
                            .unwrap_or("see the node's log")
                            .to_string(),
                    });
                }
                moved.push(SharesMoved {
                    user: user.clone(),
                    shares_moved: result.shares_rebuilt,
                    bytes_rebuilt: result.bytes_rebuilt,
                    repair_secs: result.elapsed_secs,
                });
            }
        }
        self.forget_peer(&id, &name)?;
        // Snapshots whose shares or head were on it are written anew over the others.
        for user in self.users() {
            if let Ok(session) = self.session(Some(&user)) {
                self.catalog_changed(&session);
            }
        }
        Ok(PeerRemoval {
            removed: name,
            id: shard_net::identity::fingerprint(&id),
            moved,
            now,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Capped;

    /// A report keeps the first names of a state whatever order the catalog gives them in,
    /// makes only the lines it keeps, and counts the rest.
    #[test]
    fn a_capped_listing_keeps_the_first_keys_in_any_order() {
        let mut made = 0;
        let mut capped = Capped::new(3);
        for key in [9, 4, 7, 1, 8, 3, 2, 6, 5] {
            capped.offer(key, || {
                made += 1;
                key * 10
            });
        }
        assert_eq!(
            capped.kept.into_iter().collect::<Vec<_>>(),
            [(1, 10), (2, 20), (3, 30)]
        );
        assert_eq!(capped.left_out, 6);
        assert!(made < 9, "a line is made only when it is kept: {made}");
        let mut all = Capped::new(10);
        for key in [2, 1] {
            all.offer(key, || key);
        }
        assert_eq!((all.kept.len(), all.left_out), (2, 0));
    }
}
