//! Real disk faults, on small filesystems the test mounts itself: a disk that fills up and a
//! disk that turns read-only. Needs root (to mount); skipped with a message otherwise.
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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use shard_proto::{Namespace, NodeId, Share, ShareHeader};
use shard_store::{DiskOptions, DiskStore, Error, Layout, ShareStore};

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A tmpfs of `size` mounted on a fresh folder; unmounted when dropped, even if the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed although we are root"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn ns() -> Namespace {
    Namespace {
        owner: NodeId([1; 32]),
        vault: [2; 16],
    }
}

fn share(i: u32, len: u32) -> Share {
    let payload: Vec<u8> = (0..len)
        .map(|j| (j ^ i.wrapping_mul(0x9E37_79B9)) as u8)
        .collect();
    Share::new(
        ShareHeader::new(1, 2, 0, len).unwrap(),
        Bytes::from(payload),
    )
    .unwrap()
}

fn part_files(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join(".tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

/// Fills the disk with batches until a put fails; returns the shares that were stored.
fn fill(store: &DiskStore, batch_len: u32) -> (Vec<Share>, Error) {
    let mut stored = Vec::new();
    for round in 0..10_000u32 {
        let batch: Vec<Share> = (0..4).map(|i| share(round * 4 + i, batch_len)).collect();
        match store.put(&ns(), &batch) {
            Ok(()) => stored.extend(batch),
            Err(e) => return (stored, e),
        }
    }
    panic!("the small disk never filled up");
}

#[test]
fn a_full_disk_is_a_typed_error_and_loses_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    for layout in [Layout::Plain, Layout::Scatter] {
        // Index elsewhere: the share files themselves hit ENOSPC.
        let disk = Tmpfs::mount("2m");
        let index_dir = tempfile::tempdir().unwrap();
        let options = DiskOptions {
            index_path: Some(index_dir.path().join("index.db")),
            ..DiskOptions::new(layout)
        };
        let store = DiskStore::open(disk.path(), options.clone()).unwrap();
        let (stored, err) = fill(&store, 60_000);
        assert!(matches!(err, Error::Full { .. }), "{layout:?}: got {err:?}");
        assert!(!stored.is_empty());
        assert!(part_files(disk.path()).is_empty(), "temp files left behind");
        for s in &stored {
            assert_eq!(store.get(&ns(), &s.id()).unwrap().as_ref(), Some(s));
        }
        drop(store);
        // Reopened: consistent, and room made by a delete is usable again.
        let store = DiskStore::open(disk.path(), options).unwrap();
        assert_eq!(store.usage().unwrap().shares, stored.len() as u64);
        assert!(store.scrub(&ns()).unwrap().missing.is_empty());
        let freed: Vec<_> = stored.iter().take(4).map(Share::id).collect();
        assert_eq!(store.delete(&ns(), &freed).unwrap(), 4);
        store.put(&ns(), &[share(999_999, 60_000)]).unwrap();
    }
}

#[test]
fn a_full_disk_under_the_index_too_is_a_typed_error() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let disk = Tmpfs::mount("1m");
    let store = DiskStore::open(disk.path(), DiskOptions::new(Layout::Scatter)).unwrap();
    let (stored, err) = fill(&store, 30_000);
    assert!(matches!(err, Error::Full { .. }), "got {err:?}");
    for s in &stored {
        assert_eq!(store.get(&ns(), &s.id()).unwrap().as_ref(), Some(s));
    }
    drop(store);
    let store = DiskStore::open(disk.path(), DiskOptions::new(Layout::Scatter)).unwrap();
    assert_eq!(store.usage().unwrap().shares, stored.len() as u64);
}

#[test]
fn a_read_only_disk_is_a_typed_error_and_keeps_its_shares() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let disk = Tmpfs::mount("4m");
    let batch: Vec<Share> = (0..5).map(|i| share(i, 1000)).collect();
    // The kernel refuses to remount read-only while SQLite has its database open for writing
    // there, so for the running store the index lives on another disk.
    let index_dir = tempfile::tempdir().unwrap();
    let elsewhere = DiskOptions {
        index_path: Some(index_dir.path().join("index.db")),
        ..DiskOptions::new(Layout::Scatter)
    };
    {
        let store = DiskStore::open(disk.path(), DiskOptions::new(Layout::Scatter)).unwrap();
        store.put(&ns(), &batch).unwrap();
    }
    {
        let store = DiskStore::open(disk.path(), elsewhere.clone()).unwrap();
        store.put(&ns(), &[share(50, 1000)]).unwrap();
        disk.remount("ro");
        // A running store whose disk turns read-only refuses new shares, typed.
        let err = store.put(&ns(), &[share(77, 1000)]).unwrap_err();
        assert!(matches!(err, Error::ReadOnly(_)), "got {err:?}");
        // And still serves what it has.
        assert_eq!(
            store.get(&ns(), &share(50, 1000).id()).unwrap(),
            Some(share(50, 1000))
        );
        assert!(part_files(disk.path()).is_empty());
    }
    // Opening a store on a read-only disk is refused up front, whichever disk the index is on.
    for options in [DiskOptions::new(Layout::Scatter), elsewhere.clone()] {
        let err = DiskStore::open(disk.path(), options).err().unwrap();
        assert!(matches!(err, Error::ReadOnly(_)), "got {err:?}");
    }
    disk.remount("rw");
    let store = DiskStore::open(disk.path(), DiskOptions::new(Layout::Scatter)).unwrap();
    for s in &batch {
        assert_eq!(store.get(&ns(), &s.id()).unwrap().as_ref(), Some(s));
    }
    assert_eq!(store.usage().unwrap().shares, 5);
}
