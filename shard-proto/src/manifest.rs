//! Manifests: which chunks make a file and which shares make a chunk. Secret to the owner
//! (kept sealed in the catalog), never sent to a peer in the clear.
//!
//! Encoding, version 3: one version byte (= 3) followed by the postcard encoding of
//! [`Manifest`]. Decoding checks every field against the share format's limits. Version 2
//! added [`ChunkRef::pack`] (chunks stored as blobs in packs); version 3 changed no field
//! but the blobs it names (sealed with a random nonce). Earlier versions are refused.
//!
//! Version 4 is how the catalog keeps a manifest ([`Manifest::to_compact_bytes`],
//! [`CompactManifest`]): the same fields, but a blob's reference lists none of its pack's share
//! ids (an empty list), since the catalog records them once per pack. Five ids of 32 bytes in
//! every small file's manifest were most of its catalog row.

use serde::{Deserialize, Serialize};

use crate::share::{MAX_SHARE_PAYLOAD, MAX_SHARES, ShareHeader};
use crate::{ChunkId, Error, PackId, Result, ShareId};

const MANIFEST_VERSION: u8 = 3;
const COMPACT_MANIFEST_VERSION: u8 = 4;

/// One chunk of a file: its id, length, and the encoding that holds it — erasure parameters
/// and the ids of its `n` shares. A chunk is either coded on its own (`pack` is `None`: the
/// encoding is the chunk's, recorded under its id) or a blob in a pack (`pack` says which and
/// where: the encoding is the pack's, recorded under the pack's id).
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
    /// The pack the chunk lies in, when it is a blob in one.
    pub pack: Option<BlobAt>,
}

/// Where a chunk lies as a blob: its pack and first byte in it. The blob is the chunk's
/// plaintext sealed alone, `len + 28` bytes (nonce and tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobAt {
    /// The pack.
    pub pack: PackId,
    /// The blob's first byte in the pack.
    pub offset: u32,
}

/// Bytes a blob takes beyond its chunk's plaintext: the AEAD nonce and tag.
pub const BLOB_OVERHEAD: u64 = 28;

/// Random bytes at the start of every data share of a pack: blobs lie in the rest.
pub const PACK_SHARE_SALT: u32 = 16;

