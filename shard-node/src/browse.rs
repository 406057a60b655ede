//! Looking into a backup snapshot before restoring from it: what `NAME@N` holds in one of its
//! folders, a page at a time, with each entry's kind, size, mode and modification time as the
//! snapshot's versions record them (the web UI's Backups page shows a snapshot this way).
//!
//! A snapshot never changes once made, so a page is named by its offset among the folder's
//! entries; only the page's entries are read from the catalog.

use serde::{Deserialize, Serialize};
use shard_store::FileKind;

use crate::node::Node;
use crate::report::EntryKind;
use crate::{Error, Result};

/// Entries a page holds at most, whatever is asked.
pub const MAX_PAGE: usize = 1000;

/// One entry of a snapshot's folder (see [`Node::snapshot_ls`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// Its name in the folder (lossy UTF-8).
    pub name: String,
    /// Its path under the job's folder, `/`-separated (lossy UTF-8): `NAME@N/PATH` restores it.
    pub path: String,
    /// That path's bytes, in hex.
    pub path_hex: String,
    /// File, folder or link.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Unix mode bits.
    pub mode: u32,
    /// The version of it the snapshot names.
    pub version: u32,
    /// A link's target (lossy UTF-8).
    pub link_target: Option<String>,
}

/// A page of one folder of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotFolder {
    /// The job.
    pub job: String,
    /// The snapshot's number (also when it was asked for by day).
    pub snapshot: u32,
    /// The folder, under the job's folder (`""`: the job's folder itself).
    pub folder: String,
    /// Entries directly in the folder.
    pub total: usize,
    /// Where this page starts among them.
    pub offset: usize,
    /// This page's entries, in name order.
    pub entries: Vec<SnapshotEntry>,
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl Node {
    /// The entries directly in `folder` (a path under the job's folder, `/`-separated; `""` for
    /// the folder itself) of snapshot `asked` (a number or a day; `None`: the newest) of
    /// `user`'s job `name`, in name order: at most `limit` (and [`MAX_PAGE`]) of them from the
    /// `offset`-th on.
    pub fn snapshot_ls(
        &self,
        user: Option<&str>,
        name: &str,
        asked: Option<&str>,
        folder: &str,
        offset: usize,
        limit: usize,
    ) -> Result<SnapshotFolder> {
        let session = self.session(user)?;
        let folder = folder.trim_matches('/');
        if !folder.is_empty()
            && folder
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Usage(format!(
                "{folder:?} is not a path in a snapshot: name a folder under the job's folder, without empty, '.' or '..' parts"
            )));
        }
        let asked = match asked {
            Some(asked) => asked.to_string(),
            None => self
                .snapshots(Some(&session.user), name)?
                .iter()
                .map(|s| s.no)
                .max()
                .ok_or_else(|| Error::NoSuchSnapshot {
                    job: name.to_string(),
                    asked: "newest".into(),
                    why: "no run has made one yet".into(),
                    kept: "none".into(),
                })?
                .to_string(),
        };
        let (no, tree) = self.snapshot_tree(&session, name, &asked)?;
        let mut root = name.as_bytes().to_vec();
        if !folder.is_empty() {
            root.push(b'/');
            root.extend_from_slice(folder.as_bytes());
        }
        let not_in = || {
            Error::Store(shard_store::Error::NoSuchFile(format!(
                "{} is not in snapshot {name}@{no}",
                lossy(&root)
            )))
        };
        let version = tree.version_of(&root).ok_or_else(not_in)?;
        let mut prefix = root.clone();
        prefix.push(b'/');
        // Names under the folder lie together in the tree's order; its own entries are those
        // with no further `/`.
        let children: Vec<(&[u8], u32)> = tree
            .from(&prefix)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .filter(|(n, _)| {
                n.get(prefix.len()..)
                    .is_some_and(|rest| !rest.contains(&b'/'))
            })
            .collect();
        let total = children.len();
        let page: Vec<(&[u8], u32)> = children
            .into_iter()
            .skip(offset)
            .take(limit.min(MAX_PAGE))
            .collect();
        let mut wanted = Vec::with_capacity(page.len() + 1);
        wanted.push((root.as_slice(), version));
        wanted.extend(page.iter().copied());
        let vault = self.catalog().vault(session.account, &session.keys);
        let mut found = vault.entries_at(&wanted)?.into_iter();
        let missing = || {
            Error::Store(shard_store::Error::IndexDamaged(
                "a version a backup snapshot names is missing from the catalog",
            ))
        };
        let own = found.next().flatten().ok_or_else(missing)?;
        if own.meta.kind != FileKind::Dir {
            return Err(Error::Usage(format!(
                "{} in snapshot {name}@{no} is not a folder: restore or download it instead",
                lossy(&root)
            )));
        }
        let job_prefix = name.len() + 1;
        let entries = found
            .map(|e| {
                let e = e.ok_or_else(missing)?;
                let path = e.meta.name.get(job_prefix..).unwrap_or_default();
                let base = path.rsplit(|b| *b == b'/').next().unwrap_or_default();
                Ok(SnapshotEntry {
                    name: lossy(base),
                    path: lossy(path),
                    path_hex: hex::encode(path),
                    kind: EntryKind::from(e.meta.kind),
                    size: e.meta.size,
                    mtime: e.meta.mtime,
                    mode: e.meta.mode,
                    version: e.version,
                    link_target: e.meta.link_target.as_deref().map(|t| lossy(t)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SnapshotFolder {
            job: name.to_string(),
            snapshot: no,
            folder: folder.to_string(),
            total,
            offset,
            entries,
        })
    }
}
