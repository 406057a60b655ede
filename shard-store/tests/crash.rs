//! kill -9 at random moments while a process writes and deletes shares: afterwards every
//! acknowledged share is there and intact, nothing half-written is served, no temp file or
//! unindexed file is left behind.
//!
//! The writer is this test binary itself, re-run with `crash_writer_process` selected and the
//! store's folder in `SHARD_CRASH_ROOT`.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shard_proto::{Namespace, NodeId, Share, ShareHeader, ShareId};
use shard_store::{DiskOptions, DiskStore, Layout, ShareStore};

fn ns() -> Namespace {
    Namespace {
        owner: NodeId([5; 32]),
        vault: [6; 16],
    }
}

fn layout(name: &str) -> Layout {
    if name == "scatter" {
        Layout::Scatter
    } else {
        Layout::Plain
    }
}

/// The child: puts batches of random shares (and now and then deletes some), printing
/// `ACK <id>` for every share of a batch once `put` returned, and `DEL <id>` before deleting.
/// Bounded: stops by itself after 20 s or 5 000 batches.
#[test]
#[ignore = "helper process for kill_nine_at_random_moments_loses_nothing; runs only when it starts it"]
fn crash_writer_process() {
    let Ok(root) = std::env::var("SHARD_CRASH_ROOT") else {
        return;
    };
    let layout_name = std::env::var("SHARD_CRASH_LAYOUT").unwrap();
    let store = DiskStore::open(Path::new(&root), DiskOptions::new(layout(&layout_name))).unwrap();
    let mut seed = [0u8; 8];
    getrandom_fill(&mut seed);
    let mut state = u64::from_le_bytes(seed) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = std::io::stdout().lock();
    let mut acked: Vec<ShareId> = Vec::new();
    let start = Instant::now();
    for _ in 0..5000 {
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
        let count = 1 + next() % 6;
        let batch: Vec<Share> = (0..count)
            .map(|_| {
                let len = 2 * (1 + (next() % 40_000)) as u32;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                Share::new(
                    ShareHeader::new(2, 3, 1, len).unwrap(),
                    Bytes::from(payload),
                )
                .unwrap()
            })
            .collect();
        store.put(&ns(), &batch).unwrap();
        for s in &batch {
            writeln!(out, "ACK {}", s.id()).unwrap();
            acked.push(s.id());
        }
        out.flush().unwrap();
        if next() % 4 == 0 && !acked.is_empty() {
            let victim = acked.swap_remove((next() % acked.len() as u64) as usize);
            // Announced first: a delete cut short by the kill may or may not have happened.
            writeln!(out, "DEL {victim}").unwrap();
            out.flush().unwrap();
            // Purged: the removal that touches files (a delete only flips an index row, and
            // keeps the file through the grace period).
            store.purge(&ns(), &[victim]).unwrap();
        }
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (nanos >> (i * 8)) as u8 ^ std::process::id() as u8;
    }
}

#[test]
fn kill_nine_at_random_moments_loses_nothing() {
    for layout_name in ["plain", "scatter"] {
        let dir = tempfile::tempdir().unwrap();
        let mut acked: HashSet<ShareId> = HashSet::new();
        let mut kills = 0;
        for round in 0..6u64 {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_writer_process",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SHARD_CRASH_ROOT", dir.path())
                .env("SHARD_CRASH_LAYOUT", layout_name)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .collect::<Vec<String>>()
            });
            // Let it get going (opening the store, some writes), then kill it mid-flight.
            std::thread::sleep(Duration::from_millis(150 + (round * 97) % 400));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            for line in reader.join().unwrap() {
                if let Some(id) = line.strip_prefix("ACK ") {
                    acked.insert(id.parse().unwrap());
                } else if let Some(id) = line.strip_prefix("DEL ") {
                    acked.remove(&id.parse().unwrap());
                }
            }

            let store = DiskStore::open(dir.path(), DiskOptions::new(layout(layout_name))).unwrap();
            for id in &acked {
                let share = store.get(&ns(), id).unwrap();
                assert_eq!(
                    share.map(|s| s.id()),
                    Some(*id),
                    "{layout_name}: acknowledged share lost"
                );
            }
            // Everything the index lists is complete and intact.
            let report = store.scrub(&ns()).unwrap();
            assert!(
                report.missing.is_empty() && report.corrupt.is_empty(),
                "{report:?}"
            );
            // No stray temp files, and no file the index does not know about.
            let parts = std::fs::read_dir(dir.path().join(".tmp")).unwrap().count();
            assert_eq!(parts, 0, "temp files survived recovery");
            let files = count_share_files(dir.path());
            assert_eq!(
                files as u64,
                store.usage().unwrap().shares,
                "unindexed files left behind"
            );
        }
        assert!(
            acked.len() > 10,
            "{layout_name}: the writer acknowledged too little to prove anything"
        );
        println!(
            "{layout_name}: {kills} kills, {} acknowledged shares intact",
            acked.len()
        );
    }
}

fn count_share_files(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if !name.starts_with(".index.db") {
                count += 1;
            }
        }
    }
    count
}
