//! Packs: the sealed chunks (blobs) of many files erasure-coded as one uniform unit.
//!
//! Why: a chunk coded on its own becomes `n` share files on `n` peers — a file, an fsync and
//! an index row per small file on every peer — and every peer learns the chunk's size, which
//! is what the published attacks on content-defined chunking use. A pack gathers the blobs of
//! many chunks, of any files, in random order, and is coded as one: a peer sees shares of a
//! few fixed sizes and learns neither chunk sizes nor file boundaries.
//!
//! Pack format 1:
//! - A **blob** is one chunk sealed alone under its own key ([`BLOB_FORMAT`]: shard-crypto's
//!   chunk key, bound to the chunk id and the chunk's length; no padding, the pack hides the
//!   size) with a fresh random nonce: `nonce ‖ ciphertext ‖ tag`, [`BLOB_OVERHEAD`] bytes
//!   more than the chunk. The same chunk packed twice (a put run again, a stronger
//!   redundancy) is two unrelated byte strings, so no peer can link the packs by it. Any blob
//!   can be read and authenticated from its byte range alone.
//! - A **pack** is `k` data shares of `share_len` bytes. Each begins with [`SHARE_SALT`]
//!   random bytes; the rest, read share after share, holds the blobs back to back in random
//!   order, then random filler. Offsets of blobs count only those bytes (a pack's
//!   *capacity*, [`PackShape::capacity`]). It has no header: which blob lies where is recorded
//!   only in the owner's sealed catalog ([`BlobPlace`]). Its id is random ([`PackId`]).
//! - Why the salt: a data share may lie wholly within one blob or within filler, and share
//!   ids are hashes of the share: the salt makes every share of every pack unique whatever
//!   it holds, so no share id is ever two packs' shares (deleting one would delete the
//!   other).
//!   With 128 random bits in every data share (and so in every recovery share), no two
//!   shares of any packs are the same.
//! - `share_len` is one of [`SHARE_CLASSES`], the same whatever `k`, so a peer holding shares
//!   of any number of files sees at most that many share sizes. A full pack takes the largest
//!   class that keeps it within [`FULL_PACK_MAX`] bytes. What is left at the end of a put is
//!   spread over the packs that cost the fewest share bytes (counting a fixed cost per share,
//!   so a large rest is not cut into many small packs), each in the smallest class it fits:
//!   a change of a few hundred KiB sends about its coded size, not a whole larger pack.
//! - The Reed-Solomon code is systematic: data share `i` is the pack's bytes `i·L..(i+1)·L`.
//!   A blob is read from the data shares it lies in ([`PackShape::pieces`]); when one of them
//!   cannot be had, the same window of `k` other shares is fetched and decoded
//!   ([`PackShape::window`]). That works because reed-solomon-simd codes every 64-byte block
//!   of a shard on its own: a window aligned to 64 bytes decodes like whole shards.

use std::ops::Range;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use shard_crypto::{ChunkFormat, SEAL_OVERHEAD, VaultKeys};
use shard_proto::BLOB_OVERHEAD;
use shard_proto::{ChunkId, PackId, PackRef, SHARE_VERSION, Share, ShareHeader};

use crate::buffers::BufferPool;
use crate::erasure::ErasureCoder;
use crate::pipeline::Redundancy;
use crate::{Error, Result};

/// The blob format written by this build (padding scheme 0: none); bound into every blob key.
pub const BLOB_FORMAT: ChunkFormat = ChunkFormat {
    version: SHARE_VERSION,
    padding: 0,
};

/// The share payload sizes a pack may have: 128 and 256 KiB, 1, 4 and 8 MiB. Whatever `k`,
/// every pack share has one of these sizes.
pub const SHARE_CLASSES: [u32; 5] = [128 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20];

/// What one more share costs besides its bytes, when the rest of a put is laid out in packs:
/// a file, an fsync and an index row on a peer, a request, a catalog row. With it a rest of
/// megabytes takes one large pack rather than dozens of small ones.
const SHARE_COST: u64 = 32 << 10;

/// The most bytes a full pack holds (its `k` data shares): bounds the memory a put holds per
/// open pack.
pub const FULL_PACK_MAX: u64 = 16 << 20;

/// Reed-Solomon codes each block of this many bytes of a shard on its own.
const BLOCK: u32 = 64;

/// Random bytes at the start of every data share of a pack (see the module's docs).
pub const SHARE_SALT: u32 = shard_proto::PACK_SHARE_SALT;

/// Packs filled at once; each blob goes to one of them at random, so that neither the order
/// of blobs within a pack nor the pack a blob lands in follows the order of the files.
const OPEN_PACKS: usize = 2;

/// A pack's coding: `k`-of-`n` shares of `share_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackShape {
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Payload bytes of every share.
    pub share_len: u32,
}

/// Part of a byte range of a pack that lies in one data share: bytes `start..end` of share
/// `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The data share (`< k`).
    pub index: u8,
    /// First byte within the share.
    pub start: u32,
    /// One past the last byte within the share.
    pub end: u32,
}

impl Piece {
    /// The byte range within the share.
    pub fn range(&self) -> Range<u32> {
        self.start..self.end
    }
}

