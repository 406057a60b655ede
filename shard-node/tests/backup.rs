//! Backups that run themselves, in process with a driven clock: a folder backed up, changed
//! every way a folder changes, backed up again, and each snapshot restores exactly its tree;
//! `diff` is exact; retention forgets what the rules say and removes what no kept snapshot
//! names; the rules refuse bad input with reasons; a job whose folder is missing fails
//! visibly and keeps the snapshots before; a locked account's jobs wait and say why; jobs and
//! snapshots come back with `recover`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_node::files::Removing;
use shard_testkit::swarm as common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Swarm, USER, content};
use shard_node::Error;
use shard_node::backup::{Clock, JobInfo, ManualClock, NewJob, Outcome, WatchStatus};
use shard_node::get::GetRequest;
use shard_node::node::RunOptions;

/// 2026-11-30 09:00 UTC.
const T0: i64 = 1_796_029_200;
const HOUR: i64 = 3600;

/// A swarm of the owner and three peers whose time is `clock`; the node's own loop looks for
/// due jobs only every hour of real time, so the test runs them itself.
async fn swarm(clock: &Arc<ManualClock>) -> Swarm {
    swarm_of(clock, 4).await
}

/// [`swarm`] with `total` nodes (those after the fourth unpaired).
async fn swarm_of(clock: &Arc<ManualClock>, total: usize) -> Swarm {
    let options = RunOptions {
        clock: clock.clone(),
        backup_tick: Duration::from_secs(3600),
        ..common::options()
    };
    Swarm::in_memory_with(total, 3, &[], false, options).await
}

