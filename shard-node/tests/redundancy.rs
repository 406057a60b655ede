//! For any sequence of puts whose redundancy changes between them — nodes paired and unpaired
//! (the default `k`-of-`n` follows), `--shares` given, files edited or stored again unchanged,
//! a tree — every version that was acknowledged restores byte-exact afterwards, and `check`
//! agrees with what restores: a version it does not call lost restores, one it calls lost does
//! not. (The first wave lost earlier versions here: a chunk met again was re-encoded in place.)
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

use shard_testkit::swarm as common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Swarm;
use proptest::prelude::*;
use shard_node::report::ChunkHealth;

/// Nodes in the swarm, the owner included.
const NODES: usize = 5;
/// The files of the tree: name, and length (one spans several chunks).
const FILES: [(&str, usize); 4] = [
    ("a.txt", 2_000),
    ("big.bin", 1_600_000),
    ("sub/c.txt", 40_000),
    ("sub/deeper/d.bin", 300_000),
];

#[derive(Debug, Clone)]
enum Op {
    /// Store the tree; edit file `edit` first (None: store it unchanged); `shares` or the
    /// default.
    Put {
        edit: Option<usize>,
        shares: Option<(u8, u8)>,
    },
    /// Pair one more node.
    Pair,
    /// Unpair a peer: after moving its shares elsewhere, or at once (`now`: its shares are
    /// lost until repaired).
    Unpair { now: bool },
    /// Rebuild what is missing.
    Repair,
}

fn op() -> impl Strategy<Value = Op> {
    let shares = prop_oneof![
        3 => Just(None),
        1 => Just(Some((1, 2))),
        1 => Just(Some((2, 3))),
        1 => Just(Some((1, 3))),
        1 => Just(Some((2, 4))),
        1 => Just(Some((3, 4))),
        1 => Just(Some((3, 5))),
    ];
    prop_oneof![
        5 => (proptest::option::of(0..FILES.len()), shares).prop_map(|(edit, shares)| Op::Put { edit, shares }),
        2 => Just(Op::Pair),
        2 => any::<bool>().prop_map(|now| Op::Unpair { now }),
        1 => Just(Op::Repair),
    ]
}

/// Deterministic file contents: file `i`, edit generation `gen`.
fn contents(i: usize, generation: u32) -> Vec<u8> {
    let len = FILES[i].1;
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(generation);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    // An edit changes a few bytes near the end: most chunks stay the same (dedup applies).
    if generation > 0 {
        let at = len.saturating_sub(100);
        out[at..at + 4].copy_from_slice(&generation.to_le_bytes());
    }
    out
}

fn write_tree(root: &Path, generations: &[u32]) {
    for (i, (name, _)) in FILES.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents(i, generations[i])).unwrap();
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut swarm = Swarm::start(NODES, 2).await;
    let tree = swarm.path("tree");
    let mut generations = vec![0u32; FILES.len()];
    // What each acknowledged version holds: (name, version) → bytes.
    let mut expected: BTreeMap<(String, u32), Vec<u8>> = BTreeMap::new();
    let mut versions = 0u32;
    for op in &ops {
        match op {
            Op::Put { edit, shares } => {
                if let Some(i) = edit {
                    generations[*i] += 1;
                }
                write_tree(&tree, &generations);
                match swarm.put(&tree, "tree", *shares).await {
                    Ok(_) => {
                        versions += 1;
                        for (i, (name, _)) in FILES.iter().enumerate() {
                            expected.insert(
                                (format!("tree/{name}"), versions),
                                contents(i, generations[i]),
                            );
                        }
                    }
                    // Refused whole (too few nodes for n): nothing acknowledged, nothing to
                    // restore.
                    Err(shard_node::Error::NotEnoughNodes { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("{op:?}: {e}"))),
                }
            }
            Op::Pair => {
                if let Some(i) = (1..NODES).find(|i| !swarm.paired[*i]) {
                    swarm.pair(i).await;
                }
            }
            Op::Unpair { now } => {
                if let Some(i) = (1..NODES).rev().find(|i| swarm.paired[*i]) {
                    let id = swarm.id(i);
                    // Without --now, refused when the shares cannot all move: it stays paired.
                    if swarm.owner().remove_peer(id, *now).await.is_ok() {
                        swarm.paired[i] = false;
                    }
                }
            }
            Op::Repair => {
                let node = swarm.owner().clone();
                let session = node.session(Some(common::USER)).unwrap();
                let job = node.jobs().create("repair");
                shard_node::health::repair(node, session, Vec::new(), Default::default(), job)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("repair: {e}")))?;
            }
        }
    }

    // Every version the vault lists is one that was acknowledged, and no acknowledged one is
    // missing from it.
    let listed = swarm.versions();
    prop_assert_eq!(listed.clone(), expected.keys().cloned().collect::<Vec<_>>());
    let report = swarm.check(1.0).await;
    let states: BTreeMap<(String, u32), ChunkHealth> = report
        .files
        .iter()
        .map(|f| ((f.name.clone(), f.version), f.state))
        .collect();
    for ((name, version), bytes) in &expected {
        let out = swarm.path("restored");
        let state = &states[&(name.clone(), *version)];
        match swarm.get(name, Some(*version), &out).await {
            Ok(_) => {
                let got = std::fs::read(&out).unwrap();
                prop_assert!(
                    got == *bytes,
                    "{name}@{version} restored other bytes after {ops:?}"
                );
                prop_assert!(
                    *state != ChunkHealth::Lost,
                    "{name}@{version} restores but check says lost"
                );
            }
            Err(e) => prop_assert!(
                *state == ChunkHealth::Lost,
                "{name}@{version} does not restore ({e}) but check says {state}, after {ops:?}"
            ),
        }
    }
    // With every paired node online and nothing unpaired at once, nothing may be lost.
    if !ops.iter().any(|o| matches!(o, Op::Unpair { now: true })) {
        prop_assert_eq!(report.lost, 0, "{:?}", report);
    }
    for node in &swarm.nodes {
        node.shutdown();
    }
    Ok(())
}

proptest! {
    // Each case starts five nodes and runs a dozen operations over loopback: a few seconds.
    // More cases: PROPTEST_CASES=64.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        max_shrink_iters: 20,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_acknowledged_version_restores_whatever_the_redundancy_did(
        ops in proptest::collection::vec(op(), 3..10)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops))?;
    }
}
