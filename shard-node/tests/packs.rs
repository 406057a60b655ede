//! Packs, as a user and as a peer see them: many small files become a few uniform packs;
//! every peer holds shares of only the pack classes' sizes, however varied the files; each
//! file restores byte-exact from its range of a pack, also with a peer offline; the same
//! bytes stored again (another name, a second put) send nothing; a removed file's pack is
//! deleted once no file uses it; check and repair work per pack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_node::files::Removing;
use shard_testkit::swarm as common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::{Swarm, content};
use shard_net::memory::Link;
use shard_node::report::ChunkHealth;
use shard_store::SHARE_CLASSES;

/// A tree of `count` files of varied sizes (0 bytes to 300 KB, and one of several chunks):
/// name → bytes.
fn tree(root: &Path, count: u32) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for i in 0..count {
        let len = match i % 7 {
            0 => 0,
            1 => 1,
            2 => 511,
            3 => 4096,
            4 => 40_000 + i as usize * 13,
            5 => 300_000 - i as usize,
            _ => 1_000 + i as usize * 7,
        };
        let name = format!("dir{}/file-{i}.dat", i % 5);
        let bytes = content(len, i + 1);
        let path = root.join(&name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &bytes).unwrap();
        out.insert(name, bytes);
    }
    let big = content(3_000_000, 999);
    fs::write(root.join("big.bin"), &big).unwrap();
    out.insert("big.bin".into(), big);
    out
}

/// Asserts that every file of `files` is in `out` with its bytes.
fn same_files(out: &Path, files: &BTreeMap<String, Vec<u8>>, why: &str) {
    for (name, bytes) in files {
        assert_eq!(&fs::read(out.join(name)).unwrap(), bytes, "{name}: {why}");
    }
}

/// Payload sizes of every share each node holds: node → sizes seen.
fn share_sizes(swarm: &Swarm) -> Vec<(usize, BTreeSet<u32>, usize)> {
    let mut out = Vec::new();
    for (i, node) in swarm.nodes.iter().enumerate() {
        let store = node.store();
        let mut sizes = BTreeSet::new();
        let mut count = 0;
        for ns in store.namespaces().unwrap() {
            let mut after = None;
            loop {
                let ids = store.list(&ns, after.as_ref(), 1000).unwrap();
                let Some(last) = ids.last().copied() else {
                    break;
                };
                for id in &ids {
                    if let Some(share) = store.get(&ns, id).unwrap() {
                        sizes.insert(share.header().payload_len());
                        count += 1;
                    }
                }
                after = Some(last);
            }
        }
        out.push((i, sizes, count));
    }
    out
}

