//! The vault key and everything derived from it.
//!
//! Derivation (format version 1):
//! ```text
//! prk            = HKDF-Extract(salt = "shard vault v1", ikm = vault key)
//! subkey(label)  = HKDF-Expand(prk, info = label, 32 bytes)        labels: see [`Label`]
//! authority      = Ed25519 key of subkey(VaultAuthority)          (see authority.rs)
//! vault id       = SHA-256("shard/v1/vault-id/ed25519" ‖ authority public key)[0..16]
//! chunk id       = HMAC-SHA256(subkey(ChunkId), plaintext)
//! chunk key      = HKDF-Expand(prk, info = "shard/v1/chunk-key/" ‖ version ‖ padding
//!                                      ‖ padded length (u32 LE) ‖ chunk id, 32 bytes)
//! chunk AAD      = "shard chunk" ‖ version ‖ padding ‖ padded length (u32 LE) ‖ chunk id
//! ```
//! Chunks are sealed with their chunk key and an all-zero nonce. The padded plaintext is the
//! chunk (fixed by its id), a marker and zeros up to the padded length, so the key fixes every
//! byte it seals: the same chunk padded for another `k` (another length) gets another key, and
//! one key never seals two different plaintexts.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::aead::{open, open_fixed, seal_fixed, seal_in_place};
use crate::authority::VaultAuthority;
use crate::{Error, KEY_LEN, Result, SecretKey, ct_eq};

const EXTRACT_SALT: &[u8] = b"shard vault v1";
const CHUNK_KEY_INFO: &[u8] = b"shard/v1/chunk-key/";
const CHUNK_AAD: &[u8] = b"shard chunk";

/// Length of a vault id.
pub const VAULT_ID_LEN: usize = 16;
/// Length of a MAC: a keyed BLAKE3 chunk id, an HMAC-SHA256 name index entry.
pub const MAC_LEN: usize = 32;

/// The root secret of a vault: 256 random bits. Everything else is derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultKey(SecretKey);

impl VaultKey {
    /// A new random vault key.
    pub fn generate() -> Result<Self> {
        Ok(Self(SecretKey::random()?))
    }

    /// Wraps existing key bytes (from a recovery code or an unwrapped key record).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(SecretKey::from_bytes(bytes))
    }

    /// The key bytes. Never log them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose()
    }

    /// The public identifier of this vault: the hash of its authority's public key (so it
    /// reveals nothing of the key, and certifies the authority to peers).
    pub fn vault_id(&self) -> VaultId {
        authority_of(&self.prk()).public().vault_id()
    }

    fn prk(&self) -> SecretKey {
        let (mut prk, _) = Hkdf::<Sha256>::extract(Some(EXTRACT_SALT), self.0.expose());
        let mut out = SecretKey::from_bytes([0; KEY_LEN]);
        out.expose_mut().copy_from_slice(&prk);
        prk.zeroize();
        out
    }
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

/// A vault's public identifier: names its namespace on peers and its catalog head.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultId(pub [u8; VAULT_ID_LEN]);

impl std::fmt::Display for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultId({self})")
    }
}

/// Purposes of the 256-bit subkeys derived from a vault key. Each has its own HKDF label, so no
/// two purposes ever share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Key of the keyed BLAKE3 that makes chunk ids (dedup within the vault).
    ChunkId,
    /// Seed of the keyed chunker's gear table.
    ChunkerSeed,
    /// AEAD key for catalog fields and catalog snapshots.
    Catalog,
    /// HMAC key for the name index (lookups by name without storing names).
    NameIndex,
    /// MAC key that signs the vault's catalog head on peers.
    CatalogHead,
    /// Seed of the vault authority's Ed25519 key.
    VaultAuthority,
}

impl Label {
    /// Every label, for tests that check they are distinct.
    pub const ALL: [Label; 6] = [
        Label::ChunkId,
        Label::ChunkerSeed,
        Label::Catalog,
        Label::NameIndex,
        Label::CatalogHead,
        Label::VaultAuthority,
    ];

