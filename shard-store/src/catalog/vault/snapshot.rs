//! Catalog snapshots: the whole vault as one stream of records, written straight from the
//! catalog and read back into an empty account, never held whole in memory.
//!
//! A snapshot of version 7 (what this build writes) is postcard:
//! ```text
//! header    version 7, account name
//! records   Pack    a pack's id, coding and share ids, before the first file that uses it
//!           Share   an acknowledged share: its id, chunk or pack, index, coding, holder
//!           File    a file version: metadata, version, time stored, chunk list whose blobs
//!                   name their pack and leave its share ids to the pack's record
//!           Backup  a backup job or one of its snapshots (after the files)
//!           Trashed a file version in the trash, as File, and when it went there
//!           End     nothing follows
//! ```
//! The writer ([`VaultCatalog::export_to`]) reads the catalog a page at a time and hands the
//! bytes on as it goes; the reader ([`SnapshotReader`]) takes them in pieces of any size and
//! hands out each share and file as soon as its record is complete. So a vault of 10⁶ files
//! costs its writer and its reader a page and a record, not the hundreds of MiB the snapshot
//! is. Version 6 is version 7 without trashed files, version 5 is version 6 without backup
//! records; versions 3 and 4 (one postcard
//! structure, written by earlier builds of this format) are still read, whole.

use std::collections::HashMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use shard_proto::{ChunkId, ChunkRef, Manifest, NodeId, PackId, PackRef, ShareId};
use zeroize::Zeroizing;

use super::backup::BackupRecord;
use super::{
    AckedShare, FILE_TRASHED, FILE_VISIBLE, FileMeta, PAGE, PackShares, VaultCatalog, enc_key,
    id32, insert_blob,
};
use crate::{Error, Result};

/// The catalog snapshot format this build writes: 7, a stream of records (see the module
/// documentation). It reads 7 to 3 (4 and 3 whole); versions 1 and 2 came from earlier,
/// unreleased builds and are refused by name. (A build that reads at most 5 refuses a
/// snapshot of 6 by its version, rather than lose the backup jobs in it; one that reads at
/// most 6 refuses 7 rather than lose the trash.)
pub const SNAPSHOT_VERSION: u8 = 7;

/// The longest record written or read: SQLite's longest value (10⁹ bytes by default), so any
/// chunk list the catalog can hold fits in a record; a stream whose record would be longer is
/// damaged.
const MAX_RECORD: usize = 1_000_000_000;

/// Files written to the catalog per transaction by an import.
const IMPORT_BATCH: usize = 512;

/// Checks a snapshot's version.
fn check_snapshot_version(version: u8) -> Result<()> {
    match version {
        3..=SNAPSHOT_VERSION => Ok(()),
        1 | 2 => Err(Error::InvalidParameters(
            "the catalog snapshot is of an earlier, unreleased data format (before packs), which this build does not read",
        )),
        _ => Err(Error::InvalidParameters("unknown catalog snapshot version")),
    }
}

/// A file version in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Its metadata.
    pub meta: FileMeta,
    /// Its version number.
    pub version: u32,
    /// When it was stored.
    pub stored_at: i64,
    /// Its chunks.
    pub manifest: Manifest,
    /// When it went to the trash, if it is there (written as its own record kind, so a
    /// snapshot's file records read as they always have).
    #[serde(skip)]
    pub trashed: Option<i64>,
}

/// A share in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotShare {
    /// The share.
    pub share: ShareId,
    /// Its chunk, index and the chunk's parameters.
    pub chunk: ChunkId,
    /// Index among the chunk's shares.
    pub index: u8,
    /// The chunk's `k`.
    pub k: u8,
    /// The chunk's `n`.
    pub n: u8,
    /// The chunk's share length.
    pub share_len: u32,
    /// Where it is.
    pub peer: NodeId,
}

impl SnapshotShare {
    fn validate(&self) -> Result<()> {
        if self.k == 0 || self.n < self.k || self.index >= self.n {
            return Err(Error::InvalidParameters(
                "a snapshot share does not fit its chunk",
            ));
        }
        Ok(())
    }
}

/// What a snapshot holds, one piece at a time: what [`SnapshotReader`] hands out and
/// [`SnapshotImport`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotItem {
    /// An acknowledged share.
    Share(SnapshotShare),
    /// A file version (visible, or in the trash when `trashed` says so), its chunk list whole (every share id listed).
    File(SnapshotFile),
    /// A backup job or snapshot.
    Backup(BackupRecord),
}

