//! The file-system watchers of watched backup jobs (`shard backup add PATH --watch`): one per
//! watched job of an unlocked account, recursive, on the platform's notifications (the
//! `notify` crate's recommended watcher: inotify, FSEvents, …).
//!
//! A watcher only notes *when* its folder changed — the latest burst of changes, two numbers
//! ([`Changes`]), however many events come — by the node's clock. The backup loop decides
//! when the job runs ([`crate::backup::watch::due`]). Reads do not count (every run opens
//! the folders it stores), nor changes only inside what the job excludes.
//!
//! A watcher the platform refuses (more folders than the inotify limit, a folder it may not
//! read), or that loses events it cannot make up for, leaves its job running by its period,
//! says why in `shard backup ls` and the log, and is tried again an hour later.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use notify::event::{CreateKind, RemoveKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use shard_store::AccountId;

use crate::backup::exclude::IGNORE_FILE;
use crate::backup::watch::{Changes, WatchStatus};
use crate::backup::{Clock, Exclusions, JobSpec};

/// A watcher refused by the platform is tried again after this long.
const RETRY: Duration = Duration::from_secs(3600);

/// A job: its account and name.
type Key = (AccountId, String);

/// The watchers of a node's watched jobs.
#[derive(Default)]
pub(crate) struct Watchers(Mutex<HashMap<Key, Entry>>);

/// What a watcher is told to do and times itself by.
#[derive(Clone)]
pub(crate) struct Timing {
    /// The node's clock (a test's, in tests).
    pub clock: Arc<dyn Clock>,
    /// How long changes must be quiet before a run, seconds.
    pub quiet: i64,
}

/// One job's watcher as asked for.
struct Entry {
    path: PathBuf,
    exclude: Vec<String>,
    started: Instant,
    shared: Arc<Shared>,
}

/// What the watcher's callback and the node share. The callback holds it weakly, so dropping
/// the entry drops the watcher (and stops its thread).
struct Shared {
    state: Mutex<State>,
    watcher: Mutex<Option<RecommendedWatcher>>,
}

struct State {
    status: WatchStatus,
    changes: Option<Changes>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one assignment: a panic cannot leave it half done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchers {
    /// Watches `spec`'s folder for `account`, unless it is watched already as `spec` says;
    /// a watcher the platform refused an hour ago or more is tried again.
    pub fn watch(&self, account: AccountId, spec: &JobSpec, timing: &Timing) {
        let mut all = lock(&self.0);
        let key = (account, spec.name.clone());
        if let Some(e) = all.get(&key)
            && e.path == spec.path
            && e.exclude == spec.exclude
            && !(matches!(lock(&e.shared.state).status, WatchStatus::Failed { .. })
                && e.started.elapsed() >= RETRY)
        {
            return;
        }
        all.insert(key, Entry::start(spec, timing));
    }

    /// Stops watching `account`'s job `name`.
    pub fn unwatch(&self, account: AccountId, name: &str) {
        let gone = lock(&self.0).remove(&(account, name.to_string()));
        // Dropped outside the map's lock: stopping a watcher waits on nothing, but need not
        // hold up anyone else.
        drop(gone);
    }

    /// Watches exactly `wanted` (the watched jobs of the unlocked accounts), besides the
    /// jobs of `unread` accounts (whose jobs could not be read this time): starts what is
    /// missing, stops the rest (removed jobs, locked accounts).
    pub fn keep_only(
        &self,
        wanted: &[(AccountId, &JobSpec)],
        unread: &HashSet<AccountId>,
        t: &Timing,
    ) {
        let names: HashSet<(AccountId, &str)> =
            wanted.iter().map(|(a, s)| (*a, s.name.as_str())).collect();
        let gone: Vec<Entry> = {
            let mut all = lock(&self.0);
            let keys: Vec<Key> = all
                .keys()
                .filter(|(a, n)| !unread.contains(a) && !names.contains(&(*a, n.as_str())))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| all.remove(k)).collect()
        };
        drop(gone);
        for (account, spec) in wanted {
            self.watch(*account, spec, t);
        }
    }

    /// How `account`'s job `name` is watched, and the latest changes seen.
    pub fn report(&self, account: AccountId, name: &str) -> (Option<WatchStatus>, Option<Changes>) {
        let all = lock(&self.0);
        match all.get(&(account, name.to_string())) {
            None => (None, None),
            Some(e) => {
                let state = lock(&e.shared.state);
                (Some(state.status.clone()), state.changes)
            }
        }
    }
}

impl Entry {
    /// A watcher of `spec`'s folder, set up on a thread of its own (a large folder takes a
    /// while to walk); starting meanwhile.
    fn start(spec: &JobSpec, timing: &Timing) -> Entry {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                status: WatchStatus::Starting,
                changes: None,
            }),
            watcher: Mutex::new(None),
        });
        let filter = Filter::new(&spec.path, &spec.exclude);
        let (mine, timing_) = (shared.clone(), timing.clone());
        let spawned = std::thread::Builder::new()
            .name("shard-watch".into())
            .spawn(move || set_up(&mine, filter, &timing_));
        if let Err(e) = spawned {
            lock(&shared.state).status = WatchStatus::Failed {
                reason: format!("no thread for the watcher: {e}"),
            };
        }
        Entry {
            path: spec.path.clone(),
            exclude: spec.exclude.clone(),
            started: Instant::now(),
            shared,
        }
    }
}

