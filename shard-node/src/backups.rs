//! What a node does with backup jobs (their rules, records and reports are [`crate::backup`]'s):
//! make and remove them, run one (a put of its folder that
//! leaves out what it excludes, then a snapshot of the tree stored, then retention), run those
//! that are due, list snapshots, compare two, and say which jobs need attention.
//!
//! A snapshot is the list of every name under the job's name with the version the run stored
//! or found unchanged; a restore of `NAME@N` restores exactly those versions. Versions that no
//! kept snapshot names any more are removed when retention forgets snapshots, and the room
//! they took returns with compaction.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use shard_store::{FileEntry, FileKind, Redundancy, VaultCatalog};

use crate::backup::job::{
    BackupJob, JobSpec, JobState, NameList, Outcome, Records, RunRecord, SnapshotInfo, SnapshotTree,
};
use crate::backup::watch::{self, Changes, Seen};
use crate::backup::{
    BackupAlert, BackupRun, Every, Exclusions, JobInfo, JobRemoval, KeepRules, NewJob, TreeDiff,
    WatchStatus,
};
use crate::jobs::Job;
use crate::node::{Node, lock};
use crate::request::PutRequest;
use crate::session::Session;
use crate::watchers::Timing;
use crate::{Error, Result};

/// How far ahead of the clock a run may be dated before the clock is said to have gone back.
const CLOCK_SLACK: i64 = 3600;
/// A failed run is tried again after this long, or its period if shorter.
const RETRY_SECS: i64 = 15 * 60;
/// Unreadable paths named in a run's reason, at most.
const NAMED: usize = 20;

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// How a job is watched, as its watcher reports (none: not watched now), and the quiet time.
struct Watching {
    status: Option<WatchStatus>,
    changes: Option<Changes>,
    quiet: i64,
}

impl Watching {
    /// How `account`'s job `spec` is watched now on `node`.
    fn of(node: &Node, account: shard_store::AccountId, spec: &JobSpec) -> Watching {
        let (status, changes) = if spec.watch {
            node.backup_watchers.report(account, &spec.name)
        } else {
            (None, None)
        };
        Watching {
            status,
            changes,
            quiet: node.watch_timing().quiet,
        }
    }

    fn seen(&self) -> Seen {
        Seen::of(self.status.as_ref(), self.changes)
    }
}

/// A job as `backup ls` shows it (a function, not a method of [`JobSpec`]: the record knows
/// nothing of the node's watchers).
fn job_info(
    spec: &JobSpec,
    state: &JobState,
    snapshots: usize,
    running: bool,
    watching: &Watching,
    now: i64,
) -> JobInfo {
    let started = state.last.as_ref().map_or(i64::MIN, |l| l.started);
    JobInfo {
        name: spec.name.clone(),
        path: spec.path.display().to_string(),
        every: spec.every.to_string(),
        keep: spec.keep.to_string(),
        exclude: spec.exclude.clone(),
        shares: spec.shares.map(|(k, n)| format!("{k}-of-{n}")),
        created: state.created,
        last: state.last.clone(),
        last_ok: state.last_ok,
        next_run: next_run(spec, state, watching.seen(), watching.quiet, now),
        snapshots,
        running,
        attention: attention(spec, state, now),
        watch: spec.watch,
        watcher: if spec.watch {
            watching.status.clone()
        } else {
            None
        },
        changed: watch::pending(started, watching.changes).map(|c| c.last),
    }
}

/// When a job runs next: a period after its last start, or sooner after a failure; a watched
/// one by what its watcher saw (`seen`, with the quiet time `quiet`).
fn next_run(spec: &JobSpec, state: &JobState, seen: Seen, quiet: i64, now: i64) -> i64 {
    let every = spec.every;
    match &state.last {
        None => state.created.min(now),
        // A last run dated ahead of the clock: the clock went back (or was ahead then).
        // Waiting for that date could mean years without a backup.
        Some(last) if last.started > now.saturating_add(CLOCK_SLACK) => now,
        Some(last) if last.outcome == Outcome::Failed => {
            let period = i64::try_from(every.secs()).unwrap_or(i64::MAX);
            last.ended.saturating_add(period.min(RETRY_SECS))
        }
        Some(last) if spec.watch => watch::due(every, last.started, seen, quiet),
        Some(last) => every.due(Some(last.started)),
    }
}

/// What about a job needs attention now, in words.
fn attention(spec: &JobSpec, state: &JobState, now: i64) -> Option<String> {
    if let Some(last) = &state.last
        && last.started > now.saturating_add(CLOCK_SLACK)
    {
        return Some(format!(
            "its last run is dated {} s ahead of this machine's clock: the clock went back; check it",
            last.started - now
        ));
    }
    if let Some(last) = &state.last
        && last.outcome != Outcome::Ok
    {
        let why = last.reason.as_deref().unwrap_or("no reason recorded");
        return Some(format!(
            "its last run {}: {why}",
            match last.outcome {
                Outcome::Failed => "failed",
                _ => "was partial",
            }
        ));
    }
    // A watched job that saw no change runs daily (its period is the gap between runs).
    let period = if spec.watch {
        watch::longest_gap(spec.every)
    } else {
        spec.every
    };
    if period.overdue(state.last_ok, state.created, now) {
        return Some(format!(
            "nothing was backed up for more than twice its period ({period})"
        ));
    }
    None
}

/// A job's name: one path component the vault takes.
fn check_job_name(name: &str) -> Result<()> {
    crate::tree::check_name(name.as_bytes())?;
    if name.contains(['/', '@']) {
        return Err(Error::BadJob(format!(
            "{name:?}: a job's name is one word, without `/` or `@` (`NAME@N` names a snapshot)"
        )));
    }
    Ok(())
}

