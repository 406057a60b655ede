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

use shard_testkit::nodes as common;

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
    swarm_with(peers, owner_config, peer_config, |_| {})
}

/// [`swarm`], with `edit` run on each node's home before it starts.
fn swarm_with(
    peers: usize,
    owner_config: &str,
    peer_config: &str,
    edit: impl Fn(&Path),
) -> (TestNode, Vec<TestNode>) {
    let mut owner = TestNode::init("owner");
    configure(&owner, owner_config);
    edit(&owner.home());
    owner.create_account("alice");
    owner.serve(&["--login", "alice"]);
    let peers: Vec<TestNode> = (0..peers)
        .map(|i| {
            let mut p = TestNode::init(&format!("peer{i}"));
            configure(&p, peer_config);
            edit(&p.home());
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
    assert_eq!(out.status.code(), Some(2), "a usage error");
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
    // 2-of-4 over 6 nodes: every pack leaves two nodes without a share of it. Seven puts,
    // a pack each: peer0 holds a share of one of them but for a chance of 1 in 3^7.
    let files = store_files(
        &owner,
        work.path(),
        &[
            4 << 20,
            300_000,
            300_000,
            300_000,
            300_000,
            300_000,
            300_000,
        ],
        &["--shares", "2/4"],
    );
    // A peer holding shares of the files (not only of the catalog snapshots, which a peer's
    // share count includes and a removal does not move): the one `check` asks the most.
    let (_, report) = check(&owner, &[]);
    let asked = |i: usize| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == format!("peer{i}").as_str())
            .and_then(|n| n["shares"].as_u64())
    };
    let a = (0..peers.len())
        .max_by_key(|&i| asked(i).unwrap_or(0))
        .unwrap();
    assert!(asked(a).unwrap_or(0) > 0, "{report}");
    let b = (a + 1) % peers.len();
    let (name_a, name_b) = (format!("peer{a}"), format!("peer{b}"));

    // Removed while online: its shares are moved first.
    let id = peers[a].id();
    let removed = owner.json(&["peers", "rm", &id]);
    assert_eq!(removed["removed"], name_a.as_str(), "{removed}");
    assert!(
        removed["moved"][0]["shares_moved"].as_u64().unwrap_or(0) > 0,
        "{removed}"
    );
    assert!(owner.peers().iter().all(|p| p["name"] != name_a.as_str()));
    peers[a].kill9();
    let (code, report) = check(&owner, &[]);
    assert_eq!(
        (code, report["healthy"].as_u64()),
        (0, Some(files.len() as u64)),
        "{report}"
    );
    restore_all(&owner, &files);

    // Gone for good, forgotten at once: the automatic repair rebuilds its shares.
    peers[b].kill9();
    let removed = owner.json(&["peers", "rm", &name_b, "--now"]);
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
                    .all(|n| n["node"] != name_b.as_str())
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

/// Peers that lie (a `shard` built with the `adversary` feature, told how by `SHARD_ADVERSARY`;
/// `scripts/test` builds it so): what they say is checked against bytes, routed around, and
/// named in the reports.
#[cfg(feature = "adversary")]
mod lying_peers {
    use super::*;

    /// The owner, `honest` storage peers, and a peer called "liar" started with these lies.
    fn swarm_with_liar(honest: usize, lies: &str) -> (TestNode, Vec<TestNode>, TestNode) {
        let (owner, peers) = swarm(honest, "", "[health]\nscrub_kib_per_sec = 0\n");
        let mut liar = TestNode::init("liar");
        liar.serve_env(&[], &[("SHARD_ADVERSARY", lies)]);
        owner.pair_with(&liar);
        owner.wait_online(&["liar"], Duration::from_secs(15));
        (owner, peers, liar)
    }

    /// A peer that says it has its shares, then serves other bytes for them: restores read
    /// around it, `check --read-data` names it, `repair` moves its shares to honest nodes.
    fn served_bytes_are_checked(lies: &str) {
        let (owner, _peers, liar) = swarm_with_liar(4, lies);
        let work = tempfile::tempdir().unwrap();
        // 3 of 5 over 6 nodes: every chunk leaves one node free for a rebuilt share.
        // A dozen chunks: the restore surely asks the liar for some of its data shares.
        let mut sizes = vec![3 << 20, 150_000];
        sizes.extend([40_000; 10]);
        let files = store_files(&owner, work.path(), &sizes, &["--shares", "3/5"]);
        let held = liar.json(&["status"])["usage"]["shares"].as_u64().unwrap();
        assert!(held >= 2, "the liar holds shares: {held}");

        // A restore reads only the byte ranges it needs, from the data shares that hold them
        // (often this node's own): it reads around the liar whenever it asks it, and names it
        // then (tried in-process, where placement is in order); `check --read-data` reads
        // every share and always does.
        restore_all(&owner, &files);
        // Asking who has what cannot tell a liar; reading the bytes can.
        let (code, report) = check(&owner, &[]);
        assert_eq!(code, 0, "{report}");
        let (code, report) = check(&owner, &["--read-data=100%"]);
        assert_eq!(code, 1, "{report}");
        let bad = node_report(&report, "liar")["bad"].as_u64().unwrap();
        assert!(bad >= 2, "{report}");
        for honest in ["owner", "peer0", "peer1", "peer2", "peer3"] {
            if let Some(n) = report["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["node"] == honest)
            {
                assert_eq!(n["bad"], 0, "{honest} is honest: {report}");
            }
        }
        let text = stdout(&owner.run(&["check", "--read-data=100%"]));
        assert!(text.contains("liar"), "{text}");

        let repaired = owner.json(&["repair"]);
        assert_eq!(repaired["ok"], true, "{repaired}");
        assert!(
            repaired["shares_rebuilt"].as_u64().unwrap() >= bad,
            "{repaired}"
        );
        // Nothing the owner relies on is on the liar any more.
        let (code, report) = check(&owner, &["--read-data=100%"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["read"]["bad"], 0, "{report}");
        restore_all(&owner, &files);
    }

    #[test]
    fn a_peer_serving_changed_bytes_is_found_and_routed_around() {
        served_bytes_are_checked("wrong-bytes");
    }

    #[test]
    fn a_peer_serving_truncated_shares_is_found_and_routed_around() {
        served_bytes_are_checked("truncated");
    }

    #[test]
    fn a_peer_serving_another_share_is_found_and_routed_around() {
        served_bytes_are_checked("other-share");
    }

    /// A peer that claims a terabyte free and refuses everything: a put costs it one try, the
    /// shares go elsewhere, and the summary names it; when no node is left to take its place
    /// the put fails, says so, and lists nothing.
    #[test]
    fn a_peer_lying_about_its_capacity_is_named_and_skipped() {
        let (owner, _peers, liar) = swarm_with_liar(3, "fake-capacity");
        let work = tempfile::tempdir().unwrap();
        // Puts of two packs each (four of the five nodes per pack, drawn at random): put until
        // one offers the liar a share (six tries leave a chance of 1 in 5^12 that none does).
        let mut stored = Vec::new();
        let mut named = None;
        let mut logged = 0;
        for attempt in 0..6u64 {
            let data = random_bytes(24 << 20, 77 + attempt);
            let name = format!("papers{attempt}.bin");
            let path = work.path().join(&name);
            fs::write(&path, &data).unwrap();
            logged = owner.log().len();
            let put = owner.json(&["put", path.to_str().unwrap(), "--shares", "2/4"]);
            assert_eq!(put["failed"], json!([]), "{put}");
            stored.push((name, data));
            if put["full_nodes"] != json!([]) {
                named = Some(put);
                break;
            }
        }
        let put = named.expect("a put offered the liar a share");
        assert_eq!(put["full_nodes"], json!(["liar"]), "{put}");
        assert_eq!(
            liar.json(&["status"])["usage"]["shares"],
            0,
            "the liar kept nothing"
        );
        restore_all(&owner, &stored);
        // Refusals since that put began: one try per pack in flight, and the catalog
        // snapshot written after the put (a job of its own) may offer the liar one share.
        let warned = owner.log()[logged..]
            .lines()
            .filter(|l| l.contains("share store is full"))
            .count();
        let packs = put["packs_sent"].as_u64().unwrap() as usize;
        assert!(
            warned >= 1 && warned <= packs + 1,
            "a refusal costs one try per pack in flight ({packs}) and per snapshot: {warned}"
        );

        // Five nodes needed, four honest: refused, nothing listed.
        let other = work.path().join("more.bin");
        fs::write(&other, random_bytes(1 << 20, 78)).unwrap();
        let out = owner.run(&["put", other.to_str().unwrap(), "--shares", "2/5"]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("liar") && stderr(&out).contains("full"),
            "{}",
            stderr(&out)
        );
        assert!(!stdout(&owner.run(&["ls"])).contains("more.bin"));
    }

    /// A node that fills up in the middle of a repair: the rest of the rebuilt shares go to
    /// other nodes, the report names it, every file is whole again.
    #[test]
    fn a_repair_target_filling_up_halfway_is_routed_around() {
        // Placement is weighted by free room: with a quota of 1 GiB on each of these nodes and
        // none on the new one (taken as 1 TiB), the new node is nearly always chosen while it
        // takes shares, so it fills up during the repair whatever else the draws do. (Without
        // quotas, a repair of 13 packs offered it fewer than three shares one run in seven.)
        let no_scrub = "[health]\nscrub_kib_per_sec = 0\n";
        let (owner, peers) = swarm_with(3, no_scrub, no_scrub, |home| {
            let path = home.join("config.toml");
            let text = fs::read_to_string(&path).unwrap();
            let text = text.replace("[store]\n", "[store]\nquota_bytes = 1073741824\n");
            fs::write(path, text).unwrap();
        });
        let work = tempfile::tempdir().unwrap();
        // Forty puts of one small pack each, 2 of 3 over 4 nodes: peer0 holds a share of most.
        let files = store_files(&owner, work.path(), &[200_000; 40], &["--shares", "2/3"]);
        // Now a node that will take four shares and then be full (the catalog snapshot written
        // when it is paired may take one or two of them).
        let mut small = TestNode::init("small");
        small.serve_env(&[], &[("SHARD_ADVERSARY", "fill-after=4")]);
        owner.pair_with(&small);
        owner.wait_online(&["small"], Duration::from_secs(15));
        for path in share_files(&peers[0]) {
            fs::remove_file(path).unwrap();
        }
        let repaired = owner.json(&["repair"]);
        assert_eq!(repaired["ok"], true, "{repaired}");
        assert!(
            repaired["shares_rebuilt"].as_u64().unwrap() >= 8,
            "{repaired}"
        );
        assert_eq!(repaired["full_nodes"], json!(["small"]), "{repaired}");
        assert_eq!(
            small.json(&["status"])["usage"]["shares"],
            4,
            "the new node is filled, not passed over"
        );
        let (code, report) = check(&owner, &["--read-data"]);
        assert_eq!(code, 0, "{report}");
        restore_all(&owner, &files);
    }

    /// A peer that never answers share requests: a restore asks another holder after a few
    /// seconds instead of waiting for the request timeout (30 s) chunk after chunk.
    #[test]
    fn a_stalled_peer_does_not_stall_restores() {
        let (owner, _peers, _liar) = swarm_with_liar(4, "stall");
        let work = tempfile::tempdir().unwrap();
        let mut sizes = vec![3 << 20];
        sizes.extend([40_000; 8]);
        let files = store_files(&owner, work.path(), &sizes, &["--shares", "3/5"]);
        // Each restore, on its own: one that waits out the stalled request takes the whole
        // request timeout (30 s); one that asks another holder after 3 s takes a few seconds.
        // (The total depends on how many files touch the liar, so it is not what is bounded.)
        let mut slowest = Duration::ZERO;
        for file in &files {
            let started = Instant::now();
            restore_all(&owner, std::slice::from_ref(file));
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(15),
                "restoring {} waited for the stalled peer: {took:?}",
                file.0
            );
            slowest = slowest.max(took);
        }
        println!(
            "restored {} files past a stalled peer, the slowest in {slowest:?}",
            files.len()
        );
    }

    /// A peer that keeps serving an old catalog head (a replay): recovery on a new machine takes
    /// the newest head the honest peers keep, so nothing stored since is lost.
    #[test]
    fn a_replayed_old_catalog_head_does_not_roll_back_a_recovery() {
        let mut owner = TestNode::init("laptop");
        let code = owner.create_account("alice");
        owner.serve(&["--login", "alice"]);
        let mut nodes: Vec<TestNode> = (0..3)
            .map(|i| TestNode::start(&format!("peer{i}")))
            .collect();
        let mut liar = TestNode::init("liar");
        liar.serve_env(&[], &[("SHARD_ADVERSARY", "old-heads")]);
        nodes.push(liar);
        for p in &nodes {
            owner.pair_with(p);
        }
        let names: Vec<&str> = nodes.iter().map(|p| p.name.as_str()).collect();
        owner.wait_online(&names, Duration::from_secs(15));
        let work = tempfile::tempdir().unwrap();
        let first = store_files(&owner, work.path(), &[100_000], &[]);
        owner.wait_log("catalog snapshot 1 written", Duration::from_secs(30));
        let later = work.path().join("later.txt");
        let later_bytes = random_bytes(70_000, 99);
        fs::write(&later, &later_bytes).unwrap();
        owner.json(&["put", later.to_str().unwrap()]);
        owner.wait_log("catalog snapshot 2 written", Duration::from_secs(30));
        owner.stop();
        drop(owner);

        let fresh = TestNode::start("new-laptop");
        for p in &nodes {
            fresh.pair_with(p);
        }
        fresh.wait_online(&names, Duration::from_secs(15));
        let out = fresh.run_env(
            &["--json", "recover", "--code", &code],
            &[("SHARD_PASSWORD", "a brand new passphrase")],
        );
        assert!(out.status.success(), "{}{}", stderr(&out), fresh.log());
        let recovered: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(recovered["catalog_head"], 2, "{recovered}");
        let mut files = first;
        files.push(("later.txt".to_string(), later_bytes));
        restore_all(&fresh, &files);
    }
}

/// `shard prune` as a user sees it: nothing to do at first; after a removal, the room comes
/// back (by hand, and by the node on its own past `[health] prune_dead_percent`), and what
/// is left restores bit-exact.
#[test]
fn prune_by_hand_and_on_its_own_gives_back_removed_files_room() {
    let (owner, _peers) = swarm(
        3,
        "[health]\nrepair_check_secs = 1\nprune_dead_percent = 10\n",
        "",
    );
    let work = tempfile::tempdir().unwrap();
    let idle = owner.run(&["prune"]);
    assert!(idle.status.success(), "{}", stderr(&idle));
    assert!(
        stdout(&idle).contains("nothing to compact: no pack has 5% or more dead bytes"),
        "{}",
        stdout(&idle)
    );
    let bad = owner.run(&["prune", "--dead", "101"]);
    assert!(!bad.status.success());

    // Three folders of ten files, spread at random over a put's two packs (each pack holds
    // files of every folder); one folder removed and pruned by hand.
    let tree = work.path().join("tree");
    let mut files = Vec::new();
    for (d, dir) in ["a", "b", "c"].into_iter().enumerate() {
        fs::create_dir_all(tree.join(dir)).unwrap();
        for i in 0..10u64 {
            let data = random_bytes(30_000, d as u64 * 100 + i);
            fs::write(tree.join(dir).join(format!("f{i}.bin")), &data).unwrap();
            files.push((format!("tree/{dir}/f{i}.bin"), data));
        }
    }
    let put = owner.run(&["put", tree.to_str().unwrap(), "--shares", "2/4"]);
    assert!(put.status.success(), "{}", stderr(&put));
    // The automatic compaction is about to look too: a prune by hand may meet it running.
    let rm = owner.run(&["rm", "tree/a", "--now"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let start = Instant::now();
    loop {
        let pruned = owner.run(&["prune", "--dead", "0"]);
        if pruned.status.success() {
            let out = stdout(&pruned);
            assert!(out.contains("packs in use"), "{out}");
            break;
        }
        let err = stderr(&pruned);
        assert!(err.contains("already running"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(30), "{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = owner.json(&["prune", "--dead", "0"]);
    assert_eq!(after["dead_bytes"], 0, "{after}");
    assert_eq!(after["ok"], true, "{after}");

    // A second removal: the node compacts on its own (half of the pack is dead).
    let said = |owner: &TestNode| owner.log().matches("automatic compaction of alice").count();
    let before = said(&owner);
    let rm = owner.run(&["rm", "tree/b", "--now"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let start = Instant::now();
    while said(&owner) == before {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no automatic compaction: {}",
            owner.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = owner.json(&["prune", "--dead", "0"]);
    assert_eq!(after["dead_bytes"], 0, "{after}");
    restore_all_under(&owner, &files[20..]);
    let listed = stdout(&owner.run(&["ls"]));
    assert!(
        !listed.contains("tree/a/") && !listed.contains("tree/b/"),
        "{listed}"
    );
}

/// Every file (names with folders) restores, bit-exact.
fn restore_all_under(owner: &TestNode, files: &[(String, Vec<u8>)]) {
    let out = tempfile::tempdir().unwrap();
    for (i, (name, data)) in files.iter().enumerate() {
        let to = out.path().join(format!("{i}.out"));
        owner.json(&["get", name, "-o", to.to_str().unwrap()]);
        assert!(
            fs::read(&to).unwrap() == *data,
            "{name} differs after restore"
        );
    }
}

/// The owner killed at each phase of a put, a removal, a repair and a snapshot, through the
/// test-only crash points (`SHARD_CRASH_AT`, feature `adversary`).
#[cfg(feature = "adversary")]
mod crash_points {
    use super::*;

    /// What a crash test does while the crash point is armed.
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        Put,
        Rm,
        Repair,
        Prune,
    }

    /// The owner dies on the spot at `phase` of `op` (as kill -9 would); after a plain restart
    /// nothing acknowledged is lost, the operation run again converges, the catalog and the
    /// stores agree (no orphan shares after a removal) and `check` is healthy.
    fn crash_at(phase: &str, op: Op) {
        // No automatic compaction: the prune under test is the one the test runs.
        let (mut owner, peers) = swarm(
            3,
            "[health]\nprune_dead_percent = 0\n",
            "[health]\nscrub_kib_per_sec = 0\n",
        );
        let work = tempfile::tempdir().unwrap();
        // Six chunks or so: every node holds several of its shares.
        let kept = store_files(&owner, work.path(), &[6 << 20], &["--shares", "2/4"]);
        owner.wait_log("catalog snapshot 1 written", Duration::from_secs(30));
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        owner.stop();
        owner.restart_env(Some("alice"), &[("SHARD_CRASH_AT", phase)]);
        owner.wait_online(&names, Duration::from_secs(15));

        let later = work.path().join("later.bin");
        let later_bytes = random_bytes(3 << 20, 42);
        fs::write(&later, &later_bytes).unwrap();
        let put_later =
            |owner: &TestNode| owner.run(&["put", later.to_str().unwrap(), "--shares", "2/4"]);
        let first = match op {
            Op::Put => put_later(&owner),
            Op::Rm => owner.run(&["rm", "file0.bin", "--now"]),
            Op::Repair => {
                // The peer's pack shares go (megabytes each); its share of the catalog
                // snapshot (kilobytes) stays, so there is always a pack to repair.
                let mut removed = 0;
                for path in share_files(&peers[0]) {
                    if fs::metadata(&path).unwrap().len() >= 1 << 20 {
                        fs::remove_file(path).unwrap();
                        removed += 1;
                    }
                }
                assert!(removed > 0, "{} holds no pack share", peers[0].name);
                owner.run(&["repair"])
            }
            Op::Prune => {
                // Twenty distinct files of two folders, 2 MB: one pack is the cheapest layout
                // (a split would cost more shares), so both folders share it whatever the
                // shuffle. One folder removed: about half of it is dead. (Files that could
                // fill packs of their own may land in one together and go whole with the
                // removal, leaving nothing to compact.)
                let pair = work.path().join("pair");
                for i in 0..10u64 {
                    for dir in ["x", "y"] {
                        fs::create_dir_all(pair.join(dir)).unwrap();
                        let seed = 700 + i + u64::from(dir == "y") * 50;
                        fs::write(
                            pair.join(dir).join(format!("{i}.bin")),
                            random_bytes(100_000, seed),
                        )
                        .unwrap();
                    }
                }
                let put = owner.run(&["put", pair.to_str().unwrap(), "--shares", "2/4"]);
                assert!(put.status.success(), "{}", stderr(&put));
                let rm = owner.run(&["rm", "pair/y", "--now"]);
                assert!(rm.status.success(), "{}", stderr(&rm));
                owner.run(&["prune", "--dead", "0"])
            }
        };
        let start = Instant::now();
        while owner.is_running() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{phase} was never reached: {}{}",
                stdout(&first),
                stderr(&first)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(owner.log().contains(&format!("crash point {phase}")));
        let acknowledged = first.status.success();
        owner.restart(Some("alice"));
        owner.wait_online(&names, Duration::from_secs(15));

        let mut files = Vec::new();
        match op {
            Op::Put => {
                let later = ("later.bin".to_string(), later_bytes);
                if acknowledged {
                    // Acknowledged before the crash: there already.
                    restore_all(&owner, std::slice::from_ref(&later));
                }
                // Acknowledged or not, the put run again ends with the file stored whole.
                let again = put_later(&owner);
                assert!(again.status.success(), "{}", stderr(&again));
                files.extend(kept);
                files.push(later);
            }
            Op::Rm => {
                // Removed, whatever the crash: a second rm finds nothing or finishes it.
                let again = owner.run(&["rm", "file0.bin", "--now"]);
                assert!(
                    again.status.success() || stderr(&again).contains("no stored file"),
                    "{}",
                    stderr(&again)
                );
                assert!(!stdout(&owner.run(&["ls"])).contains("file0.bin"));
                // And its shares leave every node (only the catalog snapshot's stay).
                let start = Instant::now();
                for node in peers.iter().chain(std::iter::once(&owner)) {
                    loop {
                        let held = node.json(&["status"])["usage"]["shares"].as_u64().unwrap();
                        if held <= 2 {
                            break;
                        }
                        assert!(
                            start.elapsed() < Duration::from_secs(40),
                            "{phase}: {} still holds {held} shares of a removed file",
                            node.name
                        );
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            Op::Repair => {
                let again = owner.json(&["repair"]);
                assert_eq!(again["ok"], true, "{again}");
                files.extend(kept);
            }
            Op::Prune => {
                // The prune run again finishes: nothing dead is left, and the packs the
                // crashed one wrote are removed or used.
                let again = owner.json(&["prune", "--dead", "0"]);
                assert_eq!(again["ok"], true, "{again}");
                let after = owner.json(&["prune", "--dead", "0"]);
                assert_eq!(after["dead_bytes"], 0, "{after}");
                assert_eq!(after["unused_packs_removed"], 0, "{after}");
                let out = tempfile::tempdir().unwrap();
                for i in 0..10u64 {
                    let to = out.path().join(format!("{i}.bin"));
                    owner.json(&[
                        "get",
                        &format!("pair/x/{i}.bin"),
                        "-o",
                        to.to_str().unwrap(),
                    ]);
                    assert!(
                        fs::read(&to).unwrap() == random_bytes(100_000, 700 + i),
                        "x/{i}"
                    );
                }
                assert!(!stdout(&owner.run(&["ls"])).contains("pair/y/"));
                files.extend(kept);
            }
        }
        let _ = owner.json(&["repair"]);
        let (code, report) = check(&owner, &["--read-data"]);
        assert_eq!(code, 0, "{phase}: {report}");
        restore_all(&owner, &files);
    }

    #[test]
    fn a_crash_after_a_puts_acks_are_recorded_converges() {
        crash_at("put:acks-recorded", Op::Put);
    }

    #[test]
    fn a_crash_after_a_put_commits_converges() {
        crash_at("put:committed", Op::Put);
    }

    #[test]
    fn a_crash_after_the_snapshot_is_stored_converges() {
        crash_at("snapshot:stored", Op::Put);
    }

    #[test]
    fn a_crash_after_the_new_head_is_out_converges() {
        crash_at("snapshot:head-sent", Op::Put);
    }

    #[test]
    fn a_crash_after_rm_forgets_the_file_converges() {
        crash_at("rm:catalog-deleted", Op::Rm);
    }

    #[test]
    fn a_crash_after_rm_deletes_the_shares_converges() {
        crash_at("rm:shares-deleted", Op::Rm);
    }

    #[test]
    fn a_crash_after_repair_places_shares_converges() {
        crash_at("repair:placed", Op::Repair);
    }

    #[test]
    fn a_crash_after_repair_records_them_converges() {
        crash_at("repair:recorded", Op::Repair);
    }

    #[test]
    fn a_crash_after_prunes_copies_are_acknowledged_converges() {
        crash_at("prune:packs-acked", Op::Prune);
    }

    #[test]
    fn a_crash_after_prune_points_the_files_at_the_copies_converges() {
        crash_at("prune:relocated", Op::Prune);
    }

    /// The new machine dies at `phase` of `shard recover`; restarted, the same command run
    /// again finishes the recovery and every file comes back.
    fn recover_crash_at(phase: &str) {
        let mut laptop = TestNode::init("laptop");
        let code = laptop.create_account("alice");
        laptop.serve(&["--login", "alice"]);
        let peers: Vec<TestNode> = (0..3)
            .map(|i| TestNode::start(&format!("peer{i}")))
            .collect();
        for p in &peers {
            laptop.pair_with(p);
        }
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        laptop.wait_online(&names, Duration::from_secs(15));
        let work = tempfile::tempdir().unwrap();
        let files = store_files(
            &laptop,
            work.path(),
            &[3 << 20, 100_000],
            &["--shares", "2/4"],
        );
        laptop.wait_log("catalog snapshot 2 written", Duration::from_secs(30));
        laptop.stop();
        drop(laptop);

        let mut fresh = TestNode::init("new-laptop");
        fresh.serve_env(&[], &[("SHARD_CRASH_AT", phase)]);
        for p in &peers {
            fresh.pair_with(p);
        }
        fresh.wait_online(&names, Duration::from_secs(15));
        let recover = |node: &TestNode| {
            node.run_env(
                &["--json", "recover", "--code", &code],
                &[("SHARD_PASSWORD", "a brand new passphrase")],
            )
        };
        let first = recover(&fresh);
        let start = Instant::now();
        while fresh.is_running() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{phase} was never reached: {}",
                stderr(&first)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!first.status.success());
        assert!(fresh.log().contains(&format!("crash point {phase}")));
        fresh.restart(None);
        fresh.wait_online(&names, Duration::from_secs(15));
        let again = recover(&fresh);
        assert!(again.status.success(), "{}{}", stderr(&again), fresh.log());
        restore_all(&fresh, &files);
        let _ = fresh.json(&["repair"]);
        let (code, report) = check(&fresh, &[]);
        assert_eq!(code, 0, "{phase}: {report}");
    }

    #[test]
    fn a_crash_after_recover_takes_the_vault_over_converges() {
        recover_crash_at("recover:adopted");
    }

    #[test]
    fn a_crash_after_recover_rebuilds_the_catalog_converges() {
        recover_crash_at("recover:imported");
    }
}
