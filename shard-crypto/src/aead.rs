//! AES-256-GCM, the only cipher in shard.
//!
//! Two paths, kept apart on purpose:
//! - [`seal`]/[`open`]: a fresh random 96-bit nonce per message, prepended to the output. For
//!   every record that is sealed more than once under one key (catalog fields, names, snapshots,
//!   key records).
//! - the fixed-nonce path (`seal_fixed`/`open_fixed`, crate-private): only reachable through
//!   [`crate::VaultKeys::seal_chunk`], whose key is derived from the chunk id and the format, so one
//!   key never seals two different plaintexts.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};

use crate::{Error, Result, SecretKey, fill_random};

/// Length of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes [`seal`] adds to a message: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Largest plaintext GCM can seal under one nonce (2^36 − 32 bytes).
const P_MAX: u64 = (1 << 36) - 32;

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose().into())
}

/// Seals `plaintext` with a fresh random nonce: output is `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    if plaintext.len() as u64 > P_MAX {
        return Err(Error::Length("plaintext larger than AES-GCM allows"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(NONCE_LEN..)
        .ok_or(Error::Length("internal: nonce prefix missing"))?;
    let tag = cipher(key)
        .encrypt_inout_detached((&nonce).into(), aad, body.into())
        .map_err(|_| Error::Length("rejected by AES-GCM"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// [`seal`] without a second copy: turns `buf`, the plaintext, into `nonce ‖ ciphertext ‖ tag`
/// in place (for a catalog snapshot of tens of MiB, whose plaintext need not exist twice).
pub fn seal_in_place(key: &SecretKey, aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    if buf.len() as u64 > P_MAX {
        return Err(Error::Length("plaintext larger than AES-GCM allows"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let tag = cipher(key)
        .encrypt_inout_detached((&nonce).into(), aad, buf.as_mut_slice().into())
        .map_err(|_| Error::Length("rejected by AES-GCM"))?;
    buf.reserve_exact(SEAL_OVERHEAD);
    buf.splice(0..0, nonce);
    buf.extend_from_slice(&tag);
    Ok(())
}

/// Opens what [`seal`] produced. Any change to the bytes, the AAD or the key gives
/// [`Error::Unauthentic`].
pub fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::Unauthentic);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Unauthentic)?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Unauthentic)?;
    let mut plain = body.to_vec();
    cipher(key)
        .decrypt_inout_detached(nonce.into(), aad, plain.as_mut_slice().into(), tag.into())
        .map_err(|_| Error::Unauthentic)?;
    Ok(plain)
}

/// Seals `buf` in place under a key that must never seal anything else, appending the tag.
pub(crate) fn seal_fixed(key: &SecretKey, aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    if buf.len() as u64 > P_MAX {
        return Err(Error::Length("chunk larger than AES-GCM allows"));
    }
    let tag = cipher(key)
        .encrypt_inout_detached((&[0u8; NONCE_LEN]).into(), aad, buf.as_mut_slice().into())
        .map_err(|_| Error::Length("rejected by AES-GCM"))?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// Opens what `seal_fixed` produced, in place, removing the tag.
pub(crate) fn open_fixed(key: &SecretKey, aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let body_len = buf.len().checked_sub(TAG_LEN).ok_or(Error::Unauthentic)?;
    let (body, tag) = buf.split_at_mut(body_len);
    let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Unauthentic)?;
    cipher(key)
        .decrypt_inout_detached((&[0u8; NONCE_LEN]).into(), aad, body.into(), tag.into())
        .map_err(|_| Error::Unauthentic)?;
    buf.truncate(body_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    #[test]
    fn seal_open_roundtrip_and_fresh_nonces() {
        let a = seal(&key(1), b"aad", b"family papers").unwrap();
        let b = seal(&key(1), b"aad", b"family papers").unwrap();
        assert_ne!(a, b, "two seals of one message must differ (random nonce)");
        assert_eq!(open(&key(1), b"aad", &a).unwrap(), b"family papers");
        assert_eq!(a.len(), 13 + SEAL_OVERHEAD);
    }

    #[test]
    fn any_change_is_detected() {
        let sealed = seal(&key(1), b"aad", b"family papers").unwrap();
        assert_eq!(open(&key(2), b"aad", &sealed), Err(Error::Unauthentic));
        assert_eq!(open(&key(1), b"other", &sealed), Err(Error::Unauthentic));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                open(&key(1), b"aad", &bad),
                Err(Error::Unauthentic),
                "byte {i}"
            );
        }
        for len in 0..sealed.len() {
            assert_eq!(
                open(&key(1), b"aad", &sealed[..len]),
                Err(Error::Unauthentic)
            );
        }
    }

    #[test]
    fn sealing_in_place_is_sealing() {
        let key = SecretKey::from_bytes([7; 32]);
        for len in [0usize, 1, 4096, 100_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect();
            let mut buf = plain.clone();
            seal_in_place(&key, b"aad", &mut buf).unwrap();
            assert_eq!(buf.len(), len + SEAL_OVERHEAD);
            assert_eq!(open(&key, b"aad", &buf).unwrap(), plain);
            assert!(open(&key, b"other", &buf).is_err());
        }
    }

    #[test]
    fn empty_plaintext_is_fine() {
        let sealed = seal(&key(3), b"", b"").unwrap();
        assert_eq!(open(&key(3), b"", &sealed).unwrap(), b"");
    }

    #[test]
    fn fixed_path_is_deterministic_and_authenticated() {
        let mut a = b"same chunk".to_vec();
        let mut b = b"same chunk".to_vec();
        seal_fixed(&key(4), b"x", &mut a).unwrap();
        seal_fixed(&key(4), b"x", &mut b).unwrap();
        assert_eq!(a, b);
        let mut bad = a.clone();
        bad[0] ^= 1;
        assert_eq!(open_fixed(&key(4), b"x", &mut bad), Err(Error::Unauthentic));
        open_fixed(&key(4), b"x", &mut a).unwrap();
        assert_eq!(a, b"same chunk");
        let mut short = vec![0u8; 5];
        assert_eq!(
            open_fixed(&key(4), b"x", &mut short),
            Err(Error::Unauthentic)
        );
    }
}
