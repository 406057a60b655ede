//! Catalog heads a node keeps for the vaults whose shares it holds: the newest pointer to each
//! vault's sealed catalog snapshot, which is how a new machine finds its way back.
//!
//! A head is opaque here (sealed with the vault key); what this store enforces is who may
//! replace it:
//! - the first node to store a head for a vault becomes its owner of record;
//! - the owner may replace it only by a newer one (a higher sequence number): an older head
//!   is refused with [`Error::StaleHead`] and nothing is overwritten;
//! - another node may take over (recovery on a new machine) only by revealing the secret whose
//!   SHA-256 the current head carries as its verifier — a secret derived from the vault key,
//!   never sent before, and replaced by a new verifier at once.
//!
//! SQLite, `synchronous = FULL`: `heads(vault PRIMARY KEY, owner, seq, head, verifier)`.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use shard_proto::NodeId;

use crate::{Error, Result};

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
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS heads (
                 vault BLOB PRIMARY KEY, owner BLOB NOT NULL, seq INTEGER NOT NULL,
                 head BLOB NOT NULL, verifier BLOB NOT NULL) WITHOUT ROWID;",
        )?;
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

    /// Stores a head from `from` (see the module rules).
    pub fn put(
        &self,
        from: &NodeId,
        vault: &[u8; 16],
        seq: u64,
        head: &[u8],
        verifier: &[u8; 32],
    ) -> Result<()> {
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
        }
        tx.execute(
            "INSERT INTO heads (vault, owner, seq, head, verifier) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (vault) DO UPDATE SET seq = excluded.seq, head = excluded.head, verifier = excluded.verifier",
            params![&vault[..], &from.0[..], seq_sql, head, &verifier[..]],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The owner of record of `vault`, if `proof` is the secret behind its current head's
    /// verifier ([`Error::BadAdoptionProof`] if not). Nothing changes.
    pub fn check_adoption(&self, vault: &[u8; 16], proof: &[u8; 32]) -> Result<NodeId> {
        verify_proof(&self.conn(), vault, proof)
    }

    /// Hands `vault` over to `to`, if `proof` is the secret behind the current head's verifier;
    /// `next_verifier` guards the next hand-over. Returns the previous owner.
    pub fn adopt(
        &self,
        to: &NodeId,
        vault: &[u8; 16],
        proof: &[u8; 32],
        next_verifier: &[u8; 32],
    ) -> Result<NodeId> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let previous = verify_proof(&tx, vault, proof)?;
        tx.execute(
            "UPDATE heads SET owner = ?2, verifier = ?3 WHERE vault = ?1",
            params![&vault[..], &to.0[..], &next_verifier[..]],
        )?;
        tx.commit()?;
        Ok(previous)
    }
}

/// The owner of record of `vault` if SHA-256(`proof`) is its head's verifier.
fn verify_proof(conn: &Connection, vault: &[u8; 16], proof: &[u8; 32]) -> Result<NodeId> {
    let current: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT owner, verifier FROM heads WHERE vault = ?1",
            params![&vault[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((owner, verifier)) = current else {
        return Err(Error::NoSuchFile("a catalog head for this vault".into()));
    };
    let expected = blob32(&verifier, "head verifier")?;
    if !shard_crypto::ct_eq(&shard_crypto::sha256(proof), &expected) {
        return Err(Error::BadAdoptionProof);
    }
    Ok(NodeId(blob32(&owner, "head owner")?))
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
    fn the_owner_replaces_only_with_newer_heads() {
        let (_d, s) = store();
        let owner = NodeId([1; 32]);
        s.put(&owner, &V, 1, b"one", &[0; 32]).unwrap();
        s.put(&owner, &V, 3, b"three", &[0; 32]).unwrap();
        assert!(matches!(
            s.put(&owner, &V, 2, b"two", &[0; 32]),
            Err(Error::StaleHead { have: 3, got: 2 })
        ));
        assert!(matches!(
            s.put(&owner, &V, 3, b"again", &[0; 32]),
            Err(Error::StaleHead { .. })
        ));
        assert_eq!(s.get(&V).unwrap().unwrap().head, b"three");
    }

    #[test]
    fn another_node_needs_the_proof() {
        let (_d, s) = store();
        let (owner, other) = (NodeId([1; 32]), NodeId([2; 32]));
        let secret = [7u8; 32];
        s.put(&owner, &V, 5, b"head", &shard_crypto::sha256(&secret))
            .unwrap();
        // Without the proof: refused, nothing changes.
        assert!(matches!(
            s.put(&other, &V, 99, b"forged", &[0; 32]),
            Err(Error::NotHeadOwner)
        ));
        assert!(matches!(
            s.adopt(&other, &V, &[8; 32], &[0; 32]),
            Err(Error::BadAdoptionProof)
        ));
        assert_eq!(s.get(&V).unwrap().unwrap().owner, owner);
        // With it: the vault moves, and the old owner is out.
        let next = shard_crypto::sha256(&[9u8; 32]);
        assert_eq!(s.adopt(&other, &V, &secret, &next).unwrap(), owner);
        assert!(matches!(
            s.put(&owner, &V, 100, b"old owner", &[0; 32]),
            Err(Error::NotHeadOwner)
        ));
        s.put(&other, &V, 6, b"new owner", &next).unwrap();
        // The revealed secret is spent.
        assert!(matches!(
            s.adopt(&owner, &V, &secret, &[0; 32]),
            Err(Error::BadAdoptionProof)
        ));
        assert!(matches!(
            s.adopt(&other, &[9; 16], &secret, &[0; 32]),
            Err(Error::NoSuchFile(_))
        ));
    }
}
