//! The engine in-process: nodes on an in-memory network (no socket), each test a few hundred
//! milliseconds. Put, get, check and repair with a peer switched off, one that stalls, one
//! that serves wrong bytes and one that is full — what the end-to-end suite tests over TCP and
//! real processes, here fast enough to try every failure on every change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Swarm, USER, wait_until};
use shard_net::memory::Link;
use shard_node::report::{ChunkHealth, NodeCheckState, ShareView};
use shard_testkit::adversary::Lie;

/// How a picture names the node it was drawn on.
const OWNER: &str = "this node";

/// Bytes that cut into several chunks and are not all alike.
fn content(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Writes `bytes` as a file in the swarm's folder.
fn file(swarm: &Swarm, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = swarm.path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The names of the nodes that hold a share of `name`, per its picture.
fn holders(swarm: &Swarm, name: &str) -> HashSet<String> {
    let owner = swarm.owner();
    let session = owner.session(Some(USER)).unwrap();
    let picture = shard_node::health::picture(owner, &session, name.as_bytes(), None).unwrap();
    picture
        .chunks
        .iter()
        .flat_map(|c| c.shares.iter())
        .filter(|s| s.state == ShareView::Present)
        .map(|s| s.node_name.clone())
        .collect()
}

/// Restores `name` and returns its bytes.
async fn restored(swarm: &Swarm, name: &str) -> shard_node::Result<Vec<u8>> {
    let out = swarm.path(&format!("{name}.restored"));
    swarm.get(name, None, &out).await?;
    Ok(std::fs::read(&out).unwrap())
}

/// Waits until the owner no longer counts node `i` as connected.
async fn gone(swarm: &Swarm, i: usize) {
    let id = swarm.id(i);
    wait_until(|| {
        !swarm
            .owner()
            .online_clients()
            .iter()
            .any(|c| c.peer().id == id)
    })
    .await;
}

#[tokio::test]
async fn put_and_get_round_trip_over_the_in_memory_transport() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let bytes = content(700_000, 1);
    let report = swarm
        .put(&file(&swarm, "letter", &bytes), "letter", Some((2, 3)))
        .await
        .unwrap();
    assert_eq!(report.redundancy, "2-of-3");
    assert_eq!(report.files, 1);
    assert_eq!(restored(&swarm, "letter").await.unwrap(), bytes);
    // Every node holds a share: 2-of-3 over three nodes.
    assert_eq!(holders(&swarm, "letter").len(), 3);
    let check = swarm.check(1.0).await;
    assert!(check.ok, "{check:?}");
    assert_eq!(check.healthy, 1);
}

#[tokio::test]
async fn a_node_switched_off_leaves_files_restorable_and_repair_rebuilds_its_shares() {
    let mut swarm = Swarm::in_memory(4, 3, &[]).await;
    let bytes = content(300_000, 2);
    swarm
        .put(&file(&swarm, "tax", &bytes), "tax", Some((2, 3)))
        .await
        .unwrap();
    // Two peers (not the owner) that hold shares: the first is switched off.
    let mut peers: Vec<usize> = holders(&swarm, "tax")
        .iter()
        .filter(|n| *n != OWNER)
        .map(|n| swarm.index_of(n))
        .collect();
    peers.sort_unstable();
    assert!(peers.len() >= 2, "{peers:?}");
    let (off, later) = (peers[0], peers[1]);
    swarm.set_link(off, Link::Down);
    gone(&swarm, off).await;

    assert_eq!(
        restored(&swarm, "tax").await.unwrap(),
        bytes,
        "k of n suffice"
    );
    // Offline is not lost: check says it cannot tell, and names the node it could not ask.
    let check = swarm.check(0.0).await;
    assert_eq!(check.files[0].state, ChunkHealth::Unknown, "{check:?}");
    let name = swarm.nodes[off].status().unwrap().name;
    let said = check.nodes.iter().find(|n| n.node == name).unwrap();
    assert_eq!(said.state, NodeCheckState::Unknown, "{said:?}");

    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let lost = std::iter::once(swarm.id(off)).collect();
    let job = owner.jobs().create("repair");
    let repair = shard_node::health::repair(owner.clone(), session, Vec::new(), lost, job)
        .await
        .unwrap();
    assert!(repair.ok, "{repair:?}");
    assert!(repair.shares_rebuilt >= 1, "{repair:?}");

    // The rebuilt shares are real: with a second original holder off too, the file still
    // restores (without the repair, one share of each chunk would be left).
    swarm.set_link(later, Link::Down);
    gone(&swarm, later).await;
    assert_eq!(restored(&swarm, "tax").await.unwrap(), bytes);
    swarm.paired[off] = false;
}

/// The node holding share `index` of the first chunk of `name`.
fn holder_of(swarm: &Swarm, name: &str, index: u8) -> String {
    let owner = swarm.owner();
    let session = owner.session(Some(USER)).unwrap();
    let picture = shard_node::health::picture(owner, &session, name.as_bytes(), None).unwrap();
    picture.chunks[0]
        .shares
        .iter()
        .find(|s| s.index == index)
        .map(|s| s.node_name.clone())
        .unwrap()
}

#[tokio::test]
async fn a_stalled_holder_is_hedged_with_another_one() {
    let swarm = Swarm::in_memory(4, 3, &[]).await;
    // One chunk, 1-of-2: its data share (index 0) is the one a restore asks for first. Stored
    // again under new names until a peer, not the owner, holds it (placement is random).
    // (Other bytes each time: the same chunk would keep its first placement.)
    let mut chosen = None;
    for attempt in 0..20 {
        let name = format!("photo{attempt}");
        let bytes = content(40_000, 100 + attempt);
        swarm
            .put(&file(&swarm, &name, &bytes), &name, Some((1, 2)))
            .await
            .unwrap();
        let first = holder_of(&swarm, &name, 0);
        if first != OWNER {
            chosen = Some((name, bytes, swarm.index_of(&first)));
            break;
        }
    }
    let (name, bytes, stall) = chosen.expect("a peer held the data share in one of 20 puts");
    swarm.set_link(stall, Link::Stalled);
    let started = Instant::now();
    assert_eq!(restored(&swarm, &name).await.unwrap(), bytes);
    // The test options hedge after 100 ms; the request timeout is 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the restore waited on the stalled holder: {:?}",
        started.elapsed()
    );
    swarm.set_link(stall, Link::Up);
}

