//! Share stores as a node uses them: the same behaviour from every implementation, shares that
//! survive reopening, damage detected and quarantined, quotas and full disks refused cleanly.
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

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use shard_proto::{Namespace, NodeId, Share, ShareHeader, ShareId};
use shard_store::{DiskOptions, DiskStore, Error, Layout, MemoryStore, ShareStore};

fn ns(i: u8) -> Namespace {
    Namespace {
        owner: NodeId([i; 32]),
        vault: [i; 16],
    }
}

fn share(i: u32, len: u32) -> Share {
    let payload: Vec<u8> = (0..len)
        .map(|j| (j ^ i.wrapping_mul(2_654_435_761)) as u8)
        .collect();
    Share::new(
        ShareHeader::new(2, 3, (i % 3) as u8, len).unwrap(),
        Bytes::from(payload),
    )
    .unwrap()
}

/// A temporary folder on tmpfs when there is one (fsync is free there), for tests about
/// behaviour rather than durability.
fn fast_tempdir() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn open(dir: &Path, layout: Layout) -> DiskStore {
    DiskStore::open(dir, DiskOptions::new(layout)).unwrap()
}

/// Every regular file under `root`, relative, skipping the index.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".index.db")
            {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u32>),
    Get(u8, u32),
    Has(u8, Vec<u32>),
    Delete(u8, Vec<u32>),
    Purge(u8, Vec<u32>),
    Undelete(u8, Vec<u32>),
    Expire,
    List(u8, Option<u32>, usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0u8..2;
    let ids = proptest::collection::vec(0u32..12, 0..5);
    prop_oneof![
        4 => (ns.clone(), ids.clone()).prop_map(|(n, v)| Op::Put(n, v)),
        3 => (ns.clone(), 0u32..12).prop_map(|(n, i)| Op::Get(n, i)),
        2 => (ns.clone(), ids.clone()).prop_map(|(n, v)| Op::Has(n, v)),
        2 => (ns.clone(), ids.clone()).prop_map(|(n, v)| Op::Delete(n, v)),
        1 => (ns.clone(), ids.clone()).prop_map(|(n, v)| Op::Purge(n, v)),
        1 => (ns.clone(), ids).prop_map(|(n, v)| Op::Undelete(n, v)),
        1 => Just(Op::Expire),
        2 => (ns, proptest::option::of(0u32..12), 1usize..6).prop_map(|(n, a, l)| Op::List(n, a, l)),
        1 => Just(Op::Reopen),
    ]
}

/// What a store answered, in a form all implementations and the model can agree on.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Unit,
    Share(Option<ShareId>),
    Bools(Vec<bool>),
    Count(u64),
    Ids(Vec<ShareId>),
}

fn apply(store: &dyn ShareStore, op: &Op) -> Answer {
    let shares = |v: &[u32]| v.iter().map(|&i| share(i, 2 + 2 * i)).collect::<Vec<_>>();
    let ids = |v: &[u32]| {
        v.iter()
            .map(|&i| share(i, 2 + 2 * i).id())
            .collect::<Vec<_>>()
    };
    match op {
        Op::Put(n, v) => {
            store.put(&ns(*n), &shares(v)).unwrap();
            Answer::Unit
        }
        Op::Get(n, i) => Answer::Share(store.get(&ns(*n), &ids(&[*i])[0]).unwrap().map(|s| s.id())),
        Op::Has(n, v) => Answer::Bools(store.has(&ns(*n), &ids(v)).unwrap()),
        Op::Delete(n, v) => Answer::Count(store.delete(&ns(*n), &ids(v)).unwrap()),
        Op::Purge(n, v) => Answer::Count(store.purge(&ns(*n), &ids(v)).unwrap()),
        Op::Undelete(n, v) => Answer::Count(store.undelete(&ns(*n), &ids(v)).unwrap()),
        // Everything deleted so far, as if its grace period were over.
        Op::Expire => Answer::Count(store.expire(i64::MAX).unwrap().0),
        Op::List(n, after, limit) => {
            let after = after.map(|a| ids(&[a])[0]);
            Answer::Ids(store.list(&ns(*n), after.as_ref(), *limit).unwrap())
        }
        Op::Reopen => Answer::Unit,
    }
}

/// A share in the model: its size, and whether its owner deleted it (kept through the grace
/// period: readable, stored again by a put, not listed, counted or claimed).
type Model = BTreeMap<(u8, ShareId), (u64, bool)>;

