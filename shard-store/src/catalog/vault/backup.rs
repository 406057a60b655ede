//! Backup jobs and their snapshots, as the catalog keeps them: sealed records whose contents
//! the engine (`shard-node`'s `backup` module) defines. The catalog knows a record's job (by
//! the name index key of its name), its kind and number, and nothing else; a record's two
//! sealed parts — a small `head` read when listing, a `body` read only when needed (a
//! snapshot's list of names) — are bound to their row, so rows cannot be swapped or renumbered
//! by whoever can write the catalog file. They travel in the catalog snapshot, so jobs and
//! their history come back with `shard recover`.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use shard_crypto::{open, seal, seal_in_place};
use zeroize::Zeroizing;

use super::VaultCatalog;
use crate::{Error, Result};

const HEAD_AAD: &[u8] = b"shard backup head v1";
const BODY_AAD: &[u8] = b"shard backup body v1";

/// What a backup record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupKind {
    /// A job: its name and rules (`no` is 0).
    Job,
    /// One of a job's snapshots.
    Snapshot,
}

impl BackupKind {
    fn code(self) -> i64 {
        match self {
            BackupKind::Job => 0,
            BackupKind::Snapshot => 1,
        }
    }
}

/// A backup record in plain: what a catalog snapshot carries and an import writes back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Job or snapshot.
    pub kind: BackupKind,
    /// The job's name.
    pub job: String,
    /// The snapshot's number (0 for a job).
    pub no: u32,
    /// The part read when listing.
    pub head: Vec<u8>,
    /// The part read when needed.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for BackupRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names of jobs and what they hold stay out of logs.
        f.debug_struct("BackupRecord")
            .field("kind", &self.kind)
            .field("no", &self.no)
            .field("head", &self.head.len())
            .field("body", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl VaultCatalog<'_> {
    fn backup_aad(&self, label: &[u8], kind: BackupKind, key: &[u8], no: u32) -> Vec<u8> {
        let mut aad = self.aad(label, key, no);
        aad.extend_from_slice(&kind.code().to_le_bytes());
        aad
    }

    /// Writes (or replaces) a backup record. The record is taken whole: its body (a
    /// snapshot's list of names, tens of MB at 10⁶ paths) is sealed where it lies, not copied.
    pub fn put_backup(&self, record: BackupRecord) -> Result<()> {
        let mac = self.name_mac(record.job.as_bytes());
        let key = mac.short();
        let head_plain = Zeroizing::new(
            postcard::to_stdvec(&(&record.job, &record.head))
                .map_err(|_| Error::InvalidParameters("a backup record does not serialize"))?,
        );
        let head = seal(
            &self.seal_key,
            &self.backup_aad(HEAD_AAD, record.kind, key, record.no),
            &head_plain,
        )?;
        let mut body = record.body;
        seal_in_place(
            &self.seal_key,
            &self.backup_aad(BODY_AAD, record.kind, key, record.no),
            &mut body,
        )?;
        self.catalog
            .conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO backup_records (account, kind, key, no, head, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.account.0,
                record.kind.code(),
                key,
                record.no,
                head,
                body
            ])?;
        Ok(())
    }

    fn open_head(
        &self,
        kind: BackupKind,
        key: &[u8],
        no: u32,
        sealed: &[u8],
    ) -> Result<(String, Vec<u8>)> {
        let plain = open(
            &self.seal_key,
            &self.backup_aad(HEAD_AAD, kind, key, no),
            sealed,
        )?;
        postcard::from_bytes::<(String, Vec<u8>)>(&plain)
            .map_err(|_| Error::IndexDamaged("a backup record does not decode"))
    }

    /// Every record of `kind` (of the job named `job` only, when given), heads only (bodies
    /// empty), by job and number.
    pub fn backup_heads(&self, kind: BackupKind, job: Option<&str>) -> Result<Vec<BackupRecord>> {
        let conn = self.catalog.conn();
        let mut rows: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
        match job {
            Some(job) => {
                let mac = self.name_mac(job.as_bytes());
                let mut stmt = conn.prepare_cached(
                    "SELECT key, no, head FROM backup_records
                     WHERE account = ?1 AND kind = ?2 AND key = ?3 ORDER BY no",
                )?;
                let mut q = stmt.query(params![self.account.0, kind.code(), mac.short()])?;
                while let Some(r) = q.next()? {
                    rows.push((r.get(0)?, r.get(1)?, r.get(2)?));
                }
            }
            None => {
                let mut stmt = conn.prepare_cached(
                    "SELECT key, no, head FROM backup_records
                     WHERE account = ?1 AND kind = ?2 ORDER BY key, no",
                )?;
                let mut q = stmt.query(params![self.account.0, kind.code()])?;
                while let Some(r) = q.next()? {
                    rows.push((r.get(0)?, r.get(1)?, r.get(2)?));
                }
            }
        }
        drop(conn);
        let mut out = Vec::with_capacity(rows.len());
        for (key, no, sealed) in rows {
            let (name, head) = self.open_head(kind, &key, no, &sealed)?;
            // A row found under the key of another name was moved there.
            if self.name_mac(name.as_bytes()).short() != key.as_slice() {
                return Err(Error::IndexDamaged("a backup record is under another name"));
            }
            out.push(BackupRecord {
                kind,
                job: name,
                no,
                head,
                body: Vec::new(),
            });
        }
        out.sort_by(|a, b| a.job.cmp(&b.job).then(a.no.cmp(&b.no)));
        Ok(out)
    }

    /// The body of one record, when it exists. Opened from SQLite's own copy of the row: a
    /// snapshot's body (tens of MB at 10⁶ paths) is not copied out first.
    pub fn backup_body(&self, kind: BackupKind, job: &str, no: u32) -> Result<Option<Vec<u8>>> {
        let mac = self.name_mac(job.as_bytes());
        let aad = self.backup_aad(BODY_AAD, kind, mac.short(), no);
        let opened = self
            .catalog
            .conn()
            .prepare_cached(
                "SELECT body FROM backup_records
                 WHERE account = ?1 AND kind = ?2 AND key = ?3 AND no = ?4",
            )?
            .query_row(params![self.account.0, kind.code(), mac.short(), no], |r| {
                Ok(open(&self.seal_key, &aad, r.get_ref(0)?.as_blob()?))
            })
            .optional()?;
        Ok(opened.transpose()?)
    }

    /// Removes records of `job`: of `kind` numbered `nos` (every one of that kind when `nos`
    /// is none). Returns how many went.
    pub fn remove_backups(
        &self,
        kind: BackupKind,
        job: &str,
        nos: Option<&[u32]>,
    ) -> Result<usize> {
        let mac = self.name_mac(job.as_bytes());
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut removed = 0;
        match nos {
            None => {
                removed += tx
                    .prepare_cached(
                        "DELETE FROM backup_records WHERE account = ?1 AND kind = ?2 AND key = ?3",
                    )?
                    .execute(params![self.account.0, kind.code(), mac.short()])?;
            }
            Some(nos) => {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM backup_records
                     WHERE account = ?1 AND kind = ?2 AND key = ?3 AND no = ?4",
                )?;
                for no in nos {
                    removed +=
                        stmt.execute(params![self.account.0, kind.code(), mac.short(), no])?;
                }
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Calls `each` with every backup record whole (jobs first), one body in memory at a
    /// time: what a catalog snapshot carries.
    pub fn for_each_backup(&self, mut each: impl FnMut(BackupRecord) -> Result<()>) -> Result<()> {
        for kind in [BackupKind::Job, BackupKind::Snapshot] {
            for mut record in self.backup_heads(kind, None)? {
                record.body = self
                    .backup_body(kind, &record.job, record.no)?
                    .ok_or(Error::IndexDamaged("a backup record vanished while read"))?;
                each(record)?;
            }
        }
        Ok(())
    }
}
