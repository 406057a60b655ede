//! One unlocked vault's view of the catalog: its files, versions, chunks and shares.
//!
//! Every write comes in batches (one transaction, one sync), because a tree of twenty thousand
//! small files must not cost forty thousand fsyncs.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use shard_crypto::{Label, SecretKey, VaultKeys, hmac_sha256, open, seal};
use shard_proto::{BlobAt, ChunkId, ChunkRef, CompactManifest, Manifest, NodeId, PackId, ShareId};

use super::{AccountId, Catalog, unix_now};

mod backup;
mod compact;
mod snapshot;
mod trash;
use crate::{Error, Result};
pub use backup::{BackupKind, BackupRecord};
pub use compact::{LiveBlob, PackUsage, Relocated};
pub use snapshot::{
    SNAPSHOT_VERSION, SnapshotFile, SnapshotImport, SnapshotItem, SnapshotReader, SnapshotShare,
    VaultSnapshot,
};
pub use trash::TrashedEntry;

const META_AAD: &[u8] = b"shard catalog meta v1";
const MANIFEST_AAD: &[u8] = b"shard catalog manifest v1";

/// A stored file version's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub i64);

/// What a catalog entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file (its content is the manifest's chunks).
    File,
    /// A folder (kept so empty folders come back).
    Dir,
    /// A symbolic link, stored as a link.
    Symlink,
}

/// A file's metadata; sealed in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Path in the vault, as bytes (any bytes a file system allows).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// File, folder or link.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nanos: u32,
    /// Unix mode bits.
    pub mode: u32,
    /// Target of a symbolic link.
    pub link_target: Option<serde_bytes::ByteBuf>,
}

/// What a file was on its file system when a version was read from it, besides [`FileMeta`]:
/// with the size and modification time, what tells a later put that the file has not changed
/// and need not be read again (restic's rule: size, mtime, ctime and inode). Sealed with the
/// metadata; not part of a catalog snapshot (inodes mean nothing on another machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Status-change time, seconds since the epoch (moves with every write, chmod, rename).
    pub ctime: i64,
    /// Nanoseconds of the status-change time.
    pub ctime_nanos: u32,
    /// The inode number (a file replaced by another of the same size and times differs here).
    pub inode: u64,
}

/// A stored file version with its [`FileStamp`] (none if it was recorded without one).
pub type StampedEntry = (FileEntry, Option<FileStamp>);

/// A new file version for [`VaultCatalog::begin_stamped`].
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Its metadata.
    pub meta: FileMeta,
    /// Where it came from on this machine, if from a file system.
    pub stamp: Option<FileStamp>,
    /// Its chunks.
    pub manifest: Manifest,
}

/// A file version as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Row id.
    pub id: FileId,
    /// Version number of this name, from 1.
    pub version: u32,
    /// When it was stored, seconds since the epoch.
    pub stored_at: i64,
    /// The unsealed metadata.
    pub meta: FileMeta,
}

/// Where a share is and what we know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// Sent, not acknowledged yet.
    Pending,
    /// Acknowledged: on the peer's disk.
    Acked,
    /// The peer no longer has it.
    Missing,
    /// The peer has it but it failed verification.
    Bad,
}

impl ShareState {
    fn code(self) -> i64 {
        match self {
            ShareState::Pending => 0,
            ShareState::Acked => 1,
            ShareState::Missing => 2,
            ShareState::Bad => 3,
        }
    }

    fn from_code(code: i64) -> Result<Self> {
        Ok(match code {
            0 => ShareState::Pending,
            1 => ShareState::Acked,
            2 => ShareState::Missing,
            3 => ShareState::Bad,
            _ => return Err(Error::IndexDamaged("unknown share state in the catalog")),
        })
    }
}

/// One share of a chunk, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// The share's id.
    pub id: ShareId,
    /// The chunk it belongs to.
    pub chunk: ChunkId,
    /// The `k` of the chunk's encoding this share is part of.
    pub k: u8,
    /// The `n` of that encoding.
    pub n: u8,
    /// Its index among the encoding's `n` shares.
    pub index: u8,
    /// The peer holding it.
    pub peer: NodeId,
    /// What we know.
    pub state: ShareState,
}

/// A share a peer acknowledged: what [`VaultCatalog::record_acks`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedShare {
    /// The chunk.
    pub chunk: ChunkId,
    /// The chunk's `k`.
    pub k: u8,
    /// The chunk's `n`.
    pub n: u8,
    /// The chunk's share length.
    pub share_len: u32,
    /// The share's index.
    pub index: u8,
    /// The share.
    pub share: ShareId,
    /// The peer that acknowledged it.
    pub peer: NodeId,
}

/// One stored encoding of a chunk (`k`-of-`n`), as the catalog records it. A chunk may have
/// several (stored again with another redundancy); each keeps its own shares, and none is ever
/// changed in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Payload length of each share.
    pub share_len: u32,
    /// The shares recorded for it, by index (some may be missing, pending or bad).
    pub shares: Vec<ShareRecord>,
}

/// A copy of a chunk as a blob in a pack: where, and the pack's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The pack and the blob's offset in it.
    pub at: BlobAt,
    /// The pack's coding and shares.
    pub encoding: Encoding,
}

/// A blob as [`VaultCatalog::record_acks_and_blobs`] records it: the chunk, where it lies,
/// and the chunk's length.
pub type PackedBlob = (ChunkId, BlobAt, u32);

/// Bytes of the name index's key a row holds since catalog version 8: the first 16 of the
/// name's HMAC (2⁻¹²⁸ a pair of names to collide, and lookups still compare the names), not
/// all 32, which with the index over them were 35 bytes of every stored file.
const NAME_MAC_LEN: usize = 16;

/// A name's HMAC under the vault's name-index key: rows written now hold its first
/// [`NAME_MAC_LEN`] bytes, rows written before catalog version 8 all of it, and a lookup by
/// name asks for either.
struct NameMac([u8; 32]);

impl NameMac {
    /// What a row written now holds.
    fn short(&self) -> &[u8] {
        self.0.get(..NAME_MAC_LEN).unwrap_or(&self.0)
    }

    /// What a row written before catalog version 8 holds.
    fn long(&self) -> &[u8] {
        &self.0
    }

    /// Whether a row's name index key is this name's, in either length.
    fn is(&self, row: &[u8]) -> bool {
        row == self.short() || row == self.long()
    }
}

/// A row's name index key, checked to be of one of the two lengths ever written.
fn name_mac_of_row(mac: &[u8]) -> Result<&[u8]> {
    if mac.len() == NAME_MAC_LEN || mac.len() == 32 {
        Ok(mac)
    } else {
        Err(Error::IndexDamaged("name index key of the wrong length"))
    }
}

/// The packs a transaction has put on (or checked against) their records: share length and
/// share ids by encoding.
type PackShares = HashMap<(ChunkId, u8, u8), (u32, Vec<ShareId>)>;

/// Why a chunk list is refused whose pack has other shares on record.
const OTHER_SHARES: &str = "a chunk list names other shares for a pack than the pack's record";

/// A file row as its manifest is opened from: name MAC, version, sealed manifest.
type ManifestRow = (Vec<u8>, u32, Vec<u8>);

