//! One chunk through the data path: id → pad → seal → erasure-code → shares, and back.

use std::sync::Arc;

use bytes::Bytes;
use shard_crypto::{ChunkFormat, VaultKeys};
use shard_proto::{ChunkId, ChunkRef, SHARE_VERSION, Share, ShareHeader};

use crate::erasure::ErasureCoder;
use crate::padding::{PADDING_SCHEME, pad_into, unpad};
use crate::{Error, Result};

/// The chunk format written by this build; bound into every chunk key.
pub const CHUNK_FORMAT: ChunkFormat = ChunkFormat {
    version: SHARE_VERSION,
    padding: PADDING_SCHEME,
};

/// How many shares a chunk is coded into (`n`) and how many rebuild it (`k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redundancy {
    k: u8,
    n: u8,
}

impl Redundancy {
    /// `k`-of-`n`, with `1 <= k <= n <= 32`.
    pub fn new(k: u8, n: u8) -> Result<Self> {
        if k == 0 || k > n || n > shard_proto::MAX_SHARES {
            return Err(Error::InvalidParameters(
                "k and n must satisfy 1 <= k <= n <= 32",
            ));
        }
        Ok(Self { k, n })
    }

    /// DESIGN.md's default for `peers` reachable storage nodes (the owner's own counts):
    /// `n = min(peers, 16)`, `k = n − max(1, (n−1)/2)`, at least 1. So 2 → 1-of-2,
    /// 3 → 2-of-3, 5 → 3-of-5.
    pub fn for_peers(peers: usize) -> Result<Self> {
        let n = u8::try_from(peers.min(16)).unwrap_or(16);
        if n == 0 {
            return Err(Error::InvalidParameters("no storage peers"));
        }
        let tolerated = 1.max((n - 1) / 2);
        Self::new(n.saturating_sub(tolerated).max(1), n)
    }

    /// Shares needed to rebuild.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// Shares made.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// Shares that may be lost with the data still whole: `n − k`.
    pub fn tolerance(&self) -> u8 {
        self.n - self.k
    }
}

/// Why a text is not a redundancy `K/N`: the one parser the CLI's `--shares` and the API
/// share, with the words both show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseRedundancyError {
    /// Not two numbers around a `/` (or `-of-`).
    #[error("not K/N (e.g. 3/5: any 3 of 5 shares restore a chunk)")]
    NotKn,
    /// Two numbers, but not `1 <= K <= N <= MAX_SHARES`.
    #[error(
        "K must be at least 1 and at most N, and N at most {max} (e.g. 3/5: any 3 of 5 shares restore a chunk)",
        max = shard_proto::MAX_SHARES
    )]
    OutOfRange,
}

impl std::str::FromStr for Redundancy {
    type Err = ParseRedundancyError;

    /// Parses `K/N` (also `K-of-N`), as `--shares` takes it.
    ///
    /// ```
    /// use shard_store::{ParseRedundancyError, Redundancy};
    /// let r: Redundancy = "3/5".parse()?;
    /// assert_eq!((r.k(), r.n()), (3, 5));
    /// assert_eq!("5/3".parse::<Redundancy>(), Err(ParseRedundancyError::OutOfRange));
    /// assert_eq!("three".parse::<Redundancy>(), Err(ParseRedundancyError::NotKn));
    /// # Ok::<(), ParseRedundancyError>(())
    /// ```
    fn from_str(s: &str) -> std::result::Result<Self, ParseRedundancyError> {
        let s = s.trim();
        let (k, n) = s
            .split_once('/')
            .or_else(|| s.split_once("-of-"))
            .ok_or(ParseRedundancyError::NotKn)?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u8>()
                .map_err(|_| ParseRedundancyError::NotKn)
        };
        let (k, n) = (parse(k)?, parse(n)?);
        if k == 0 || k > n || n > shard_proto::MAX_SHARES {
            return Err(ParseRedundancyError::OutOfRange);
        }
        Self::new(k, n).map_err(|_| ParseRedundancyError::OutOfRange)
    }
}

impl std::fmt::Display for Redundancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{}", self.k, self.n)
    }
}

/// A chunk ready to be placed: its manifest entry and its `n` shares (index order).
#[derive(Debug, Clone)]
pub struct EncodedChunk {
    /// What the owner records about the chunk.
    pub chunk: ChunkRef,
    /// The shares; `shares[i]` has index `i`.
    pub shares: Vec<Share>,
}

/// Turns plaintext chunks into shares. Keeps its buffers between chunks.
pub struct ChunkEncoder {
    keys: Arc<VaultKeys>,
    redundancy: Redundancy,
    coder: ErasureCoder,
}

