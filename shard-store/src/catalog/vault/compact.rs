//! Compaction's side of the catalog: which blobs the vault's files still use, how much of each
//! pack is dead, pointing files at the packs their blobs were copied to, and packs nothing uses.
//!
//! Nothing here holds the vault in memory: the count marks blob rows in the catalog a page of
//! manifests at a time, and a relocation reads and rewrites manifests a page at a time (inside
//! one transaction, so that a crash leaves every file pointing at the old packs or every file
//! at the new ones).

use std::collections::{HashMap, HashSet};

use rusqlite::params;
use shard_proto::{BLOB_OVERHEAD, BlobAt, ChunkId, ChunkRef, PackId};

use super::{FILE_TRASHED, FILE_VISIBLE, PAGE, ShareRecord, VaultCatalog, blob32, enc_key};
use crate::{Error, Result};

/// How much of one pack the vault's files use, at the last count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackUsage {
    /// The pack.
    pub pack: PackId,
    /// Its encoding's `k`.
    pub k: u8,
    /// Its encoding's `n`.
    pub n: u8,
    /// Its shares' length.
    pub share_len: u32,
    /// Blobs recorded in it.
    pub blobs: u64,
    /// Of those, the ones a visible file uses.
    pub live_blobs: u64,
    /// Sealed bytes of its blobs.
    pub bytes: u64,
    /// Sealed bytes of its live blobs.
    pub live_bytes: u64,
}

impl PackUsage {
    /// Sealed bytes of blobs no visible file uses.
    pub fn dead_bytes(&self) -> u64 {
        self.bytes.saturating_sub(self.live_bytes)
    }

    /// Dead bytes in hundredths of a percent of the blob bytes (0 for an empty record).
    pub fn dead_basis_points(&self) -> u64 {
        (self.dead_bytes() * 10_000)
            .checked_div(self.bytes)
            .unwrap_or(0)
    }
}

/// A blob a visible file uses, in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveBlob {
    /// The chunk it seals.
    pub chunk: ChunkId,
    /// Where it lies.
    pub at: BlobAt,
    /// The chunk's length.
    pub len: u32,
}

/// What [`VaultCatalog::relocate`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relocated {
    /// File versions whose chunk lists now point at the new packs.
    pub files: u64,
    /// Packs no file uses any more, removed.
    pub packs_freed: u64,
    /// Their shares, queued for deletion: the caller deletes them on their peers.
    pub freed: Vec<ShareRecord>,
}

/// A page of visible files: (id, name_mac, version, sealed manifest).
type Page = Vec<(i64, Vec<u8>, u32, Vec<u8>)>;