/// Records that `chunk` lies at `at` (once: a blob recorded before is left as it is). Blob rows
/// name their pack by its number in `packs` (made here if new) and are found by the chunk id's
/// first 8 bytes, then the whole id (the catalog's schema, version 8). The `+` keeps SQLite
/// off the by-pack index, which it prefers without statistics and which would walk every blob
/// of the pack for each one recorded (measured: recording 10⁵ files 4.3 s → 9.4 s).
fn insert_blob(
    tx: &Transaction<'_>,
    account: AccountId,
    chunk: &ChunkId,
    at: &BlobAt,
    len: u32,
) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO packs (account, id) VALUES (?1, ?2)")?
        .execute(params![account.0, &at.pack.0[..]])?;
    let Some(pack) = tx
        .prepare_cached("SELECT no FROM packs WHERE account = ?1 AND id = ?2")?
        .query_row(params![account.0, &at.pack.0[..]], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(());
    };
    // Looked up, then inserted: one `INSERT … SELECT … WHERE NOT EXISTS` on the same table
    // makes SQLite stage the rows in a temporary table on every call (a put calls this once
    // per blob).
    let known = tx
        .prepare_cached(
            "SELECT 1 FROM blobs WHERE substr(chunk, 1, 8) = substr(?1, 1, 8)
             AND chunk = ?1 AND +pack = ?2",
        )?
        .exists(params![&chunk.0[..], pack])?;
    if !known {
        tx.prepare_cached(
            "INSERT INTO blobs (account, chunk, pack, at, len) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![account.0, &chunk.0[..], pack, at.offset, len])?;
    }
    Ok(())
}

/// A vault's snapshot bookkeeping (see the catalog schema, version 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultState {
    /// Sequence number of the newest catalog head written.
    pub seq: u64,
    /// The newest snapshot's location record, sealed by the caller.
    pub snapshot: Option<Vec<u8>>,
}

/// An earlier catalog head kept for peers that have not got a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptHead {
    /// Its sequence number.
    pub seq: u64,
    /// The sealed head.
    pub head: Vec<u8>,
    /// The peers that took it; `None` when not known.
    pub told: Option<Vec<NodeId>>,
}

fn ids_blob(ids: &[NodeId]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.0).collect()
}

/// Node ids stored one after another (a partial id at the end, which this build never writes,
/// is left out).
fn blob_ids(blob: &[u8]) -> Vec<NodeId> {
    blob.chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .map(NodeId)
        .collect()
}

/// An unlocked vault's files. Obtained from [`Catalog::vault`].
pub struct VaultCatalog<'a> {
    catalog: &'a Catalog,
    account: AccountId,
    seal_key: SecretKey,
    name_key: SecretKey,
}

const FILE_PENDING: i64 = 0;
const FILE_VISIBLE: i64 = 1;
/// In the trash: hidden, but its chunks still counted and kept (schema version 11).
const FILE_TRASHED: i64 = 3;

/// The key of the encoding that holds a chunk: (chunk or pack, k, n).
fn enc_key(chunk: &ChunkRef) -> (ChunkId, u8, u8) {
    (chunk.encoding(), chunk.k, chunk.n)
}

fn blob32(v: Vec<u8>) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| Error::IndexDamaged("id of the wrong length"))
}

/// Rows read per page by the `for_each_*` scans (the LIMIT in their queries).
const PAGE: usize = 1024;

/// Column `i` of `row` as a 32-byte id, read in place (no allocation per row).
fn id32(row: &rusqlite::Row<'_>, i: usize) -> Result<[u8; 32]> {
    let blob = row.get_ref(i)?.as_blob().map_err(rusqlite::Error::from)?;
    <[u8; 32]>::try_from(blob).map_err(|_| Error::IndexDamaged("id of the wrong length"))
}

impl<'a> VaultCatalog<'a> {
    pub(super) fn new(catalog: &'a Catalog, account: AccountId, keys: &VaultKeys) -> Self {
        Self {
            catalog,
            account,
            seal_key: keys.subkey(Label::Catalog),
            name_key: keys.subkey(Label::NameIndex),
        }
    }

    /// The account this view belongs to.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The name index's key for `name`: the first [`NAME_MAC_LEN`] bytes of its HMAC under the
    /// vault's name-index key (rows written before catalog version 8 hold all 32).
    fn name_mac(&self, name: &[u8]) -> NameMac {
        NameMac(hmac_sha256(&self.name_key, name))
    }

    fn aad(&self, label: &[u8], name_mac: &[u8], version: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(label.len() + 8 + 32 + 4);
        aad.extend_from_slice(label);
        aad.extend_from_slice(&self.account.0.to_le_bytes());
        aad.extend_from_slice(name_mac);
        aad.extend_from_slice(&version.to_le_bytes());
        aad
    }

    fn seal_meta(
        &self,
        meta: &FileMeta,
        stored_at: i64,
        stamp: Option<&FileStamp>,
        name_mac: &[u8],
        version: u32,
    ) -> Result<Vec<u8>> {
        let plain = postcard::to_stdvec(&(meta, stored_at, stamp))
            .map_err(|_| Error::InvalidParameters("file metadata does not serialize"))?;
        Ok(seal(
            &self.seal_key,
            &self.aad(META_AAD, name_mac, version),
            &plain,
        )?)
    }

    fn open_meta(&self, sealed: &[u8], name_mac: &[u8], version: u32) -> Result<(FileMeta, i64)> {
        self.open_stamped(sealed, name_mac, version)
            .map(|(meta, at, _)| (meta, at))
    }

    /// The metadata, when it was stored and the file's stamp. Versions sealed before stamps
    /// existed (metadata and time only) have none.
    fn open_stamped(
        &self,
        sealed: &[u8],
        name_mac: &[u8],
        version: u32,
    ) -> Result<(FileMeta, i64, Option<FileStamp>)> {
        let plain = open(
            &self.seal_key,
            &self.aad(META_AAD, name_mac, version),
            sealed,
        )?;
        postcard::from_bytes::<(FileMeta, i64, Option<FileStamp>)>(&plain)
            .or_else(|_| postcard::from_bytes::<(FileMeta, i64)>(&plain).map(|(m, t)| (m, t, None)))
            .map_err(|_| Error::IndexDamaged("file metadata does not decode"))
    }

    /// Records new versions of files whose shares are about to be sent; they stay invisible
    /// until [`VaultCatalog::commit_files`]. One transaction for the whole batch.
    pub fn begin_files(&self, files: &[(FileMeta, Manifest)]) -> Result<Vec<FileEntry>> {
        self.begin(files.iter().map(|(meta, manifest)| (meta, None, manifest)))
    }

    /// [`VaultCatalog::begin_files`], with each file's [`FileStamp`] (what lets the next put
    /// skip it when it has not changed).
    pub fn begin_stamped(&self, files: &[NewFile]) -> Result<Vec<FileEntry>> {
        self.begin(
            files
                .iter()
                .map(|f| (&f.meta, f.stamp.as_ref(), &f.manifest)),
        )
    }