/// A record of a version-5 or 6 snapshot (variants are only ever added at the end: postcard
/// numbers them by place).
#[derive(Serialize, Deserialize)]
enum Record {
    Pack(PackRef),
    Share(SnapshotShare),
    File(SnapshotFile),
    End,
    Backup(BackupRecord),
    Trashed(SnapshotFile, i64),
}

/// Everything the catalog knows of a vault, as stored in a catalog snapshot: enough to rebuild
/// the account on a new machine. Its manifests are whole (every share id listed). Held whole
/// in memory: for tests, tools and small vaults; the node streams ([`VaultCatalog::export_to`],
/// [`SnapshotReader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSnapshot {
    /// Format version: [`SNAPSHOT_VERSION`] (the version it is written in; one read from an
    /// earlier version says so here too).
    pub version: u8,
    /// The account's name.
    pub account: String,
    /// Every visible file version, then those in the trash.
    pub files: Vec<SnapshotFile>,
    /// Every acknowledged share of those files' chunks.
    pub shares: Vec<SnapshotShare>,
    /// Backup jobs and their snapshots.
    pub backups: Vec<BackupRecord>,
}

/// A snapshot's bytes in version 3: whole manifests.
#[derive(Deserialize)]
struct SnapshotV3 {
    account: String,
    files: Vec<SnapshotFile>,
    shares: Vec<SnapshotShare>,
}

/// A snapshot's bytes in version 4: manifests whose blobs list no share ids, and each pack's
/// record once.
#[derive(Deserialize)]
struct SnapshotV4 {
    account: String,
    files: Vec<SnapshotFile>,
    shares: Vec<SnapshotShare>,
    packs: Vec<PackRef>,
}

impl VaultSnapshot {
    /// Decodes a snapshot's plain bytes (versions 3 to 5) and checks what a decoder alone
    /// cannot, as [`SnapshotReader`] does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut files = Vec::new();
        let mut shares = Vec::new();
        let mut backups = Vec::new();
        let mut reader = SnapshotReader::new();
        let mut each = |item| {
            match item {
                SnapshotItem::File(f) => files.push(f),
                SnapshotItem::Share(s) => shares.push(s),
                SnapshotItem::Backup(b) => backups.push(b),
            }
            Ok(())
        };
        reader.push(bytes, &mut each)?;
        let account = reader.finish(&mut each)?;
        Ok(Self {
            version: SNAPSHOT_VERSION,
            account,
            files,
            shares,
            backups,
        })
    }

    /// The snapshot's bytes (version [`SNAPSHOT_VERSION`]), as [`VaultSnapshot::from_bytes`]
    /// reads them. Two manifests that name one pack with different shares are an error: one
    /// list per pack is all the format can say.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        let mut writer = RecordWriter::new(&self.account, &mut sink)?;
        for share in &self.shares {
            writer.share(share)?;
        }
        for f in &self.files {
            writer.file(f.clone())?;
        }
        for b in &self.backups {
            writer.backup(b.clone())?;
        }
        writer.end()?;
        Ok(out)
    }
}

/// The packs a snapshot has listed, each once: what its writer and its reader both hold to
/// keep one coding and one list of shares per pack.
#[derive(Default)]
struct PackList(HashMap<PackId, PackRef>);

impl PackList {
    /// Lists `pack`; `true` when it was not listed before. An invalid pack, or one listed
    /// before with another coding or other shares, is an error.
    fn list(&mut self, pack: PackRef) -> Result<bool> {
        if pack.validate().is_err() {
            return Err(Error::InvalidParameters("a snapshot pack is invalid"));
        }
        match self.0.get(&pack.id) {
            Some(listed) if *listed != pack => Err(Error::InvalidParameters(
                "two files name one pack with different shares",
            )),
            Some(_) => Ok(false),
            None => {
                self.0.insert(pack.id, pack);
                Ok(true)
            }
        }
    }
}

/// Writes a version-5 snapshot's records into a sink, listing each pack before the first file
/// that uses it.
struct RecordWriter<'s> {
    sink: &'s mut dyn FnMut(&[u8]) -> Result<()>,
    listed: PackList,
    /// One record's plaintext (names, sizes): wiped when the writer is done.
    scratch: Zeroizing<Vec<u8>>,
    files: usize,
}

