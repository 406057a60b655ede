//! The key record: a vault key wrapped under a passphrase, as stored in the owner's catalog.
//!
//! Format version 1, 108 bytes, integers little-endian:
//! ```text
//! offset  len  field
//!      0    3  magic "SKR"
//!      3    1  version = 1
//!      4    4  Argon2id memory, KiB
//!      8    4  Argon2id passes
//!     12    4  Argon2id lanes
//!     16   16  salt (random)
//!     32   16  vault id
//!     48   12  nonce (random)
//!     60   32  vault key, encrypted with AES-256-GCM under the Argon2id key
//!     92   16  GCM tag; the AAD is bytes 0..48, so parameters and vault id cannot be altered
//! ```

use crate::aead::{open, seal};
use crate::kdf::{KdfParams, SALT_LEN, derive_kek};
use crate::keys::{VAULT_ID_LEN, VaultId, VaultKey};
use crate::{Error, KEY_LEN, Result, fill_random};

const MAGIC: &[u8; 3] = b"SKR";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 48;
/// Length of an encoded version-1 key record.
pub const KEY_RECORD_LEN: usize = HEADER_LEN + crate::aead::SEAL_OVERHEAD + KEY_LEN;

/// A vault key wrapped under a passphrase-derived key. Holds no secret in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    bytes: [u8; KEY_RECORD_LEN],
}

