//! Finding peers on a LAN with real multicast, inside network namespaces these tests create and
//! remove themselves (no packet leaves them). Skipped, with the reason printed, when not root.
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

use shard_testkit::nodes as common;

use std::time::{Duration, Instant};

use common::lan::{Lan, namespaces_or_skip};
use serde_json::Value;

/// Waits until `check` holds for node `i`'s `peers --json`, at most `within`; returns the time.
fn wait_peers(
    lan: &Lan,
    i: usize,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let peers = lan.json(i, &["peers"]);
        if check(&peers) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "node {}: {what} not within {within:?}: {peers}\n--- log ---\n{}",
            i + 1,
            lan.log(i)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn online(peers: &Value, name: &str) -> Option<String> {
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name && p["online"] == true)
        .and_then(|p| p["addr"].as_str().map(str::to_string))
}

#[test]
fn three_nodes_find_each_other_pair_and_follow_an_address_change() {
    if !namespaces_or_skip() {
        return;
    }
    let mut lan = Lan::new(3);
    for i in 0..3 {
        lan.init(i, &format!("n{}", i + 1), "on");
        lan.serve(i, &[]);
    }
    // Unpaired, they see each other as nearby — listed, never trusted.
    for i in 0..3 {
        let took = wait_peers(&lan, i, Duration::from_secs(5), "the others nearby", |p| {
            names(&p["nearby"]).len() == 2
        });
        println!("node {} saw both others nearby after {took:?}", i + 1);
        assert!(
            lan.json(i, &["peers"])["peers"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    // Pair n2 and n3 with n1, by invite code.
    for j in [1, 2] {
        let code = lan.json(0, &["invite"])["code"]
            .as_str()
            .unwrap()
            .to_string();
        let out = lan.shard(j, &["join", &code]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_peers(&lan, 0, Duration::from_secs(5), "n2 and n3 online", |p| {
        online(p, "n2").is_some() && online(p, "n3").is_some()
    });
    // Paired nodes leave the nearby list.
    assert!(names(&lan.json(0, &["peers"])["nearby"]).is_empty());

    // n2 gets a new address (a new DHCP lease): n1 finds it again, by its id, by itself.
    // (About 2.5 s on a quiet machine, printed below; the bound leaves room for a CI machine
    // busy with the other tests.)
    lan.change_addr(1, "10.77.0.12");
    let took = wait_peers(
        &lan,
        0,
        Duration::from_secs(12),
        "n2 back at its new address",
        |p| online(p, "n2").is_some_and(|a| a.starts_with("10.77.0.12:")),
    );
    println!("n1 reconnected to n2 at its new address {took:?} after the change");
    // The pairing still works: a share round trip goes through (ping shows in rtt).
    let peers = lan.json(0, &["peers"]);
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "n2" && p["online"] == true)
    );
}

#[test]
fn a_no_mdns_node_is_not_announced_but_still_finds_its_peers() {
    if !namespaces_or_skip() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.init(0, "loud", "on");
    lan.init(1, "quiet", "on");
    lan.init(2, "watcher", "on");
    lan.serve(0, &[]);
    lan.serve(1, &["--no-mdns"]);
    lan.serve(2, &[]);
    // The quiet node sees the others…
    wait_peers(
        &lan,
        1,
        Duration::from_secs(5),
        "loud and watcher nearby",
        |p| names(&p["nearby"]).len() == 2,
    );
    // …while they never see it.
    std::thread::sleep(Duration::from_secs(3));
    for i in [0, 2] {
        let nearby = names(&lan.json(i, &["peers"])["nearby"]);
        assert!(
            !nearby.contains(&"quiet".to_string()),
            "node {} saw the quiet node: {nearby:?}",
            i + 1
        );
    }
}

/// The figure for BENCHMARKS.md (not a pass/fail test): `scripts/discovery-bench`.
#[test]
#[ignore = "benchmark: run by scripts/discovery-bench"]
fn timing_from_start_to_all_paired_peers_connected() {
    if !namespaces_or_skip() {
        return;
    }
    for n in [3usize, 10] {
        let mut lan = Lan::new(n);
        for i in 0..n {
            lan.init(i, &format!("n{}", i + 1), "on");
            lan.serve(i, &[]);
        }
        for j in 1..n {
            let code = lan.json(0, &["invite"])["code"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(lan.shard(j, &["join", &code]).status.success());
        }
        let all = |p: &Value| (2..=n).all(|j| online(p, &format!("n{j}")).is_some());
        wait_peers(&lan, 0, Duration::from_secs(30), "all peers online", all);
        // Everyone stops; every peer comes back with a new address (new DHCP leases).
        for i in 0..n {
            lan.kill(i);
        }
        for j in 1..n {
            lan.change_addr(j, &format!("10.77.0.{}", 100 + j));
        }
        let start = Instant::now();
        for i in 0..n {
            lan.serve(i, &[]);
        }
        let started = start.elapsed();
        let connected = wait_peers(
            &lan,
            0,
            Duration::from_secs(60),
            "all peers online again",
            all,
        ) + started;
        println!(
            "{n} nodes: all {} peers connected {:.2} s after the first start ({:.2} s to start them all), every peer at a new address",
            n - 1,
            connected.as_secs_f64(),
            started.as_secs_f64()
        );
    }
}
