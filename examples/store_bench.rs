//! Durable share writes against the disk's own sequential bandwidth, in one run.
//!
//! `store_bench [DIR] [MiB]` (default: a temporary folder under the system temp dir, 1024 MiB).
//! Measures, on the same disk:
//! - `dd if=/dev/zero of=… bs=1M count=N conv=fdatasync` (the disk's sequential bandwidth with
//!   one final sync);
//! - 1 MiB shares put into a plain and a scatter store, every put returning only once its
//!   shares are on disk: one share per put (latency-bound), batches of 16, and 4 threads putting
//!   batches of 8 (many in flight).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use shard_proto::{Namespace, NodeId, Share, ShareHeader};
use shard_store::{DiskOptions, DiskStore, Layout, ShareStore};

const SHARE: u32 = 1 << 20;

fn dd(dir: &Path, mib: usize) -> f64 {
    let target = dir.join("dd.bin");
    let start = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args([
            "bs=1M",
            &format!("count={mib}"),
            "conv=fdatasync",
            "status=none",
        ])
        .status()
        .expect("run dd");
    assert!(status.success());
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(target).unwrap();
    (mib << 20) as f64 / secs / 1e6
}

fn shares(count: usize, seed: u32) -> Vec<Share> {
    (0..count)
        .map(|i| {
            let mut payload = vec![0u8; SHARE as usize];
            let tag = (seed as usize * 1_000_003 + i).to_le_bytes();
            payload[..8].copy_from_slice(&tag);
            Share::new(
                ShareHeader::new(3, 5, 0, SHARE).unwrap(),
                Bytes::from(payload),
            )
            .unwrap()
        })
        .collect()
}

fn run(
    dir: &Path,
    layout: Layout,
    mib: usize,
    batch: usize,
    threads: usize,
    seed: u32,
) -> (f64, f64) {
    let root = tempfile::tempdir_in(dir).unwrap();
    let store = Arc::new(DiskStore::open(root.path(), DiskOptions::new(layout)).unwrap());
    let ns = Namespace {
        owner: NodeId([1; 32]),
        vault: [2; 16],
    };
    let all = shares(mib, seed);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in all.chunks(mib.div_ceil(threads)) {
            let store = store.clone();
            s.spawn(move || {
                for b in part.chunks(batch) {
                    store.put(&ns, b).unwrap();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(store.usage().unwrap().shares, mib as u64);
    drop(store);
    let bytes = mib as f64 * (SHARE as f64 + 16.0);
    (bytes / secs / 1e6, mib as f64 / secs)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp;
    let dir: PathBuf = match args.first() {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    let mib: usize = args.get(1).map(|m| m.parse().unwrap()).unwrap_or(1024);
    println!(
        "durable writes of {mib} × 1 MiB shares in {}",
        dir.display()
    );
    let disk = dd(&dir, mib);
    println!("| method | MB/s | puts/s | vs dd |");
    println!("|---|---:|---:|---:|");
    println!("| dd bs=1M conv=fdatasync | {disk:.0} | | 100% |");
    let mut seed = 0;
    for layout in [Layout::Plain, Layout::Scatter] {
        for (batch, threads, label) in [
            (1, 1, "1 share per put"),
            (16, 1, "batches of 16"),
            (8, 4, "4 threads × batches of 8"),
        ] {
            seed += 1;
            // The latency-bound case is slow: a tenth of the data tells the story.
            let n = if batch == 1 { (mib / 8).max(16) } else { mib };
            let (mbps, puts) = run(&dir, layout, n, batch, threads, seed);
            println!(
                "| {layout:?}, {label} | {mbps:.0} | {puts:.0} | {:.0}% |",
                mbps / disk * 100.0
            );
        }
    }
    let again = dd(&dir, mib);
    println!(
        "| dd again (drift check) | {again:.0} | | {:.0}% |",
        again / disk * 100.0
    );
}
