//! The owner's catalog: accounts, stored files and their versions, chunks, where every share
//! is, and the peers. One SQLite database (WAL, `synchronous = FULL`) on the owner's machine.
//!
//! Nothing in it names or sizes a file without the vault key: names and metadata are sealed
//! with the vault's catalog key, each file's chunk list too, and lookups by name go through an
//! HMAC index. What stays in the clear is what the node needs before an account is unlocked
//! (account names, wrapped keys, peers) and what placement and health need (which share of
//! which keyed chunk id sits on which peer, and whether it was acknowledged).

mod schema;
mod vault;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use shard_crypto::{KeyRecord, VaultKeys};
use shard_proto::{NodeId, ShareId};

pub use schema::SCHEMA_VERSION;
pub use vault::{
    AckedShare, BackupKind, BackupRecord, Encoding, FileEntry, FileId, FileKind, FileMeta,
    FileStamp, LiveBlob, NewFile, PackUsage, PackedBlob, Relocated, ShareRecord, ShareState,
    StampedEntry, StoredBlob, TrashedEntry, VaultCatalog,
};
pub use vault::{
    KeptHead, SNAPSHOT_VERSION, SnapshotFile, SnapshotImport, SnapshotItem, SnapshotReader,
    SnapshotShare, VaultSnapshot, VaultState,
};

use crate::{Error, Result};

/// An account's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub i64);

/// An account as stored: its name and wrapped vault key.
#[derive(Debug, Clone)]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Login name.
    pub name: String,
    /// The vault key, wrapped under the passphrase.
    pub key_record: KeyRecord,
    /// The node's administrator (its first account): pairs and unpairs nodes, adds accounts
    /// from the web UI.
    pub admin: bool,
}

/// A pinned peer: a node whose key was exchanged by pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// Its id (SHA-256 of its static key).
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Where it was last reachable.
    pub addrs: Vec<String>,
    /// When it was last seen, seconds since the epoch.
    pub last_seen: Option<i64>,
}

/// The catalog database. Safe to share between threads.
pub struct Catalog {
    conn: Mutex<Connection>,
}

