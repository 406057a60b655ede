//! The data path on several cores, as `put` and `get` run it.
//!
//! Storing: the calling thread reads and cuts (content-defined chunking is sequential), and
//! worker threads id, seal and erasure-code the chunks ([`split_parallel`]). Restoring: worker
//! threads fetch and decode chunks while the calling thread writes them in order
//! ([`restore_parallel`]). Both keep a bounded number of chunks in flight, so memory does not
//! grow with the file, and both are what the node runs: the benchmarks of this module measure
//! the product's path.

use std::collections::BTreeMap;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use shard_crypto::VaultKeys;
use shard_proto::{ChunkId, ChunkRef, Share};

use crate::chunker::{ChunkReader, Chunker};
use crate::pack::{Blob, blob_from_shares};
use crate::pipeline::{ChunkDecoder, ChunkEncoder, EncodedChunk, Redundancy};
use crate::{Error, Result};

/// One chunk the workers encoded: which file it is from, its position in that file, and the
/// chunk or why encoding failed. Chunks arrive in any order.
#[derive(Debug)]
pub struct SplitChunk {
    /// The number the feeder gave the file.
    pub file: usize,
    /// The chunk's position in the file, from 0.
    pub seq: usize,
    /// The encoded chunk.
    pub result: Result<EncodedChunk>,
}

/// Runs `work` on a worker thread, a panic turned into [`Error::WorkerPanicked`]: a worker that
/// unwinds would leave its caller waiting for a chunk that never comes (or unwind through the
/// caller's cleanup of a half-written file).
fn guarded<T, E: From<Error>>(
    work: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| Err(Error::WorkerPanicked.into()))
}

/// Chunks' plaintexts on their way to a worker, taken together: (file, seq, bytes) each.
type Work = Vec<(usize, usize, Vec<u8>)>;

/// Chunks handed to a worker at once, at most: a tree of small files is one chunk per file,
/// and waking a worker for each cost more than sealing it (a context switch per file).
const BATCH_CHUNKS: usize = 64;
/// Bytes after which a batch goes at once: a batch holds less than this plus one chunk. With
/// the chunker's sizes (minimum 256 KiB) only a file's last chunk can be shorter, so every
/// other chunk goes at once, with at most the short tails of files before it.
const BATCH_BYTES: usize = 128 * 1024;

/// Hands files to [`split_parallel`]'s workers, on the calling thread.
pub struct Feeder<'a, C> {
    chunker: &'a C,
    work: mpsc::SyncSender<Work>,
    /// Chunks cut and not yet handed over, with their bytes.
    batch: Work,
    batch_bytes: usize,
}

impl<C: Chunker> Feeder<'_, C> {
    /// Cuts `reader` into chunks and hands them to the workers as file number `file`; blocks
    /// while they are busy. Returns the file's chunk count and size. [`Error::Stopped`] when
    /// the workers stopped (the consumer of the chunks went away).
    ///
    /// Small chunks are handed over a batch at a time (of any files): the last chunks of a
    /// file may still be waiting here when this returns, and go with the next file's, or
    /// when the feeding ends.
    pub fn file(&mut self, file: usize, reader: impl Read) -> Result<(usize, u64)> {
        let mut chunks = ChunkReader::new(reader, self.chunker);
        let (mut seq, mut size) = (0usize, 0u64);
        while let Some(chunk) = chunks.next_chunk()? {
            size += chunk.len() as u64;
            self.batch_bytes += chunk.len();
            self.batch.push((file, seq, chunk.to_vec()));
            if self.batch.len() >= BATCH_CHUNKS || self.batch_bytes >= BATCH_BYTES {
                self.hand_over()?;
            }
            seq += 1;
        }
        Ok((seq, size))
    }

    /// Hands the chunks waiting to the workers.
    fn hand_over(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_CHUNKS));
        self.work.send(batch).map_err(|_| Error::Stopped)
    }
}