impl PackShape {
    /// The shape of a full pack coded with `redundancy`: the largest share class whose pack
    /// stays within [`FULL_PACK_MAX`] (the smallest class if none does).
    pub fn full(redundancy: Redundancy) -> Self {
        let k = u64::from(redundancy.k());
        let share_len = SHARE_CLASSES
            .iter()
            .rev()
            .copied()
            .find(|c| k * u64::from(*c) <= FULL_PACK_MAX)
            .unwrap_or(SHARE_CLASSES[0]);
        Self {
            k: redundancy.k(),
            n: redundancy.n(),
            share_len,
        }
    }

    /// The smallest shape coded with `redundancy` that holds `bytes` of blobs, up to the
    /// full one.
    pub fn fitting(redundancy: Redundancy, bytes: u64) -> Option<Self> {
        let full = Self::full(redundancy);
        SHARE_CLASSES
            .iter()
            .copied()
            .take_while(|c| *c <= full.share_len)
            .map(|share_len| Self { share_len, ..full })
            .find(|shape| shape.capacity() >= bytes)
    }

    /// The shape of a recorded pack (checked).
    pub fn of(pack: &PackRef) -> Result<Self> {
        pack.validate()?;
        Ok(Self {
            k: pack.k,
            n: pack.n,
            share_len: pack.share_len,
        })
    }

    /// Bytes of blobs the pack holds: its `k` data shares less their salt.
    pub fn capacity(&self) -> u64 {
        u64::from(self.k) * u64::from(self.room())
    }

    /// The pack's bytes as coded: its `k` data shares, salt included.
    pub fn coded_len(&self) -> u64 {
        u64::from(self.k) * u64::from(self.share_len)
    }

    /// Bytes of blobs one data share holds.
    fn room(&self) -> u32 {
        self.share_len.saturating_sub(SHARE_SALT)
    }

    /// Where blob bytes `offset..offset + len` (offsets past the salt, as [`BlobPlace`]
    /// records them) lie in the pack's data shares, in order; [`Error::OutsidePack`] for an
    /// empty range or one past the pack's end.
    pub fn pieces(&self, offset: u64, len: u64) -> Result<Vec<Piece>> {
        let end = offset.saturating_add(len);
        let room = u64::from(self.room());
        if len == 0 || end > self.capacity() || room == 0 {
            return Err(Error::OutsidePack {
                offset,
                len,
                pack_len: self.capacity(),
            });
        }
        let salt = u64::from(SHARE_SALT);
        let mut pieces = Vec::new();
        let mut at = offset;
        while at < end {
            let index = at / room;
            let stop = end.min((index + 1) * room);
            // All three fit: index < k ≤ 32 and positions within a share < share_len ≤ u32.
            pieces.push(Piece {
                index: u8::try_from(index).map_err(|_| Error::InvalidParameters("share index"))?,
                start: u32::try_from(salt + at - index * room)
                    .map_err(|_| Error::InvalidParameters("share offset"))?,
                end: u32::try_from(salt + stop - index * room)
                    .map_err(|_| Error::InvalidParameters("share offset"))?,
            });
            at = stop;
        }
        Ok(pieces)
    }

    /// The window of every share that rebuilds `piece` by decoding: its range widened to whole
    /// 64-byte blocks (at most the share's end).
    pub fn window(&self, piece: &Piece) -> Range<u32> {
        let start = piece.start - piece.start % BLOCK;
        let end = piece
            .end
            .div_ceil(BLOCK)
            .saturating_mul(BLOCK)
            .min(self.share_len);
        start..end
    }
}

/// A chunk sealed as a blob, waiting for its pack.
pub struct Blob {
    id: ChunkId,
    len: u32,
    sealed: Vec<u8>,
}

impl Blob {
    /// Seals `plaintext` (one chunk, up to 4 GiB) under its own key.
    pub fn seal(keys: &VaultKeys, plaintext: &[u8]) -> Result<Self> {
        let id = ChunkId(keys.chunk_id(plaintext));
        let mut buf = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        buf.extend_from_slice(plaintext);
        Self::seal_as(keys, id, buf)
    }

    /// Seals `plaintext`, whose id the caller computed (`keys.chunk_id`), taking its buffer.
    pub(crate) fn seal_as(keys: &VaultKeys, id: ChunkId, mut plaintext: Vec<u8>) -> Result<Self> {
        let len = u32::try_from(plaintext.len())
            .map_err(|_| Error::InvalidParameters("chunk larger than 4 GiB"))?;
        plaintext.reserve_exact(SEAL_OVERHEAD);
        keys.seal_blob(&id.0, BLOB_FORMAT, &mut plaintext)?;
        Ok(Self {
            id,
            len,
            sealed: plaintext,
        })
    }

    /// The chunk's id.
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// The chunk's plaintext length.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the chunk is empty (chunks never are).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the blob takes in a pack (plaintext and tag).
    pub fn sealed_len(&self) -> u64 {
        self.sealed.len() as u64
    }
}

/// Where a blob lies in its pack: what the owner's catalog records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobPlace {
    /// The chunk.
    pub chunk: ChunkId,
    /// Its plaintext length (the blob is `BLOB_OVERHEAD` bytes longer: nonce and tag).
    pub len: u32,
    /// Its first byte in the pack.
    pub offset: u32,
}