/// Sets up the watcher of `filter`'s folder and says how it went in `shared`.
fn set_up(shared: &Arc<Shared>, mut filter: Filter, t: &Timing) {
    let root = filter.root.clone();
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let timing = t.clone();
    let handler = move |event: notify::Result<Event>| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        match event {
            Ok(event) => {
                if filter.counts(&event) {
                    shared.saw(timing.clock.now(), timing.quiet);
                }
            }
            Err(e) => shared.lost(&filter.root, &e, &timing),
        }
    };
    let config = notify::Config::default().with_follow_symlinks(false);
    let made = RecommendedWatcher::new(handler, config)
        .and_then(|mut w| w.watch(&root, RecursiveMode::Recursive).map(|()| w));
    match made {
        Ok(watcher) => {
            *lock(&shared.watcher) = Some(watcher);
            // Nobody watched before now: what changed meanwhile waits for a run as a change.
            let now = t.clock.now();
            let mut state = lock(&shared.state);
            state.status = WatchStatus::Watching { since: now };
            state.changes = Some(Changes::saw(state.changes, now, t.quiet));
        }
        Err(e) => {
            let reason = words(&e);
            tracing::warn!(
                "{} cannot be watched for changes: {reason}; its backup runs by its period instead",
                root.display()
            );
            lock(&shared.state).status = WatchStatus::Failed { reason };
        }
    }
}

impl Shared {
    fn saw(&self, at: i64, quiet: i64) {
        let mut state = lock(&self.state);
        state.changes = Some(Changes::saw(state.changes, at, quiet));
    }

    /// The watcher lost events (or could not watch a new folder): what it missed is
    /// unknown, so it counts as a change, and the job runs by its period from now on.
    fn lost(&self, root: &Path, e: &notify::Error, t: &Timing) {
        let reason = words(e);
        let mut state = lock(&self.state);
        if !matches!(state.status, WatchStatus::Failed { .. }) {
            tracing::warn!(
                "the watcher of {} failed: {reason}; its backup runs by its period instead",
                root.display()
            );
        }
        state.status = WatchStatus::Failed { reason };
        state.changes = Some(Changes::saw(state.changes, t.clock.now(), t.quiet));
    }
}

/// A watcher's error in words, with what would help.
fn words(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => "the system's limit of watched folders is reached \
             (raise it: sysctl fs.inotify.max_user_watches=524288)"
            .to_string(),
        _ => e.to_string(),
    }
}

/// Which events count as a change of a job's folder.
struct Filter {
    root: PathBuf,
    patterns: Vec<String>,
    /// None when they cannot be read: every change counts (the run says what is wrong).
    exclusions: Option<Exclusions>,
}

impl Filter {
    fn new(root: &Path, patterns: &[String]) -> Filter {
        Filter {
            root: root.to_path_buf(),
            patterns: patterns.to_vec(),
            exclusions: Exclusions::new(root, patterns).ok(),
        }
    }

    /// Whether `event` is a change the job stores: not a read, not only inside what it
    /// excludes. Lost events count.
    fn counts(&mut self, event: &Event) -> bool {
        if event.need_rescan() {
            return true;
        }
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        if event.paths.is_empty() {
            return true;
        }
        let folder = matches!(
            event.kind,
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder)
        );
        let rules = self.root.join(IGNORE_FILE);
        if event.paths.contains(&rules) {
            // The exclusions themselves changed: the run reads them again, and so does this.
            self.exclusions = Exclusions::new(&self.root, &self.patterns).ok();
            return true;
        }
        event.paths.iter().any(|p| !self.excluded(p, folder))
    }

    fn excluded(&self, path: &Path, folder: bool) -> bool {
        let Some(exclusions) = &self.exclusions else {
            return false;
        };
        match path.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => {}
            // The folder itself (or a path outside it): always counts.
            _ => return false,
        }
        let is_dir = folder || fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        exclusions.excludes(path, is_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, DataChange, Flag, ModifyKind};

    fn event(kind: EventKind, paths: &[&Path]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(p.to_path_buf()))
    }

    #[test]
    fn reads_and_changes_inside_exclusions_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("cache")).unwrap();
        let mut filter = Filter::new(root, &["cache/".into(), "*.tmp".into()]);
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(filter.counts(&event(write, &[&root.join("notes.md")])));
        assert!(!filter.counts(&event(read, &[&root.join("notes.md")])));
        assert!(!filter.counts(&event(write, &[&root.join("cache/x.bin")])));
        assert!(!filter.counts(&event(write, &[&root.join("a.tmp")])));
        assert!(!filter.counts(&event(
            EventKind::Remove(RemoveKind::Folder),
            &[&root.join("cache")]
        )));
        // A rename out of the excluded folder: one of its paths is kept.
        assert!(filter.counts(&event(
            EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::Both)),
            &[&root.join("cache/x.bin"), &root.join("x.bin")]
        )));
        assert!(filter.counts(&event(EventKind::Other, &[])));
        assert!(filter.counts(&Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        assert!(filter.counts(&event(write, &[root])), "the folder itself");
    }

    #[test]
    fn a_changed_shardignore_counts_and_its_rules_apply_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut filter = Filter::new(root, &[]);
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(filter.counts(&event(write, &[&root.join("big.iso")])));
        fs::write(root.join(IGNORE_FILE), "*.iso\n").unwrap();
        assert!(filter.counts(&event(write, &[&root.join(IGNORE_FILE)])));
        assert!(!filter.counts(&event(write, &[&root.join("big.iso")])));
    }
}
