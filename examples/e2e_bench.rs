//! End to end, in one run: five `shard` nodes on 127.0.0.1 storing 3-of-5, against restic on the
//! same data and the same disk.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example e2e_bench -- [--dir DIR] [--mib 1024] [--files 20000]
//! ```
//! `--dir /dev/shm/x` puts every home and restic's repository on tmpfs (CPU is the limit);
//! a folder on a real disk makes durable writes the limit, and the disk's own
//! `dd bs=1M conv=fdatasync` bandwidth is measured there too. Prints MB/s, files/s, the ratios
//! to restic, and the peak RSS (VmHWM) of every node.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use bench_nodes::{
    Node, Step, bench_dir, flag, pair_all, peak_rss_line, restic, run, shard, timed, timed_cpu,
};

fn make_data(dir: &Path, mib: usize, files: usize) -> (PathBuf, PathBuf, u64) {
    let big = dir.join("data/big.bin");
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut out = fs::File::create(&big).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rng.fill_bytes(&mut buf);
        out.write_all(&buf).unwrap();
    }
    drop(out);
    let tree = dir.join("data/tree");
    let tree_bytes = bench_nodes::small_tree(&tree, files, &mut rng);
    (big, tree, tree_bytes)
}

fn same_bytes(a: &Path, b: &Path) {
    let status = Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

fn same_tree(a: &Path, b: &Path) {
    let status = Command::new("diff")
        .arg("-rq")
        .arg(a)
        .arg(b)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

fn main() {
    let mib: usize = flag("--mib").map(|v| v.parse().unwrap()).unwrap_or(1024);
    let files: usize = flag("--files")
        .map(|v| v.parse().unwrap())
        .unwrap_or(20_000);
    let base = bench_dir("shard-e2e-bench");
    println!(
        "end to end in {} ({mib} MiB file, {files} small files), 5 nodes, 3-of-5",
        base.display()
    );

    let (big, tree, tree_bytes) = make_data(&base, mib, files);
    let written = std::time::Instant::now();
    let big_bytes = (mib as u64) << 20;
    let dd_mbps = {
        let target = base.join("dd.bin");
        let secs = timed(|| {
            run(Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", target.display()))
                .args([
                    "bs=1M",
                    &format!("count={mib}"),
                    "conv=fdatasync",
                    "status=none",
                ]));
        });
        fs::remove_file(&target).unwrap();
        big_bytes as f64 / secs / 1e6
    };

    let nodes_dir = base.join("nodes");
    fs::create_dir_all(&nodes_dir).unwrap();
    let owner = Node::start(&nodes_dir, "owner", true);
    let peers: Vec<Node> = (1..5)
        .map(|i| Node::start(&nodes_dir, &format!("peer{i}"), false))
        .collect();
    pair_all(&owner, &peers);

    // Each put leaves a catalog snapshot written in the background (see `snapshot` in
    // shard-node). The next put waits for it (both take the vault's writer lock), so a step
    // that starts while it runs counts some of it, and by chance. It is waited for between
    // the steps and shown on its own: restic writes its index and snapshot before it returns.
    let snapshots = std::cell::RefCell::new(Vec::new());
    let settle = |seq: u64| {
        let step = timed_cpu(Some((&owner, &peers)), || {
            assert!(
                owner.wait_snapshot(seq, std::time::Duration::from_secs(300)),
                "no catalog snapshot {seq} within 5 minutes of the put"
            );
        });
        snapshots.borrow_mut().push(step);
    };
    let put_big = timed_cpu(Some((&owner, &peers)), || {
        shard(&owner.home, &["put", big.to_str().unwrap()]);
    });
    settle(1);
    let out_big = base.join("out/big.bin");
    fs::create_dir_all(out_big.parent().unwrap()).unwrap();
    let get_big = timed_cpu(Some((&owner, &peers)), || {
        shard(
            &owner.home,
            &["get", "big.bin", "-o", out_big.to_str().unwrap()],
        );
    });
    same_bytes(&big, &out_big);
    fs::remove_file(&out_big).unwrap();
    // A put does not trust the times of files changed within 2 s of it (they are read again
    // by the next put): a tree written just now would be, and the unchanged put below would
    // measure reading it. Backups meet trees written long before.
    std::thread::sleep(std::time::Duration::from_millis(2_500).saturating_sub(written.elapsed()));
    let put_tree = timed_cpu(Some((&owner, &peers)), || {
        shard(&owner.home, &["put", tree.to_str().unwrap()]);
    });
    settle(2);
    // The same tree again, unchanged (restic: a second backup with the first as parent).
    let put_tree_again = timed_cpu(Some((&owner, &peers)), || {
        shard(&owner.home, &["put", tree.to_str().unwrap()]);
    });
    settle(3);
    let out_tree = base.join("out/tree");
    let get_tree = timed_cpu(Some((&owner, &peers)), || {
        shard(
            &owner.home,
            &["get", "tree", "-o", out_tree.to_str().unwrap()],
        );
    });
    same_tree(&tree, &out_tree);
    fs::remove_dir_all(&out_tree).unwrap();
    let rss = peak_rss_line(&owner, &peers);
    drop(peers);
    drop(owner);

    let cache = base.join("restic-cache");
    let (repo_big, repo_tree) = (base.join("restic-big"), base.join("restic-tree"));
    restic(&repo_big, &cache, &["init"]);
    restic(&repo_tree, &cache, &["init"]);
    let r_put_big = timed_cpu(None, || {
        restic(&repo_big, &cache, &["backup", "-q", big.to_str().unwrap()])
    });
    let r_out = base.join("restic-out");
    let r_get_big = timed_cpu(None, || {
        restic(
            &repo_big,
            &cache,
            &[
                "restore",
                "latest",
                "-q",
                "--target",
                r_out.to_str().unwrap(),
            ],
        )
    });
    fs::remove_dir_all(&r_out).unwrap();
    let r_put_tree = timed_cpu(None, || {
        restic(
            &repo_tree,
            &cache,
            &["backup", "-q", tree.to_str().unwrap()],
        )
    });
    let r_put_tree_again = timed_cpu(None, || {
        restic(
            &repo_tree,
            &cache,
            &["backup", "-q", tree.to_str().unwrap()],
        )
    });
    let r_get_tree = timed_cpu(None, || {
        restic(
            &repo_tree,
            &cache,
            &[
                "restore",
                "latest",
                "-q",
                "--target",
                r_out.to_str().unwrap(),
            ],
        )
    });

    let mbps = |bytes: u64, secs: f64| bytes as f64 / secs / 1e6;
    let fps = |secs: f64| files as f64 / secs;
    println!();
    println!("| measure | shard 3-of-5, 5 nodes | restic, local repo | shard / restic |");
    println!("|---|---:|---:|---:|");
    println!(
        "| put {mib} MiB file | {:.0} MB/s | {:.0} MB/s | {:.2}× |",
        mbps(big_bytes, put_big.wall),
        mbps(big_bytes, r_put_big.wall),
        r_put_big.wall / put_big.wall
    );
    println!(
        "| get {mib} MiB file | {:.0} MB/s | {:.0} MB/s | {:.2}× |",
        mbps(big_bytes, get_big.wall),
        mbps(big_bytes, r_get_big.wall),
        r_get_big.wall / get_big.wall
    );
    println!(
        "| put {files} small files ({:.0} MB) | {:.0} files/s | {:.0} files/s | {:.2}× |",
        tree_bytes as f64 / 1e6,
        fps(put_tree.wall),
        fps(r_put_tree.wall),
        r_put_tree.wall / put_tree.wall
    );
    println!(
        "| put the same {files} files again, unchanged | {:.0} files/s | {:.0} files/s | {:.2}× |",
        fps(put_tree_again.wall),
        fps(r_put_tree_again.wall),
        r_put_tree_again.wall / put_tree_again.wall
    );
    println!(
        "| get {files} small files | {:.0} files/s | {:.0} files/s | {:.2}× |",
        fps(get_tree.wall),
        fps(r_get_tree.wall),
        r_get_tree.wall / get_tree.wall
    );
    println!();
    println!(
        "CPU seconds per step (user + system; this machine has {} cores):",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!();
    println!(
        "| step | shard owner | shard peers | shard CLI | shard total | restic | shard / restic | page faults, owner / peers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let steps: [(&str, Step, Step); 5] = [
        ("put file", put_big, r_put_big),
        ("get file", get_big, r_get_big),
        ("put small files", put_tree, r_put_tree),
        ("put them again", put_tree_again, r_put_tree_again),
        ("get small files", get_tree, r_get_tree),
    ];
    for (name, ours, theirs) in steps {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× | {} / {} |",
            ours.owner,
            ours.peers,
            ours.children,
            ours.cpu(),
            theirs.cpu(),
            ours.cpu() / theirs.cpu().max(0.01),
            ours.faults.0,
            ours.faults.1
        );
    }
    println!();
    println!(
        "disk: dd bs=1M conv=fdatasync {dd_mbps:.0} MB/s; ÷ n/k (5/3) = {:.0} MB/s; shard put = {:.0}% of that",
        dd_mbps * 3.0 / 5.0,
        mbps(big_bytes, put_big.wall) / (dd_mbps * 3.0 / 5.0) * 100.0
    );
    let snapshots: Vec<String> = snapshots
        .borrow()
        .iter()
        .map(|s| format!("{:.1} s wall, {:.2} CPU-s", s.wall, s.cpu()))
        .collect();
    println!(
        "catalog snapshots after the three puts, waited for between steps (polled every 0.1 s; \
         not in the puts' figures): {}",
        snapshots.join("; ")
    );
    println!("peak RSS (VmHWM): {rss}");
    let _ = fs::remove_dir_all(&base);
}
