//! Reed-Solomon `k`-of-`n` erasure coding of sealed chunks (reed-solomon-simd).
//!
//! The sealed chunk is cut into `k` data shards of equal, even length; `n − k` recovery shards
//! are computed from them. Any `k` of the `n` shards give the sealed chunk back. With `k = n`
//! there are no recovery shards (plain striping). reed-solomon-simd has no integrity check of
//! its own: every shard is checked against its share id before it gets here.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::{Error, Result};

/// An erasure coder for one `k`/`n`, reusing its work buffers across chunks.
pub struct ErasureCoder {
    k: usize,
    n: usize,
    encoder: Option<ReedSolomonEncoder>,
    decoder: Option<ReedSolomonDecoder>,
}

impl ErasureCoder {
    /// A coder making `n` shards of which any `k` suffice; `1 <= k <= n <= 32`.
    pub fn new(k: usize, n: usize) -> Result<Self> {
        if k == 0 || k > n || n > usize::from(shard_proto::MAX_SHARES) {
            return Err(Error::InvalidParameters(
                "k and n must satisfy 1 <= k <= n <= 32",
            ));
        }
        Ok(Self {
            k,
            n,
            encoder: None,
            decoder: None,
        })
    }

    /// Shards needed.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Shards made.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The `n − k` recovery shards of `sealed` (length `k × shard_len`, `shard_len` even),
    /// concatenated.
    pub fn encode(&mut self, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(sealed, &mut out)?;
        Ok(out)
    }

    /// As [`ErasureCoder::encode`], appending the recovery shards to `out` (a buffer used
    /// again, see `BufferPool`).
    pub fn encode_into(&mut self, sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let shard_len = self.shard_len(sealed.len())?;
        let recovery = self.n - self.k;
        if recovery == 0 {
            return Ok(());
        }
        let encoder = match &mut self.encoder {
            Some(enc) => {
                enc.reset(self.k, recovery, shard_len).map_err(rs_error)?;
                enc
            }
            slot => {
                slot.insert(ReedSolomonEncoder::new(self.k, recovery, shard_len).map_err(rs_error)?)
            }
        };
        for shard in sealed.chunks_exact(shard_len) {
            encoder.add_original_shard(shard).map_err(rs_error)?;
        }
        let result = encoder.encode().map_err(rs_error)?;
        out.reserve(recovery * shard_len);
        for shard in result.recovery_iter() {
            out.extend_from_slice(shard);
        }
        Ok(())
    }

    /// Rebuilds the sealed chunk from at least `k` shards given as `(index, bytes)` with distinct
    /// indices, each `shard_len` long. Indices `< k` are data shards, the rest recovery shards.
    pub fn decode(&mut self, shard_len: usize, shards: &[(usize, &[u8])]) -> Result<Vec<u8>> {
        if shard_len == 0 || !shard_len.is_multiple_of(2) {
            return Err(Error::InvalidParameters(
                "shard length must be even and non-zero",
            ));
        }
        let mut originals: Vec<Option<&[u8]>> = vec![None; self.k];
        let mut used = 0;
        let mut recovery: Vec<(usize, &[u8])> = Vec::new();
        for &(index, data) in shards {
            if data.len() != shard_len || index >= self.n {
                return Err(Error::InvalidParameters(
                    "shard of the wrong length or index",
                ));
            }
            match originals.get_mut(index) {
                Some(slot @ None) => {
                    *slot = Some(data);
                    used += 1;
                }
                Some(Some(_)) => return Err(Error::InvalidParameters("duplicate shard index")),
                None if recovery.iter().any(|(i, _)| *i == index) => {
                    return Err(Error::InvalidParameters("duplicate shard index"));
                }
                None => recovery.push((index, data)),
            }
        }
        let missing = self.k - used;
        if recovery.len() < missing {
            return Err(Error::InvalidParameters("fewer than k shards"));
        }
        let mut out = Vec::with_capacity(self.k * shard_len);
        if missing == 0 {
            // Fast path: every data shard is here, no decoding needed.
            for data in originals.iter().flatten() {
                out.extend_from_slice(data);
            }
            return Ok(out);
        }
        let decoder = match &mut self.decoder {
            Some(dec) => {
                dec.reset(self.k, self.n - self.k, shard_len)
                    .map_err(rs_error)?;
                dec
            }
            slot => slot.insert(
                ReedSolomonDecoder::new(self.k, self.n - self.k, shard_len).map_err(rs_error)?,
            ),
        };
        for (index, data) in originals.iter().enumerate() {
            if let Some(data) = data {
                decoder.add_original_shard(index, data).map_err(rs_error)?;
            }
        }
        for &(index, data) in recovery.iter().take(missing) {
            decoder
                .add_recovery_shard(index - self.k, data)
                .map_err(rs_error)?;
        }
        let restored = decoder.decode().map_err(rs_error)?;
        for (index, data) in originals.iter().enumerate() {
            match data.or_else(|| restored.restored_original(index)) {
                Some(shard) => out.extend_from_slice(shard),
                None => return Err(Error::InvalidParameters("decoder did not restore a shard")),
            }
        }
        Ok(out)
    }

