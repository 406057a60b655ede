//! shard's formats: the share, the ids, the manifest of a stored file, and the peer protocol's
//! frames and messages.
//!
//! What it is for: defining, byte by byte and versioned, everything shard writes to a disk or
//! a socket, as pure functions over byte slices that can be fuzzed. What it is not for: I/O,
//! keys or cryptography beyond the BLAKE3 of share ids. Decoders never panic and never
//! allocate from an unchecked length.
//!
//! ```
//! use bytes::Bytes;
//! use shard_proto::{Share, ShareHeader};
//!
//! let header = ShareHeader::new(3, 5, 0, 4)?;
//! let share = Share::new(header, Bytes::from_static(b"\x01\x02\x03\x04"))?;
//! let parsed = Share::parse(&share.to_bytes())?;
//! assert_eq!(parsed.id(), share.id());
//! assert!(Share::parse(b"not a share").is_err());
//! # Ok::<(), shard_proto::Error>(())
//! ```
#![warn(clippy::indexing_slicing)]

mod error;
mod ids;
mod manifest;
mod share;
mod wire;

pub use error::{Error, Result};
pub use ids::{ChunkId, NAMESPACE_LEN, Namespace, NodeId, PackId, ShareId};
pub use manifest::{
    BLOB_OVERHEAD, BlobAt, ChunkRef, CompactManifest, Manifest, PACK_SHARE_SALT, PackRef,
};
pub use share::{
    MAX_SHARE_PAYLOAD, MAX_SHARES, SHARE_HEADER_LEN, SHARE_MAGIC, SHARE_VERSION, Share,
    ShareHeader, share_id,
};
pub use wire::{
    CHALLENGE_LEN, ErrorCode, FRAME_HEADER_LEN, MAX_ADOPT_FROM, MAX_FRAME, MAX_HEAD,
    MAX_HEADS_LISTED, MAX_IDS_PER_REQUEST, Message, PROTOCOL_VERSION, Request, Response, VaultAuth,
    VaultOp, VaultRef, decode_frame, encode_frame, encode_share_frame_prefix, frame_len,
};