    /// Both of the above, without copying what they are given.
    fn begin<'f>(
        &self,
        files: impl ExactSizeIterator<Item = (&'f FileMeta, Option<&'f FileStamp>, &'f Manifest)>,
    ) -> Result<Vec<FileEntry>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(files.len());
        let now = unix_now();
        let mut recorded = PackShares::new();
        for (meta, stamp, manifest) in files {
            let mac = self.name_mac(&meta.name);
            // One index probe per length: `name_mac IN (…)` would build a temporary table
            // for its two values in every call (a put calls this once per file).
            let last: Option<i64> = tx
                .prepare_cached(
                    "SELECT max(
                         ifnull((SELECT MAX(version) FROM files
                                 WHERE account = ?1 AND name_mac = ?2), 0),
                         ifnull((SELECT MAX(version) FROM files
                                 WHERE account = ?1 AND name_mac = ?3), 0))",
                )?
                .query_row(params![self.account.0, mac.short(), mac.long()], |r| {
                    r.get(0)
                })?;
            let mac = mac.short();
            let version = u32::try_from(last.unwrap_or(0) + 1)
                .map_err(|_| Error::InvalidParameters("too many versions"))?;
            let sealed_meta = self.seal_meta(meta, now, stamp, mac, version)?;
            let sealed_manifest = self.seal_manifest(&tx, &mut recorded, manifest, mac, version)?;
            tx.prepare_cached(
                "INSERT INTO files (account, name_mac, version, meta, manifest, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.account.0,
                mac,
                version,
                sealed_meta,
                sealed_manifest,
                FILE_PENDING
            ])?;
            out.push(FileEntry {
                id: FileId(tx.last_insert_rowid()),
                version,
                stored_at: now,
                meta: meta.clone(),
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records chunks and where their shares are going (`peers[i]` gets share `i`), as pending.
    /// Shares already recorded are left as they are (dedup, resume).
    pub fn record_shares(&self, chunks: &[(&ChunkRef, &[NodeId])]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        for (chunk, peers) in chunks {
            chunk.validate()?;
            if peers.len() != chunk.shares.len() {
                return Err(Error::InvalidParameters("one peer per share is needed"));
            }
            tx.prepare_cached(
                "INSERT OR IGNORE INTO chunks (account, id, k, n, share_len) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![self.account.0, &chunk.encoding().0[..], chunk.k, chunk.n, chunk.share_len])?;
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO shares (id, account, chunk, k, n, idx, peer, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
            )?;
            for (index, (share, peer)) in (0u8..).zip(chunk.shares.iter().zip(peers.iter())) {
                stmt.execute(params![
                    &share.0[..],
                    self.account.0,
                    &chunk.encoding().0[..],
                    chunk.k,
                    chunk.n,
                    index,
                    &peer.0[..]
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records acknowledged shares (and their chunks' encodings), in one transaction. A share
    /// recorded before is moved to the peer given, acknowledged.
    pub fn record_acks(&self, acks: &[AckedShare]) -> Result<()> {
        self.record_acks_and_blobs(acks, &[])
    }

    /// Records acknowledged shares and where blobs lie in the packs they complete (each with
    /// its chunk's length), in one transaction (a crash never leaves a pack acknowledged whose
    /// blobs nobody can find).
    pub fn record_acks_and_blobs(&self, acks: &[AckedShare], blobs: &[PackedBlob]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        for (chunk, at, len) in blobs {
            insert_blob(&tx, self.account, chunk, at, *len)?;
        }
        for ack in acks {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO chunks (account, id, k, n, share_len) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![self.account.0, &ack.chunk.0[..], ack.k, ack.n, ack.share_len])?;
            tx.prepare_cached(
                "INSERT INTO shares (id, account, chunk, k, n, idx, peer, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)
                 ON CONFLICT (id) DO UPDATE SET peer = excluded.peer, state = 1",
            )?
            .execute(params![
                &ack.share.0[..],
                self.account.0,
                &ack.chunk.0[..],
                ack.k,
                ack.n,
                ack.index,
                &ack.peer.0[..]
            ])?;
            // Stored again where an earlier removal queued its deletion: that deletion must
            // never reach the peer now (it would delete the share this ack is for).
            tx.prepare_cached("DELETE FROM deletions WHERE peer = ?1 AND share = ?2")?
                .execute(params![&ack.peer.0[..], &ack.share.0[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every encoding of `chunk` the catalog records, with its shares by index.
    pub fn encodings(&self, chunk: &ChunkId) -> Result<Vec<Encoding>> {
        let conn = self.catalog.conn();
        let rows = conn
            .prepare_cached("SELECT k, n, share_len FROM chunks WHERE account = ?1 AND id = ?2")?
            .query_map(params![self.account.0, &chunk.0[..]], |r| {
                Ok((r.get::<_, u8>(0)?, r.get::<_, u8>(1)?, r.get::<_, u32>(2)?))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(conn);
        rows.into_iter()
            .map(|(k, n, share_len)| {
                Ok(Encoding {
                    k,
                    n,
                    share_len,
                    shares: self.encoding_shares(chunk, k, n)?,
                })
            })
            .collect()
    }

    /// The recorded shares of one encoding of a chunk, by index.
    pub fn encoding_shares(&self, chunk: &ChunkId, k: u8, n: u8) -> Result<Vec<ShareRecord>> {
        let conn = self.catalog.conn();
        // Ordered here, not by SQLite, which would sort a handful of rows in a temporary
        // b-tree on every call.
        let mut stmt = conn.prepare_cached(
            "SELECT id, idx, peer, state FROM shares
             WHERE account = ?1 AND chunk = ?2 AND k = ?3 AND n = ?4",
        )?;
        let mut rows = stmt
            .query_map(params![self.account.0, &chunk.0[..], k, n], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.sort_by_key(|r| r.1);
        rows.into_iter()
            .map(|(id, idx, peer, state)| {
                Ok(ShareRecord {
                    id: ShareId(blob32(id)?),
                    chunk: *chunk,
                    k,
                    n,
                    index: u8::try_from(idx).map_err(|_| Error::IndexDamaged("share index"))?,
                    peer: NodeId(blob32(peer)?),
                    state: ShareState::from_code(state)?,
                })
            })
            .collect()
    }

    /// Every pack the catalog records `chunk` in, with that pack's encoding and shares.
    pub fn blob_copies(&self, chunk: &ChunkId) -> Result<Vec<StoredBlob>> {
        let conn = self.catalog.conn();
        let rows = conn
            .prepare_cached(
                "SELECT p.id, b.at, c.k, c.n, c.share_len FROM blobs b
                 JOIN packs p ON p.no = b.pack
                 JOIN chunks c ON c.account = b.account AND c.id = p.id
                 WHERE substr(b.chunk, 1, 8) = substr(?2, 1, 8) AND b.chunk = ?2
                 AND b.account = ?1",
            )?
            .query_map(params![self.account.0, &chunk.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, u8>(3)?,
                    r.get::<_, u32>(4)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(conn);
        rows.into_iter()
            .map(|(pack, offset, k, n, share_len)| {
                let pack = PackId(blob32(pack)?);
                Ok(StoredBlob {
                    at: BlobAt { pack, offset },
                    encoding: Encoding {
                        k,
                        n,
                        share_len,
                        shares: self.encoding_shares(&ChunkId(pack.0), k, n)?,
                    },
                })
            })
            .collect()
    }

    /// What the catalog records of each of `ids` (ids it does not know are left out): where a
    /// manifest's shares are is looked up by their ids, never by chunk, so a share of another
    /// encoding can never stand in for one the manifest lists.
    pub fn locate(&self, ids: &[ShareId]) -> Result<HashMap<ShareId, ShareRecord>> {
        let mut conn = self.catalog.conn();
        // One read transaction for all the lookups: each statement on its own takes and
        // releases the file lock (two fcntl calls), which was most of the time of a put that
        // found 20 000 files unchanged.
        let tx = conn.transaction()?;
        let mut stmt = tx.prepare_cached(
            "SELECT chunk, k, n, idx, peer, state FROM shares WHERE account = ?1 AND id = ?2",
        )?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row(params![self.account.0, &id.0[..]], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, u8>(1)?,
                        r.get::<_, u8>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .optional()?;
            if let Some((chunk, k, n, idx, peer, state)) = row {
                out.insert(
                    *id,
                    ShareRecord {
                        id: *id,
                        chunk: ChunkId(blob32(chunk)?),
                        k,
                        n,
                        index: u8::try_from(idx).map_err(|_| Error::IndexDamaged("share index"))?,
                        peer: NodeId(blob32(peer)?),
                        state: ShareState::from_code(state)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Removes file versions (visible, pending or in the trash). Chunk encodings no version uses any more are removed too,
    /// and their shares are returned: the caller deletes them on their peers. In the same
    /// transaction each of those shares is queued for deletion (vault `vault`), so that a crash
    /// before the peers are told leaves a queue to finish, not shares nobody knows about; the
    /// caller marks each deletion done ([`Catalog::deletions_done`]) once its peer did it.
    pub fn delete_files(&self, vault: &[u8; 16], files: &[FileId]) -> Result<Vec<ShareRecord>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut released = Vec::new();
        for file in files {
            let state: Option<i64> = tx
                .prepare_cached("SELECT state FROM files WHERE account = ?1 AND id = ?2")?
                .query_row(params![self.account.0, file.0], |r| r.get(0))
                .optional()?;
            let Some(state) = state else { continue };
            // A version in the trash still counts its chunks (it can be restored).
            if state == FILE_VISIBLE || state == FILE_TRASHED {
                let manifest = self.manifest_in(&tx, *file)?;
                let mut seen = std::collections::HashSet::new();
                for chunk in manifest.chunks.iter().filter(|c| seen.insert(enc_key(c))) {
                    self.drop_ref(&tx, enc_key(chunk))?;
                    released.push(enc_key(chunk));
                }
            }
            tx.prepare_cached("DELETE FROM files WHERE account = ?1 AND id = ?2")?
                .execute(params![self.account.0, file.0])?;
        }
        let freed = self.free_encodings(&tx, vault, released)?;
        tx.commit()?;
        Ok(freed)
    }

    /// Removes, in `tx`, each of `encodings` no visible file uses any more (refs at 0): its
    /// shares are queued for deletion on their peers (vault `vault`) and returned, its record
    /// and (for a pack) its blobs go. The one way an encoding leaves the catalog: `rm` and
    /// prune both come here.
    fn free_encodings(
        &self,
        tx: &Transaction<'_>,
        vault: &[u8; 16],
        encodings: impl IntoIterator<Item = (ChunkId, u8, u8)>,
    ) -> Result<Vec<ShareRecord>> {
        let mut freed = Vec::new();
        for (chunk, k, n) in encodings {
            let refs: Option<i64> = tx
                .prepare_cached(
                    "SELECT refs FROM chunks WHERE account = ?1 AND id = ?2 AND k = ?3 AND n = ?4",
                )?
                .query_row(params![self.account.0, &chunk.0[..], k, n], |r| r.get(0))
                .optional()?;
            if refs.is_some_and(|r| r <= 0) {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, idx, peer, state FROM shares
                     WHERE account = ?1 AND chunk = ?2 AND k = ?3 AND n = ?4",
                )?;
                let rows = stmt
                    .query_map(params![self.account.0, &chunk.0[..], k, n], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                for (id, idx, peer, state) in rows {
                    tx.prepare_cached(
                        "INSERT INTO deletions (account, peer, vault, share) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (peer, vault, share) DO UPDATE SET done_at = NULL",
                    )?
                    .execute(params![self.account.0, &peer, &vault[..], &id])?;
                    freed.push(ShareRecord {
                        id: ShareId(blob32(id)?),
                        chunk,
                        k,
                        n,
                        index: u8::try_from(idx).map_err(|_| Error::IndexDamaged("share index"))?,
                        peer: NodeId(blob32(peer)?),
                        state: ShareState::from_code(state)?,
                    });
                }
                tx.prepare_cached(
                    "DELETE FROM shares WHERE account = ?1 AND chunk = ?2 AND k = ?3 AND n = ?4",
                )?
                .execute(params![self.account.0, &chunk.0[..], k, n])?;
                tx.prepare_cached(
                    "DELETE FROM chunks WHERE account = ?1 AND id = ?2 AND k = ?3 AND n = ?4",
                )?
                .execute(params![self.account.0, &chunk.0[..], k, n])?;
                // A pack no file uses any more: its blobs are no source for dedup.
                // (Its rows in `blobs` go with its number.)
                tx.prepare_cached("DELETE FROM packs WHERE account = ?1 AND id = ?2")?
                    .execute(params![self.account.0, &chunk.0[..]])?;
            }
        }
        Ok(freed)
    }

    /// Queues share deletions for peers that could not be reached.
    pub fn queue_deletions(&self, vault: &[u8; 16], shares: &[(NodeId, ShareId)]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        for (peer, share) in shares {
            tx.prepare_cached(
                "INSERT INTO deletions (account, peer, vault, share) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (peer, vault, share) DO UPDATE SET done_at = NULL",
            )?
            .execute(params![
                self.account.0,
                &peer.0[..],
                &vault[..],
                &share.0[..]
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets the state of shares (e.g. acknowledged), in one transaction.
    pub fn set_share_states(&self, shares: &[(ShareId, ShareState)]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE shares SET state = ?3 WHERE account = ?1 AND id = ?2")?;
            for (id, state) in shares {
                stmt.execute(params![self.account.0, &id.0[..], state.code()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Moves a share to another peer (after a repair placed it there), state pending.
    pub fn move_share(&self, id: &ShareId, peer: &NodeId) -> Result<()> {
        self.catalog.conn().execute(
            "UPDATE shares SET peer = ?3, state = 0 WHERE account = ?1 AND id = ?2",
            params![self.account.0, &id.0[..], &peer.0[..]],
        )?;
        Ok(())
    }

    /// Shares of the vault per holder and state: (peer, state, count). Cheap: the automatic
    /// repair looks at it often.
    pub fn holders(&self) -> Result<Vec<(NodeId, ShareState, u64)>> {
        let conn = self.catalog.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT peer, state, COUNT(*) FROM shares WHERE account = ?1 GROUP BY peer, state",
        )?;
        let rows = stmt
            .query_map(params![self.account.0], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(peer, state, n)| {
                Ok((
                    NodeId(blob32(peer)?),
                    ShareState::from_code(state)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// How many of `ids` are shares of this vault's files.
    pub fn known_shares(&self, ids: &[ShareId]) -> Result<usize> {
        let conn = self.catalog.conn();
        let mut stmt =
            conn.prepare_cached("SELECT COUNT(*) FROM shares WHERE account = ?1 AND id = ?2")?;
        let mut known = 0;
        for id in ids {
            let n: i64 = stmt.query_row(params![self.account.0, &id.0[..]], |r| r.get(0))?;
            known += usize::from(n > 0);
        }
        Ok(known)
    }

    /// Every recorded share of the vault (for `check` and `repair`), in one query.
    pub fn all_shares(&self) -> Result<Vec<ShareRecord>> {
        let mut out = Vec::new();
        self.for_each_share(|r| out.push(r))?;
        Ok(out)
    }

    /// Calls `each` with every recorded share of the vault (for `check`), read a page of
    /// 1 024 rows at a time: nothing else is collected, so what the caller keeps is all this
    /// costs, and the catalog is free for others between pages (and for `each`).
    pub fn for_each_share(&self, mut each: impl FnMut(ShareRecord)) -> Result<()> {
        let mut after = [0u8; 32];
        let mut first = true;
        loop {
            let page: Vec<ShareRecord> = {
                let conn = self.catalog.conn();
                // Two statements, not `(first OR id > ?)`, and `+account` so that the
                // primary key, not the (account, chunk) index, is walked: otherwise SQLite
                // cannot seek to `after` and every page is a scan and a sort of the vault
                // (measured: `check` of 10⁵ files 5 s → 155 s).
                let mut stmt = if first {
                    conn.prepare_cached(
                        "SELECT id, chunk, k, n, idx, peer, state FROM shares
                         WHERE +account = ?1 AND ?2 = ?2 ORDER BY id LIMIT 1024",
                    )?
                } else {
                    conn.prepare_cached(
                        "SELECT id, chunk, k, n, idx, peer, state FROM shares
                         WHERE id > ?2 AND +account = ?1 ORDER BY id LIMIT 1024",
                    )?
                };
                let mut rows = stmt.query(params![self.account.0, &after[..]])?;
                let mut page = Vec::with_capacity(PAGE);
                while let Some(r) = rows.next()? {
                    page.push(ShareRecord {
                        id: ShareId(id32(r, 0)?),
                        chunk: ChunkId(id32(r, 1)?),
                        k: r.get(2)?,
                        n: r.get(3)?,
                        index: u8::try_from(r.get::<_, i64>(4)?)
                            .map_err(|_| Error::IndexDamaged("share index"))?,
                        peer: NodeId(id32(r, 5)?),
                        state: ShareState::from_code(r.get(6)?)?,
                    });
                }
                page
            };
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id.0;
            first = false;
            let full = page.len() == PAGE;
            page.into_iter().for_each(&mut each);
            if !full {
                return Ok(());
            }
        }
    }

    /// Makes pending files visible, all in one transaction — but only if every share id each
    /// one's manifest lists is recorded as acknowledged, for that chunk, encoding and index;
    /// otherwise nothing changes and the first chunk still waiting is named. (Counting the
    /// acknowledged shares of a chunk is not enough: shares of another encoding of the same
    /// chunk would pass for the ones the manifest names.)
    pub fn commit_files(&self, files: &[FileId]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        for file in files {
            let manifest = self.manifest_in(&tx, *file)?;
            let mut seen = std::collections::HashSet::new();
            for chunk in &manifest.chunks {
                if !seen.insert(enc_key(chunk)) {
                    continue;
                }
                let unacked = self.unacked(&tx, chunk)?;
                if unacked > 0 {
                    return Err(Error::NotAcknowledged {
                        chunk: chunk.id,
                        unacked,
                    });
                }
                self.add_ref(&tx, chunk)?;
            }
            tx.prepare_cached("UPDATE files SET state = ?3 WHERE account = ?1 AND id = ?2")?
                .execute(params![self.account.0, file.0, FILE_VISIBLE])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many of the share ids `chunk` lists are not recorded as acknowledged for that very
    /// encoding and index (counting a chunk's acknowledged shares is not enough: shares of
    /// another encoding of the same chunk would pass for the ones listed).
    fn unacked(&self, tx: &Transaction<'_>, chunk: &ChunkRef) -> Result<u64> {
        let mut unacked = 0u64;
        for (index, share) in (0u8..).zip(&chunk.shares) {
            let row = tx
                .prepare_cached(
                    "SELECT chunk, k, n, idx, state FROM shares WHERE account = ?1 AND id = ?2",
                )?
                .query_row(params![self.account.0, &share.0[..]], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, u8>(1)?,
                        r.get::<_, u8>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            let acknowledged = row.is_some_and(|(c, k, n, idx, state)| {
                c.as_slice() == chunk.encoding().0.as_slice()
                    && (k, n) == (chunk.k, chunk.n)
                    && idx == i64::from(index)
                    && state == ShareState::Acked.code()
            });
            unacked += u64::from(!acknowledged);
        }
        Ok(unacked)
    }

    /// One more visible file uses the encoding holding `chunk` (its record made if new).
    fn add_ref(&self, tx: &Transaction<'_>, chunk: &ChunkRef) -> Result<()> {
        let (id, k, n) = enc_key(chunk);
        tx.prepare_cached(
            "INSERT OR IGNORE INTO chunks (account, id, k, n, share_len) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![self.account.0, &id.0[..], k, n, chunk.share_len])?;
        tx.prepare_cached(
            "UPDATE chunks SET refs = refs + 1 WHERE account = ?1 AND id = ?2 AND k = ?3 AND n = ?4",
        )?
        .execute(params![self.account.0, &id.0[..], k, n])?;
        Ok(())
    }

    /// One visible file fewer uses encoding `(id, k, n)` ([`Self::free_encodings`] removes it
    /// once none does).
    fn drop_ref(&self, tx: &Transaction<'_>, (id, k, n): (ChunkId, u8, u8)) -> Result<()> {
        tx.prepare_cached(
            "UPDATE chunks SET refs = refs - 1 WHERE account = ?1 AND id = ?2 AND k = ?3 AND n = ?4",
        )?
        .execute(params![self.account.0, &id.0[..], k, n])?;
        Ok(())
    }

    /// Seals a file version's chunk list as the catalog keeps it (version 4: a blob names its
    /// pack, whose share ids go on the pack's record, once, in `tx`). `recorded`: the packs
    /// `tx` has recorded or checked so far, so that a batch of files in one pack costs one
    /// look at its record, not one per file (each file's list is still compared with it).
    fn seal_manifest(
        &self,
        tx: &Transaction<'_>,
        recorded: &mut PackShares,
        manifest: &Manifest,
        mac: &[u8],
        version: u32,
    ) -> Result<Vec<u8>> {
        for chunk in manifest.chunks.iter().filter(|c| c.pack.is_some()) {
            match recorded.get(&enc_key(chunk)) {
                Some((share_len, shares)) => {
                    chunk.validate()?;
                    if *share_len != chunk.share_len || *shares != chunk.shares {
                        return Err(Error::InvalidParameters(OTHER_SHARES));
                    }
                }
                None => {
                    self.record_pack_shares(tx, chunk)?;
                    recorded.insert(enc_key(chunk), (chunk.share_len, chunk.shares.clone()));
                }
            }
        }
        Ok(seal(
            &self.seal_key,
            &self.aad(MANIFEST_AAD, mac, version),
            &manifest.to_compact_bytes(),
        )?)
    }

    /// Puts the share ids of the pack `chunk` lies in on the pack's record (made if new) —
    /// or, when the record has them, checks that they are the same: a pack's shares never
    /// change (its id is random, its encoding fixed), so a manifest that says otherwise is
    /// refused rather than sealed with a list it would not get back.
    fn record_pack_shares(&self, tx: &Transaction<'_>, chunk: &ChunkRef) -> Result<()> {
        chunk.validate()?;
        let (id, k, n) = enc_key(chunk);
        let ids: Vec<u8> = chunk.shares.iter().flat_map(|s| s.0).collect();
        tx.prepare_cached(
            "INSERT INTO chunks (account, id, k, n, share_len, share_ids)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account, id, k, n) DO UPDATE SET share_ids = excluded.share_ids
             WHERE share_ids IS NULL",
        )?
        .execute(params![
            self.account.0,
            &id.0[..],
            k,
            n,
            chunk.share_len,
            ids
        ])?;
        let recorded = self.pack_record(tx, &id, k, n)?;
        if recorded != Some((chunk.share_len, Some(ids))) {
            return Err(Error::InvalidParameters(OTHER_SHARES));
        }
        Ok(())
    }

    /// The record of encoding (`id`, `k`, `n`): its share length and share ids (`None` where
    /// they were never recorded), if there is one.
    fn pack_record(
        &self,
        conn: &rusqlite::Connection,
        id: &ChunkId,
        k: u8,
        n: u8,
    ) -> Result<Option<(u32, Option<Vec<u8>>)>> {
        Ok(conn
            .prepare_cached(
                "SELECT share_len, share_ids FROM chunks
                 WHERE account = ?1 AND id = ?2 AND k = ?3 AND n = ?4",
            )?
            .query_row(params![self.account.0, &id.0[..], k, n], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// The share ids of pack `pack` (encoding `k`-of-`n`, shares of `share_len`), from its
    /// record: what a manifest of version 4 leaves out.
    fn pack_shares(
        &self,
        conn: &rusqlite::Connection,
        pack: &PackId,
        k: u8,
        n: u8,
        share_len: u32,
    ) -> Result<Vec<ShareId>> {
        let Some((recorded_len, Some(ids))) = self.pack_record(conn, &ChunkId(pack.0), k, n)?
        else {
            return Err(Error::UnknownPack(*pack));
        };
        if recorded_len != share_len || ids.len() != usize::from(n) * 32 {
            return Err(Error::IndexDamaged(
                "a pack's record does not match the chunk list naming it",
            ));
        }
        Ok(ids
            .chunks_exact(32)
            .filter_map(|id| <[u8; 32]>::try_from(id).ok().map(ShareId))
            .collect())
    }

    /// A manifest as the catalog seals it (bound to the account, name and version), with its
    /// packs' share ids from their records (`conn`: the connection or transaction in hand).
    /// Manifests of version 3, sealed before version 8 of the catalog, list them themselves.
    pub(super) fn open_manifest(
        &self,
        conn: &rusqlite::Connection,
        mac: Vec<u8>,
        version: u32,
        sealed: &[u8],
    ) -> Result<Manifest> {
        let plain = zeroize::Zeroizing::new(open(
            &self.seal_key,
            &self.aad(MANIFEST_AAD, name_mac_of_row(&mac)?, version),
            sealed,
        )?);
        if plain.first() == Some(&3) {
            return Ok(Manifest::from_bytes(&plain)?);
        }
        CompactManifest::from_bytes(&plain)?
            .resolve(|pack, k, n, share_len| self.pack_shares(conn, pack, k, n, share_len))
    }

    /// A file row's name MAC, version and sealed manifest, if the row exists.
    fn manifest_row(&self, tx: &Transaction<'_>, file: FileId) -> Result<Option<ManifestRow>> {
        Ok(tx
            .prepare_cached(
                "SELECT name_mac, version, manifest FROM files WHERE account = ?1 AND id = ?2",
            )?
            .query_row(params![self.account.0, file.0], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?)
    }

    fn manifest_in(&self, tx: &Transaction<'_>, file: FileId) -> Result<Manifest> {
        let (mac, version, sealed) = self
            .manifest_row(tx, file)?
            .ok_or_else(|| Error::NoSuchFile(format!("#{}", file.0)))?;
        self.open_manifest(tx, mac, version, &sealed)
    }

    /// The chunk lists of many file versions, read in one transaction (a check of 100 000
    /// files spends its catalog time here).
    pub fn manifests(&self, files: &[FileId]) -> Result<Vec<Manifest>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        files.iter().map(|f| self.manifest_in(&tx, *f)).collect()
    }

    /// The chunk list of exactly the version `entry` names: a row removed since, or its id
    /// given to another file or version after a removal, is [`Error::NoSuchFile`], never that
    /// other file's chunks.
    pub fn manifest_of(&self, entry: &FileEntry) -> Result<Manifest> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        self.manifest_of_in(&tx, entry)
    }

    /// [`Self::manifest_of`] for many versions, in one transaction (a restore of 20 000 small
    /// files reads them a window at a time).
    pub fn manifests_of(&self, entries: &[FileEntry]) -> Result<Vec<Manifest>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        entries
            .iter()
            .map(|e| self.manifest_of_in(&tx, e))
            .collect()
    }

    fn manifest_of_in(&self, tx: &Transaction<'_>, entry: &FileEntry) -> Result<Manifest> {
        let row = self.manifest_row(tx, entry.id)?;
        let gone = || {
            Error::NoSuchFile(format!(
                "{}@{} (removed from the vault meanwhile)",
                String::from_utf8_lossy(&entry.meta.name),
                entry.version
            ))
        };
        let (mac, version, sealed) = row.ok_or_else(gone)?;
        if version != entry.version || !self.name_mac(&entry.meta.name).is(&mac) {
            return Err(gone());
        }
        self.open_manifest(tx, mac, version, &sealed)
    }

    /// The chunk list of a stored file version.
    pub fn manifest(&self, file: FileId) -> Result<Manifest> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        self.manifest_in(&tx, file)
    }

    /// The versions in `state`: of `name` only, or all.
    fn entries(&self, state: i64, name: Option<&[u8]>) -> Result<Vec<FileEntry>> {
        let name_mac = name.map(|n| self.name_mac(n));
        let conn = self.catalog.conn();
        // A lookup must go through the (account, name_mac, version) index: not through
        // `(?3 IS NULL OR …)`, which disables it, and not through (account, state), which
        // SQLite prefers without statistics (`+state` takes that column out of index choice).
        // Measured at 100 000 files: 19 ms → well under 1 ms.
        let mut stmt = match name_mac {
            Some(_) => conn.prepare_cached(
                "SELECT id, name_mac, version, meta FROM files
                 WHERE account = ?1 AND name_mac IN (?3, ?4) AND +state = ?2",
            )?,
            None => conn.prepare_cached(
                "SELECT id, name_mac, version, meta FROM files WHERE account = ?1 AND state = ?2",
            )?,
        };
        let map = |r: &rusqlite::Row<'_>| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        };
        let rows = match name_mac {
            Some(mac) => {
                stmt.query_map(params![self.account.0, state, mac.short(), mac.long()], map)?
            }
            None => stmt.query_map(params![self.account.0, state], map)?,
        }
        .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(stmt);
        drop(conn);
        let mut out = rows
            .into_iter()
            .map(|(id, mac, version, sealed)| {
                let (meta, stored_at) = self.open_meta(&sealed, name_mac_of_row(&mac)?, version)?;
                Ok(FileEntry {
                    id: FileId(id),
                    version,
                    stored_at,
                    meta,
                })
            })
            // Another name whose index key begins the same (never seen: 2⁻¹²⁸ a pair) is not
            // this one's version.
            .filter(|e| !name.is_some_and(|n| e.as_ref().is_ok_and(|e| e.meta.name != n)))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| {
            a.meta
                .name
                .cmp(&b.meta.name)
                .then(a.version.cmp(&b.version))
        });
        Ok(out)
    }
    /// Calls `each` with every visible file version, in no particular order, read a page of
    /// 1 024 rows at a time (a listing of a large vault keeps only what it needs of each;
    /// the catalog is free for others between pages, and for `each`).
    pub fn for_each_entry(&self, mut each: impl FnMut(FileEntry) -> Result<()>) -> Result<()> {
        self.for_each_in_state(FILE_VISIBLE, |entry, _| each(entry))
    }

    /// Calls `each` with every file version in `state` and the time it went to the trash (set
    /// for those in it), a page of 1 024 rows at a time in id order.
    fn for_each_in_state(
        &self,
        state: i64,
        mut each: impl FnMut(FileEntry, Option<i64>) -> Result<()>,
    ) -> Result<()> {
        let mut after = i64::MIN;
        loop {
            let page: Vec<(FileEntry, Option<i64>)> = {
                let conn = self.catalog.conn();
                let mut stmt = conn.prepare_cached(
                    "SELECT id, name_mac, version, meta, trashed FROM files
                     WHERE account = ?1 AND state = ?2 AND id > ?3 ORDER BY id LIMIT 1024",
                )?;
                let mut rows = stmt.query(params![self.account.0, state, after])?;
                let mut page = Vec::with_capacity(PAGE);
                while let Some(r) = rows.next()? {
                    let version: u32 = r.get(2)?;
                    let sealed = r.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
                    let mac = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                    let (meta, stored_at) =
                        self.open_meta(sealed, name_mac_of_row(mac)?, version)?;
                    let entry = FileEntry {
                        id: FileId(r.get(0)?),
                        version,
                        stored_at,
                        meta,
                    };
                    page.push((entry, r.get(4)?));
                }
                page
            };
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.0.id.0;
            let full = page.len() == PAGE;
            for (entry, trashed) in page {
                each(entry, trashed)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The visible file versions `ids`, in that order; one removed meanwhile (or never a
    /// visible version of this vault) is left out.
    pub fn entries_by_id(&self, ids: &[FileId]) -> Result<Vec<FileEntry>> {
        let conn = self.catalog.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name_mac, version, meta FROM files WHERE account = ?1 AND id = ?2 AND state = ?3",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = stmt.query(params![self.account.0, id.0, FILE_VISIBLE])?;
            let Some(r) = rows.next()? else {
                continue;
            };
            let version: u32 = r.get(1)?;
            let sealed = r.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            let mac = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let (meta, stored_at) = self.open_meta(sealed, name_mac_of_row(mac)?, version)?;
            out.push(FileEntry {
                id: *id,
                version,
                stored_at,
                meta,
            });
        }
        Ok(out)
    }

    /// The vault's snapshot state.
    pub fn state(&self) -> Result<VaultState> {
        let row = self
            .catalog
            .conn()
            .query_row(
                "SELECT seq, snapshot FROM vault_state WHERE account = ?1",
                params![self.account.0],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((seq, snapshot)) => VaultState {
                seq: u64::try_from(seq).unwrap_or(0),
                snapshot,
            },
            None => VaultState::default(),
        })
    }

    /// Records the vault's snapshot state; who took its head is not known until
    /// [`VaultCatalog::set_told`] (a crash in between leaves it unknown, never the previous
    /// head's).
    pub fn set_state(&self, state: &VaultState) -> Result<()> {
        let seq = i64::try_from(state.seq).map_err(|_| Error::InvalidParameters("sequence"))?;
        self.catalog.conn().execute(
            "INSERT INTO vault_state (account, seq, snapshot) VALUES (?1, ?2, ?3)
             ON CONFLICT (account) DO UPDATE SET seq = excluded.seq, snapshot = excluded.snapshot,
                 told = NULL",
            params![self.account.0, seq, state.snapshot],
        )?;
        Ok(())
    }

    /// Keeps the sealed head of snapshot `seq` (the peers that took it: `told`, `None` when not
    /// known): a peer away when a newer one is written still points at it, so its shares stay
    /// until [`VaultCatalog::release_kept_head`].
    pub fn keep_head(&self, seq: u64, head: &[u8], told: Option<&[NodeId]>) -> Result<()> {
        let seq = i64::try_from(seq).map_err(|_| Error::InvalidParameters("sequence"))?;
        self.catalog.conn().execute(
            "INSERT OR IGNORE INTO kept_heads (account, seq, head, told) VALUES (?1, ?2, ?3, ?4)",
            params![self.account.0, seq, head, told.map(ids_blob)],
        )?;
        Ok(())
    }

    /// The kept heads (see [`VaultCatalog::keep_head`]), oldest first.
    pub fn kept_heads(&self) -> Result<Vec<KeptHead>> {
        let conn = self.catalog.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, head, told FROM kept_heads WHERE account = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![self.account.0], |r| {
            Ok(KeptHead {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                head: r.get(1)?,
                told: r.get::<_, Option<Vec<u8>>>(2)?.map(|b| blob_ids(&b)),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets kept head `seq` (its shares were deleted or queued for deletion).
    pub fn release_kept_head(&self, seq: u64) -> Result<()> {
        let seq = i64::try_from(seq).map_err(|_| Error::InvalidParameters("sequence"))?;
        self.catalog.conn().execute(
            "DELETE FROM kept_heads WHERE account = ?1 AND seq = ?2",
            params![self.account.0, seq],
        )?;
        Ok(())
    }

    /// Records which peers took the newest head (see [`VaultCatalog::told`]).
    pub fn set_told(&self, told: &[NodeId]) -> Result<()> {
        self.catalog.conn().execute(
            "UPDATE vault_state SET told = ?2 WHERE account = ?1",
            params![self.account.0, ids_blob(told)],
        )?;
        Ok(())
    }

    /// The peers that took the newest head; `None` when not known (written by an earlier
    /// build, or a crash came before it was recorded).
    pub fn told(&self) -> Result<Option<Vec<NodeId>>> {
        let blob = self
            .catalog
            .conn()
            .query_row(
                "SELECT told FROM vault_state WHERE account = ?1",
                params![self.account.0],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten();
        Ok(blob.map(|b| blob_ids(&b)))
    }

    /// Every visible file version, by name then version.
    pub fn list(&self) -> Result<Vec<FileEntry>> {
        self.entries(FILE_VISIBLE, None)
    }

    /// The visible versions of one name, oldest first.
    pub fn versions(&self, name: &[u8]) -> Result<Vec<FileEntry>> {
        self.entries(FILE_VISIBLE, Some(name))
    }

    /// The newest visible version of each name with its [`FileStamp`] (`None` where a name has
    /// no visible version, or its metadata does not open), read in one transaction: what a put compares a tree against to
    /// skip the files that have not changed.
    pub fn newest_stamped(&self, names: &[&[u8]]) -> Result<Vec<Option<StampedEntry>>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(names.len());
        {
            // The newest visible version under each length of the name's key, walked down
            // the (account, name_mac, version) index (`+state` keeps it in use, see
            // `entries`); the newer of the two is taken here. `name_mac IN (…) ORDER BY
            // version` would sort in a temporary table on every call, and this runs once per
            // file of every put.
            let mut stmt = tx.prepare_cached(
                "SELECT * FROM (SELECT id, version, meta, name_mac FROM files
                                WHERE account = ?1 AND name_mac = ?2 AND +state = ?3
                                ORDER BY version DESC LIMIT 1)
                 UNION ALL
                 SELECT * FROM (SELECT id, version, meta, name_mac FROM files
                                WHERE account = ?1 AND name_mac = ?4 AND +state = ?3
                                ORDER BY version DESC LIMIT 1)",
            )?;
            for name in names {
                let mac = self.name_mac(name);
                let mut rows = stmt.query(params![
                    self.account.0,
                    mac.short(),
                    FILE_VISIBLE,
                    mac.long()
                ])?;
                let mut newest: Option<(i64, u32, Vec<u8>, Vec<u8>)> = None;
                while let Some(r) = rows.next()? {
                    let version: u32 = r.get(1)?;
                    if newest.as_ref().is_none_or(|n| version > n.1) {
                        newest = Some((r.get(0)?, version, r.get(2)?, r.get(3)?));
                    }
                }
                let Some((id, version, sealed, row_mac)) = newest else {
                    out.push(None);
                    continue;
                };
                // A version whose metadata does not open is not one a file can be found
                // unchanged against: the put reads the file again (and `check` says why).
                let Ok((meta, stored_at, stamp)) = self.open_stamped(&sealed, &row_mac, version)
                else {
                    out.push(None);
                    continue;
                };
                if meta.name != *name {
                    out.push(None);
                    continue;
                }
                out.push(Some((
                    FileEntry {
                        id: FileId(id),
                        version,
                        stored_at,
                        meta,
                    },
                    stamp,
                )));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The visible version `version` of each name given (`None` where it is not, or its
    /// metadata does not open), read in one transaction: what a backup snapshot's list of
    /// names and versions is resolved with.
    pub fn entries_at(&self, wanted: &[(&[u8], u32)]) -> Result<Vec<Option<FileEntry>>> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(wanted.len());
        {
            let mut stmt = tx.prepare_cached(
                "SELECT id, meta, name_mac FROM files
                 WHERE account = ?1 AND name_mac IN (?2, ?3) AND version = ?4 AND +state = ?5",
            )?;
            for (name, version) in wanted {
                let mac = self.name_mac(name);
                let found: Option<(i64, Vec<u8>, Vec<u8>)> = stmt
                    .query_row(
                        params![
                            self.account.0,
                            mac.short(),
                            mac.long(),
                            version,
                            FILE_VISIBLE
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let entry = found.and_then(|(id, sealed, row_mac)| {
                    let (meta, stored_at) = self.open_meta(&sealed, &row_mac, *version).ok()?;
                    (meta.name == *name).then_some(FileEntry {
                        id: FileId(id),
                        version: *version,
                        stored_at,
                        meta,
                    })
                });
                out.push(entry);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Versions begun but not committed (a put that was interrupted).
    pub fn pending(&self) -> Result<Vec<FileEntry>> {
        self.entries(FILE_PENDING, None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

    use super::*;
    use shard_crypto::{KdfParams, KeyRecord, VaultKey};

    /// A catalog in a temporary folder (kept while the first value lives) with one account.
    fn catalog_with_alice() -> (tempfile::TempDir, Catalog, AccountId, VaultKeys) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, b"a good passphrase", KdfParams::INSECURE_FAST).unwrap();
        let account = catalog.create_account("alice", &record).unwrap();
        (dir, catalog, account, VaultKeys::derive(&key))
    }

    /// Metadata sealed before stamps existed (metadata and time, no third field) still opens,
    /// with no stamp; metadata sealed now opens with its stamp.
    #[test]
    fn metadata_sealed_without_a_stamp_still_opens() {
        let (_dir, catalog, account, keys) = catalog_with_alice();
        let vault = catalog.vault(account, &keys);
        let meta = FileMeta {
            name: b"old.txt".to_vec(),
            kind: FileKind::File,
            size: 3,
            mtime: 1_700_000_000,
            mtime_nanos: 0,
            mode: 0o600,
            link_target: None,
        };
        let mac = vault.name_mac(&meta.name);
        let mac = mac.short();
        let before = postcard::to_stdvec(&(&meta, 42i64)).unwrap();
        let sealed = seal(&vault.seal_key, &vault.aad(META_AAD, mac, 1), &before).unwrap();
        assert_eq!(
            vault.open_stamped(&sealed, mac, 1).unwrap(),
            (meta.clone(), 42, None)
        );
        let stamp = FileStamp {
            ctime: 5,
            ctime_nanos: 6,
            inode: 7,
        };
        let now = vault.seal_meta(&meta, 43, Some(&stamp), mac, 1).unwrap();
        assert_eq!(
            vault.open_stamped(&now, mac, 1).unwrap(),
            (meta, 43, Some(stamp))
        );
    }

    fn blob_in(pack: u8, shares: [u8; 3], i: u8) -> Manifest {
        Manifest {
            size: 100,
            chunks: vec![ChunkRef {
                id: ChunkId([i; 32]),
                len: 100,
                k: 2,
                n: 3,
                share_len: 4096,
                shares: shares.iter().map(|s| ShareId([*s; 32])).collect(),
                pack: Some(BlobAt {
                    pack: PackId([pack; 32]),
                    offset: u32::from(i) * 128,
                }),
            }],
        }
    }

    fn file(name: &str) -> FileMeta {
        FileMeta {
            name: name.as_bytes().to_vec(),
            kind: FileKind::File,
            size: 100,
            mtime: 1_700_000_000,
            mtime_nanos: 0,
            mode: 0o600,
            link_target: None,
        }
    }

    /// A file whose row holds its name's whole HMAC (written before catalog version 8) is
    /// found by name, opens, and its next version follows it under the short key.
    #[test]
    fn a_name_indexed_in_full_before_is_found_and_continued() {
        let (_dir, catalog, account, keys) = catalog_with_alice();
        let vault = catalog.vault(account, &keys);
        let m = Manifest::default();
        let old = vault.begin_files(&[(file("old"), m.clone())]).unwrap();
        vault.commit_files(&[old[0].id]).unwrap();
        // As the build before wrote it: the whole HMAC, and both seals bound to it.
        let mac = vault.name_mac(b"old");
        let meta = vault
            .seal_meta(&file("old"), 7, None, mac.long(), 1)
            .unwrap();
        let manifest = seal(
            &vault.seal_key,
            &vault.aad(MANIFEST_AAD, mac.long(), 1),
            &m.to_bytes(),
        )
        .unwrap();
        catalog
            .conn()
            .execute(
                "UPDATE files SET name_mac = ?2, meta = ?3, manifest = ?4 WHERE id = ?1",
                params![old[0].id.0, mac.long(), meta, manifest],
            )
            .unwrap();
        let found = vault.versions(b"old").unwrap();
        assert_eq!(
            (found.len(), found[0].version, found[0].stored_at),
            (1, 1, 7)
        );
        assert_eq!(vault.manifest_of(&found[0]).unwrap(), m);
        let new = vault.begin_files(&[(file("old"), m.clone())]).unwrap();
        assert_eq!(new[0].version, 2);
        vault.commit_files(&[new[0].id]).unwrap();
        let versions: Vec<_> = vault
            .versions(b"old")
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, [1, 2]);
        let newest = vault.newest_stamped(&[b"old"]).unwrap();
        assert_eq!(newest[0].as_ref().map(|(e, _)| e.version), Some(2));
        let stored: Vec<i64> = catalog
            .conn()
            .prepare("SELECT length(name_mac) FROM files ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(stored, [32, NAME_MAC_LEN as i64]);
    }

    /// A manifest is sealed without its pack's share ids, which the pack's record holds once;
    /// one sealed before (version 3, every id in it) still opens; a file whose pack record is
    /// gone is a typed error naming the pack; a manifest naming other shares for a recorded
    /// pack is refused, not sealed.
    #[test]
    fn a_packs_share_ids_live_on_its_record() {
        let (_dir, catalog, account, keys) = catalog_with_alice();
        let vault = catalog.vault(account, &keys);
        let files = [
            (file("a"), blob_in(9, [1, 2, 3], 0)),
            (file("b"), blob_in(9, [1, 2, 3], 1)),
        ];
        let begun = vault.begin_files(&files).unwrap();
        let sealed_len: i64 = catalog
            .conn()
            .query_row(
                "SELECT length(manifest) FROM files WHERE id = ?1",
                [begun[0].id.0],
                |r| r.get(0),
            )
            .unwrap();
        let compact = files[0].1.to_compact_bytes().len() as i64;
        assert_eq!(sealed_len, compact + 28);
        assert_eq!(compact + 96, files[0].1.to_bytes().len() as i64);
        assert_eq!(vault.manifest(begun[1].id).unwrap(), files[1].1);

        // A row sealed by the build before (version 3) opens as it is.
        let mac = vault.name_mac(b"a");
        let v3 = seal(
            &vault.seal_key,
            &vault.aad(MANIFEST_AAD, mac.short(), 1),
            &files[0].1.to_bytes(),
        )
        .unwrap();
        catalog
            .conn()
            .execute(
                "UPDATE files SET manifest = ?2 WHERE id = ?1",
                params![begun[0].id.0, v3],
            )
            .unwrap();
        assert_eq!(vault.manifest(begun[0].id).unwrap(), files[0].1);

        // Other shares for the same pack: refused, and nothing of the batch is recorded.
        let liar = [(file("c"), blob_in(9, [1, 2, 4], 2))];
        assert!(matches!(
            vault.begin_files(&liar),
            Err(Error::InvalidParameters(m)) if m.contains("other shares for a pack")
        ));
        // The same within one batch: the second file is checked against the first's list.
        let liars = [
            (file("d"), blob_in(8, [5, 6, 7], 3)),
            (file("e"), blob_in(8, [5, 6, 8], 4)),
        ];
        assert!(matches!(
            vault.begin_files(&liars),
            Err(Error::InvalidParameters(m)) if m.contains("other shares for a pack")
        ));
        let pending: Vec<_> = vault
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.meta.name)
            .collect();
        assert_eq!(pending, [b"a".to_vec(), b"b".to_vec()]);

        // The pack's record gone: the file that names it says which pack is missing.
        catalog
            .conn()
            .execute("UPDATE chunks SET share_ids = NULL", [])
            .unwrap();
        assert!(matches!(
            vault.manifest(begun[1].id),
            Err(Error::UnknownPack(p)) if p == PackId([9; 32])
        ));
    }
}
