//! Manifests: which chunks make a file and which shares make a chunk. Secret to the owner
//! (kept sealed in the catalog), never sent to a peer in the clear.
//!
//! Encoding, version 1: one version byte (= 1) followed by the postcard encoding of
//! [`Manifest`]. Decoding checks every field against the share format's limits.

use serde::{Deserialize, Serialize};

use crate::share::{MAX_SHARE_PAYLOAD, MAX_SHARES, ShareHeader};
use crate::{ChunkId, Error, PackId, Result, ShareId};

const MANIFEST_VERSION: u8 = 1;

/// One chunk of a file: its id, length, erasure parameters and the ids of its `n` shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Keyed hash of the chunk's plaintext.
    pub id: ChunkId,
    /// Plaintext length in bytes.
    pub len: u32,
    /// Shares needed to rebuild the chunk.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Payload length of each share.
    pub share_len: u32,
    /// The share ids, by share index.
    pub shares: Vec<ShareId>,
}

impl ChunkRef {
    /// Checks that the fields are consistent and within the format's limits.
    pub fn validate(&self) -> Result<()> {
        validate_coding(self.k, self.n, self.shares.len(), self.share_len)?;
        // The sealed chunk (plaintext, padding marker, tag) must fit in its k data shares.
        if u64::from(self.len) + 17 > u64::from(self.k) * u64::from(self.share_len) {
            return Err(Error::InvalidManifest(
                "chunk length does not fit its shares",
            ));
        }
        Ok(())
    }

    /// The header share `index` of this chunk must have.
    pub fn expected_header(&self, index: u8) -> Result<ShareHeader> {
        ShareHeader::new(self.k, self.n, index, self.share_len)
    }
}

/// The checks a chunk's and a pack's coding share: `1 <= k <= n <= 32`, `n` share ids, and an
/// even, non-zero share length within the share format's limit.
fn validate_coding(k: u8, n: u8, share_ids: usize, share_len: u32) -> Result<()> {
    if k == 0 || k > n || n > MAX_SHARES {
        return Err(Error::InvalidManifest("k and n out of range"));
    }
    if share_ids != usize::from(n) {
        return Err(Error::InvalidManifest("number of share ids differs from n"));
    }
    if share_len == 0 || !share_len.is_multiple_of(2) || share_len > MAX_SHARE_PAYLOAD {
        return Err(Error::InvalidManifest("share length out of range"));
    }
    Ok(())
}

/// One pack: its id, erasure parameters and the ids of its `n` shares. Secret to the owner
/// like a [`ChunkRef`] (which blobs are in the pack is recorded beside it, never in the pack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRef {
    /// The pack's random id.
    pub id: PackId,
    /// Shares needed to rebuild the pack.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Payload length of each share (one of the pack classes).
    pub share_len: u32,
    /// The share ids, by share index.
    pub shares: Vec<ShareId>,
}

impl PackRef {
    /// Checks that the fields are consistent and within the format's limits.
    pub fn validate(&self) -> Result<()> {
        validate_coding(self.k, self.n, self.shares.len(), self.share_len)?;
        Ok(())
    }

    /// The pack's length: `k` data shares.
    pub fn len(&self) -> u64 {
        u64::from(self.k) * u64::from(self.share_len)
    }

    /// Whether the pack holds no bytes (never, for a valid one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header share `index` of this pack must have.
    pub fn expected_header(&self, index: u8) -> Result<ShareHeader> {
        ShareHeader::new(self.k, self.n, index, self.share_len)
    }
}

/// The chunks of one file, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// File size in bytes: the sum of the chunk lengths.
    pub size: u64,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkRef>,
}

impl Manifest {
    /// Encodes the manifest (version byte + postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        let out = vec![MANIFEST_VERSION];
        // Serializing plain structs into a Vec cannot fail.
        match postcard::to_extend(self, out) {
            Ok(v) => v,
            Err(_) => unreachable!("postcard serialization into a Vec is infallible"),
        }
    }

    /// Decodes and validates a manifest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let Some((&version, body)) = bytes.split_first() else {
            return Err(Error::Truncated { need: 1, have: 0 });
        };
        if version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let (manifest, rest): (Manifest, _) = postcard::take_from_bytes(body)
            .map_err(|_| Error::InvalidManifest("does not decode"))?;
        if !rest.is_empty() {
            return Err(Error::InvalidManifest("trailing bytes"));
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every chunk and that the sizes add up.
    pub fn validate(&self) -> Result<()> {
        let mut total: u64 = 0;
        for chunk in &self.chunks {
            chunk.validate()?;
            total = total.saturating_add(u64::from(chunk.len));
        }
        if total != self.size {
            return Err(Error::InvalidManifest(
                "chunk lengths do not add up to the size",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(len: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId([1; 32]),
            len,
            k: 2,
            n: 3,
            share_len: 64,
            shares: vec![ShareId([2; 32]), ShareId([3; 32]), ShareId([4; 32])],
        }
    }

    #[test]
    fn roundtrip() {
        let m = Manifest {
            size: 100,
            chunks: vec![chunk(60), chunk(40)],
        };
        assert_eq!(Manifest::from_bytes(&m.to_bytes()).unwrap(), m);
        let empty = Manifest::default();
        assert_eq!(Manifest::from_bytes(&empty.to_bytes()).unwrap(), empty);
    }

    #[test]
    fn inconsistent_manifests_are_rejected() {
        let mut wrong_size = Manifest {
            size: 99,
            chunks: vec![chunk(60), chunk(40)],
        };
        assert!(Manifest::from_bytes(&wrong_size.to_bytes()).is_err());
        wrong_size.size = 100;
        wrong_size.chunks[0].shares.pop();
        assert!(Manifest::from_bytes(&wrong_size.to_bytes()).is_err());
        let too_long = Manifest {
            size: 200,
            chunks: vec![chunk(200)],
        };
        assert!(Manifest::from_bytes(&too_long.to_bytes()).is_err());
        assert_eq!(
            Manifest::from_bytes(&[]),
            Err(Error::Truncated { need: 1, have: 0 })
        );
        assert_eq!(
            Manifest::from_bytes(&[9]),
            Err(Error::UnsupportedVersion(9))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::from_bytes(&bytes);
        }
    }
}
