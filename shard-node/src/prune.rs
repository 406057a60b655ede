//! `prune`: compaction. Removing files leaves blobs no file uses inside packs that other
//! files still use. Prune copies the live blobs of every pack whose dead share reached a
//! threshold into new packs (same redundancy, freshly sealed, shuffled like a put's), points
//! the files at the copies once every share of every new pack is acknowledged, and only then
//! deletes the old packs' shares. It also removes packs no file uses: what a put or a prune
//! leaves when it is stopped after some packs were acknowledged.
//!
//! A crash loses nothing at any point: before the catalog switches (one transaction), the old
//! packs are whole and the new ones unused (the next prune removes them); after it, the old
//! packs' deletions are queued in the catalog and go out when their nodes are reachable.
//!
//! Memory does not grow with the vault: the count of live blobs is kept in the catalog's
//! blob rows, a round copies at most [`ROUND_BLOBS`] blobs (their new places are the only
//! per-blob state held), and packing holds what a put does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use shard_proto::{BlobAt, ChunkId, ChunkRef, PackId, PackRef};
use shard_store::{
    Blob, BlobPlace, EncodedChunk, EncodedPack, PackShape, PackUsage, Packing, Redundancy,
    ShareRecord, blob_in_pack,
};
use tokio::sync::mpsc;

use crate::jobs::{Job, Progress};
use crate::node::Node;
use crate::report::PruneReport;
use crate::session::Session;
use crate::swarm::Nodes;
use crate::{Error, Result};

/// Blobs copied in one round at most: bounds the map of new places a round holds (about
/// 300 bytes a blob) whatever the vault's size.
pub const ROUND_BLOBS: usize = 50_000;

/// The threshold `shard prune` uses unless told: packs with at least this percentage of dead
/// bytes are compacted (restic's default is 5 % unused too).
pub const DEFAULT_DEAD_PERCENT: u8 = 5;

/// Failures listed in a report at most.
const MAX_FAILURES: usize = 20;

/// What to prune.
#[derive(Debug, Clone, Copy)]
pub struct PruneRequest {
    /// Packs with at least this percentage of dead bytes are compacted (0: any dead byte).
    pub dead_percent: u8,
    /// Also remove packs no file uses. `shard prune` does; the automatic compaction does not,
    /// so that a put stopped and run again still finds the packs it had sent.
    pub unused: bool,
}

impl Default for PruneRequest {
    fn default() -> Self {
        Self {
            dead_percent: DEFAULT_DEAD_PERCENT,
            unused: true,
        }
    }
}

/// One round: packs of one encoding whose live blobs are copied together.
struct Round {
    redundancy: Redundancy,
    packs: Vec<PackUsage>,
}

/// What the packing thread of a round hands back: for each chunk copied, the old packs it
/// was live in (a chunk live in two old packs is copied once).
type Origins = HashMap<ChunkId, Vec<PackId>>;