impl<'s> RecordWriter<'s> {
    fn new(account: &str, sink: &'s mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Self> {
        let mut writer = Self {
            sink,
            listed: PackList::default(),
            scratch: Zeroizing::new(Vec::new()),
            files: 0,
        };
        writer.write(&(SNAPSHOT_VERSION, account))?;
        Ok(writer)
    }

    fn write<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.scratch.clear();
        postcard::to_io(value, &mut *self.scratch)
            .map_err(|_| Error::InvalidParameters("catalog snapshot does not encode"))?;
        if self.scratch.len() > MAX_RECORD {
            return Err(Error::InvalidParameters(
                "a file's chunk list is too long for a catalog snapshot",
            ));
        }
        (self.sink)(&self.scratch)
    }

    /// A backup record. Its body (a snapshot's names: tens of MB at 10⁶ paths) goes to the
    /// sink as it lies, not copied into the scratch buffer first; the bytes are exactly
    /// `write(&Record::Backup(record))`'s (the body is the record's last field, and an empty
    /// one encodes as its length alone, 0).
    fn backup(&mut self, mut record: BackupRecord) -> Result<()> {
        let body = std::mem::take(&mut record.body);
        self.scratch.clear();
        postcard::to_io(&Record::Backup(record), &mut *self.scratch)
            .map_err(|_| Error::InvalidParameters("catalog snapshot does not encode"))?;
        if self.scratch.pop() != Some(0) {
            return Err(Error::InvalidParameters("catalog snapshot does not encode"));
        }
        postcard::to_io(&body.len(), &mut *self.scratch)
            .map_err(|_| Error::InvalidParameters("catalog snapshot does not encode"))?;
        // The limit the reader holds a record to, as `write` checks it: the whole record.
        if self.scratch.len().saturating_add(body.len()) > MAX_RECORD {
            return Err(Error::InvalidParameters(
                "a backup record is too long for a catalog snapshot",
            ));
        }
        (self.sink)(&self.scratch)?;
        (self.sink)(&body)
    }

    fn share(&mut self, share: &SnapshotShare) -> Result<()> {
        self.write(&Record::Share(share.clone()))
    }

    /// A file, its blobs' share ids moved to their packs' records (written first, once).
    fn file(&mut self, mut file: SnapshotFile) -> Result<()> {
        for chunk in file.manifest.chunks.iter_mut() {
            let Some(pack) = chunk.pack_ref() else {
                continue;
            };
            if self.listed.list(pack.clone())? {
                self.write(&Record::Pack(pack))?;
            }
            chunk.shares = Vec::new();
        }
        self.files += 1;
        match file.trashed {
            Some(at) => self.write(&Record::Trashed(file, at)),
            None => self.write(&Record::File(file)),
        }
    }

    fn end(mut self) -> Result<usize> {
        self.write(&Record::End)?;
        Ok(self.files)
    }
}

/// Where a [`SnapshotReader`] is.
enum ReadState {
    /// Before the header.
    Header,
    /// Version 5, within its records.
    Records,
    /// Version 5, after its end record.
    Ended,
    /// Version 3 or 4: the whole bytes are gathered and read at the end.
    Whole,
}

/// Reads a snapshot's plain bytes given in pieces of any size ([`SnapshotReader::push`]),
/// handing out each share and file as soon as it is complete; [`SnapshotReader::finish`] at the
/// end. Checks what a decoder alone cannot: a known version, each blob's pack listed (once,
/// with one coding and one list of shares), valid manifests, shares whose index fits their
/// chunk, an end record and nothing after it. A damaged snapshot is an error, never a panic or
/// a huge allocation.
pub struct SnapshotReader {
    state: ReadState,
    /// Plaintext not yet read (at most a record and a piece; all of a version 3 or 4
    /// snapshot): wiped when the reader is done.
    buf: Zeroizing<Vec<u8>>,
    /// Bytes of `buf` already read.
    at: usize,
    /// `buf`'s length when a record was last found incomplete: not tried again before more
    /// than as much again has come (a long record is parsed a few times, not once a piece).
    waited_at: usize,
    account: String,
    packs: PackList,
}

impl Default for SnapshotReader {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("buffered", &(self.buf.len() - self.at))
            .field("packs", &self.packs.0.len())
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    /// A reader at the start of a snapshot.
    pub fn new() -> Self {
        Self {
            state: ReadState::Header,
            buf: Zeroizing::new(Vec::new()),
            at: 0,
            waited_at: 0,
            account: String::new(),
            packs: PackList::default(),
        }
    }