/// Makes `conn` compile each cached statement once: room in the statement cache for every
/// statement a store prepares with `prepare_cached` (the catalog has about 55; rusqlite
/// keeps 16 by default), and SQLite's query planner stability guarantee. Without that,
/// SQLite marks a statement whose plan it estimated from a bound value (as it does for an
/// equality on a column no index covers) to be compiled again whenever its bindings are
/// cleared — which rusqlite does each time a cached statement is handed back — and a put of
/// 20 000 small files compiled its chunk lookup 20 000 times (a sixth of the owner's CPU,
/// profiled; `StatementStatus::RePrepare` counted one per run). With the guarantee on, the
/// planner never looks at bound values: a LIKE or GLOB with a bound pattern, a partial
/// index matched against a bound value, or ANALYZE statistics would be silently unused
/// (none is used today).
pub(crate) fn prepare_once(conn: &Connection) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(128);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl Catalog {
    /// Opens (creating and migrating as needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted rows are overwritten, not left in free pages: after a passphrase change the
        // old key record must not stay readable in the file (see `update_key_record`).
        conn.pragma_update(None, "secure_delete", "ON")?;
        // 32 MiB of page cache (default 2 MB): at 100 000 files the default made SQLite re-read
        // pages through the kernel for most statements (profiled: kernel copies on top).
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        prepare_once(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency (transactions); a panic elsewhere cannot leave the
        // connection half-updated.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates an account whose vault key is wrapped in `record`; the first account of the
    /// node is its administrator.
    pub fn create_account(&self, name: &str, record: &KeyRecord) -> Result<AccountId> {
        let conn = self.conn();
        let result = conn.execute(
            "INSERT INTO accounts (name, vault_id, key_record, created, admin)
             VALUES (?1, ?2, ?3, ?4, NOT EXISTS (SELECT 1 FROM accounts))",
            params![
                name,
                &record.vault_id().0[..],
                record.as_bytes(),
                unix_now()
            ],
        );
        match result {
            Ok(_) => Ok(AccountId(conn.last_insert_rowid())),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::AccountExists(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The account called `name`, if any.
    pub fn account(&self, name: &str) -> Result<Option<Account>> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, name, key_record, admin FROM accounts WHERE name = ?1",
                params![name],
                account_row,
            )
            .optional()?;
        row.map(account_of).transpose()
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, name, key_record, admin FROM accounts ORDER BY name")?;
        let rows = stmt
            .query_map([], account_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter().map(account_of).collect()
    }

    /// Whether the node has no account yet (its first one becomes the administrator).
    pub fn has_no_account(&self) -> Result<bool> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
        Ok(n == 0)
    }

    /// Replaces an account's key record (a passphrase change). The old record is gone from
    /// the database file and its free pages (`secure_delete`), and from its write-ahead log
    /// (checkpointed and truncated) when this returns `true`, so the old passphrase opens
    /// nothing left on disk. `false`: the change is made, but another connection kept the log
    /// from being emptied now (it will be at a later checkpoint).
    pub fn update_key_record(&self, account: AccountId, record: &KeyRecord) -> Result<bool> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE accounts SET key_record = ?2 WHERE id = ?1 AND vault_id = ?3",
            params![account.0, record.as_bytes(), &record.vault_id().0[..]],
        )?;
        if changed == 0 {
            return Err(Error::NoSuchAccount(format!("#{}", account.0)));
        }
        // The WAL still holds the page with the old record until a checkpoint copies the new
        // one over it; TRUNCATE then empties the log file. A reader holding an old snapshot
        // (for longer than the busy timeout) makes the checkpoint partial: say so rather than
        // claim it is gone.
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(busy == 0)
    }

    /// Deletes an account and everything the catalog knows of its files. When it was the
    /// administrator, the oldest remaining account becomes the administrator.
    pub fn delete_account(&self, account: AccountId) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM accounts WHERE id = ?1", params![account.0])?;
        tx.execute(
            "UPDATE accounts SET admin = 1 WHERE id = (SELECT MIN(id) FROM accounts)
               AND NOT EXISTS (SELECT 1 FROM accounts WHERE admin = 1)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Pins a peer (after pairing) or updates its name and addresses.
    pub fn upsert_peer(&self, peer: &PeerRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO peers (id, name, addrs, added, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, addrs = excluded.addrs,
                 last_seen = COALESCE(excluded.last_seen, last_seen)",
            params![
                &peer.id.0[..],
                peer.name,
                peer.addrs.join("\n"),
                unix_now(),
                peer.last_seen
            ],
        )?;
        Ok(())
    }

    /// Every pinned peer.
    pub fn peers(&self) -> Result<Vec<PeerRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, name, addrs, last_seen FROM peers ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, name, addrs, last_seen)| {
                Ok(PeerRecord {
                    id: NodeId(
                        <[u8; 32]>::try_from(id.as_slice())
                            .map_err(|_| Error::IndexDamaged("peer id of the wrong length"))?,
                    ),
                    name,
                    addrs: addrs
                        .split('\n')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect(),
                    last_seen,
                })
            })
            .collect()
    }

    /// Forgets a peer; true if it was pinned.
    pub fn remove_peer(&self, id: &NodeId) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM peers WHERE id = ?1", params![&id.0[..]])?
            > 0)
    }

    /// Accounts with shares recorded on `peer`, and how many.
    pub fn shares_on_peer(&self, peer: &NodeId) -> Result<Vec<(String, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT a.name, COUNT(*) FROM shares s JOIN accounts a ON a.id = s.account
             WHERE s.peer = ?1 GROUP BY a.name ORDER BY a.name",
        )?;
        let rows = stmt
            .query_map(params![&peer.0[..]], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(name, n)| (name, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Share deletions waiting to be sent to `peer` (any account): (account, vault, share).
    pub fn pending_deletions(&self, peer: &NodeId) -> Result<Vec<(AccountId, [u8; 16], ShareId)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT account, vault, share FROM deletions WHERE peer = ?1 AND done_at IS NULL",
        )?;
        let rows = stmt
            .query_map(params![&peer.0[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(account, vault, share)| {
                let vault = <[u8; 16]>::try_from(vault.as_slice())
                    .map_err(|_| Error::IndexDamaged("vault id of the wrong length"))?;
                let share = <[u8; 32]>::try_from(share.as_slice())
                    .map_err(|_| Error::IndexDamaged("share id of the wrong length"))?;
                Ok((AccountId(account), vault, ShareId(share)))
            })
            .collect()
    }

    /// Records that `peer` accepted these deletions (now): it keeps the shares through its
    /// grace period, and the catalog remembers them until [`Catalog::forget_deletions`].
    pub fn deletions_done(&self, peer: &NodeId, done: &[([u8; 16], ShareId)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = unix_now();
        for (vault, share) in done {
            tx.prepare_cached(
                "UPDATE deletions SET done_at = ?4 WHERE peer = ?1 AND vault = ?2 AND share = ?3",
            )?
            .execute(params![&peer.0[..], &vault[..], &share.0[..], now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets deletions that peers accepted before `before` (seconds since the epoch): their
    /// grace period is over. Returns how many.
    pub fn forget_deletions(&self, before: i64) -> Result<u64> {
        let n = self.conn().execute(
            "DELETE FROM deletions WHERE done_at IS NOT NULL AND done_at < ?1",
            params![before],
        )?;
        Ok(n as u64)
    }

    /// An account's deleted shares that peers still keep in their grace period: how many, and
    /// when the oldest was deleted (seconds since the epoch).
    pub fn deletions_in_grace(&self, account: AccountId) -> Result<(u64, Option<i64>)> {
        let (n, oldest): (i64, Option<i64>) = self.conn().query_row(
            "SELECT COUNT(*), MIN(done_at) FROM deletions WHERE account = ?1 AND done_at IS NOT NULL",
            params![account.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((u64::try_from(n).unwrap_or(0), oldest))
    }

    /// Remembers that `peers` still have to hand `account`'s vault over to this node (they
    /// were offline during its recovery), and which nodes held it before (`former`: what
    /// they stored moves in the hand-over).
    pub fn add_adoptions(
        &self,
        account: AccountId,
        peers: &[NodeId],
        former: &[NodeId],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for peer in peers {
            tx.prepare_cached("INSERT OR IGNORE INTO adoptions (account, peer) VALUES (?1, ?2)")?
                .execute(params![account.0, &peer.0[..]])?;
        }
        for node in former {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO former_owners (account, node) VALUES (?1, ?2)",
            )?
            .execute(params![account.0, &node.0[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The nodes that held `account`'s vault before its recovery here.
    pub fn former_owners(&self, account: AccountId) -> Result<Vec<NodeId>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT node FROM former_owners WHERE account = ?1")?;
        let rows = stmt
            .query_map(params![account.0], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|n| {
                <[u8; 32]>::try_from(n.as_slice())
                    .map(NodeId)
                    .map_err(|_| Error::IndexDamaged("node id of the wrong length"))
            })
            .collect()
    }

    /// Accounts whose vault `peer` still has to hand over.
    pub fn pending_adoptions(&self, peer: &NodeId) -> Result<Vec<AccountId>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT account FROM adoptions WHERE peer = ?1")?;
        let rows = stmt
            .query_map(params![&peer.0[..]], |r| r.get::<_, i64>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().map(AccountId).collect())
    }

    /// `peer` handed `account`'s vault over.
    pub fn adoption_done(&self, account: AccountId, peer: &NodeId) -> Result<()> {
        self.conn().execute(
            "DELETE FROM adoptions WHERE account = ?1 AND peer = ?2",
            params![account.0, &peer.0[..]],
        )?;
        Ok(())
    }

    /// Failed logins of an account so far and when the last one was (milliseconds since the
    /// epoch).
    pub fn login_failures(&self, account: AccountId) -> Result<(u32, Option<i64>)> {
        let (count, last): (i64, Option<i64>) = self.conn().query_row(
            "SELECT failed_logins, last_failure FROM accounts WHERE id = ?1",
            params![account.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((u32::try_from(count).unwrap_or(u32::MAX), last))
    }

    /// Counts a failed login (now).
    pub fn record_login_failure(&self, account: AccountId) -> Result<()> {
        self.conn().execute(
            "UPDATE accounts SET failed_logins = failed_logins + 1, last_failure = ?2 WHERE id = ?1",
            params![account.0, unix_now_ms()],
        )?;
        Ok(())
    }

    /// Moves the time of the last failed login to now (the end of a failed attempt, which was
    /// counted when it began), so the next delay runs from the answer, not the question.
    pub fn restamp_login_failure(&self, account: AccountId) -> Result<()> {
        self.conn().execute(
            "UPDATE accounts SET last_failure = ?2 WHERE id = ?1",
            params![account.0, unix_now_ms()],
        )?;
        Ok(())
    }

    /// Forgets failed logins (after a successful one).
    pub fn reset_login_failures(&self, account: AccountId) -> Result<()> {
        self.conn().execute(
            "UPDATE accounts SET failed_logins = 0, last_failure = NULL WHERE id = ?1",
            params![account.0],
        )?;
        Ok(())
    }

    /// How many backup jobs an account has: known without its keys (the rows are there to
    /// see), so a node can say that a locked account's backups wait.
    pub fn backup_job_count(&self, account: AccountId) -> Result<u64> {
        let count: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM backup_records WHERE account = ?1 AND kind = 0",
            [account.0],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Stored file versions of an account (visible or not), without needing its keys.
    pub fn file_count(&self, account: AccountId) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM files WHERE account = ?1",
            params![account.0],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The files of an unlocked account.
    pub fn vault<'a>(&'a self, account: AccountId, keys: &'a VaultKeys) -> VaultCatalog<'a> {
        VaultCatalog::new(self, account, keys)
    }
}

/// Milliseconds since the epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type AccountRow = (i64, String, Vec<u8>, bool);

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn account_of((id, name, record, admin): AccountRow) -> Result<Account> {
    Ok(Account {
        id: AccountId(id),
        name,
        key_record: KeyRecord::from_bytes(&record)?,
        admin,
    })
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A cached statement runs without being compiled again, whatever is bound to it: the
    /// chunk lookup a put runs once per chunk, as the catalog prepares it.
    #[test]
    fn cached_statements_are_compiled_once() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let sql = "SELECT p.id, b.at, c.k, c.n, c.share_len FROM blobs b
                   JOIN packs p ON p.no = b.pack
                   JOIN chunks c ON c.account = b.account AND c.id = p.id
                   WHERE substr(b.chunk, 1, 8) = substr(?2, 1, 8) AND b.chunk = ?2
                   AND b.account = ?1";
        let conn = catalog.conn();
        for i in 0u8..50 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let mut rows = stmt.query(rusqlite::params![1, vec![i; 32]]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::Run), 50);
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// The catalog's connection has the guarantee on.
    #[test]
    fn the_catalog_plans_without_bound_values() {
        use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG as QPSG;
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        assert!(catalog.conn().db_config(QPSG).unwrap());
        // (The share index and the head store are checked in their own tests.)
    }
}
