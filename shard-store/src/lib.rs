//! shard's data path: a file in, encrypted erasure-coded shares out, and back.
//!
//! What it is for: the pure, synchronous core that every other part of shard builds on —
//! keyed content-defined chunking ([`KeyedFastCdc`] behind the [`Chunker`] trait), chunk ids,
//! Padmé padding, sealing (through `shard-crypto`), Reed-Solomon `k`-of-`n` coding, and the
//! share format of `shard-proto` — and where shares rest: the durable [`ShareStore`]s a node
//! keeps for other owners. What it is not for: networking or deciding where shares go.
//!
//! ```
//! use std::sync::Arc;
//! use shard_crypto::{Label, VaultKey, VaultKeys};
//! use shard_store::{ChunkDecoder, ChunkEncoder, ChunkSizes, KeyedFastCdc, Redundancy, Splitter};
//!
//! let keys = Arc::new(VaultKeys::derive(&VaultKey::generate()?));
//! let chunker = KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), ChunkSizes::DEFAULT)?;
//! let encoder = ChunkEncoder::new(keys.clone(), Redundancy::new(3, 5)?)?;
//!
//! let file = vec![42u8; 100_000];
//! let mut chunks = Vec::new();
//! let manifest = Splitter::new(&file[..], chunker, encoder).run(|c| Ok(chunks.push(c)))?;
//!
//! // Lose two of the five shares of every chunk: the file still comes back.
//! let mut decoder = ChunkDecoder::new(keys);
//! let mut restored = Vec::new();
//! for c in &chunks {
//!     restored.extend(decoder.decode(&c.chunk, &c.shares[2..])?);
//! }
//! assert_eq!(restored, file);
//! assert_eq!(manifest.size, 100_000);
//! # Ok::<(), shard_store::Error>(())
//! ```

mod buffers;
mod catalog;
mod chunker;
mod erasure;
mod error;
mod heads;
mod pack;
mod padding;
mod parallel;
mod pipeline;
mod share_store;
mod stream;

pub use buffers::BufferPool;
pub use catalog::{
    Account, AccountId, AckedShare, BackupKind, BackupRecord, Catalog, Encoding, FileEntry, FileId,
    FileKind, FileMeta, FileStamp, KeptHead, LiveBlob, NewFile, PackUsage, PackedBlob, PeerRecord,
    Relocated, SCHEMA_VERSION, SNAPSHOT_VERSION, ShareRecord, ShareState, SnapshotFile,
    SnapshotImport, SnapshotItem, SnapshotReader, SnapshotShare, StampedEntry, StoredBlob,
    TrashedEntry, VaultCatalog, VaultSnapshot, VaultState, unix_now_ms,
};
pub use chunker::{ChunkReader, ChunkSizes, Chunker, KeyedFastCdc};
pub use erasure::ErasureCoder;
pub use error::{Error, Result};
pub use heads::{HeadStore, StoredHead};
pub use pack::{
    BLOB_FORMAT, Blob, BlobPlace, EncodedPack, FULL_PACK_MAX, Pack, PackBuilder, PackCoder,
    PackShape, Packing, Piece, SHARE_CLASSES, blob_from_shares, blob_in_pack, open_blob,
};
pub use padding::{PADDING_SCHEME, pad_into, padded_len, padme, unpad};
pub use parallel::{
    ChunkSource, Feeder, Sealed, SealedChunk, SplitChunk, restore_parallel, seal_parallel,
    split_parallel,
};
pub use pipeline::{
    CHUNK_FORMAT, ChunkDecoder, ChunkEncoder, EncodedChunk, ParseRedundancyError, Redundancy,
    check_share,
};
pub use share_store::{
    DiskOptions, DiskStore, Layout, MemoryStore, ScrubReport, ShareStore, Usage,
};
pub use stream::{RestoreReport, ShareSource, Splitter, restore};
