//! Restores in process: names at the file system's limit come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_testkit::swarm as common;

use common::Swarm;

/// A file whose name is 250 bytes long (the limit is 255) restores in place: the restore's
/// temporary name does not grow with the file's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_near_the_limit_restores() {
    let swarm = Swarm::start(2, 1).await;
    let long = "n".repeat(250);
    let src = swarm.path(&long);
    std::fs::write(&src, b"a long name, a short letter").unwrap();
    swarm.put(&src, "letter", Some((1, 2))).await.unwrap();
    let out_dir = swarm.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join(&long);
    swarm.get("letter", None, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"a long name, a short letter");
    for node in &swarm.nodes {
        node.shutdown();
    }
}

/// Writes a tree of `small` files of a few KiB (in ten folders) and two of several MiB under
/// `root`; returns each file's path below it and its bytes.
fn write_tree(root: &std::path::Path, small: u32) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..small {
        let rel = format!("d{}/f{i:03}.txt", i % 10);
        files.push((rel, common::content(500 + (i as usize * 97) % 7000, i)));
    }
    files.push(("big/a.bin".into(), common::content(3 << 20, 1000)));
    files.push(("big/b.bin".into(), common::content(5 << 20, 1001)));
    for (rel, bytes) in &files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    files
}

/// Small files are restored several at once, large ones on their own: a tree of both comes
/// back byte for byte, every file in its place, nothing else beside them, into a folder made
/// with its parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_small_and_large_files_restores_exactly() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let tree = swarm.path("papers");
    let files = write_tree(&tree, 120);
    swarm.put(&tree, "papers", Some((2, 3))).await.unwrap();
    // Into a folder whose parent does not exist yet: both are made.
    let out = swarm.path("restored").join("papers");
    let report = swarm.get("papers", None, &out).await.unwrap();
    assert_eq!(report.files, files.len(), "{report:?}");
    for (rel, bytes) in &files {
        assert!(
            std::fs::read(out.join(rel)).unwrap() == *bytes,
            "{rel} differs"
        );
    }
    let mut found = 0;
    for dir in std::fs::read_dir(&out).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let name = file.unwrap().file_name();
            assert!(!name.to_string_lossy().starts_with(".shard-"), "{name:?}");
            found += 1;
        }
    }
    assert_eq!(found, files.len(), "only the tree's files are there");
}

/// With too few shares reachable, a tree restore fails with the reason, and what it could not
/// restore is not there, not even half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_that_cannot_be_read_fails_and_leaves_no_part_files() {
    // In order: this node holds data share 0 of every pack (where each pack's first blobs
    // lie) and serves it wrong; node2's share is out of reach. Blobs in share 1 still read.
    let swarm =
        Swarm::in_memory_in_order(3, 2, &[(0, shard_testkit::adversary::Lie::WrongBytes)]).await;
    let tree = swarm.path("papers");
    let files = write_tree(&tree, 60);
    swarm.put(&tree, "papers", Some((3, 3))).await.unwrap();
    swarm.set_link(2, shard_net::memory::Link::Down);
    let out = swarm.path("out");
    let err = swarm.get("papers", None, &out).await.unwrap_err();
    assert!(err.to_string().contains("cannot be restored"), "{err}");
    // The get returns only once every restore it started has ended: nothing half-written is
    // left, and what is there is whole.
    for (rel, bytes) in &files {
        if let Ok(found) = std::fs::read(out.join(rel)) {
            assert!(found == *bytes, "{rel} is there but not whole");
        }
    }
    for (rel, _) in &files {
        let dir = out.join(rel).parent().unwrap().to_path_buf();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".shard-"),
                "{name:?} left"
            );
        }
    }
}