    /// The HKDF info string of this label.
    pub fn info(self) -> &'static [u8] {
        match self {
            // v2: the key of a keyed BLAKE3 (it was an HMAC-SHA256 key under "v1").
            Label::ChunkId => b"shard/v2/chunk-id",
            Label::ChunkerSeed => b"shard/v1/chunker-seed",
            Label::Catalog => b"shard/v1/catalog",
            Label::NameIndex => b"shard/v1/name-index",
            Label::CatalogHead => b"shard/v1/catalog-head",
            Label::VaultAuthority => b"shard/v1/vault-authority",
        }
    }
}

/// The chunk format a sealed chunk was written in. Part of the chunk key's derivation, so a
/// change of format or padding scheme never reuses a (key, nonce) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkFormat {
    /// Share/chunk format version.
    pub version: u8,
    /// Padding scheme id.
    pub padding: u8,
}

/// All keys of an unlocked vault, derived once at login. Zeroized when dropped.
pub struct VaultKeys {
    vault_id: VaultId,
    /// HKDF pseudo-random key; kept instead of an `Hkdf` so it is wiped on drop.
    prk: SecretKey,
    chunk_id: SecretKey,
    authority: VaultAuthority,
}

impl VaultKeys {
    /// Derives every subkey of `key`.
    pub fn derive(key: &VaultKey) -> Self {
        let prk = key.prk();
        let chunk_id = expand_key(&prk, Label::ChunkId.info());
        let authority = authority_of(&prk);
        Self {
            vault_id: authority.public().vault_id(),
            prk,
            chunk_id,
            authority,
        }
    }

    /// The vault authority: signs what peers allow only the vault's owner to do.
    pub fn authority(&self) -> &VaultAuthority {
        &self.authority
    }

    /// The vault's public id.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// The subkey for `label`.
    pub fn subkey(&self, label: Label) -> SecretKey {
        expand_key(&self.prk, label.info())
    }

    /// Chunk id: keyed BLAKE3 of the plaintext under the vault's chunk-id key (a PRF, as
    /// HMAC-SHA256 was in format 1, and measured 3.3× as fast here).
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; MAC_LEN] {
        *blake3::keyed_hash(self.chunk_id.expose(), plaintext).as_bytes()
    }

    /// True when `plaintext` has chunk id `expected` (constant-time comparison).
    pub fn verify_chunk_id(&self, plaintext: &[u8], expected: &[u8; MAC_LEN]) -> bool {
        ct_eq(&self.chunk_id(plaintext), expected)
    }

    /// Seals a padded chunk in place (appends the 16-byte tag) under its chunk key, which is
    /// bound to the padded length `buf` has now.
    pub fn seal_chunk(
        &self,
        chunk_id: &[u8; MAC_LEN],
        format: ChunkFormat,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let padded = padded_len_field(buf.len())?;
        let key = self.chunk_key(chunk_id, format, padded);
        seal_fixed(&key, &chunk_aad(chunk_id, format, padded), buf)
    }

    /// Seals one chunk as a blob for a pack: under its chunk key (bound to the id, the format
    /// and the plaintext's length), with a fresh random nonce, so the same chunk sealed again
    /// (packed a second time) gives unrelated bytes. `buf`, the plaintext, becomes
    /// `nonce ‖ ciphertext ‖ tag` ([`crate::SEAL_OVERHEAD`] bytes longer).
    pub fn seal_blob(
        &self,
        chunk_id: &[u8; MAC_LEN],
        format: ChunkFormat,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let len = padded_len_field(buf.len())?;
        let key = self.chunk_key(chunk_id, format, len);
        seal_in_place(&key, &chunk_aad(chunk_id, format, len), buf)
    }

    /// The plaintext of a blob [`VaultKeys::seal_blob`] made. [`Error::Unauthentic`] if
    /// anything differs: the bytes, the id, the format or the length.
    pub fn open_blob(
        &self,
        chunk_id: &[u8; MAC_LEN],
        format: ChunkFormat,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let len = sealed
            .len()
            .checked_sub(crate::SEAL_OVERHEAD)
            .ok_or(Error::Unauthentic)?;
        let len = padded_len_field(len)?;
        let key = self.chunk_key(chunk_id, format, len);
        open(&key, &chunk_aad(chunk_id, format, len), sealed)
    }

    /// Opens a sealed chunk in place (removes the tag). [`Error::Unauthentic`] if anything
    /// differs: the bytes, the id, the format or the padded length.
    pub fn open_chunk(
        &self,
        chunk_id: &[u8; MAC_LEN],
        format: ChunkFormat,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let sealed = buf
            .len()
            .checked_sub(crate::TAG_LEN)
            .ok_or(Error::Unauthentic)?;
        let padded = padded_len_field(sealed)?;
        let key = self.chunk_key(chunk_id, format, padded);
        open_fixed(&key, &chunk_aad(chunk_id, format, padded), buf)
    }

    fn chunk_key(
        &self,
        chunk_id: &[u8; MAC_LEN],
        format: ChunkFormat,
        padded: [u8; 4],
    ) -> SecretKey {
        let mut key = SecretKey::from_bytes([0; KEY_LEN]);
        let info: [&[u8]; 4] = [
            CHUNK_KEY_INFO,
            &[format.version, format.padding],
            &padded,
            chunk_id,
        ];
        if expander(&self.prk)
            .expand_multi_info(&info, key.expose_mut())
            .is_err()
        {
            unreachable!("32-byte HKDF output is always valid");
        }
        key
    }
}