    /// Takes the next plain bytes; calls `each` with every share and file they complete.
    pub fn push(
        &mut self,
        bytes: &[u8],
        each: &mut dyn FnMut(SnapshotItem) -> Result<()>,
    ) -> Result<()> {
        self.read(bytes, each, false)
    }

    /// [`Self::push`]; `last`: no more bytes come, so a record found incomplete before is
    /// looked at again however little came since.
    fn read(
        &mut self,
        bytes: &[u8],
        each: &mut dyn FnMut(SnapshotItem) -> Result<()>,
        last: bool,
    ) -> Result<()> {
        if matches!(self.state, ReadState::Ended) && !bytes.is_empty() {
            return Err(Error::InvalidParameters(
                "the catalog snapshot goes on after its end",
            ));
        }
        // What was read goes before more is added, so the buffer holds one record at most
        // (and what the last piece brought).
        self.buf.drain(..self.at);
        self.waited_at = self.waited_at.saturating_sub(self.at);
        self.at = 0;
        shard_crypto::extend_zeroizing(&mut self.buf, bytes);
        if !last && self.buf.len() < self.waited_at.saturating_mul(2) {
            return Ok(());
        }
        self.waited_at = 0;
        loop {
            match self.state {
                ReadState::Whole | ReadState::Ended => return Ok(()),
                ReadState::Header => {
                    let Some(&version) = self.buf.first() else {
                        return Ok(());
                    };
                    check_snapshot_version(version)?;
                    if version < 5 {
                        self.state = ReadState::Whole;
                        return Ok(());
                    }
                    let Some((_, account)) = self.take::<(u8, String)>()? else {
                        return Ok(());
                    };
                    self.account = account;
                    self.state = ReadState::Records;
                }
                ReadState::Records => {
                    let Some(record) = self.take::<Record>()? else {
                        return Ok(());
                    };
                    match record {
                        Record::Pack(pack) => self.list_pack(pack)?,
                        Record::Share(share) => {
                            share.validate()?;
                            each(SnapshotItem::Share(share))?;
                        }
                        Record::File(mut file) => {
                            self.fill_shares(&mut file.manifest)?;
                            validate_file(&file)?;
                            each(SnapshotItem::File(file))?;
                        }
                        Record::Trashed(mut file, at) => {
                            file.trashed = Some(at);
                            self.fill_shares(&mut file.manifest)?;
                            validate_file(&file)?;
                            each(SnapshotItem::File(file))?;
                        }
                        Record::Backup(record) => each(SnapshotItem::Backup(record))?,
                        Record::End => {
                            if self.at != self.buf.len() {
                                return Err(Error::InvalidParameters(
                                    "the catalog snapshot goes on after its end",
                                ));
                            }
                            self.state = ReadState::Ended;
                        }
                    }
                }
            }
        }
    }

    /// The end of the bytes: hands out what a snapshot of version 3 or 4 holds, and returns the
    /// account's name. A snapshot cut short is an error.
    pub fn finish(mut self, each: &mut dyn FnMut(SnapshotItem) -> Result<()>) -> Result<String> {
        self.read(&[], each, true)?;
        match self.state {
            ReadState::Ended => Ok(self.account),
            ReadState::Whole => read_whole(&self.buf, each),
            ReadState::Header if self.buf.is_empty() => {
                Err(Error::InvalidParameters("catalog snapshot does not decode"))
            }
            ReadState::Header | ReadState::Records => {
                Err(Error::InvalidParameters("the catalog snapshot ends early"))
            }
        }
    }

    /// The next value in the buffer, or `None` when it is not all there yet.
    fn take<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>> {
        let rest = self.buf.get(self.at..).unwrap_or_default();
        match postcard::take_from_bytes::<T>(rest) {
            Ok((value, left)) => {
                self.at = self.buf.len() - left.len();
                Ok(Some(value))
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) if rest.len() <= MAX_RECORD => {
                self.waited_at = self.buf.len();
                Ok(None)
            }
            Err(_) => Err(Error::InvalidParameters("catalog snapshot does not decode")),
        }
    }

    fn list_pack(&mut self, pack: PackRef) -> Result<()> {
        self.packs.list(pack).map(drop)
    }