/// The model: a map per namespace.
fn model(state: &mut Model, op: &Op) -> Answer {
    let id = |i: u32| share(i, 2 + 2 * i).id();
    let live = |state: &Model, n: u8, i: ShareId| state.get(&(n, i)).is_some_and(|e| !e.1);
    match op {
        Op::Put(n, v) => {
            for &i in v {
                state.insert((*n, id(i)), (u64::from(18 + 2 * i), false));
            }
            Answer::Unit
        }
        Op::Get(n, i) => Answer::Share(state.contains_key(&(*n, id(*i))).then(|| id(*i))),
        Op::Has(n, v) => Answer::Bools(v.iter().map(|&i| live(state, *n, id(i))).collect()),
        Op::Delete(n, v) => {
            let mut count = 0;
            for &i in v {
                if let Some(entry) = state.get_mut(&(*n, id(i)))
                    && !entry.1
                {
                    entry.1 = true;
                    count += 1;
                }
            }
            Answer::Count(count)
        }
        Op::Purge(n, v) => {
            let mut count = 0;
            let mut seen = std::collections::HashSet::new();
            for &i in v {
                if seen.insert(i)
                    && let Some((_, deleted)) = state.remove(&(*n, id(i)))
                {
                    count += u64::from(!deleted);
                }
            }
            Answer::Count(count)
        }
        Op::Undelete(n, v) => {
            let mut count = 0;
            for &i in v {
                if let Some(entry) = state.get_mut(&(*n, id(i)))
                    && entry.1
                {
                    entry.1 = false;
                    count += 1;
                }
            }
            Answer::Count(count)
        }
        Op::Expire => {
            let before = state.len();
            state.retain(|_, e| !e.1);
            Answer::Count((before - state.len()) as u64)
        }
        Op::List(n, after, limit) => {
            let after = after.map(id);
            Answer::Ids(
                state
                    .iter()
                    .filter(|((m, i), e)| m == n && !e.1 && after.is_none_or(|a| *i > a))
                    .map(|((_, i), _)| *i)
                    .take(*limit)
                    .collect(),
            )
        }
        Op::Reopen => Answer::Unit,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_store_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let plain_dir = fast_tempdir();
        let scatter_dir = fast_tempdir();
        let memory = MemoryStore::new();
        let mut plain = open(plain_dir.path(), Layout::Plain);
        let mut scatter = open(scatter_dir.path(), Layout::Scatter);
        let mut state = BTreeMap::new();
        for op in &ops {
            if matches!(op, Op::Reopen) {
                drop(plain);
                drop(scatter);
                plain = open(plain_dir.path(), Layout::Plain);
                scatter = open(scatter_dir.path(), Layout::Scatter);
                continue;
            }
            let expected = model(&mut state, op);
            prop_assert_eq!(&apply(&memory, op), &expected, "memory, {:?}", op);
            prop_assert_eq!(&apply(&plain, op), &expected, "plain, {:?}", op);
            prop_assert_eq!(&apply(&scatter, op), &expected, "scatter, {:?}", op);
        }
        let used: u64 = state.values().map(|e| e.0).sum();
        let reclaimable: u64 = state.values().filter(|e| e.1).map(|e| e.0).sum();
        let live = state.values().filter(|e| !e.1).count() as u64;
        for store in [&memory as &dyn ShareStore, &plain, &scatter] {
            let usage = store.usage().unwrap();
            prop_assert_eq!(usage.shares, live);
            prop_assert_eq!(usage.used, used);
            prop_assert_eq!(usage.reclaimable, reclaimable);
        }
        // Nothing lingers: no temp files, and the scatter tree holds exactly the live shares.
        prop_assert!(fs::read_dir(scatter_dir.path().join(".tmp")).unwrap().next().is_none());
        let scattered = files_under(scatter_dir.path());
        prop_assert_eq!(scattered.len(), state.len());
    }
}