impl BlobPlace {
    /// Where the blob a chunk reference names lies (`None` if it is not a blob).
    pub fn of(chunk: &shard_proto::ChunkRef) -> Option<Self> {
        chunk.pack.map(|at| Self {
            chunk: chunk.id,
            len: chunk.len,
            offset: at.offset,
        })
    }

    /// Bytes the blob takes in the pack.
    pub fn sealed_len(&self) -> u64 {
        u64::from(self.len) + BLOB_OVERHEAD
    }
}

/// A pack ready to be coded: its bytes (`shape.coded_len()` of them) and its blobs.
pub struct Pack {
    /// Its random id.
    pub id: PackId,
    /// Its coding.
    pub shape: PackShape,
    /// Blobs, then random filler.
    pub bytes: Vec<u8>,
    /// Where each blob lies.
    pub blobs: Vec<BlobPlace>,
}

struct Open {
    blobs: Vec<Blob>,
    used: u64,
}

/// First fit: the bin of each of `sizes` (given largest first) in bins of `capacity`, and how
/// many bins; `None` when one does not fit at all.
fn first_fit(sizes: &[u64], capacity: u64) -> Option<(Vec<usize>, usize)> {
    let mut free: Vec<u64> = Vec::new();
    let mut bins = Vec::with_capacity(sizes.len());
    for size in sizes {
        if *size > capacity {
            return None;
        }
        let bin = match free.iter().position(|f| f >= size) {
            Some(bin) => bin,
            None => {
                free.push(capacity);
                free.len() - 1
            }
        };
        if let Some(f) = free.get_mut(bin) {
            *f -= size;
        }
        bins.push(bin);
    }
    Some((bins, free.len()))
}

/// Gathers blobs into packs, at random among two open ones; a pack is finished when
/// a blob fits in none of them (the fullest is closed), and by [`PackBuilder::finish`].
/// Holds at most two full packs of blobs.
pub struct PackBuilder {
    redundancy: Redundancy,
    full: PackShape,
    open: Vec<Open>,
    rng: ChaCha20Rng,
    pool: BufferPool,
}