/// Splits files into encoded chunks on `workers` threads (at least one) while `feed` reads
/// and cuts them on the calling thread; returns what `feed` returns.
///
/// Each chunk is encoded with the redundancy `choose` picks once its id is known (a chunk
/// stored before keeps the encoding it has), starting from `redundancy`. Every encoded chunk
/// goes to `emit`, on a worker thread; `emit` returning `false` stops the workers (the
/// chunks they hold are dropped), and the feeder fails with [`Error::Stopped`] the next time
/// it hands chunks over — which may be in a later file: a caller whose `emit` stops must treat
/// the whole split as failed, not only the file being fed. At most `workers` batches of chunks
/// (each at most 64 chunks, or under 128 KiB and one more chunk) wait between the feeder and
/// the workers.
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use shard_crypto::{Label, VaultKey, VaultKeys};
/// use shard_store::{ChunkSizes, KeyedFastCdc, Redundancy, split_parallel};
/// # let keys = Arc::new(VaultKeys::derive(&VaultKey::generate()?));
/// let chunker = KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), ChunkSizes::DEFAULT)?;
/// let r = Redundancy::new(2, 3)?;
/// let shares = Mutex::new(0);
/// let (chunks, size) = split_parallel(&keys, r, &chunker, 2, &|_| Ok(r), &|c| {
///     *shares.lock().unwrap() += c.result.map_or(0, |c| c.shares.len());
///     true
/// }, |feed| feed.file(0, &[7u8; 100_000][..]))??;
/// assert_eq!(size, 100_000);
/// assert_eq!(*shares.lock().unwrap(), 3 * chunks);
/// # Ok::<(), shard_store::Error>(())
/// ```
pub fn split_parallel<C, T>(
    keys: &Arc<VaultKeys>,
    redundancy: Redundancy,
    chunker: &C,
    workers: usize,
    choose: &(dyn Fn(&ChunkId) -> Result<Redundancy> + Sync),
    emit: &(dyn Fn(SplitChunk) -> bool + Sync),
    feed: impl FnOnce(&mut Feeder<'_, C>) -> T,
) -> Result<T>
where
    C: Chunker,
{
    on_workers(
        chunker,
        workers,
        || ChunkEncoder::new(keys.clone(), redundancy),
        |encoder, plain| encoder.encode_choosing(&plain, choose),
        |file, seq, result| emit(SplitChunk { file, seq, result }),
        feed,
    )
}

/// A chunk as [`seal_parallel`]'s workers left it: stored already (the reference to its
/// copy), or sealed as a blob for a pack.
pub enum Sealed {
    /// The chunk is stored already; the reference says where.
    Known(ChunkRef),
    /// The chunk sealed, to be packed.
    Blob(Blob),
}

/// One chunk [`seal_parallel`]'s workers handled: which file it is from, its position in that
/// file, and what became of it.
pub struct SealedChunk {
    /// The number the feeder gave the file.
    pub file: usize,
    /// The chunk's position in the file, from 0.
    pub seq: usize,
    /// The chunk stored already or sealed, or why that failed.
    pub result: Result<Sealed>,
}

/// Cuts files into chunks on the calling thread while `workers` threads (at least one) id
/// each chunk and either find it stored already (`known` returns its reference) or seal it
/// as a blob; returns what `feed` returns. Everything goes to `emit` on a worker thread, as in
/// [`split_parallel`]; chunks arrive in any order.
pub fn seal_parallel<C, T>(
    keys: &Arc<VaultKeys>,
    chunker: &C,
    workers: usize,
    known: &(dyn Fn(&ChunkId, u32) -> Result<Option<ChunkRef>> + Sync),
    emit: &(dyn Fn(SealedChunk) -> bool + Sync),
    feed: impl FnOnce(&mut Feeder<'_, C>) -> T,
) -> Result<T>
where
    C: Chunker,
{
    on_workers(
        chunker,
        workers,
        || Ok(()),
        |(), plain| {
            let id = ChunkId(keys.chunk_id(&plain));
            let len = u32::try_from(plain.len())
                .map_err(|_| Error::InvalidParameters("chunk larger than 4 GiB"))?;
            match known(&id, len)? {
                Some(found) => Ok(Sealed::Known(found)),
                None => Ok(Sealed::Blob(Blob::seal_as(keys, id, plain)?)),
            }
        },
        |file, seq, result| emit(SealedChunk { file, seq, result }),
        feed,
    )
}

/// The threads of [`split_parallel`] and [`seal_parallel`]: `workers` threads each with its
/// own state (from `make`) run `work` on each chunk the feeder cuts and hand the result to
/// `emit`; `emit` returning `false` stops them.
fn on_workers<C, T, W, O>(
    chunker: &C,
    workers: usize,
    make: impl Fn() -> Result<W> + Sync,
    work: impl Fn(&mut W, Vec<u8>) -> Result<O> + Sync,
    emit: impl Fn(usize, usize, Result<O>) -> bool + Sync,
    feed: impl FnOnce(&mut Feeder<'_, C>) -> T,
) -> Result<T>
where
    C: Chunker,
    W: Send,
{
    let workers = workers.max(1);
    let states = (0..workers).map(|_| make()).collect::<Result<Vec<_>>>()?;
    let (work_tx, work_rx) = mpsc::sync_channel::<Work>(workers);
    // Only the workers hold the receiving end: when they all stop, the feeder's blocked send
    // fails instead of waiting for ever.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (make, work, emit) = (&make, &work, &emit);
    Ok(std::thread::scope(|scope| {
        for mut state in states {
            let work_rx = work_rx.clone();
            scope.spawn(move || {
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = job else {
                        return;
                    };
                    for (file, seq, plain) in batch {
                        let result = guarded(|| work(&mut state, plain));
                        if matches!(result, Err(Error::WorkerPanicked)) {
                            // Its buffers may be half-changed: a fresh state for what follows.
                            match make() {
                                Ok(fresh) => state = fresh,
                                Err(_) => return,
                            }
                        }
                        if !emit(file, seq, result) {
                            // The feeder learns on its next send, once every worker has left.
                            return;
                        }
                    }
                }
            });
        }
        drop(work_rx);
        let mut feeder = Feeder {
            chunker,
            work: work_tx,
            batch: Vec::with_capacity(BATCH_CHUNKS),
            batch_bytes: 0,
        };
        let fed = feed(&mut feeder);
        // The last chunks cut go too (when the workers stopped, nobody waits for them). The
        // feeder (and with it the sending end) is dropped then, so the workers finish what is
        // queued and leave.
        let _ = feeder.hand_over();
        fed
    }))
}

/// Where [`restore_parallel`] gets the shares of a chunk: at least `k` of them that are the
/// chunk's (the decoder skips any that are not), from a folder, the swarm or a test double.
/// Called from several threads at once.
pub trait ChunkSource: Sync {
    /// The caller's error type; the data path's own errors convert into it.
    type Error: From<Error> + Send;
    /// Shares of `chunk`, or why there are not enough.
    fn shares(&self, chunk: &ChunkRef) -> std::result::Result<Vec<Share>, Self::Error>;

    /// The plaintext of `chunk`, a blob in a pack, authenticated. By default the whole pack
    /// is decoded from the shares [`ChunkSource::shares`] gives; a source that can read byte
    /// ranges of shares reads only the blob's (see [`crate::PackCoder::read_blob`]).
    fn blob(
        &self,
        keys: &VaultKeys,
        chunk: &ChunkRef,
    ) -> std::result::Result<Vec<u8>, Self::Error> {
        let shares = self.shares(chunk)?;
        Ok(blob_from_shares(keys, chunk, &shares)?)
    }
}

/// Restores the plaintext of `chunks`, in order, into `write`: `workers` threads fetch (from
/// `source`) and decode chunks while this thread writes, at most `workers` chunks ahead of the
/// one being written. Returns the bytes written. A failure stops the restore: no chunk after
/// it is fetched or written, and the error returned is that of the first failed chunk in file
/// order. A worker that panics fails the restore with [`Error::WorkerPanicked`]. A file of one
/// chunk is restored on this thread alone.
///
/// ```
/// # use std::collections::HashMap;
/// # use std::sync::{Arc, Mutex};
/// # use shard_crypto::{Label, VaultKey, VaultKeys};
/// # use shard_proto::{ChunkRef, Share};
/// use shard_store::{ChunkEncoder, ChunkSizes, ChunkSource, KeyedFastCdc, Redundancy};
/// use shard_store::{Splitter, restore_parallel};
/// # let keys = Arc::new(VaultKeys::derive(&VaultKey::generate()?));
/// # let chunker = KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), ChunkSizes::DEFAULT)?;
/// struct Memory(HashMap<shard_proto::ShareId, Share>);
/// impl ChunkSource for Memory {
///     type Error = shard_store::Error;
///     fn shares(&self, chunk: &ChunkRef) -> shard_store::Result<Vec<Share>> {
///         Ok(chunk.shares.iter().filter_map(|id| self.0.get(id).cloned()).collect())
///     }
/// }
/// let file = vec![9u8; 3 << 20];
/// let mut memory = Memory(HashMap::new());
/// let encoder = ChunkEncoder::new(keys.clone(), Redundancy::new(2, 3)?)?;
/// let manifest = Splitter::new(&file[..], chunker, encoder).run(|c| {
///     memory.0.extend(c.shares.into_iter().map(|s| (s.id(), s)));
///     Ok(())
/// })?;
/// let mut out = Vec::new();
/// restore_parallel(&keys, &manifest.chunks, &memory, 4, |b| Ok(out.extend_from_slice(b)))?;
/// assert_eq!(out, file);
/// # Ok::<(), shard_store::Error>(())
/// ```
pub fn restore_parallel<S>(
    keys: &Arc<VaultKeys>,
    chunks: &[ChunkRef],
    source: &S,
    workers: usize,
    mut write: impl FnMut(&[u8]) -> std::result::Result<(), S::Error>,
) -> std::result::Result<u64, S::Error>
where
    S: ChunkSource + ?Sized,
{
    let fetch = |decoder: &mut ChunkDecoder, chunk: &ChunkRef| {
        if chunk.pack.is_some() {
            return source.blob(keys, chunk);
        }
        let shares = source.shares(chunk)?;
        decoder.decode(chunk, &shares).map_err(S::Error::from)
    };
    let workers = workers.max(1).min(chunks.len());
    if workers <= 1 {
        let mut decoder = ChunkDecoder::new(keys.clone());
        let mut bytes = 0u64;
        for chunk in chunks {
            let plain = guarded(|| fetch(&mut decoder, chunk))?;
            write(&plain)?;
            bytes += plain.len() as u64;
        }
        return Ok(bytes);
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, &ChunkRef)>(workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, std::result::Result<Vec<u8>, S::Error>)>();
    // The first chunk (in file order) known to have failed: chunks after it are not fetched,
    // those before it are, so the error reported is the file's first.
    let failed_at = AtomicUsize::new(usize::MAX);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (work_rx, done_tx, fetch, failed_at) =
                (&work_rx, done_tx.clone(), &fetch, &failed_at);
            scope.spawn(move || {
                let mut decoder = ChunkDecoder::new(keys.clone());
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, chunk)) = job else { return };
                    if index > failed_at.load(Ordering::Relaxed) {
                        continue;
                    }
                    let result = guarded(|| fetch(&mut decoder, chunk));
                    if result.is_err() {
                        // A decoder that panicked may be half-changed.
                        decoder = ChunkDecoder::new(keys.clone());
                    }
                    if done_tx.send((index, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Moved in, so leaving this closure drops the sending end of the work: the workers
        // finish the chunk they hold and leave, and the scope waits for them.
        let work_tx = work_tx;
        let mut queue = chunks.iter().enumerate();
        let (mut issued, mut written, mut bytes) = (0usize, 0usize, 0u64);
        let mut ready = BTreeMap::new();
        while written < chunks.len() {
            while issued < written + workers && failed_at.load(Ordering::Relaxed) == usize::MAX {
                let Some(next) = queue.next() else { break };
                if work_tx.send(next).is_err() {
                    break;
                }
                issued += 1;
            }
            // Workers catch their panics and skip only chunks after a failure, so every chunk
            // up to the first failure is answered; no answer at all is a bug, not a hang.
            let Ok((index, result)) = done_rx.recv() else {
                return Err(Error::WorkerPanicked.into());
            };
            if result.is_err() {
                failed_at.fetch_min(index, Ordering::Relaxed);
            }
            ready.insert(index, result);
            while let Some(result) = ready.remove(&written) {
                let plain = result?;
                write(&plain)?;
                bytes += plain.len() as u64;
                written += 1;
            }
        }
        Ok(bytes)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use shard_crypto::{Label, VaultKey};
    use shard_proto::ShareId;

    use super::*;
    use crate::chunker::{ChunkSizes, KeyedFastCdc};

    fn keys() -> Arc<VaultKeys> {
        Arc::new(VaultKeys::derive(&VaultKey::from_bytes([3; 32])))
    }

    fn chunker(keys: &VaultKeys) -> KeyedFastCdc {
        let sizes = ChunkSizes {
            min: 4 << 10,
            avg: 16 << 10,
            max: 64 << 10,
        };
        KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), sizes).unwrap()
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        use rand_core::{Rng, SeedableRng};
        let mut v = vec![0u8; len];
        rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(seed)).fill_bytes(&mut v);
        v
    }

    /// Everything the workers emitted, by (file, seq).
    type Emitted = Mutex<BTreeMap<(usize, usize), EncodedChunk>>;

    fn split(files: &[Vec<u8>], workers: usize) -> (Vec<(usize, u64)>, Emitted) {
        let keys = keys();
        let r = Redundancy::new(3, 5).unwrap();
        let emitted = Emitted::default();
        let sizes = split_parallel(
            &keys,
            r,
            &chunker(&keys),
            workers,
            &|_| Ok(r),
            &|c| {
                let chunk = c.result.unwrap();
                let before = emitted.lock().unwrap().insert((c.file, c.seq), chunk);
                assert!(
                    before.is_none(),
                    "chunk {} of file {} emitted twice",
                    c.seq,
                    c.file
                );
                true
            },
            |feed| {
                files
                    .iter()
                    .enumerate()
                    .map(|(i, f)| feed.file(i, &f[..]).unwrap())
                    .collect::<Vec<_>>()
            },
        )
        .unwrap();
        (sizes, emitted)
    }

    struct Memory(HashMap<ShareId, Share>, AtomicUsize);

    impl ChunkSource for Memory {
        type Error = Error;
        fn shares(&self, chunk: &ChunkRef) -> Result<Vec<Share>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(chunk
                .shares
                .iter()
                .filter_map(|id| self.0.get(id).cloned())
                .collect())
        }
    }

    #[test]
    fn parallel_split_equals_the_sequential_one_and_restores_in_order() {
        let files = vec![data(300_000, 1), data(10, 2), Vec::new(), data(200_000, 3)];
        let (sizes, emitted) = split(&files, 3);
        let emitted = emitted.into_inner().unwrap();
        let keys = keys();
        let mut memory = Memory(HashMap::new(), AtomicUsize::new(0));
        for (i, file) in files.iter().enumerate() {
            // The same chunks, byte for byte, as the one-thread splitter makes.
            let encoder = ChunkEncoder::new(keys.clone(), Redundancy::new(3, 5).unwrap()).unwrap();
            let manifest = crate::Splitter::new(&file[..], chunker(&keys), encoder)
                .run(|_| Ok(()))
                .unwrap();
            let ours: Vec<ChunkRef> = emitted
                .range((i, 0)..(i + 1, 0))
                .map(|(_, c)| c.chunk.clone())
                .collect();
            assert_eq!(ours, manifest.chunks, "file {i}");
            assert_eq!(sizes[i], (ours.len(), file.len() as u64));
            for c in emitted.range((i, 0)..(i + 1, 0)).map(|(_, c)| c) {
                memory
                    .0
                    .extend(c.shares.iter().map(|s| (s.id(), s.clone())));
            }
            for workers in [1, 4] {
                let mut out = Vec::new();
                let bytes = restore_parallel(&keys, &ours, &memory, workers, |b| {
                    out.extend_from_slice(b);
                    Ok(())
                })
                .unwrap();
                assert_eq!(out, *file, "file {i} with {workers} workers");
                assert_eq!(bytes, file.len() as u64);
            }
        }
    }

    #[test]
    fn many_small_files_each_chunk_emitted_once_whatever_batch_it_went_in() {
        // 500 small files (their chunks travel in batches, a file's last chunk often still
        // waiting when the next file is fed) and a large one among them.
        let mut files: Vec<Vec<u8>> = (0..500usize)
            .map(|i| data(1 + (i * 97) % 9_000, u8::try_from(i % 256).unwrap()))
            .collect();
        files.insert(250, data(700_000, 7));
        // Each chunk at most once: `split` fails on a second; at least once: counted here.
        let (sizes, emitted) = split(&files, 2);
        let emitted = emitted.into_inner().unwrap();
        for (i, file) in files.iter().enumerate() {
            assert_eq!(sizes[i].1, file.len() as u64, "file {i}");
            for seq in 0..sizes[i].0 {
                assert!(emitted.contains_key(&(i, seq)), "file {i} chunk {seq}");
            }
        }
        assert_eq!(emitted.len(), sizes.iter().map(|s| s.0).sum::<usize>());
        assert!(sizes[250].0 > 5, "the large file is several chunks");
    }

    #[test]
    fn a_consumer_that_stops_stops_the_feeder() {
        let keys = keys();
        let r = Redundancy::new(1, 2).unwrap();
        let file = data(2 << 20, 9);
        let seen = AtomicUsize::new(0);
        let fed = split_parallel(
            &keys,
            r,
            &chunker(&keys),
            2,
            &|_| Ok(r),
            &|_| seen.fetch_add(1, Ordering::Relaxed) < 3,
            |feed| feed.file(0, &file[..]),
        )
        .unwrap();
        assert!(matches!(fed, Err(Error::Stopped)), "{fed:?}");
        // The feeder stopped long before the file's ~64 chunks were all encoded.
        assert!(seen.load(Ordering::Relaxed) < 16);
    }

    #[test]
    fn a_missing_chunk_fails_the_restore_and_nothing_after_it_is_written() {
        let file = data(400_000, 5);
        let (_, emitted) = split(std::slice::from_ref(&file), 2);
        let emitted = emitted.into_inner().unwrap();
        let chunks: Vec<ChunkRef> = emitted.values().map(|c| c.chunk.clone()).collect();
        assert!(chunks.len() > 6);
        let mut memory = Memory(HashMap::new(), AtomicUsize::new(0));
        for (n, c) in emitted.values().enumerate() {
            // Chunk 5 keeps only two of its five shares: one fewer than k.
            let keep = if n == 5 { 2 } else { 5 };
            memory
                .0
                .extend(c.shares.iter().take(keep).map(|s| (s.id(), s.clone())));
        }
        let mut out = Vec::new();
        let err = restore_parallel(&keys(), &chunks, &memory, 3, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotEnoughShares {
                    have: 2,
                    need: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        // Whole chunks from the start, never the failed one or any after it (the error may
        // arrive before chunks ahead of it are written).
        let before: usize = chunks.iter().take(5).map(|c| c.len as usize).sum();
        assert!(out.len() <= before, "{} bytes written", out.len());
        assert!(
            out == file[..out.len()],
            "what was written differs from the file"
        );
        assert!(
            (0..=5)
                .any(|n| chunks.iter().take(n).map(|c| c.len as usize).sum::<usize>() == out.len()),
            "{} bytes is not a whole number of chunks",
            out.len()
        );
        // Never more than `workers` chunks ahead of the one being written.
        assert!(memory.1.load(Ordering::Relaxed) <= 5 + 1 + 3);
    }

    /// Shares of the chunks of one file, kept whole except where `keep` says otherwise.
    fn stored(file: &[u8], keep: impl Fn(usize) -> usize) -> (Vec<ChunkRef>, Memory) {
        let (_, emitted) = split(&[file.to_vec()], 2);
        let emitted = emitted.into_inner().unwrap();
        let mut memory = Memory(HashMap::new(), AtomicUsize::new(0));
        for (n, c) in emitted.values().enumerate() {
            memory
                .0
                .extend(c.shares.iter().take(keep(n)).map(|s| (s.id(), s.clone())));
        }
        (emitted.values().map(|c| c.chunk.clone()).collect(), memory)
    }

    #[test]
    fn the_error_is_the_first_failed_chunk_in_file_order() {
        let file = data(600_000, 6);
        // Chunks 2 and 7 are lost; 7's error usually arrives first.
        let (chunks, memory) = stored(&file, |n| if n == 2 || n == 7 { 1 } else { 5 });
        assert!(chunks.len() > 8);
        for _ in 0..20 {
            let err = restore_parallel(&keys(), &chunks, &memory, 8, |_| Ok(())).unwrap_err();
            match err {
                Error::NotEnoughShares { chunk, .. } => assert_eq!(chunk, chunks[2].id),
                other => panic!("{other:?}"),
            }
        }
    }

    /// A source that panics on one chunk.
    struct Panicky<'a>(&'a Memory, ChunkId);

    impl ChunkSource for Panicky<'_> {
        type Error = Error;
        fn shares(&self, chunk: &ChunkRef) -> Result<Vec<Share>> {
            assert!(chunk.id != self.1, "a bug in the source");
            self.0.shares(chunk)
        }
    }

    #[test]
    fn a_worker_that_panics_fails_the_restore_instead_of_hanging_it() {
        let file = data(600_000, 8);
        let (chunks, memory) = stored(&file, |_| 5);
        for (workers, victim) in [(8, 3), (1, 0), (2, chunks.len() - 1)] {
            let source = Panicky(&memory, chunks[victim].id);
            let mut out = Vec::new();
            let err = restore_parallel(&keys(), &chunks, &source, workers, |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap_err();
            assert!(matches!(err, Error::WorkerPanicked), "{err:?}");
            let before: usize = chunks.iter().take(victim).map(|c| c.len as usize).sum();
            assert!(out.len() <= before && out == file[..out.len()]);
        }
        // One chunk: restored on the calling thread, guarded the same way.
        let one = &chunks[..1];
        let err = restore_parallel(&keys(), one, &Panicky(&memory, one[0].id), 8, |_| Ok(()));
        assert!(matches!(err, Err(Error::WorkerPanicked)), "{err:?}");
    }
}
