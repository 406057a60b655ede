//! Catalog heads across crashes, lies and refusals: the newest catalog always reaches the
//! peers (or `check` says it did not), and nobody's word moves the numbering but a head that
//! opens under the vault key.
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

use std::time::Duration;

use common::{Swarm, USER, wait_until};
use shard_store::VaultState;

/// The node died after its new head reached the peers and its own head store, before the
/// catalog recorded it: the next snapshot is numbered after it (not refused as stale for
/// ever), and the peers hold the newest catalog again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_head_and_catalog_does_not_freeze_the_heads() {
    let swarm = Swarm::start(3, 2).await;
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let file = swarm.path("a.txt");
    std::fs::write(&file, b"first").unwrap();
    swarm.put(&file, "a.txt", None).await.unwrap();
    let first = owner.write_snapshot(&session).await.unwrap();
    // As if the process died right after sending the head: the catalog still says `first - 1`.
    let catalog = owner.catalog().vault(session.account, &session.keys);
    catalog
        .set_state(&VaultState {
            seq: first - 1,
            snapshot: None,
        })
        .unwrap();
    std::fs::write(&file, b"second").unwrap();
    swarm.put(&file, "a.txt", None).await.unwrap();
    let next = owner.write_snapshot(&session).await.unwrap();
    assert_eq!(next, first + 1);
    for i in [1, 2] {
        let kept = swarm.nodes[i]
            .heads()
            .unwrap()
            .get(&session.vault())
            .unwrap()
            .unwrap();
        assert_eq!(kept.seq, next, "peer {i}");
    }
    let report = swarm.check(0.0).await;
    assert_eq!(report.catalog_snapshot_failure, None);
    assert!(report.ok, "{report:?}");
}

/// A peer that serves a head of junk numbered near the end of the range (or at it) does not
/// move a recovery's numbering: only heads that open under the vault key count. The recovery
/// succeeds and later snapshots keep going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liars_head_numbering_is_ignored_by_recovery() {
    let swarm = Swarm::start(4, 2).await;
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let file = swarm.path("b.txt");
    std::fs::write(&file, vec![5u8; 200_000]).unwrap();
    swarm.put(&file, "b.txt", None).await.unwrap();
    let seq = owner.write_snapshot(&session).await.unwrap();
    let vault = session.vault();
    // Peer 2 lies: its head store now holds junk "from the owner" at the top of the range.
    swarm.nodes[2]
        .heads()
        .unwrap()
        .put(&owner.node_id(), &vault, i64::MAX as u64 - 1, b"not a head")
        .unwrap();
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    let new = swarm.nodes[3].clone();
    for i in [1, 2] {
        let code = swarm.nodes[i].invite(None).unwrap().encode();
        new.join(&code).await.unwrap();
    }
    wait_until(|| new.online_clients().len() == 2).await;
    let recovered = shard_node::recover::recover(
        &new,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a brand new passphrase".to_vec()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(recovered.catalog_head, seq, "{recovered:?}");
    assert_eq!(recovered.files, 1, "{recovered:?}");
    let session = new.session(Some(USER)).unwrap();
    let again = new.write_snapshot(&session).await.unwrap();
    assert!(
        again > seq && again < seq + 10,
        "numbering jumped to {again}"
    );
}

/// When no peer keeps the new head (here: a peer whose head store was handed to another
/// node), the previous snapshot's shares stay where they are — the peers' heads still point
/// at them — and `check` says the catalog did not reach the peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_nobody_kept_leaves_the_previous_snapshot_and_says_so() {
    let swarm = Swarm::start(2, 1).await;
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let file = swarm.path("c.txt");
    std::fs::write(&file, b"kept").unwrap();
    swarm.put(&file, "c.txt", None).await.unwrap();
    let first = owner.write_snapshot(&session).await.unwrap();
    let vault = session.vault();
    let peer = swarm.nodes[1].clone();
    let before = peer.heads().unwrap().get(&vault).unwrap().unwrap();
    assert_eq!(before.seq, first);
    // The peer's record of who owns the vault's head changes hands behind the owner's back.
    peer.heads()
        .unwrap()
        .adopt(&shard_proto::NodeId([9; 32]), &vault)
        .unwrap();
    let ns = shard_proto::Namespace {
        owner: owner.node_id(),
        vault,
    };
    let held_before = peer.store().list(&ns, None, 1000).unwrap();
    std::fs::write(&file, b"changed").unwrap();
    swarm.put(&file, "c.txt", None).await.unwrap();
    assert!(owner.write_snapshot(&session).await.is_err());
    // Nothing of what the peer held (the old snapshot among it) was deleted.
    let held_after = peer.store().list(&ns, None, 1000).unwrap();
    for id in &held_before {
        assert!(
            held_after.contains(id),
            "a share of the old snapshot was deleted"
        );
    }
    let report = swarm.check(0.0).await;
    assert!(!report.ok, "{report:?}");
    assert!(
        report
            .catalog_snapshot_failure
            .as_deref()
            .unwrap()
            .contains("older catalog"),
        "{report:?}"
    );
}