impl PackBuilder {
    /// A builder of packs coded with `redundancy`, seeded from the operating system.
    pub fn new(redundancy: Redundancy) -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| Error::Crypto(shard_crypto::Error::Random))?;
        Ok(Self::seeded(redundancy, seed))
    }

    /// A builder whose choices follow `seed` (tests and benchmarks that must repeat).
    pub fn seeded(redundancy: Redundancy, seed: [u8; 32]) -> Self {
        Self {
            redundancy,
            full: PackShape::full(redundancy),
            open: Vec::new(),
            rng: ChaCha20Rng::from_seed(seed),
            pool: BufferPool::new(),
        }
    }

    /// Takes each pack's buffer from `pool`: give it the pool of the [`PackCoder`] that codes
    /// the packs, and a pack's buffer is used again once its shares are sent.
    pub fn recycling(mut self, pool: BufferPool) -> Self {
        self.pool = pool;
        self
    }

    /// The redundancy of the packs made.
    pub fn redundancy(&self) -> Redundancy {
        self.redundancy
    }

    /// Bytes of blobs held in open packs.
    pub fn buffered(&self) -> u64 {
        self.open.iter().map(|o| o.used).sum()
    }

    /// Adds a blob; returns the pack it closed, if any. A blob larger than a full pack is
    /// [`Error::InvalidParameters`].
    pub fn add(&mut self, blob: Blob) -> Result<Option<Pack>> {
        let size = blob.sealed_len();
        let capacity = self.full.capacity();
        if size > capacity {
            return Err(Error::InvalidParameters("chunk larger than a full pack"));
        }
        while self.open.len() < OPEN_PACKS {
            self.open.push(Open {
                blobs: Vec::new(),
                used: 0,
            });
        }
        let fits: Vec<usize> = (0..self.open.len())
            .filter(|i| self.open.get(*i).is_some_and(|o| o.used + size <= capacity))
            .collect();
        let mut closed = None;
        let slot = if fits.is_empty() {
            // Close the fullest; the blob starts a new pack in its place.
            let fullest = (0..self.open.len())
                .max_by_key(|i| self.open.get(*i).map_or(0, |o| o.used))
                .unwrap_or(0);
            let done = std::mem::replace(
                self.open
                    .get_mut(fullest)
                    .ok_or(Error::InvalidParameters("no open pack"))?,
                Open {
                    blobs: Vec::new(),
                    used: 0,
                },
            );
            closed = Some(self.seal_pack(done, self.full)?);
            fullest
        } else {
            let pick = self.pick(fits.len());
            fits.get(pick).copied().unwrap_or(0)
        };
        let open = self
            .open
            .get_mut(slot)
            .ok_or(Error::InvalidParameters("no open pack"))?;
        open.used += size;
        open.blobs.push(blob);
        Ok(closed)
    }

    /// Closes the open packs, each in the smallest shape it fits.
    pub fn finish(mut self) -> Result<Vec<Pack>> {
        self.close_open()
    }

    /// Closes the open packs, each in the smallest shape it fits, and goes on with new ones:
    /// what a put does when too many files wait for packs that fill slowly.
    pub fn close_open(&mut self) -> Result<Vec<Pack>> {
        let mut blobs: Vec<Blob> = std::mem::take(&mut self.open)
            .into_iter()
            .flat_map(|o| o.blobs)
            .collect();
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        // Shuffled, then largest first (a stable sort): which pack a blob lands in follows
        // neither the order of the files nor, among blobs of one size, anything else.
        for i in (1..blobs.len()).rev() {
            let j = self.pick(i + 1);
            blobs.swap(i, j);
        }
        blobs.sort_by_key(|b| std::cmp::Reverse(b.sealed_len()));
        let sizes: Vec<u64> = blobs.iter().map(Blob::sealed_len).collect();
        let n = u64::from(self.redundancy.n());
        // The class whose packs cost least, laid out first fit (largest first).
        let mut best: Option<(u64, Vec<usize>)> = None;
        for share_len in SHARE_CLASSES
            .iter()
            .copied()
            .filter(|c| *c <= self.full.share_len)
        {
            let shape = PackShape {
                share_len,
                ..self.full
            };
            let Some((bins, count)) = first_fit(&sizes, shape.capacity()) else {
                continue;
            };
            let cost = (count as u64)
                .saturating_mul(n)
                .saturating_mul(u64::from(share_len) + SHARE_COST);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, bins));
            }
        }
        let bins = best
            .map(|(_, bins)| bins)
            .ok_or(Error::InvalidParameters("chunk larger than a full pack"))?;
        let count = bins.iter().max().map_or(0, |m| m + 1);
        let mut packs: Vec<Open> = (0..count)
            .map(|_| Open {
                blobs: Vec::new(),
                used: 0,
            })
            .collect();
        for (blob, bin) in blobs.into_iter().zip(bins) {
            if let Some(open) = packs.get_mut(bin) {
                open.used += blob.sealed_len();
                open.blobs.push(blob);
            }
        }
        let mut out = Vec::with_capacity(packs.len());
        for o in packs {
            // Each in the smallest class it fits (the last one is often less full).
            let shape = PackShape::fitting(self.redundancy, o.used).unwrap_or(self.full);
            out.push(self.seal_pack(o, shape)?);
        }
        Ok(out)
    }

    /// A uniform choice in `0..count`.
    fn pick(&mut self, count: usize) -> usize {
        let count = u64::try_from(count.max(1)).unwrap_or(u64::MAX);
        // The modulo's bias is below 2^-58 for the counts used here.
        usize::try_from(self.rng.next_u64() % count).unwrap_or(0)
    }

    /// Lays the blobs out in random order, fills the rest with random bytes, draws an id.
    fn seal_pack(&mut self, open: Open, shape: PackShape) -> Result<Pack> {
        let mut blobs = open.blobs;
        // Fisher-Yates.
        for i in (1..blobs.len()).rev() {
            let j = self.pick(i + 1);
            blobs.swap(i, j);
        }
        let coded = usize::try_from(shape.coded_len())
            .map_err(|_| Error::InvalidParameters("pack size"))?;
        let mut bytes = self.pool.zeroed(coded);
        let share_len = shape.share_len as usize;
        // Each data share's salt, random.
        for i in 0..usize::from(shape.k) {
            if let Some(salt) = bytes.get_mut(i * share_len..i * share_len + SHARE_SALT as usize) {
                self.rng.fill_bytes(salt);
            }
        }
        let mut places = Vec::with_capacity(blobs.len());
        let mut offset = 0u64;
        for blob in blobs {
            places.push(BlobPlace {
                chunk: blob.id,
                len: blob.len,
                offset: u32::try_from(offset)
                    .map_err(|_| Error::InvalidParameters("pack larger than 4 GiB"))?,
            });
            let mut from = 0usize;
            for piece in shape.pieces(offset, blob.sealed_len())? {
                let start = usize::from(piece.index) * shape.share_len as usize;
                let (a, b) = (start + piece.start as usize, start + piece.end as usize);
                let part = blob
                    .sealed
                    .get(from..from + (b - a))
                    .ok_or(Error::InvalidParameters("blob shorter than its pieces"))?;
                bytes
                    .get_mut(a..b)
                    .ok_or(Error::InvalidParameters("blobs overflow their pack"))?
                    .copy_from_slice(part);
                from += b - a;
            }
            offset += blob.sealed_len();
        }
        // Random filler after the last blob.
        if offset < shape.capacity() {
            for piece in shape.pieces(offset, shape.capacity() - offset)? {
                let start = usize::from(piece.index) * share_len;
                if let Some(filler) =
                    bytes.get_mut(start + piece.start as usize..start + piece.end as usize)
                {
                    self.rng.fill_bytes(filler);
                }
            }
        }
        let mut id = [0u8; 32];
        self.rng.fill_bytes(&mut id);
        Ok(Pack {
            id: PackId(id),
            shape,
            bytes,
            blobs: places,
        })
    }
}