impl std::fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKeys")
            .field("vault_id", &self.vault_id)
            .finish_non_exhaustive()
    }
}

fn chunk_aad(chunk_id: &[u8; MAC_LEN], format: ChunkFormat, padded: [u8; 4]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CHUNK_AAD.len() + 2 + 4 + MAC_LEN);
    aad.extend_from_slice(CHUNK_AAD);
    aad.extend_from_slice(&[format.version, format.padding]);
    aad.extend_from_slice(&padded);
    aad.extend_from_slice(chunk_id);
    aad
}

/// The padded length as the chunk key binds it (u32 little-endian; chunks are far below 4 GiB).
fn padded_len_field(len: usize) -> Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| Error::Length("a chunk of 4 GiB or more"))
}

/// The vault authority of the vault whose HKDF pseudo-random key is `prk`.
fn authority_of(prk: &SecretKey) -> VaultAuthority {
    let seed = expand_key(prk, Label::VaultAuthority.info());
    VaultAuthority::from_seed(seed.expose())
}

fn expander(prk: &SecretKey) -> Hkdf<Sha256> {
    match Hkdf::<Sha256>::from_prk(prk.expose()) {
        Ok(hkdf) => hkdf,
        // A 32-byte PRK is exactly SHA-256's output length, which `from_prk` accepts.
        Err(_) => unreachable!("32-byte PRK is always valid"),
    }
}

fn expand_key(prk: &SecretKey, info: &[u8]) -> SecretKey {
    let mut key = SecretKey::from_bytes([0; KEY_LEN]);
    if expander(prk).expand(info, key.expose_mut()).is_err() {
        unreachable!("32-byte HKDF output is always valid");
    }
    key
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &SecretKey, data: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts any key length; only an impossible internal error could make this fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose()) else {
        unreachable!("HMAC accepts 32-byte keys")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA256 tag in constant time.
pub fn verify_hmac_sha256(key: &SecretKey, data: &[u8], tag: &[u8]) -> Result<()> {
    if ct_eq(&hmac_sha256(key, data), tag) {
        Ok(())
    } else {
        Err(Error::Unauthentic)
    }
}
