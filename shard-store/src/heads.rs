//! Catalog heads a node keeps for the vaults whose shares it holds: the newest pointer to each
//! vault's sealed catalog snapshot, which is how a new machine finds its way back.
//!
//! A head is opaque here (sealed with the vault key). Who may store one is decided before it
//! gets here — only a request signed by the vault authority (see `shard-proto`'s `VaultOp`),
//! from a node that keeps shares of the vault — and what this store enforces on top is:
//! - the node that stored the first head of a vault is its owner of record: the node whose
//!   namespace holds the vault's shares;
//! - the owner may replace it only by a newer one (a higher sequence number): an older head
//!   is refused with [`Error::StaleHead`] and nothing is overwritten;
//! - another node becomes the owner only by a hand-over ([`HeadStore::adopt`], signed too):
//!   a recovery on a new machine.
//!
//! A replaced head is kept in the vault's history until the grace period of deleted shares ends
//! ([`HeadStore::expire`]): every head replaced in the last hour (at most
//! [`HISTORY_RECENT`]), and before that the last of each day. If whoever held the unlocked
//! vault removed everything, the owner can still recover the catalog as it was before, from
//! shares the peers keep through the same grace period — and a flood of changes can push out
//! only the last hour's heads, not yesterday's.
//!
//! SQLite, `synchronous = FULL`, schema version 2: `heads(vault PRIMARY KEY, owner, seq,
//! head)`, `history(vault, seq, head, replaced_at, PRIMARY KEY(vault, seq))`. (Version 1 also
//! kept a verifier of a bearer secret; its heads belong to vaults of an earlier format and are
//! dropped.)

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use shard_proto::NodeId;

use crate::{Error, Result};

const SCHEMA_VERSION: i64 = 2;
/// Heads replaced in the last hour kept per vault (older ones: the last of each day).
pub const HISTORY_RECENT: usize = 32;
/// A replaced head counts as recent this long, seconds.
const RECENT_SECS: i64 = 3600;

/// A stored head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    /// The node that may replace it.
    pub owner: NodeId,
    /// Its sequence number.
    pub seq: u64,
    /// The sealed head.
    pub head: Vec<u8>,
}

/// The heads of the vaults this node keeps shares for.
pub struct HeadStore {
    conn: Mutex<Connection>,
}

fn blob32(v: &[u8], what: &'static str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(v).map_err(|_| Error::IndexDamaged(what))
}

