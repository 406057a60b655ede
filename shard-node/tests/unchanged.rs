//! A put of a tree stored before reads only what changed: a file whose size, mtime, mode,
//! ctime and inode are those of its newest stored version is not read and gets no new version
//! — unless what was stored no longer stands as the put asks (weaker redundancy, a share
//! gone), which the put then mends as it always did. Tried across time: the same tree twice, a
//! file rewritten with its old mtime put back, a file replaced by another of the same size and
//! times, a file written just before the put (racily clean), a stronger `--shares`, a peer
//! unpaired at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_testkit::swarm as common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::Swarm;
use shard_node::report::ChunkHealth;

/// Bytes that cut into several chunks and differ per seed.
fn content(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13).to_le_bytes()[0]
        })
        .collect()
}

/// The tree: name → bytes.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.bin", content(1_500_000, 1)),
        ("b.txt", content(3_000, 2)),
        ("sub/c.txt", content(40_000, 3)),
    ]
}

fn write(root: &Path, name: &str, bytes: &[u8]) {
    let path = root.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Longer than the test nodes' racy window (50 ms): what was written before now is trusted.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(120)).await;
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

fn set_mtime(path: &Path, to: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(to)
        .unwrap();
}

/// Whether the newest version of `name` was recorded with a stamp (`None`: no version).
fn stamped(swarm: &Swarm, name: &str) -> Option<bool> {
    let node = swarm.owner();
    let session = node.session(Some(common::USER)).unwrap();
    let vault = node.catalog().vault(session.account, &session.keys);
    let found = vault.newest_stamped(&[name.as_bytes()]).unwrap();
    found
        .into_iter()
        .next()
        .flatten()
        .map(|(_, stamp)| stamp.is_some())
}

async fn restored(swarm: &Swarm, name: &str, version: Option<u32>) -> Vec<u8> {
    let out = swarm.path("restored");
    swarm.get(name, version, &out).await.unwrap();
    fs::read(&out).unwrap()
}

#[tokio::test]
async fn a_second_put_reads_only_what_changed_and_every_version_restores() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let tree = swarm.path("tree");
    for (name, bytes) in files() {
        write(&tree, name, &bytes);
    }
    settle().await;
    let first = swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!((first.files, first.unchanged), (3, 0), "{first:?}");

    // The same tree again: nothing read, nothing sent, no new version.
    let again = swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!((again.files, again.unchanged), (0, 3), "{again:?}");
    assert_eq!((again.chunks, again.shares_sent), (0, 0), "{again:?}");
    let total: u64 = files().iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(again.unchanged_bytes, total);
    assert!(
        swarm.versions().iter().all(|(_, v)| *v == 1),
        "{:?}",
        swarm.versions()
    );

    // Rewritten with the same size and its old mtime put back: the ctime tells.
    let b = tree.join("b.txt");
    let old = mtime(&b);
    let edited = content(3_000, 20);
    fs::write(&b, &edited).unwrap();
    set_mtime(&b, old);
    // Replaced by another file (a new inode) with the same size and mtime.
    let c = tree.join("sub/c.txt");
    let c_mtime = mtime(&c);
    let replacement = content(40_000, 30);
    let staged = swarm.path("c.new");
    fs::write(&staged, &replacement).unwrap();
    set_mtime(&staged, c_mtime);
    fs::rename(&staged, &c).unwrap();
    settle().await;
    let third = swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!((third.files, third.unchanged), (2, 1), "{third:?}");
    assert_eq!(restored(&swarm, "tree/b.txt", None).await, edited);
    assert_eq!(restored(&swarm, "tree/b.txt", Some(1)).await, files()[1].1);
    assert_eq!(restored(&swarm, "tree/sub/c.txt", None).await, replacement);
    assert_eq!(restored(&swarm, "tree/a.bin", None).await, files()[0].1);
}

#[tokio::test]
async fn a_file_written_just_before_a_put_is_read_again_by_the_next() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let tree = swarm.path("tree");
    write(&tree, "note.txt", &content(2_000, 4));
    // No pause: its times are within the racy window of the scan, so the stamp is not kept.
    swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!(stamped(&swarm, "tree/note.txt"), Some(false));
    // Rewritten in what may be the same clock tick, with the same size.
    let second = content(2_000, 5);
    let path = tree.join("note.txt");
    let before = mtime(&path);
    fs::write(&path, &second).unwrap();
    set_mtime(&path, before);
    let again = swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!((again.files, again.unchanged), (1, 0), "{again:?}");
    assert_eq!(restored(&swarm, "tree/note.txt", None).await, second);
    // Once its times are older than the window, the stamp is kept and trusted.
    settle().await;
    fs::write(&path, content(2_000, 6)).unwrap();
    settle().await;
    swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!(stamped(&swarm, "tree/note.txt"), Some(true));
    let last = swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();
    assert_eq!((last.files, last.unchanged), (0, 1), "{last:?}");
}

