//! Health as a user meets it: shares lost or damaged on a peer's disk are found by `check`
//! (and by the peers' own scrub), rebuilt by `repair` (or by the node on its own), peers can
//! be removed for good, and a repair killed half-way never makes anything worse.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation
)]

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestNode, random_bytes, stderr, stdout};
use serde_json::{Value, json};

/// Extra settings for a node's config file, before it starts.
fn configure(node: &TestNode, toml: &str) {
    let path = node.home().join("config.toml");
    let text = fs::read_to_string(&path).unwrap();
    // The new [health] table replaces the one `init` wrote.
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            skipping = line.trim() == "[health]" && toml.contains("[health]");
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str(toml);
    fs::write(path, kept).unwrap();
}

/// An owner (account "alice") and `peers` storage peers, all connected.
fn swarm(peers: usize, owner_config: &str, peer_config: &str) -> (TestNode, Vec<TestNode>) {
    let mut owner = TestNode::init("owner");
    configure(&owner, owner_config);
    owner.create_account("alice");
    owner.serve(&["--login", "alice"]);
    let peers: Vec<TestNode> = (0..peers)
        .map(|i| {
            let mut p = TestNode::init(&format!("peer{i}"));
            configure(&p, peer_config);
            p.serve(&[]);
            p
        })
        .collect();
    for p in &peers {
        owner.pair_with(p);
    }
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    owner.wait_online(&names, Duration::from_secs(15));
    (owner, peers)
}

/// Stores files of these sizes; returns (name, bytes) of each.
fn store_files(
    owner: &TestNode,
    work: &Path,
    sizes: &[usize],
    extra: &[&str],
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("file{i}.bin");
        let data = random_bytes(*size, i as u64 + 11);
        fs::write(work.join(&name), &data).unwrap();
        let path = work.join(&name);
        let mut args = vec!["put", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        owner.json(&args);
        files.push((name, data));
    }
    files
}

/// Every file restores, bit-exact.
fn restore_all(owner: &TestNode, files: &[(String, Vec<u8>)]) {
    let out = tempfile::tempdir().unwrap();
    for (name, data) in files {
        let to = out.path().join(name);
        owner.json(&["get", name, "-o", to.to_str().unwrap()]);
        assert!(
            fs::read(&to).unwrap() == *data,
            "{name} differs after restore"
        );
    }
}

/// The share files in a node's store (the scatter layout hides them among harmless names).
fn share_files(node: &TestNode) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue; // index, temp files, quarantine
            }
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&node.home().join("store"), &mut out);
    out.sort();
    out
}