/// A pack coded: what the owner records, and the `n` shares to place.
#[derive(Debug, Clone)]
pub struct EncodedPack {
    /// The pack's record: id, coding, share ids.
    pub pack: PackRef,
    /// Where each blob lies.
    pub blobs: Vec<BlobPlace>,
    /// The shares; `shares[i]` has index `i`.
    pub shares: Vec<Share>,
}

/// Blobs in, coded packs out, from any thread: a [`PackBuilder`] and a [`PackCoder`] whose
/// buffers go round between them. The stage between [`crate::seal_parallel`] and the
/// network: what a put runs, and what the `packs` benchmark measures.
///
/// Adding and coding are apart so that a caller can wait for room (packs in flight) before
/// it codes, and code on the thread that closed the pack.
///
/// ```
/// # use shard_store::{Packing, Redundancy};
/// # fn blobs() -> Vec<shard_store::Blob> { Vec::new() }
/// let packing = Packing::new(Redundancy::new(2, 3)?)?;
/// let mut coded = Vec::new();
/// for blob in blobs() {
///     if let Some(pack) = packing.add(blob)? {
///         coded.push(packing.code(pack)?);
///     }
/// }
/// for pack in packing.close_open()? {
///     coded.push(packing.code(pack)?);
/// }
/// # Ok::<(), shard_store::Error>(())
/// ```
pub struct Packing {
    builder: parking_lot::Mutex<PackBuilder>,
    coder: parking_lot::Mutex<PackCoder>,
}

impl Packing {
    /// Packs coded with `redundancy`.
    pub fn new(redundancy: Redundancy) -> Result<Self> {
        let coder = PackCoder::new();
        let builder = PackBuilder::new(redundancy)?.recycling(coder.pool());
        Ok(Self {
            builder: parking_lot::Mutex::new(builder),
            coder: parking_lot::Mutex::new(coder),
        })
    }

    /// The redundancy of the packs made.
    pub fn redundancy(&self) -> Redundancy {
        self.builder.lock().redundancy()
    }

    /// Adds a blob; returns the pack it closed, if any (see [`PackBuilder::add`]).
    pub fn add(&self, blob: Blob) -> Result<Option<Pack>> {
        self.builder.lock().add(blob)
    }

    /// Closes the packs open now; later blobs start new ones (see
    /// [`PackBuilder::close_open`]).
    pub fn close_open(&self) -> Result<Vec<Pack>> {
        self.builder.lock().close_open()
    }

    /// Codes a closed pack into its `n` shares (see [`PackCoder::encode`]).
    pub fn code(&self, pack: Pack) -> Result<EncodedPack> {
        self.coder.lock().encode(pack)
    }
}

/// Codes packs into shares and back. Keeps its Reed-Solomon buffers between packs, and the
/// pack and recovery buffers of the shares it made once they are dropped ([`PackCoder::pool`]).
#[derive(Default)]
pub struct PackCoder {
    coder: Option<ErasureCoder>,
    pool: BufferPool,
}

impl PackCoder {
    /// A coder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the buffers of the shares this coder made go back to, for
    /// [`PackBuilder::recycling`].
    pub fn pool(&self) -> BufferPool {
        self.pool.clone()
    }

    fn coder(&mut self, k: u8, n: u8) -> Result<&mut ErasureCoder> {
        let (k, n) = (usize::from(k), usize::from(n));
        if !self
            .coder
            .as_ref()
            .is_some_and(|c| c.k() == k && c.n() == n)
        {
            self.coder = Some(ErasureCoder::new(k, n)?);
        }
        self.coder
            .as_mut()
            .ok_or(Error::InvalidParameters("no erasure coder"))
    }

    /// The `n` shares of `pack`: its `k` data shares (slices of its bytes) and `n − k`
    /// recovery shares.
    pub fn encode(&mut self, pack: Pack) -> Result<EncodedPack> {
        let shape = pack.shape;
        let (k, n) = (shape.k, shape.n);
        if pack.bytes.len() as u64 != shape.coded_len() {
            return Err(Error::InvalidParameters("pack bytes differ from its shape"));
        }
        let mut recovery = self
            .pool
            .take(usize::from(n.saturating_sub(k)) * shape.share_len as usize);
        self.coder(k, n)?.encode_into(&pack.bytes, &mut recovery)?;
        let recovery = self.pool.share(recovery);
        let bytes = self.pool.share(pack.bytes);
        let len = shape.share_len as usize;
        let mut shares = Vec::with_capacity(usize::from(n));
        for index in 0..n {
            let i = usize::from(index);
            let payload = if index < k {
                bytes.slice(i * len..(i + 1) * len)
            } else {
                let r = i - usize::from(k);
                recovery.slice(r * len..(r + 1) * len)
            };
            let header = ShareHeader::new(k, n, index, shape.share_len)?;
            shares.push(Share::new(header, payload)?);
        }
        Ok(EncodedPack {
            pack: PackRef {
                id: pack.id,
                k,
                n,
                share_len: shape.share_len,
                shares: shares.iter().map(Share::id).collect(),
            },
            blobs: pack.blobs,
            shares,
        })
    }

