//! Long operations (put, get) run as jobs in the node; the CLI and the web UI follow their
//! progress and fetch their result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::report::{CheckReport, GetReport, PruneReport, PutReport, RepairReport};

/// Counters a job advances as it goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to process.
    pub bytes_total: AtomicU64,
    /// Bytes processed.
    pub bytes_done: AtomicU64,
    /// Files to process.
    pub files_total: AtomicU64,
    /// Files processed.
    pub files_done: AtomicU64,
}

impl Progress {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a finished job returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobResult {
    /// A put's report.
    Put(PutReport),
    /// A get's report.
    Get(GetReport),
    /// A check's report.
    Check(CheckReport),
    /// A repair's report.
    Repair(RepairReport),
    /// A prune's report.
    Prune(PruneReport),
    /// A backup run's report.
    Backup(crate::backup::BackupRun),
}

macro_rules! job_result_from {
    ($($report:ident => $variant:ident),*) => {$(
        impl From<$report> for JobResult {
            fn from(report: $report) -> Self {
                JobResult::$variant(report)
            }
        }
    )*};
}
job_result_from!(PutReport => Put, GetReport => Get, CheckReport => Check, RepairReport => Repair, PruneReport => Prune);

impl From<crate::backup::BackupRun> for JobResult {
    fn from(run: crate::backup::BackupRun) -> Self {
        JobResult::Backup(run)
    }
}

/// Where a job stands, with its result or error once it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobState {
    /// Still going.
    Running,
    /// Ended well.
    Done {
        /// What it returned (shared: a check of 10⁵ files returns tens of MiB, and every look
        /// at the job's status must not copy them).
        result: Arc<JobResult>,
    },
    /// Ended with an error.
    Failed {
        /// What went wrong.
        error: String,
        /// What to do about it.
        hint: String,
    },
}

/// A job as the CLI and the web UI follow it: counters and state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    /// Its id.
    pub id: u64,
    /// What it does: `put`, `get`, `check`, `repair` or `prune`.
    pub kind: String,
    /// Bytes to process.
    pub bytes_total: u64,
    /// Bytes processed.
    pub bytes_done: u64,
    /// Files to process.
    pub files_total: u64,
    /// Files processed.
    pub files_done: u64,
    /// Seconds since it started.
    pub elapsed_secs: f64,
    /// Where it stands (flattened: `state`, and `result` or `error` and `hint`).
    #[serde(flatten)]
    pub state: JobState,
}

impl JobStatus {
    /// Whether it is still going.
    pub fn running(&self) -> bool {
        matches!(self.state, JobState::Running)
    }
}

/// One job.
pub struct Job {
    /// Its id.
    pub id: u64,
    /// What it does ("put", "get").
    pub kind: &'static str,
    /// The account it acts for, if any.
    pub user: Option<String>,
    /// Its counters.
    pub progress: Progress,
    started: Instant,
    state: Mutex<JobState>,
    ended_at: Mutex<Option<Instant>>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the job done with its result.
    pub fn finish(&self, result: impl Into<JobResult>) {
        *self.lock() = JobState::Done {
            result: Arc::new(result.into()),
        };
        self.ended();
    }

    /// Marks the job failed.
    pub fn fail(&self, error: String, hint: String) {
        *self.lock() = JobState::Failed { error, hint };
        self.ended();
    }

    fn ended(&self) {
        *self.ended_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// When it ended, if it did.
    fn ended_at(&self) -> Option<Instant> {
        *self.ended_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's counters and state now.
    pub fn status(&self) -> JobStatus {
        let p = &self.progress;
        JobStatus {
            id: self.id,
            kind: self.kind.to_string(),
            bytes_total: p.bytes_total.load(Ordering::Relaxed),
            bytes_done: p.bytes_done.load(Ordering::Relaxed),
            files_total: p.files_total.load(Ordering::Relaxed),
            files_done: p.files_done.load(Ordering::Relaxed),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            state: self.lock().clone(),
        }
    }
}

/// How long a job's result is kept after it ended: long enough for whoever started it to
/// fetch it, short enough that results of large checks do not pile up in a node that runs for
/// months.
pub const KEEP_ENDED: Duration = Duration::from_secs(15 * 60);

/// Ended jobs kept at most per account (and for the token-holding CLI), whatever their age:
/// one account's many small jobs cannot push out another's result.
const MAX_ENDED: usize = 64;

/// The jobs of a node: running ones, and ended ones for [`KEEP_ENDED`] (at most 64 per
/// account).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// Registers a new running job.
    pub fn create(&self, kind: &'static str) -> Arc<Job> {
        self.create_for(kind, None)
    }

    /// Registers a new running job acting for `user`.
    pub fn create_for(&self, kind: &'static str, user: Option<&str>) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id,
            kind,
            user: user.map(str::to_string),
            progress: Progress::default(),
            started: Instant::now(),
            state: Mutex::new(JobState::Running),
            ended_at: Mutex::new(None),
        });
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        forget_old(&mut map);
        map.insert(id, job.clone());
        job
    }

    /// A job by id (running, or ended less than [`KEEP_ENDED`] ago).
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        forget_old(&mut map);
        map.get(&id).cloned()
    }
}