impl ChunkEncoder {
    /// An encoder for the vault `keys` with the given redundancy.
    pub fn new(keys: Arc<VaultKeys>, redundancy: Redundancy) -> Result<Self> {
        let coder = ErasureCoder::new(usize::from(redundancy.k), usize::from(redundancy.n))?;
        Ok(Self {
            keys,
            redundancy,
            coder,
        })
    }

    /// Encodes one chunk (1 byte up to the chunker's maximum) with the encoder's redundancy.
    pub fn encode(&mut self, plaintext: &[u8]) -> Result<EncodedChunk> {
        let redundancy = self.redundancy;
        self.encode_choosing(plaintext, |_| Ok(redundancy))
    }

    /// Encodes one chunk with the redundancy `choose` picks once the chunk's id is known (a
    /// chunk stored before keeps the encoding it has). Encoding is deterministic: the same
    /// chunk and redundancy give the same shares, byte for byte.
    pub fn encode_choosing(
        &mut self,
        plaintext: &[u8],
        choose: impl FnOnce(&ChunkId) -> Result<Redundancy>,
    ) -> Result<EncodedChunk> {
        let len = u32::try_from(plaintext.len())
            .map_err(|_| Error::InvalidParameters("chunk larger than 4 GiB"))?;
        let id = self.keys.chunk_id(plaintext);
        let redundancy = choose(&ChunkId(id))?;
        if redundancy != self.redundancy {
            self.coder = ErasureCoder::new(usize::from(redundancy.k), usize::from(redundancy.n))?;
            self.redundancy = redundancy;
        }
        let k = usize::from(self.redundancy.k);
        let mut sealed = Vec::new();
        pad_into(plaintext, k, &mut sealed);
        self.keys.seal_chunk(&id, CHUNK_FORMAT, &mut sealed)?;
        let recovery = Bytes::from(self.coder.encode(&sealed)?);
        let shard_len = sealed.len() / k;
        let share_len = u32::try_from(shard_len)
            .map_err(|_| Error::InvalidParameters("share larger than 4 GiB"))?;
        let sealed = Bytes::from(sealed);
        let mut shares = Vec::with_capacity(usize::from(self.redundancy.n));
        for index in 0..self.redundancy.n {
            let i = usize::from(index);
            let payload = if i < k {
                sealed.slice(i * shard_len..(i + 1) * shard_len)
            } else {
                recovery.slice((i - k) * shard_len..(i - k + 1) * shard_len)
            };
            let header = ShareHeader::new(self.redundancy.k, self.redundancy.n, index, share_len)?;
            shares.push(Share::new(header, payload)?);
        }
        Ok(EncodedChunk {
            chunk: ChunkRef {
                id: ChunkId(id),
                len,
                k: self.redundancy.k,
                n: self.redundancy.n,
                share_len,
                shares: shares.iter().map(Share::id).collect(),
                pack: None,
            },
            shares,
        })
    }
}

/// Checks that `share` is share number `header.index` of `chunk` (its id is the one the
/// manifest lists at that index, and its header matches). Returns the index.
pub fn check_share(chunk: &ChunkRef, share: &Share) -> Result<u8> {
    let index = share.header().index();
    let mismatch = |reason| Error::ShareMismatch {
        share: share.id(),
        chunk: chunk.id,
        reason,
    };
    match chunk.shares.get(usize::from(index)) {
        Some(expected) if *expected == share.id() => {}
        Some(_) => return Err(mismatch("its hash is not the share id the manifest lists")),
        None => return Err(mismatch("its index is beyond the chunk's n")),
    }
    if *share.header() != chunk.expected_header(index)? {
        return Err(mismatch("its header does not match the chunk"));
    }
    Ok(index)
}

/// Shares picked for decoding: (index, payload).
type Picked<'a> = Vec<(usize, &'a [u8])>;

/// `k`, the share length, and `k` shares of `chunk` from `shares` with distinct indices (those
/// that are not the chunk's are skipped), or [`Error::NotEnoughShares`].
fn pick<'a>(chunk: &ChunkRef, shares: &'a [Share]) -> Result<(usize, usize, Picked<'a>)> {
    chunk.validate()?;
    let k = usize::from(chunk.k);
    let mut picked: Vec<(usize, &[u8])> = Vec::with_capacity(k);
    for share in shares {
        let Ok(index) = check_share(chunk, share) else {
            continue;
        };
        let index = usize::from(index);
        if picked.len() < k && !picked.iter().any(|(i, _)| *i == index) {
            picked.push((index, share.payload()));
        }
    }
    if picked.len() < k {
        return Err(Error::NotEnoughShares {
            chunk: chunk.id,
            have: picked.len(),
            need: k,
        });
    }
    let share_len =
        usize::try_from(chunk.share_len).map_err(|_| Error::InvalidParameters("share length"))?;
    Ok((k, share_len, picked))
}

