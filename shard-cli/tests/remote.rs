//! Peers in other homes: nodes in network namespaces that cannot reach each other pair by
//! invite code, store and restore through a relay of the test's own (`shard relay`), come back
//! by themselves when the relay restarts; a node with `--relay none` sends nothing anywhere.
//! Nothing leaves the namespaces these tests create. Skipped, with the reason printed, when
//! not root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::homes::Homes;
use common::lan::is_root;
use serde_json::Value;

fn online_over(peers: &Value, n: usize, path: &str) -> bool {
    let list = peers["peers"].as_array().cloned().unwrap_or_default();
    list.len() == n
        && list
            .iter()
            .all(|p| p["online"] == true && p["path"].as_str() == Some(path))
}

/// Pairs home `joiner` with home `inviter` by a code, as two people on the phone would.
fn pair(homes: &Homes, inviter: usize, joiner: usize) {
    let code = homes.json(inviter, &["invite"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let joined = homes.json(joiner, &["join", &code]);
    assert!(joined["peer"]["id"].is_string(), "{joined}");
}

#[test]
fn homes_that_cannot_reach_each_other_pair_store_and_restore_through_a_relay() {
    if !is_root() {
        eprintln!("SKIPPED: creating network namespaces needs root");
        return;
    }
    let mut homes = Homes::new(3);
    homes.start_relay();
    let relay = homes.relay_url();
    for (i, name) in ["owner", "aunt", "friend"].iter().enumerate() {
        homes.init(i, name, &relay);
    }
    let out = homes.shard(0, &["--json", "account", "create", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    homes.serve(0, &["--login", "alice"]);
    homes.serve(1, &[]);
    homes.serve(2, &[]);

    // The codes carry the owner's LAN address too, which means nothing from the other homes:
    // pairing goes through the relay.
    pair(&homes, 0, 1);
    pair(&homes, 0, 2);
    let peers = homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 2, "relay"));
    for p in peers["peers"].as_array().unwrap() {
        assert!(
            p["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("iroh:")),
            "the peer's iroh key is pinned: {p}"
        );
    }
    let status = homes.json(0, &["status"]);
    assert!(
        status["wan"]["relays"][0]
            .as_str()
            .is_some_and(|r| r.starts_with(&relay)),
        "status names the relay: {status}"
    );

    // A file and a tree, 2-of-3 over the three homes.
    let work = homes.dir().join("work");
    std::fs::create_dir_all(work.join("tree/sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    std::fs::write(work.join("papers.bin"), &big).unwrap();
    std::fs::write(work.join("tree/a.txt"), b"the deeds").unwrap();
    std::fs::write(work.join("tree/sub/b.txt"), b"the will").unwrap();
    let stored = homes.json(
        0,
        &[
            "put",
            work.join("papers.bin").to_str().unwrap(),
            work.join("tree").to_str().unwrap(),
            "--shares",
            "2/3",
        ],
    );
    assert_eq!(stored["files"], 3, "{stored}");

    // The aunt's laptop is off: the owner and the friend are enough.
    homes.kill(1);
    let out_dir = homes.dir().join("restored");
    homes.json(
        0,
        &[
            "get",
            "papers.bin",
            "-o",
            out_dir.join("papers.bin").to_str().unwrap(),
        ],
    );
    homes.json(
        0,
        &["get", "tree", "-o", out_dir.join("tree").to_str().unwrap()],
    );
    assert!(std::fs::read(out_dir.join("papers.bin")).unwrap() == big);
    assert_eq!(
        std::fs::read(out_dir.join("tree/a.txt")).unwrap(),
        b"the deeds"
    );
    assert_eq!(
        std::fs::read(out_dir.join("tree/sub/b.txt")).unwrap(),
        b"the will"
    );

    // The relay goes down and comes back: the friend comes back by itself.
    homes.stop_relay();
    homes.wait_peers(0, Duration::from_secs(60), |p| {
        p["peers"]
            .as_array()
            .is_some_and(|l| l.iter().all(|p| p["online"] == false))
    });
    homes.start_relay();
    // The aunt's laptop comes back too; both come back through the relay by themselves.
    homes.serve(1, &[]);
    homes.wait_peers(0, Duration::from_secs(90), |p| online_over(p, 2, "relay"));
    let check = homes.shard(0, &["check"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// What home `i` sends on its one link (to the "internet") while its node starts, runs for a
/// few seconds and answers `shard status`, as tcpdump printed it.
fn sent_while_serving(homes: &mut Homes, i: usize) -> String {
    let capture = homes.dir().join(format!("capture{i}.txt"));
    let mut tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            homes.ns(i),
            "tcpdump",
            "-n",
            "-l",
            "-i",
            homes.dev(i),
        ])
        .args(["udp or tcp"])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (scripts/test installs it)");
    std::thread::sleep(Duration::from_millis(500));
    homes.serve(i, &[]);
    let _ = homes.json(i, &["status"]);
    std::thread::sleep(Duration::from_secs(6));
    homes.kill(i);
    let _ = tcpdump.kill();
    let _ = tcpdump.wait();
    std::fs::read_to_string(&capture).unwrap_or_default()
}

#[test]
fn a_node_without_relays_sends_nothing_off_its_machine() {
    if !is_root() {
        eprintln!("SKIPPED: creating network namespaces needs root");
        return;
    }
    let mut homes = Homes::new(2);
    homes.init(0, "quiet", "none");
    // The control: a node given a relay (none runs) is seen trying to reach it, so the
    // capture does see what a node sends.
    let relay = homes.relay_url();
    homes.init(1, "control", &relay);
    let seen = sent_while_serving(&mut homes, 1);
    assert!(
        seen.contains("10.99.9.9"),
        "the capture saw nothing: {seen:?}"
    );

    homes.serve(0, &[]);
    let status = homes.json(0, &["status"]);
    assert!(status["wan"].is_null(), "{status}");
    let out = homes.shard(0, &["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("relays: none"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    homes.kill(0);
    // No DNS lookup, no relay, nothing.
    let seen = sent_while_serving(&mut homes, 0);
    assert!(seen.trim().is_empty(), "the node sent:\n{seen}");
}