/// What a tree holds as a restore must give it back: per relative path, its kind, mode, mtime
/// (files and links' targets) and bytes.
fn picture(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&path).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if md.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", md.mode() & 0o7777)
            } else {
                format!(
                    "file {:o} {}.{} {:x?}",
                    md.mode() & 0o7777,
                    md.mtime(),
                    md.mtime_nsec(),
                    <sha2::Sha256 as sha2::Digest>::digest(fs::read(&path).unwrap())
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Restores `spec` (`NAME`, with what follows `@` in `at`) into a fresh folder; its path.
async fn restore(
    swarm: &Swarm,
    name: &str,
    at: Option<&str>,
    into: &str,
) -> shard_node::Result<PathBuf> {
    let out = swarm.path(into);
    swarm
        .owner()
        .get(
            Some(USER),
            GetRequest {
                name: name.as_bytes().to_vec(),
                version: None,
                at: at.map(str::to_string),
                out: out.clone(),
                force: false,
                keep_special_bits: false,
            },
        )
        .await?;
    Ok(out)
}

fn job(path: &Path, every: &str, keep: &str) -> NewJob {
    NewJob {
        path: path.to_path_buf(),
        name: Some("papers".into()),
        every: Some(every.into()),
        keep: Some(keep.into()),
        exclude: vec!["*.tmp".into()],
        shares: Some((2, 4)),
        confined: false,
        watch: false,
    }
}

/// Runs what is due now; the outcome of the one run expected.
async fn run_due(swarm: &Swarm) -> shard_node::backup::BackupRun {
    let mut runs = swarm.owner().run_due_backups().await;
    assert_eq!(runs.len(), 1, "one job due: {runs:?}");
    let (_, name, result) = runs.remove(0);
    assert_eq!(name, "papers");
    result.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_snapshot_restores_exactly_its_tree_and_diff_is_exact() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let src = swarm.path("papers-src");
    write(&src, "letters/2025.txt", b"dear all");
    write(&src, "letters/old.txt", b"to be removed");
    write(&src, "tax/return.pdf", &content(300_000, 1));
    write(&src, "notes.md", b"first notes");
    write(&src, "photo.jpg", &content(90_000, 2));
    write(&src, "becomes-a-folder", b"a file for now");
    write(&src, "scratch.tmp", b"left out by the job");
    fs::create_dir_all(src.join("empty")).unwrap();
    std::os::unix::fs::symlink("notes.md", src.join("latest")).unwrap();
    fs::set_permissions(
        src.join("tax/return.pdf"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let owner = swarm.owner().clone();
    let info = owner
        .backup_add(Some(USER), job(&src, "1h", "last=10"))
        .await
        .unwrap();
    assert_eq!((info.every.as_str(), info.keep.as_str()), ("1h", "last=10"));
    assert_eq!(info.next_run, T0, "a new job is due at once");
    let mut first = picture(&src);
    first.remove("scratch.tmp");
    tokio::time::sleep(Duration::from_millis(120)).await; // past the racy window

    let run = run_due(&swarm).await;
    assert_eq!(run.outcome, Outcome::Ok);
    assert_eq!((run.snapshot, run.files), (1, 6), "{run:?}");
    assert!(
        owner.run_due_backups().await.is_empty(),
        "not due again within the hour"
    );

    // Every way a folder changes.
    write(&src, "letters/2026.txt", b"a new letter");
    fs::remove_file(src.join("letters/old.txt")).unwrap();
    write(&src, "notes.md", b"second notes, longer");
    fs::rename(src.join("photo.jpg"), src.join("photo-renamed.jpg")).unwrap();
    fs::set_permissions(
        src.join("tax/return.pdf"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::remove_file(src.join("becomes-a-folder")).unwrap();
    write(&src, "becomes-a-folder/inside.txt", b"now a folder");
    let second = picture(&src);
    let mut second_kept = second.clone();
    second_kept.remove("scratch.tmp");
    tokio::time::sleep(Duration::from_millis(120)).await;
    clock.advance(HOUR);
    let run = run_due(&swarm).await;
    assert_eq!(run.snapshot, 2);
    assert_eq!(
        run.unchanged, 1,
        "letters/2025.txt is not read again: {run:?}"
    );
    assert_eq!((run.added, run.removed, run.changed), (3, 2, 3), "{run:?}");

    let one = restore(&swarm, "papers", Some("1"), "one").await.unwrap();
    assert_eq!(picture(&one), first, "snapshot 1 is the tree as it was");
    let two = restore(&swarm, "papers", Some("2"), "two").await.unwrap();
    assert_eq!(
        picture(&two),
        second_kept,
        "snapshot 2 is the tree as it is"
    );
    let newest = restore(&swarm, "papers", None, "newest").await.unwrap();
    assert_eq!(
        picture(&newest),
        second_kept,
        "the name alone is the newest snapshot"
    );
    // One file out of an old snapshot, and a folder.
    let old = restore(&swarm, "papers/letters/old.txt", Some("1"), "old.txt")
        .await
        .unwrap();
    assert_eq!(fs::read(old).unwrap(), b"to be removed");
    let err = restore(&swarm, "papers/letters/old.txt", Some("2"), "gone.txt")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not in snapshot papers@2"),
        "{err}"
    );
    let letters = restore(&swarm, "papers/letters", Some("2"), "letters")
        .await
        .unwrap();
    assert_eq!(
        picture(&letters).keys().cloned().collect::<Vec<_>>(),
        ["2025.txt", "2026.txt"]
    );
    // By day: both runs were on 2026-11-30 in UTC; the machine's zone may cut it elsewhere,
    // so the day asked is the one the second run fell on there.
    let zone = jiff::tz::TimeZone::system();
    let day = jiff::Timestamp::from_second(T0 + HOUR)
        .unwrap()
        .to_zoned(zone)
        .date()
        .to_string();
    let by_day = restore(&swarm, "papers", Some(&day), "by-day")
        .await
        .unwrap();
    assert_eq!(picture(&by_day), second_kept);

    let diff = owner.backup_diff(Some(USER), "papers", "1", "2").unwrap();
    let mut added = diff.added.clone();
    added.sort();
    assert_eq!(
        added,
        [
            "papers/becomes-a-folder/inside.txt",
            "papers/letters/2026.txt",
            "papers/photo-renamed.jpg",
        ]
    );
    assert_eq!(diff.removed, ["papers/letters/old.txt", "papers/photo.jpg"]);
    let mut changed = diff.changed.clone();
    changed.sort();
    assert_eq!(
        changed,
        [
            "papers/becomes-a-folder",
            "papers/notes.md",
            "papers/tax/return.pdf"
        ]
    );
    // Folders whose contents changed are not listed as changed themselves unless their own
    // mode did; the job's folder itself gets a new version at each run but is the same.
    let snaps = owner.snapshots(Some(USER), "papers").unwrap();
    assert_eq!(
        snaps.iter().map(|s| (s.no, s.at)).collect::<Vec<_>>(),
        [(1, T0), (2, T0 + HOUR)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_what_the_rules_say_and_removes_what_no_snapshot_names() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let src = swarm.path("papers-src");
    write(&src, "steady.txt", b"never changes");
    owner
        .backup_add(Some(USER), job(&src, "1h", "last=2"))
        .await
        .unwrap();
    let mut forgotten = Vec::new();
    for round in 1..=4u32 {
        write(&src, "diary.txt", format!("day {round}").as_bytes());
        tokio::time::sleep(Duration::from_millis(120)).await;
        let run = run_due(&swarm).await;
        assert_eq!(run.snapshot, round);
        forgotten.extend(run.forgotten.clone());
        clock.advance(HOUR);
    }
    assert_eq!(forgotten, [1, 2], "last=2 keeps 3 and 4");
    let kept: Vec<u32> = owner
        .snapshots(Some(USER), "papers")
        .unwrap()
        .iter()
        .map(|s| s.no)
        .collect();
    assert_eq!(kept, [3, 4]);
    // The diary's versions of the forgotten snapshots are gone; the steady file's one version
    // stays, named by every snapshot.
    let session = owner.session(Some(USER)).unwrap();
    let vault = owner.catalog().vault(session.account, &session.keys);
    let versions = |name: &str| -> Vec<u32> {
        vault
            .versions(name.as_bytes())
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect()
    };
    assert_eq!(versions("papers/diary.txt"), [3, 4]);
    assert_eq!(versions("papers/steady.txt"), [1]);
    for (at, expect) in [("3", "day 3"), ("4", "day 4")] {
        let out = restore(&swarm, "papers/diary.txt", Some(at), &format!("diary{at}"))
            .await
            .unwrap();
        assert_eq!(fs::read(out).unwrap(), expect.as_bytes());
    }
    let err = restore(&swarm, "papers", Some("1"), "one")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "papers@1 is not a snapshot: it was forgotten by the job's keep rules (snapshots kept: 3, 4)"
    );
    let err = restore(&swarm, "papers", Some("9"), "nine")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no run made it"), "{err}");
    let check = swarm.check(1.0).await;
    assert!(check.ok, "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_with_their_reason_and_a_jobs_tree_is_its_own() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let src = swarm.path("papers-src");
    write(&src, "a.txt", b"a");
    let add = |new: NewJob| {
        let owner = owner.clone();
        async move { owner.backup_add(Some(USER), new).await }
    };
    let refused = |r: shard_node::Result<shard_node::backup::JobInfo>| match r {
        Err(e) => e.to_string(),
        Ok(j) => panic!("accepted {j:?}"),
    };
    let text = refused(
        add(NewJob {
            every: Some("0s".into()),
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(text.contains("shorter than a minute"), "{text}");
    let text = refused(
        add(NewJob {
            every: Some("abc".into()),
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(text.contains("is not a period"), "{text}");
    let text = refused(add(job(&src, "1h", "last=0,daily=0")).await);
    assert!(text.contains("keep no snapshot at all"), "{text}");
    let text = refused(
        add(NewJob {
            exclude: vec!["*".into()],
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(text.contains("leave out everything"), "{text}");
    let text = refused(add(job(&swarm.path("nowhere"), "1h", "last=1")).await);
    assert!(text.contains("nowhere"), "{text}");
    let text = refused(
        add(NewJob {
            name: Some("a/b".into()),
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(text.contains("without `/`"), "{text}");
    // A name stored with `put` is not taken over.
    write(&swarm.path("other"), "x", b"x");
    swarm
        .put(&swarm.path("other"), "stored", None)
        .await
        .unwrap();
    let text = refused(
        add(NewJob {
            name: Some("stored".into()),
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(text.contains("already names files stored"), "{text}");
    // Nor one under which a file was stored (`put --as docs/x`): retention would take it.
    swarm
        .put(&swarm.path("other").join("x"), "docs/x", None)
        .await
        .unwrap();
    let docs = NewJob {
        name: Some("docs".into()),
        ..job(&src, "1h", "last=1")
    };
    assert!(refused(add(docs).await).contains("already names files stored"));
    let at = NewJob {
        name: Some("a@b".into()),
        ..job(&src, "1h", "last=1")
    };
    assert!(refused(add(at).await).contains("without `/` or `@`"));

    add(job(&src, "1h", "last=3")).await.unwrap();
    let text = refused(
        add(NewJob {
            name: Some("again".into()),
            ..job(&src, "1h", "last=1")
        })
        .await,
    );
    assert!(
        text.contains("is backed up by job \"papers\" already"),
        "{text}"
    );
    let text = refused(add(job(&swarm.path("other"), "1h", "last=1")).await);
    assert!(
        text.contains("a backup job is named \"papers\" already"),
        "{text}"
    );
    run_due(&swarm).await;
    // Only the job's runs store or remove under its name.
    let err = swarm
        .put(&swarm.path("other"), "papers", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobsName { .. }), "{err}");
    let err = owner
        .remove(Some(USER), b"papers/a.txt", Removing::ToTrash)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobsName { .. }), "{err}");

    // The folder gone at run time: the run fails visibly; snapshot 1 stays.
    fs::rename(&src, swarm.path("moved-away")).unwrap();
    clock.advance(HOUR);
    let mut runs = owner.run_due_backups().await;
    let (_, _, result) = runs.remove(0);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("it is missing"), "{err}");
    let jobs = owner.backup_jobs(Some(USER)).unwrap();
    let last = jobs[0].last.clone().unwrap();
    assert_eq!(last.outcome, Outcome::Failed);
    assert!(
        jobs[0]
            .attention
            .as_deref()
            .unwrap()
            .starts_with("its last run failed")
    );
    let alerts = owner.status().unwrap().backups;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].job.as_deref(), Some("papers"));
    let back = restore(&swarm, "papers/a.txt", Some("1"), "a.txt")
        .await
        .unwrap();
    assert_eq!(fs::read(back).unwrap(), b"a");
    // Tried again sooner than the period, after the folder is back.
    fs::rename(swarm.path("moved-away"), &src).unwrap();
    clock.advance(15 * 60);
    assert_eq!(run_due(&swarm).await.outcome, Outcome::Ok);
    assert!(owner.status().unwrap().backups.is_empty());

    // Removed, the job's snapshots stay and restore; with --forget-snapshots they go, and
    // the name is free again.
    let removal = owner
        .backup_remove(Some(USER), "papers", false)
        .await
        .unwrap();
    assert_eq!(removal.snapshots_kept, 2);
    assert!(
        restore(&swarm, "papers", Some("2"), "after-rm")
            .await
            .is_ok()
    );
    let removal = owner
        .backup_remove(Some(USER), "papers", true)
        .await
        .unwrap();
    assert_eq!(removal.snapshots_forgotten, 2);
    let session = owner.session(Some(USER)).unwrap();
    let vault = owner.catalog().vault(session.account, &session.keys);
    assert!(vault.versions(b"papers/a.txt").unwrap().is_empty());
    let err = owner
        .backup_remove(Some(USER), "papers", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchJob(_)), "{err}");

    // A folder found empty where the last snapshot held files (a disk not mounted) makes no
    // snapshot: it would become the newest, and retention would forget the real ones.
    owner
        .backup_add(Some(USER), job(&src, "1h", "last=1"))
        .await
        .unwrap();
    clock.advance(HOUR);
    let run = run_due(&swarm).await;
    fs::remove_file(src.join("a.txt")).unwrap();
    clock.advance(HOUR);
    let mut runs = owner.run_due_backups().await;
    let err = runs.remove(0).2.unwrap_err();
    assert!(err.to_string().contains("it is empty"), "{err}");
    let nos: Vec<u32> = owner
        .snapshots(Some(USER), "papers")
        .unwrap()
        .iter()
        .map(|s| s.no)
        .collect();
    assert_eq!(nos, [run.snapshot]);

    // An account with a job and snapshots is removed whole with --purge.
    drop(vault);
    let files = owner.remove_account(USER, true).await.unwrap();
    assert!(files > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_accounts_jobs_wait_and_say_why_then_run_and_come_back_with_recover() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm_of(&clock, 5).await;
    let owner = swarm.owner().clone();
    let src = swarm.path("papers-src");
    write(&src, "will.txt", &content(50_000, 7));
    owner
        .backup_add(Some(USER), job(&src, "1h", "last=5"))
        .await
        .unwrap();
    run_due(&swarm).await;
    assert!(owner.logout(Some(USER)));
    clock.advance(3 * HOUR);
    assert!(
        owner.run_due_backups().await.is_empty(),
        "nothing runs while locked"
    );
    let alerts = owner.status().unwrap().backups;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].reason.contains("is locked"), "{alerts:?}");
    owner
        .login(USER, zeroize::Zeroizing::new(common::PASSWORD.to_vec()))
        .await
        .unwrap();
    // The run missed while locked runs as soon as the node looks.
    assert_eq!(run_due(&swarm).await.snapshot, 2);

    // The owner's machine is lost; a new one recovers the vault, its job and snapshots.
    let session = owner.session(Some(USER)).unwrap();
    shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    let new = swarm.nodes[4].clone();
    swarm.join_peers(4, 1..=3).await;
    swarm.recover_on(4).await.unwrap();
    let jobs = new.backup_jobs(Some(USER)).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].name.as_str(), jobs[0].snapshots), ("papers", 2));
    let nos: Vec<u32> = new
        .snapshots(Some(USER), "papers")
        .unwrap()
        .iter()
        .map(|s| s.no)
        .collect();
    assert_eq!(nos, [1, 2]);
    let out = swarm.path("will-recovered");
    new.get(
        Some(USER),
        GetRequest {
            name: b"papers/will.txt".to_vec(),
            version: None,
            at: Some("1".into()),
            out: out.clone(),
            force: false,
            keep_special_bits: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(fs::read(out).unwrap(), content(50_000, 7));
}

/// A job a web session made reads its folder only while the folder lies under `[web]
/// node_paths`: checked again at every run (here the list is empty: nothing is open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_sessions_job_reads_only_folders_still_open_to_the_web() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let src = swarm.path("papers-src");
    write(&src, "a.txt", b"a");
    let new = NewJob {
        confined: true,
        ..job(&src, "1h", "last=1")
    };
    swarm.owner().backup_add(Some(USER), new).await.unwrap();
    let mut runs = swarm.owner().run_due_backups().await;
    let err = runs.remove(0).2.unwrap_err();
    assert!(
        err.to_string()
            .contains("no longer under a folder open to web sessions"),
        "{err}"
    );
    assert!(
        swarm
            .owner()
            .snapshots(Some(USER), "papers")
            .unwrap()
            .is_empty()
    );
}

/// A run made while the clock was a year ahead, then the clock put right: the job is due at
/// once and says the clock went back, and retention still keeps the newest runs, not the one
/// dated ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_gone_back_neither_stops_backups_nor_makes_retention_keep_the_wrong_ones() {
    let clock = Arc::new(ManualClock::new(T0 + 365 * 24 * HOUR));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let src = swarm.path("papers-src");
    write(&src, "a.txt", b"one");
    owner
        .backup_add(Some(USER), job(&src, "1h", "last=2"))
        .await
        .unwrap();
    assert_eq!(run_due(&swarm).await.snapshot, 1);
    clock.set(T0);
    let alerts = owner.status().unwrap().backups;
    assert!(
        alerts
            .iter()
            .any(|a| a.reason.contains("the clock went back")),
        "{alerts:?}"
    );
    for (round, text) in [(2u32, "two"), (3, "three")] {
        write(&src, "a.txt", text.as_bytes());
        tokio::time::sleep(Duration::from_millis(120)).await;
        let run = run_due(&swarm).await;
        assert_eq!(run.snapshot, round);
        clock.advance(HOUR);
    }
    let kept: Vec<u32> = owner
        .snapshots(Some(USER), "papers")
        .unwrap()
        .iter()
        .map(|s| s.no)
        .collect();
    assert_eq!(
        kept,
        [2, 3],
        "the run dated ahead is the oldest, not the newest"
    );
    let out = restore(&swarm, "papers/a.txt", None, "newest")
        .await
        .unwrap();
    assert_eq!(fs::read(out).unwrap(), b"three");
}

/// `user`'s job, once `what` holds of it (polled for at most 5 s of real time: a watcher is
/// set up and its events arrive on threads of their own).
async fn until(
    node: &shard_node::node::Node,
    why: &str,
    what: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let mut jobs = Vec::new();
    for _ in 0..100 {
        jobs = node.backup_jobs(Some(USER)).unwrap();
        if let Some(j) = jobs.iter().find(|j| what(j)) {
            return j.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{why}: never so within 5 s: {jobs:?}");
}

/// Lets the last events of a write arrive (a write is several: create, modify, close).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A watched job (`--watch`) runs once its folder's changes have been quiet for 10 s of the
/// clock, not before; never sooner than its period (5 m by default) after its last run began;
/// not at all while nothing changes but for a run a day; and a change only to what it
/// excludes does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_job_runs_once_changes_are_quiet_and_never_sooner_than_its_period() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let src = swarm.path("papers-src");
    write(&src, "a.txt", b"one");
    let new = NewJob {
        every: None,
        watch: true,
        ..job(&src, "1h", "last=10")
    };
    let made = owner.backup_add(Some(USER), new).await.unwrap();
    assert!(made.watch);
    assert_eq!(made.every, "5m", "a watched job's default gap");
    until(&owner, "watching", |j| {
        matches!(j.watcher, Some(WatchStatus::Watching { .. }))
    })
    .await;
    clock.advance(1);
    assert_eq!(run_due(&swarm).await.snapshot, 1, "a new job runs at once");

    // Nothing changes: nothing runs, five minutes on or half a day on.
    clock.advance(5 * 60);
    assert!(owner.run_due_backups().await.is_empty());
    write(&src, "scratch.tmp", b"excluded");
    settle().await;
    let job = owner.backup_jobs(Some(USER)).unwrap().remove(0);
    assert_eq!(job.changed, None, "a change to what the job excludes");
    assert!(owner.run_due_backups().await.is_empty());

    // A change: seen, and run once quiet for 10 s, not before.
    write(&src, "b.txt", b"two");
    until(&owner, "a change seen", |j| j.changed.is_some()).await;
    settle().await;
    assert!(owner.run_due_backups().await.is_empty(), "not quiet yet");
    clock.advance(9);
    assert!(owner.run_due_backups().await.is_empty(), "9 s of quiet");
    clock.advance(1);
    let second = run_due(&swarm).await;
    assert_eq!((second.snapshot, second.added), (2, 1));
    let started = clock.now();

    // A change right after: quiet soon, but the job waits for its period since that run.
    write(&src, "a.txt", b"three");
    until(&owner, "a change seen", |j| j.changed.is_some()).await;
    settle().await;
    clock.advance(60);
    assert!(owner.run_due_backups().await.is_empty(), "1 m after a run");
    clock.set(started + 299);
    assert!(owner.run_due_backups().await.is_empty(), "4 m 59 s after");
    clock.set(started + 300);
    let third = run_due(&swarm).await;
    assert_eq!((third.snapshot, third.changed), (3, 1));
    let job = owner.backup_jobs(Some(USER)).unwrap().remove(0);
    assert_eq!(job.changed, None, "stored");
    assert_eq!(
        job.next_run,
        started + 300 + 24 * HOUR,
        "nothing waits: in a day"
    );

    // Nothing more changes: a run a day all the same.
    clock.advance(24 * HOUR - 1);
    assert!(owner.run_due_backups().await.is_empty());
    clock.advance(1);
    let daily = run_due(&swarm).await;
    assert_eq!((daily.snapshot, daily.added, daily.changed), (4, 0, 0));
    assert!(
        owner.status().unwrap().backups.is_empty(),
        "nothing overdue"
    );
}
