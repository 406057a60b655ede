//! Sealing a message too large to hold at once: AES-256-GCM in the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and its
//! Nonce-Reuse Misuse-Resistance"), as RustCrypto's `aead-stream` implements it (`StreamBE32`).
//!
//! What it is for: a catalog snapshot of a vault with a million files is hundreds of MiB; sealed
//! as one GCM message it has to exist whole in memory, twice at the peak. Sealed as a stream,
//! the writer and the reader each hold one segment.
//!
//! The sealed bytes are
//! ```text
//! salt        32 bytes, random: the stream's key is HKDF-SHA256(the caller's key, salt,
//!             "shard stream v1")
//! prefix      7 bytes, random: the nonce prefix of this stream
//! segments    each SEGMENT_LEN bytes of plaintext sealed (+ 16-byte tag), the last one shorter
//!             or as long (possibly empty), sealed with STREAM's last-segment flag
//! ```
//! Each segment's nonce is the prefix, its position (32 bits, big-endian) and the last flag, so
//! segments cannot be reordered, dropped, repeated or moved between streams, and a stream cut
//! short fails (its end is not sealed as last). The caller's associated data is bound to every
//! segment. A key of its own per stream (as age derives one per file) because one caller's key
//! seals many streams (a vault's catalog key, a snapshot per change): 56 random bits of nonce
//! prefix alone would make two streams share nonces after a few thousand.

use aead_stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::TAG_LEN;
use crate::{Error, Result, SecretKey, extend_zeroizing, fill_random};

/// Plaintext bytes per segment (as age uses): large enough that the tags cost 0.02 %, small
/// enough that a reader holds little.
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Length of a stream's salt (its key's) and nonce prefix: what a sealed stream starts with.
pub const STREAM_HEADER_LEN: usize = SALT_LEN + PREFIX_LEN;

const SALT_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
const STREAM_INFO: &[u8] = b"shard stream v1";

/// The cipher of one stream: its key derived from the caller's and the stream's salt.
fn stream_cipher(key: &SecretKey, salt: &[u8]) -> Result<Aes256Gcm> {
    let mut stream_key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), key.expose())
        .expand(STREAM_INFO, stream_key.as_mut())
        .map_err(|_| Error::Length("internal: HKDF output length"))?;
    Ok(Aes256Gcm::new((&*stream_key).into()))
}

const SEALED_SEGMENT_LEN: usize = SEGMENT_LEN + TAG_LEN;

/// Seals a stream written in pieces ([`std::io::Write`] or [`StreamSealer::write_all`]); sealed
/// bytes are taken out as they are ready ([`StreamSealer::take_sealed`]) and at the end
/// ([`StreamSealer::finish`]).
pub struct StreamSealer {
    encryptor: EncryptorBE32<Aes256Gcm>,
    aad: Vec<u8>,
    /// Plaintext not yet sealed: at most one segment and what the last write added.
    plain: Zeroizing<Vec<u8>>,
    /// Sealed bytes not yet taken.
    sealed: Vec<u8>,
}

impl std::fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSealer")
            .field("pending", &self.plain.len())
            .field("sealed", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

impl StreamSealer {
    /// A new stream under `key`, with a fresh random nonce prefix; `aad` is bound to every
    /// segment.
    pub fn new(key: &SecretKey, aad: &[u8]) -> Result<Self> {
        let mut header = [0u8; STREAM_HEADER_LEN];
        fill_random(&mut header)?;
        let (salt, prefix) = header.split_at(SALT_LEN);
        let prefix: &[u8; PREFIX_LEN] = prefix
            .try_into()
            .map_err(|_| Error::Length("internal: nonce prefix length"))?;
        let encryptor = EncryptorBE32::from_aead(stream_cipher(key, salt)?, prefix.into());
        Ok(Self {
            encryptor,
            aad: aad.to_vec(),
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT_LEN * 2)),
            sealed: header.to_vec(),
        })
    }

    /// Appends plaintext; every segment that is full and followed by more is sealed.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        extend_zeroizing(&mut self.plain, bytes);
        // A full segment is sealed only once a byte follows it: the last segment is sealed with
        // the last flag, and may be full.
        let mut at = 0;
        let mut segment = Zeroizing::new(Vec::with_capacity(SEALED_SEGMENT_LEN));
        while self.plain.len() - at > SEGMENT_LEN {
            segment.clear();
            segment.extend_from_slice(self.plain.get(at..at + SEGMENT_LEN).unwrap_or_default());
            at += SEGMENT_LEN;
            self.encryptor
                .encrypt_next_in_place(&self.aad, &mut *segment)
                .map_err(|_| Error::Length("the stream is too long for STREAM"))?;
            self.sealed.extend_from_slice(&segment);
        }
        // Once, not per segment: a large write costs one move, not one per 64 KiB.
        self.plain.drain(..at);
        Ok(())
    }

    /// Sealed bytes not yet taken (the header first), in order.
    pub fn take_sealed(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sealed)
    }

    /// How many sealed bytes wait to be taken.
    pub fn sealed_len(&self) -> usize {
        self.sealed.len()
    }

    /// Seals the last segment: the sealed bytes not yet taken.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let mut last = std::mem::take(&mut self.plain);
        self.encryptor
            .encrypt_last_in_place(&self.aad, &mut *last)
            .map_err(|_| Error::Length("rejected by AES-GCM"))?;
        self.sealed.extend_from_slice(&last);
        Ok(self.sealed)
    }
}