    /// Gives each blob of `manifest` its pack's share ids (a pack's ids are copied into each
    /// blob in it: at most 1 KiB for a reference of about 70 bytes).
    fn fill_shares(&self, manifest: &mut Manifest) -> Result<()> {
        for chunk in &mut manifest.chunks {
            let Some(at) = chunk.pack else { continue };
            let pack = self
                .packs
                .0
                .get(&at.pack)
                .filter(|p| (p.k, p.n, p.share_len) == (chunk.k, chunk.n, chunk.share_len))
                .filter(|_| chunk.shares.is_empty())
                .ok_or(Error::InvalidParameters(
                    "a snapshot file's blob lies in a pack the snapshot does not list",
                ))?;
            chunk.shares.clone_from(&pack.shares);
        }
        Ok(())
    }
}

fn validate_file(f: &SnapshotFile) -> Result<()> {
    if f.meta.name.is_empty() {
        return Err(Error::InvalidParameters("a snapshot file has no name"));
    }
    if f.version == 0 {
        return Err(Error::InvalidParameters("a snapshot file has version 0"));
    }
    if f.manifest.validate().is_err() {
        return Err(Error::InvalidParameters(
            "a snapshot file's manifest is invalid",
        ));
    }
    Ok(())
}

/// Reads a snapshot of version 3 (whole manifests) or 4 (one postcard structure with a list of
/// packs at its end); returns the account's name.
fn read_whole(bytes: &[u8], each: &mut dyn FnMut(SnapshotItem) -> Result<()>) -> Result<String> {
    let undecodable = || Error::InvalidParameters("catalog snapshot does not decode");
    let (version, rest) = bytes.split_first().ok_or_else(undecodable)?;
    let (account, files, shares) = if *version == 3 {
        let v3: SnapshotV3 = postcard::from_bytes(rest).map_err(|_| undecodable())?;
        // Every manifest names a pack with the same coding and shares, or the snapshot is not
        // one a catalog wrote.
        let mut reader = SnapshotReader::new();
        for f in &v3.files {
            for pack in f.manifest.chunks.iter().filter_map(ChunkRef::pack_ref) {
                reader.list_pack(pack)?;
            }
        }
        (v3.account, v3.files, v3.shares)
    } else {
        let v4: SnapshotV4 = postcard::from_bytes(rest).map_err(|_| undecodable())?;
        let mut reader = SnapshotReader::new();
        for pack in v4.packs {
            reader.list_pack(pack)?;
        }
        let mut files = v4.files;
        for f in &mut files {
            reader.fill_shares(&mut f.manifest)?;
        }
        (v4.account, files, v4.shares)
    };
    for s in shares {
        s.validate()?;
        each(SnapshotItem::Share(s))?;
    }
    for f in files {
        validate_file(&f)?;
        each(SnapshotItem::File(f))?;
    }
    Ok(account)
}

