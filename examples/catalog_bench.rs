//! The owner's catalog at 100 000 files: how fast files are recorded (in batches, as a put of
//! a tree does), and how long listing them all takes (every name unsealed).
//!
//! `catalog_bench [FILES]` (default 100 000), in a temporary folder on the real disk.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::time::Instant;

use shard_crypto::{KdfParams, KeyRecord, VaultKey, VaultKeys};
use shard_proto::{ChunkId, ChunkRef, Manifest, NodeId, ShareId};
use shard_store::{Catalog, FileKind, FileMeta, ShareState};

fn id(n: u64, salt: u8) -> [u8; 32] {
    let mut b = [salt; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

fn main() {
    let files: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"benchmark passphrase", KdfParams::INSECURE_FAST).unwrap();
    let account = catalog.create_account("bench", &record).unwrap();
    let keys = VaultKeys::derive(&key);
    let vault = catalog.vault(account, &keys);
    let peers = [NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32])];

    let start = Instant::now();
    for batch in 0..files.div_ceil(1000) {
        let range = batch * 1000..((batch + 1) * 1000).min(files);
        let entries: Vec<(FileMeta, Manifest)> = range
            .clone()
            .map(|i| {
                let chunk = ChunkRef {
                    id: ChunkId(id(i, 0xC0)),
                    len: 4000,
                    k: 2,
                    n: 3,
                    share_len: 2010,
                    shares: (0..3).map(|s| ShareId(id(i * 3 + s, 0x50))).collect(),
                    pack: None,
                };
                let meta = FileMeta {
                    name: format!("photos/{:03}/IMG_{i:06}.jpg", i % 997).into_bytes(),
                    kind: FileKind::File,
                    size: 4000,
                    mtime: 1_700_000_000 + i64::try_from(i).unwrap(),
                    mtime_nanos: 0,
                    mode: 0o644,
                    link_target: None,
                };
                (
                    meta,
                    Manifest {
                        size: 4000,
                        chunks: vec![chunk],
                    },
                )
            })
            .collect();
        let begun = vault.begin_files(&entries).unwrap();
        let chunks: Vec<_> = entries
            .iter()
            .map(|(_, m)| (&m.chunks[0], &peers[..]))
            .collect();
        vault.record_shares(&chunks).unwrap();
        let acks: Vec<_> = entries
            .iter()
            .flat_map(|(_, m)| m.chunks[0].shares.iter().map(|s| (*s, ShareState::Acked)))
            .collect();
        vault.set_share_states(&acks).unwrap();
        vault
            .commit_files(&begun.iter().map(|f| f.id).collect::<Vec<_>>())
            .unwrap();
    }
    let insert = start.elapsed().as_secs_f64();
    println!(
        "recorded {files} files (1 chunk, 3 shares each; begin + shares + acks + commit, batches of 1000) in {insert:.2} s: {:.0} files/s",
        files as f64 / insert
    );
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let listed = vault.list().unwrap();
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(listed.len() as u64, files);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "listed all {files} files (names unsealed and sorted): median {:.3} s of 3",
        times[1]
    );
    let start = Instant::now();
    let found = vault.versions(b"photos/042/IMG_001039.jpg").unwrap();
    println!(
        "lookup of one name through the HMAC index: {:.2} ms ({} version)",
        start.elapsed().as_secs_f64() * 1e3,
        found.len()
    );
}
