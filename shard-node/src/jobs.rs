//! Long operations (put, get) run as jobs in the node; the CLI and the web UI follow their
//! progress and fetch their result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::report::{CheckReport, GetReport, PutReport, RepairReport};

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
#[derive(Debug, Clone, Serialize)]
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
job_result_from!(PutReport => Put, GetReport => Get, CheckReport => Check, RepairReport => Repair);

/// Where a job stands, with its result or error once it ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobState {
    /// Still going.
    Running,
    /// Ended well.
    Done {
        /// What it returned.
        result: JobResult,
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
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// Its id.
    pub id: u64,
    /// What it does.
    pub kind: &'static str,
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
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the job done with its result.
    pub fn finish(&self, result: impl Into<JobResult>) {
        *self.lock() = JobState::Done {
            result: result.into(),
        };
    }

    /// Marks the job failed.
    pub fn fail(&self, error: String, hint: String) {
        *self.lock() = JobState::Failed { error, hint };
    }

    /// The job's counters and state now.
    pub fn status(&self) -> JobStatus {
        let p = &self.progress;
        JobStatus {
            id: self.id,
            kind: self.kind,
            bytes_total: p.bytes_total.load(Ordering::Relaxed),
            bytes_done: p.bytes_done.load(Ordering::Relaxed),
            files_total: p.files_total.load(Ordering::Relaxed),
            files_done: p.files_done.load(Ordering::Relaxed),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            state: self.lock().clone(),
        }
    }
}

/// The jobs of a node (kept until the node stops; they are small).
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
        });
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, job.clone());
        job
    }

    /// A job by id.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }
}
