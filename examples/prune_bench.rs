//! A vault of many small files, recorded as a put of packs records them, then pruned on the
//! catalog's side: what `shard prune` costs in time and memory as the vault grows (the
//! copying of blobs is bounded per round and measured end to end elsewhere), and how many
//! bytes of catalog a stored small file takes.
//!
//! `prune_bench [FILES]` (default 1 000 000), in a temporary folder on the real disk: files of
//! 4 000 bytes, one blob each, 1 000 blobs per pack, 3-of-5. Prints files/s recorded, catalog
//! bytes per file, then removes every third file, counts the packs' dead bytes and moves one
//! round's blobs ([`shard_node::prune::ROUND_BLOBS`]) to new packs, with the peak RSS of that
//! phase alone. With `PRUNE_BENCH_COPY=FILE`, a copy of the catalog as recorded is left in
//! `FILE` (to see where its bytes go, e.g. with SQLite's `dbstat` table).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::collections::HashMap;
use std::time::Instant;

use shard_crypto::{KdfParams, KeyRecord, VaultKey, VaultKeys};
use shard_proto::{BlobAt, ChunkId, ChunkRef, Manifest, NodeId, PackId, ShareId};
use shard_store::{AckedShare, Catalog, FileKind, FileMeta, FileStamp, NewFile};

const BLOBS_PER_PACK: u64 = 1000;
const LEN: u32 = 4000;
const SHARE_LEN: u32 = 4 << 20;