/// Drops jobs that ended more than [`KEEP_ENDED`] ago, and each account's oldest ended ones
/// beyond [`MAX_ENDED`].
fn forget_old(map: &mut HashMap<u64, Arc<Job>>) {
    map.retain(|_, j| j.ended_at().is_none_or(|at| at.elapsed() < KEEP_ENDED));
    let mut ended: HashMap<Option<String>, Vec<(Instant, u64)>> = HashMap::new();
    for j in map.values() {
        if let Some(at) = j.ended_at() {
            ended.entry(j.user.clone()).or_default().push((at, j.id));
        }
    }
    for mut theirs in ended.into_values() {
        if theirs.len() > MAX_ENDED {
            theirs.sort_unstable();
            for (_, old) in theirs.iter().take(theirs.len() - MAX_ENDED) {
                map.remove(old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ended jobs beyond the cap go, oldest first; running ones stay whatever their number.
    #[test]
    fn ended_jobs_do_not_pile_up() {
        let jobs = Jobs::default();
        let running: Vec<_> = (0..3).map(|_| jobs.create("check")).collect();
        let ended: Vec<_> = (0..MAX_ENDED + 10)
            .map(|_| {
                let job = jobs.create("check");
                job.fail("failed".into(), "try again".into());
                job
            })
            .collect();
        jobs.create("put");
        for job in &running {
            assert!(jobs.get(job.id).is_some(), "running job {} kept", job.id);
        }
        let kept = ended.iter().filter(|j| jobs.get(j.id).is_some()).count();
        assert_eq!(kept, MAX_ENDED);
        assert!(jobs.get(ended[0].id).is_none(), "the oldest ended job went");
        assert!(
            jobs.get(ended[MAX_ENDED + 9].id).is_some(),
            "the newest stayed"
        );

        // Another account's many jobs leave this one's result alone.
        let mine = jobs.create_for("check", Some("ada"));
        mine.fail("failed".into(), "try again".into());
        for _ in 0..MAX_ENDED * 2 {
            jobs.create_for("get", Some("mallory"))
                .fail("failed".into(), "try again".into());
        }
        jobs.create_for("get", Some("mallory"));
        assert!(jobs.get(mine.id).is_some(), "ada's result kept");
    }

    /// A client reads a job's result back as the report it was: the untagged variants are
    /// told apart by their fields, and a round trip through JSON is the identity.
    #[test]
    fn every_report_reads_back_as_its_own_variant() {
        use crate::report::*;
        let put = PutReport {
            files: 2,
            unchanged: 0,
            unchanged_bytes: 0,
            dirs: 1,
            links: 0,
            bytes: 10,
            redundancy: "2-of-3".into(),
            chunks: 2,
            chunks_sent: 1,
            packs_sent: 1,
            chunks_already_stored: 1,
            chunks_kept_at_earlier_redundancy: 0,
            shares_sent: 3,
            share_bytes_sent: 30,
            skipped: vec!["a fifo".into()],
            failed: Vec::new(),
            moved: false,
            full_nodes: Vec::new(),
        };
        let get = GetReport {
            files: 2,
            dirs: 1,
            links: 0,
            bytes: 10,
            out: "/tmp/x".into(),
            restored_at: 1,
        };
        let check = CheckReport {
            catalog_snapshot_failure: None,
            deleted_in_grace: DeletedInGrace {
                shares: 0,
                oldest_deleted_at: None,
                grace_days: 30,
            },
            files: Vec::new(),
            files_not_listed: 0,
            healthy: 0,
            degraded: 0,
            lost: 0,
            unknown: 0,
            chunks: 0,
            shares: 0,
            unrecorded: 0,
            nodes: Vec::new(),
            read: ReadSummary {
                shares: 0,
                bad: 0,
                unreadable: 0,
                fraction: 0.0,
            },
            ok: true,
            elapsed_secs: 0.5,
        };
        let repair = RepairReport {
            chunks_degraded: 0,
            chunks_repaired: 0,
            shares_rebuilt: 0,
            bytes_rebuilt: 0,
            chunks_lost: 0,
            files_lost: Vec::new(),
            files_lost_not_listed: 0,
            chunks_waiting_for_room: 0,
            waiting: None,
            failures: Vec::new(),
            full_nodes: Vec::new(),
            ok: true,
            elapsed_secs: 0.25,
            catalog_snapshot_failure: None,
        };
        let prune = PruneReport {
            packs: 3,
            packs_compacted: 1,
            ok: true,
            ..PruneReport::default()
        };
        let backup = crate::backup::BackupRun {
            job: "papers".into(),
            outcome: crate::backup::Outcome::Partial,
            snapshot: 4,
            files: 10,
            bytes: 1000,
            unchanged: 8,
            bytes_sent: 300,
            added: 1,
            removed: 0,
            changed: 1,
            unreadable_count: 1,
            unreadable: vec!["/p/x: permission denied".into()],
            forgotten: vec![1],
            versions_removed: 2,
        };
        for (result, kind) in [
            (JobResult::from(put), "put"),
            (JobResult::from(get), "get"),
            (JobResult::from(check), "check"),
            (JobResult::from(repair), "repair"),
            (JobResult::from(prune), "prune"),
            (JobResult::from(backup), "backup"),
        ] {
            let json = serde_json::to_value(&result).unwrap();
            let back: JobResult = serde_json::from_value(json.clone()).unwrap();
            let variant = match back {
                JobResult::Put(_) => "put",
                JobResult::Get(_) => "get",
                JobResult::Check(_) => "check",
                JobResult::Repair(_) => "repair",
                JobResult::Prune(_) => "prune",
                JobResult::Backup(_) => "backup",
            };
            assert_eq!(variant, kind);
            assert_eq!(serde_json::to_value(&back).unwrap(), json);
        }
    }
}
