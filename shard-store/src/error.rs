//! The one error type of `shard-store`.

use shard_proto::{ChunkId, ShareId};

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
        /// Id of the share as received (its SHA-256).
        share: ShareId,
        /// The chunk it was offered for.
        chunk: ChunkId,
        /// What did not match.
        reason: &'static str,
    },
    /// The rebuilt chunk failed authentication or its id: the shares are inconsistent.
    #[error("chunk {chunk} is corrupt: {reason}")]
    CorruptChunk {
        /// The chunk.
        chunk: ChunkId,
        /// What failed.
        reason: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
