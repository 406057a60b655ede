//! Keys and cryptography for shard: vault keys, passphrase key wrap, subkeys, MACs, sealing and
//! recovery codes.
//!
//! What it is for: every secret in shard is born, derived, wrapped and used here, through small
//! typed APIs, so the rest of the code never names a cipher. What it is not for: I/O, storage or
//! networking (the Noise channel lives in `shard-net`, built on `snow`). The primitives are
//! RustCrypto's — AES-256-GCM (one message, or a long one as a stream of segments: the STREAM
//! construction of `aead-stream`), SHA-256, HMAC, HKDF, Argon2id, and Ed25519 (`ed25519-dalek`,
//! which implements RustCrypto's `signature` traits) for the vault authority — and BLAKE3 (the
//! `blake3` crate, its authors' reference implementation), keyed for chunk ids.
//!
//! Secrets ([`SecretKey`], [`VaultKey`], [`VaultKeys`]) are zeroized on drop, never printed by
//! `Debug`, and compared in constant time.
//!
//! ```
//! use shard_crypto::{KdfParams, KeyRecord, VaultKey, VaultKeys, decode_recovery_code,
//!                    encode_recovery_code};
//!
//! // A new account: a random vault key, wrapped under the passphrase.
//! let key = VaultKey::generate()?;
//! let record = KeyRecord::wrap(&key, b"correct horse battery", KdfParams::INSECURE_FAST)?;
//! assert_eq!(record.unwrap_key(b"correct horse battery")?, key);
//! assert!(record.unwrap_key(b"wrong").is_err());
//!
//! // The recovery code gives the same vault back.
//! let code = encode_recovery_code(&key);
//! assert_eq!(decode_recovery_code(&code)?, key);
//!
//! // Per-purpose keys come from the vault key.
//! let keys = VaultKeys::derive(&key);
//! let id = keys.chunk_id(b"some chunk");
//! assert!(keys.verify_chunk_id(b"some chunk", &id));
//!
//! // Only the vault key's holder can sign for the vault; anyone can check it by the vault id.
//! let signature = keys.authority().sign(b"delete these shares");
//! let public = keys.authority().public();
//! assert!(public.verify(&keys.vault_id(), b"delete these shares", &signature).is_ok());
//! # Ok::<(), shard_crypto::Error>(())
//! ```

mod aead;
mod authority;
mod error;
mod kdf;
mod key_record;
mod keys;
mod recovery;
mod secret;
mod stream;

pub use aead::{NONCE_LEN, SEAL_OVERHEAD, TAG_LEN, open, seal, seal_in_place};
pub use authority::{AUTHORITY_KEY_LEN, AuthorityKey, SIGNATURE_LEN, VaultAuthority};
pub use error::{Error, Result};
pub use kdf::{KdfParams, SALT_LEN, derive_kek};
pub use key_record::{KEY_RECORD_LEN, KeyRecord};
pub use keys::{
    ChunkFormat, Label, MAC_LEN, VAULT_ID_LEN, VaultId, VaultKey, VaultKeys, hmac_sha256,
    verify_hmac_sha256,
};
pub use recovery::{RECOVERY_CODE_CHARS, decode_recovery_code, encode_recovery_code};
pub use secret::{KEY_LEN, SecretKey, ct_eq, extend_zeroizing, fill_random};
pub use stream::{SEGMENT_LEN, STREAM_HEADER_LEN, StreamOpener, StreamSealer};

/// SHA-256 of `data` (node ids, vault ids, checksums; share ids are BLAKE3 since format 2).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
