//! Whole files through the data path, streaming: a reader in, chunks of shares out; any `k`
//! shares per chunk in, the file out. Memory stays at a few chunks whatever the file size.

use std::borrow::Borrow;
use std::io::{Read, Write};

use shard_proto::{ChunkRef, Manifest, Share, ShareId};

use crate::chunker::{ChunkReader, Chunker};
use crate::pipeline::{ChunkDecoder, ChunkEncoder, EncodedChunk, check_share};
use crate::{Error, Result};

/// Splits a reader into encoded chunks, one at a time (an iterator of `Result<EncodedChunk>`).
pub struct Splitter<R, C> {
    chunks: ChunkReader<R, C>,
    encoder: ChunkEncoder,
    size: u64,
}

impl<R: Read, C: Chunker> Splitter<R, C> {
    /// Splits `reader` with `chunker`, encoding with `encoder`.
    pub fn new(reader: R, chunker: C, encoder: ChunkEncoder) -> Self {
        Self {
            chunks: ChunkReader::new(reader, chunker),
            encoder,
            size: 0,
        }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Splits everything, handing each chunk to `sink`, and returns the file's manifest.
    pub fn run(mut self, mut sink: impl FnMut(EncodedChunk) -> Result<()>) -> Result<Manifest> {
        let mut chunks = Vec::new();
        for encoded in &mut self {
            let encoded = encoded?;
            chunks.push(encoded.chunk.clone());
            sink(encoded)?;
        }
        Ok(Manifest {
            size: self.size,
            chunks,
        })
    }
}

impl<R: Read, C: Chunker> Iterator for Splitter<R, C> {
    type Item = Result<EncodedChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.chunks.next_chunk() {
            Ok(Some(chunk)) => {
                self.size += chunk.len() as u64;
                Some(self.encoder.encode(chunk))
            }
            Ok(None) => None,
            Err(e) => Some(Err(Error::Io(e))),
        }
    }
}

/// Where restore gets shares from: a folder, a peer, a test double.
pub trait ShareSource {
    /// The encoded share with this id, or `None` if this source does not have it.
    fn fetch(&mut self, id: &ShareId) -> Result<Option<Vec<u8>>>;
}

/// What a restore found on its way: shares that were missing or bad.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Bytes written.
    pub bytes: u64,
    /// Shares the source did not have.
    pub missing: Vec<ShareId>,
    /// Shares the source had but that failed verification (should be repaired).
    pub bad: Vec<ShareId>,
}

/// Restores a file: for each chunk, fetches shares (data shares first, so no decoding is
/// needed when they are all there) until `k` verify, rebuilds the chunk, checks it, writes it.
pub fn restore<I, S, W>(
    decoder: &mut ChunkDecoder,
    chunks: I,
    source: &mut S,
    mut out: W,
) -> Result<RestoreReport>
where
    I: IntoIterator,
    I::Item: Borrow<ChunkRef>,
    S: ShareSource + ?Sized,
    W: Write,
{
    let mut report = RestoreReport::default();
    for chunk in chunks {
        let chunk = chunk.borrow();
        chunk.validate()?;
        let mut good: Vec<Share> = Vec::with_capacity(usize::from(chunk.k));
        for id in &chunk.shares {
            if good.len() == usize::from(chunk.k) {
                break;
            }
            let Some(bytes) = source.fetch(id)? else {
                report.missing.push(*id);
                continue;
            };
            match Share::decode(bytes.into()) {
                Ok(share) if share.id() == *id && check_share(chunk, &share).is_ok() => {
                    good.push(share);
                }
                _ => report.bad.push(*id),
            }
        }
        let plain = decoder.decode(chunk, &good)?;
        out.write_all(&plain)?;
        report.bytes += plain.len() as u64;
    }
    out.flush()?;
    Ok(report)
}
