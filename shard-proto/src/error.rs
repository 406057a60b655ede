//! The one error type of `shard-proto`.

/// A decoding or validation failure. Decoders return these for any input; they never panic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The bytes do not start with the expected magic: not a shard share.
    #[error("not a shard share (bad magic)")]
    BadMagic,
    /// A format version this build cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// A header field is out of range.
    #[error("invalid share header: {0}")]
    InvalidHeader(&'static str),
    /// Fewer bytes than the format requires.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the format requires.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// More bytes than the header announces.
    #[error("trailing bytes: header announces {expected} bytes, found {found}")]
    TrailingBytes {
        /// Bytes the header announced.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A text id that is not 64 hex digits.
    #[error("invalid id {0:?}: expected 64 hex digits")]
    InvalidId(String),
    /// A frame longer than the protocol allows; the connection must be closed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame whose body does not decode as a message.
    #[error("malformed message: {0}")]
    MalformedMessage(&'static str),
    /// A manifest that does not decode or is inconsistent.
    #[error("invalid manifest: {0}")]
    InvalidManifest(&'static str),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