fn id(n: u64, salt: u8) -> [u8; 32] {
    let mut b = [salt; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

fn pack_shares(pack: u64) -> Vec<ShareId> {
    (0..5).map(|s| ShareId(id(pack * 5 + s, 0x50))).collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Starts counting the peak RSS afresh (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn acks(pack: u64) -> Vec<AckedShare> {
    (0u8..)
        .zip(pack_shares(pack))
        .map(|(index, share)| AckedShare {
            chunk: ChunkId(id(pack, 0xAA)),
            k: 3,
            n: 5,
            share_len: SHARE_LEN,
            index,
            share,
            peer: NodeId([index + 1; 32]),
        })
        .collect()
}

fn blob_ref(chunk: u64, pack: u64, slot: u64) -> ChunkRef {
    ChunkRef {
        id: ChunkId(id(chunk, 0xC0)),
        len: LEN,
        k: 3,
        n: 5,
        share_len: SHARE_LEN,
        shares: pack_shares(pack),
        pack: Some(BlobAt {
            pack: PackId(id(pack, 0xAA)),
            offset: (slot * u64::from(LEN + 28)) as u32,
        }),
    }
}

fn main() {
    let files: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(std::env::var("PRUNE_BENCH_DIR").unwrap_or(".".into())).unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = Catalog::open(&path).unwrap();
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"benchmark passphrase", KdfParams::INSECURE_FAST).unwrap();
    let account = catalog.create_account("bench", &record).unwrap();
    let keys = VaultKeys::derive(&key);
    let vault = catalog.vault(account, &keys);

    // Recorded as a put does: each pack's acks with its blobs, then its files begun and
    // committed in one batch.
    let start = Instant::now();
    let packs = files.div_ceil(BLOBS_PER_PACK);
    for pack in 0..packs {
        let range = pack * BLOBS_PER_PACK..((pack + 1) * BLOBS_PER_PACK).min(files);
        let blobs: Vec<_> = range
            .clone()
            .map(|i| {
                let r = blob_ref(i, pack, i - pack * BLOBS_PER_PACK);
                (r.id, r.pack.unwrap(), r.len)
            })
            .collect();
        vault.record_acks_and_blobs(&acks(pack), &blobs).unwrap();
        let batch: Vec<NewFile> = range
            .map(|i| NewFile {
                meta: FileMeta {
                    name: format!("photos/{:03}/IMG_{i:07}.jpg", i % 997).into_bytes(),
                    kind: FileKind::File,
                    size: u64::from(LEN),
                    mtime: 1_700_000_000 + i.cast_signed(),
                    mtime_nanos: 123_456_789,
                    mode: 0o644,
                    link_target: None,
                },
                stamp: Some(FileStamp {
                    ctime: 1_700_000_000 + i.cast_signed(),
                    ctime_nanos: 987_654_321,
                    inode: 1_000_000 + i,
                }),
                manifest: Manifest {
                    size: u64::from(LEN),
                    chunks: vec![blob_ref(i, pack, i - pack * BLOBS_PER_PACK)],
                },
            })
            .collect();
        let begun = vault.begin_stamped(&batch).unwrap();
        vault
            .commit_files(&begun.iter().map(|f| f.id).collect::<Vec<_>>())
            .unwrap();
    }
    let recorded = start.elapsed().as_secs_f64();
    println!(
        "recorded {files} files in {packs} packs (3-of-5, 1 blob each, as a put records them) in {recorded:.1} s: {:.0} files/s",
        files as f64 / recorded
    );
    drop(vault);
    drop(catalog);
    if let Ok(copy) = std::env::var("PRUNE_BENCH_COPY") {
        std::fs::copy(&path, copy).unwrap();
    }
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "catalog on disk: {:.1} MB, {:.0} bytes per file",
        bytes as f64 / 1e6,
        bytes as f64 / files as f64
    );

    let catalog = Catalog::open(&path).unwrap();
    let vault = catalog.vault(account, &keys);
    reset_peak();
    let start = Instant::now();
    let ids: Vec<_> = {
        let mut ids = Vec::new();
        vault
            .for_each_entry(|e| {
                ids.push(e.id);
                Ok(())
            })
            .unwrap();
        ids.sort();
        ids.into_iter().step_by(3).collect()
    };
    for batch in ids.chunks(10_000) {
        vault.delete_files(&[9; 16], batch).unwrap();
    }
    println!(
        "removed {} files (every third) in {:.1} s",
        ids.len(),
        start.elapsed().as_secs_f64()
    );
    drop(ids);

    reset_peak();
    let start = Instant::now();
    let usage = vault.count_pack_usage().unwrap();
    let dead: u64 = usage.iter().map(|u| u.dead_bytes()).sum();
    println!(
        "counted the dead bytes of {} packs in {:.1} s: {:.1} MB dead; peak RSS of the count {:.0} MiB",
        usage.len(),
        start.elapsed().as_secs_f64(),
        dead as f64 / 1e6,
        peak_rss_kib() as f64 / 1024.0
    );

    // One round: the live blobs of the first packs, up to ROUND_BLOBS, moved to new packs
    // recorded acknowledged (as the copies would be).
    reset_peak();
    let start = Instant::now();
    let mut moves: HashMap<(ChunkId, PackId), ChunkRef> = HashMap::new();
    let mut new_pack = packs + 1_000_000;
    let mut slot = 0u64;
    let mut blobs = Vec::new();
    'round: for u in &usage {
        for live in vault.live_blobs(&u.pack).unwrap() {
            if moves.len() >= shard_node::prune::ROUND_BLOBS {
                break 'round;
            }
            if slot == BLOBS_PER_PACK {
                vault
                    .record_acks_and_blobs(&acks(new_pack), &blobs)
                    .unwrap();
                blobs.clear();
                new_pack += 1;
                slot = 0;
            }
            let n = u64::from_le_bytes(live.chunk.0[..8].try_into().unwrap());
            let copy = blob_ref(n, new_pack, slot);
            slot += 1;
            blobs.push((copy.id, copy.pack.unwrap(), copy.len));
            moves.insert((live.chunk, live.at.pack), copy);
        }
    }
    vault
        .record_acks_and_blobs(&acks(new_pack), &blobs)
        .unwrap();
    let relocated = vault.relocate(&[9; 16], &moves).unwrap();
    println!(
        "one round: {} blobs moved, {} file versions repointed, {} packs freed in {:.1} s; peak RSS of the round {:.0} MiB",
        moves.len(),
        relocated.files,
        relocated.packs_freed,
        start.elapsed().as_secs_f64(),
        peak_rss_kib() as f64 / 1024.0
    );
}