    /// The pack's bytes from at least `k` of its shares (any order). Shares that are not the
    /// pack's (another id or header than the record lists at their index) and repeated indices
    /// are skipped; fewer than `k` good ones is [`Error::NotEnoughPackShares`].
    pub fn decode(&mut self, pack: &PackRef, shares: &[Share]) -> Result<Vec<u8>> {
        let shape = PackShape::of(pack)?;
        let mut picked: Vec<(usize, &[u8])> = Vec::with_capacity(usize::from(pack.k));
        for share in shares {
            let index = share.header().index();
            let good = pack.shares.get(usize::from(index)) == Some(&share.id())
                && pack.expected_header(index).ok().as_ref() == Some(share.header());
            let i = usize::from(index);
            if good && picked.len() < usize::from(pack.k) && !picked.iter().any(|(j, _)| *j == i) {
                picked.push((i, share.payload()));
            }
        }
        if picked.len() < usize::from(pack.k) {
            return Err(Error::NotEnoughPackShares {
                pack: pack.id,
                have: picked.len(),
                need: usize::from(pack.k),
            });
        }
        self.coder(pack.k, pack.n)?
            .decode(shape.share_len as usize, &picked)
    }

    /// Reads one blob of `pack` by ranges: each piece from its data share through
    /// `fetch(index, range)` (`None`: that share cannot be had), and a piece whose data share
    /// fails from the same window of `k` other shares, decoded. The result is authenticated
    /// ([`open_blob`]); bytes a peer altered are [`Error::CorruptChunk`], and the caller falls
    /// back to whole shares, which are checked against their ids.
    pub fn read_blob(
        &mut self,
        keys: &VaultKeys,
        pack: &PackRef,
        place: &BlobPlace,
        fetch: impl FnMut(u8, Range<u32>) -> Option<Bytes>,
    ) -> Result<Vec<u8>> {
        self.read_blob_noting(keys, pack, place, fetch, &mut Vec::new())
    }

    /// [`PackCoder::read_blob`], noting in `suspects` the data shares whose holders served
    /// bytes other than those rebuilt from the other shares (found when the blob did not
    /// authenticate with what they served).
    pub fn read_blob_noting(
        &mut self,
        keys: &VaultKeys,
        pack: &PackRef,
        place: &BlobPlace,
        mut fetch: impl FnMut(u8, Range<u32>) -> Option<Bytes>,
        suspects: &mut Vec<u8>,
    ) -> Result<Vec<u8>> {
        let shape = PackShape::of(pack)?;
        let pieces = shape.pieces(u64::from(place.offset), place.sealed_len())?;
        let total = usize::try_from(place.sealed_len())
            .map_err(|_| Error::InvalidParameters("blob length"))?;
        let mut sealed = Vec::with_capacity(total);
        // Pieces read straight from their data share: (position in `pieces`, bytes).
        let mut direct: Vec<(usize, Bytes)> = Vec::new();
        for (at, piece) in pieces.iter().enumerate() {
            let want = (piece.end - piece.start) as usize;
            match fetch(piece.index, piece.range()) {
                Some(bytes) if bytes.len() == want => {
                    sealed.extend_from_slice(&bytes);
                    direct.push((at, bytes));
                }
                _ => {
                    let rebuilt = self.rebuild_piece(&shape, pack, place, piece, &mut fetch)?;
                    sealed.extend_from_slice(&rebuilt);
                }
            }
        }
        match open_blob(keys, place, sealed) {
            // A data share's holder may have served other bytes: once more, every piece
            // rebuilt from the other shares.
            Err(Error::CorruptChunk { .. }) if !direct.is_empty() => {
                let mut sealed = Vec::with_capacity(total);
                let mut rebuilt = Vec::with_capacity(pieces.len());
                for piece in &pieces {
                    let bytes = self.rebuild_piece(&shape, pack, place, piece, &mut fetch)?;
                    sealed.extend_from_slice(&bytes);
                    rebuilt.push(bytes);
                }
                let plain = open_blob(keys, place, sealed)?;
                // What authenticates is right: a direct piece that differs from it was a lie.
                for (at, bytes) in &direct {
                    if rebuilt.get(*at).is_some_and(|r| r[..] != bytes[..])
                        && let Some(piece) = pieces.get(*at)
                    {
                        suspects.push(piece.index);
                    }
                }
                Ok(plain)
            }
            other => other,
        }
    }

    /// Bytes of `piece` rebuilt from the same window of `k` shares other than its own.
    fn rebuild_piece(
        &mut self,
        shape: &PackShape,
        pack: &PackRef,
        place: &BlobPlace,
        piece: &Piece,
        fetch: &mut impl FnMut(u8, Range<u32>) -> Option<Bytes>,
    ) -> Result<Vec<u8>> {
        let window = shape.window(piece);
        let window_len = (window.end - window.start) as usize;
        let mut got: Vec<(usize, Bytes)> = Vec::with_capacity(usize::from(shape.k));
        for index in (0..shape.n).filter(|i| *i != piece.index) {
            if got.len() == usize::from(shape.k) {
                break;
            }
            if let Some(bytes) = fetch(index, window.clone()).filter(|b| b.len() == window_len) {
                got.push((usize::from(index), bytes));
            }
        }
        if got.len() < usize::from(shape.k) {
            return Err(Error::NotEnoughShares {
                chunk: place.chunk,
                have: got.len(),
                need: usize::from(shape.k),
            });
        }
        let shards: Vec<(usize, &[u8])> = got.iter().map(|(i, b)| (*i, &b[..])).collect();
        let data = self.coder(pack.k, pack.n)?.decode(window_len, &shards)?;
        let from = usize::from(piece.index) * window_len + (piece.start - window.start) as usize;
        let to = from + (piece.end - piece.start) as usize;
        data.get(from..to)
            .map(<[u8]>::to_vec)
            .ok_or(Error::InvalidParameters("decoded window too short"))
    }
}

