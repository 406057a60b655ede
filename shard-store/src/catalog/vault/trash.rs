//! The trash: file versions a user removed, hidden from every listing and restore but kept —
//! their chunks counted, their packs kept by compaction, their shares on their peers — until
//! they are restored or deleted for good ([`VaultCatalog::delete_files`]).
//!
//! A version in the trash is a `files` row in state 3 with the time it went there; nothing
//! else about it changes, so restoring it is one update and its version number stays taken
//! (a file stored under the same name meanwhile gets the next number).

use rusqlite::params;

use super::{FILE_TRASHED, FILE_VISIBLE, FileEntry, FileId, VaultCatalog};
use crate::{Error, Result};

/// A file version in the trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashedEntry {
    /// The version, as it was when visible.
    pub entry: FileEntry,
    /// When it went to the trash, seconds since the epoch.
    pub trashed_at: i64,
}

impl VaultCatalog<'_> {
    /// Moves visible file versions to the trash, marked with `at`; returns how many moved (one
    /// removed or trashed meanwhile is left as it is). One transaction.
    pub fn trash_files(&self, files: &[FileId], at: i64) -> Result<usize> {
        self.set_trash_state(files, FILE_VISIBLE, FILE_TRASHED, Some(at))
    }

    /// Makes file versions in the trash visible again; returns how many. One transaction.
    pub fn untrash_files(&self, files: &[FileId]) -> Result<usize> {
        self.set_trash_state(files, FILE_TRASHED, FILE_VISIBLE, None)
    }

    fn set_trash_state(
        &self,
        files: &[FileId],
        from: i64,
        to: i64,
        at: Option<i64>,
    ) -> Result<usize> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut moved = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE files SET state = ?3, trashed = ?4
                 WHERE account = ?1 AND id = ?2 AND state = ?5",
            )?;
            for file in files {
                moved += stmt.execute(params![self.account.0, file.0, to, at, from])?;
            }
        }
        tx.commit()?;
        Ok(moved)
    }

    /// Calls `each` with every file version in the trash, in no particular order, a page of
    /// 1 024 rows at a time (what a catalog snapshot writes: a folder of 10⁶ files in the
    /// trash costs a page, not the folder).
    pub fn for_each_trashed(&self, mut each: impl FnMut(TrashedEntry) -> Result<()>) -> Result<()> {
        self.for_each_in_state(FILE_TRASHED, |entry, trashed| {
            each(TrashedEntry {
                entry,
                trashed_at: trashed
                    .ok_or(Error::IndexDamaged("a file in the trash without its time"))?,
            })
        })
    }

    /// Every file version in the trash, by name and version.
    pub fn trashed(&self) -> Result<Vec<TrashedEntry>> {
        let mut out = Vec::new();
        self.for_each_trashed(|t| {
            out.push(t);
            Ok(())
        })?;
        out.sort_by(|a, b| {
            (&a.entry.meta.name, a.entry.version).cmp(&(&b.entry.meta.name, b.entry.version))
        });
        Ok(out)
    }
}