impl std::io::Write for StreamSealer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens what a [`StreamSealer`] wrote, given in pieces of any size ([`StreamOpener::push`]);
/// the end is [`StreamOpener::finish`]. Plaintext comes out only once its segment is
/// authentic; a stream cut short, reordered, or from another key or `aad` fails with
/// [`Error::Unauthentic`].
pub struct StreamOpener {
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    key: SecretKey,
    aad: Vec<u8>,
    /// Sealed bytes not yet opened: at most one segment and what the last push added.
    pending: Vec<u8>,
}

impl std::fmt::Debug for StreamOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOpener")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamOpener {
    /// A reader of a stream sealed under `key` with `aad`.
    pub fn new(key: &SecretKey, aad: &[u8]) -> Self {
        Self {
            decryptor: None,
            key: key.clone(),
            aad: aad.to_vec(),
            pending: Vec::new(),
        }
    }

    /// Takes more sealed bytes; returns the plaintext of every segment now known not to be the
    /// last, opened.
    pub fn push(&mut self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.pending.extend_from_slice(sealed);
        if self.decryptor.is_none() {
            let Some(header) = self.pending.get(..STREAM_HEADER_LEN) else {
                return Ok(Zeroizing::new(Vec::new()));
            };
            let (salt, prefix) = header.split_at(SALT_LEN);
            let prefix: &[u8; PREFIX_LEN] = prefix.try_into().map_err(|_| Error::Unauthentic)?;
            self.decryptor = Some(DecryptorBE32::from_aead(
                stream_cipher(&self.key, salt)?,
                prefix.into(),
            ));
            self.pending.drain(..STREAM_HEADER_LEN);
        }
        let Some(decryptor) = self.decryptor.as_mut() else {
            return Ok(Zeroizing::new(Vec::new()));
        };
        let segments = self.pending.len().saturating_sub(1) / SEALED_SEGMENT_LEN;
        // Reserved once: the plaintext never moves to a larger buffer, leaving a copy behind.
        let mut plain = Zeroizing::new(Vec::with_capacity(segments * SEGMENT_LEN));
        let mut segment = Zeroizing::new(Vec::with_capacity(SEALED_SEGMENT_LEN));
        let mut at = 0;
        while self.pending.len() - at > SEALED_SEGMENT_LEN {
            segment.clear();
            segment.extend_from_slice(
                self.pending
                    .get(at..at + SEALED_SEGMENT_LEN)
                    .unwrap_or_default(),
            );
            at += SEALED_SEGMENT_LEN;
            decryptor
                .decrypt_next_in_place(&self.aad, &mut *segment)
                .map_err(|_| Error::Unauthentic)?;
            plain.extend_from_slice(&segment);
        }
        self.pending.drain(..at);
        Ok(plain)
    }

    /// The end of the stream: the last segment's plaintext.
    pub fn finish(mut self) -> Result<Zeroizing<Vec<u8>>> {
        let decryptor = self.decryptor.take().ok_or(Error::Unauthentic)?;
        if self.pending.len() < TAG_LEN {
            return Err(Error::Unauthentic);
        }
        let mut last = Zeroizing::new(std::mem::take(&mut self.pending));
        decryptor
            .decrypt_last_in_place(&self.aad, &mut *last)
            .map_err(|_| Error::Unauthentic)?;
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )]

    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    fn seal_all(key: &SecretKey, aad: &[u8], plain: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = StreamSealer::new(key, aad).unwrap();
        let mut out = Vec::new();
        for part in plain.chunks(piece.max(1)) {
            sealer.write_all(part).unwrap();
            out.extend(sealer.take_sealed());
        }
        out.extend(sealer.finish().unwrap());
        out
    }

    fn open_all(key: &SecretKey, aad: &[u8], sealed: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut opener = StreamOpener::new(key, aad);
        let mut out = Vec::new();
        for part in sealed.chunks(piece.max(1)) {
            out.extend_from_slice(&opener.push(part)?);
        }
        out.extend_from_slice(&opener.finish()?);
        Ok(out)
    }

    #[test]
    fn sizes_around_segment_boundaries_round_trip() {
        let k = key(1);
        for len in [
            0,
            1,
            SEGMENT_LEN - 1,
            SEGMENT_LEN,
            SEGMENT_LEN + 1,
            3 * SEGMENT_LEN,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal_all(&k, b"aad", &plain, 10_000);
            let segments = len.div_ceil(SEGMENT_LEN).max(1);
            assert_eq!(
                sealed.len(),
                STREAM_HEADER_LEN + len + segments * TAG_LEN,
                "length {len}"
            );
            assert_eq!(open_all(&k, b"aad", &sealed, 777).unwrap(), plain);
        }
    }

    #[test]
    fn a_stream_cut_short_altered_reordered_or_under_other_keys_fails() {
        let k = key(2);
        let plain = vec![7u8; 3 * SEGMENT_LEN + 5];
        let sealed = seal_all(&k, b"aad", &plain, 4096);
        // Cut at a segment boundary: what is left ends with a segment not sealed as last.
        let cut = STREAM_HEADER_LEN + 2 * SEALED_SEGMENT_LEN;
        assert!(open_all(&k, b"aad", &sealed[..cut], 1000).is_err());
        assert!(open_all(&k, b"aad", &sealed[..sealed.len() - 1], 1000).is_err());
        // One bit changed anywhere.
        for at in [0, STREAM_HEADER_LEN + 3, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open_all(&k, b"aad", &bad, 1000).is_err(), "bit at {at}");
        }
        // Two segments swapped.
        let mut swapped = sealed.clone();
        let (a, b) = (STREAM_HEADER_LEN, STREAM_HEADER_LEN + SEALED_SEGMENT_LEN);
        let first = sealed[a..b].to_vec();
        swapped[a..b].copy_from_slice(&sealed[b..b + SEALED_SEGMENT_LEN]);
        swapped[b..b + SEALED_SEGMENT_LEN].copy_from_slice(&first);
        assert!(open_all(&k, b"aad", &swapped, 1000).is_err());
        assert!(open_all(&key(3), b"aad", &sealed, 1000).is_err());
        assert!(open_all(&k, b"other", &sealed, 1000).is_err());
        // Nothing at all, or the prefix alone.
        assert!(open_all(&k, b"aad", &[], 1000).is_err());
        assert!(open_all(&k, b"aad", &sealed[..STREAM_HEADER_LEN], 1000).is_err());
    }

    #[test]
    fn two_streams_of_one_message_differ() {
        let k = key(4);
        let a = seal_all(&k, b"", b"same", 10);
        let b = seal_all(&k, b"", b"same", 10);
        assert_ne!(a, b, "a fresh nonce prefix per stream");
    }

    /// A known answer: the construction (a key of the stream's own from HKDF over its salt;
    /// prefix ‖ position ‖ last flag as the GCM nonce) is pinned, so a change of crate or of
    /// its nonce layout cannot silently make old snapshots unreadable.
    #[test]
    fn the_last_segment_is_gcm_under_the_streams_key_prefix_position_and_flag() {
        let k = key(5);
        let sealed = seal_all(&k, b"ad", b"hello", 10);
        let (salt, rest) = sealed.split_at(SALT_LEN);
        let (prefix, body) = rest.split_at(PREFIX_LEN);
        let mut stream_key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(salt), k.expose())
            .expand(b"shard stream v1", &mut stream_key)
            .unwrap();
        let mut nonce = [0u8; crate::aead::NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(prefix);
        nonce[crate::aead::NONCE_LEN - 1] = 1;
        let mut manual = nonce.to_vec();
        manual.extend_from_slice(body);
        let stream_key = SecretKey::from_bytes(stream_key);
        assert_eq!(
            crate::aead::open(&stream_key, b"ad", &manual).unwrap(),
            b"hello"
        );
        // Not under the caller's key itself.
        assert!(crate::aead::open(&k, b"ad", &manual).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_message_in_any_pieces_round_trips(
            len in 0usize..(3 * SEGMENT_LEN),
            write_piece in 1usize..(2 * SEGMENT_LEN),
            read_piece in 1usize..(2 * SEGMENT_LEN),
        ) {
            let k = key(6);
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let sealed = seal_all(&k, b"x", &plain, write_piece);
            prop_assert_eq!(open_all(&k, b"x", &sealed, read_piece).unwrap(), plain);
        }
    }
}