impl VaultCatalog<'_> {
    /// Visible files and those in the trash (whose blobs are kept: they can be restored) with
    /// an id above `after`, a page of them (through the (account, state)
    /// index, in id order: each page costs its own rows, not a scan of the vault).
    fn visible_page(&self, tx: &rusqlite::Transaction<'_>, after: i64) -> Result<Page> {
        let limit = i64::try_from(PAGE).unwrap_or(i64::MAX);
        Ok(tx
            .prepare_cached(
                "SELECT id, name_mac, version, manifest FROM files
                 WHERE account = ?1 AND state IN (?2, ?5) AND id > ?3 ORDER BY id LIMIT ?4",
            )?
            .query_map(
                params![self.account.0, FILE_VISIBLE, after, limit, FILE_TRASHED],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Counts which blobs the visible files use (marking each blob row live or dead) and
    /// returns the usage of every pack a file uses. Reads a page of manifests at a time, each
    /// page in its own transaction: the catalog is free for readers in between (the caller
    /// holds the vault's writer lock, so no file comes or goes meanwhile).
    pub fn count_pack_usage(&self) -> Result<Vec<PackUsage>> {
        self.catalog.conn().execute(
            // Through the vault's packs (the by-pack index), not a scan of every vault's blobs.
            "UPDATE blobs SET live = 0 WHERE pack IN (SELECT no FROM packs WHERE account = ?1)",
            params![self.account.0],
        )?;
        let mut after = i64::MIN;
        loop {
            let mut conn = self.catalog.conn();
            let tx = conn.transaction()?;
            let page = self.visible_page(&tx, after)?;
            let Some(last) = page.last().map(|row| row.0) else {
                break;
            };
            after = last;
            for (_, mac, version, sealed) in page {
                let manifest = self.open_manifest(&tx, mac, version, &sealed)?;
                for chunk in &manifest.chunks {
                    let Some(at) = chunk.pack else { continue };
                    tx.prepare_cached(
                        // `+pack`: found by the chunk, not by walking the pack's blobs.
                        "UPDATE blobs SET live = 1
                         WHERE substr(chunk, 1, 8) = substr(?2, 1, 8) AND chunk = ?2
                         AND +pack = (SELECT no FROM packs WHERE account = ?1 AND id = ?3)",
                    )?
                    .execute(params![
                        self.account.0,
                        &chunk.id.0[..],
                        &at.pack.0[..]
                    ])?;
                }
            }
            tx.commit()?;
        }
        let conn = self.catalog.conn();
        let overhead = i64::try_from(BLOB_OVERHEAD).unwrap_or(0);
        let rows = conn
            .prepare_cached(
                "SELECT p.id, c.k, c.n, c.share_len, COUNT(*), SUM(b.live),
                        SUM(b.len + ?2), SUM((b.len + ?2) * b.live)
                 FROM packs p JOIN blobs b ON b.pack = p.no
                 JOIN chunks c ON c.account = p.account AND c.id = p.id
                 WHERE p.account = ?1 AND c.refs > 0
                 GROUP BY p.no, c.k, c.n",
            )?
            .query_map(params![self.account.0, overhead], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(conn);
        let count = |v: i64| u64::try_from(v).map_err(|_| Error::IndexDamaged("negative count"));
        rows.into_iter()
            .map(
                |(pack, k, n, share_len, blobs, live_blobs, bytes, live_bytes)| {
                    Ok(PackUsage {
                        pack: PackId(blob32(pack)?),
                        k,
                        n,
                        share_len,
                        blobs: count(blobs)?,
                        live_blobs: count(live_blobs)?,
                        bytes: count(bytes)?,
                        live_bytes: count(live_bytes)?,
                    })
                },
            )
            .collect()
    }

    /// The blobs of `pack` a visible file used at the last [`VaultCatalog::count_pack_usage`],
    /// in the order they lie in the pack.
    pub fn live_blobs(&self, pack: &PackId) -> Result<Vec<LiveBlob>> {
        let conn = self.catalog.conn();
        let rows = conn
            .prepare_cached(
                "SELECT chunk, at, len FROM blobs
                 WHERE pack = (SELECT no FROM packs WHERE account = ?1 AND id = ?2)
                 AND live = 1 ORDER BY at",
            )?
            .query_map(params![self.account.0, &pack.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(conn);
        rows.into_iter()
            .map(|(chunk, offset, len)| {
                Ok(LiveBlob {
                    chunk: ChunkId(blob32(chunk)?),
                    at: BlobAt {
                        pack: *pack,
                        offset,
                    },
                    len,
                })
            })
            .collect()
    }

    /// Points every visible file's reference to a blob in `moves` — (chunk, the pack it lies
    /// in) → its copy — at the copy, in one transaction. Every share of every copy's pack must
    /// be recorded acknowledged, or nothing changes ([`Error::NotAcknowledged`]): an old pack
    /// is never given up for one that is not whole. Packs no file uses afterwards are removed
    /// and their shares queued for deletion (vault `vault`) and returned.
    pub fn relocate(
        &self,
        vault: &[u8; 16],
        moves: &HashMap<(ChunkId, PackId), ChunkRef>,
    ) -> Result<Relocated> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut checked = HashSet::new();
        for copy in moves.values() {
            if copy.pack.is_none() {
                return Err(Error::InvalidParameters("a blob's copy must lie in a pack"));
            }
            copy.validate()?;
            if checked.insert(enc_key(copy)) {
                let unacked = self.unacked(&tx, copy)?;
                if unacked > 0 {
                    return Err(Error::NotAcknowledged {
                        chunk: copy.id,
                        unacked,
                    });
                }
            }
        }
        let mut out = Relocated::default();
        let mut released = HashSet::new();
        let mut recorded = super::PackShares::new();
        let mut after = i64::MIN;
        loop {
            let page = self.visible_page(&tx, after)?;
            let Some(last) = page.last().map(|row| row.0) else {
                break;
            };
            after = last;
            for (id, mac, version, sealed) in page {
                let mut manifest = self.open_manifest(&tx, mac.clone(), version, &sealed)?;
                let before: HashSet<_> = manifest.chunks.iter().map(enc_key).collect();
                let mut moved = false;
                for chunk in &mut manifest.chunks {
                    let Some(at) = chunk.pack else { continue };
                    if let Some(copy) = moves.get(&(chunk.id, at.pack)) {
                        *chunk = copy.clone();
                        moved = true;
                    }
                }
                if !moved {
                    continue;
                }
                let after_move: HashSet<_> = manifest.chunks.iter().map(enc_key).collect();
                let mut added = HashSet::new();
                for chunk in &manifest.chunks {
                    let key = enc_key(chunk);
                    if !before.contains(&key) && added.insert(key) {
                        self.add_ref(&tx, chunk)?;
                    }
                }
                for key in before.difference(&after_move) {
                    self.drop_ref(&tx, *key)?;
                    released.insert(*key);
                }
                let resealed = self.seal_manifest(&tx, &mut recorded, &manifest, &mac, version)?;
                tx.prepare_cached("UPDATE files SET manifest = ?3 WHERE account = ?1 AND id = ?2")?
                    .execute(params![self.account.0, id, resealed])?;
                out.files += 1;
            }
        }
        let freed = self.free_encodings(&tx, vault, released)?;
        out.packs_freed = freed
            .iter()
            .map(|s| (s.chunk, s.k, s.n))
            .collect::<HashSet<_>>()
            .len() as u64;
        out.freed = freed;
        tx.commit()?;
        Ok(out)
    }

    /// Removes the packs (and any other encodings) no file uses — what a put or a prune leaves
    /// when it is stopped after some packs were acknowledged and before the files using them
    /// were recorded — and returns their shares, queued for deletion (vault `vault`). Only while
    /// no put of the vault runs (the caller holds its writer lock): a running put's packs are
    /// unused until its files commit.
    pub fn drop_unused(&self, vault: &[u8; 16]) -> Result<(u64, Vec<ShareRecord>)> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let unused = tx
            .prepare_cached("SELECT id, k, n FROM chunks WHERE account = ?1 AND refs <= 0")?
            .query_map(params![self.account.0], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, u8>(2)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(id, k, n)| Ok((ChunkId(blob32(id)?), k, n)))
            .collect::<Result<Vec<_>>>()?;
        let count = unused.len() as u64;
        let freed = self.free_encodings(&tx, vault, unused)?;
        tx.commit()?;
        Ok((count, freed))
    }

    /// Removes those of `encodings` no file uses (a prune's own copies, when its round
    /// failed before the files were pointed at them) and returns their shares, queued for
    /// deletion (vault `vault`). Encodings a file uses are left alone.
    pub fn drop_if_unused(
        &self,
        vault: &[u8; 16],
        encodings: &[(ChunkId, u8, u8)],
    ) -> Result<Vec<ShareRecord>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let freed = self.free_encodings(&tx, vault, encodings.iter().copied())?;
        tx.commit()?;
        Ok(freed)
    }
}
