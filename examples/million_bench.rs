//! A vault of a million small files over five `shard` nodes on 127.0.0.1 (3-of-5): stored,
//! listed, checked and restored, with the time of each, the catalog's size on disk per file
//! and every node's peak RSS.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example million_bench -- [--dir DIR] [--files 1000000]
//! ```
//! The files (0.5–8 KiB, a thousand to a folder) take about 4.3 GB: `--dir /dev/shm/x` keeps
//! them and every node's home in memory.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::fs;
use std::path::Path;
use std::process::Command;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use bench_nodes::{Node, bench_dir, flag, pair_all, peak_rss_line, run, shard, timed};

/// Writes `files` files of 0.5–8 KiB under `tree`, a thousand to a folder; returns their bytes.
fn make_tree(tree: &Path, files: usize) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut bytes = 0u64;
    let mut data = vec![0u8; 8192];
    for i in 0..files {
        let dir = tree.join(format!("d{:04}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        let len = 512 + (rng.next_u32() as usize % 7680);
        rng.fill_bytes(&mut data[..len]);
        fs::write(dir.join(format!("f{i:07}.dat")), &data[..len]).unwrap();
        bytes += len as u64;
    }
    bytes
}

/// Size of a file and its SQLite write-ahead log, if any.
/// The catalog's database file and its write-ahead log, in bytes (the log's size is bounded by
/// the largest transaction, not by the vault: it is reported apart).
fn db_bytes(path: &Path) -> (u64, u64) {
    let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    (len(path), len(&path.with_extension("db-wal")))
}

fn main() {
    let files: usize = flag("--files")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1_000_000);
    let base = bench_dir("shard-million-bench");
    println!(
        "{files} small files in {}, 5 nodes on 127.0.0.1, 3-of-5",
        base.display()
    );
    let tree = base.join("data/tree");
    let (make_secs, bytes) = {
        let mut bytes = 0;
        let secs = timed(|| bytes = make_tree(&tree, files));
        (secs, bytes)
    };
    println!(
        "wrote {files} files ({:.0} MB) in {make_secs:.0} s",
        bytes as f64 / 1e6
    );
    // A put does not trust the times of files changed within 2 s of it.
    std::thread::sleep(std::time::Duration::from_millis(2_500));

    let nodes_dir = base.join("nodes");
    fs::create_dir_all(&nodes_dir).unwrap();
    let owner = Node::start(&nodes_dir, "owner", true);
    let peers: Vec<Node> = (1..5)
        .map(|i| Node::start(&nodes_dir, &format!("peer{i}"), false))
        .collect();
    pair_all(&owner, &peers);

    // Each phase's own peak: the owner's high-water mark is started afresh before it.
    let mut peaks: Vec<(&str, u64)> = Vec::new();
    let mut phase = |name: &'static str, f: &mut dyn FnMut()| {
        owner.reset_peak_rss();
        let secs = timed(f);
        peaks.push((name, owner.peak_rss_mib()));
        secs
    };
    let put = phase("put", &mut || {
        shard(&owner.home, &["put", tree.to_str().unwrap()]);
    });
    println!("put: {put:.0} s");
    let catalog = db_bytes(&owner.home.join("catalog.db"));
    let mut listed = 0usize;
    let ls = phase("ls", &mut || {
        let out = shard(&owner.home, &["ls", "tree/"]);
        listed = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(".dat"))
            .count();
    });
    assert_eq!(listed, files, "ls lists every file");
    println!("ls: {ls:.1} s");
    let check = phase("check", &mut || {
        shard(&owner.home, &["check"]);
    });
    println!("check: {check:.0} s");
    let out = base.join("out/tree");
    let get = phase("get", &mut || {
        shard(&owner.home, &["get", "tree", "-o", out.to_str().unwrap()]);
    });
    println!("get: {get:.0} s");
    let verify = timed(|| {
        run(Command::new("diff").arg("-rq").arg(&tree).arg(&out));
    });
    let rss = peak_rss_line(&owner, &peers);
    let per_sec = |secs: f64| files as f64 / secs;
    println!();
    println!(
        "| {files} small files ({:.0} MB) | time | files/s |",
        bytes as f64 / 1e6
    );
    println!("|---|---:|---:|");
    println!("| put | {put:.0} s | {:.0} |", per_sec(put));
    println!("| ls | {ls:.1} s | {:.0} |", per_sec(ls));
    println!("| check | {check:.0} s | {:.0} |", per_sec(check));
    println!(
        "| get (restored identical: diff -rq, {verify:.0} s) | {get:.0} s | {:.0} |",
        per_sec(get)
    );
    println!();
    let (database, wal) = catalog;
    println!(
        "catalog on disk after the put: {:.0} MB, {:.0} bytes per file ({:.0} in the database, write-ahead log {:.1} MB)",
        (database + wal) as f64 / 1e6,
        (database + wal) as f64 / files as f64,
        database as f64 / files as f64,
        wal as f64 / 1e6
    );
    println!("peak RSS (VmHWM) over the whole run: {rss}");
    let each: Vec<String> = peaks
        .iter()
        .map(|(name, mib)| format!("{name} {mib} MiB"))
        .collect();
    println!("owner's peak RSS in each phase alone: {}", each.join(", "));
}