impl HeadStore {
    /// Opens (or creates) the head store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        crate::catalog::prepare_once(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::IndexDamaged(
                "head store written by a newer version of shard",
            ));
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(
                "BEGIN;
                 DROP TABLE IF EXISTS heads;
                 DROP TABLE IF EXISTS history;
                 CREATE TABLE heads (
                     vault BLOB PRIMARY KEY, owner BLOB NOT NULL, seq INTEGER NOT NULL,
                     head BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE history (
                     vault BLOB NOT NULL, seq INTEGER NOT NULL, head BLOB NOT NULL,
                     replaced_at INTEGER NOT NULL, PRIMARY KEY (vault, seq)) WITHOUT ROWID;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest head of `vault`, if any.
    pub fn get(&self, vault: &[u8; 16]) -> Result<Option<StoredHead>> {
        let row = self
            .conn()
            .query_row(
                "SELECT owner, seq, head FROM heads WHERE vault = ?1",
                params![&vault[..]],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(owner, seq, head)| {
            Ok(StoredHead {
                owner: NodeId(blob32(&owner, "head owner")?),
                seq: u64::try_from(seq).map_err(|_| Error::IndexDamaged("head sequence"))?,
                head,
            })
        })
        .transpose()
    }

    /// Stores a head from `from` (see the module rules; the caller checked the signature).
    pub fn put(&self, from: &NodeId, vault: &[u8; 16], seq: u64, head: &[u8]) -> Result<()> {
        let seq_sql =
            i64::try_from(seq).map_err(|_| Error::InvalidParameters("head sequence too large"))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<(Vec<u8>, i64)> = tx
            .query_row(
                "SELECT owner, seq FROM heads WHERE vault = ?1",
                params![&vault[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((owner, have)) = current {
            if owner.as_slice() != from.0.as_slice() {
                return Err(Error::NotHeadOwner);
            }
            if seq_sql <= have {
                return Err(Error::StaleHead {
                    have: u64::try_from(have).unwrap_or(0),
                    got: seq,
                });
            }
            // The head being replaced joins the history, which is thinned: the last hour's
            // heads (at most HISTORY_RECENT of them), and before that the last of each day.
            let now = crate::catalog::unix_now();
            tx.execute(
                "INSERT OR REPLACE INTO history (vault, seq, head, replaced_at)
                 SELECT vault, seq, head, ?2 FROM heads WHERE vault = ?1",
                params![&vault[..], now],
            )?;
            let recent = now - RECENT_SECS;
            tx.execute(
                "DELETE FROM history WHERE vault = ?1 AND replaced_at >= ?2 AND seq NOT IN
                     (SELECT seq FROM history WHERE vault = ?1 AND replaced_at >= ?2
                      ORDER BY seq DESC LIMIT ?3)",
                params![
                    &vault[..],
                    recent,
                    i64::try_from(HISTORY_RECENT).unwrap_or(32)
                ],
            )?;
            tx.execute(
                "DELETE FROM history WHERE vault = ?1 AND replaced_at < ?2 AND seq NOT IN
                     (SELECT MAX(seq) FROM history WHERE vault = ?1 AND replaced_at < ?2
                      GROUP BY replaced_at / 86400)",
                params![&vault[..], recent],
            )?;
        }
        tx.execute(
            "INSERT INTO heads (vault, owner, seq, head) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (vault) DO UPDATE SET seq = excluded.seq, head = excluded.head",
            params![&vault[..], &from.0[..], seq_sql, head],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Makes `to` the owner of record of `vault`'s head, if one is kept (a signed hand-over);
    /// returns the previous owner.
    pub fn adopt(&self, to: &NodeId, vault: &[u8; 16]) -> Result<Option<NodeId>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let previous: Option<Vec<u8>> = tx
            .query_row(
                "SELECT owner FROM heads WHERE vault = ?1",
                params![&vault[..]],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "UPDATE heads SET owner = ?2 WHERE vault = ?1",
            params![&vault[..], &to.0[..]],
        )?;
        tx.commit()?;
        previous
            .map(|p| Ok(NodeId(blob32(&p, "head owner")?)))
            .transpose()
    }

    /// The heads of `vault`, newest first — the current one, then the replaced ones from the
    /// history — with a sequence number below `before` (all for `None`), at most `limit`.
    pub fn list(
        &self,
        vault: &[u8; 16],
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let conn = self.conn();
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let mut stmt = conn.prepare_cached(
            "SELECT seq, head FROM (
                 SELECT seq, head FROM heads WHERE vault = ?1
                 UNION ALL SELECT seq, head FROM history WHERE vault = ?1)
             WHERE seq < ?3 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(
                params![&vault[..], i64::try_from(limit).unwrap_or(i64::MAX), before],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, head)| {
                Ok((
                    u64::try_from(seq).map_err(|_| Error::IndexDamaged("head sequence"))?,
                    head,
                ))
            })
            .collect()
    }

    /// Forgets replaced heads replaced before `before` (seconds since the epoch); returns how
    /// many.
    pub fn expire(&self, before: i64) -> Result<u64> {
        let n = self.conn().execute(
            "DELETE FROM history WHERE replaced_at < ?1",
            params![before],
        )?;
        Ok(n as u64)
    }

    /// Bytes of the heads `owner` stored here, kept or replaced (they count against its use of
    /// this node).
    pub fn bytes_of(&self, owner: &NodeId) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(LENGTH(head)), 0) FROM heads WHERE owner = ?1",
            params![&owner.0[..]],
            |r| r.get(0),
        )?;
        let replaced: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(LENGTH(h.head)), 0) FROM history h
             JOIN heads c ON c.vault = h.vault WHERE c.owner = ?1",
            params![&owner.0[..]],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n.saturating_add(replaced)).unwrap_or(0))
    }

    /// Bytes of every head kept, current and replaced.
    pub fn total_bytes(&self) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT (SELECT COALESCE(SUM(LENGTH(head)), 0) FROM heads)
                  + (SELECT COALESCE(SUM(LENGTH(head)), 0) FROM history)",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: [u8; 16] = [1; 16];

    fn store() -> (tempfile::TempDir, HeadStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = HeadStore::open(&dir.path().join("heads.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn the_head_store_plans_without_bound_values() {
        let (_d, s) = store();
        let conn = s.conn.lock().unwrap();
        let qpsg = rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
        assert!(conn.db_config(qpsg).unwrap());
    }

    #[test]
    fn the_owner_replaces_only_with_newer_heads() {
        let (_d, s) = store();
        let owner = NodeId([1; 32]);
        s.put(&owner, &V, 1, b"one").unwrap();
        s.put(&owner, &V, 3, b"three").unwrap();
        assert!(matches!(
            s.put(&owner, &V, 2, b"two"),
            Err(Error::StaleHead { have: 3, got: 2 })
        ));
        assert!(matches!(
            s.put(&owner, &V, 3, b"again"),
            Err(Error::StaleHead { .. })
        ));
        assert_eq!(s.get(&V).unwrap().unwrap().head, b"three");
        // The replaced head stays in the history, newest first after the current one.
        assert_eq!(
            s.list(&V, None, 10).unwrap(),
            vec![(3, b"three".to_vec()), (1, b"one".to_vec())]
        );
        assert_eq!(s.list(&V, None, 1).unwrap().len(), 1);
        assert_eq!(s.list(&V, Some(3), 10).unwrap(), vec![(1, b"one".to_vec())]);
        assert_eq!(s.bytes_of(&owner).unwrap(), 8);
        assert_eq!(s.total_bytes().unwrap(), 8);
        assert_eq!(s.expire(0).unwrap(), 0);
        assert_eq!(s.expire(i64::MAX).unwrap(), 1);
        assert_eq!(s.list(&V, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_flood_of_heads_pushes_out_the_last_hour_only_not_earlier_days() {
        let (_d, s) = store();
        let owner = NodeId([1; 32]);
        // Yesterday's last head and an earlier one of that day, already in the history.
        s.put(&owner, &V, 1, b"yesterday morning").unwrap();
        s.put(&owner, &V, 2, b"yesterday evening").unwrap();
        s.put(&owner, &V, 3, b"today").unwrap();
        let day = 86_400;
        let yesterday = crate::catalog::unix_now() - day;
        s.conn()
            .execute(
                "UPDATE history SET replaced_at = ?1 + seq WHERE seq IN (1, 2)",
                params![yesterday],
            )
            .unwrap();
        // A flood today: only the last hour's are kept, at most HISTORY_RECENT of them; of
        // yesterday only its last head stays.
        for seq in 4..(4 + HISTORY_RECENT as u64 + 20) {
            s.put(&owner, &V, seq, &seq.to_le_bytes()).unwrap();
        }
        let listed: Vec<u64> = s
            .list(&V, None, 1000)
            .unwrap()
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(listed.len(), 1 + HISTORY_RECENT + 1, "{listed:?}");
        assert!(
            listed.contains(&2),
            "yesterday's last head was pushed out: {listed:?}"
        );
        assert!(!listed.contains(&1), "{listed:?}");
    }

    #[test]
    fn another_node_takes_over_only_by_a_hand_over() {
        let (_d, s) = store();
        let (owner, other) = (NodeId([1; 32]), NodeId([2; 32]));
        s.put(&owner, &V, 5, b"head").unwrap();
        assert!(matches!(
            s.put(&other, &V, 99, b"forged"),
            Err(Error::NotHeadOwner)
        ));
        assert_eq!(s.get(&V).unwrap().unwrap().owner, owner);
        assert_eq!(s.adopt(&other, &V).unwrap(), Some(owner));
        assert!(matches!(
            s.put(&owner, &V, 100, b"old owner"),
            Err(Error::NotHeadOwner)
        ));
        s.put(&other, &V, 6, b"new owner").unwrap();
        assert_eq!(s.adopt(&other, &[9; 16]).unwrap(), None);
    }

    #[test]
    fn heads_of_the_earlier_format_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heads.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE heads (vault BLOB PRIMARY KEY, owner BLOB NOT NULL, seq INTEGER NOT NULL,
                 head BLOB NOT NULL, verifier BLOB NOT NULL) WITHOUT ROWID;
             INSERT INTO heads VALUES (x'01', x'02', 1, x'03', x'04');",
        )
        .unwrap();
        drop(conn);
        let s = HeadStore::open(&path).unwrap();
        assert_eq!(s.total_bytes().unwrap(), 0);
        s.put(&NodeId([1; 32]), &V, 1, b"x").unwrap();
    }
}
