//! The one error type of `shard-crypto`.

/// Everything that can go wrong in `shard-crypto`; each variant is something a caller can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The passphrase did not unwrap the vault key (or the key record was tampered with).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A sealed value failed authentication: it was altered, truncated, or sealed under another key.
    #[error("authentication failed: the data was altered or belongs to another key")]
    Unauthentic,
    /// Key-derivation parameters outside the range this build accepts.
    #[error("key-derivation parameters out of range: {0}")]
    KdfParams(&'static str),
    /// A key record could not be parsed.
    #[error("malformed key record: {0}")]
    MalformedKeyRecord(&'static str),
    /// A key record written by a newer (or unknown) format version.
    #[error("key record version {0} is not supported by this build")]
    UnsupportedKeyRecord(u8),
    /// The recovery code has the wrong number of characters.
    #[error("recovery code has {found} characters, expected {expected} (8 groups of 8)")]
    RecoveryCodeLength {
        /// Characters found after removing spaces and dashes.
        found: usize,
        /// Characters a recovery code has.
        expected: usize,
    },
    /// One group of the recovery code has a character outside the alphabet.
    #[error("recovery code group {group} contains {ch:?}, which is not a recovery-code character")]
    RecoveryCodeCharacter {
        /// 1-based group number.
        group: usize,
        /// The offending character.
        ch: char,
    },
    /// One group's check character does not match: that group was mistyped.
    #[error("recovery code group {group} is mistyped (its check character does not match)")]
    RecoveryCodeGroup {
        /// 1-based group number.
        group: usize,
    },
    /// Every group checks, but the code as a whole does not (several errors, or groups swapped).
    #[error("recovery code checksum does not match: check the order of the groups")]
    RecoveryCodeChecksum,
    /// A recovery code of a format version this build does not know.
    #[error("recovery code version {0} is not supported by this build")]
    UnsupportedRecoveryCode(u8),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// A sealed value is larger than AES-GCM can handle or its length is invalid.
    #[error("invalid length for sealing: {0}")]
    Length(&'static str),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
