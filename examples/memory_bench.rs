//! Memory of the owner's node with a large vault: three release `shard serve` processes on
//! 127.0.0.1 (2-of-3), a tree of `--files` small files (default 100 000) stored, listed
//! (`ls`, `ls --json`), checked and restored; after each step the owner's peak RSS (VmHWM,
//! started afresh before each step) and its current RSS are printed. The target (issue 16) is a peak under 256 MiB for each.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example memory_bench -- [--files N] [--dir DIR]
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use std::fs;
use std::path::Path;

use bench_nodes::{Node, bench_dir, flag, pair_all, shard, timed};

fn rss_mib(node: &Node, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{}/status", node.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

/// `count` files of 200–2 000 bytes in folders of 1 000.
fn tree(root: &Path, count: usize) {
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        let len = 200 + (i * 7919) % 1800;
        let bytes: Vec<u8> = (0..len).map(|j| ((i * 31 + j * 17) % 251) as u8).collect();
        fs::write(dir.join(format!("f{i:06}.txt")), bytes).unwrap();
    }
}

fn main() {
    let files: usize = flag("--files")
        .map(|v| v.parse().unwrap())
        .unwrap_or(100_000);
    let base = bench_dir("shard-memory-bench");
    let owner = Node::start(&base, "owner", true);
    let peers = [
        Node::start(&base, "peer1", false),
        Node::start(&base, "peer2", false),
    ];
    pair_all(&owner, &peers);
    let src = base.join("src");
    tree(&src, files);
    println!("memory of the owner's node, {files} small files, 3 nodes, 2-of-3");
    println!();
    println!("| step | time | owner peak RSS in the step (VmHWM) | owner RSS after |");
    println!("|---|---:|---:|---:|");
    // Each step's own peak: the high-water mark starts afresh after it is printed.
    let step = |name: &str, secs: f64| {
        println!(
            "| {name} | {secs:.1} s | {} MiB | {} MiB |",
            rss_mib(&owner, "VmHWM:"),
            rss_mib(&owner, "VmRSS:")
        );
        owner.reset_peak_rss();
    };
    step("started", 0.0);
    let secs = timed(|| {
        shard(
            &owner.home,
            &["put", "--shares", "2/3", src.to_str().unwrap()],
        );
    });
    step("put", secs);
    // The catalog snapshot the put leaves is written in the background: a step of its own, so
    // that `ls` is measured alone.
    let secs = timed(|| {
        assert!(
            owner.wait_snapshot(1, std::time::Duration::from_secs(300)),
            "no catalog snapshot within 5 minutes of the put"
        );
    });
    step("catalog snapshot after the put", secs);
    let secs = timed(|| {
        shard(&owner.home, &["ls"]);
    });
    step("ls", secs);
    let secs = timed(|| {
        shard(&owner.home, &["--json", "ls"]);
    });
    step("ls --json", secs);
    let secs = timed(|| {
        shard(&owner.home, &["check"]);
    });
    step("check", secs);
    let out = base.join("restored");
    let secs = timed(|| {
        shard(&owner.home, &["get", "src", "-o", out.to_str().unwrap()]);
    });
    step("get", secs);
    let restored = walk_count(&out);
    assert_eq!(restored, files, "restored file count");
    println!();
    println!("restored {restored} files");
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += walk_count(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}