#[test]
fn shares_survive_reopening_on_the_real_disk() {
    for layout in [Layout::Plain, Layout::Scatter] {
        let dir = tempfile::tempdir().unwrap();
        let batch: Vec<Share> = (0..20).map(|i| share(i, 4096)).collect();
        {
            let store = open(dir.path(), layout);
            store.put(&ns(1), &batch).unwrap();
            // Putting again is a no-op, not a duplicate.
            store.put(&ns(1), &batch[..5]).unwrap();
            assert_eq!(store.usage().unwrap().shares, 20);
        }
        let store = open(dir.path(), layout);
        for s in &batch {
            assert_eq!(store.get(&ns(1), &s.id()).unwrap().as_ref(), Some(s));
            // Namespaces are separate: another owner sees nothing.
            assert_eq!(store.get(&ns(2), &s.id()).unwrap(), None);
        }
        assert_eq!(store.usage().unwrap().used, 20 * (16 + 4096));
        assert!(store.scrub(&ns(1)).unwrap().corrupt.is_empty());
    }
}

#[test]
fn corrupt_and_missing_files_are_detected_quarantined_and_reported() {
    for layout in [Layout::Plain, Layout::Scatter] {
        let dir = fast_tempdir();
        let store = open(dir.path(), layout);
        let batch: Vec<Share> = (0..6).map(|i| share(i, 512)).collect();
        store.put(&ns(1), &batch).unwrap();
        let files = files_under(dir.path());
        assert_eq!(files.len(), 6);
        // Find which file holds which share by content.
        let file_of = |s: &Share| {
            files
                .iter()
                .find(|f| fs::read(dir.path().join(f)).unwrap() == s.to_bytes())
                .unwrap()
                .clone()
        };
        let flipped = file_of(&batch[0]);
        let mut bytes = fs::read(dir.path().join(&flipped)).unwrap();
        bytes[100] ^= 0x40;
        fs::write(dir.path().join(&flipped), &bytes).unwrap();
        let truncated = file_of(&batch[1]);
        let bytes = fs::read(dir.path().join(&truncated)).unwrap();
        fs::write(dir.path().join(&truncated), &bytes[..300]).unwrap();
        fs::remove_file(dir.path().join(file_of(&batch[2]))).unwrap();

        match store.get(&ns(1), &batch[0].id()) {
            Err(Error::Corrupt { share }) => assert_eq!(share, batch[0].id()),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Quarantined: never served again, no longer claimed.
        assert!(!dir.path().join(&flipped).exists());
        assert_eq!(store.get(&ns(1), &batch[0].id()).unwrap(), None);
        assert_eq!(store.has(&ns(1), &[batch[0].id()]).unwrap(), vec![false]);

        let report = store.scrub(&ns(1)).unwrap();
        assert_eq!(report.corrupt, vec![batch[1].id()]);
        assert_eq!(report.missing, vec![batch[2].id()]);
        assert_eq!(report.checked, 5);
        // A good copy can be stored again and replaces the quarantined one.
        store.put(&ns(1), &batch[..3]).unwrap();
        for s in &batch {
            assert_eq!(store.get(&ns(1), &s.id()).unwrap().as_ref(), Some(s));
        }
        assert_eq!(store.usage().unwrap().shares, 6);
        assert!(
            fs::read_dir(dir.path().join(".quarantine"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}

#[test]
fn ranged_reads_return_exactly_the_bytes_asked_and_refuse_ranges_a_share_lacks() {
    let dir = fast_tempdir();
    let disk = open(dir.path(), Layout::Scatter);
    let memory = MemoryStore::new();
    let stores: [&dyn ShareStore; 2] = [&disk, &memory];
    let batch: Vec<Share> = (0..3).map(|i| share(i, 4096)).collect();
    for store in stores {
        store.put(&ns(1), &batch).unwrap();
        let s = &batch[1];
        for (start, end) in [
            (0, 4096),
            (0, 1),
            (4095, 4096),
            (64, 4160 - 64),
            (1000, 1001),
        ] {
            let got = store
                .get_range(&ns(1), &s.id(), start, end)
                .unwrap()
                .unwrap();
            assert_eq!(&got[..], &s.payload()[start as usize..end as usize]);
        }
        for (start, end) in [(0, 4097), (4000, 5000), (10, 10), (20, 10), (4096, 4097)] {
            match store.get_range(&ns(1), &s.id(), start, end) {
                Err(Error::RangeOutOfBounds {
                    share,
                    start: a,
                    end: b,
                    len: 4096,
                }) => assert_eq!((share, a, b), (s.id(), start, end)),
                other => panic!("{start}..{end}: expected RangeOutOfBounds, got {other:?}"),
            }
        }
        // Another namespace's share, or one never stored: not held.
        assert_eq!(store.get_range(&ns(2), &s.id(), 0, 10).unwrap(), None);
        assert_eq!(
            store.get_range(&ns(1), &ShareId([9; 32]), 0, 10).unwrap(),
            None
        );
        // Deleted: still its owner's through the grace period.
        store.delete(&ns(1), &[s.id()]).unwrap();
        let got = store.get_range(&ns(1), &s.id(), 8, 16).unwrap().unwrap();
        assert_eq!(&got[..], &s.payload()[8..16]);
    }
    // A share file cut short on disk is quarantined, not served in part.
    let files = files_under(dir.path());
    let victim = files
        .iter()
        .find(|f| fs::read(dir.path().join(f)).unwrap() == batch[2].to_bytes())
        .unwrap();
    let bytes = fs::read(dir.path().join(victim)).unwrap();
    fs::write(dir.path().join(victim), &bytes[..2000]).unwrap();
    match disk.get_range(&ns(1), &batch[2].id(), 0, 100) {
        Err(Error::Corrupt { share }) => assert_eq!(share, batch[2].id()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        disk.get_range(&ns(1), &batch[2].id(), 0, 100).unwrap(),
        None
    );
}

#[test]
fn quota_refuses_a_put_and_keeps_everything_else() {
    let dir = fast_tempdir();
    let options = DiskOptions {
        quota: Some(10 * (16 + 1000)),
        ..DiskOptions::new(Layout::Scatter)
    };
    let store = DiskStore::open(dir.path(), options).unwrap();
    let first: Vec<Share> = (0..8).map(|i| share(i, 1000)).collect();
    store.put(&ns(1), &first).unwrap();
    let more: Vec<Share> = (8..11).map(|i| share(i, 1000)).collect();
    match store.put(&ns(1), &more) {
        Err(Error::Full { needed, free }) => {
            assert_eq!(needed, 3 * 1016);
            assert_eq!(free, 2 * 1016);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(
        store
            .has(&ns(1), &more.iter().map(Share::id).collect::<Vec<_>>())
            .unwrap(),
        vec![false; 3]
    );
    for s in &first {
        assert_eq!(store.get(&ns(1), &s.id()).unwrap().as_ref(), Some(s));
    }
    assert_eq!(files_under(dir.path()).len(), 8);
    // Room held by a deleted share (in its grace period) is reclaimed when needed.
    assert_eq!(store.delete(&ns(1), &[first[0].id()]).unwrap(), 1);
    assert_eq!(store.usage().unwrap().reclaimable, 1016);
    assert_eq!(store.usage().unwrap().free(), Some(3 * 1016));
    store.put(&ns(1), &more[..2]).unwrap();
    store.put(&ns(1), &more[2..]).unwrap();
    assert_eq!(store.get(&ns(1), &first[0].id()).unwrap(), None);
    assert_eq!(store.usage().unwrap().reclaimable, 0);
    let mem = MemoryStore::with_quota(2000);
    assert!(matches!(mem.put(&ns(1), &more), Err(Error::Full { .. })));
}

#[test]
fn a_deleted_share_stays_its_owners_through_the_grace_period() {
    let plain_dir = fast_tempdir();
    let scatter_dir = fast_tempdir();
    let stores: Vec<Box<dyn ShareStore>> = vec![
        Box::new(MemoryStore::new()),
        Box::new(open(plain_dir.path(), Layout::Plain)),
        Box::new(open(scatter_dir.path(), Layout::Scatter)),
    ];
    for store in &stores {
        let shares: Vec<Share> = (0..4).map(|i| share(i, 300)).collect();
        store.put(&ns(1), &shares).unwrap();
        let ids: Vec<ShareId> = shares.iter().map(Share::id).collect();
        assert_eq!(store.delete(&ns(1), &ids).unwrap(), 4);
        // Gone from what is offered, but readable by the owner, and back when stored again.
        assert_eq!(store.has(&ns(1), &ids).unwrap(), vec![false; 4]);
        assert!(store.list(&ns(1), None, 10).unwrap().is_empty());
        assert_eq!(
            store.get(&ns(1), &ids[0]).unwrap().as_ref(),
            Some(&shares[0])
        );
        assert_eq!(store.get(&ns(2), &ids[0]).unwrap(), None);
        store.put(&ns(1), &shares[..1]).unwrap();
        assert_eq!(store.has(&ns(1), &ids[..1]).unwrap(), vec![true]);
        // Or brought back without its bytes: a recovery from an earlier catalog.
        assert_eq!(store.undelete(&ns(1), &ids[3..]).unwrap(), 1);
        assert_eq!(store.undelete(&ns(2), &ids[2..3]).unwrap(), 0);
        assert_eq!(store.has(&ns(1), &ids[3..]).unwrap(), vec![true]);
        assert_eq!(store.delete(&ns(1), &ids[3..]).unwrap(), 1);
        // Not yet over: nothing expires. Over: the rest goes, the revived one stays.
        assert_eq!(store.expire(0).unwrap(), (0, 0));
        assert_eq!(store.expire(i64::MAX).unwrap(), (3, 3 * 316));
        assert_eq!(store.get(&ns(1), &ids[1]).unwrap(), None);
        assert_eq!(
            store.get(&ns(1), &ids[0]).unwrap().as_ref(),
            Some(&shares[0])
        );
        assert_eq!(store.usage().unwrap().used, 316);
    }
}

#[test]
fn bad_roots_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        DiskStore::open(&missing, DiskOptions::new(Layout::Plain)),
        Err(Error::RootMissing(p)) if p == missing
    ));
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(
        DiskStore::open(&file, DiskOptions::new(Layout::Scatter)),
        Err(Error::NotADirectory(_))
    ));
    assert!(!missing.exists(), "nothing created for a missing root");
}

#[test]
fn scatter_never_writes_into_folders_it_did_not_create() {
    let dir = fast_tempdir();
    // The user's own folders, with names the scatter layout likes.
    for name in ["cache", "data", "logs", "config", "index"] {
        fs::create_dir(dir.path().join(name)).unwrap();
        fs::write(dir.path().join(name).join("mine.txt"), b"user data").unwrap();
    }
    let store = open(dir.path(), Layout::Scatter);
    let batch: Vec<Share> = (0..200).map(|i| share(i, 64)).collect();
    store.put(&ns(1), &batch).unwrap();
    for name in ["cache", "data", "logs", "config", "index"] {
        let entries: Vec<_> = fs::read_dir(dir.path().join(name)).unwrap().collect();
        assert_eq!(entries.len(), 1, "{name} was written into");
    }
    let files = files_under(dir.path());
    assert_eq!(files.len(), 200 + 5);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        // Harmless names, nothing that looks like an id, never a temp file left.
        assert!(!name.ends_with(".part") && name.len() < 40, "{f:?}");
        assert!(
            !batch.iter().any(|s| name.contains(&s.id().to_hex()[..16])),
            "{f:?}"
        );
    }
    let depths: std::collections::BTreeSet<usize> =
        files.iter().map(|f| f.components().count()).collect();
    assert!(depths.len() >= 2, "shares all at one depth: {depths:?}");
}

#[test]
fn concurrent_puts_of_the_same_shares_store_each_once() {
    let dir = fast_tempdir();
    let store = std::sync::Arc::new(open(dir.path(), Layout::Scatter));
    let batch: Vec<Share> = (0..40).map(|i| share(i, 256)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| store.put(&ns(1), &batch).unwrap());
        }
    });
    assert_eq!(store.usage().unwrap().shares, 40);
    assert_eq!(files_under(dir.path()).len(), 40);
}