impl KeyRecord {
    /// Wraps `key` under `passphrase` with a fresh salt and nonce.
    pub fn wrap(key: &VaultKey, passphrase: &[u8], params: KdfParams) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let mut header = [0u8; HEADER_LEN];
        header[..3].copy_from_slice(MAGIC);
        header[3] = VERSION;
        header[4..8].copy_from_slice(&params.m_kib.to_le_bytes());
        header[8..12].copy_from_slice(&params.t.to_le_bytes());
        header[12..16].copy_from_slice(&params.p.to_le_bytes());
        header[16..32].copy_from_slice(&salt);
        header[32..48].copy_from_slice(&key.vault_id().0);
        let kek = derive_kek(passphrase, &salt, params)?;
        let sealed = seal(&kek, &header, key.expose())?;
        let mut bytes = [0u8; KEY_RECORD_LEN];
        bytes[..HEADER_LEN].copy_from_slice(&header);
        bytes[HEADER_LEN..].copy_from_slice(&sealed);
        Ok(Self { bytes })
    }

    /// Unwraps the vault key. A wrong passphrase gives [`Error::WrongPassphrase`].
    pub fn unwrap_key(&self, passphrase: &[u8]) -> Result<VaultKey> {
        let (header, sealed) = self.bytes.split_at(HEADER_LEN);
        let kek = derive_kek(passphrase, &self.salt(), self.params())?;
        let mut plain = open(&kek, header, sealed).map_err(|_| Error::WrongPassphrase)?;
        let key_bytes: Result<[u8; KEY_LEN]> = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::MalformedKeyRecord("wrapped key has the wrong length"));
        zeroize::Zeroize::zeroize(&mut plain);
        let key = VaultKey::from_bytes(key_bytes?);
        if key.vault_id() != self.vault_id() {
            return Err(Error::MalformedKeyRecord("vault id does not match the key"));
        }
        Ok(key)
    }

    /// The same key under a new passphrase (fresh salt and nonce); the old passphrase no longer
    /// opens the new record.
    pub fn rewrap(&self, old: &[u8], new: &[u8], params: KdfParams) -> Result<Self> {
        Self::wrap(&self.unwrap_key(old)?, new, params)
    }

    /// The vault this record unlocks.
    pub fn vault_id(&self) -> VaultId {
        let mut id = [0u8; VAULT_ID_LEN];
        id.copy_from_slice(&self.bytes[32..48]);
        VaultId(id)
    }

    /// The Argon2id parameters this record was made with.
    pub fn params(&self) -> KdfParams {
        KdfParams {
            m_kib: self.u32_at(4),
            t: self.u32_at(8),
            p: self.u32_at(12),
        }
    }

    fn salt(&self) -> [u8; SALT_LEN] {
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&self.bytes[16..32]);
        salt
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_le_bytes(b)
    }

    /// The encoded record.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parses an encoded record, checking magic, version, length and parameter ranges.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 4 || &bytes[..3] != MAGIC {
            return Err(Error::MalformedKeyRecord("not a key record"));
        }
        if bytes[3] != VERSION {
            return Err(Error::UnsupportedKeyRecord(bytes[3]));
        }
        let bytes: [u8; KEY_RECORD_LEN] = bytes
            .try_into()
            .map_err(|_| Error::MalformedKeyRecord("wrong length"))?;
        let record = Self { bytes };
        record.params().validate()?;
        Ok(record)
    }
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("vault_id", &self.vault_id())
            .field("params", &self.params())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams::INSECURE_FAST;

    #[test]
    fn wrap_unwrap_roundtrip_through_bytes() {
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, b"a long passphrase", FAST).unwrap();
        let parsed = KeyRecord::from_bytes(record.as_bytes()).unwrap();
        assert_eq!(parsed.unwrap_key(b"a long passphrase").unwrap(), key);
        assert_eq!(parsed.vault_id(), key.vault_id());
        assert_eq!(parsed.params(), FAST);
    }

    #[test]
    fn wrong_passphrase_is_a_typed_error() {
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, b"a long passphrase", FAST).unwrap();
        assert_eq!(
            record.unwrap_key(b"a long passphrasE"),
            Err(Error::WrongPassphrase)
        );
        assert_eq!(record.unwrap_key(b""), Err(Error::WrongPassphrase));
    }

    #[test]
    fn default_parameters_work_and_are_the_designed_ones() {
        assert_eq!(
            KdfParams::DEFAULT,
            KdfParams {
                m_kib: 65536,
                t: 3,
                p: 1
            }
        );
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, b"a long passphrase", KdfParams::DEFAULT).unwrap();
        assert_eq!(record.unwrap_key(b"a long passphrase").unwrap(), key);
        assert_eq!(
            record.unwrap_key(b"wrong one!"),
            Err(Error::WrongPassphrase)
        );
    }

    #[test]
    fn rewrap_retires_the_old_passphrase() {
        let key = VaultKey::generate().unwrap();
        let old = KeyRecord::wrap(&key, b"old passphrase", FAST).unwrap();
        let new = old
            .rewrap(b"old passphrase", b"new passphrase", FAST)
            .unwrap();
        assert_eq!(new.unwrap_key(b"new passphrase").unwrap(), key);
        assert_eq!(
            new.unwrap_key(b"old passphrase"),
            Err(Error::WrongPassphrase)
        );
        assert_eq!(
            old.rewrap(b"not it", b"x", FAST).unwrap_err(),
            Error::WrongPassphrase
        );
    }

    #[test]
    fn tampering_with_any_byte_is_detected() {
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, b"pw", FAST).unwrap();
        for i in 0..KEY_RECORD_LEN {
            let mut bad = record.as_bytes().to_vec();
            bad[i] ^= 0x01;
            match KeyRecord::from_bytes(&bad) {
                // Parameters still in range: unwrapping must fail.
                Ok(parsed) => assert!(parsed.unwrap_key(b"pw").is_err(), "byte {i}"),
                Err(e) => assert!(
                    matches!(
                        e,
                        Error::MalformedKeyRecord(_)
                            | Error::UnsupportedKeyRecord(_)
                            | Error::KdfParams(_)
                    ),
                    "byte {i}: {e}"
                ),
            }
        }
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        assert!(matches!(
            KeyRecord::from_bytes(b""),
            Err(Error::MalformedKeyRecord(_))
        ));
        assert!(matches!(
            KeyRecord::from_bytes(b"SKR\x02rest"),
            Err(Error::UnsupportedKeyRecord(2))
        ));
        assert!(matches!(
            KeyRecord::from_bytes(b"SKR\x01short"),
            Err(Error::MalformedKeyRecord(_))
        ));
        // In-range length and magic, but an absurd memory cost: rejected before any allocation.
        let key = VaultKey::generate().unwrap();
        let mut bytes = KeyRecord::wrap(&key, b"pw", FAST)
            .unwrap()
            .as_bytes()
            .to_vec();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            KeyRecord::from_bytes(&bytes),
            Err(Error::KdfParams(_))
        ));
    }
}