    fn shard_len(&self, sealed_len: usize) -> Result<usize> {
        let shard_len = sealed_len / self.k;
        if sealed_len == 0 || !sealed_len.is_multiple_of(self.k) || !shard_len.is_multiple_of(2) {
            return Err(Error::InvalidParameters(
                "sealed chunk must split into k even, non-empty shards",
            ));
        }
        Ok(shard_len)
    }
}

fn rs_error(_: reed_solomon_simd::Error) -> Error {
    // Every input is validated above; an error here means parameters we did not anticipate.
    Error::InvalidParameters("rejected by the Reed-Solomon coder")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(k: usize, shard_len: usize) -> Vec<u8> {
        (0..k * shard_len)
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect()
    }

    #[test]
    fn every_k_subset_rebuilds_for_small_codes() {
        for n in 1..=6 {
            for k in 1..=n {
                let mut coder = ErasureCoder::new(k, n).unwrap();
                let data = sealed(k, 8);
                let recovery = coder.encode(&data).unwrap();
                assert_eq!(recovery.len(), (n - k) * 8);
                let shard = |i: usize| -> &[u8] {
                    if i < k {
                        &data[i * 8..(i + 1) * 8]
                    } else {
                        &recovery[(i - k) * 8..(i - k + 1) * 8]
                    }
                };
                for mask in 0u32..(1 << n) {
                    if mask.count_ones() as usize != k {
                        continue;
                    }
                    let shards: Vec<(usize, &[u8])> = (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| (i, shard(i)))
                        .collect();
                    assert_eq!(
                        coder.decode(8, &shards).unwrap(),
                        data,
                        "k {k} n {n} mask {mask:b}"
                    );
                }
            }
        }
    }

    #[test]
    fn extremes_of_the_parameter_range_work() {
        // k = 1, k = n and n = 32, keeping the last k shards (all recovery shards when possible).
        for (k, n) in [
            (1, 1),
            (1, 2),
            (1, 32),
            (2, 32),
            (16, 32),
            (31, 32),
            (32, 32),
        ] {
            let mut coder = ErasureCoder::new(k, n).unwrap();
            let data = sealed(k, 6);
            let recovery = coder.encode(&data).unwrap();
            let shard = |i: usize| -> &[u8] {
                if i < k {
                    &data[i * 6..(i + 1) * 6]
                } else {
                    &recovery[(i - k) * 6..(i - k + 1) * 6]
                }
            };
            let shards: Vec<(usize, &[u8])> = (n - k..n).map(|i| (i, shard(i))).collect();
            assert_eq!(coder.decode(6, &shards).unwrap(), data, "{k}-of-{n}");
        }
    }

    #[test]
    fn recovery_shards_are_not_mistaken_for_duplicates() {
        // Shards 2 and 4 of a 2-of-5 code: recovery indices 0 and 2 — once wrongly compared
        // against raw indices.
        let mut coder = ErasureCoder::new(2, 5).unwrap();
        let data = sealed(2, 4);
        let rec = coder.encode(&data).unwrap();
        let shards = [(2, &rec[0..4]), (4, &rec[8..12])];
        assert_eq!(coder.decode(4, &shards).unwrap(), data);
    }

    #[test]
    fn bad_calls_are_errors_not_panics() {
        assert!(ErasureCoder::new(0, 3).is_err());
        assert!(ErasureCoder::new(4, 3).is_err());
        assert!(ErasureCoder::new(3, 33).is_err());
        let mut coder = ErasureCoder::new(2, 3).unwrap();
        assert!(coder.encode(&[0; 6]).is_err(), "odd shard length");
        assert!(coder.encode(&[]).is_err());
        let data = sealed(2, 4);
        assert!(coder.decode(4, &[(0, &data[..4])]).is_err(), "too few");
        assert!(
            coder
                .decode(4, &[(0, &data[..4]), (0, &data[..4])])
                .is_err(),
            "duplicate"
        );
        assert!(
            coder
                .decode(4, &[(0, &data[..4]), (5, &data[4..])])
                .is_err(),
            "index >= n"
        );
        assert!(
            coder
                .decode(4, &[(0, &data[..4]), (1, &data[4..7])])
                .is_err(),
            "short"
        );
        assert!(
            coder
                .decode(3, &[(0, &data[..3]), (1, &data[3..6])])
                .is_err(),
            "odd"
        );
    }
}
