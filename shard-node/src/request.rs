//! What a caller asks of the engine: the requests of [`Node::put`](crate::node::Node::put) and
//! [`Node::get`](crate::node::Node::get). They sit below the operations so that the node and
//! every operation can name them without depending on each other.

use std::path::PathBuf;

/// What to store.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// Files and folders.
    pub paths: Vec<PathBuf>,
    /// Name in the vault (only with one path; default: the path's last component).
    pub name: Option<Vec<u8>>,
    /// `k`-of-`n` (default: from the nodes online).
    pub redundancy: Option<(u8, u8)>,
    /// Delete the originals once stored and read back.
    pub move_original: bool,
}

/// What to restore.
#[derive(Debug, Clone)]
pub struct GetRequest {
    /// Name in the vault.
    pub name: Vec<u8>,
    /// Version (default: the newest). Under a backup job's name: its snapshot's number.
    pub version: Option<u32>,
    /// What came after `@` in `NAME@…`: a version's number, or under a backup job's name a
    /// snapshot's number or a day (`2026-11-30`: that day's newest snapshot). Under a job's
    /// name without either, the newest snapshot is restored.
    pub at: Option<String>,
    /// Where to write it (a file, or a folder for a tree).
    pub out: PathBuf,
    /// Overwrite what exists.
    pub force: bool,
    /// Restore setuid, setgid and sticky bits as stored (otherwise they are cleared).
    pub keep_special_bits: bool,
}

/// How `rm` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removing {
    /// To the trash, restorable for `[vault] trash_days` (at once when that is 0).
    ToTrash,
    /// For good now: the shares no other file uses are deleted.
    Now,
    /// For good now, and the peers drop the shares at once rather than keep them through
    /// their grace period (removing an account and everything in it).
    Purge,
}
