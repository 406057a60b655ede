//! What the node's backup operations take and return (see `crate::backups`): plain values,
//! serialized only at the HTTP edge.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::job::{Outcome, RunRecord};
use super::watch::WatchStatus;
use crate::report::Removal;

/// A job to make.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// The folder (absolute).
    pub path: PathBuf,
    /// Its name [default: the folder's name].
    pub name: Option<String>,
    /// `30m`, `6h`, `1d` … [default: 1d].
    pub every: Option<String>,
    /// `last=10,daily=7,…` [default: restic's usual policy for a daily job].
    pub keep: Option<String>,
    /// Exclusions, gitignore syntax.
    pub exclude: Vec<String>,
    /// `k`-of-`n`.
    pub shares: Option<(u8, u8)>,
    /// Asked by a web UI session: the folder must lie under `[web] node_paths`, at each run.
    pub confined: bool,
    /// Run soon after the folder changes (`--watch`); `every` is then the shortest gap
    /// between runs [default: 5m].
    pub watch: bool,
}

/// A job as `shard backup ls` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobInfo {
    /// Its name.
    pub name: String,
    /// The folder.
    pub path: String,
    /// Its period, as written (`6h`).
    pub every: String,
    /// Its keep rules, as written.
    pub keep: String,
    /// Its exclusions.
    pub exclude: Vec<String>,
    /// `K-of-N`, when fixed.
    pub shares: Option<String>,
    /// When it was made.
    pub created: i64,
    /// Its last run.
    pub last: Option<RunRecord>,
    /// When its last complete run ended.
    pub last_ok: Option<i64>,
    /// When it runs next (seconds since the epoch; in the past: as soon as the node looks).
    pub next_run: i64,
    /// Snapshots kept.
    pub snapshots: usize,
    /// A run is under way.
    pub running: bool,
    /// What needs attention: its last run failed or was partial, or nothing succeeded for
    /// twice its period.
    pub attention: Option<String>,
    /// It runs soon after its folder changes (`--watch`): `every` is the shortest gap between
    /// its runs, and it runs at least daily.
    #[serde(default)]
    pub watch: bool,
    /// How its folder is watched now (watched jobs of an unlocked account).
    #[serde(default)]
    pub watcher: Option<WatchStatus>,
    /// The last change its watcher saw that no run has stored yet (seconds since the epoch).
    #[serde(default)]
    pub changed: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupRun {
    /// The job.
    pub job: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The snapshot made.
    pub snapshot: u32,
    /// Regular files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files found unchanged since the run before (not read).
    pub unchanged: u64,
    /// Bytes of shares sent.
    pub bytes_sent: u64,
    /// Paths added, removed and changed since the snapshot before.
    pub added: u64,
    /// See `added`.
    pub removed: u64,
    /// See `added`.
    pub changed: u64,
    /// Paths that could not be read.
    pub unreadable_count: usize,
    /// The first of them, with why.
    pub unreadable: Vec<String>,
    /// Snapshots retention forgot after the run.
    pub forgotten: Vec<u32>,
    /// Stored versions no kept snapshot names any more, removed.
    pub versions_removed: usize,
}

/// What removing a job did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRemoval {
    /// The job.
    pub job: String,
    /// Snapshots forgotten (with `--forget-snapshots`).
    pub snapshots_forgotten: usize,
    /// Snapshots that stay (restorable with `NAME@N`).
    pub snapshots_kept: usize,
    /// The stored tree removed with them.
    pub removed: Option<Removal>,
}

/// Paths added, removed and changed between two snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeDiff {
    /// The job.
    pub job: String,
    /// The older snapshot.
    pub from: u32,
    /// The newer.
    pub to: u32,
    /// Paths only in `to`.
    pub added: Vec<String>,
    /// Paths only in `from`.
    pub removed: Vec<String>,
    /// Paths in both whose contents, kind, mode, times or link target differ.
    pub changed: Vec<String>,
}

/// A job that needs attention, or an account whose jobs cannot run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupAlert {
    /// The account.
    pub user: String,
    /// The job (none: all of a locked account's).
    pub job: Option<String>,
    /// What is wrong.
    pub reason: String,
}
