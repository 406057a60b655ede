//! Repair throughput, in one run with the put it is compared to: six `shard` nodes (the owner
//! and five peers) on 127.0.0.1; a file stored 3-of-5; one peer lost for good; `shard peers
//! rm` rebuilds every share it held on the node that holds none of that chunk.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example repair_bench -- [--dir DIR] [--mib 1024]
//! ```
//! Prints the put's MB/s, the repair's MB/s of rebuilt shares, and the repair's MB/s of the
//! data those shares protect (each rebuilt share is one of a chunk's `k` = 3: it stands for
//! three times its size of stored data), with both ratios to the put. With
//! `--check-chunks N`, it then stores N small files (one chunk each) and times `shard check`
//! over all the chunks on the five remaining nodes.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use std::fs;
use std::io::Write;

use bench_nodes::{Node, bench_dir, flag, pair_all, shard, timed};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn main() {
    let mib: usize = flag("--mib").map(|v| v.parse().unwrap()).unwrap_or(1024);
    let check_chunks: usize = flag("--check-chunks")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let base = bench_dir("shard-repair-bench");
    println!(
        "repair in {} ({mib} MiB file), 6 nodes, 3-of-5",
        base.display()
    );

    let file = base.join("big.bin");
    {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut out = fs::File::create(&file).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            rng.fill_bytes(&mut buf);
            out.write_all(&buf).unwrap();
        }
    }
    let bytes = (mib as u64) << 20;

    let nodes_dir = base.join("nodes");
    fs::create_dir_all(&nodes_dir).unwrap();
    let owner = Node::start(&nodes_dir, "owner", true);
    let mut peers: Vec<Node> = (1..=5)
        .map(|i| Node::start(&nodes_dir, &format!("peer{i}"), false))
        .collect();
    pair_all(&owner, &peers);

    let put_secs = timed(|| {
        shard(
            &owner.home,
            &["put", file.to_str().unwrap(), "--shares", "3/5"],
        );
    });
    let put_mbps = bytes as f64 / put_secs / 1e6;

    // peer5 is lost for good.
    drop(peers.pop());
    let mut removed = serde_json::Value::Null;
    let rm_secs = timed(|| {
        removed = json(&shard(&owner.home, &["--json", "peers", "rm", "peer5"]));
    });
    let moved = &removed["moved"][0];
    let rebuilt = moved["bytes_rebuilt"].as_u64().unwrap();
    let repair_secs = moved["repair_secs"].as_f64().unwrap();
    let share_mbps = rebuilt as f64 / repair_secs / 1e6;
    let data_mbps = share_mbps * 3.0;

    // Everything is whole again: healthy, and the bytes come back.
    let check = json(&shard(&owner.home, &["--json", "check"]));
    assert_eq!(check["ok"], true, "{check}");
    let out = base.join("back.bin");
    shard(
        &owner.home,
        &["get", "big.bin", "-o", out.to_str().unwrap()],
    );
    assert!(
        fs::read(&out).unwrap() == fs::read(&file).unwrap(),
        "restored bytes differ"
    );

    println!("put            {put_mbps:8.1} MB/s  ({bytes} bytes in {put_secs:.2} s)");
    println!(
        "repair         {share_mbps:8.1} MB/s of rebuilt shares  ({} shares, {rebuilt} bytes in {repair_secs:.2} s; `peers rm` took {rm_secs:.2} s)",
        moved["shares_moved"]
    );
    println!("repair (data)  {data_mbps:8.1} MB/s of data protected again");
    println!(
        "ratio to put:  {:.2} (rebuilt shares), {:.2} (data)",
        share_mbps / put_mbps,
        data_mbps / put_mbps
    );

    if check_chunks > 0 {
        let tree = base.join("small");
        for i in 0..check_chunks {
            let dir = tree.join(format!("{:03}", i / 1000));
            if i % 1000 == 0 {
                fs::create_dir_all(&dir).unwrap();
            }
            fs::write(dir.join(format!("{i}.txt")), format!("small file {i}\n")).unwrap();
        }
        let put_secs = timed(|| {
            shard(&owner.home, &["put", tree.to_str().unwrap()]);
        });
        let mut report = serde_json::Value::Null;
        let check_secs = timed(|| {
            report = json(&shard(&owner.home, &["--json", "check"]));
        });
        assert_eq!(report["ok"], true, "{report}");
        println!(
            "check          {check_secs:8.2} s for {} chunks ({} shares) on 5 nodes (the put of {check_chunks} small files took {put_secs:.1} s)",
            report["chunks"], report["shares"]
        );
    }
}
