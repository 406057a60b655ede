//! Prune as a user relies on it: the room of removed files comes back, every file still
//! there restores byte-exact and stays healthy, a second prune finds nothing to do, a
//! prune while another runs is refused by name, packs a stopped put left are removed, and a
//! prune that cannot place its copies changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_node::files::Removing;
use shard_testkit::swarm as common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{Swarm, content};
use shard_net::memory::Link;
use shard_node::prune::{PruneRequest, run};
use shard_node::report::PruneReport;

/// `count` files under `keep/` and as many under `drop/` (a few KB to 200 KB each, their bytes
/// drawn from `seed`), written under `root`: name → bytes.
fn tree(root: &Path, count: u32, seed: u32) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for i in 0..2 * count {
        let dir = if i % 2 == 0 { "keep" } else { "drop" };
        let len = 2_000 + (i as usize * 7_919) % 200_000;
        let name = format!("{dir}/file-{i}.dat");
        let bytes = content(len, seed * 1_000 + i + 1);
        let path = root.join(&name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

async fn prune(swarm: &Swarm, dead_percent: u8) -> shard_node::Result<PruneReport> {
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    let job = node.jobs().create("prune");
    run(
        node,
        session,
        PruneRequest {
            dead_percent,
            unused: true,
        },
        job,
    )
    .await
}

async fn rm(swarm: &Swarm, name: &str) {
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    shard_node::files::rm(&node, &session, name.as_bytes(), Removing::Now)
        .await
        .unwrap();
}

fn assert_restores(out: &Path, files: &BTreeMap<String, Vec<u8>>, gone: &str) {
    for (name, bytes) in files {
        let path = out.join(name);
        if name.starts_with(gone) {
            assert!(!path.exists(), "{name} came back after its removal");
        } else {
            assert_eq!(&fs::read(&path).unwrap(), bytes, "{name}");
        }
    }
}

#[tokio::test]
async fn prune_gives_back_the_room_of_removed_files_and_every_other_file_restores() {
    let swarm = Swarm::in_memory(5, 4, &[]).await;
    let root = swarm.path("tree");
    let files = tree(&root, 40, 0);
    let put = swarm.put(&root, "tree", Some((3, 5))).await.unwrap();

    // Nothing removed: nothing to do.
    let idle = prune(&swarm, 0).await.unwrap();
    assert_eq!(idle.packs, put.packs_sent, "{idle:?}");
    assert_eq!((idle.dead_bytes, idle.packs_to_compact), (0, 0), "{idle:?}");

    rm(&swarm, "tree/drop").await;
    let report = prune(&swarm, 0).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.dead_bytes > 0, "{report:?}");
    assert!(report.packs_compacted >= 1, "{report:?}");
    assert_eq!(
        report.packs_compacted, report.packs_to_compact,
        "{report:?}"
    );
    assert!(report.blobs_moved >= 40, "{report:?}");
    assert_eq!(report.bytes_freed, report.dead_bytes, "{report:?}");
    // Every share of every old pack is deleted on its node.
    assert_eq!(
        report.shares_deleted,
        5 * report.packs_compacted,
        "{report:?}"
    );

    // What is left restores byte-exact, from the new packs only, and is healthy.
    let out = swarm.path("back");
    swarm.get("tree", None, &out).await.unwrap();
    assert_restores(&out, &files, "drop/");
    let check = swarm.check(1.0).await;
    assert_eq!(check.healthy, check.files.len(), "{check:?}");

    // The same prune again: nothing dead, nothing moved.
    let again = prune(&swarm, 0).await.unwrap();
    assert_eq!(again.dead_bytes, 0, "{again:?}");
    assert_eq!(
        (again.packs_compacted, again.blobs_moved),
        (0, 0),
        "{again:?}"
    );

    // The next put of the unchanged tree finds every chunk in the new packs.
    let put_again = swarm
        .put(&root.join("keep"), "tree/keep", Some((3, 5)))
        .await;
    let put_again = put_again.unwrap();
    assert_eq!(put_again.packs_sent, 0, "{put_again:?}");
}

#[tokio::test]
async fn a_second_prune_while_one_runs_is_refused_by_name() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    let held = session.pruning.lock().await;
    let err = prune(&swarm, 0).await.unwrap_err();
    assert!(
        matches!(err, shard_node::Error::PruneRunning { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("already running"), "{err}");
    assert_eq!(err.kind(), shard_node::ErrorKind::Conflict);
    drop(held);
    prune(&swarm, 0).await.unwrap();
}

#[tokio::test]
async fn a_prune_that_cannot_place_its_copies_changes_nothing_and_the_next_one_finishes() {
    let swarm = Swarm::in_memory(4, 3, &[]).await;
    let root = swarm.path("tree");
    let files = tree(&root, 20, 0);
    swarm.put(&root, "tree", Some((2, 4))).await.unwrap();
    rm(&swarm, "tree/drop").await;

    // A node cut off: the copies cannot go to four nodes, so no file moves and the old
    // packs stay whole.
    swarm.set_link(3, Link::Down);
    let node = Arc::clone(swarm.owner());
    common::wait_until(|| node.online_peers().len() < 3).await;
    let stopped = prune(&swarm, 0).await.unwrap();
    assert!(!stopped.ok, "{stopped:?}");
    assert_eq!(stopped.packs_compacted, 0, "{stopped:?}");
    assert!(!stopped.failures.is_empty(), "{stopped:?}");

    swarm.set_link(3, Link::Up);
    common::wait_until(|| node.online_peers().len() == 3).await;
    let out = swarm.path("between");
    swarm.get("tree", None, &out).await.unwrap();
    assert_restores(&out, &files, "drop/");

    let done = prune(&swarm, 0).await.unwrap();
    assert!(done.ok, "{done:?}");
    assert!(done.packs_compacted >= 1, "{done:?}");
    let out = swarm.path("after");
    swarm.get("tree", None, &out).await.unwrap();
    assert_restores(&out, &files, "drop/");
    let check = swarm.check(1.0).await;
    assert_eq!(check.healthy, check.files.len(), "{check:?}");
}

#[tokio::test]
async fn packs_a_failed_upload_left_behind_are_removed_by_prune() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    // An upload that ends short: its chunks were packed and sent, but no file was recorded.
    let bytes = content(200_000, 7);
    let upload = shard_node::put::Upload {
        name: b"short.bin".to_vec(),
        size: 300_000,
        reader: Box::new(std::io::Cursor::new(bytes)),
    };
    let job = node.jobs().create("put");
    let failed =
        shard_node::put::run_upload(node.clone(), session.clone(), upload, Some((2, 3)), job).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(swarm.versions().is_empty());

    let report = prune(&swarm, 0).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.packs, 0, "{report:?}");
    assert_eq!(report.unused_packs_removed, 1, "{report:?}");
    assert_eq!(report.shares_deleted, 3, "{report:?}");
    let again = prune(&swarm, 0).await.unwrap();
    assert_eq!(again.unused_packs_removed, 0, "{again:?}");
}

