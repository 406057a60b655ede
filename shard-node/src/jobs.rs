//! Long operations (put, get) run as jobs in the node; the CLI and the web UI follow their
//! progress and fetch their result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Value, json};

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

enum State {
    Running,
    Done(Value),
    Failed { error: String, hint: String },
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
    state: Mutex<State>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the job done with its result.
    pub fn finish(&self, result: Value) {
        *self.lock() = State::Done(result);
    }

    /// Marks the job failed.
    pub fn fail(&self, error: String, hint: String) {
        *self.lock() = State::Failed { error, hint };
    }

    /// The job as JSON: state, counters, and the result or error once it ended.
    pub fn snapshot(&self) -> Value {
        let p = &self.progress;
        let mut v = json!({
            "id": self.id,
            "kind": self.kind,
            "bytes_total": p.bytes_total.load(Ordering::Relaxed),
            "bytes_done": p.bytes_done.load(Ordering::Relaxed),
            "files_total": p.files_total.load(Ordering::Relaxed),
            "files_done": p.files_done.load(Ordering::Relaxed),
            "elapsed_secs": self.started.elapsed().as_secs_f64(),
        });
        match &*self.lock() {
            State::Running => v["state"] = json!("running"),
            State::Done(result) => {
                v["state"] = json!("done");
                v["result"] = result.clone();
            }
            State::Failed { error, hint } => {
                v["state"] = json!("failed");
                v["error"] = json!(error);
                v["hint"] = json!(hint);
            }
        }
        v
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
            state: Mutex::new(State::Running),
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