/// `check --json` (or with more arguments): exit code and report.
fn check(owner: &TestNode, args: &[&str]) -> (i32, Value) {
    let mut full = vec!["--json", "check"];
    full.extend_from_slice(args);
    let out = owner.run(&full);
    let report = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("check: {e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), report)
}

fn node_report<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

fn flip_a_byte(path: &Path) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let at = len / 2;
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut b = [0u8];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn deleted_share_files_are_reported_then_rebuilt() {
    let (owner, peers) = swarm(4, "", "");
    let work = tempfile::tempdir().unwrap();
    let files = store_files(&owner, work.path(), &[6 << 20, 200_000, 3 << 20], &[]);
    let (code, report) = check(&owner, &[]);
    assert_eq!((code, report["healthy"].as_u64()), (0, Some(3)), "{report}");

    // Half of peer0's share files vanish.
    let on_disk = share_files(&peers[0]);
    assert!(on_disk.len() >= 4, "{on_disk:?}");
    for path in on_disk.iter().step_by(2) {
        fs::remove_file(path).unwrap();
    }
    let (code, report) = check(&owner, &[]);
    assert_eq!(code, 1, "degraded files must fail the check: {report}");
    let missing = node_report(&report, "peer0")["missing"].as_u64().unwrap();
    assert!(missing > 0, "{report}");
    assert!(report["degraded"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["lost"], 0);
    let degraded = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["state"] == "degraded")
        .unwrap();
    assert_eq!(
        degraded["worst_chunk"]["survives_losses"], 1,
        "4 of 5 good, 3 needed: {degraded}"
    );
    // The text form names the peer and the fix.
    let text = owner.run(&["check"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(stdout(&text).contains("peer0"), "{}", stdout(&text));
    assert!(stdout(&text).contains("shard repair"), "{}", stdout(&text));

    let repaired = owner.json(&["repair"]);
    assert_eq!(repaired["ok"], true, "{repaired}");
    assert_eq!(
        repaired["shares_rebuilt"].as_u64(),
        Some(missing),
        "{repaired}"
    );
    let (code, report) = check(&owner, &["--read-data"]);
    assert_eq!((code, report["healthy"].as_u64()), (0, Some(3)), "{report}");
    assert_eq!(report["read"]["bad"], 0);
    assert!(report["read"]["shares"].as_u64().unwrap() >= 15, "{report}");
    restore_all(&owner, &files);
    // Nothing more to do.
    let again = owner.json(&["repair"]);
    assert_eq!(again["shares_rebuilt"], 0, "{again}");
}

/// The biggest share files of a node (file shares, not the small catalog-snapshot ones).
fn biggest_share_files(node: &TestNode, count: usize) -> Vec<PathBuf> {
    let mut files = share_files(node);
    files.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    files.truncate(count);
    files
}

#[test]
fn damaged_shares_pass_a_quick_check_but_not_read_data_and_are_repaired() {
    // No background scrub here: what finds the damage is the owner reading the bytes.
    let (owner, peers) = swarm(4, "", "[health]\nscrub_kib_per_sec = 0\n");
    let work = tempfile::tempdir().unwrap();
    let files = store_files(&owner, work.path(), &[5 << 20, 100_000], &[]);
    for path in biggest_share_files(&peers[1], 2) {
        flip_a_byte(&path);
    }
    // The peer still lists the shares: a quick check cannot tell.
    let (code, report) = check(&owner, &[]);
    assert_eq!(code, 0, "{report}");
    let (code, report) = check(&owner, &["--read-data=100%"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(node_report(&report, "peer1")["bad"], 2, "{report}");
    assert_eq!(report["read"]["bad"], 2, "{report}");
    // A sample reads less.
    let (_, sampled) = check(&owner, &["--read-data=10%"]);
    assert!(
        sampled["read"]["shares"].as_u64().unwrap() < report["read"]["shares"].as_u64().unwrap(),
        "{sampled}"
    );
    let out = owner.run(&["check", "--read-data=150%"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("percentage"), "{}", stderr(&out));

    // The read made peer1 quarantine the two shares; the owner's node may already have
    // rebuilt them on its own (it asks peers for quarantined shares when they connect).
    let repaired = owner.json(&["repair"]);
    assert_eq!(repaired["ok"], true, "{repaired}");
    assert!(
        repaired["shares_rebuilt"] == 2 || owner.log().contains("automatic repair of alice"),
        "{repaired}"
    );
    let (code, report) = check(&owner, &["--read-data"]);
    assert_eq!((code, report["healthy"].as_u64()), (0, Some(2)), "{report}");
    restore_all(&owner, &files);
}

#[test]
fn the_peers_scrub_finds_damage_and_the_owner_repairs_it_unasked() {
    // The owner looks for reported damage every second; peers scrub fast, a pass a second.
    let (owner, peers) = swarm(
        4,
        "[health]\nrepair_check_secs = 1\n",
        "[health]\nscrub_kib_per_sec = 1048576\nscrub_every_secs = 1\n",
    );
    let work = tempfile::tempdir().unwrap();
    let files = store_files(&owner, work.path(), &[5 << 20, 100_000], &[]);
    for path in biggest_share_files(&peers[2], 2) {
        flip_a_byte(&path);
    }
    peers[2].wait_log("is corrupt; quarantined", Duration::from_secs(30));
    owner.wait_log("automatic repair of alice", Duration::from_secs(30));
    let start = Instant::now();
    loop {
        let (code, report) = check(&owner, &["--read-data"]);
        if code == 0 && report["healthy"] == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never repaired: {report}\n{}",
            owner.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    restore_all(&owner, &files);
}

#[test]
fn a_removed_peer_has_its_shares_moved_first_or_rebuilt_after() {
    let (mut owner, mut peers) = swarm(5, "[health]\nrepair_check_secs = 1\n", "");
    let work = tempfile::tempdir().unwrap();
    // 2-of-4 over 6 nodes: every chunk leaves two nodes without a share of it.
    let files = store_files(
        &owner,
        work.path(),
        &[4 << 20, 300_000],
        &["--shares", "2/4"],
    );
    let held = |p: &TestNode| p.json(&["status"])["usage"]["shares"].as_u64().unwrap();
    assert!(held(&peers[0]) > 0);

    // Removed while online: its shares are moved first.
    let id = peers[0].id();
    let removed = owner.json(&["peers", "rm", &id]);
    assert_eq!(removed["removed"], "peer0", "{removed}");
    assert!(
        removed["moved"][0]["shares_moved"].as_u64().unwrap() > 0,
        "{removed}"
    );
    assert!(owner.peers().iter().all(|p| p["name"] != "peer0"));
    peers[0].kill9();
    let (code, report) = check(&owner, &[]);
    assert_eq!((code, report["healthy"].as_u64()), (0, Some(2)), "{report}");
    restore_all(&owner, &files);

    // Gone for good, forgotten at once: the automatic repair rebuilds its shares.
    peers[1].kill9();
    let removed = owner.json(&["peers", "rm", "peer1", "--now"]);
    assert_eq!(removed["now"], true);
    let start = Instant::now();
    loop {
        let (code, report) = check(&owner, &[]);
        if code == 0 {
            assert!(
                report["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["node"] != "peer1")
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never repaired: {report}\n{}",
            owner.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    restore_all(&owner, &files);
    // Unknown names are refused with the fix.
    let out = owner.run(&["peers", "rm", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("shard peers"), "{}", stderr(&out));
    drop(peers);
    owner.stop();
}

#[test]
fn a_repair_killed_half_way_resumes_and_never_leaves_fewer_shares() {
    let (mut owner, peers) = swarm(4, "", "");
    let work = tempfile::tempdir().unwrap();
    let files = store_files(&owner, work.path(), &[48 << 20], &[]);
    for path in share_files(&peers[3]) {
        fs::remove_file(path).unwrap();
    }
    let (_, before) = check(&owner, &[]);
    let good_before = before["files"][0]["worst_chunk"]["good"].as_u64().unwrap();
    assert_eq!(good_before, 4, "{before}");

    // Repair in the node; kill -9 the node as soon as it has rebuilt something.
    let job = owner.api("POST", "/v1/repair", Some(json!({})))["job"]
        .as_u64()
        .unwrap();
    let start = Instant::now();
    let mut killed_mid_way = false;
    loop {
        let state = owner.api("GET", &format!("/v1/jobs/{job}"), None);
        if state["state"] != "running" {
            break;
        }
        if state["bytes_done"].as_u64().unwrap_or(0) > 0 {
            owner.kill9();
            killed_mid_way = true;
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("killed mid-way: {killed_mid_way}");
    if !owner.is_running() {
        owner.restart(Some("alice"));
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        owner.wait_online(&names, Duration::from_secs(15));
    }
    // Nothing got worse: every chunk still has at least the good shares it had.
    let (_, after) = check(&owner, &[]);
    assert_eq!(after["lost"], 0, "{after}");
    for f in after["files"].as_array().unwrap() {
        if let Some(good) = f["worst_chunk"]["good"].as_u64() {
            assert!(good >= good_before, "fewer good shares after the kill: {f}");
        }
    }
    // Running it again finishes the job.
    let repaired = owner.json(&["repair"]);
    assert_eq!(repaired["ok"], true, "{repaired}");
    let (code, report) = check(&owner, &[]);
    assert_eq!(code, 0, "{report}");
    restore_all(&owner, &files);
}
