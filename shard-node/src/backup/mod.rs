//! Backups that run themselves: a job names a folder once, and the node stores it again on a
//! schedule as a new snapshot of the same tree, thins old snapshots out by a retention policy,
//! and says loudly when protection has stopped.
//!
//! This module holds the job's rules — its period ([`Every`]), what it keeps
//! ([`retention::KeepRules`]), what it leaves out ([`exclude::Exclusions`]) — as pure values
//! with their parsers, tested on their own.

pub mod exclude;
pub mod retention;
pub mod schedule;

pub use exclude::{BadExclusion, Exclusions};
pub use retention::{BadKeepRules, KeepRules};
pub use schedule::{BadPeriod, Every};