impl ChunkRef {
    /// Checks that the fields are consistent and within the format's limits.
    pub fn validate(&self) -> Result<()> {
        validate_coding(self.k, self.n, self.shares.len(), self.share_len)?;
        let capacity = u64::from(self.k) * u64::from(self.share_len);
        match self.pack {
            // The blob (plaintext and tag) must lie within the room the pack's k data shares
            // leave after their salt.
            Some(at) => {
                let room =
                    u64::from(self.k) * u64::from(self.share_len.saturating_sub(PACK_SHARE_SALT));
                if self.len == 0
                    || u64::from(at.offset) + u64::from(self.len) + BLOB_OVERHEAD > room
                {
                    return Err(Error::InvalidManifest("blob lies outside its pack"));
                }
            }
            // The sealed chunk (plaintext, padding marker, tag) must fit in its k data shares.
            None => {
                if u64::from(self.len) + 17 > capacity {
                    return Err(Error::InvalidManifest(
                        "chunk length does not fit its shares",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The id the encoding that holds the chunk is recorded under: the pack's for a blob, the
    /// chunk's own otherwise (the two never collide: pack ids are random, chunk ids keyed
    /// hashes).
    pub fn encoding(&self) -> ChunkId {
        self.pack.map_or(self.id, |at| ChunkId(at.pack.0))
    }

    /// The record of the pack the chunk lies in, if it is a blob.
    pub fn pack_ref(&self) -> Option<PackRef> {
        self.pack.map(|at| PackRef {
            id: at.pack,
            k: self.k,
            n: self.n,
            share_len: self.share_len,
            shares: self.shares.clone(),
        })
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

    /// The pack as the share path (placement, fetch, check, repair) handles any encoding: a
    /// chunk reference under the pack's id with no plaintext of its own.
    pub fn as_chunk_ref(&self) -> ChunkRef {
        ChunkRef {
            id: ChunkId(self.id.0),
            len: 0,
            k: self.k,
            n: self.n,
            share_len: self.share_len,
            shares: self.shares.clone(),
            pack: None,
        }
    }
}

/// The version byte and the postcard body of a manifest, decoded but not validated.
fn decode(bytes: &[u8], expected: u8) -> Result<Manifest> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(Error::Truncated { need: 1, have: 0 });
    };
    if version != expected {
        return Err(Error::UnsupportedVersion(version));
    }
    let (manifest, rest): (Manifest, _) =
        postcard::take_from_bytes(body).map_err(|_| Error::InvalidManifest("does not decode"))?;
    if !rest.is_empty() {
        return Err(Error::InvalidManifest("trailing bytes"));
    }
    Ok(manifest)
}

/// A manifest as the catalog keeps it (version 4), decoded: its blobs do not list their packs'
/// share ids yet. [`CompactManifest::resolve`] makes it a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactManifest(Manifest);

impl CompactManifest {
    /// Decodes a manifest of version 4 and checks that its blobs list no share ids (the rest is
    /// checked by [`CompactManifest::resolve`], once they are back).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let manifest = decode(bytes, COMPACT_MANIFEST_VERSION)?;
        for chunk in &manifest.chunks {
            if chunk.pack.is_some() && !chunk.shares.is_empty() {
                return Err(Error::InvalidManifest(
                    "a blob lists share ids its pack's record holds",
                ));
            }
        }
        Ok(Self(manifest))
    }

    /// The manifest with each blob's pack share ids from `shares_of(pack, k, n, share_len)`
    /// (asked once per blob), validated whole.
    pub fn resolve<E: From<Error>>(
        self,
        mut shares_of: impl FnMut(&PackId, u8, u8, u32) -> std::result::Result<Vec<ShareId>, E>,
    ) -> std::result::Result<Manifest, E> {
        let mut manifest = self.0;
        for chunk in &mut manifest.chunks {
            if let Some(at) = chunk.pack {
                chunk.shares = shares_of(&at.pack, chunk.k, chunk.n, chunk.share_len)?;
            }
        }
        manifest.validate()?;
        Ok(manifest)
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

    /// Encodes the manifest as the catalog keeps it (version 4): a blob's reference leaves
    /// out its pack's share ids, which [`CompactManifest::resolve`] puts back.
    pub fn to_compact_bytes(&self) -> Vec<u8> {
        /// A [`ChunkRef`] field for field (postcard writes a slice as it writes a `Vec`), so
        /// that the bytes decode as a [`Manifest`] whose blobs list no share ids.
        #[derive(Serialize)]
        struct View<'a> {
            id: &'a ChunkId,
            len: u32,
            k: u8,
            n: u8,
            share_len: u32,
            shares: &'a [ShareId],
            pack: &'a Option<BlobAt>,
        }
        let chunks: Vec<View<'_>> = self
            .chunks
            .iter()
            .map(|c| View {
                id: &c.id,
                len: c.len,
                k: c.k,
                n: c.n,
                share_len: c.share_len,
                shares: if c.pack.is_some() { &[] } else { &c.shares },
                pack: &c.pack,
            })
            .collect();
        let out = vec![COMPACT_MANIFEST_VERSION];
        match postcard::to_extend(&(self.size, chunks), out) {
            Ok(v) => v,
            Err(_) => unreachable!("postcard serialization into a Vec is infallible"),
        }
    }

    /// Decodes and validates a manifest of version 3 (every share id listed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let manifest = decode(bytes, MANIFEST_VERSION)?;
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
            pack: None,
        }
    }

    #[test]
    fn a_blob_must_lie_within_its_pack() {
        // Two data shares of 64 bytes, 48 of each past the salt: 96 bytes of room.
        let mut c = chunk(50);
        c.pack = Some(BlobAt {
            pack: PackId([5; 32]),
            offset: 96 - 50 - 28,
        });
        assert!(c.validate().is_ok());
        assert_eq!(c.encoding(), ChunkId([5; 32]));
        c.pack = Some(BlobAt {
            pack: PackId([5; 32]),
            offset: 96 - 50 - 27,
        });
        assert!(c.validate().is_err());
        c.pack = Some(BlobAt {
            pack: PackId([5; 32]),
            offset: u32::MAX,
        });
        assert!(c.validate().is_err());
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

    #[test]
    fn the_compact_form_leaves_out_only_a_blobs_share_ids() {
        let own = chunk(60);
        let mut blob = chunk(40);
        blob.pack = Some(BlobAt {
            pack: PackId([5; 32]),
            offset: 0,
        });
        let m = Manifest {
            size: 100,
            chunks: vec![own, blob.clone()],
        };
        let compact = m.to_compact_bytes();
        // The blob's three share ids of 32 bytes are gone, nothing else.
        assert_eq!(compact.len() + 3 * 32, m.to_bytes().len());
        let mut asked = Vec::new();
        let back = CompactManifest::from_bytes(&compact)
            .unwrap()
            .resolve(|pack, k, n, share_len| {
                asked.push((*pack, k, n, share_len));
                Ok::<_, Error>(blob.shares.clone())
            })
            .unwrap();
        assert_eq!(back, m);
        assert_eq!(asked, vec![(PackId([5; 32]), 2, 3, 64)]);
        // A record with the wrong number of ids fails validation; a failed lookup is the
        // caller's error; versions are not mixed up.
        let short = CompactManifest::from_bytes(&compact)
            .unwrap()
            .resolve(|_, _, _, _| Ok::<_, Error>(vec![ShareId([2; 32])]));
        assert_eq!(
            short,
            Err(Error::InvalidManifest("number of share ids differs from n"))
        );
        let missing = CompactManifest::from_bytes(&compact)
            .unwrap()
            .resolve(|_, _, _, _| Err(Error::InvalidManifest("no such pack")));
        assert_eq!(missing, Err(Error::InvalidManifest("no such pack")));
        assert_eq!(
            Manifest::from_bytes(&compact),
            Err(Error::UnsupportedVersion(4))
        );
        assert_eq!(
            CompactManifest::from_bytes(&m.to_bytes()),
            Err(Error::UnsupportedVersion(3))
        );
    }

    #[test]
    fn a_compact_blob_that_lists_share_ids_is_refused() {
        let mut blob = chunk(40);
        blob.pack = Some(BlobAt {
            pack: PackId([5; 32]),
            offset: 0,
        });
        let mut bytes = Manifest {
            size: 40,
            chunks: vec![blob],
        }
        .to_bytes();
        bytes[0] = 4;
        assert_eq!(
            CompactManifest::from_bytes(&bytes),
            Err(Error::InvalidManifest(
                "a blob lists share ids its pack's record holds"
            ))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::from_bytes(&bytes);
            let _ = CompactManifest::from_bytes(&bytes);
        }
    }
}
