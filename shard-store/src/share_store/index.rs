//! The disk store's SQLite index: which shares a namespace holds, where each file is, its size
//! and state. WAL mode with `synchronous = FULL`: a commit is on disk when it returns.
//!
//! Schema version 2:
//! ```text
//! shares(ns BLOB, id BLOB, path TEXT UNIQUE, size INTEGER, state INTEGER,
//!        deleted_at INTEGER, PRIMARY KEY(ns, id))
//! dirs(path TEXT PRIMARY KEY)            -- folders the scatter layout created
//! ```
//! States: 0 pending (being written or deleted: its file may or may not exist), 1 ok,
//! 2 missing (file gone), 3 corrupt (file quarantined), 4 deleted (its owner deleted it at
//! `deleted_at`, seconds since the epoch; the file stays through the grace period).
//! Version 1 had no `deleted_at`; opening adds it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use shard_proto::{Namespace, ShareId};

use crate::{Error, Result};

/// 3: the shares are of data format 2 (BLAKE3 ids). An index of version 1 or 2 holds format 1
/// shares (SHA-256 ids): refused if it holds any, rather than have the scrub call them corrupt.
const SCHEMA_VERSION: i64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Pending = 0,
    Ok = 1,
    Missing = 2,
    Corrupt = 3,
    Deleted = 4,
}

impl State {
    fn from_i64(v: i64) -> Result<Self> {
        Ok(match v {
            0 => State::Pending,
            1 => State::Ok,
            2 => State::Missing,
            3 => State::Corrupt,
            4 => State::Deleted,
            _ => return Err(Error::IndexDamaged("unknown share state")),
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub ns: Namespace,
    pub id: ShareId,
    pub path: String,
    pub size: u64,
    pub state: State,
}

pub(super) struct Index {
    conn: Connection,
}

fn id_from(blob: Vec<u8>) -> Result<ShareId> {
    <[u8; 32]>::try_from(blob.as_slice())
        .map(ShareId)
        .map_err(|_| Error::IndexDamaged("share id of the wrong length"))
}

fn size_from(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::IndexDamaged("negative size"))
}

impl Index {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        crate::catalog::prepare_once(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                conn.execute_batch(
                    "BEGIN;
                     CREATE TABLE shares (
                         ns BLOB NOT NULL, id BLOB NOT NULL, path TEXT NOT NULL UNIQUE,
                         size INTEGER NOT NULL, state INTEGER NOT NULL, deleted_at INTEGER,
                         PRIMARY KEY (ns, id)) WITHOUT ROWID;
                     CREATE INDEX shares_state ON shares(state);
                     CREATE TABLE dirs (path TEXT PRIMARY KEY) WITHOUT ROWID;
                     PRAGMA user_version = 3;
                     COMMIT;",
                )?;
            }
            1 | 2 => {
                let held: i64 = conn.query_row("SELECT COUNT(*) FROM shares", [], |r| r.get(0))?;
                if held > 0 {
                    return Err(Error::ShareStoreOfFormat1 { shares: held });
                }
                let add_column = if version == 1 {
                    "ALTER TABLE shares ADD COLUMN deleted_at INTEGER;"
                } else {
                    ""
                };
                conn.execute_batch(&format!(
                    "BEGIN; {add_column} PRAGMA user_version = 3; COMMIT;"
                ))?;
            }
            SCHEMA_VERSION => {}
            _ => {
                return Err(Error::IndexDamaged(
                    "index written by a newer version of shard",
                ));
            }
        }
        Ok(Self { conn })
    }