#[tokio::test]
async fn an_unchanged_file_is_read_again_when_its_copies_no_longer_stand() {
    let mut swarm = Swarm::in_memory(5, 4, &[]).await;
    let tree = swarm.path("tree");
    for (name, bytes) in files() {
        write(&tree, name, &bytes);
    }
    settle().await;
    swarm.put(&tree, "tree", Some((2, 3))).await.unwrap();

    // Asked to survive more losses than it was stored for: read and stored again, stronger.
    let stronger = swarm.put(&tree, "tree", Some((2, 4))).await.unwrap();
    assert_eq!((stronger.files, stronger.unchanged), (3, 0), "{stronger:?}");
    assert!(stronger.shares_sent > 0, "{stronger:?}");
    // A weaker ask is met by what is stored.
    let weaker = swarm.put(&tree, "tree", Some((3, 4))).await.unwrap();
    assert_eq!((weaker.files, weaker.unchanged), (0, 3), "{weaker:?}");

    // A peer unpaired at once takes its shares with it: the next put sends them again. (The
    // files' blobs may share one pack: a peer that holds one of its shares is picked.)
    let session = swarm.owner().session(Some(common::USER)).unwrap();
    let picture =
        shard_node::health::picture(swarm.owner(), &session, b"tree/b.txt", None).unwrap();
    let holders: Vec<&str> = picture.chunks[0]
        .shares
        .iter()
        .map(|s| s.node_name.as_str())
        .collect();
    let holder = (1..5)
        .find(|i| {
            swarm.paired[*i] && holders.contains(&swarm.nodes[*i].status().unwrap().name.as_str())
        })
        .unwrap();
    swarm
        .owner()
        .remove_peer(swarm.id(holder), true)
        .await
        .unwrap();
    swarm.paired[holder] = false;
    let mended = swarm.put(&tree, "tree", Some((2, 4))).await.unwrap();
    assert!(mended.files > 0, "{mended:?}");
    assert!(mended.shares_sent > 0, "{mended:?}");
    let after = swarm.put(&tree, "tree", Some((2, 4))).await.unwrap();
    assert_eq!((after.files, after.unchanged), (0, 3), "{after:?}");
    // The newest versions stand whole (the first, 2-of-3, lost a share with the peer and is
    // degraded until a repair: the put mends what it stores, not older versions).
    let check = swarm.check(1.0).await;
    assert_eq!(check.lost, 0, "{check:?}");
    for (name, _) in files() {
        let name = format!("tree/{name}");
        let newest = check
            .files
            .iter()
            .filter(|f| f.name == name)
            .max_by_key(|f| f.version)
            .unwrap();
        assert_eq!(newest.state, ChunkHealth::Healthy, "{newest:?}");
    }
    for (name, bytes) in files() {
        assert_eq!(restored(&swarm, &format!("tree/{name}"), None).await, bytes);
    }
}

#[tokio::test]
async fn two_paths_stored_under_one_name_are_both_read_every_time() {
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let (a, b) = (swarm.path("a/notes"), swarm.path("b/notes"));
    write(&a, "x.txt", &content(5_000, 7));
    write(&b, "x.txt", &content(5_000, 8));
    settle().await;
    let both = || shard_node::put::PutRequest {
        paths: vec![a.clone(), b.clone()],
        name: None,
        redundancy: Some((2, 3)),
        move_original: false,
    };
    for round in 0..2u32 {
        let report = swarm.owner().put(Some(common::USER), both()).await.unwrap();
        assert_eq!((report.files, report.unchanged), (2, 0), "{report:?}");
        // Each put records both paths' contents as versions (in the order their shares were
        // acknowledged, which a put does not fix).
        let mut got = vec![
            restored(&swarm, "notes/x.txt", Some(2 * round + 1)).await,
            restored(&swarm, "notes/x.txt", Some(2 * round + 2)).await,
        ];
        got.sort();
        let mut want = vec![content(5_000, 7), content(5_000, 8)];
        want.sort();
        assert_eq!(got, want, "round {round}");
    }
}

