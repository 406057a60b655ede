//! Backups that run themselves: a job names a folder once, and the node stores it again on a
//! schedule as a new snapshot of the same tree, thins old snapshots out by a retention policy,
//! and says loudly when protection has stopped.
//!
//! The job's rules — its period ([`Every`]), what it keeps ([`retention::KeepRules`]), what
//! it leaves out ([`exclude::Exclusions`]), when a watched one runs after changes ([`watch`]) —
//! are pure values with their parsers and rules, tested on their own; [`job`] is how jobs and
//! snapshots are kept in the account's catalog and the clock they are scheduled by; [`report`] what the node's operations on them (the
//! `crate::backups` module) take and return.

pub mod exclude;
pub mod job;
pub mod report;
pub mod retention;
pub mod schedule;
pub mod watch;

pub use exclude::{BadExclusion, Exclusions};
pub use job::{
    BackupJob, Clock, JobSpec, JobState, ManualClock, NameList, Outcome, RunRecord, SnapshotInfo,
    SnapshotTree, SystemClock,
};
pub use report::{BackupAlert, BackupRun, JobInfo, JobRemoval, NewJob, TreeDiff};
pub use retention::{BadKeepRules, KeepRules};
pub use schedule::{BadPeriod, Every};
pub use watch::WatchStatus;