#[test]
fn scatter_keeps_finding_room_for_thousands_of_shares() {
    // Once failed after ~600 shares: new folders nested ever deeper until none fit.
    let dir = fast_tempdir();
    let store = open(dir.path(), Layout::Scatter);
    for round in 0..100u32 {
        let batch: Vec<Share> = (0..30)
            .map(|i| {
                let n = round * 30 + i;
                Share::new(
                    ShareHeader::new(1, 1, 0, 4).unwrap(),
                    Bytes::copy_from_slice(&n.to_le_bytes()),
                )
                .unwrap()
            })
            .collect();
        store.put(&ns(1), &batch).unwrap();
    }
    assert_eq!(store.usage().unwrap().shares, 3000);
    let deepest = files_under(dir.path())
        .iter()
        .map(|f| f.components().count())
        .max()
        .unwrap();
    assert!(deepest <= 8, "{deepest} levels");
}

#[test]
fn a_namespace_moves_to_a_new_owner_in_every_store() {
    let plain_dir = fast_tempdir();
    let scatter_dir = fast_tempdir();
    let stores: Vec<Box<dyn ShareStore>> = vec![
        Box::new(MemoryStore::new()),
        Box::new(open(plain_dir.path(), Layout::Plain)),
        Box::new(open(scatter_dir.path(), Layout::Scatter)),
    ];
    let (old, new) = (ns(1), ns(2));
    let new = Namespace {
        vault: old.vault,
        ..new
    };
    for store in &stores {
        let shares: Vec<Share> = (0..5).map(|i| share(i, 100)).collect();
        store.put(&old, &shares).unwrap();
        store.put(&new, &shares[..1]).unwrap();
        assert_eq!(store.move_namespace(&old, &new).unwrap(), 4);
        for s in &shares {
            assert_eq!(store.get(&new, &s.id()).unwrap().as_ref(), Some(s));
        }
        // The old owner can no longer reach (or delete) the moved ones.
        assert_eq!(
            store
                .delete(&old, &shares[1..].iter().map(Share::id).collect::<Vec<_>>())
                .unwrap(),
            0
        );
        assert_eq!(store.list(&new, None, 10).unwrap().len(), 5);
        assert_eq!(store.move_namespace(&ns(9), &new).unwrap(), 0);
    }
}