/// The chunk in a blob's bytes (`place.sealed_len()` of them), authenticated and checked
/// against its id; anything else is [`Error::CorruptChunk`].
pub fn open_blob(keys: &VaultKeys, place: &BlobPlace, sealed: Vec<u8>) -> Result<Vec<u8>> {
    let corrupt = |reason| Error::CorruptChunk {
        chunk: place.chunk,
        reason,
    };
    if sealed.len() as u64 != place.sealed_len() {
        return Err(corrupt("blob length differs from the catalog"));
    }
    let plain = keys
        .open_blob(&place.chunk.0, BLOB_FORMAT, &sealed)
        .map_err(|_| corrupt("authentication failed"))?;
    if !keys.verify_chunk_id(&plain, &place.chunk.0) {
        return Err(corrupt("content does not match the chunk id"));
    }
    Ok(plain)
}

/// The blob `chunk` names, out of its pack decoded whole from `shares` (each checked against
/// the id the pack's record lists): the way to a blob when ranged reads fail.
pub fn blob_from_shares(
    keys: &VaultKeys,
    chunk: &shard_proto::ChunkRef,
    shares: &[Share],
) -> Result<Vec<u8>> {
    let (Some(pack), Some(place)) = (chunk.pack_ref(), BlobPlace::of(chunk)) else {
        return Err(Error::InvalidParameters(
            "the chunk is not a blob in a pack",
        ));
    };
    let bytes = PackCoder::new().decode(&pack, shares)?;
    blob_in_pack(keys, &PackShape::of(&pack)?, &place, &bytes)
}

