//! Puts over each path a node can use to a peer in another home, in one run, in network
//! namespaces (homes behind NATs and a relay of the run's own on the "internet", as
//! shard-testkit's `homes` makes them): iroh on a punched hole (a NAT keeping one mapping per
//! endpoint), iroh through the relay (a symmetric NAT), and TCP + Noise to a forwarded port
//! across the same internet (what `shard peers add` gives someone who forwards a port). Each
//! put is `--shares 1/2` with only the owner and that one peer online, so one share of every
//! chunk crosses the path. `--mbit M` caps each home's link (tbf, both ways) as an uplink
//! would; without it the links run as fast as the two cores let them.
//!
//! Prints, per path: MB/s of a `--mib` put (the node's job from start to end: pipeline,
//! transfer, acknowledgements), its ratio to TCP's, the time of a 4 KiB put, and the CPU
//! seconds per GB of the owner's and the peer's node over the CLI run (the relay's CPU is not
//! counted). The path each peer is on is checked before and after its put. Needs root; sends nothing outside the namespaces it
//! makes.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example wan_paths -- [--mib 64] [--mbit 50]
//! ```
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shard_testkit::nodes::homes::{Homes, Nat};
use shard_testkit::nodes::random_file;

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use bench_nodes::pid_cpu_seconds as cpu;

struct Figures {
    mb_s: f64,
    small_ms: f64,
    owner_s_per_gb: f64,
    peer_s_per_gb: f64,
}

/// Whether `name` is online over `path` (`None`: offline).
fn reached(peers: &Value, name: &str, path: Option<&str>) -> bool {
    peers["peers"].as_array().is_some_and(|list| {
        list.iter().any(|p| {
            p["name"] == name
                && match path {
                    Some(path) => p["online"] == true && p["path"] == path,
                    None => p["online"] == false,
                }
        })
    })
}

/// Asserts the owner still reaches `name` over `path` after its put.
fn still_on(homes: &Homes, name: &str, path: &str) {
    let peers = homes.json(0, &["peers"]);
    assert!(
        reached(&peers, name, Some(path)),
        "{name} left the {path} path during the put: {peers}"
    );
}

/// Puts `file` 1-of-2 from the owner; how long the put took, in seconds, as the node measured
/// its job (the CLI's start and its polling for the end are left out).
fn put(homes: &Homes, file: &Path) -> f64 {
    let out = homes.shard(
        0,
        &["--json", "put", file.to_str().unwrap(), "--shares", "1/2"],
    );
    assert!(
        out.status.success(),
        "put {}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        homes.log_tails(30)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["chunks_already_stored"], 0,
        "the bytes were not new: {report}"
    );
    report["elapsed_secs"].as_f64().unwrap()
}

/// A small and a large put to machine `peer`, new bytes each (nothing deduplicated): `seed`
/// differs for each call (the generator ignores a seed's lowest bit, so it is multiplied).
fn measure(homes: &Homes, peer: usize, mib: usize, seed: u64) -> Figures {
    let seed = seed * 16 + 1;
    let work = homes.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let small = work.join(format!("small-{seed}.bin"));
    random_file(&small, 4096, seed + 1000);
    let small_ms = put(homes, &small) * 1e3;
    let big = work.join(format!("big-{seed}.bin"));
    random_file(&big, mib << 20, seed);
    let (owner, them) = (homes.pid(0).unwrap(), homes.pid(peer).unwrap());
    let (o0, p0) = (cpu(owner), cpu(them));
    let secs = put(homes, &big);
    let gb = (mib << 20) as f64 / 1e9;
    Figures {
        mb_s: gb * 1e3 / secs,
        small_ms,
        owner_s_per_gb: (cpu(owner) - o0) / gb,
        peer_s_per_gb: (cpu(them) - p0) / gb,
    }
}

fn main() {
    let mib: usize = bench_nodes::flag("--mib").map_or(64, |v| v.parse().unwrap());
    let mbit: Option<u32> = bench_nodes::flag("--mbit").map(|v| v.parse().unwrap());
    let (owner, aunt, friend) = (0, 1, 2);
    let mut homes = Homes::behind_nats(&[
        (Nat::PerEndpoint, 1),
        (Nat::PerEndpoint, 1),
        (Nat::Symmetric, 1),
    ]);
    if let Some(mbit) = mbit {
        for h in 0..3 {
            homes.impair(h, 0, Some(mbit * 1000));
        }
    }
    homes.start_relay();
    let relay = homes.relay_url();
    for (i, name) in [(owner, "owner"), (aunt, "aunt"), (friend, "friend")] {
        homes.init(i, name, &relay);
    }
    homes.json(owner, &["account", "create", "bench"]);
    homes.serve(owner, &["--login", "bench"]);
    homes.serve(aunt, &[]);
    homes.serve(friend, &[]);
    for joiner in [aunt, friend] {
        let code = homes.json(owner, &["invite"])["code"]
            .as_str()
            .unwrap()
            .to_string();
        homes.json(joiner, &["join", &code]);
    }
    let wait = |homes: &Homes, want: &[(&str, Option<&str>)]| {
        homes.wait_peers(owner, Duration::from_secs(120), |p| {
            want.iter().all(|(name, path)| reached(p, name, *path))
        });
    };
    wait(
        &homes,
        &[("aunt", Some("direct")), ("friend", Some("relay"))],
    );

    // iroh on the punched hole: the friend off.
    homes.kill(friend);
    wait(&homes, &[("aunt", Some("direct")), ("friend", None)]);
    let direct = measure(&homes, aunt, mib, 1);
    still_on(&homes, "aunt", "direct");

    // iroh through the relay: the aunt off, the friend back.
    homes.kill(aunt);
    homes.serve(friend, &[]);
    wait(&homes, &[("aunt", None), ("friend", Some("relay"))]);
    let relayed = measure(&homes, friend, mib, 2);
    still_on(&homes, "friend", "relay");

    // TCP + Noise across the same internet: the aunt's router forwards her port, her node runs
    // without iroh, and the owner is told the forwarded address.
    let forwarded = homes.forward_port(aunt, 7714);
    homes.kill(friend);
    homes.serve(aunt, &["--relay", "none"]);
    homes.json(owner, &["peers", "add", &forwarded]);
    wait(&homes, &[("aunt", Some("lan")), ("friend", None)]);
    let tcp = measure(&homes, aunt, mib, 3);
    still_on(&homes, "aunt", "lan");

    let link = mbit.map_or_else(
        || "links not capped".to_string(),
        |m| format!("each home's link capped at {m} Mbit/s"),
    );
    println!("puts of {mib} MiB, 1-of-2, owner and one peer in another home behind NATs; {link}");
    println!(
        "{:<28} {:>8} {:>8} {:>14} {:>12} {:>12}",
        "path", "MB/s", "vs TCP", "4 KiB put ms", "owner s/GB", "peer s/GB"
    );
    for (name, f) in [
        ("TCP + Noise (port forward)", &tcp),
        ("iroh direct (hole punched)", &direct),
        ("iroh relayed", &relayed),
    ] {
        println!(
            "{name:<28} {:>8.1} {:>7.0}% {:>14.0} {:>12.2} {:>12.2}",
            f.mb_s,
            f.mb_s / tcp.mb_s * 100.0,
            f.small_ms,
            f.owner_s_per_gb,
            f.peer_s_per_gb
        );
    }
}
