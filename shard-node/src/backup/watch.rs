//! When a watched job (`shard backup add PATH --watch`) runs: the rule, over numbers.
//!
//! The node watches a watched job's folder with the platform's file-system notifications
//! (`crate::watchers`); what the watcher saw comes here as [`Seen`], and [`due`] says when the
//! job runs next:
//!
//! - soon after its folder changes, once the changes have been quiet for a while (`quiet`
//!   seconds, 10 by default): saving a document or copying a thousand photos is one run, not
//!   one per file. Changes that never pause (a log written every second) hold a run off at
//!   most [`LONGEST_BURST`] quiet times;
//! - never sooner than its period after its last run began: with `--watch` the period is the
//!   shortest gap between two runs ([`Every::WATCHED`], five minutes, unless `--every` says
//!   otherwise), so a folder that changes all day is stored every five minutes, not hundreds
//!   of times an hour — "never more often than the period allows";
//! - and at least once a day (once a period, when that is longer: [`longest_gap`]), changes
//!   seen or not: a notification can be lost (a queue that overflowed, a network file system
//!   that sends none), and the daily run finds what the watcher missed.
//!
//! When no watcher works — it is being set up, or the platform refused one (more folders
//! than the inotify limit, a folder it may not read) — the job is [`Seen::Blind`] and runs
//! every period, as an unwatched job does: it falls back to its schedule, never to nothing.
//!
//! A watcher counts its own start as a change: nobody watched before it (the node was off,
//! the account locked), so a run after it finds what changed meanwhile.

use serde::{Deserialize, Serialize};

use super::Every;

/// Changes that never pause hold a run off at most this many quiet times after they began.
pub const LONGEST_BURST: i64 = 6;

/// The latest burst of changes a watcher saw: when it began and its last change (seconds by
/// the node's clock). Two numbers however many events came: a watcher's memory does not grow
/// with what changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// When the burst began.
    pub first: i64,
    /// Its last change.
    pub last: i64,
}

impl Changes {
    /// What was seen (`seen`) after one more change at `at`: a change after `quiet` seconds
    /// of silence, or dated before the last one (a clock gone back), begins a new burst.
    pub fn saw(seen: Option<Changes>, at: i64, quiet: i64) -> Changes {
        match seen {
            Some(c) if at >= c.last && at - c.last < quiet => Changes {
                first: c.first,
                last: at,
            },
            _ => Changes {
                first: at,
                last: at,
            },
        }
    }
}

/// What a watched job's watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No watcher works (it is being set up, or was refused): the job runs by its period.
    Blind,
    /// Watching; the latest changes seen, if any.
    Watching(Option<Changes>),
}

impl Seen {
    /// What a watcher in `status` that saw `changes` tells: only a working one tells anything.
    pub fn of(status: Option<&WatchStatus>, changes: Option<Changes>) -> Seen {
        match status {
            Some(WatchStatus::Watching { .. }) => Seen::Watching(changes),
            _ => Seen::Blind,
        }
    }
}

/// How a watched job's folder is watched, as `shard backup ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum WatchStatus {
    /// The watcher is being set up (a large folder takes a while); the job runs by its
    /// period meanwhile.
    Starting,
    /// Watching since `since` (seconds since the epoch).
    Watching {
        /// When it began.
        since: i64,
    },
    /// No watcher works, and why; the job runs by its period instead.
    Failed {
        /// What the platform said, and what would help.
        reason: String,
    },
}

/// The longest a watched job goes without a run, changes seen or not: a day, or its period
/// when that is longer.
pub fn longest_gap(every: Every) -> Every {
    if every.secs() > Every::DAY.secs() {
        every
    } else {
        Every::DAY
    }
}

/// When a watched job of period `every` whose last run began at `last` is due (seconds since
/// the epoch), by what its watcher saw and its quiet time (`quiet` seconds).
pub fn due(every: Every, last: i64, seen: Seen, quiet: i64) -> i64 {
    let gap = every.due(Some(last));
    let Seen::Watching(changes) = seen else {
        return gap;
    };
    let latest = longest_gap(every).due(Some(last));
    match pending(last, changes) {
        Some(c) => {
            // The part of a burst that went on past the run's start is what is waiting.
            let began = c.first.max(last);
            let settled = c
                .last
                .saturating_add(quiet)
                .min(began.saturating_add(quiet.saturating_mul(LONGEST_BURST)));
            settled.max(gap).min(latest)
        }
        None => latest,
    }
}