/// The blob at `place` out of a whole pack of `shape` (its bytes decoded from shares checked
/// against their ids), opened.
pub fn blob_in_pack(
    keys: &VaultKeys,
    shape: &PackShape,
    place: &BlobPlace,
    pack: &[u8],
) -> Result<Vec<u8>> {
    let mut sealed = Vec::with_capacity(usize::try_from(place.sealed_len()).unwrap_or(0));
    for piece in shape.pieces(u64::from(place.offset), place.sealed_len())? {
        let start = usize::from(piece.index) * shape.share_len as usize;
        let bytes = pack
            .get(start + piece.start as usize..start + piece.end as usize)
            .ok_or(Error::OutsidePack {
                offset: u64::from(place.offset),
                len: place.sealed_len(),
                pack_len: pack.len() as u64,
            })?;
        sealed.extend_from_slice(bytes);
    }
    open_blob(keys, place, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(k: u8, n: u8) -> Redundancy {
        Redundancy::new(k, n).unwrap()
    }

    #[test]
    fn packing_closed_early_goes_on_and_every_blob_comes_back_from_its_pack() {
        use shard_crypto::VaultKey;
        let keys = VaultKeys::derive(&VaultKey::from_bytes([5; 32]));
        let packing = Packing::new(r(2, 3)).unwrap();
        let plain = |i: u8| vec![i; 50_000 + usize::from(i) * 1_000];
        let mut coded = Vec::new();
        let add = |i: u8, coded: &mut Vec<EncodedPack>| {
            let blob = Blob::seal(&keys, &plain(i)).unwrap();
            if let Some(pack) = packing.add(blob).unwrap() {
                coded.push(packing.code(pack).unwrap());
            }
        };
        for i in 0..3 {
            add(i, &mut coded);
        }
        let early = packing.close_open().unwrap();
        assert!(!early.is_empty() && early.len() <= 2);
        for pack in early {
            coded.push(packing.code(pack).unwrap());
        }
        for i in 3..5 {
            add(i, &mut coded);
        }
        for pack in packing.close_open().unwrap() {
            coded.push(packing.code(pack).unwrap());
        }
        // Nothing is left open, and every blob is in exactly one pack.
        assert!(packing.close_open().unwrap().is_empty());
        let mut found = Vec::new();
        for encoded in &coded {
            assert_eq!(encoded.shares.len(), 3);
            // Any two shares decode it: here the second data share and the recovery share.
            let shares = [encoded.shares[1].clone(), encoded.shares[2].clone()];
            let bytes = PackCoder::new().decode(&encoded.pack, &shares).unwrap();
            let shape = PackShape::of(&encoded.pack).unwrap();
            for place in &encoded.blobs {
                found.push(blob_in_pack(&keys, &shape, place, &bytes).unwrap());
            }
        }
        found.sort_by_key(Vec::len);
        assert_eq!(found, (0..5).map(plain).collect::<Vec<_>>());
    }

    #[test]
    fn full_packs_hold_the_largest_chunk_for_every_k_and_stay_bounded() {
        let largest = crate::ChunkSizes::DEFAULT.max as u64 + BLOB_OVERHEAD;
        for k in 1..=32 {
            let shape = PackShape::full(r(k, 32));
            assert!(SHARE_CLASSES.contains(&shape.share_len));
            assert!(shape.capacity() >= largest, "k {k}");
            assert!(shape.capacity() <= FULL_PACK_MAX, "k {k}");
        }
        assert_eq!(PackShape::full(r(1, 1)).share_len, 8 << 20);
        assert_eq!(PackShape::full(r(3, 5)).share_len, 4 << 20);
        assert_eq!(PackShape::full(r(5, 8)).share_len, 1 << 20);
        assert_eq!(PackShape::full(r(9, 16)).share_len, 1 << 20);
    }

    /// The rest of a put goes into the packs that cost least: a few hundred KiB of small
    /// files into a few of the smallest packs, not two half-empty larger ones; megabytes into
    /// one large pack, not dozens of small ones. Every blob is laid out once.
    #[test]
    fn the_rest_of_a_put_takes_the_packs_that_cost_least() {
        use shard_crypto::VaultKey;
        let keys = VaultKeys::derive(&VaultKey::from_bytes([6; 32]));
        let laid_out = |count: u32, len: usize| {
            let mut builder = PackBuilder::seeded(r(3, 5), [9; 32]);
            for i in 0..count {
                let mut plain = vec![0u8; len];
                plain[..4].copy_from_slice(&i.to_le_bytes());
                assert!(
                    builder
                        .add(Blob::seal(&keys, &plain).unwrap())
                        .unwrap()
                        .is_none()
                );
            }
            let packs = builder.finish().unwrap();
            let blobs: usize = packs.iter().map(|p| p.blobs.len()).sum();
            assert_eq!(blobs, count as usize);
            let mut shares: Vec<u32> = packs.iter().map(|p| p.shape.share_len).collect();
            shares.sort_unstable();
            shares
        };
        // 200 files of 4 KiB (1% of a tree of 20 000): 3 packs of 5 × 128 KiB (1.9 MiB
        // of shares), where two open packs of the 256 KiB class sent 2.5 MiB.
        assert_eq!(laid_out(200, 4_160), [128 << 10; 3]);
        // 10 MiB: one pack of the 4 MiB class.
        assert_eq!(laid_out(10, 1 << 20), [4 << 20]);
        // One small file: one pack of the smallest class.
        assert_eq!(laid_out(1, 100), [128 << 10]);
    }

    #[test]
    fn a_small_last_pack_takes_the_smallest_class_it_fits() {
        // Each data share holds its length less the salt.
        let room = |class: u64| class - u64::from(SHARE_SALT);
        assert_eq!(PackShape::fitting(r(3, 5), 1).unwrap().share_len, 128 << 10);
        assert_eq!(
            PackShape::fitting(r(3, 5), 3 * room(128 << 10) + 1)
                .unwrap()
                .share_len,
            256 << 10
        );
        assert_eq!(
            PackShape::fitting(r(3, 5), 3 * room(256 << 10))
                .unwrap()
                .share_len,
            256 << 10
        );
        assert_eq!(
            PackShape::fitting(r(3, 5), 3 * room(256 << 10) + 1)
                .unwrap()
                .share_len,
            1 << 20
        );
        assert_eq!(
            PackShape::fitting(r(3, 5), 3 * room(4 << 20))
                .unwrap()
                .share_len,
            4 << 20
        );
        assert_eq!(PackShape::fitting(r(3, 5), 3 * room(4 << 20) + 1), None);
        // k = 9: the full pack is 1 MiB shares; no larger class is ever used.
        assert_eq!(
            PackShape::fitting(r(9, 16), 9 * room(1 << 20))
                .unwrap()
                .share_len,
            1 << 20
        );
        assert_eq!(PackShape::fitting(r(9, 16), 9 * room(1 << 20) + 1), None);
    }

    #[test]
    fn pieces_cover_a_range_across_share_boundaries_past_each_salt_and_refuse_the_pack_end() {
        let shape = PackShape {
            k: 3,
            n: 5,
            share_len: 1024,
        };
        // 1008 bytes of blobs per share, after 16 of salt.
        assert_eq!(
            shape.pieces(1000, 100).unwrap(),
            vec![
                Piece {
                    index: 0,
                    start: 1016,
                    end: 1024
                },
                Piece {
                    index: 1,
                    start: 16,
                    end: 108
                }
            ]
        );
        assert_eq!(shape.capacity(), 3 * 1008);
        assert!(shape.pieces(0, 3 * 1008 + 1).is_err());
        assert_eq!(
            shape.window(&Piece {
                index: 1,
                start: 70,
                end: 130
            }),
            64..192
        );
        assert_eq!(
            shape.window(&Piece {
                index: 1,
                start: 1000,
                end: 1024
            }),
            960..1024
        );
        assert_eq!(shape.pieces(0, 3 * 1008).unwrap().len(), 3);
        for (offset, len) in [(3000, 25), (0, 0), (3024, 1), (u64::MAX, 2)] {
            assert!(
                matches!(shape.pieces(offset, len), Err(Error::OutsidePack { .. })),
                "{offset}+{len}"
            );
        }
    }
}
