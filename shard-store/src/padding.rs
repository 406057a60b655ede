//! Padding of chunks before sealing: Padmé sizes, then rounded up for the erasure coder.
//!
//! Padding scheme 1: the chunk, one `0x80` byte, then zero bytes up to the padded length
//! (ISO/IEC 7816-4 style, so the padding removes itself). The padded length is the Padmé size
//! of `len + 1` (at most 12% larger, leaking O(log log M) bits of the size), rounded up so that
//! the sealed chunk (padded length + 16-byte tag) splits into `k` shares of equal, even length
//! as reed-solomon-simd requires.

use crate::{Error, Result};

/// Id of this padding scheme, bound into every chunk key.
pub const PADDING_SCHEME: u8 = 1;
/// The AEAD tag appended by sealing.
const TAG_LEN: usize = shard_crypto::TAG_LEN;
const MARKER: u8 = 0x80;

/// Padmé (Nikitin et al., 2019): rounds `len` up by zeroing its low bits, keeping only
/// ⌊log2 ⌊log2 len⌋⌋ + 1 significant bits.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = u64::from(63 - len.leading_zeros()); // ⌊log2 len⌋ ≥ 1
    let s = u64::from(64 - e.leading_zeros()); // ⌊log2 e⌋ + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

/// Length of the padded plaintext of a `len`-byte chunk coded `k`-of-`n`.
pub fn padded_len(len: usize, k: usize) -> usize {
    let unit = 2 * k.max(1);
    let padded = usize::try_from(padme(len as u64 + 1)).unwrap_or(usize::MAX);
    let sealed = padded + TAG_LEN;
    let rem = sealed % unit;
    if rem == 0 {
        padded
    } else {
        padded + unit - rem
    }
}

/// Writes `chunk` padded for `k` shares into `buf` (cleared first), leaving capacity for the tag.
pub fn pad_into(chunk: &[u8], k: usize, buf: &mut Vec<u8>) {
    let padded = padded_len(chunk.len(), k);
    buf.clear();
    buf.reserve(padded + TAG_LEN);
    buf.extend_from_slice(chunk);
    buf.push(MARKER);
    buf.resize(padded, 0);
}

/// Removes the padding in place. Fails if the marker is missing (never for data we sealed).
pub fn unpad(buf: &mut Vec<u8>) -> Result<()> {
    let Some(marker_at) = buf.iter().rposition(|&b| b != 0) else {
        return Err(Error::InvalidParameters("padding marker missing"));
    };
    if buf.get(marker_at) != Some(&MARKER) {
        return Err(Error::InvalidParameters("padding marker missing"));
    }
    buf.truncate(marker_at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padme_known_values() {
        // Values from the Padmé paper's definition.
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
        assert_eq!(padme(1 << 20), 1 << 20);
    }

    #[test]
    fn overhead_is_at_most_twelve_percent_for_real_chunk_sizes() {
        let mut len = 256 * 1024;
        while len <= 4 << 20 {
            for k in [1, 3, 10, 32] {
                let padded = padded_len(len, k);
                assert!(padded as f64 <= (len + 1) as f64 * 1.12, "len {len} k {k}");
            }
            len += 7919;
        }
    }

    proptest! {
        #[test]
        fn pad_unpad_roundtrip_and_shape(
            chunk in proptest::collection::vec(any::<u8>(), 0..3000), k in 1usize..=32
        ) {
            let mut buf = Vec::new();
            pad_into(&chunk, k, &mut buf);
            prop_assert!(buf.len() > chunk.len());
            prop_assert_eq!((buf.len() + TAG_LEN) % (2 * k), 0);
            prop_assert!(buf.capacity() >= buf.len() + TAG_LEN);
            unpad(&mut buf).unwrap();
            prop_assert_eq!(buf, chunk);
        }
    }

    #[test]
    fn unpad_rejects_missing_marker() {
        assert!(unpad(&mut vec![0, 0, 0]).is_err());
        assert!(unpad(&mut vec![1, 2, 0]).is_err());
        assert!(unpad(&mut Vec::new()).is_err());
    }
}