#[tokio::test]
async fn small_files_become_few_uniform_packs_and_each_restores_from_its_range() {
    let swarm = Swarm::in_memory(5, 4, &[]).await;
    let root = swarm.path("tree");
    let files = tree(&root, 140);
    let report = swarm.put(&root, "tree", Some((3, 5))).await.unwrap();
    // 141 files of a few MB in all: a handful of packs, not a share per file per peer.
    assert!(
        (1..=4).contains(&report.packs_sent),
        "packs sent: {report:?}"
    );
    assert_eq!(report.shares_sent, 5 * report.packs_sent, "{report:?}");

    // What a peer sees: shares of the pack classes' sizes only, a few of them, whatever
    // the files' sizes (the catalog snapshot's shares are the one other thing it holds).
    for (i, sizes, count) in share_sizes(&swarm) {
        let packed: Vec<u32> = sizes
            .iter()
            .copied()
            .filter(|s| SHARE_CLASSES.contains(s))
            .collect();
        assert!(
            !packed.is_empty(),
            "node {i} holds no pack share: {sizes:?}"
        );
        assert!(
            sizes.len() <= SHARE_CLASSES.len() + 1,
            "node {i} shows {} share sizes: {sizes:?}",
            sizes.len()
        );
        assert!(count < 20, "node {i} holds {count} shares for 141 files");
    }

    // Every file back, byte for byte; then again with one peer offline.
    let out = swarm.path("back");
    swarm.get("tree", None, &out).await.unwrap();
    for (name, bytes) in &files {
        assert_eq!(&fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
    swarm.set_link(4, Link::Down);
    let out2 = swarm.path("back-without-one");
    swarm.get("tree", None, &out2).await.unwrap();
    for (name, bytes) in &files {
        assert_eq!(&fs::read(out2.join(name)).unwrap(), bytes, "{name}");
    }
    swarm.set_link(4, Link::Up);
}

#[tokio::test]
async fn the_same_bytes_again_send_nothing_and_a_pack_goes_when_no_file_uses_it() {
    let swarm = Swarm::in_memory(4, 3, &[]).await;
    let one = swarm.path("one.bin");
    fs::write(&one, content(700_000, 5)).unwrap();
    let first = swarm.put(&one, "one.bin", Some((2, 4))).await.unwrap();
    assert_eq!(first.packs_sent, 1, "{first:?}");

    // The same bytes under another name: every chunk found in the pack, nothing sent.
    let again = swarm.put(&one, "copy.bin", Some((2, 4))).await.unwrap();
    assert_eq!(again.packs_sent, 0, "{again:?}");
    assert_eq!(again.shares_sent, 0, "{again:?}");
    assert_eq!(again.chunks_already_stored, again.chunks, "{again:?}");
    let out = swarm.path("copy.out");
    swarm.get("copy.bin", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&one).unwrap());

    let shares_held = |swarm: &Swarm| share_sizes(swarm).iter().map(|s| s.2).sum::<usize>();
    let before = shares_held(&swarm);
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    // One of the two names removed: the pack stays (the other uses it) and still restores.
    shard_node::files::rm(&node, &session, b"one.bin", Removing::Purge)
        .await
        .unwrap();
    swarm.get("copy.bin", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&one).unwrap());
    assert_eq!(shares_held(&swarm), before);
    // Both removed: its shares are deleted on every node.
    let removal = shard_node::files::rm(&node, &session, b"copy.bin", Removing::Purge)
        .await
        .unwrap();
    assert_eq!(removal.shares_deleted, 4, "{removal:?}");
    common::wait_until(|| shares_held(&swarm) + 4 <= before).await;
}

