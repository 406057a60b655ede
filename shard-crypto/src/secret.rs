//! Secret byte arrays that are wiped from memory when dropped and never printed.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result};

/// Length in bytes of every symmetric key in shard.
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key. Zeroized on drop; `Debug` prints nothing of it; equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps existing key bytes (the caller should wipe its own copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's random number generator.
    pub fn random() -> Result<Self> {
        let mut key = Self([0; KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    /// The key bytes. Keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

/// Fills `buf` from the operating system's random number generator.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Appends `bytes` to `buf`; when that needs a larger allocation, the bytes move to a new one
/// and the old one is wiped, not left in freed memory.
pub fn extend_zeroizing(buf: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let mut larger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
        larger.extend_from_slice(buf);
        *buf = larger;
    }
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_key_bytes() {
        let key = SecretKey::from_bytes([0xAB; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(SecretKey::random().unwrap(), SecretKey::random().unwrap());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