impl VaultCatalog<'_> {
    /// The whole vault, for a catalog snapshot, in memory (see [`VaultSnapshot`]).
    pub fn export(&self, account_name: &str) -> Result<VaultSnapshot> {
        let mut files = Vec::new();
        for entry in self.list()? {
            let manifest = self.manifest(entry.id)?;
            files.push(SnapshotFile {
                meta: entry.meta,
                version: entry.version,
                stored_at: entry.stored_at,
                manifest,
                trashed: None,
            });
        }
        for t in self.trashed()? {
            files.push(SnapshotFile {
                manifest: self.manifest(t.entry.id)?,
                meta: t.entry.meta,
                version: t.entry.version,
                stored_at: t.entry.stored_at,
                trashed: Some(t.trashed_at),
            });
        }
        let mut shares = Vec::new();
        self.for_each_snapshot_share(|share| {
            shares.push(share);
            Ok(())
        })?;
        let mut backups = Vec::new();
        self.for_each_backup(|b| {
            backups.push(b);
            Ok(())
        })?;
        Ok(VaultSnapshot {
            version: SNAPSHOT_VERSION,
            account: account_name.to_string(),
            files,
            shares,
            backups,
        })
    }

    /// Writes the whole vault as a catalog snapshot's plain bytes (version
    /// [`SNAPSHOT_VERSION`]) into `sink`, piece by piece, straight from the catalog: the shares,
    /// then the files in the order they were stored. Holds a page of the catalog, never the
    /// snapshot; the catalog is not locked while `sink` runs. Run it while nothing else writes
    /// the vault (the node holds the vault's writer lock), or a file committed meanwhile may be
    /// missed and one removed meanwhile ends it with an error. Returns the files written.
    pub fn export_to(
        &self,
        account_name: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<usize> {
        let mut writer = RecordWriter::new(account_name, sink)?;
        self.for_each_snapshot_share(|share| writer.share(&share))?;
        self.for_each_entry(|entry| {
            writer.file(SnapshotFile {
                manifest: self.manifest(entry.id)?,
                meta: entry.meta,
                version: entry.version,
                stored_at: entry.stored_at,
                trashed: None,
            })
        })?;
        // The trash: what a user removed lately comes back with the account too.
        self.for_each_trashed(|t| {
            writer.file(SnapshotFile {
                manifest: self.manifest(t.entry.id)?,
                meta: t.entry.meta,
                version: t.entry.version,
                stored_at: t.entry.stored_at,
                trashed: Some(t.trashed_at),
            })
        })?;
        self.for_each_backup(|b| writer.backup(b))?;
        writer.end()
    }

    /// Calls `each` with every acknowledged share of the vault as a snapshot records it, a page
    /// at a time (the catalog is free while `each` runs).
    fn for_each_snapshot_share(
        &self,
        mut each: impl FnMut(SnapshotShare) -> Result<()>,
    ) -> Result<()> {
        let mut after = Vec::new();
        loop {
            let page = {
                let conn = self.catalog.conn();
                let mut stmt = conn.prepare_cached(
                    "SELECT s.id, s.chunk, s.idx, c.k, c.n, c.share_len, s.peer FROM shares s
                     JOIN chunks c ON c.account = s.account AND c.id = s.chunk AND c.k = s.k
                          AND c.n = s.n
                     WHERE s.account = ?1 AND s.state = 1 AND s.id > ?2 ORDER BY s.id LIMIT 1024",
                )?;
                let mut rows = stmt.query(params![self.account.0, after])?;
                let mut page = Vec::with_capacity(PAGE);
                while let Some(r) = rows.next()? {
                    page.push(SnapshotShare {
                        share: ShareId(id32(r, 0)?),
                        chunk: ChunkId(id32(r, 1)?),
                        index: r.get(2)?,
                        k: r.get(3)?,
                        n: r.get(4)?,
                        share_len: r.get(5)?,
                        peer: NodeId(id32(r, 6)?),
                    });
                }
                page
            };
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.share.0.to_vec();
            let full = page.len() == PAGE;
            for share in page {
                each(share)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Rebuilds the vault from a snapshot held in memory (into an empty account): see
    /// [`VaultCatalog::import_stream`].
    pub fn import(&self, snapshot: &VaultSnapshot) -> Result<()> {
        check_snapshot_version(snapshot.version)?;
        let mut import = self.import_stream();
        for s in &snapshot.shares {
            import.add(SnapshotItem::Share(s.clone()))?;
        }
        for f in &snapshot.files {
            import.add(SnapshotItem::File(f.clone()))?;
        }
        for b in &snapshot.backups {
            import.add(SnapshotItem::Backup(b.clone()))?;
        }
        import.finish()?;
        Ok(())
    }

    /// Rebuilds the vault, into an empty account, from a snapshot's items given one at a
    /// time: every file visible again under its version number and time stored, every share
    /// where it was. Written in batches (a transaction per few hundred files).
    pub fn import_stream(&self) -> SnapshotImport<'_, '_> {
        SnapshotImport {
            vault: self,
            acks: Vec::new(),
            files: Vec::new(),
            imported: 0,
        }
    }

    /// Writes imported file versions, visible or in the trash, in one transaction. A name and version the
    /// vault has already is an error (a snapshot lists each once).
    fn insert_imported(&self, files: &[SnapshotFile]) -> Result<()> {
        let mut conn = self.catalog.conn();
        let tx = conn.transaction()?;
        let mut recorded = PackShares::new();
        for f in files {
            let mac = self.name_mac(&f.meta.name);
            let mac = mac.short();
            let sealed_meta = self.seal_meta(&f.meta, f.stored_at, None, mac, f.version)?;
            let sealed_manifest =
                self.seal_manifest(&tx, &mut recorded, &f.manifest, mac, f.version)?;
            tx.prepare_cached(
                "INSERT INTO files (account, name_mac, version, meta, manifest, state, trashed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                self.account.0,
                mac,
                f.version,
                sealed_meta,
                sealed_manifest,
                if f.trashed.is_some() {
                    FILE_TRASHED
                } else {
                    FILE_VISIBLE
                },
                f.trashed
            ])
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(c, _)
                    if c.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Error::InvalidParameters("a snapshot lists one file version twice")
                }
                e => e.into(),
            })?;
            let mut seen = std::collections::HashSet::new();
            for chunk in f.manifest.chunks.iter().filter(|c| seen.insert(enc_key(c))) {
                self.add_ref(&tx, chunk)?;
            }
            // Blobs of recovered packs are sources for dedup again.
            for chunk in &f.manifest.chunks {
                if let Some(at) = chunk.pack {
                    insert_blob(&tx, self.account, &chunk.id, &at, chunk.len)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// An import in progress: see [`VaultCatalog::import_stream`]. Shares the snapshot knows too
/// little about (missing) do not block a file: it is visible, and health and repair will say
/// what is missing.
pub struct SnapshotImport<'v, 'a> {
    vault: &'v VaultCatalog<'a>,
    acks: Vec<AckedShare>,
    files: Vec<SnapshotFile>,
    imported: usize,
}

impl std::fmt::Debug for SnapshotImport<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotImport")
            .field("imported", &self.imported)
            .finish_non_exhaustive()
    }
}

impl SnapshotImport<'_, '_> {
    /// Takes one item; writes a batch when one is full.
    pub fn add(&mut self, item: SnapshotItem) -> Result<()> {
        match item {
            SnapshotItem::Share(s) => {
                self.acks.push(AckedShare {
                    chunk: s.chunk,
                    k: s.k,
                    n: s.n,
                    share_len: s.share_len,
                    index: s.index,
                    share: s.share,
                    peer: s.peer,
                });
                if self.acks.len() >= PAGE * 4 {
                    self.flush_acks()?;
                }
            }
            SnapshotItem::File(f) => {
                self.files.push(f);
                if self.files.len() >= IMPORT_BATCH {
                    self.flush_files()?;
                }
            }
            SnapshotItem::Backup(b) => self.vault.put_backup(b)?,
        }
        Ok(())
    }

    fn flush_acks(&mut self) -> Result<()> {
        if !self.acks.is_empty() {
            self.vault.record_acks(&self.acks)?;
            self.acks.clear();
        }
        Ok(())
    }

    fn flush_files(&mut self) -> Result<()> {
        // Shares first: a pack's record takes its coding from them.
        self.flush_acks()?;
        if !self.files.is_empty() {
            self.vault.insert_imported(&self.files)?;
            self.imported += self.files.iter().filter(|f| f.trashed.is_none()).count();
            self.files.clear();
        }
        Ok(())
    }

    /// Writes what is left; returns the visible file versions imported (those in the trash
    /// come back too, in the trash, and are not counted: what a user lists afterwards).
    pub fn finish(mut self) -> Result<usize> {
        self.flush_files()?;
        self.flush_acks()?;
        Ok(self.imported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupKind;

    /// A backup record whose body is handed to the sink as it lies gives the very bytes of the
    /// record encoded whole, and they read back as it was.
    #[test]
    fn a_backup_record_streamed_is_the_record_encoded_whole() {
        for body_len in [0usize, 1, 127, 128, 300, 70_000] {
            let record = BackupRecord {
                kind: BackupKind::Snapshot,
                job: "papers".into(),
                no: 300,
                head: b"summary".to_vec(),
                body: (0..=250u8).cycle().take(body_len).collect(),
            };
            let (mut whole, mut streamed) = (Vec::new(), Vec::new());
            let mut sink = |b: &[u8]| {
                whole.extend_from_slice(b);
                Ok(())
            };
            RecordWriter::new("alice", &mut sink)
                .unwrap()
                .write(&Record::Backup(record.clone()))
                .unwrap();
            let mut sink = |b: &[u8]| {
                streamed.extend_from_slice(b);
                Ok(())
            };
            RecordWriter::new("alice", &mut sink)
                .unwrap()
                .backup(record.clone())
                .unwrap();
            assert_eq!(streamed, whole, "body of {body_len} bytes");
            let snapshot = VaultSnapshot {
                version: SNAPSHOT_VERSION,
                account: "alice".into(),
                files: Vec::new(),
                shares: Vec::new(),
                backups: vec![record.clone()],
            };
            let read = VaultSnapshot::from_bytes(&snapshot.to_bytes().unwrap()).unwrap();
            assert_eq!(read.backups, [record]);
        }
    }
}