/// Runs a prune of `session`'s vault; refused while another runs. The catalog snapshot is
/// written after each round that moved files, before the old packs' shares are deleted: a new
/// machine recovering from the peers finds every file where it is now.
pub async fn run(
    node: Arc<Node>,
    session: Arc<Session>,
    request: PruneRequest,
    job: Arc<Job>,
) -> Result<PruneReport> {
    let Ok(_pruning) = session.pruning.try_lock() else {
        return Err(Error::PruneRunning {
            user: session.user.clone(),
        });
    };
    let started = Instant::now();
    let _writer = session.writer.lock().await;
    session.compaction_due.store(false, Ordering::Relaxed);
    let mut report = PruneReport {
        dead_percent: request.dead_percent.min(100),
        ..PruneReport::default()
    };
    // Whether the catalog changed since the last snapshot written here.
    let mut unsnapshotted = false;

    // Packs nobody uses first: they need no copying, and what an interrupted prune left goes.
    // No snapshot names them (no file ever used them), so they can go at once.
    if request.unused {
        let (unused, freed) = blocking(&node, &session, |v, vault| v.drop_unused(vault)).await?;
        report.unused_packs_removed = unused;
        unsnapshotted |= unused > 0;
        delete(&node, &session, &freed, &mut report).await?;
    }

    let usage = blocking(&node, &session, |v, _| v.count_pack_usage()).await?;
    report.packs = usage.len() as u64;
    report.dead_bytes = usage.iter().map(PackUsage::dead_bytes).sum();
    let threshold = u64::from(report.dead_percent) * 100;
    let chosen: Vec<PackUsage> = usage
        .into_iter()
        .filter(|u| u.dead_bytes() > 0 && u.dead_basis_points() >= threshold)
        .collect();
    report.packs_to_compact = chosen.len() as u64;
    Progress::add(&job.progress.files_total, report.packs_to_compact);
    Progress::add(
        &job.progress.bytes_total,
        chosen.iter().map(|u| u.live_bytes).sum(),
    );

    for round in rounds(chosen, &mut report.failures) {
        if !node.is_current(&session) {
            note(
                &mut report.failures,
                format!("account {:?} was locked during the prune", session.user),
            );
            break;
        }
        let old: Vec<PackUsage> = round.packs.clone();
        let compacted = match compact(&node, &session, round, &job).await {
            Ok(compacted) => compacted,
            Err((why, written)) => {
                note(&mut report.failures, why);
                forget(&node, &session, written, &mut report).await?;
                continue;
            }
        };
        for failure in compacted.failures {
            note(&mut report.failures, failure);
        }
        crate::crash_point!("prune:packs-acked");
        let moves = Arc::new(compacted.moves);
        let m = moves.clone();
        let relocated = match blocking(&node, &session, move |v, vault| v.relocate(vault, &m)).await
        {
            Ok(relocated) => relocated,
            Err(e) => {
                note(&mut report.failures, format!("files not moved: {e}"));
                forget(&node, &session, compacted.written, &mut report).await?;
                continue;
            }
        };
        crate::crash_point!("prune:relocated");
        report.packs_written += compacted.written.len() as u64;
        report.blobs_moved += moves.len() as u64;
        report.bytes_moved += compacted.bytes;
        report.packs_compacted += relocated.packs_freed;
        let gone: HashSet<ChunkId> = relocated.freed.iter().map(|s| s.chunk).collect();
        report.bytes_freed += old
            .iter()
            .filter(|u| gone.contains(&ChunkId(u.pack.0)))
            .map(PackUsage::dead_bytes)
            .sum::<u64>();
        Progress::add(&job.progress.files_done, old.len() as u64);
        // The snapshot names the copies before the old packs' shares are deleted. If it
        // cannot be written, the prune stops here: the deletions stay queued in the catalog.
        unsnapshotted = false;
        if let Err(e) = node.write_snapshot_held(&session).await {
            report.catalog_snapshot_failure = Some(e.to_string());
            note(
                &mut report.failures,
                format!("the catalog snapshot could not be written ({e}); the prune stopped"),
            );
            break;
        }
        delete(&node, &session, &relocated.freed, &mut report).await?;
    }
    if unsnapshotted && let Err(e) = node.write_snapshot_held(&session).await {
        report.catalog_snapshot_failure = Some(e.to_string());
    }
    report.ok = report.failures.is_empty();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs `f` on the vault's catalog on a blocking thread (a count or a relocation reads every
/// manifest of the vault: it must not hold up the node's runtime).
async fn blocking<T: Send + 'static>(
    node: &Arc<Node>,
    session: &Arc<Session>,
    f: impl FnOnce(&shard_store::VaultCatalog<'_>, &[u8; 16]) -> shard_store::Result<T> + Send + 'static,
) -> Result<T> {
    let (n, s) = (node.clone(), session.clone());
    Ok(
        tokio::task::spawn_blocking(move || f(&n.catalog().vault(s.account, &s.keys), &s.vault()))
            .await
            .map_err(|e| Error::task(&e))??,
    )
}

/// Removes a failed round's own copies (no file points at them), and only them: packs a
/// stopped put left stay for it to find when it is run again.
async fn forget(
    node: &Arc<Node>,
    session: &Arc<Session>,
    written: Vec<(ChunkId, u8, u8)>,
    report: &mut PruneReport,
) -> Result<()> {
    if written.is_empty() {
        return Ok(());
    }
    let freed = blocking(node, session, move |v, vault| {
        v.drop_if_unused(vault, &written)
    })
    .await?;
    delete(node, session, &freed, report).await
}

fn note(failures: &mut Vec<String>, why: String) {
    if failures.len() < MAX_FAILURES {
        failures.push(why);
    }
}

/// Deletes freed shares on their nodes and counts them.
async fn delete(
    node: &Arc<Node>,
    session: &Arc<Session>,
    freed: &[ShareRecord],
    report: &mut PruneReport,
) -> Result<()> {
    if freed.is_empty() {
        return Ok(());
    }
    let (deleted, queued) = crate::deletion::delete_on_peers(node, session, freed, false).await?;
    report.shares_deleted += deleted;
    report.shares_queued_for_offline_peers += queued;
    Ok(())
}

/// The packs to compact, grouped by encoding and cut into rounds of at most [`ROUND_BLOBS`]
/// live blobs (a pack with more than that is a round of its own).
fn rounds(mut chosen: Vec<PackUsage>, failures: &mut Vec<String>) -> Vec<Round> {
    chosen.sort_by_key(|u| (u.k, u.n));
    let mut out: Vec<Round> = Vec::new();
    let mut blobs = 0usize;
    for usage in chosen {
        let redundancy = match Redundancy::new(usage.k, usage.n) {
            Ok(r) => r,
            Err(e) => {
                note(failures, format!("pack {}: {e}", short(&usage.pack)));
                continue;
            }
        };
        let live = usize::try_from(usage.live_blobs).unwrap_or(usize::MAX);
        match out.last_mut() {
            Some(round)
                if round.redundancy == redundancy && blobs.saturating_add(live) <= ROUND_BLOBS =>
            {
                blobs += live;
                round.packs.push(usage);
            }
            _ => {
                blobs = live;
                out.push(Round {
                    redundancy,
                    packs: vec![usage],
                });
            }
        }
    }
    out
}

fn short(pack: &PackId) -> String {
    ChunkId(pack.0).to_hex().chars().take(12).collect()
}

/// What a round's copying produced.
struct Compacted {
    /// (chunk, old pack) → its copy: for [`shard_store::VaultCatalog::relocate`].
    moves: HashMap<(ChunkId, PackId), ChunkRef>,
    /// The new packs, acknowledged and recorded (unused until the relocation).
    written: Vec<(ChunkId, u8, u8)>,
    /// Plaintext bytes copied.
    bytes: u64,
    /// Old packs that could not be read, left as they are.
    failures: Vec<String>,
}

/// A failed round: why, and the new packs already recorded (unused: the caller removes them).
type RoundFailure = (String, Vec<(ChunkId, u8, u8)>);

/// Copies the live blobs of a round's packs into new packs and places them. Nothing in the
/// catalog points at the new packs yet.
async fn compact(
    node: &Arc<Node>,
    session: &Arc<Session>,
    round: Round,
    job: &Arc<Job>,
) -> std::result::Result<Compacted, RoundFailure> {
    let n = round.redundancy.n();
    let nodes = Arc::new(Nodes::gather(node, session.vault(), &HashSet::new()));
    if nodes.online() < usize::from(n) {
        return Err((
            format!(
                "{} packs stored {}-of-{n} wait: only {} nodes are online",
                round.packs.len(),
                round.redundancy.k(),
                nodes.online()
            ),
            Vec::new(),
        ));
    }
    // One pack coded ahead of the one being placed: what a round holds besides the builder.
    let (tx, mut rx) = mpsc::channel::<EncodedPack>(1);
    let reader = crate::get::BlobReader::new(node, session, "a pack being compacted".into());
    let (n2, s2) = (node.clone(), session.clone());
    let packer = tokio::task::spawn_blocking(move || pack_round(&n2, &s2, &reader, &round, &tx));
    let mut written: Vec<EncodedPack> = Vec::new();
    let mut keys: Vec<(ChunkId, u8, u8)> = Vec::new();
    let mut failed = None;
    while let Some(encoded) = rx.recv().await {
        let chunk = EncodedChunk {
            chunk: encoded.pack.as_chunk_ref(),
            shares: encoded.shares,
        };
        let key = (ChunkId(encoded.pack.id.0), encoded.pack.k, encoded.pack.n);
        let sent = crate::swarm::send_chunk(nodes.clone(), chunk, HashMap::new())
            .await
            .map_err(|e| e.to_string());
        let recorded = sent.and_then(|(acks, _)| {
            let blobs: Vec<shard_store::PackedBlob> = encoded
                .blobs
                .iter()
                .map(|b| {
                    let at = BlobAt {
                        pack: encoded.pack.id,
                        offset: b.offset,
                    };
                    (b.chunk, at, b.len)
                })
                .collect();
            node.catalog()
                .vault(session.account, &session.keys)
                .record_acks_and_blobs(&acks, &blobs)
                .map_err(|e| e.to_string())
        });
        match recorded {
            Ok(()) => {
                keys.push(key);
                Progress::add(
                    &job.progress.bytes_done,
                    encoded.blobs.iter().map(BlobPlace::sealed_len).sum(),
                );
                written.push(EncodedPack {
                    pack: encoded.pack,
                    blobs: encoded.blobs,
                    shares: Vec::new(),
                });
            }
            Err(why) => {
                failed = Some(why);
                break;
            }
        }
    }
    drop(rx);
    let packed = packer
        .await
        .map_err(|e| format!("a task of the node failed: {e}"));
    if let Some(why) = failed {
        return Err((why, keys));
    }
    let (origins, failures) = match packed.and_then(|p| p) {
        Ok(packed) => packed,
        Err(why) => return Err((why, keys)),
    };
    let mut moves = HashMap::new();
    let mut bytes = 0u64;
    for pack in &written {
        for b in &pack.blobs {
            bytes += u64::from(b.len);
            let copy = ChunkRef {
                id: b.chunk,
                len: b.len,
                k: pack.pack.k,
                n: pack.pack.n,
                share_len: pack.pack.share_len,
                shares: pack.pack.shares.clone(),
                pack: Some(BlobAt {
                    pack: pack.pack.id,
                    offset: b.offset,
                }),
            };
            for old in origins.get(&b.chunk).map(Vec::as_slice).unwrap_or_default() {
                moves.insert((b.chunk, *old), copy.clone());
            }
        }
    }
    Ok(Compacted {
        moves,
        written: keys,
        bytes,
        failures,
    })
}

/// Reads each pack of a round whole (from `k` of its shares: a holder learns nothing of
/// which blobs are still used), seals each live blob again (a fresh nonce: the copy shares
/// no bytes with the old blob) and packs them; each pack closed is coded and sent to `tx`. A
/// pack that cannot be read is left as it is and named; the others go on.
fn pack_round(
    node: &Arc<Node>,
    session: &Arc<Session>,
    reader: &crate::get::BlobReader,
    round: &Round,
    tx: &mpsc::Sender<EncodedPack>,
) -> std::result::Result<(Origins, Vec<String>), String> {
    let vault = node.catalog().vault(session.account, &session.keys);
    let packing = Packing::new(round.redundancy).map_err(|e| e.to_string())?;
    let mut origins: Origins = HashMap::new();
    let mut failures = Vec::new();
    let send = |pack| -> std::result::Result<(), String> {
        let encoded = packing.code(pack).map_err(|e| e.to_string())?;
        tx.blocking_send(encoded)
            .map_err(|_| "the prune stopped".to_string())
    };
    for usage in &round.packs {
        let blobs = match read_pack(&vault, reader, &session.keys, usage) {
            Ok(blobs) => blobs,
            Err(why) => {
                note(&mut failures, format!("pack {}: {why}", short(&usage.pack)));
                continue;
            }
        };
        for (chunk, plain) in blobs {
            if let Some(olds) = origins.get_mut(&chunk) {
                olds.push(usage.pack);
                continue;
            }
            let blob = Blob::seal(&session.keys, &plain).map_err(|e| e.to_string())?;
            origins.insert(chunk, vec![usage.pack]);
            if let Some(pack) = packing.add(blob).map_err(|e| e.to_string())? {
                send(pack)?;
            }
        }
    }
    for pack in packing.close_open().map_err(|e| e.to_string())? {
        send(pack)?;
    }
    Ok((origins, failures))
}

/// The live blobs of one pack, opened (each authenticated, its chunk id checked).
fn read_pack(
    vault: &shard_store::VaultCatalog<'_>,
    reader: &crate::get::BlobReader,
    keys: &shard_crypto::VaultKeys,
    usage: &PackUsage,
) -> std::result::Result<Vec<(ChunkId, Vec<u8>)>, String> {
    let records = vault
        .encoding_shares(&ChunkId(usage.pack.0), usage.k, usage.n)
        .map_err(|e| e.to_string())?;
    let shares = (0..usage.n)
        .map(|i| records.iter().find(|r| r.index == i).map(|r| r.id))
        .collect::<Option<Vec<_>>>()
        .ok_or("the record of a share is missing; run `shard repair`")?;
    let pack = PackRef {
        id: usage.pack,
        k: usage.k,
        n: usage.n,
        share_len: usage.share_len,
        shares,
    };
    let live = vault.live_blobs(&usage.pack).map_err(|e| e.to_string())?;
    let bytes = reader.pack(&pack).map_err(|e| e.to_string())?;
    let shape = PackShape::of(&pack).map_err(|e| e.to_string())?;
    live.into_iter()
        .map(|l| {
            let place = BlobPlace {
                chunk: l.chunk,
                len: l.len,
                offset: l.at.offset,
            };
            blob_in_pack(keys, &shape, &place, &bytes)
                .map(|plain| (l.chunk, plain))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Runs a prune as the node's automatic compaction would: only when files were removed since
/// the last one, with the threshold of `[health] prune_dead_percent` (0: never), leaving packs
/// no file uses (a stopped put finds them when it is run again).
pub(crate) async fn automatic(node: &Arc<Node>, session: &Arc<Session>) {
    let percent = node.health_config().prune_dead_percent;
    if percent == 0 || !session.compaction_due.load(Ordering::Relaxed) {
        return;
    }
    let job = node.jobs().create("prune");
    let request = PruneRequest {
        dead_percent: percent,
        unused: false,
    };
    match run(node.clone(), session.clone(), request, job).await {
        Ok(report) => {
            if report.packs_compacted > 0 {
                tracing::info!(
                    "automatic compaction of {}: {} packs compacted into {}, {} bytes freed",
                    session.user,
                    report.packs_compacted,
                    report.packs_written,
                    report.bytes_freed
                );
            }
            for failure in &report.failures {
                tracing::warn!("automatic compaction of {}: {failure}", session.user);
            }
            if !report.ok {
                // Looked at again at the next check, not only after the next removal.
                session.compaction_due.store(true, Ordering::Relaxed);
            }
        }
        Err(Error::PruneRunning { .. }) => {}
        Err(e) => {
            tracing::warn!("automatic compaction of {}: {e}", session.user);
            session.compaction_due.store(true, Ordering::Relaxed);
        }
    }
}