/// A store an earlier build filled with shares of data format 1 (its index at version 2) is
/// refused by name, and nothing in it is touched — not read, not called corrupt, not moved to
/// quarantine; an empty one of that version is simply taken up.
#[test]
fn a_store_of_data_format_1_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let batch: Vec<Share> = (0..3).map(|i| share(i, 64)).collect();
    drop(open(dir.path(), Layout::Plain).put(&ns(1), &batch));
    let before = files_under(dir.path());
    let index = rusqlite::Connection::open(dir.path().join(".index.db")).unwrap();
    index.pragma_update(None, "user_version", 2).unwrap();
    drop(index);
    let Err(err) = DiskStore::open(dir.path(), DiskOptions::new(Layout::Plain)) else {
        panic!("a store of format 1 was opened");
    };
    assert!(
        matches!(err, Error::ShareStoreOfFormat1 { shares: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("data format 1"), "{err}");
    assert_eq!(files_under(dir.path()), before);

    let empty = tempfile::tempdir().unwrap();
    drop(open(empty.path(), Layout::Plain));
    let index = rusqlite::Connection::open(empty.path().join(".index.db")).unwrap();
    index.pragma_update(None, "user_version", 2).unwrap();
    drop(index);
    let store = open(empty.path(), Layout::Plain);
    store.put(&ns(1), &batch).unwrap();
    assert_eq!(store.usage().unwrap().shares, 3);
}

/// A peer's `Have` of many ids (four of the protocol's largest, 65 536 each) does not hold the
/// store for its whole length: other requests get their turn between slices of it. (Without
/// the slicing and the fair hand-over between slices, a read waited nearly the whole batch.)
#[test]
fn a_large_have_lets_other_requests_through() {
    let dir = fast_tempdir();
    let store = std::sync::Arc::new(open(dir.path(), Layout::Scatter));
    let held: Vec<Share> = (0..512).map(|i| share(i, 64)).collect();
    store.put(&ns(1), &held).unwrap();
    let mut ids: Vec<ShareId> = held.iter().map(Share::id).collect();
    ids.extend((512..4 * 65_536u32).map(|i| share(i, 4).id()));
    let one = held[0].id();

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut spans = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let start = std::time::Instant::now();
                assert!(store.get(&ns(1), &one).unwrap().is_some());
                spans.push((start, std::time::Instant::now()));
            }
            spans
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let start = std::time::Instant::now();
    let have = store.has(&ns(1), &ids).unwrap();
    let end = std::time::Instant::now();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let spans = other.join().unwrap();
    assert_eq!(have.iter().filter(|h| **h).count(), 512);
    assert!(have[..512].iter().all(|h| *h));
    // The longest any read waited while the batch ran: one slice of it, not the whole.
    let during: Vec<std::time::Duration> = spans
        .iter()
        .filter(|(s, e)| *e > start && *s < end)
        .map(|(s, e)| *e - *s)
        .collect();
    let longest = during.iter().max().copied().unwrap_or_default();
    println!(
        "a Have of 262 144 ids took {:?}; {} reads meanwhile, the longest {longest:?}",
        end - start,
        during.len()
    );
    assert!(during.len() > 1, "no read went through during the batch");
    assert!(
        longest < (end - start) / 4,
        "a read waited {longest:?} of the batch's {:?}",
        end - start
    );
}