/// Rebuilds chunks from shares, verifying every step.
pub struct ChunkDecoder {
    keys: Arc<VaultKeys>,
    coder: Option<ErasureCoder>,
}

impl ChunkDecoder {
    /// A decoder for the vault `keys`.
    pub fn new(keys: Arc<VaultKeys>) -> Self {
        Self { keys, coder: None }
    }

    /// The plaintext of `chunk` from `shares` (any order). Shares that are not the chunk's (see
    /// [`check_share`]) and repeated indices are skipped; fewer than `k` good ones is
    /// [`Error::NotEnoughShares`]. The result is authenticated and its chunk id verified.
    pub fn decode(&mut self, chunk: &ChunkRef, shares: &[Share]) -> Result<Vec<u8>> {
        let (k, share_len, picked) = pick(chunk, shares)?;
        let coder = match &mut self.coder {
            Some(c) if c.k() == k && c.n() == usize::from(chunk.n) => c,
            slot => slot.insert(ErasureCoder::new(k, usize::from(chunk.n))?),
        };
        let mut sealed = coder.decode(share_len, &picked)?;
        let corrupt = |reason| Error::CorruptChunk {
            chunk: chunk.id,
            reason,
        };
        self.keys
            .open_chunk(&chunk.id.0, crate::CHUNK_FORMAT, &mut sealed)
            .map_err(|_| corrupt("authentication failed"))?;
        unpad(&mut sealed).map_err(|_| corrupt("padding is malformed"))?;
        if sealed.len() != chunk.len as usize {
            return Err(corrupt("length differs from the manifest"));
        }
        if !self.keys.verify_chunk_id(&sealed, &chunk.id.0) {
            return Err(corrupt("content does not match the chunk id"));
        }
        Ok(sealed)
    }

    /// The shares of `chunk` at the `wanted` indices, rebuilt from at least `k` of its other
    /// shares by erasure coding alone: nothing is decrypted. Every rebuilt share must hash to
    /// the id the manifest lists for its index, so wrong input cannot yield a wrong share
    /// ([`Error::CorruptChunk`] instead).
    pub fn rebuild(
        &mut self,
        chunk: &ChunkRef,
        shares: &[Share],
        wanted: &[u8],
    ) -> Result<Vec<Share>> {
        let (k, share_len, picked) = pick(chunk, shares)?;
        let coder = match &mut self.coder {
            Some(c) if c.k() == k && c.n() == usize::from(chunk.n) => c,
            slot => slot.insert(ErasureCoder::new(k, usize::from(chunk.n))?),
        };
        let sealed = coder.decode(share_len, &picked)?;
        let recovery = if wanted.iter().any(|i| usize::from(*i) >= k) {
            coder.encode(&sealed)?
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(wanted.len());
        for &index in wanted {
            let i = usize::from(index);
            let range = if i < k {
                i * share_len..(i + 1) * share_len
            } else {
                (i - k) * share_len..(i - k + 1) * share_len
            };
            let payload = if i < k {
                sealed.get(range)
            } else {
                recovery.get(range)
            }
            .ok_or(Error::InvalidParameters("share index beyond the chunk's n"))?;
            let share = Share::new(
                chunk.expected_header(index)?,
                Bytes::copy_from_slice(payload),
            )?;
            if chunk.shares.get(i) != Some(&share.id()) {
                return Err(Error::CorruptChunk {
                    chunk: chunk.id,
                    reason: "a rebuilt share does not match its id",
                });
            }
            out.push(share);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_redundancy_follows_the_design() {
        let r = |p| Redundancy::for_peers(p).unwrap();
        assert_eq!(r(1), Redundancy::new(1, 1).unwrap());
        assert_eq!(r(2), Redundancy::new(1, 2).unwrap());
        assert_eq!(r(3), Redundancy::new(2, 3).unwrap());
        assert_eq!(r(5), Redundancy::new(3, 5).unwrap());
        assert_eq!(r(16), Redundancy::new(9, 16).unwrap());
        assert_eq!(r(40), Redundancy::new(9, 16).unwrap());
        assert!(Redundancy::for_peers(0).is_err());
        assert!(Redundancy::new(0, 3).is_err());
        assert!(Redundancy::new(4, 3).is_err());
        assert!(Redundancy::new(1, 33).is_err());
        assert_eq!(r(5).to_string(), "3-of-5");
    }
}
