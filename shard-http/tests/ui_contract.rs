//! The web UI reads the engine's reports by field name: every field its code reads from a
//! check's or a repair's report is one the report serializes. (A field renamed in Rust and
//! not in app.js would show "undefined" in the browser; this catches it first.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::Value;
use shard_node::jobs::{JobResult, JobState, JobStatus};
use shard_node::report::{
    CheckReport, ChunkHealth, DeletedInGrace, EntryKind, FileHealth, GetReport, ListedFile,
    Listing, NodeCheck, NodeCheckState, Picture, PictureChunk, PictureNode, PictureShare,
    ReadSummary, RepairReport, ShareView, StoredHealth, WorstChunk,
};

const APP_JS: &str = include_str!("../ui/app.js");

/// The text of the function `name` in app.js (from its header to the next top-level `}`).
fn function(name: &str) -> &'static str {
    let start = APP_JS
        .find(&format!("function {name}("))
        .unwrap_or_else(|| panic!("app.js has no function {name}"));
    let end = APP_JS[start..].find("\n}\n").unwrap() + start;
    &APP_JS[start..end]
}

/// The fields `code` reads from variable `var` (`var.field`).
fn fields_read(code: &str, var: &str) -> BTreeSet<String> {
    let needle = format!("{var}.");
    let mut fields = BTreeSet::new();
    for (at, _) in code.match_indices(&needle) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let field: String = code[at + needle.len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !field.is_empty() && field != "length" {
            fields.insert(field);
        }
    }
    fields
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn check_report() -> CheckReport {
    CheckReport {
        catalog_snapshot_failure: None,
        deleted_in_grace: DeletedInGrace {
            shares: 0,
            oldest_deleted_at: None,
            grace_days: 7,
        },
        files: vec![FileHealth {
            name: "a".into(),
            name_hex: "61".into(),
            version: 1,
            size: 1,
            state: ChunkHealth::Degraded,
            chunks: 1,
            worst_chunk: Some(WorstChunk {
                k: 2,
                n: 3,
                good: 2,
                missing: 1,
                bad: 0,
                unknown: 0,
                survives_losses: 0,
            }),
        }],
        files_not_listed: 0,
        healthy: 0,
        degraded: 1,
        lost: 0,
        unknown: 0,
        chunks: 1,
        shares: 3,
        unrecorded: 0,
        nodes: vec![NodeCheck {
            node: "b".into(),
            id: "x".into(),
            shares: 1,
            missing: 1,
            bad: 0,
            state: NodeCheckState::Checked,
            error: None,
        }],
        read: ReadSummary {
            shares: 0,
            bad: 0,
            unreadable: 0,
            fraction: 0.0,
        },
        ok: false,
        elapsed_secs: 0.1,
    }
}

#[test]
fn the_check_view_reads_only_fields_the_check_report_has() {
    let report = serde_json::to_value(check_report()).unwrap();
    let code = function("runCheck");
    let read = fields_read(code, "report");
    assert!(read.contains("healthy"), "{read:?}");
    assert!(
        read.is_subset(&keys(&report)),
        "{read:?} vs {:?}",
        keys(&report)
    );
    let file = &report["files"][0];
    let read = fields_read(code, "f");
    assert!(read.is_subset(&keys(file)), "{read:?} vs {:?}", keys(file));
    assert_eq!(
        file["state"], "degraded",
        "the badge's class is the state word"
    );
    let read = fields_read(code, "w");
    let worst = &file["worst_chunk"];
    assert!(
        read.is_subset(&keys(worst)),
        "{read:?} vs {:?}",
        keys(worst)
    );
}

#[test]
fn the_repair_view_reads_only_fields_the_repair_report_has() {
    let report = serde_json::to_value(RepairReport {
        chunks_degraded: 1,
        chunks_repaired: 1,
        shares_rebuilt: 1,
        bytes_rebuilt: 1,
        chunks_lost: 0,
        files_lost: Vec::new(),
        files_lost_not_listed: 0,
        chunks_waiting_for_room: 0,
        waiting: None,
        failures: Vec::new(),
        full_nodes: Vec::new(),
        ok: true,
        elapsed_secs: 0.1,
        catalog_snapshot_failure: None,
    })
    .unwrap();
    let start = APP_JS.find("follow(job, \"repairing\")").unwrap();
    let code = &APP_JS[start..start + APP_JS[start..].find('\n').unwrap() + 200];
    let read = fields_read(code, "r");
    assert!(read.contains("chunks_repaired"), "{read:?}");
    assert!(
        read.is_subset(&keys(&report)),
        "{read:?} vs {:?}",
        keys(&report)
    );
}

#[test]
fn the_file_list_reads_only_fields_a_listing_has() {
    let listing = serde_json::to_value(Listing {
        files: vec![ListedFile {
            name: "a".into(),
            name_hex: "61".into(),
            kind: EntryKind::File,
            size: 1,
            mtime: 0,
            mode: 0o644,
            version: 1,
            versions: 1,
            stored_at: 1,
            health: Some(StoredHealth {
                state: ChunkHealth::Degraded,
                k: Some(2),
                n: Some(3),
                min_acked: Some(2),
                spare: Some(0),
            }),
        }],
    })
    .unwrap();
    let file = &listing["files"][0];
    let code = function("fileRow");
    let read = fields_read(code, "f");
    assert!(read.contains("versions"), "{read:?}");
    assert!(read.is_subset(&keys(file)), "{read:?} vs {:?}", keys(file));
    assert_eq!(file["kind"], "file", "the row's buttons test this word");
    assert_eq!(file["health"]["state"], "degraded");
    let read = fields_read(function("renderFiles"), "listing");
    assert!(read.is_subset(&keys(&listing)), "{read:?}");
}

#[test]
fn the_picture_reads_only_fields_a_picture_has() {
    let picture = serde_json::to_value(Picture {
        name: "a".into(),
        version: 1,
        size: 1,
        kind: EntryKind::File,
        chunks: vec![PictureChunk {
            pack: None,
            id: "00".into(),
            size: 1,
            k: 1,
            n: 2,
            shares: vec![PictureShare {
                index: 0,
                node: Some("ab".into()),
                node_name: "b".into(),
                state: ShareView::Offline,
            }],
        }],
        nodes: vec![PictureNode {
            node: "ab".into(),
            name: "b".into(),
            online: false,
        }],
    })
    .unwrap();
    let code = function("drawPicture");
    for (var, value) in [
        ("picture", &picture),
        ("n", &picture["nodes"][0]),
        ("c", &picture["chunks"][0]),
        ("share", &picture["chunks"][0]["shares"][0]),
    ] {
        let read = fields_read(code, var);
        assert!(!read.is_empty(), "{var}");
        assert!(
            read.is_subset(&keys(value)),
            "{var}: {read:?} vs {:?}",
            keys(value)
        );
    }
    assert_eq!(
        picture["chunks"][0]["shares"][0]["state"], "offline",
        "the circle's class is the state word"
    );
}

fn job_status(state: JobState) -> JobStatus {
    JobStatus {
        id: 1,
        kind: "get".to_string(),
        bytes_total: 1,
        bytes_done: 1,
        files_total: 1,
        files_done: 1,
        elapsed_secs: 0.1,
        state,
    }
}

#[test]
fn following_a_job_reads_only_fields_its_status_has() {
    let done = serde_json::to_value(job_status(JobState::Done {
        result: std::sync::Arc::new(JobResult::Get(GetReport {
            files: 1,
            dirs: 0,
            links: 0,
            bytes: 1,
            out: "x".into(),
            restored_at: 1,
        })),
    }))
    .unwrap();
    let failed = serde_json::to_value(job_status(JobState::Failed {
        error: "e".into(),
        hint: "h".into(),
    }))
    .unwrap();
    assert_eq!(done["state"], "done");
    assert_eq!(
        done["result"]["files"], 1,
        "the result is the report itself"
    );
    assert_eq!(failed["state"], "failed");
    let mut all = keys(&done);
    all.extend(keys(&failed));
    let read = fields_read(function("follow"), "state");
    assert!(read.contains("bytes_done"), "{read:?}");
    assert!(read.is_subset(&all), "{read:?} vs {all:?}");
}

/// `value` read as `T` and written back: every key `T` serializes (a report built from the
/// fields a test knows, so one the engine adds with a default does not break it).
fn through<T: serde::Serialize + serde::de::DeserializeOwned>(value: Value) -> Value {
    let typed: T = serde_json::from_value(value).unwrap();
    serde_json::to_value(typed).unwrap()
}

fn assert_reads_only(code: &str, var: &str, value: &Value, must: &str) {
    let read = fields_read(code, var);
    assert!(read.contains(must), "{var}: {read:?}");
    assert!(
        read.is_subset(&keys(value)),
        "{var}: {read:?} vs {:?}",
        keys(value)
    );
}

#[test]
fn the_backups_page_reads_only_fields_the_backup_reports_have() {
    let last = serde_json::json!({"started": 1, "ended": 2, "outcome": "partial",
        "reason": "x", "files": 3, "bytes_sent": 4, "snapshot": 1});
    let job = through::<shard_node::backup::JobInfo>(serde_json::json!({
        "name": "papers", "path": "/p", "every": "1d", "keep": "last=10", "exclude": ["*.tmp"],
        "shares": null, "created": 1, "last": last, "last_ok": 2, "next_run": 3,
        "snapshots": 1, "running": false, "attention": null,
    }));
    assert_reads_only(function("jobRow"), "j", &job, "next_run");
    assert_reads_only(function("jobRow"), "last", &job["last"], "bytes_sent");
    assert_eq!(job["last"]["outcome"], "partial", "the badge's class");
    assert_reads_only(function("addJob"), "job", &job, "every");
    assert_reads_only(function("askRemove"), "j", &job, "snapshots");

    let run = through::<shard_node::backup::BackupRun>(serde_json::json!({
        "job": "papers", "outcome": "ok", "snapshot": 2, "files": 3, "bytes": 4,
        "unchanged": 1, "bytes_sent": 5, "added": 1, "removed": 0, "changed": 1,
        "unreadable_count": 0, "unreadable": [], "forgotten": [1], "versions_removed": 0,
    }));
    assert_reads_only(function("runSummary"), "r", &run, "snapshot");
    // A run's job ends with this report as its result (what `follow` hands back).
    let status = serde_json::to_value(job_status(JobState::Done {
        result: std::sync::Arc::new(JobResult::Backup(serde_json::from_value(run).unwrap())),
    }))
    .unwrap();
    assert_eq!(status["result"]["snapshot"], 2);

    let snapshot = through::<shard_node::backup::SnapshotInfo>(serde_json::json!({
        "no": 1, "at": 1, "files": 1, "bytes": 1, "added": 1, "removed": 0, "changed": 0,
        "partial": false,
    }));
    assert_reads_only(function("snapshotRow"), "s", &snapshot, "no");
    assert_reads_only(function("openSnapshots"), "s", &snapshot, "no");

    let diff = serde_json::to_value(shard_node::backup::TreeDiff {
        job: "papers".into(),
        from: 1,
        to: 2,
        added: vec!["papers/new.txt".into()],
        removed: Vec::new(),
        changed: Vec::new(),
    })
    .unwrap();
    assert_reads_only(function("renderDiff"), "d", &diff, "changed");

    let folder = serde_json::to_value(shard_node::browse::SnapshotFolder {
        job: "papers".into(),
        snapshot: 1,
        folder: "sub".into(),
        total: 1,
        offset: 0,
        entries: vec![shard_node::browse::SnapshotEntry {
            name: "a".into(),
            path: "sub/a".into(),
            path_hex: "7375622f61".into(),
            kind: EntryKind::Link,
            size: 1,
            mtime: 1,
            mode: 0o777,
            version: 1,
            link_target: Some("b".into()),
        }],
    })
    .unwrap();
    assert_reads_only(function("browse"), "page", &folder, "entries");
    assert_reads_only(function("treeRow"), "e", &folder["entries"][0], "path");
    assert_eq!(
        folder["entries"][0]["kind"], "link",
        "the row tests this word"
    );

    let removal = serde_json::to_value(shard_node::backup::JobRemoval {
        job: "papers".into(),
        snapshots_forgotten: 1,
        snapshots_kept: 0,
        removed: None,
    })
    .unwrap();
    assert_reads_only(function("removeJob"), "removed", &removal, "snapshots_kept");
    let restored = serde_json::to_value(GetReport {
        files: 1,
        dirs: 0,
        links: 0,
        bytes: 1,
        out: "x".into(),
        restored_at: 1,
    })
    .unwrap();
    assert_reads_only(function("restore"), "r", &restored, "out");
}