/// The packs a vault's files use, by id.
fn packs_in_use(node: &shard_node::node::Node) -> std::collections::BTreeSet<[u8; 32]> {
    let session = node.session(Some(common::USER)).unwrap();
    node.catalog()
        .vault(session.account, &session.keys)
        .count_pack_usage()
        .unwrap()
        .into_iter()
        .map(|u| u.pack.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_machine_recovers_the_files_where_prune_moved_them() {
    // Nodes 1 to 4 are the owner's peers; node 5 is the new machine.
    let mut swarm = Swarm::in_memory(6, 4, &[]).await;
    let root = swarm.path("tree");
    let files = tree(&root, 20, 0);
    swarm.put(&root, "tree", Some((2, 4))).await.unwrap();
    rm(&swarm, "tree/drop").await;
    let owner = swarm.owner().clone();
    let before = packs_in_use(&owner);
    let report = prune(&swarm, 0).await.unwrap();
    assert!(report.ok && report.packs_compacted >= 1, "{report:?}");
    assert!(report.catalog_snapshot_failure.is_none(), "{report:?}");
    let after = packs_in_use(&owner);
    assert!(after.is_disjoint(&before), "every pack was compacted");

    // The owner's machine is gone; the new one recovers from the snapshot prune wrote.
    owner.shutdown();
    owner.stopped(std::time::Duration::from_secs(5)).await;
    let new = swarm.nodes[5].clone();
    for i in 1..=4 {
        let code = swarm.nodes[i].invite(None).unwrap().encode();
        new.join(&code).await.unwrap();
    }
    common::wait_until(|| new.online_clients().len() == 4).await;
    let recovered = shard_node::recover::recover(
        &new,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a passphrase for the new laptop".to_vec()),
        None,
    )
    .await
    .unwrap();
    // The tree, its keep/ folder and its 20 files; the head is the one prune wrote.
    assert_eq!(recovered.files, 22, "{recovered:?}");
    assert_eq!(recovered.catalog_head, 1, "{recovered:?}");
    assert_eq!(
        packs_in_use(&new),
        after,
        "the recovered files point at the copies"
    );
    swarm.nodes[0] = new;
    let out = swarm.path("recovered");
    swarm.get("tree", None, &out).await.unwrap();
    assert_restores(&out, &files, "drop/");
}

#[tokio::test]
async fn a_pack_that_cannot_be_read_is_named_and_left_while_the_others_are_compacted() {
    let swarm = Swarm::in_memory(4, 3, &[]).await;
    let (one, two) = (swarm.path("one"), swarm.path("two"));
    let files_one = tree(&one, 10, 1);
    let files_two = tree(&two, 10, 2);
    swarm.put(&one, "one", Some((2, 4))).await.unwrap();
    swarm.put(&two, "two", Some((2, 4))).await.unwrap();
    rm(&swarm, "one/drop").await;
    rm(&swarm, "two/drop").await;

    // The catalog says every share of one's packs is gone (as after a disaster).
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    let vault = node.catalog().vault(session.account, &session.keys);
    let mut lost = Vec::new();
    for entry in vault.list().unwrap() {
        if !entry.meta.name.starts_with(b"one/") {
            continue;
        }
        for chunk in vault.manifest(entry.id).unwrap().chunks {
            let pack = chunk.encoding();
            for share in vault.encoding_shares(&pack, chunk.k, chunk.n).unwrap() {
                lost.push(share.id);
            }
        }
    }
    lost.sort();
    lost.dedup();
    let set = |state| {
        let states: Vec<_> = lost.iter().map(|id| (*id, state)).collect();
        vault.set_share_states(&states).unwrap();
    };
    set(shard_store::ShareState::Missing);

    let report = prune(&swarm, 0).await.unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(
        report.failures.iter().any(|f| f.starts_with("pack ")),
        "{report:?}"
    );
    assert!(report.packs_compacted >= 1, "two's packs: {report:?}");
    let out = swarm.path("two-back");
    swarm.get("two", None, &out).await.unwrap();
    assert_restores(&out, &files_two, "drop/");

    // The shares were there after all: the next prune compacts one's packs too, and one
    // restores whole.
    set(shard_store::ShareState::Acked);
    let report = prune(&swarm, 0).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.packs_compacted >= 1, "{report:?}");
    let out = swarm.path("one-back");
    swarm.get("one", None, &out).await.unwrap();
    assert_restores(&out, &files_one, "drop/");
}