/// The changes not yet in a run that began at `last`: those of the same second count, as
/// the run may have read that file before it changed.
pub fn pending(last: i64, changes: Option<Changes>) -> Option<Changes> {
    changes.filter(|c| c.last >= last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: i64 = 10;
    const T: i64 = 1_000_000;

    fn every(text: &str) -> Every {
        text.parse().unwrap()
    }

    fn changes(first: i64, last: i64) -> Seen {
        Seen::Watching(Some(Changes { first, last }))
    }

    #[test]
    fn bursts_are_two_numbers_and_a_pause_begins_a_new_one() {
        let mut seen = None;
        for at in [T, T + 3, T + 9, T + 18] {
            seen = Some(Changes::saw(seen, at, Q));
        }
        assert_eq!(
            seen,
            Some(Changes {
                first: T,
                last: T + 18
            }),
            "never 10 s apart: one burst"
        );
        let later = Changes::saw(seen, T + 28, Q);
        assert_eq!(
            later,
            Changes {
                first: T + 28,
                last: T + 28
            },
            "after 10 s of quiet: a new burst"
        );
        let back = Changes::saw(Some(later), T, Q);
        assert_eq!(back, Changes { first: T, last: T }, "a clock gone back");
    }

    #[test]
    fn a_change_runs_the_job_once_quiet_but_not_before_its_period_since_the_last_run() {
        let e = every("5m");
        // Changed a minute after the last run: due at the period, the quiet long passed.
        assert_eq!(due(e, T, changes(T + 60, T + 60), Q), T + 300);
        // Changed just before the period ends: due once quiet, after it.
        assert_eq!(due(e, T, changes(T + 295, T + 297), Q), T + 307);
        // Changed long after: due 10 s after the last change.
        assert_eq!(due(e, T, changes(T + 3000, T + 3004), Q), T + 3014);
    }

    #[test]
    fn nothing_seen_means_a_run_a_day_and_a_longer_period_is_kept() {
        assert_eq!(due(every("5m"), T, Seen::Watching(None), Q), T + 86_400);
        // Changes already in the last run (before it began) are not waiting.
        assert_eq!(due(every("5m"), T, changes(T - 50, T - 1), Q), T + 86_400);
        assert_eq!(due(every("2d"), T, Seen::Watching(None), Q), T + 172_800);
        // With a period of a day, a change is stored at the first quiet moment a day on.
        assert_eq!(due(every("1d"), T, changes(T + 60, T + 60), Q), T + 86_400);
        assert_eq!(longest_gap(every("6h")), Every::DAY);
        assert_eq!(longest_gap(every("3d")), every("3d"));
    }

    #[test]
    fn changes_that_never_pause_hold_a_run_off_for_six_quiet_times_at_most() {
        let e = every("5m");
        // Writing every second since T+1000, still at it at T+1100.
        assert_eq!(due(e, T, changes(T + 1000, T + 1100), Q), T + 1060);
        // A burst that began before the last run: counted from the run's start.
        assert_eq!(due(e, T, changes(T - 500, T + 400), Q), T + 300);
    }

    #[test]
    fn a_change_in_the_second_a_run_began_still_waits_for_the_next() {
        assert_eq!(due(every("5m"), T, changes(T, T), Q), T + 300);
        assert!(pending(T, Some(Changes { first: T, last: T })).is_some());
        assert_eq!(
            pending(
                T,
                Some(Changes {
                    first: T - 5,
                    last: T - 1
                })
            ),
            None
        );
    }

    #[test]
    fn without_a_watcher_the_job_runs_by_its_period() {
        assert_eq!(due(every("5m"), T, Seen::Blind, Q), T + 300);
        assert_eq!(due(every("1d"), T, Seen::Blind, Q), T + 86_400);
    }

    #[test]
    fn the_status_reads_as_tagged_json() {
        let s = serde_json::to_string(&WatchStatus::Failed {
            reason: "too many folders".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"state":"failed","reason":"too many folders"}"#);
        let s = serde_json::to_string(&WatchStatus::Watching { since: 5 }).unwrap();
        assert_eq!(s, r#"{"state":"watching","since":5}"#);
    }
}
