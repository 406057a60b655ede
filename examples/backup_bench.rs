//! Backup runs, in one run against restic on the same tree and disk: five `shard` nodes on
//! 127.0.0.1 (3-of-5), a job over a tree of small files; the run over the unchanged tree
//! (files/s, against restic's second backup), and the run after 1% of the files changed
//! (bytes sent against the bytes changed).
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example backup_bench -- [--dir DIR] [--files 20000] [--no-restic]
//! ```
//! Needs `restic` on the PATH (Debian: `apt-get install restic`); without it (or with
//! `--no-restic`, for the memory at 10⁶ files) the shard figures are printed alone. The
//! owner's peak RSS is measured for the first run and for the unchanged run.
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
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use bench_nodes::{
    Node, bench_dir, flag, pair_all, peak_rss_line, restic, shard, small_tree, timed_cpu,
};

/// Rewrites every hundredth file with new bytes of the same length; the bytes changed.
fn change_one_percent(tree: &Path, files: usize, rng: &mut ChaCha8Rng) -> (u64, usize) {
    let (mut bytes, mut count) = (0, 0);
    for i in (0..files).step_by(100) {
        let path = tree.join(format!("d{:03}/f{i:05}.dat", i % 200));
        let len = fs::metadata(&path).unwrap().len() as usize;
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        fs::write(&path, &data).unwrap();
        bytes += len as u64;
        count += 1;
    }
    (bytes, count)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn main() {
    let files: usize = flag("--files").map_or(20_000, |v| v.parse().unwrap());
    let base = bench_dir("shard-backup-bench");
    println!(
        "backup runs in {} ({files} small files), 5 nodes, 3-of-5",
        base.display()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let tree = base.join("data/tree");
    let tree_bytes = small_tree(&tree, files, &mut rng);
    // Files written within 2 s of a run are read again by the next (their times may not have
    // moved): backups meet trees written long before.
    std::thread::sleep(Duration::from_millis(2_500));

    let nodes_dir = base.join("nodes");
    fs::create_dir_all(&nodes_dir).unwrap();
    let owner = Node::start(&nodes_dir, "owner", true);
    let peers: Vec<Node> = (1..5)
        .map(|i| Node::start(&nodes_dir, &format!("peer{i}"), false))
        .collect();
    pair_all(&owner, &peers);
    let tree_arg = tree.to_str().unwrap();
    shard(
        &owner.home,
        &[
            "backup", "add", tree_arg, "--every", "1d", "--shares", "3/5",
        ],
    );
    let mut seq = 1;
    let mut settle = |what: &str| {
        assert!(
            owner.wait_snapshot(seq, Duration::from_secs(300)),
            "no catalog snapshot {seq} after {what}"
        );
        seq += 1;
    };
    owner.reset_peak_rss();
    let first = timed_cpu(Some((&owner, &peers)), || {
        shard(&owner.home, &["backup", "run", "tree"]);
    });
    let first_rss = owner.peak_rss_mib();
    // The job's record is saved after the run: a second catalog snapshot may follow.
    settle("the first run");
    std::thread::sleep(Duration::from_secs(2));
    owner.reset_peak_rss();
    let mut unchanged_report = serde_json::Value::Null;
    let unchanged = timed_cpu(Some((&owner, &peers)), || {
        unchanged_report = json(&shard(&owner.home, &["--json", "backup", "run", "tree"]));
    });
    let unchanged_rss = owner.peak_rss_mib();
    std::thread::sleep(Duration::from_secs(2));
    let (changed_bytes, changed_files) = change_one_percent(&tree, files, &mut rng);
    std::thread::sleep(Duration::from_millis(2_500));
    let mut changed_report = serde_json::Value::Null;
    let changed = timed_cpu(Some((&owner, &peers)), || {
        changed_report = json(&shard(&owner.home, &["--json", "backup", "run", "tree"]));
    });
    assert_eq!(unchanged_report["outcome"], "ok", "{unchanged_report}");
    assert_eq!(
        changed_report["changed"], changed_files as u64,
        "{changed_report}"
    );
    let sent = changed_report["bytes_sent"].as_u64().unwrap();
    let rss = peak_rss_line(&owner, &peers);
    drop(peers);
    drop(owner);

    let fps = |secs: f64| files as f64 / secs;
    println!();
    println!("| measure | shard 3-of-5, 5 nodes | restic, local repo | shard / restic |");
    println!("|---|---:|---:|---:|");
    let have_restic = !std::env::args().any(|a| a == "--no-restic")
        && Command::new("restic")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    if have_restic {
        let (repo, cache) = (base.join("restic"), base.join("restic-cache"));
        restic(&repo, &cache, &["init"]);
        let r_first = timed_cpu(None, || restic(&repo, &cache, &["backup", "-q", tree_arg]));
        let r_again = timed_cpu(None, || restic(&repo, &cache, &["backup", "-q", tree_arg]));
        println!(
            "| first run, {files} files ({:.1} MB) | {:.0} files/s | {:.0} files/s | {:.2}× |",
            tree_bytes as f64 / 1e6,
            fps(first.wall),
            fps(r_first.wall),
            r_first.wall / first.wall
        );
        println!(
            "| run over the unchanged tree | {:.0} files/s ({:.2} s, {:.2} CPU-s) | {:.0} files/s ({:.2} s, {:.2} CPU-s) | {:.2}× |",
            fps(unchanged.wall),
            unchanged.wall,
            unchanged.cpu(),
            fps(r_again.wall),
            r_again.wall,
            r_again.cpu(),
            r_again.wall / unchanged.wall
        );
    } else {
        println!(
            "| first run, {files} files | {:.0} files/s | (no restic) | |",
            fps(first.wall)
        );
        println!(
            "| run over the unchanged tree | {:.0} files/s ({:.2} s) | (no restic) | |",
            fps(unchanged.wall),
            unchanged.wall
        );
    }
    println!(
        "| run after {changed_files} files (1%) changed | {:.2} s; {} bytes of shares sent for {} bytes changed: {:.2}× ({:.2}× with 3-of-5's 5/3) | | |",
        changed.wall,
        sent,
        changed_bytes,
        sent as f64 / changed_bytes as f64,
        sent as f64 / changed_bytes as f64 / (5.0 / 3.0)
    );
    println!(
        "unchanged run: {} files in the snapshot, {} not read again, {} bytes of shares sent",
        unchanged_report["files"], unchanged_report["unchanged"], unchanged_report["bytes_sent"]
    );
    println!(
        "owner's peak RSS during the first run: {first_rss} MiB; during the unchanged run: {unchanged_rss} MiB; whole run: {rss}"
    );
}