/// More files than a put takes from its walk at once (4 096), with the same bytes under
/// different names in different windows: every file is stored and restores byte-exact, a
/// chunk met again in a later window is referred to (its pack on its way, or recorded since)
/// rather than sent twice, and a second put reads only the files edited, in any window.
#[tokio::test]
async fn a_tree_larger_than_a_walk_window_is_stored_whole_and_put_again_reads_only_what_changed() {
    const FILES: usize = 9_000;
    const DISTINCT: usize = 2_500;
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let tree = swarm.path("big");
    let name = |i: usize| format!("d{:02}/f{i:05}", i / 500);
    let bytes = |i: usize, generation: u32| {
        let same = i % DISTINCT;
        // Seeds apart by whole steps of 2¹³, which `content` keeps (it drops the low 13 bits).
        let seed = (u32::try_from(same).unwrap() * 16 + generation) << 13;
        content(300 + same % 700, seed)
    };
    for i in 0..FILES {
        write(&tree, &name(i), &bytes(i, 0));
    }
    settle().await;
    let first = swarm.put(&tree, "big", Some((2, 3))).await.unwrap();
    assert_eq!(
        (first.files, first.dirs),
        (FILES, FILES / 500 + 1),
        "{first:?}"
    );
    assert_eq!(first.chunks, FILES as u64, "{first:?}");
    assert_eq!(
        first.chunks_sent + first.chunks_already_stored,
        first.chunks,
        "{first:?}"
    );
    // Each of the 6 500 repeats refers to the first copy (a race between the catalog
    // recording a pack and a repeat being sealed may pack a few twice, never lose one).
    assert!(
        first.chunks_already_stored >= 6_400,
        "repeats sent again: {first:?}"
    );
    let out = swarm.path("out");
    swarm.get("big", None, &out).await.unwrap();
    for i in 0..FILES {
        assert_eq!(
            fs::read(out.join(name(i))).unwrap(),
            bytes(i, 0),
            "{}",
            name(i)
        );
    }

    let edited = [3, 4_500, 8_999];
    for &i in &edited {
        write(&tree, &name(i), &bytes(i, 7));
    }
    settle().await;
    let second = swarm.put(&tree, "big", Some((2, 3))).await.unwrap();
    assert_eq!(
        (second.files, second.unchanged),
        (edited.len(), (FILES - edited.len()) as u64),
        "{second:?}"
    );
    let again = swarm.path("again");
    swarm.get("big", None, &again).await.unwrap();
    for i in (0..FILES).step_by(97).chain(edited) {
        let generation = if edited.contains(&i) { 7 } else { 0 };
        assert_eq!(
            fs::read(again.join(name(i))).unwrap(),
            bytes(i, generation),
            "{}",
            name(i)
        );
    }
}

/// One file's bytes in more files than a put lets wait for their packs (32 768): the pack
/// holding the one blob they share is closed early, the put goes on with a new one, and every
/// copy, before and after, refers to that blob and restores.
#[tokio::test]
async fn copies_of_one_file_past_the_put_s_limit_of_waiting_files_are_all_stored() {
    const FILES: usize = 34_000;
    let swarm = Swarm::in_memory(3, 2, &[]).await;
    let tree = swarm.path("same");
    let bytes = content(700, 5);
    let name = |i: usize| format!("d{:02}/licence{i:05}", i / 1_000);
    for i in 0..FILES {
        write(&tree, &name(i), &bytes);
    }
    // And a few files of their own, packed after the early close.
    let own = |i: usize| content(2_000, (100 + u32::try_from(i).unwrap()) << 13);
    for i in 0..5 {
        write(&tree, &format!("zz/own{i}"), &own(i));
    }
    settle().await;
    let put = swarm.put(&tree, "same", Some((2, 3))).await.unwrap();
    assert_eq!(put.files, FILES + 5, "{put:?}");
    // One blob for the copies and five of their own; a copy sealed in the instant its
    // blob's pack is recorded may pack it once more, never lose it.
    assert!((6..=8).contains(&put.chunks_sent), "{put:?}");
    assert_eq!(put.chunks_sent + put.chunks_already_stored, put.chunks);
    let out = swarm.path("out");
    swarm.get("same", None, &out).await.unwrap();
    for i in (0..FILES).step_by(499).chain([FILES - 1]) {
        assert_eq!(fs::read(out.join(name(i))).unwrap(), bytes, "{}", name(i));
    }
    for i in 0..5 {
        assert_eq!(fs::read(out.join(format!("zz/own{i}"))).unwrap(), own(i));
    }
}