#[tokio::test]
async fn check_and_repair_work_per_pack() {
    let mut swarm = Swarm::in_memory(5, 3, &[]).await;
    let root = swarm.path("tree");
    let files = tree(&root, 30);
    swarm.put(&root, "tree", Some((2, 4))).await.unwrap();
    let report = swarm.check(1.0).await;
    assert_eq!(report.lost + report.degraded, 0, "{report:?}");

    // A holder unpaired at once: every file is degraded (its pack lost a share), none lost;
    // repair rebuilds the pack's share on the fifth node, and every file is healthy again.
    let victim = (1..4).find(|i| swarm.paired[*i]).unwrap();
    swarm
        .owner()
        .remove_peer(swarm.id(victim), true)
        .await
        .unwrap();
    swarm.paired[victim] = false;
    swarm.pair(4).await;
    let degraded = swarm.check(0.0).await;
    assert_eq!(degraded.lost, 0, "{degraded:?}");
    assert!(
        degraded
            .files
            .iter()
            .any(|f| f.state == ChunkHealth::Degraded)
    );
    let node = swarm.owner().clone();
    let session = node.session(Some(common::USER)).unwrap();
    let job = node.jobs().create("repair");
    shard_node::health::repair(node, session, Vec::new(), Default::default(), job)
        .await
        .unwrap();
    let after = swarm.check(1.0).await;
    assert_eq!(after.healthy, after.files.len(), "{after:?}");
    let out = swarm.path("back");
    swarm.get("tree", None, &out).await.unwrap();
    for (name, bytes) in &files {
        assert_eq!(&fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
}

#[tokio::test]
async fn a_range_a_peer_serves_wrong_is_rebuilt_from_the_other_shares() {
    // In order: this node holds data share 0, the liar data share 1, node2 the recovery share.
    // (Quick timings: the restore that must fail waits 2 s, not 20, for node2 to come back.)
    let swarm = Swarm::in_memory_with(
        4,
        3,
        &[(1, shard_testkit::adversary::Lie::WrongBytes)],
        true,
        shard_testkit::swarm::quick_options(),
    )
    .await;
    let path = swarm.path("letters.bin");
    // One chunk for sure (shorter than the chunker's 256 KiB minimum), packed alone in the
    // smallest pack of 2 data shares of 256 KiB (16 bytes of each salt): its blob (the chunk
    // and 28 bytes) ends 40 bytes into data share 1, past the salt (the liar changes a bit
    // in every 16 bytes it serves). A file of several chunks would be cut where the vault's
    // random chunker key says, and its blobs spread over two open packs at random: whether
    // any reached data share 1 would be chance (it failed so, now and then).
    let bytes = content(262_140, 8);
    fs::write(&path, &bytes).unwrap();
    let report = swarm.put(&path, "letters.bin", Some((2, 3))).await.unwrap();
    assert_eq!(report.packs_sent, 1, "{report:?}");
    let out = swarm.path("letters.out");
    swarm.get("letters.bin", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), bytes, "read around the liar");
    // With the liar's data share the only other copy, nothing wrong is ever written: with
    // node2 down too, the restore fails loudly rather than returning its bytes.
    swarm.set_link(2, Link::Down);
    let err = swarm.get("letters.bin", None, &out).await.unwrap_err();
    assert!(err.to_string().contains("cannot be restored"), "{err}");
    assert_eq!(
        fs::read(&out).unwrap(),
        bytes,
        "the earlier copy is untouched"
    );
}

#[tokio::test]
async fn small_files_read_together_restore_around_a_liar_and_a_stalled_holder() {
    // 2-of-3 in order: this node holds data share 0 of each pack, node 1 (which serves
    // every share with bytes changed) data share 1, node 2 the recovery share. 300 small
    // files in three folders: a restore reads them in groups, a span of a data share at once.
    let swarm =
        Swarm::in_memory_in_order(3, 2, &[(1, shard_testkit::adversary::Lie::WrongBytes)]).await;
    let root = swarm.path("letters");
    let mut files = BTreeMap::new();
    for i in 0..300u32 {
        let name = format!("box{}/letter-{i}.txt", i % 3);
        // About 700 kB in all: two packs (blobs go to one of two at random) of the smallest
        // class, each reaching into its second data share.
        let bytes = content(100 + (i as usize * 37) % 4_400, 7_000 + i);
        let path = root.join(&name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &bytes).unwrap();
        files.insert(name, bytes);
    }
    swarm.put(&root, "letters", Some((2, 3))).await.unwrap();
    let out = swarm.path("back");
    swarm.get("letters", None, &out).await.unwrap();
    same_files(&out, &files, "read around the liar");
    // The same holder hanging: each group waits for it once (the test options hedge after
    // 100 ms), and every file is rebuilt from the other two shares.
    swarm.set_link(1, Link::Stalled);
    let out = swarm.path("back-again");
    let started = std::time::Instant::now();
    swarm.get("letters", None, &out).await.unwrap();
    same_files(&out, &files, "read around the stall");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the restore waited on the stalled holder file after file: {:?}",
        started.elapsed()
    );
    // The liar's share was needed: with the recovery share's holder off as well, the files
    // whose bytes lie there cannot be restored, and no file is written wrong.
    swarm.set_link(1, Link::Up);
    swarm.set_link(2, Link::Down);
    swarm.gone(2).await;
    let out = swarm.path("back-without-recovery");
    let err = swarm.get("letters", None, &out).await.unwrap_err();
    assert!(err.to_string().contains("cannot be restored"), "{err}");
    for (name, bytes) in &files {
        if let Ok(got) = fs::read(out.join(name)) {
            assert_eq!(&got, bytes, "{name} was written wrong");
        }
    }
    swarm.set_link(2, Link::Up);
}