    pub fn row(&self, ns: &Namespace, id: &ShareId) -> Result<Option<Row>> {
        self.conn
            .prepare_cached("SELECT path, size, state FROM shares WHERE ns = ?1 AND id = ?2")?
            .query_row(params![&ns.to_bytes()[..], &id.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?
            .map(|(path, size, state)| {
                Ok(Row {
                    ns: *ns,
                    id: *id,
                    path,
                    size: size_from(size)?,
                    state: State::from_i64(state)?,
                })
            })
            .transpose()
    }

    pub fn path_taken(&self, path: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM shares WHERE path = ?1")?
            .exists(params![path])?)
    }

    /// Inserts rows as pending, replacing any earlier row of the same share, in one transaction.
    pub fn insert_pending(&mut self, rows: &[Row]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                // An upsert on (ns, id) only: `INSERT OR REPLACE` would also silently drop
                // another share's row if a path ever collided.
                "INSERT INTO shares (ns, id, path, size, state) VALUES (?1, ?2, ?3, ?4, 0)
                 ON CONFLICT (ns, id) DO UPDATE SET path = excluded.path, size = excluded.size,
                     state = 0, deleted_at = NULL",
            )?;
            for row in rows {
                let size = i64::try_from(row.size).map_err(|_| Error::IndexDamaged("size"))?;
                stmt.execute(params![
                    &row.ns.to_bytes()[..],
                    &row.id.0[..],
                    row.path,
                    size
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn set_state(&mut self, items: &[(Namespace, ShareId)], state: State) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE shares SET state = ?3, deleted_at = NULL WHERE ns = ?1 AND id = ?2",
            )?;
            for (ns, id) in items {
                stmt.execute(params![&ns.to_bytes()[..], &id.0[..], state as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks shares deleted at `at` (they stay on disk through the grace period).
    pub fn set_deleted(&mut self, items: &[(Namespace, ShareId)], at: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE shares SET state = 4, deleted_at = ?3 WHERE ns = ?1 AND id = ?2",
            )?;
            for (ns, id) in items {
                stmt.execute(params![&ns.to_bytes()[..], &id.0[..], at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deleted shares, oldest deletion first: those deleted before `before` (all of them for
    /// `None`), at most `limit`.
    pub fn deleted(&self, before: Option<i64>, limit: usize) -> Result<Vec<Row>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows_where(
            "SELECT ns, id, path, size, state FROM shares
             WHERE state = 4 AND (?1 IS NULL OR deleted_at < ?1)
             ORDER BY deleted_at, ns, id LIMIT ?2",
            params![before, limit],
        )
    }

    /// Bytes of deleted shares (reclaimable at once when the store fills up).
    pub fn deleted_bytes(&self) -> Result<u64> {
        let bytes: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM shares WHERE state = 4",
            [],
            |r| r.get(0),
        )?;
        size_from(bytes)
    }

    /// Every namespace holding rows.
    pub fn namespaces(&self) -> Result<Vec<Namespace>> {
        let mut stmt = self.conn.prepare_cached("SELECT DISTINCT ns FROM shares")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|ns| {
                Namespace::from_bytes(&ns)
                    .ok_or(Error::IndexDamaged("namespace of the wrong length"))
            })
            .collect()
    }
    /// Re-files rows of `from` under `to`. A share `to` already holds stays in `from` (row and
    /// file together, so the index never loses track of a file).
    pub fn move_namespace(&mut self, from: &Namespace, to: &Namespace) -> Result<u64> {
        let moved = self.conn.execute(
            "UPDATE shares SET ns = ?2 WHERE ns = ?1 AND id NOT IN (SELECT id FROM shares WHERE ns = ?2)",
            params![&from.to_bytes()[..], &to.to_bytes()[..]],
        )?;
        Ok(moved as u64)
    }

    pub fn set_corrupt(
        &mut self,
        ns: &Namespace,
        id: &ShareId,
        quarantine_path: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE shares SET state = 3, path = ?3 WHERE ns = ?1 AND id = ?2",
            params![&ns.to_bytes()[..], &id.0[..], quarantine_path],
        )?;
        Ok(())
    }

    pub fn delete_rows(&mut self, items: &[(Namespace, ShareId)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM shares WHERE ns = ?1 AND id = ?2")?;
            for (ns, id) in items {
                stmt.execute(params![&ns.to_bytes()[..], &id.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn rows_where(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let raw = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        raw.into_iter()
            .map(|(ns, id, path, size, state)| {
                Ok(Row {
                    ns: Namespace::from_bytes(&ns)
                        .ok_or(Error::IndexDamaged("namespace of the wrong length"))?,
                    id: id_from(id)?,
                    path,
                    size: size_from(size)?,
                    state: State::from_i64(state)?,
                })
            })
            .collect()
    }

    pub fn pending(&self) -> Result<Vec<Row>> {
        self.rows_where(
            "SELECT ns, id, path, size, state FROM shares WHERE state = 0",
            [],
        )
    }

    /// Ids in `ns` with state ok after `after`, ascending.
    pub fn list(
        &self,
        ns: &Namespace,
        after: Option<&ShareId>,
        limit: usize,
    ) -> Result<Vec<ShareId>> {
        let after: &[u8] = after.map(|a| &a.0[..]).unwrap_or(&[]);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM shares WHERE ns = ?1 AND id > ?2 AND state = 1 ORDER BY id LIMIT ?3",
        )?;
        let ids = stmt
            .query_map(params![&ns.to_bytes()[..], after, limit], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ids.into_iter().map(id_from).collect()
    }

    /// Servable (namespace, id) pairs after `after`, in order.
    pub fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> Result<Vec<(Namespace, ShareId)>> {
        let (ns, id): (Vec<u8>, Vec<u8>) = after
            .map(|(ns, id)| (ns.to_bytes().to_vec(), id.0.to_vec()))
            .unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT ns, id FROM shares WHERE state = 1 AND (ns > ?1 OR (ns = ?1 AND id > ?2))
             ORDER BY ns, id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![ns, id, limit], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(ns, id)| {
                let ns = Namespace::from_bytes(&ns)
                    .ok_or(Error::IndexDamaged("namespace of the wrong length"))?;
                Ok((ns, id_from(id)?))
            })
            .collect()
    }

    /// Shares of `ns` in quarantine.
    pub fn quarantined(&self, ns: &Namespace) -> Result<Vec<ShareId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM shares WHERE ns = ?1 AND state = 3 ORDER BY id")?;
        let ids = stmt
            .query_map(params![&ns.to_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ids.into_iter().map(id_from).collect()
    }

    /// (bytes held by every row that has a file, servable shares).
    pub fn totals(&self) -> Result<(u64, u64)> {
        let (used, count): (i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(CASE WHEN state != 2 THEN size ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 1 THEN 1 ELSE 0 END), 0) FROM shares",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((size_from(used)?, size_from(count)?))
    }

    pub fn dirs(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path FROM dirs ORDER BY path")?;
        let dirs = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(dirs)
    }

    pub fn add_dir(&self, path: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO dirs (path) VALUES (?1)",
            params![path],
        )?;
        Ok(())
    }

    pub fn remove_dir(&self, path: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM dirs WHERE path = ?1", params![path])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_share_index_plans_without_bound_values() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.db")).unwrap();
        let qpsg = rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
        assert!(index.conn.db_config(qpsg).unwrap());
    }
}
