//! Redundancy that changes between puts (a node paired, `--shares`) never touches what was
//! stored before: every version restores byte-exact and `check` says what restores do.
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

use std::path::Path;
use std::time::Duration;

use common::{TestNode, owner_with_peers, random_file, stderr};

/// Restores `name` (a file, at `version` or the newest) and returns its bytes.
fn restore(node: &TestNode, dir: &Path, name: &str, version: Option<u32>) -> Vec<u8> {
    let spec = match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_string(),
    };
    let out = dir.join(format!("restored-{}", spec.replace(['/', '@'], "_")));
    let o = node.run(&["get", &spec, "-o", out.to_str().unwrap(), "--force"]);
    assert!(o.status.success(), "get {spec}: {}", stderr(&o));
    std::fs::read(out).unwrap()
}

/// Every file version of the vault is healthy in `check --read-data=100%`, which exits 0.
fn assert_all_healthy(node: &TestNode) -> serde_json::Value {
    let report = node.json(&["check", "--read-data=100%"]);
    assert_eq!(report["ok"], true, "{report}");
    for f in report["files"].as_array().unwrap() {
        assert_eq!(f["state"], "healthy", "{f}");
    }
    assert_eq!(report["unrecorded"], 0, "{report}");
    report
}

/// The scenario a user hit on the first wave's build: three nodes, a put (2-of-3 by default),
/// a fourth node paired, the same folder put again with one file edited (3-of-4 by default):
/// the first version no longer restored, the new one neither, and `check` said healthy.
#[test]
fn pairing_a_node_between_two_puts_loses_no_version() {
    let (owner, mut peers) = owner_with_peers(2);
    let work = tempfile::tempdir().unwrap();
    let papers = work.path().join("papers");
    std::fs::create_dir(&papers).unwrap();
    // A file of several chunks (its edit changes only the last), and small ones.
    let mut deed = random_file(&papers.join("deed.bin"), 5 << 20, 1);
    let will = random_file(&papers.join("will.txt"), 3000, 2);
    let photo = random_file(&papers.join("photo.jpg"), 700_000, 3);

    let first = owner.json(&["put", papers.to_str().unwrap()]);
    assert_eq!(first["redundancy"], "2-of-3", "{first}");

    let fourth = TestNode::start("peer2");
    owner.pair_with(&fourth);
    owner.wait_online(&["peer0", "peer1", "peer2"], Duration::from_secs(15));
    let original = deed.clone();
    let len = deed.len();
    deed[len - 10..].copy_from_slice(b"amended!!!");
    std::fs::write(papers.join("deed.bin"), &deed).unwrap();
    let second = owner.json(&["put", papers.to_str().unwrap()]);
    assert_eq!(second["redundancy"], "3-of-4", "{second}");
    // Unchanged chunks keep the 2-of-3 encoding they have (it survives as many losses: one):
    // nothing is re-encoded in place, and nothing is stored twice.
    assert!(
        second["chunks_kept_at_earlier_redundancy"]
            .as_u64()
            .unwrap()
            > 0,
        "{second}"
    );

    let dir = work.path();
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(1)), original);
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(2)), deed);
    assert_eq!(restore(&owner, dir, "papers/deed.bin", None), deed);
    assert_eq!(restore(&owner, dir, "papers/will.txt", Some(1)), will);
    assert_eq!(restore(&owner, dir, "papers/photo.jpg", Some(2)), photo);
    assert_all_healthy(&owner);

    // Asked for more than the earlier encoding survives (1-of-4 survives three losses, 2-of-3
    // one): stored again as a second encoding; the earlier versions keep theirs.
    let third = owner.json(&["put", papers.to_str().unwrap(), "--shares", "1/4"]);
    assert_eq!(third["redundancy"], "1-of-4", "{third}");
    assert_eq!(third["chunks_kept_at_earlier_redundancy"], 0, "{third}");
    assert!(third["chunks_sent"].as_u64().unwrap() > 0, "{third}");
    for v in 1..=3 {
        assert_eq!(restore(&owner, dir, "papers/will.txt", Some(v)), will);
    }
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(1)), original);
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(3)), deed);
    assert_all_healthy(&owner);

    // The same put again with the same settings sends nothing.
    let again = owner.json(&["put", papers.to_str().unwrap(), "--shares", "1/4"]);
    assert_eq!(again["chunks_sent"], 0, "{again}");

    // One node down: every version of every encoding still restores (each survives one loss).
    peers[0].stop();
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(1)), original);
    assert_eq!(restore(&owner, dir, "papers/deed.bin", Some(2)), deed);
    assert_eq!(restore(&owner, dir, "papers/photo.jpg", Some(3)), photo);
    let report = owner.json(&["check"]);
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(
        report["degraded"], 0,
        "offline is unknown, not missing: {report}"
    );
}
