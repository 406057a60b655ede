//! The one error type of `shard-store`.

use std::path::PathBuf;

use shard_proto::{ChunkId, PackId, ShareId};

/// Everything that can go wrong in the data path, as variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A cryptographic operation failed.
    #[error(transparent)]
    Crypto(#[from] shard_crypto::Error),
    /// Bytes that do not follow a shard format.
    #[error(transparent)]
    Format(#[from] shard_proto::Error),
    /// Parameters (k, n, chunk sizes) out of range.
    #[error("invalid parameters: {0}")]
    InvalidParameters(&'static str),
    /// Fewer than `k` good shares of a chunk could be found.
    #[error("not enough shares for chunk {chunk}: have {have} good, need {need}")]
    NotEnoughShares {
        /// The chunk that cannot be rebuilt.
        chunk: ChunkId,
        /// Good shares found.
        have: usize,
        /// Shares needed (`k`).
        need: usize,
    },
    /// A share that is not the one the manifest names (altered, truncated or from elsewhere).
    #[error("share {share} does not belong to chunk {chunk}: {reason}")]
    ShareMismatch {
        /// Id of the share as received (its BLAKE3).
        share: ShareId,
        /// The chunk it was offered for.
        chunk: ChunkId,
        /// What did not match.
        reason: &'static str,
    },
    /// Fewer than `k` good shares of a pack could be found.
    #[error("not enough shares for pack {pack}: have {have} good, need {need}")]
    NotEnoughPackShares {
        /// The pack that cannot be rebuilt.
        pack: PackId,
        /// Good shares found.
        have: usize,
        /// Shares needed (`k`).
        need: usize,
    },
    /// A byte range that does not lie within its pack (a catalog entry that cannot be right).
    #[error("bytes {offset}+{len} do not lie within the pack's {pack_len} bytes")]
    OutsidePack {
        /// First byte.
        offset: u64,
        /// Bytes.
        len: u64,
        /// The pack's length.
        pack_len: u64,
    },
    /// A byte range of a share that the share does not have (empty, reversed, or past its
    /// payload's end).
    #[error("bytes {start}..{end} are not within share {share}'s {len} payload bytes")]
    RangeOutOfBounds {
        /// The share.
        share: ShareId,
        /// First byte asked for.
        start: u32,
        /// One past the last byte asked for.
        end: u32,
        /// The share's payload length.
        len: u32,
    },
    /// The store is full: its quota is reached or the disk reported no space. Nothing of the
    /// failed write is kept; every earlier share is intact.
    #[error("share store is full: {needed} more bytes needed, {free} free (quota or disk)")]
    Full {
        /// Bytes the write needed (0 when the disk ran out mid-write).
        needed: u64,
        /// Bytes left under the quota (0 when the disk ran out).
        free: u64,
    },
    /// A stored share no longer matches its id; it was quarantined and will not be served.
    #[error("share {share} is corrupt on disk and was quarantined")]
    Corrupt {
        /// The share.
        share: ShareId,
    },
    /// The store's root folder does not exist.
    #[error("store folder {0} does not exist: create it or choose another")]
    RootMissing(PathBuf),
    /// The store's root is not a folder.
    #[error("{0} is not a folder")]
    NotADirectory(PathBuf),
    /// The store's root cannot be written (permissions).
    #[error("cannot write in {0}: check its permissions")]
    NotWritable(PathBuf),
    /// The store's filesystem is mounted read-only.
    #[error("{0} is on a read-only filesystem")]
    ReadOnly(PathBuf),
    /// The store's or catalog's SQLite database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The share store holds shares of data format 1 (SHA-256 ids), written by an earlier,
    /// unreleased build: not read, and not called corrupt either.
    #[error(
        "this node's share store holds {shares} shares of data format 1 (an earlier, unreleased build), which this build does not read; start a new node home (`shard init --home DIR`) and pair it again"
    )]
    ShareStoreOfFormat1 {
        /// How many shares it holds.
        shares: i64,
    },
    /// The index holds something this build would never have written.
    #[error("store index is damaged: {0}")]
    IndexDamaged(&'static str),
    /// A catalog head older than (or as old as) the one kept.
    #[error("catalog head {got} is not newer than the one kept ({have}); nothing was replaced")]
    StaleHead {
        /// Sequence number kept.
        have: u64,
        /// Sequence number offered.
        got: u64,
    },
    /// A catalog head from a node that is not the vault's owner of record (a recovered vault
    /// is handed over first).
    #[error("only the node that holds the vault's shares here may replace its catalog head")]
    NotHeadOwner,
    /// A catalog head for a vault the sending node keeps no shares of here.
    #[error("no catalog head is kept for a vault whose shares are not stored here")]
    NoSharesForHead,
    /// An account of that name exists already.
    #[error("an account named {0:?} exists already")]
    AccountExists(String),
    /// No account of that name or id.
    #[error("no account named {0:?}")]
    NoSuchAccount(String),
    /// No stored file (or version) matches.
    #[error("no stored file matches {0:?}")]
    NoSuchFile(String),
    /// A file cannot become visible: some of its shares are not acknowledged yet.
    #[error("chunk {chunk} still has {unacked} unacknowledged shares")]
    NotAcknowledged {
        /// A chunk with unacknowledged shares.
        chunk: ChunkId,
        /// How many of its shares are not acknowledged.
        unacked: u64,
    },
    /// A file's chunk list names a pack the catalog has no record of (or a record without its
    /// share ids): the catalog was damaged or edited, since a pack's record goes only with the
    /// last file that uses it.
    #[error("the catalog lists a file in pack {0}, of which it has no record")]
    UnknownPack(shard_proto::PackId),
    /// A catalog database written by a newer build.
    #[error("catalog schema version {0} is newer than this build understands")]
    NewerCatalog(i64),
    /// A catalog with accounts written by a development build whose vault ids and chunk keys
    /// this build no longer derives (nothing released wrote one).
    #[error(
        "catalog schema version {0} holds accounts of an earlier, unreleased data format (format 1 or older) this build cannot read; start a new node home (`shard init --home DIR`) and store the files again"
    )]
    OlderCatalog(i64),
    /// The rebuilt chunk failed authentication or its id: the shares are inconsistent.
    #[error("chunk {chunk} is corrupt: {reason}")]
    CorruptChunk {
        /// The chunk.
        chunk: ChunkId,
        /// What failed.
        reason: &'static str,
    },
    /// A parallel split whose consumer stopped taking chunks (a put that ended early).
    #[error("the data path was stopped: the chunks' consumer went away")]
    Stopped,
    /// A worker thread of the data path panicked: a bug. The operation fails instead of
    /// hanging or unwinding through its caller's cleanup.
    #[error("a worker of the data path crashed (a bug in shard); nothing was written past it")]
    WorkerPanicked,
}

impl Error {
    /// Maps an I/O error from writing shares: a full disk or quota is [`Error::Full`], a
    /// read-only filesystem [`Error::ReadOnly`], anything else [`Error::Io`].
    pub(crate) fn from_write(e: std::io::Error, path: &std::path::Path) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Error::Full { needed: 0, free: 0 },
            ErrorKind::ReadOnlyFilesystem => Error::ReadOnly(path.to_path_buf()),
            ErrorKind::PermissionDenied => Error::NotWritable(path.to_path_buf()),
            _ => Error::Io(e),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
