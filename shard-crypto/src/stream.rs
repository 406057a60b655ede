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
//! prefix      7 bytes, random: the nonce prefix of this stream
//! segments    each SEGMENT_LEN bytes of plaintext sealed (+ 16-byte tag), the last one shorter
//!             or as long (possibly empty), sealed with STREAM's last-segment flag
//! ```
//! Each segment's nonce is the prefix, its position (32 bits, big-endian) and the last flag, so
//! segments cannot be reordered, dropped, repeated or moved between streams, and a stream cut
//! short fails (its end is not sealed as last). The caller's associated data is bound to every
//! segment.

use aead_stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

use crate::aead::TAG_LEN;
use crate::{Error, Result, SecretKey, fill_random};

/// Plaintext bytes per segment (as age uses): large enough that the tags cost 0.02 %, small
/// enough that a reader holds little.
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Length of a stream's nonce prefix.
pub const STREAM_PREFIX_LEN: usize = 7;

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
        let mut prefix = [0u8; STREAM_PREFIX_LEN];
        fill_random(&mut prefix)?;
        let encryptor =
            EncryptorBE32::from_aead(Aes256Gcm::new(key.expose().into()), (&prefix).into());
        Ok(Self {
            encryptor,
            aad: aad.to_vec(),
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT_LEN * 2)),
            sealed: prefix.to_vec(),
        })
    }

    /// Appends plaintext; every segment that is full and followed by more is sealed.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.plain.extend_from_slice(bytes);
        // A full segment is sealed only once a byte follows it: the last segment is sealed with
        // the last flag, and may be full.
        while self.plain.len() > SEGMENT_LEN {
            let mut segment = Zeroizing::new(Vec::with_capacity(SEALED_SEGMENT_LEN));
            segment.extend_from_slice(self.plain.get(..SEGMENT_LEN).unwrap_or_default());
            self.plain.drain(..SEGMENT_LEN);
            self.encryptor
                .encrypt_next_in_place(&self.aad, &mut *segment)
                .map_err(|_| Error::Length("the stream is too long for STREAM"))?;
            self.sealed.extend_from_slice(&segment);
        }
        Ok(())
    }

    /// Sealed bytes not yet taken (the prefix first), in order.
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
        let mut plain = Zeroizing::new(Vec::new());
        if self.decryptor.is_none() {
            let Some(prefix) = self.pending.get(..STREAM_PREFIX_LEN) else {
                return Ok(plain);
            };
            let prefix: [u8; STREAM_PREFIX_LEN] =
                prefix.try_into().map_err(|_| Error::Unauthentic)?;
            self.decryptor = Some(DecryptorBE32::from_aead(
                Aes256Gcm::new(self.key.expose().into()),
                (&prefix).into(),
            ));
            self.pending.drain(..STREAM_PREFIX_LEN);
        }
        let Some(decryptor) = self.decryptor.as_mut() else {
            return Ok(plain);
        };
        while self.pending.len() > SEALED_SEGMENT_LEN {
            let mut segment = Zeroizing::new(
                self.pending
                    .get(..SEALED_SEGMENT_LEN)
                    .unwrap_or_default()
                    .to_vec(),
            );
            self.pending.drain(..SEALED_SEGMENT_LEN);
            decryptor
                .decrypt_next_in_place(&self.aad, &mut *segment)
                .map_err(|_| Error::Unauthentic)?;
            plain.extend_from_slice(&segment);
        }
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
                STREAM_PREFIX_LEN + len + segments * TAG_LEN,
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
        let cut = STREAM_PREFIX_LEN + 2 * SEALED_SEGMENT_LEN;
        assert!(open_all(&k, b"aad", &sealed[..cut], 1000).is_err());
        assert!(open_all(&k, b"aad", &sealed[..sealed.len() - 1], 1000).is_err());
        // One bit changed anywhere.
        for at in [0, STREAM_PREFIX_LEN + 3, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open_all(&k, b"aad", &bad, 1000).is_err(), "bit at {at}");
        }
        // Two segments swapped.
        let mut swapped = sealed.clone();
        let (a, b) = (STREAM_PREFIX_LEN, STREAM_PREFIX_LEN + SEALED_SEGMENT_LEN);
        let first = sealed[a..b].to_vec();
        swapped[a..b].copy_from_slice(&sealed[b..b + SEALED_SEGMENT_LEN]);
        swapped[b..b + SEALED_SEGMENT_LEN].copy_from_slice(&first);
        assert!(open_all(&k, b"aad", &swapped, 1000).is_err());
        assert!(open_all(&key(3), b"aad", &sealed, 1000).is_err());
        assert!(open_all(&k, b"other", &sealed, 1000).is_err());
        // Nothing at all, or the prefix alone.
        assert!(open_all(&k, b"aad", &[], 1000).is_err());
        assert!(open_all(&k, b"aad", &sealed[..STREAM_PREFIX_LEN], 1000).is_err());
    }

    #[test]
    fn two_streams_of_one_message_differ() {
        let k = key(4);
        let a = seal_all(&k, b"", b"same", 10);
        let b = seal_all(&k, b"", b"same", 10);
        assert_ne!(a, b, "a fresh nonce prefix per stream");
    }

    /// A known answer: the construction (prefix ‖ position ‖ last flag as the GCM nonce) is
    /// pinned, so a change of crate or of its nonce layout cannot silently make old snapshots
    /// unreadable.
    #[test]
    fn the_last_segment_is_gcm_under_prefix_position_and_flag() {
        let k = key(5);
        let sealed = seal_all(&k, b"ad", b"hello", 10);
        let prefix = &sealed[..STREAM_PREFIX_LEN];
        let mut nonce = [0u8; crate::aead::NONCE_LEN];
        nonce[..STREAM_PREFIX_LEN].copy_from_slice(prefix);
        nonce[crate::aead::NONCE_LEN - 1] = 1;
        let mut manual = nonce.to_vec();
        manual.extend_from_slice(&sealed[STREAM_PREFIX_LEN..]);
        assert_eq!(crate::aead::open(&k, b"ad", &manual).unwrap(), b"hello");
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