/// One difference [`compare`] finds between two trees.
enum Difference<'a> {
    /// A name only in the newer tree.
    Added(&'a [u8]),
    /// A name only in the older tree.
    Removed(&'a [u8]),
    /// A name in both at different versions (old, new): a candidate for "changed", which
    /// the caller checks.
    Differs(&'a [u8], u32, u32),
}

/// Walks two trees side by side in name order and tells `each` what differs. Nothing is
/// collected here: a run over 10⁶ new paths only counts them.
fn compare(from: &SnapshotTree, to: &SnapshotTree, mut each: impl FnMut(Difference<'_>)) {
    let (mut a, mut b) = (from.iter().peekable(), to.iter().peekable());
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (None, None) => break,
            (Some((n, _)), None) => {
                each(Difference::Removed(n));
                a.next();
            }
            (None, Some((n, _))) => {
                each(Difference::Added(n));
                b.next();
            }
            (Some((na, va)), Some((nb, vb))) => match na.cmp(nb) {
                std::cmp::Ordering::Less => {
                    each(Difference::Removed(na));
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    each(Difference::Added(nb));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if va != vb {
                        each(Difference::Differs(na, va, vb));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The (name, version) pairs retention may remove: those the forgotten snapshots name, less
/// those a kept one names. Sorted, each pair once, the names held in one buffer: one
/// forgotten tree of 10⁶ paths is held as the tree itself (tens of MB), where owned pairs
/// took about 90 MB on top of it; merging a second one holds both and their union while it
/// runs.
#[derive(Debug, Default)]
struct Going {
    names: NameList,
    versions: Vec<u32>,
}

impl Going {
    fn len(&self) -> usize {
        self.names.len()
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn get(&self, i: usize) -> Option<(&[u8], u32)> {
        Some((self.names.get(i)?, *self.versions.get(i)?))
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// With the pairs of a forgotten `tree` too: the first is taken as it is, a later one
    /// merged in one pass over both (two sorted runs).
    fn with(self, tree: SnapshotTree) -> Self {
        if self.is_empty() {
            let (names, versions) = tree.into_parts();
            return Self { names, versions };
        }
        let bytes = self.iter().chain(tree.iter()).map(|(n, _)| n.len()).sum();
        let count = self.len() + tree.len();
        let mut out = Self {
            names: NameList::with_capacity(count, bytes),
            versions: Vec::with_capacity(count),
        };
        let (mut a, mut b) = (self.iter().peekable(), tree.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => a.next(),
                (Some(x), Some(y)) if x > y => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            let Some((name, version)) = next else { break };
            out.names.push(name);
            out.versions.push(version);
        }
        out
    }

    /// Keeps the pairs `kept` does not name: one pass over both, side by side, in place.
    fn drop_named(&mut self, kept: &SnapshotTree) {
        let mut at = 0;
        // The versions move down beside their names: the one read (at `i`) always lies at or
        // past the last one written.
        let mut versions = std::mem::take(&mut self.versions);
        let mut stayed = 0;
        self.names.retain(|i, name| {
            while kept.get(at).is_some_and(|(n, _)| n < name) {
                at += 1;
            }
            let version = versions.get(i).copied().unwrap_or_default();
            let stay = kept.get(at) != Some((name, version));
            if stay {
                if let Some(slot) = versions.get_mut(stayed) {
                    *slot = version;
                }
                stayed += 1;
            }
            stay
        });
        versions.truncate(stayed);
        versions.shrink_to_fit();
        self.versions = versions;
    }
}

/// Of names stored at two versions, those whose contents or metadata differ (a new version
/// can hold the same bytes and metadata: a file touched back, or read again when its change
/// time moved).
fn really_changed(
    vault: &VaultCatalog<'_>,
    differ: Vec<(Vec<u8>, u32, u32)>,
) -> Result<Vec<Vec<u8>>> {
    let olds: Vec<(&[u8], u32)> = differ.iter().map(|(n, a, _)| (n.as_slice(), *a)).collect();
    let news: Vec<(&[u8], u32)> = differ.iter().map(|(n, _, b)| (n.as_slice(), *b)).collect();
    let (olds, news) = (vault.entries_at(&olds)?, vault.entries_at(&news)?);
    let mut changed = Vec::new();
    for ((name, ..), (old, new)) in differ.iter().zip(olds.into_iter().zip(news)) {
        let same = match (old, new) {
            (Some(o), Some(n)) => same_entry(vault, &o, &n)?,
            _ => false,
        };
        if !same {
            changed.push(name.clone());
        }
    }
    Ok(changed)
}

fn same_entry(vault: &VaultCatalog<'_>, a: &FileEntry, b: &FileEntry) -> Result<bool> {
    let (ma, mb) = (&a.meta, &b.meta);
    if ma.kind != mb.kind
        || ma.size != mb.size
        || ma.mode != mb.mode
        || ma.link_target != mb.link_target
        || (ma.kind != FileKind::Dir && (ma.mtime, ma.mtime_nanos) != (mb.mtime, mb.mtime_nanos))
    {
        return Ok(false);
    }
    if ma.kind != FileKind::File {
        return Ok(true);
    }
    let (ca, cb) = (vault.manifest(a.id)?, vault.manifest(b.id)?);
    let ids = |m: &shard_proto::Manifest| m.chunks.iter().map(|c| c.id).collect::<Vec<_>>();
    Ok(ids(&ca) == ids(&cb))
}

/// Which snapshot `NAME@SEL` means: a number, or a day (`2026-11-30`: the newest of that day
/// in the machine's time zone).
fn pick(
    job: &str,
    snapshots: &[SnapshotInfo],
    state: Option<&JobState>,
    asked: &str,
) -> Result<u32> {
    let kept = || {
        if snapshots.is_empty() {
            "none".to_string()
        } else {
            snapshots
                .iter()
                .map(|s| s.no.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let missing = |why: &str| Error::NoSuchSnapshot {
        job: job.to_string(),
        asked: asked.to_string(),
        why: why.to_string(),
        kept: kept(),
    };
    if let Ok(no) = asked.parse::<u32>() {
        if snapshots.iter().any(|s| s.no == no) {
            return Ok(no);
        }
        let made = state.map_or_else(
            || snapshots.iter().map(|s| s.no).max().unwrap_or(0),
            |s| s.next_no.saturating_sub(1),
        );
        return Err(missing(if no >= 1 && no <= made {
            "it was forgotten by the job's keep rules"
        } else {
            "no run made it"
        }));
    }
    let day: jiff::civil::Date = asked.parse().map_err(|_| {
        Error::Usage(format!(
            "{job}@{asked}: after @ comes a snapshot's number or a day like 2026-11-30"
        ))
    })?;
    let zone = jiff::tz::TimeZone::system();
    snapshots
        .iter()
        .filter(|s| {
            jiff::Timestamp::from_second(s.at).is_ok_and(|t| t.to_zoned(zone.clone()).date() == day)
        })
        .map(|s| s.no)
        .max()
        .ok_or_else(|| missing("no snapshot kept was made that day"))
}

impl Node {
    fn now(&self) -> i64 {
        self.options().clock.now()
    }

    /// What watchers of jobs time themselves by.
    fn watch_timing(&self) -> Timing {
        Timing {
            clock: self.options().clock.clone(),
            quiet: i64::try_from(self.options().watch_quiet.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Makes a backup job for `user`. Refused with the reason: a folder that is not one, a
    /// bad period, keep rules or exclusion, exclusions that leave out everything, a name
    /// taken (by a job, or by files stored), a folder another job backs up already.
    pub async fn backup_add(self: &Arc<Self>, user: Option<&str>, new: NewJob) -> Result<JobInfo> {
        let session = self.session(user)?;
        let _writer = session.writer.lock().await;
        let path = new.path.clone();
        match fs::metadata(&path) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(Error::BadJob(format!(
                    "{} is not a folder; a backup job keeps a folder (store a single file with `shard put`)",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::PathMissing(path.display().to_string()));
            }
            Err(e) => return Err(crate::tree::access(&path, &e)),
        }
        let path = fs::canonicalize(&path).map_err(|e| crate::tree::access(&path, &e))?;
        let name = match new.name {
            Some(n) => n,
            None => path
                .file_name()
                .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
                .ok_or_else(|| {
                    Error::BadJob(format!(
                        "{} has no name; give one with --as",
                        path.display()
                    ))
                })?,
        };
        check_job_name(&name)?;
        let every = match new.every.as_deref() {
            Some(text) => text
                .parse::<Every>()
                .map_err(|e| Error::BadJob(e.to_string()))?,
            // A watched job's period is the gap between runs: a day would make watching moot.
            None if new.watch => Every::WATCHED,
            None => Every::default(),
        };
        let keep = match new.keep.as_deref() {
            Some(text) => text
                .parse::<KeepRules>()
                .map_err(|e| Error::BadJob(e.to_string()))?,
            None => KeepRules::standard(),
        };
        let exclusions = if new.confined {
            Exclusions::patterns_only(&path, &new.exclude)
        } else {
            Exclusions::new(&path, &new.exclude)
        }
        .map_err(|e| Error::BadJob(e.to_string()))?;
        if exclusions.exclude_everything() {
            return Err(Error::BadJob(format!(
                "these exclusions (with {}'s {}) leave out everything in it: the job would store nothing",
                path.display(),
                crate::backup::exclude::IGNORE_FILE
            )));
        }
        if let Some((k, n)) = new.shares {
            Redundancy::new(k, n).map_err(Error::Store)?;
        }
        let vault = self.catalog().vault(session.account, &session.keys);
        let records = Records(&vault);
        let jobs = records.jobs()?;
        if jobs.iter().any(|j| j.spec.name == name) {
            return Err(Error::BadJob(format!(
                "a backup job is named {name:?} already; choose another name with --as"
            )));
        }
        if let Some(other) = jobs.iter().find(|j| j.spec.path == path) {
            return Err(Error::BadJob(format!(
                "{} is backed up by job {:?} already; change that job or remove it first",
                path.display(),
                other.spec.name
            )));
        }
        let earlier = records.snapshots(&name)?;
        // The job's tree is its own: files stored with `put` at its name or under it would be
        // neither in its snapshots nor safe from its retention.
        if earlier.is_empty() {
            let mut under = name.as_bytes().to_vec();
            under.push(b'/');
            let taken = !vault.versions(name.as_bytes())?.is_empty()
                || vault
                    .list()?
                    .iter()
                    .chain(vault.pending()?.iter())
                    .any(|e| e.meta.name.starts_with(&under));
            if taken {
                return Err(Error::BadJob(format!(
                    "{name:?} already names files stored with `shard put`; choose another name for the job with --as"
                )));
            }
            // Nor what the trash holds there: it could not be restored into a job's tree.
            let trashed = vault.trashed()?.iter().any(|t| {
                t.entry.meta.name == name.as_bytes() || t.entry.meta.name.starts_with(&under)
            });
            if trashed {
                return Err(Error::BadJob(format!(
                    "{name:?} names files in the trash (`shard trash`); restore them, delete them for good (`shard trash empty {name}`), or choose another name for the job with --as"
                )));
            }
        }
        let job = BackupJob {
            spec: JobSpec {
                name,
                path,
                every,
                keep,
                exclude: new.exclude,
                shares: new.shares,
                confined: new.confined,
                watch: new.watch,
            },
            state: JobState {
                created: self.now(),
                last: None,
                last_ok: None,
                // A job made again over the snapshots of a removed one goes on numbering.
                next_no: earlier.iter().map(|s| s.no).max().unwrap_or(0) + 1,
            },
        };
        records.save_job(&job)?;
        drop(vault);
        self.catalog_changed(&session);
        if job.spec.watch {
            self.backup_watchers
                .watch(session.account, &job.spec, &self.watch_timing());
        }
        let watching = Watching::of(self, session.account, &job.spec);
        Ok(job_info(
            &job.spec,
            &job.state,
            earlier.len(),
            false,
            &watching,
            self.now(),
        ))
    }

    /// `user`'s jobs.
    pub fn backup_jobs(&self, user: Option<&str>) -> Result<Vec<JobInfo>> {
        let session = self.session(user)?;
        let vault = self.catalog().vault(session.account, &session.keys);
        let records = Records(&vault);
        let running = lock(&self.backups_running).clone();
        let now = self.now();
        records
            .jobs()?
            .into_iter()
            .map(|j| {
                let snapshots = records.snapshots(&j.spec.name)?.len();
                let run = running.contains(&(session.account, j.spec.name.clone()));
                let watching = Watching::of(self, session.account, &j.spec);
                Ok(job_info(&j.spec, &j.state, snapshots, run, &watching, now))
            })
            .collect()
    }

    /// Stops a job. Its snapshots stay (restorable as `NAME@N`) unless `forget`: then they are
    /// forgotten and the stored tree removed with them.
    pub async fn backup_remove(
        self: &Arc<Self>,
        user: Option<&str>,
        name: &str,
        forget: bool,
    ) -> Result<JobRemoval> {
        let session = self.session(user)?;
        if lock(&self.backups_running).contains(&(session.account, name.to_string())) {
            return Err(Error::JobRunning(name.to_string()));
        }
        // One hold of the writer lock: nothing can be stored under the name between the
        // records' removal and the tree's. (If removing the tree fails, what is left of it is
        // plain stored files, which `shard rm NAME` removes.)
        let writer = session.writer.lock().await;
        let (had_job, snapshots) = {
            let vault = self.catalog().vault(session.account, &session.keys);
            let records = Records(&vault);
            (records.job(name)?.is_some(), records.snapshots(name)?.len())
        };
        if !had_job && snapshots == 0 {
            return Err(Error::NoSuchJob(name.to_string()));
        }
        // The records go first: a removal cut short (the request dropped while peers are
        // told) must never leave snapshots naming versions that are gone. The deletions are
        // queued in the catalog with the files, so peers are told later if not now.
        {
            let vault = self.catalog().vault(session.account, &session.keys);
            let records = Records(&vault);
            records.remove_job(name)?;
            if forget {
                records.forget(name, None)?;
            }
        }
        self.backup_watchers.unwatch(session.account, name);
        let removed = if forget {
            match crate::files::rm_held(self, &session, name.as_bytes(), false).await {
                Ok(r) => Some(r),
                Err(Error::Store(shard_store::Error::NoSuchFile(_))) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        drop(writer);
        self.catalog_changed(&session);
        Ok(JobRemoval {
            job: name.to_string(),
            snapshots_forgotten: if forget { snapshots } else { 0 },
            snapshots_kept: if forget { 0 } else { snapshots },
            removed,
        })
    }

    /// The snapshots of job `name` (or of a removed job's), oldest first.
    pub fn snapshots(&self, user: Option<&str>, name: &str) -> Result<Vec<SnapshotInfo>> {
        let session = self.session(user)?;
        let vault = self.catalog().vault(session.account, &session.keys);
        let records = Records(&vault);
        let snapshots = records.snapshots(name)?;
        if snapshots.is_empty() && records.job(name)?.is_none() {
            return Err(Error::NoSuchJob(name.to_string()));
        }
        Ok(snapshots)
    }

    /// The snapshot `asked` (a number or a day) of job `name`.
    pub(crate) fn snapshot_tree(
        &self,
        session: &Session,
        name: &str,
        asked: &str,
    ) -> Result<(u32, SnapshotTree)> {
        let vault = self.catalog().vault(session.account, &session.keys);
        let records = Records(&vault);
        let snapshots = records.snapshots(name)?;
        let job = records.job(name)?;
        if snapshots.is_empty() && job.is_none() {
            return Err(Error::NoSuchJob(name.to_string()));
        }
        let no = pick(name, &snapshots, job.as_ref().map(|j| &j.state), asked)?;
        let tree = records
            .tree(name, no)?
            .ok_or_else(|| Error::NoSuchSnapshot {
                job: name.to_string(),
                asked: asked.to_string(),
                why: "it was forgotten just now".into(),
                kept: String::new(),
            })?;
        Ok((no, tree))
    }

    /// What changed from snapshot `from` to snapshot `to` of job `name`.
    pub fn backup_diff(
        &self,
        user: Option<&str>,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<TreeDiff> {
        let session = self.session(user)?;
        let (a, ta) = self.snapshot_tree(&session, name, from)?;
        let (b, tb) = self.snapshot_tree(&session, name, to)?;
        let vault = self.catalog().vault(session.account, &session.keys);
        let (mut added, mut removed, mut differ) = (Vec::new(), Vec::new(), Vec::new());
        compare(&ta, &tb, |d| match d {
            Difference::Added(n) => added.push(lossy(n)),
            Difference::Removed(n) => removed.push(lossy(n)),
            Difference::Differs(n, old, new) => differ.push((n.to_vec(), old, new)),
        });
        let changed = really_changed(&vault, differ)?;
        Ok(TreeDiff {
            job: name.to_string(),
            from: a,
            to: b,
            added,
            removed,
            changed: changed.iter().map(|n| lossy(n)).collect(),
        })
    }

    /// Runs job `name` of `session`'s account now; `job` carries its progress. One run per
    /// job at a time: while one is under way, this waits for it to end and runs again (what
    /// changed meanwhile is in the new one). Runs of one account follow each other (they hold
    /// its writer lock). A run that makes no snapshot is recorded as failed, the
    /// `[backup] on_failure` command is run, and the error says why.
    pub async fn backup_run(
        self: &Arc<Self>,
        session: &Arc<Session>,
        name: &str,
        job: Arc<Job>,
    ) -> Result<BackupRun> {
        let key = (session.account, name.to_string());
        let mut stop = self.shutdown_signal();
        while !lock(&self.backups_running).insert(key.clone()) {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                _ = stop.wait_for(|s| *s) => return Err(Error::Stopping),
            }
        }
        self.backup_run_alone(session, name, key, job).await
    }

    /// Runs a job due by the schedule, unless a run of it is under way (then that one is
    /// enough).
    async fn backup_run_due(
        self: &Arc<Self>,
        session: &Arc<Session>,
        name: &str,
        job: Arc<Job>,
    ) -> Result<BackupRun> {
        let key = (session.account, name.to_string());
        if !lock(&self.backups_running).insert(key.clone()) {
            return Err(Error::JobRunning(name.to_string()));
        }
        self.backup_run_alone(session, name, key, job).await
    }

    /// A run, once this caller holds the job's place in `backups_running` (`key`).
    async fn backup_run_alone(
        self: &Arc<Self>,
        session: &Arc<Session>,
        name: &str,
        key: (shard_store::AccountId, String),
        job: Arc<Job>,
    ) -> Result<BackupRun> {
        struct Running<'a>(&'a Node, (shard_store::AccountId, String));
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                lock(&self.0.backups_running).remove(&self.1);
            }
        }
        let _running = Running(self, key);
        let writer = session.writer.lock().await;
        // Locked while this run waited: its keys must not be used any more.
        if !self.is_current(session) {
            return Err(Error::NotLoggedIn(format!(
                "account {:?} was locked before backup {name:?} could run",
                session.user
            )));
        }
        let started = self.now();
        let Some(mut kept) = ({
            let vault = self.catalog().vault(session.account, &session.keys);
            Records(&vault).job(name)?
        }) else {
            return Err(Error::NoSuchJob(name.to_string()));
        };
        let result = self.attempt_backup(session, &kept, started, job).await;
        let ended = self.now();
        let record = match &result {
            Ok(run) => RunRecord {
                started,
                ended,
                outcome: run.outcome,
                reason: (run.unreadable_count > 0).then(|| {
                    let mut text = format!("{} paths could not be read: ", run.unreadable_count);
                    text.push_str(
                        &run.unreadable
                            .iter()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; "),
                    );
                    text
                }),
                files: run.files,
                bytes_sent: run.bytes_sent,
                snapshot: Some(run.snapshot),
            },
            Err(e) => RunRecord {
                started,
                ended,
                outcome: Outcome::Failed,
                reason: Some(e.to_string()),
                files: 0,
                bytes_sent: 0,
                snapshot: None,
            },
        };
        if record.outcome == Outcome::Ok {
            kept.state.last_ok = Some(ended);
        }
        if let Some(no) = record.snapshot {
            kept.state.next_no = no + 1;
        }
        kept.state.last = Some(record.clone());
        {
            let vault = self.catalog().vault(session.account, &session.keys);
            Records(&vault).save_job(&kept)?;
        }
        drop(writer);
        self.catalog_changed(session);
        if record.outcome != Outcome::Ok {
            let reason = record.reason.clone().unwrap_or_default();
            tracing::warn!(
                "backup {name:?} of {}: {}: {reason}",
                session.user,
                record.outcome.as_str()
            );
            self.on_backup_failure(&session.user, name, &reason);
        } else {
            tracing::info!(
                "backup {name:?} of {}: snapshot {} made",
                session.user,
                record.snapshot.unwrap_or(0)
            );
        }
        result.map_err(|e| Error::BackupFailed {
            job: name.to_string(),
            reason: e.to_string(),
        })
    }

    /// One run's work (the caller holds the writer lock and records how it went).
    async fn attempt_backup(
        self: &Arc<Self>,
        session: &Arc<Session>,
        kept: &BackupJob,
        started: i64,
        job: Arc<Job>,
    ) -> Result<BackupRun> {
        let spec = &kept.spec;
        match fs::metadata(&spec.path) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(Error::PathAccess {
                    path: spec.path.display().to_string(),
                    reason: "it is no longer a folder".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::PathAccess {
                    path: spec.path.display().to_string(),
                    reason: "it is missing (a disk not mounted, a folder moved?)".into(),
                });
            }
            Err(e) => return Err(crate::tree::access(&spec.path, &e)),
        }
        if spec.confined {
            self.still_open_to_web(&spec.path)?;
        }
        let exclusions = if spec.confined {
            Exclusions::patterns_only(&spec.path, &spec.exclude)
        } else {
            Exclusions::new(&spec.path, &spec.exclude)
        }
        .map_err(|e| Error::BadJob(e.to_string()))?;
        if exclusions.exclude_everything() {
            return Err(Error::BadJob(format!(
                "the exclusions (with {}'s {}) now leave out everything in it; nothing was stored",
                spec.path.display(),
                crate::backup::exclude::IGNORE_FILE
            )));
        }
        let put = crate::put::run_tree(
            self.clone(),
            session.clone(),
            PutRequest {
                paths: vec![spec.path.clone()],
                name: Some(spec.name.as_bytes().to_vec()),
                redundancy: spec.shares,
                move_original: false,
            },
            exclusions,
            job,
        )
        .await?;
        // What failed is named in the run's report; its name is not looked up among what this
        // run stored (the snapshot before lends it its version, below).
        let mut unreadable = Vec::new();
        let mut failed: HashSet<Vec<u8>> = HashSet::new();
        for f in &put.failed {
            unreadable.push(f.to_string());
            if let Ok(rel) = f.path.strip_prefix(&spec.path) {
                let mut name = spec.name.as_bytes().to_vec();
                if !rel.as_os_str().is_empty() {
                    name.push(b'/');
                    name.extend_from_slice(rel.as_os_str().as_bytes());
                }
                failed.insert(name);
            }
        }
        if failed.contains(spec.name.as_bytes()) {
            return Err(Error::PathAccess {
                path: spec.path.display().to_string(),
                reason: unreadable.first().cloned().unwrap_or_default(),
            });
        }
        let vault = self.catalog().vault(session.account, &session.keys);
        let records = Records(&vault);
        let before = records.snapshots(&spec.name)?;
        let read_previous = || -> Result<SnapshotTree> {
            Ok(match before.iter().map(|s| s.no).max() {
                Some(no) => records.tree(&spec.name, no)?.unwrap_or_default(),
                None => SnapshotTree::default(),
            })
        };
        // The snapshot before is read now only when it lends versions (below); otherwise
        // after the new tree is built and the walk's names are dropped: at 10⁶ paths each
        // of the three is tens of MB, and a run's peak is where they would meet.
        let lender = if failed.is_empty() {
            None
        } else {
            Some(read_previous()?)
        };
        // The files and bytes the snapshot holds are counted from the entries looked up here:
        // no second pass over the catalog.
        let (mut files, mut bytes) = (0u64, 0u64);
        let mut count = |e: &FileEntry| {
            if e.meta.kind == FileKind::File {
                files += 1;
                bytes += e.meta.size;
            }
        };
        // The names the put met stay where they are (one buffer): the tree is built from
        // them and the versions found, by their place. At 10⁶ paths a copy of the names as
        // owned strings would be about 80 MB.
        let met = put.names;
        let mut found: Vec<(usize, u32)> = Vec::with_capacity(met.len());
        let wanted: Vec<usize> = (0..met.len())
            .filter(|i| met.get(*i).is_some_and(|n| !failed.contains(n)))
            .collect();
        for page in wanted.chunks(4096) {
            let names: Vec<&[u8]> = page.iter().filter_map(|i| met.get(*i)).collect();
            for (i, stamped) in page.iter().zip(vault.newest_stamped(&names)?) {
                if let Some((entry, _)) = stamped {
                    count(&entry);
                    found.push((*i, entry.version));
                }
            }
        }
        drop(wanted);
        // A file that could not be read this time keeps the version the snapshot before
        // held (a file being written during every run must not drop out of every snapshot).
        // A folder that could not be listed keeps what lay under it too.
        // (Borrowed from the snapshot before, and read a page at a time: a folder of 10⁶
        // files that could not be listed is not copied.)
        let lent: Vec<(&[u8], u32)> = match &lender {
            Some(previous) => failed
                .iter()
                .flat_map(|name| previous.under(name))
                .collect(),
            None => Vec::new(),
        };
        for page in lent.chunks(4096) {
            for entry in vault.entries_at(page)?.into_iter().flatten() {
                count(&entry);
            }
        }
        let tree = SnapshotTree::build(&met, found, &lent);
        drop((met, lent));
        let previous = match lender {
            Some(previous) => previous,
            None => read_previous()?,
        };
        // A folder found empty where the snapshot before held files is most often a disk not
        // mounted or a home not restored yet: such a snapshot would become what `get NAME`
        // restores, and its retention would forget the real ones.
        if tree.len() <= 1 && previous.len() > 1 {
            return Err(Error::PathAccess {
                path: spec.path.display().to_string(),
                reason: format!(
                    "it is empty (or everything in it is excluded) where snapshot {} held {} paths: a disk not mounted? Nothing was recorded; if it is really empty now, remove the job",
                    before.iter().map(|s| s.no).max().unwrap_or(0),
                    previous.len() - 1
                ),
            });
        }
        let (mut added, mut removed, mut differ) = (0u64, 0u64, Vec::new());
        compare(&previous, &tree, |d| match d {
            Difference::Added(_) => added += 1,
            Difference::Removed(_) => removed += 1,
            Difference::Differs(n, old, new) => differ.push((n.to_vec(), old, new)),
        });
        drop(previous);
        let changed = really_changed(&vault, differ)?.len();
        let no = kept
            .state
            .next_no
            .max(before.iter().map(|s| s.no + 1).max().unwrap_or(1));
        let outcome = if unreadable.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Partial
        };
        let info = SnapshotInfo {
            no,
            at: started,
            files,
            bytes,
            added,
            removed,
            changed: changed as u64,
            partial: outcome == Outcome::Partial,
        };
        records.save_snapshot(&spec.name, &info, &tree)?;
        // Not held through retention, which reads trees of its own.
        drop(tree);
        crate::crash_point!("backup:snapshot-saved");
        let unreadable_count = unreadable.len();
        unreadable.truncate(NAMED);
        let mut run = BackupRun {
            job: spec.name.clone(),
            outcome,
            snapshot: no,
            files,
            bytes,
            unchanged: put.report.unchanged,
            bytes_sent: put.report.share_bytes_sent,
            added: info.added,
            removed: info.removed,
            changed: info.changed,
            unreadable_count,
            unreadable,
            forgotten: Vec::new(),
            versions_removed: 0,
        };
        drop(vault);
        // Also after a partial run: kept snapshots keep every version they name. A failure of
        // retention is said, but the snapshot stands: the run did its work.
        match self.retain(session, spec).await {
            Ok((forgotten, removed)) => {
                run.forgotten = forgotten;
                run.versions_removed = removed;
            }
            Err(e) => tracing::warn!(
                "retention of backup {:?} not done: {e}; it is tried after the next run",
                spec.name
            ),
        }
        Ok(run)
    }

    /// Refuses a web session's job whose folder no longer lies under `[web] node_paths` as
    /// it is resolved now (the list changed, or a folder on the way became a link).
    fn still_open_to_web(&self, path: &std::path::Path) -> Result<()> {
        let resolved = fs::canonicalize(path).map_err(|e| crate::tree::access(path, &e))?;
        let open = self
            .web_config()
            .node_paths
            .iter()
            .filter_map(|r| fs::canonicalize(r).ok())
            .any(|root| resolved.starts_with(root));
        if resolved != path || !open {
            return Err(Error::PathAccess {
                path: path.display().to_string(),
                reason: "a web session made this job, and the folder is no longer under a folder open to web sessions ([web] node_paths)".into(),
            });
        }
        Ok(())
    }

    /// Applies `spec`'s keep rules to its snapshots; removes the stored versions under its
    /// name that no kept snapshot names. Returns the snapshots forgotten and the versions
    /// removed. (The caller holds the writer lock.)
    async fn retain(
        self: &Arc<Self>,
        session: &Arc<Session>,
        spec: &JobSpec,
    ) -> Result<(Vec<u32>, usize)> {
        let freed = {
            let vault = self.catalog().vault(session.account, &session.keys);
            let records = Records(&vault);
            let snapshots = records.snapshots(&spec.name)?;
            // Dated in the order they were made: the rules must never forget the newest
            // because an earlier one was dated ahead of it (a clock gone back).
            // Clamped from the newest down: a snapshot is no newer than the one made after
            // it, so one dated far ahead once does not date every later one with it.
            let mut times: Vec<jiff::Timestamp> = Vec::with_capacity(snapshots.len());
            let mut next = i64::MAX;
            for s in snapshots.iter().rev() {
                next = next.min(s.at);
                times.push(
                    jiff::Timestamp::from_second(next).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                );
            }
            times.reverse();
            let keep = spec.keep.apply(&times, &jiff::tz::TimeZone::system());
            let forgotten: Vec<u32> = snapshots
                .iter()
                .zip(&keep)
                .filter(|(_, k)| !**k)
                .map(|(s, _)| s.no)
                .collect();
            if forgotten.is_empty() {
                return Ok((forgotten, 0));
            }
            // What goes: the versions the forgotten snapshots name that no kept one does —
            // never a version no snapshot named (a run that was cut short left it; the next
            // run names it, or a later forgetting does not touch it). One tree is read at a
            // time and checked side by side against what may go, never all kept trees at once.
            let mut going = Going::default();
            for no in &forgotten {
                if let Some(tree) = records.tree(&spec.name, *no)? {
                    going = going.with(tree);
                }
            }
            for s in snapshots.iter().zip(&keep).filter(|(_, k)| **k) {
                if going.is_empty() {
                    break;
                }
                if let Some(tree) = records.tree(&spec.name, s.0.no)? {
                    going.drop_named(&tree);
                }
            }
            let mut doomed = Vec::with_capacity(going.len());
            let mut pairs = going.iter().peekable();
            while pairs.peek().is_some() {
                let wanted: Vec<(&[u8], u32)> = pairs.by_ref().take(4096).collect();
                doomed.extend(
                    vault
                        .entries_at(&wanted)?
                        .into_iter()
                        .flatten()
                        .map(|e| e.id),
                );
            }
            records.forget(&spec.name, Some(&forgotten))?;
            let freed = vault.delete_files(&session.vault(), &doomed)?;
            (forgotten, doomed.len(), freed)
        };
        let (forgotten, removed, freed) = freed;
        session
            .compaction_due
            .store(true, std::sync::atomic::Ordering::Relaxed);
        crate::deletion::delete_on_peers(self, session, &freed, false).await?;
        Ok((forgotten, removed))
    }

    /// Runs `[backup] on_failure` with the job's name, account and reason in its environment;
    /// its failure is logged, never the run's.
    fn on_backup_failure(&self, user: &str, job: &str, reason: &str) {
        let Some(command) = self
            .backup_config()
            .on_failure
            .filter(|c| !c.trim().is_empty())
        else {
            return;
        };
        let spawned = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("SHARD_JOB", job)
            .env("SHARD_USER", user)
            .env("SHARD_REASON", reason)
            .stdin(std::process::Stdio::null())
            .spawn();
        match spawned {
            // Reaped on a thread of its own: a slow mailer holds nothing of the node's.
            Ok(mut child) => {
                std::thread::spawn(move || {
                    if let Ok(status) = child.wait()
                        && !status.success()
                    {
                        tracing::warn!("[backup] on_failure exited with {status}");
                    }
                });
            }
            Err(e) => tracing::warn!("[backup] on_failure could not start: {e}"),
        }
    }

    /// Runs every job of the unlocked accounts that is due by the node's clock, each once,
    /// an account's one after the other (most overdue first), accounts side by side; returns
    /// how each went. The node's loop calls it every [`crate::node::RunOptions::backup_tick`];
    /// a test with a driven clock calls it itself.
    pub async fn run_due_backups(self: &Arc<Self>) -> Vec<(String, String, Result<BackupRun>)> {
        let mut per_account = tokio::task::JoinSet::new();
        for (session, due) in self.due_backups() {
            let node = self.clone();
            per_account.spawn(async move { node.run_account_backups(session, due).await });
        }
        let mut all = Vec::new();
        while let Some(done) = per_account.join_next().await {
            if let Ok(runs) = done {
                all.extend(runs);
            }
        }
        all
    }

    /// Starts the due jobs of each unlocked account whose earlier runs have ended, without
    /// waiting for them: an account's long first backup holds up no other account's.
    fn start_due_backups(self: &Arc<Self>) {
        for (session, due) in self.due_backups() {
            if !lock(&self.backup_accounts_busy).insert(session.account) {
                continue;
            }
            /// Frees the account's place however its runs end (a panic included).
            struct Busy(Arc<Node>, shard_store::AccountId);
            impl Drop for Busy {
                fn drop(&mut self) {
                    lock(&self.0.backup_accounts_busy).remove(&self.1);
                }
            }
            let node = self.clone();
            self.spawn_task(async move {
                let _busy = Busy(node.clone(), session.account);
                node.run_account_backups(session, due).await;
            });
        }
    }

    /// The unlocked accounts with jobs due now by the node's clock, each with its due jobs'
    /// names, most overdue first (jobs running already left out). Watches the watched jobs of
    /// the unlocked accounts, and no others (jobs removed, accounts locked since).
    fn due_backups(&self) -> Vec<(Arc<Session>, Vec<String>)> {
        let now = self.now();
        let timing = self.watch_timing();
        let mut read: Vec<(Arc<Session>, Vec<BackupJob>)> = Vec::new();
        let mut unread = HashSet::new();
        for user in self.users() {
            let Ok(session) = self.session(Some(&user)) else {
                continue;
            };
            let vault = self.catalog().vault(session.account, &session.keys);
            let jobs = Records(&vault).jobs();
            drop(vault);
            match jobs {
                Ok(jobs) => read.push((session, jobs)),
                Err(e) => {
                    tracing::warn!("backup jobs of {user} not read: {e}");
                    unread.insert(session.account);
                }
            }
        }
        let watched: Vec<(shard_store::AccountId, &JobSpec)> = read
            .iter()
            .flat_map(|(s, jobs)| jobs.iter().map(|j| (s.account, &j.spec)))
            .filter(|(_, spec)| spec.watch)
            .collect();
        self.backup_watchers.keep_only(&watched, &unread, &timing);
        let mut out = Vec::new();
        let running = lock(&self.backups_running).clone();
        for (session, jobs) in read {
            let mut due: Vec<(i64, String)> = jobs
                .into_iter()
                .map(|j| {
                    let seen = Watching::of(self, session.account, &j.spec).seen();
                    let at = next_run(&j.spec, &j.state, seen, timing.quiet, now);
                    (at, j.spec.name)
                })
                .filter(|(at, name)| {
                    *at <= now && !running.contains(&(session.account, name.clone()))
                })
                .collect();
            due.sort();
            if !due.is_empty() {
                out.push((session, due.into_iter().map(|(_, n)| n).collect()));
            }
        }
        out
    }

    /// Runs `due` of `session`'s account one after the other (they would wait on its writer
    /// lock anyway), while the account stays unlocked.
    async fn run_account_backups(
        self: &Arc<Self>,
        session: Arc<Session>,
        due: Vec<String>,
    ) -> Vec<(String, String, Result<BackupRun>)> {
        let mut out = Vec::new();
        for name in due {
            if !self.is_current(&session) {
                break;
            }
            let job = self.jobs().create_for("backup", Some(&session.user));
            let result = self.backup_run_due(&session, &name, job.clone()).await;
            match &result {
                Ok(run) => job.finish(run.clone()),
                Err(e) => job.fail(e.to_string(), e.hint().to_string()),
            }
            out.push((session.user.clone(), name, result));
        }
        out
    }

    /// What about backups needs attention: jobs whose last run failed or was partial, or that
    /// have not succeeded for twice their period, and accounts with jobs that are locked (their
    /// jobs cannot run).
    pub fn backup_alerts(&self) -> Vec<BackupAlert> {
        let mut alerts = Vec::new();
        let now = self.now();
        let Ok(accounts) = self.catalog().accounts() else {
            return alerts;
        };
        for account in accounts {
            let jobs = self.catalog().backup_job_count(account.id).unwrap_or(0);
            if jobs == 0 {
                continue;
            }
            let Ok(session) = self.session(Some(&account.name)) else {
                alerts.push(BackupAlert {
                    user: account.name.clone(),
                    job: None,
                    reason: format!(
                        "account {} is locked: its {jobs} backup job(s) wait until it is unlocked (`shard login {}`, or `shard service install` to unlock it when the machine starts)",
                        account.name, account.name
                    ),
                });
                continue;
            };
            let vault = self.catalog().vault(session.account, &session.keys);
            let list = match Records(&vault).jobs() {
                Ok(list) => list,
                Err(e) => {
                    alerts.push(BackupAlert {
                        user: account.name.clone(),
                        job: None,
                        reason: format!("the backup jobs of {} cannot be read: {e}", account.name),
                    });
                    continue;
                }
            };
            for j in list {
                if let Some(reason) = attention(&j.spec, &j.state, now) {
                    alerts.push(BackupAlert {
                        user: account.name.clone(),
                        job: Some(j.spec.name),
                        reason,
                    });
                }
            }
        }
        alerts
    }
}

/// Runs due backup jobs every `backup_tick` until the node stops.
pub(crate) async fn backup_loop(node: Arc<Node>) {
    let mut stop = node.shutdown_signal();
    loop {
        let tick = node.options().backup_tick;
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        node.start_due_backups();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(names: &[(&str, u32)]) -> SnapshotTree {
        SnapshotTree::from_entries(
            names
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), *v))
                .collect(),
        )
    }

    #[test]
    fn trees_compare_by_name_and_version() {
        let a = tree(&[("p", 1), ("p/a", 1), ("p/b", 1), ("p/c", 2)]);
        let b = tree(&[("p", 2), ("p/b", 1), ("p/c", 3), ("p/d", 1)]);
        let (mut added, mut removed, mut differ) = (Vec::new(), Vec::new(), Vec::new());
        compare(&a, &b, |d| match d {
            Difference::Added(n) => added.push(n.to_vec()),
            Difference::Removed(n) => removed.push(n.to_vec()),
            Difference::Differs(n, old, new) => differ.push((n.to_vec(), old, new)),
        });
        assert_eq!(added, [b"p/d".to_vec()]);
        assert_eq!(removed, [b"p/a".to_vec()]);
        assert_eq!(differ, [(b"p".to_vec(), 1, 2), (b"p/c".to_vec(), 2, 3)]);
    }

    fn pairs(going: &Going) -> Vec<(String, u32)> {
        going
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v))
            .collect()
    }

    #[test]
    fn what_a_kept_tree_names_does_not_go() {
        let kept = tree(&[("p", 3), ("p/a", 1), ("p/b", 2), ("p/d", 1)]);
        let mut going = Going::default()
            .with(tree(&[("p", 1), ("p/a", 1), ("p/b", 1), ("p/d", 1)]))
            .with(tree(&[("p", 3), ("p/c", 1), ("p/d", 1), ("p/e", 4)]));
        assert_eq!(
            pairs(&going),
            [
                ("p".into(), 1),
                ("p".into(), 3),
                ("p/a".into(), 1),
                ("p/b".into(), 1),
                ("p/c".into(), 1),
                ("p/d".into(), 1),
                ("p/e".into(), 4)
            ],
            "two forgotten trees merged: sorted, a pair both name held once"
        );
        going.drop_named(&kept);
        assert_eq!(
            pairs(&going),
            [
                ("p".into(), 1),
                ("p/b".into(), 1),
                ("p/c".into(), 1),
                ("p/e".into(), 4)
            ],
            "only the very versions the kept tree names stay"
        );
        going.drop_named(&SnapshotTree::default());
        assert_eq!(going.len(), 4, "an empty tree names nothing");
        going.drop_named(&tree(&[("p", 1), ("p/b", 1), ("p/c", 1), ("p/e", 4)]));
        assert!(going.is_empty(), "a tree naming every pair leaves nothing");
        let going = going.with(tree(&[("q", 2)]));
        assert_eq!(
            pairs(&going),
            [("q".into(), 2)],
            "and it takes a tree again"
        );
    }

    #[test]
    fn a_snapshot_is_picked_by_number_or_day_and_a_missing_one_says_why() {
        let s = |no, at| SnapshotInfo {
            no,
            at,
            files: 0,
            bytes: 0,
            added: 0,
            removed: 0,
            changed: 0,
            partial: false,
        };
        // Noon of three days in the machine's zone.
        let zone = jiff::tz::TimeZone::system();
        let noon = |d: &str| {
            d.parse::<jiff::civil::Date>()
                .unwrap()
                .at(12, 0, 0, 0)
                .to_zoned(zone.clone())
                .unwrap()
                .timestamp()
                .as_second()
        };
        let snaps = [
            s(2, noon("2026-11-28")),
            s(4, noon("2026-11-30")),
            s(5, noon("2026-11-30") + 60),
        ];
        let state = JobState {
            next_no: 6,
            ..JobState::default()
        };
        assert_eq!(pick("p", &snaps, Some(&state), "4").unwrap(), 4);
        assert_eq!(pick("p", &snaps, Some(&state), "2026-11-30").unwrap(), 5);
        let err = pick("p", &snaps, Some(&state), "3")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "p@3 is not a snapshot: it was forgotten by the job's keep rules (snapshots kept: 2, 4, 5)"
        );
        let err = pick("p", &snaps, Some(&state), "9")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no run made it"), "{err}");
        let err = pick("p", &snaps, Some(&state), "2026-11-29")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no snapshot kept was made that day"), "{err}");
        let err = pick("p", &snaps, Some(&state), "yesterday")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a snapshot's number or a day"), "{err}");
    }

    #[test]
    fn a_job_needs_attention_after_a_failure_or_two_periods_without_success() {
        let spec = JobSpec {
            name: "p".into(),
            path: "/p".into(),
            every: "1h".parse().unwrap(),
            keep: KeepRules::standard(),
            exclude: Vec::new(),
            shares: None,
            confined: false,
            watch: false,
        };
        let run = |outcome, at| RunRecord {
            started: at,
            ended: at + 10,
            outcome,
            reason: Some("the disk is full".into()),
            files: 0,
            bytes_sent: 0,
            snapshot: None,
        };
        let mut state = JobState {
            created: 0,
            ..JobState::default()
        };
        assert_eq!(attention(&spec, &state, 7200), None);
        assert!(
            attention(&spec, &state, 7201)
                .unwrap()
                .contains("twice its period (1h)")
        );
        assert_eq!(
            next_run(&spec, &state, Seen::Blind, 10, 10),
            0,
            "a new job runs at once"
        );
        state.last = Some(run(Outcome::Ok, 100));
        state.last_ok = Some(110);
        assert_eq!(attention(&spec, &state, 3000), None);
        assert_eq!(next_run(&spec, &state, Seen::Blind, 10, 3000), 3700);
        state.last = Some(run(Outcome::Failed, 4000));
        assert_eq!(
            attention(&spec, &state, 4100).unwrap(),
            "its last run failed: the disk is full"
        );
        assert_eq!(
            next_run(&spec, &state, Seen::Blind, 10, 4100),
            4010 + 900,
            "tried again sooner"
        );
        // The clock went back a year after a run: due now, and said.
        state.last = Some(run(Outcome::Ok, 40_000_000));
        assert_eq!(next_run(&spec, &state, Seen::Blind, 10, 5000), 5000);
        assert!(
            attention(&spec, &state, 5000)
                .unwrap()
                .contains("the clock went back")
        );
    }

    #[test]
    fn a_watched_job_runs_after_changes_and_is_overdue_only_after_two_quiet_days() {
        let spec = JobSpec {
            name: "p".into(),
            path: "/p".into(),
            every: Every::WATCHED,
            keep: KeepRules::standard(),
            exclude: Vec::new(),
            shares: None,
            confined: false,
            watch: true,
        };
        let mut state = JobState {
            created: 0,
            ..JobState::default()
        };
        assert_eq!(
            next_run(&spec, &state, Seen::Watching(None), 10, 5),
            0,
            "a new job runs at once"
        );
        state.last = Some(RunRecord {
            started: 100,
            ended: 110,
            outcome: Outcome::Ok,
            reason: None,
            files: 1,
            bytes_sent: 1,
            snapshot: Some(1),
        });
        state.last_ok = Some(110);
        let quiet = Seen::Watching(None);
        let changed = Seen::Watching(Some(Changes {
            first: 1000,
            last: 1000,
        }));
        assert_eq!(next_run(&spec, &state, quiet, 10, 200), 100 + 86_400);
        assert_eq!(next_run(&spec, &state, changed, 10, 200), 1010);
        assert_eq!(next_run(&spec, &state, Seen::Blind, 10, 200), 400);
        // Nothing changed for a day and a half: not overdue, as the daily run is not late.
        assert_eq!(attention(&spec, &state, 110 + 36 * 3600), None);
        assert!(
            attention(&spec, &state, 111 + 2 * 86_400)
                .unwrap()
                .contains("twice its period (1d)")
        );
    }
}
