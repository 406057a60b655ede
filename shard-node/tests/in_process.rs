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

use shard_node::files::Removing;
use shard_testkit::swarm as common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Swarm, USER, wait_until};
use shard_net::memory::{Link, MemoryNet};
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
    assert_eq!(listed_state(&swarm, "tax"), ChunkHealth::Healthy);
    swarm.set_link(off, Link::Down);
    swarm.gone(off).await;
    // `ls` asks no peer, but says no more than `check` would: shares on a node that is off
    // cannot be vouched for.
    assert_eq!(listed_state(&swarm, "tax"), ChunkHealth::Unknown);

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
    swarm.gone(later).await;
    assert_eq!(restored(&swarm, "tax").await.unwrap(), bytes);
    swarm.paired[off] = false;
}

/// The health `ls` shows for `name`.
fn listed_state(swarm: &Swarm, name: &str) -> ChunkHealth {
    let owner = swarm.owner();
    let session = owner.session(Some(USER)).unwrap();
    let listing = shard_node::files::ls(owner, &session, name.as_bytes()).unwrap();
    let file = listing.files.iter().find(|f| f.name == name).unwrap();
    file.health.as_ref().unwrap().state
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
async fn a_holder_whose_reads_fail_for_a_moment_is_asked_again() {
    // 2-of-3 over the owner and two peers, in order (one share each). One peer is off and
    // the other fails every read for 0.8 s from its first: the restore's first round finds
    // one share of the two it needs; a second round, a second later, finds the other.
    let swarm = Swarm::in_memory_in_order(3, 2, &[(2, Lie::FailReadsFor(800))]).await;
    let bytes = content(400_000, 9 << 13);
    swarm
        .put(&file(&swarm, "will", &bytes), "will", Some((2, 3)))
        .await
        .unwrap();
    swarm.set_link(1, Link::Down);
    swarm.gone(1).await;
    let started = Instant::now();
    assert_eq!(restored(&swarm, "will").await.unwrap(), bytes);
    // Through the second round (a second after the first), not through a first round that
    // came after the fault had passed.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A swarm storing folder `name` of six 400 kB files 2-of-3 over three peers in order (the
/// owner's store says it is full), with peer 1 switched off and peer 2 hanging: a restore
/// begun now waits on peer 2, whatever pack and offset a file's blobs took (a blob in peer
/// 1's data share is decoded from peers 2 and 3, one in peer 2's is read from it alone).
/// (With a share on the owner, a blob lying wholly in the owner's data share needs no peer:
/// how the blobs fell decided whether the restore waited at all.) Its nodes wait
/// `reconnect_wait` for a lost holder, and give a silent connection up after 2 s. Returns the
/// swarm and each file's name and bytes.
async fn folder_behind_a_hanging_holder(
    name: &str,
    seed: u32,
    reconnect_wait: Duration,
) -> (Swarm, Vec<(String, Vec<u8>)>) {
    let options = shard_node::node::RunOptions {
        reconnect_wait,
        ..common::quick_options()
    };
    let swarm = Swarm::in_memory_with(4, 3, &[(0, Lie::FakeCapacity)], true, options).await;
    let folder = swarm.path(name);
    std::fs::create_dir(&folder).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("f{i}"), content(400_000, seed + i)))
        .collect();
    for (file, bytes) in &files {
        std::fs::write(folder.join(file), bytes).unwrap();
    }
    swarm.put(&folder, name, Some((2, 3))).await.unwrap();
    swarm.set_link(1, Link::Down);
    swarm.gone(1).await;
    swarm.set_link(2, Link::Stalled);
    (swarm, files)
}