#[tokio::test]
async fn a_peer_serving_wrong_bytes_is_caught_and_the_file_still_restores() {
    let swarm = Swarm::in_memory(3, 2, &[(1, Lie::WrongBytes)]).await;
    let bytes = content(400_000, 5);
    swarm
        .put(&file(&swarm, "deed", &bytes), "deed", Some((2, 3)))
        .await
        .unwrap();
    assert_eq!(
        restored(&swarm, "deed").await.unwrap(),
        bytes,
        "the liar's shares are refused and the others decode"
    );
    let check = swarm.check(1.0).await;
    assert!(
        !check.ok,
        "reading every share back finds the liar: {check:?}"
    );
    assert!(check.read.bad >= 1, "{:?}", check.read);
    let liar = swarm.nodes[1].status().unwrap().name;
    let said = check.nodes.iter().find(|n| n.node == liar).unwrap();
    assert!(said.bad >= 1, "{said:?}");
}

#[tokio::test]
async fn a_full_peer_is_skipped_and_named() {
    let swarm = Swarm::in_memory(4, 3, &[(2, Lie::FakeCapacity)]).await;
    let bytes = content(300_000, 6);
    let report = swarm
        .put(&file(&swarm, "will", &bytes), "will", Some((2, 3)))
        .await
        .unwrap();
    let full = swarm.nodes[2].status().unwrap().name;
    // Placement may not have offered it a share; when it did, it is named and skipped.
    if report.full_nodes.is_empty() {
        assert!(!holders(&swarm, "will").contains(&full));
    } else {
        assert_eq!(report.full_nodes, vec![full.clone()], "{report:?}");
    }
    assert!(!holders(&swarm, "will").contains(&full));
    assert_eq!(holders(&swarm, "will").len(), 3);
    assert_eq!(restored(&swarm, "will").await.unwrap(), bytes);
}

#[tokio::test]
async fn a_put_with_too_few_nodes_with_room_fails_and_says_so() {
    let swarm = Swarm::in_memory(3, 2, &[(1, Lie::FakeCapacity), (2, Lie::FakeCapacity)]).await;
    let bytes = content(100_000, 7);
    let err = swarm
        .put(&file(&swarm, "big", &bytes), "big", Some((2, 3)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("full") || text.contains("room"), "{text}");
    assert!(swarm.versions().is_empty(), "nothing half-stored is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_machine_recovers_the_vault_though_a_peer_lies() {
    // Nodes 1 to 4 are the owner's peers (node 1 serves wrong bytes); node 5 is the new
    // machine. Five holders: the catalog snapshot is 3-of-5, so losing the owner and the
    // liar's shares leaves enough.
    let mut swarm = Swarm::in_memory(6, 4, &[(1, Lie::WrongBytes)]).await;
    let owner = swarm.owner().clone();
    let bytes = content(250_000, 8);
    swarm
        .put(&file(&swarm, "album", &bytes), "album", Some((2, 5)))
        .await
        .unwrap();
    let session = owner.session(Some(USER)).unwrap();
    shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    // The owner's machine is gone, with its own shares; the new one pairs with the peers.
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    let new = swarm.nodes[5].clone();
    for i in 1..=4 {
        let code = swarm.nodes[i].invite(None).unwrap().encode();
        new.join(&code).await.unwrap();
    }
    wait_until(|| new.online_clients().len() == 4).await;

    let recovered = shard_node::recover::recover(
        &new,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a passphrase for the new laptop".to_vec()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(recovered.account, USER);
    assert_eq!(recovered.files, 1, "{recovered:?}");
    assert_eq!(recovered.peers_handed_over, 4, "{recovered:?}");
    swarm.nodes[0] = new;
    // One more peer off: 2-of-5 with the owner's share gone and the liar's refused still
    // restores from the two left.
    swarm.set_link(4, Link::Down);
    gone(&swarm, 4).await;
    assert_eq!(restored(&swarm, "album").await.unwrap(), bytes);
}
