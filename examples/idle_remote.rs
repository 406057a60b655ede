//! How much CPU a node spends doing nothing while it keeps paths to remote peers: one node
//! paired with `--peers` nodes in other homes (network namespaces, each home behind its own
//! NAT, a relay of the run's own on the "internet" between them), all online and idle. Prints
//! the hub's and one peer's CPU share over `--secs`, for peers reached through the relay
//! (symmetric NATs) and directly (holes punched), and the hub's RSS. Needs root; sends nothing
//! outside the namespaces it makes.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example idle_remote -- [--peers 10] [--secs 60]
//! ```
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use shard_testkit::nodes::homes::{Homes, Nat, all_online_over as all_online};

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn measure(nat: Nat, peers: usize, secs: u64) {
    let path = match nat {
        Nat::PerEndpoint => "direct",
        Nat::Symmetric => "relay",
    };
    let spec: Vec<(Nat, usize)> = (0..=peers).map(|_| (nat, 1)).collect();
    let mut homes = Homes::behind_nats(&spec);
    homes.start_relay();
    let relay = homes.relay_url();
    for i in 0..=peers {
        homes.init(i, &format!("node{i}"), &relay);
        homes.serve(i, &[]);
    }
    for i in 1..=peers {
        let code = homes.json(0, &["invite"])["code"]
            .as_str()
            .unwrap()
            .to_string();
        homes.json(i, &["join", &code]);
    }
    let start = Instant::now();
    homes.wait_peers(0, Duration::from_secs(180), |p| all_online(p, peers, path));
    let settled = start.elapsed();
    // Let pairing's catch-up work (repins, first health rounds) finish before measuring.
    std::thread::sleep(Duration::from_secs(15));
    let hub = homes.pid(0).unwrap();
    let peer = homes.pid(1).unwrap();
    let cpu = bench_nodes::pid_cpu_seconds;
    let (hub0, peer0) = (cpu(hub), cpu(peer));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = t0.elapsed().as_secs_f64();
    let share = |secs: f64| secs / elapsed * 100.0;
    let hub_cpu = share(cpu(hub) - hub0);
    let peer_cpu = share(cpu(peer) - peer0);
    let still = all_online(&homes.json(0, &["peers"]), peers, path);
    println!(
        "{path:>6}: {peers} peers online after {:.1} s; idle over {elapsed:.0} s: hub {hub_cpu:.2}% CPU, \
         a peer {peer_cpu:.2}% CPU; hub RSS {:.1} MiB; all still online: {still}",
        settled.as_secs_f64(),
        rss_mib(hub),
    );
}

fn main() {
    let peers: usize = bench_nodes::flag("--peers").map_or(10, |v| v.parse().unwrap());
    let secs: u64 = bench_nodes::flag("--secs").map_or(60, |v| v.parse().unwrap());
    measure(Nat::Symmetric, peers, secs);
    measure(Nat::PerEndpoint, peers, secs);
}