#[tokio::test]
async fn a_holder_whose_connection_drops_during_a_restore_is_waited_for() {
    // 2-of-3 over the owner and two peers, in order (one share each). One peer is off; the
    // other hangs, and while a restore of a folder of six files (restored at once, each
    // needing that peer) waits on it, its connection drops and comes back 1.2 s later (a
    // relayed path that stalled, then a reconnection). Every file waits for it rather than
    // failing a second after the drop, and no file waits longer than it must: the nodes
    // here wait 6 s for a lost holder.
    let (swarm, files) =
        folder_behind_a_hanging_holder("deeds", 13 << 13, Duration::from_secs(6)).await;
    let out = swarm.path("deeds.restored");
    let restore = swarm.get("deeds", None, &out);
    let blink = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        swarm.set_link(2, Link::Down);
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        swarm.set_link(2, Link::Up);
    };
    let started = Instant::now();
    let (got, ()) = tokio::join!(restore, blink);
    got.unwrap();
    let elapsed = started.elapsed();
    for (file, bytes) in &files {
        assert_eq!(&std::fs::read(out.join(file)).unwrap(), bytes, "{file}");
    }
    assert!(
        elapsed >= Duration::from_millis(1_800),
        "restored before the holder came back: {elapsed:?}"
    );
    // Back after 1.8 s, reconnected within the test nodes' 1 s backoff: well before the wait
    // for it (6 s from the drop) runs out.
    assert!(
        elapsed < Duration::from_millis(5_500),
        "the restore waited on after the holder came back: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_holder_lost_for_good_costs_a_restore_one_wait_not_one_per_file() {
    // As above, but the holder never comes back: the restore fails, naming it, after one
    // wait for it (3 s here) shared by every file in flight, not one wait per file.
    let (swarm, _) = folder_behind_a_hanging_holder("lost", 17 << 13, Duration::from_secs(3)).await;
    let out = swarm.path("lost.restored");
    let restore = swarm.get("lost", None, &out);
    let cut = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        swarm.set_link(2, Link::Down);
    };
    let started = Instant::now();
    let (got, ()) = tokio::join!(restore, cut);
    let err = got.unwrap_err().to_string();
    let elapsed = started.elapsed();
    assert!(err.contains("(offline)") && err.contains("node2"), "{err}");
    assert!(
        elapsed >= Duration::from_millis(3_600) && elapsed < Duration::from_millis(6_600),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_chunk_whose_holders_are_off_fails_at_once_and_names_them() {
    // Nothing a second round could change (the holders are off, no connection is new): the
    // restore fails without waiting for one. (400 kB: the blob spans both data shares, so the
    // owner's own share is not enough to read it by range.)
    let swarm = Swarm::in_memory_in_order(3, 2, &[]).await;
    let bytes = content(400_000, 11 << 13);
    swarm
        .put(&file(&swarm, "lost", &bytes), "lost", Some((2, 3)))
        .await
        .unwrap();
    for i in [1, 2] {
        swarm.set_link(i, Link::Down);
        swarm.gone(i).await;
    }
    let started = Instant::now();
    let err = restored(&swarm, "lost").await.unwrap_err().to_string();
    assert!(
        err.contains("1 of the 2 shares needed are reachable") && err.contains("(offline)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
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
    // In order: the owner, node1 and node2 are asked first; node1 is full, so node3 takes
    // its share.
    let swarm = Swarm::in_memory_in_order(4, 3, &[(1, Lie::FakeCapacity)]).await;
    let bytes = content(300_000, 6);
    let report = swarm
        .put(&file(&swarm, "will", &bytes), "will", Some((2, 3)))
        .await
        .unwrap();
    assert_eq!(report.full_nodes, vec!["node1".to_string()], "{report:?}");
    let held = holders(&swarm, "will");
    assert_eq!(
        held,
        [OWNER, "node2", "node3"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>()
    );
    assert_eq!(restored(&swarm, "will").await.unwrap(), bytes);
}

#[tokio::test]
async fn files_whose_shares_find_no_room_fail_by_name_with_a_reason_a_caller_can_match() {
    // Both peers say full: no 2-of-3 pack can be placed. Each file fails, typed, and the
    // error names one of them with the nodes that refused.
    let swarm =
        Swarm::in_memory_in_order(3, 2, &[(1, Lie::FakeCapacity), (2, Lie::FakeCapacity)]).await;
    let root = swarm.path("papers");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a"), content(50_000, 1 << 13)).unwrap();
    std::fs::write(root.join("b"), content(50_000, 2 << 13)).unwrap();
    let err = swarm.put(&root, "papers", Some((2, 3))).await.unwrap_err();
    let text = err.to_string();
    let shard_node::Error::PartialPut {
        failed,
        total,
        first,
    } = err
    else {
        panic!("not a partial put: {text}");
    };
    // The folder itself is stored; its two files are not.
    assert_eq!((failed, total), (2, 3), "{text}");
    assert!(
        [root.join("a"), root.join("b")].contains(&first.path),
        "{first:?}"
    );
    let shard_node::WhyFailed::NotPlaced(why) = &first.why else {
        panic!("{first:?}");
    };
    assert!(why.to_string().contains("node1"), "{why}");
    assert!(
        text.starts_with("2 of 3 files could not be stored: ") && text.contains("papers/"),
        "{text}"
    );
}

#[tokio::test]
async fn repair_moves_shares_off_a_node_that_serves_wrong_bytes() {
    // In order: the owner, node1 (the liar) and node2 hold the shares; node3 has room.
    let swarm = Swarm::in_memory_in_order(4, 3, &[(1, Lie::WrongBytes)]).await;
    let bytes = content(300_000, 9);
    swarm
        .put(&file(&swarm, "deed", &bytes), "deed", Some((2, 3)))
        .await
        .unwrap();
    assert!(holders(&swarm, "deed").contains("node1"));
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    // Reading the shares back finds the liar's; repair rebuilds them on node3.
    let check = swarm.check(1.0).await;
    assert!(check.read.bad >= 1, "{check:?}");
    let job = owner.jobs().create("repair");
    let repair =
        shard_node::health::repair(owner.clone(), session, Vec::new(), HashSet::new(), job)
            .await
            .unwrap();
    assert!(repair.ok, "{repair:?}");
    assert!(repair.shares_rebuilt >= 1, "{repair:?}");
    let held = holders(&swarm, "deed");
    assert!(
        held.contains("node3") && !held.contains("node1"),
        "{held:?}"
    );
    // With the liar off, the file restores from the three honest holders.
    swarm.set_link(1, Link::Down);
    swarm.gone(1).await;
    assert_eq!(restored(&swarm, "deed").await.unwrap(), bytes);
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
    swarm.join_peers(5, 1..=4).await;
    let recovered = swarm.recover_on(5).await.unwrap();
    assert_eq!(recovered.account, USER);
    assert_eq!(recovered.files, 1, "{recovered:?}");
    assert_eq!(recovered.peers_handed_over, 4, "{recovered:?}");
    swarm.nodes[0] = new;
    // One more peer off: 2-of-5 with the owner's share gone and the liar's refused still
    // restores from the two left.
    swarm.set_link(4, Link::Down);
    swarm.gone(4).await;
    assert_eq!(restored(&swarm, "album").await.unwrap(), bytes);
}

/// `recover` run again on a machine that has the vault's account, while too few of the catalog
/// snapshot's shares can be read: it fails, and the account it would have replaced is still
/// there with every file (the snapshot is fetched and checked before anything here changes),
/// and no spool file is left behind. With the peers back, it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_that_cannot_read_the_snapshot_keeps_the_account_it_would_replace() {
    let swarm = Swarm::in_memory(5, 4, &[]).await;
    let owner = swarm.owner().clone();
    let bytes = content(120_000, 5);
    swarm
        .put(&file(&swarm, "notes", &bytes), "notes", Some((1, 2)))
        .await
        .unwrap();
    let session = owner.session(Some(USER)).unwrap();
    shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    // One peer left: the snapshot (3-of-5 over five nodes) has two shares within reach.
    for i in 2..=4 {
        swarm.set_link(i, Link::Down);
        swarm.gone(i).await;
    }
    let again = || {
        shard_node::recover::recover(
            &owner,
            &swarm.recovery_code,
            None,
            zeroize::Zeroizing::new(b"another passphrase for it".to_vec()),
            None,
        )
    };
    let err = again().await.unwrap_err().to_string();
    assert!(err.contains("shares"), "{err}");
    assert!(owner.catalog().account(USER).unwrap().is_some());
    assert_eq!(swarm.versions(), vec![("notes".to_string(), 1)]);
    assert!(!owner.home().root().join("recover.spool").exists());
    for i in 2..=4 {
        swarm.set_link(i, Link::Up);
    }
    wait_until(|| owner.online_clients().len() == 4).await;
    let recovered = again().await.unwrap();
    assert_eq!(recovered.files, 1, "{recovered:?}");
    assert_eq!(swarm.versions(), vec![("notes".to_string(), 1)]);
    assert_eq!(restored(&swarm, "notes").await.unwrap(), bytes);
}

/// A paired peer that comes back at another address is found where a discovery source says it
/// is (its pinned address no longer answers, and what it says of itself when it dials in is
/// not taken as its address).
#[tokio::test]
async fn a_peer_that_moved_is_found_through_an_injected_discovery_source() {
    use shard_net::discovery::Sightings;
    use shard_node::node::Node;

    let net = MemoryNet::new();
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Sightings::default());
    let start = |name: &str, fresh: bool, seen: Option<Arc<Sightings>>| {
        let net = net.clone();
        let home = if fresh {
            common::home(dir.path(), name)
        } else {
            shard_node::home::Home::new(dir.path().join(name))
        };
        async move {
            let mut builder = Node::builder(home)
                .options(common::options())
                .transport(move |identity| net.transport(identity))
                .without_background_health();
            if let Some(seen) = seen {
                builder = builder.discovery(seen);
            }
            builder.start().await.unwrap()
        }
    };
    let owner = start("owner", true, Some(seen.clone())).await;
    let peer = start("peer", true, None).await;
    owner
        .join(&peer.invite(None).unwrap().encode())
        .await
        .unwrap();
    let id = peer.node_id();
    let online = |node: &Node| node.online_clients().iter().any(|c| c.peer().id == id);
    wait_until(|| online(&owner)).await;

    // The peer restarts elsewhere (a new address on the network).
    let old = peer.listen_addr();
    peer.shutdown();
    peer.stopped(Duration::from_secs(5)).await;
    drop(peer);
    let peer = start("peer", false, None).await;
    assert_ne!(peer.listen_addr(), old);
    wait_until(|| !online(&owner)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!online(&owner), "the old address cannot reach it");

    seen.record(id, "peer".into(), vec![peer.listen_addr()]);
    wait_until(|| online(&owner)).await;
    let status = owner
        .peers()
        .into_iter()
        .find(|p| p.name == "peer")
        .unwrap();
    assert!(status.online, "{status:?}");
}

/// Conditions a program embedding the engine acts on come as typed errors, each with a kind
/// and a hint (the same ones the CLI and the API show).
#[tokio::test]
async fn conditions_a_caller_acts_on_are_typed_errors() {
    use shard_node::{Error, ErrorKind};

    let swarm = Swarm::in_memory(2, 0, &[]).await;
    let owner = swarm.owner().clone();

    // One node per home.
    let net = swarm.net.clone().unwrap();
    let again = shard_node::node::Node::builder(owner.home().clone())
        .options(common::options())
        .transport(move |identity| net.transport(identity))
        .start()
        .await
        .err()
        .unwrap();
    assert!(matches!(again, Error::HomeInUse { .. }), "{again}");
    assert_eq!(again.kind(), ErrorKind::Conflict);
    assert!(again.hint().contains("--home"), "{}", again.hint());

    let bad = owner.add_static_addr("the attic").err().unwrap();
    assert!(
        matches!(&bad, Error::NotAnAddress(a) if a == "the attic"),
        "{bad}"
    );
    assert_eq!(bad.kind(), ErrorKind::BadInput);

    // A recovery with no peer to ask.
    let lone = swarm.nodes[1].clone();
    let err = shard_node::recover::recover(
        &lone,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a passphrase for the new laptop".to_vec()),
        None,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, Error::NoPeersConnected), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

/// A placement that misbehaves (the same node twice, nodes that do not exist, nodes it was
/// told to leave out) cannot make a put acknowledge a file with shares doubled up or missing:
/// only distinct nodes holding nothing of the chunk are used, and a put that cannot place
/// every share fails.
#[tokio::test]
async fn a_misbehaving_placement_cannot_double_up_or_drop_shares() {
    use shard_node::node::Node;
    use shard_node::placement::{Candidate, Placement};
    use shard_proto::NodeId;

    struct Stubborn;
    impl Placement for Stubborn {
        fn choose(&self, candidates: &[Candidate], count: usize, _: &[NodeId]) -> Vec<NodeId> {
            let mut out = vec![NodeId([7; 32])];
            out.extend(std::iter::repeat_n(candidates[0].node, count));
            out
        }
    }

    let net = MemoryNet::new();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for name in ["owner", "node1", "node2"] {
        let net = net.clone();
        let node = Node::builder(common::home(dir.path(), name))
            .options(common::options())
            .transport(move |identity| net.transport(identity))
            .placement(Arc::new(Stubborn))
            .without_background_health()
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    let owner = nodes[0].clone();
    for peer in &nodes[1..] {
        owner
            .join(&peer.invite(None).unwrap().encode())
            .await
            .unwrap();
    }
    wait_until(|| owner.online_clients().len() == 2).await;
    let passphrase = "a passphrase long enough to pass";
    shard_node::accounts::create(owner.catalog(), USER, passphrase).unwrap();
    owner
        .login(
            USER,
            zeroize::Zeroizing::new(passphrase.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let path = dir.path().join("letter");
    std::fs::write(&path, content(50_000, 10)).unwrap();
    let err = owner
        .put(
            Some(USER),
            shard_node::put::PutRequest {
                paths: vec![path],
                name: None,
                redundancy: Some((2, 3)),
                move_original: false,
            },
        )
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("could not be placed"), "{err}");
    let session = owner.session(Some(USER)).unwrap();
    let listed = owner
        .catalog()
        .vault(session.account, &session.keys)
        .list()
        .unwrap();
    assert!(
        listed.is_empty(),
        "nothing half-placed is listed: {listed:?}"
    );
}

/// The owner's laptop away from home: a file removed there is written into a catalog snapshot
/// that only the laptop holds, and the peers' heads still point at the snapshot before. That
/// one must not go (its shares deleted when the peers come back) while the peers have no
/// newer head: when they are back, a new snapshot reaches them first, and a new machine
/// recovers the catalog as it was last changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_changed_while_its_holders_are_away_reaches_them_when_they_are_back() {
    let swarm = Swarm::in_memory(4, 2, &[]).await;
    let owner = swarm.owner().clone();
    let (keep, drop) = (content(90_000, 11), content(90_000, 12));
    for (name, bytes) in [("keep", &keep), ("drop", &drop)] {
        swarm
            .put(&file(&swarm, name, bytes), name, Some((2, 3)))
            .await
            .unwrap();
    }
    let session = owner.session(Some(USER)).unwrap();
    let first = owner.write_snapshot(&session).await.unwrap();

    for i in 1..=2 {
        swarm.set_link(i, Link::Down);
        swarm.gone(i).await;
    }
    owner
        .remove(Some(USER), b"drop", Removing::ToTrash)
        .await
        .unwrap();
    let away = owner
        .write_snapshot(&session)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        away.contains("node1, node2 have not got its head yet")
            && away.contains("the earlier snapshot is kept for recovery"),
        "{away}"
    );
    let check = swarm.check(0.0).await;
    assert!(
        !check.ok,
        "a snapshot owed to its holders is not healthy: {check:?}"
    );
    // More changes while they are away keep one earlier snapshot for them, not one a change.
    let (extra, extra_bytes) = ("extra", content(40_000, 17));
    swarm
        .put(&file(&swarm, extra, &extra_bytes), extra, Some((1, 1)))
        .await
        .unwrap();
    assert!(owner.write_snapshot(&session).await.is_err());
    owner
        .remove(Some(USER), extra.as_bytes(), Removing::ToTrash)
        .await
        .unwrap();
    assert!(owner.write_snapshot(&session).await.is_err());
    let kept = owner
        .catalog()
        .vault(session.account, &session.keys)
        .kept_heads()
        .unwrap();
    assert_eq!(
        kept.iter().map(|k| k.seq).collect::<Vec<_>>(),
        vec![first],
        "only the snapshot the peers point at"
    );
    // Nothing is written again while they stay away.
    assert!(
        owner
            .settle_snapshot(&session, &HashSet::new())
            .await
            .is_none()
    );

    // Back home: the repair check (run here by hand: in-memory swarms have no background
    // loops) writes the snapshot again, and both peers get its head.
    for i in 1..=2 {
        swarm.set_link(i, Link::Up);
    }
    wait_until(|| owner.online_clients().len() == 2).await;
    let none = HashSet::new();
    let again = owner.settle_snapshot(&session, &none).await;
    assert!(matches!(again, Some(Ok(_))), "{again:?}");
    assert!(
        owner.settle_snapshot(&session, &none).await.is_none(),
        "nothing owed after"
    );
    let vault = session.vault();
    let newer_on = |i: usize| {
        swarm.nodes[i]
            .heads()
            .and_then(|h| h.get(&vault).unwrap())
            .is_some_and(|h| h.seq > first + 1)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(newer_on(1) && newer_on(2)) {
        assert!(
            Instant::now() < deadline,
            "the peers never got a newer head"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(|| owner.snapshot_failure(session.account).is_none()).await;
    let check = swarm.check(0.0).await;
    assert!(check.ok, "{check:?}");

    // The laptop is lost; a new machine pairs with the peers and recovers what it last held.
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    swarm.join_peers(3, 1..=2).await;
    let recovered = swarm.recover_on(3).await.unwrap();
    assert_eq!(recovered.files, 1, "only what was kept: {recovered:?}");
    assert!(recovered.catalog_head > first + 1, "{recovered:?}");
}

/// A peer that answers "I have it" for every share but fails each read of one: without reading,
/// check cannot tell; with `--read-data` it fails the check and names the node, rather than
/// calling the shares it never produced "unknown" and passing.
#[tokio::test]
async fn a_peer_that_claims_shares_it_will_not_give_fails_a_check_that_reads() {
    let swarm = Swarm::in_memory(3, 2, &[(1, Lie::FailReadsFor(600_000))]).await;
    let bytes = content(200_000, 13);
    swarm
        .put(&file(&swarm, "deed", &bytes), "deed", Some((2, 3)))
        .await
        .unwrap();
    let blind = swarm.check(0.0).await;
    assert!(blind.ok, "{blind:?}");
    let read = swarm.check(1.0).await;
    assert!(!read.ok, "{read:?}");
    assert!(read.read.unreadable >= 1, "{:?}", read.read);
    let liar = swarm.nodes[1].status().unwrap().name;
    let said = read.nodes.iter().find(|n| n.node == liar).unwrap();
    assert!(
        said.error
            .as_deref()
            .is_some_and(|e| e.contains("that it then did not give when read")),
        "{said:?}"
    );
}

/// A manifest that names a share no node acknowledged (here its record is gone from the
/// catalog, as a commit that counted acknowledgements instead of checking ids once left it):
/// check counts it as unrecorded and the file as not healthy — never "healthy" on counts.
#[tokio::test]
async fn a_share_no_node_acknowledged_is_never_counted_healthy() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let bytes = content(150_000, 14);
    swarm
        .put(&file(&swarm, "will", &bytes), "will", Some((2, 3)))
        .await
        .unwrap();
    let before = swarm.check(0.0).await;
    assert!(before.ok && before.unrecorded == 0, "{before:?}");
    let db = rusqlite::Connection::open(swarm.owner().home().catalog_path()).unwrap();
    let gone = db
        .execute(
            "DELETE FROM shares WHERE id = (SELECT id FROM shares ORDER BY idx DESC LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(gone, 1);
    let after = swarm.check(0.0).await;
    assert!(!after.ok, "{after:?}");
    assert_eq!(after.unrecorded, 1, "{after:?}");
    assert_eq!(after.healthy, 0, "{after:?}");
    assert_eq!(after.files[0].state, ChunkHealth::Degraded, "{after:?}");
}

/// A peer that is off while a new machine recovers the vault hands it over when it comes
/// back: its head is the new owner's, what the old machine stored there is the new one's, and
/// nothing is left owed. (Until then the recovered snapshot is kept for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_away_during_a_recovery_hands_the_vault_over_when_it_is_back() {
    let swarm = Swarm::in_memory(6, 4, &[]).await;
    let owner = swarm.owner().clone();
    let bytes = content(180_000, 15);
    swarm
        .put(&file(&swarm, "ledger", &bytes), "ledger", Some((2, 5)))
        .await
        .unwrap();
    let session = owner.session(Some(USER)).unwrap();
    owner.write_snapshot(&session).await.unwrap();
    let vault = session.vault();
    drop(session);
    let new = swarm.nodes[5].clone();
    swarm.join_peers(5, 1..=4).await;
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    swarm.set_link(4, Link::Down);
    wait_until(|| new.online_clients().len() == 3).await;

    let recovered = swarm.recover_on(5).await.unwrap();
    assert_eq!(recovered.peers_handed_over, 3, "{recovered:?}");
    // The peer away, and the old machine itself (should it ever come back).
    assert_eq!(recovered.peers_owing_hand_over, 2, "{recovered:?}");
    let away = swarm.id(4);
    assert_eq!(new.catalog().pending_adoptions(&away).unwrap().len(), 1);

    swarm.set_link(4, Link::Up);
    let me = new.node_id();
    let handed = || {
        new.catalog().pending_adoptions(&away).unwrap().is_empty()
            && swarm.nodes[4]
                .heads()
                .and_then(|h| h.get(&vault).unwrap())
                .is_some_and(|h| h.owner == me)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !handed() {
        assert!(
            Instant::now() < deadline,
            "the peer never handed the vault over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let account = new.catalog().account(USER).unwrap().unwrap().id;
    wait_until(|| new.snapshot_failure(account).is_none()).await;
    // Three of the five holders off (the old machine, and two more): the file still restores.
    let mut swarm = swarm;
    swarm.nodes[0] = new;
    for i in [1, 2] {
        swarm.set_link(i, Link::Down);
        swarm.gone(i).await;
    }
    assert_eq!(restored(&swarm, "ledger").await.unwrap(), bytes);
}

/// A removed file's shares stay on the peers through their grace period, and `check` says so.
#[tokio::test]
async fn check_counts_the_shares_peers_keep_through_their_grace_period() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let bytes = content(120_000, 16);
    swarm
        .put(&file(&swarm, "old", &bytes), "old", Some((2, 3)))
        .await
        .unwrap();
    assert_eq!(swarm.check(0.0).await.deleted_in_grace.shares, 0);
    swarm
        .owner()
        .remove(Some(USER), b"old", Removing::Now)
        .await
        .unwrap();
    let check = swarm.check(0.0).await;
    assert!(check.deleted_in_grace.shares >= 2, "{check:?}");
    assert_eq!(check.deleted_in_grace.grace_days, 7);
}

/// A peer whose path goes silent without an error (a cut link, a NAT that forgot the flow) is
/// given up once nothing at all has come back for a request timeout, so the node dials again;
/// with the path back it is reached again and takes shares.
#[tokio::test]
async fn a_connection_that_falls_silent_is_given_up_and_made_again() {
    let swarm = Swarm::in_memory_with(3, 2, &[], false, common::quick_options()).await;
    let owner = swarm.owner().clone();
    let peer = swarm.id(1);
    let online = |owner: &shard_node::node::Node| {
        owner
            .online_clients()
            .iter()
            .any(|c| c.peer().id == peer && !c.is_closed())
    };
    let before = owner
        .online_clients()
        .into_iter()
        .find(|c| c.peer().id == peer)
        .unwrap();
    swarm.set_link(1, Link::Stalled);
    // These nodes give a connection up after 2 s of silence (their pings every 500 ms wait
    // that long): at most 2 s after the link went silent, and not much under 1.5 s (the ping that
    // times out may have been sent up to 500 ms before).
    let started = Instant::now();
    while !before.is_closed() {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "a silent connection was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    swarm.set_link(1, Link::Up);
    wait_until(|| online(&owner)).await;
    let bytes = content(100_000, 18);
    swarm
        .put(&file(&swarm, "after", &bytes), "after", Some((2, 3)))
        .await
        .unwrap();
    assert_eq!(restored(&swarm, "after").await.unwrap(), bytes);
}
