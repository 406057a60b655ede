//! Throughput of every stage of the data path on 256 MiB of random data, and in the same run
//! the raw machine limits they are compared against (memcpy, AES-256-GCM, SHA-256). The
//! `packs` group runs what put and get run since format 2 (blobs sealed in parallel, gathered
//! into packs, packs coded; blobs read back by ranges, or packs decoded when shares are lost);
//! the `pipeline` group the per-chunk path that came before, kept for comparison.
//!
//! `cargo bench -p shard-benches --bench pipeline`; `scripts/bench-table` prints the results as
//! the table in BENCHMARKS.md. `SHARD_BENCH_MIB` overrides the data size.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use shard_crypto::{Label, VaultKey, VaultKeys};
use shard_proto::{ChunkRef, ShareId};
use shard_store::{
    CHUNK_FORMAT, ChunkDecoder, ChunkEncoder, ChunkSizes, Chunker, ErasureCoder, KeyedFastCdc,
    Redundancy, ShareSource, Splitter, padded_len, restore,
};
use shard_store::{ChunkSource, restore_parallel, split_parallel};
use shard_store::{
    EncodedPack, Pack, PackCoder, PackShape, Packing, Sealed, SealedChunk, blob_in_pack,
    seal_parallel,
};

const PIECE: usize = 1 << 20;

fn size() -> usize {
    std::env::var("SHARD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
        << 20
}

fn data() -> Vec<u8> {
    let mut v = vec![0u8; size()];
    ChaCha8Rng::seed_from_u64(42).fill_bytes(&mut v);
    v
}

fn keys() -> Arc<VaultKeys> {
    Arc::new(VaultKeys::derive(&VaultKey::from_bytes([7; 32])))
}

fn chunker(keys: &VaultKeys) -> KeyedFastCdc {
    KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )
    .unwrap()
}

/// Encoder threads of a put and chunks a get restores at once: the node's own settings.
const PUT_WORKERS: usize = 2;
const GET_WORKERS: usize = 8;

struct MemSource(HashMap<ShareId, Vec<u8>>);

impl ChunkSource for MemSource {
    type Error = shard_store::Error;
    fn shares(&self, chunk: &ChunkRef) -> shard_store::Result<Vec<shard_proto::Share>> {
        chunk
            .shares
            .iter()
            .filter_map(|id| self.0.get(id))
            .take(usize::from(chunk.k))
            .map(|b| Ok(shard_proto::Share::decode(b.clone().into())?))
            .collect()
    }
}
impl ShareSource for MemSource {
    fn fetch(&mut self, id: &ShareId) -> shard_store::Result<Option<Vec<u8>>> {
        Ok(self.0.get(id).cloned())
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(size() as u64));
    g
}

fn raw(c: &mut Criterion) {
    let data = data();
    let mut g = group(c, "raw");
    let mut dst = vec![0u8; data.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(&data);
            black_box(&dst);
        })
    });
    let cipher = Aes256Gcm::new(&[9u8; 32].into());
    let mut buf = data.clone();
    g.bench_function("aes256gcm_seal", |b| {
        b.iter(|| {
            for piece in buf.chunks_mut(PIECE) {
                let tag = cipher
                    .encrypt_inout_detached((&[0u8; 12]).into(), b"", piece.into())
                    .unwrap();
                black_box(tag);
            }
        })
    });
    g.bench_function("sha256", |b| {
        b.iter(|| {
            for piece in data.chunks(PIECE) {
                black_box(Sha256::digest(piece));
            }
        })
    });
    // What share ids and chunk ids use since format 2.
    g.bench_function("blake3", |b| {
        b.iter(|| {
            for piece in data.chunks(PIECE) {
                black_box(blake3::hash(piece));
            }
        })
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let data = data();
    let keys = keys();
    let mut g = group(c, "stage");

    let cdc = chunker(&keys);
    g.bench_function("chunking", |b| {
        b.iter(|| {
            let mut rest = &data[..];
            let mut count = 0usize;
            while !rest.is_empty() {
                let cut = cdc.cut(rest);
                rest = &rest[cut..];
                count += 1;
            }
            black_box(count)
        })
    });
    g.bench_function("chunk_id", |b| {
        b.iter(|| {
            for piece in data.chunks(PIECE) {
                black_box(keys.chunk_id(piece));
            }
        })
    });
    // Seal re-encrypts the same buffers in place (dropping the tag after each), so no copy is
    // timed. Open needs fresh ciphertext each time: prepared outside the timing.
    let mut plain: Vec<Vec<u8>> = data.chunks(PIECE).map(<[u8]>::to_vec).collect();
    g.bench_function("seal", |b| {
        b.iter(|| {
            for piece in &mut plain {
                keys.seal_chunk(&[1; 32], CHUNK_FORMAT, piece).unwrap();
                piece.truncate(piece.len() - 16);
            }
        })
    });
    let sealed: Vec<Vec<u8>> = plain
        .iter()
        .map(|p| {
            let mut s = p.clone();
            keys.seal_chunk(&[1; 32], CHUNK_FORMAT, &mut s).unwrap();
            s
        })
        .collect();
    g.bench_function("open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |bufs| {
                for buf in bufs.iter_mut() {
                    keys.open_chunk(&[1; 32], CHUNK_FORMAT, buf).unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });

    for (k, n) in [(3usize, 5usize), (10, 16)] {
        let sealed_len = padded_len(PIECE, k) + 16;
        let shard_len = sealed_len / k;
        let pieces: Vec<&[u8]> = data.chunks_exact(sealed_len).collect();
        let mut coder = ErasureCoder::new(k, n).unwrap();
        g.bench_function(format!("rs_encode_{k}of{n}"), |b| {
            b.iter(|| {
                for piece in &pieces {
                    black_box(coder.encode(piece).unwrap());
                }
            })
        });
        // Lose the first n − k data shards: the worst case, all recovery shards needed.
        let coded: Vec<(Vec<u8>, Vec<u8>)> = pieces
            .iter()
            .map(|p| (p.to_vec(), coder.encode(p).unwrap()))
            .collect();
        g.bench_function(format!("rs_decode_{k}of{n}_{}lost", n - k), |b| {
            b.iter(|| {
                for (orig, rec) in &coded {
                    let mut shards: Vec<(usize, &[u8])> = Vec::with_capacity(k);
                    for i in (n - k)..k {
                        shards.push((i, &orig[i * shard_len..(i + 1) * shard_len]));
                    }
                    for j in 0..(n - k) {
                        shards.push((k + j, &rec[j * shard_len..(j + 1) * shard_len]));
                    }
                    black_box(coder.decode(shard_len, &shards).unwrap());
                }
            })
        });
    }
    g.finish();
}

fn pipelines(c: &mut Criterion) {
    let data = data();
    let keys = keys();
    let redundancy = Redundancy::new(3, 5).unwrap();
    let mut g = group(c, "pipeline");
    g.bench_function("store_3of5", |b| {
        b.iter(|| {
            let encoder = ChunkEncoder::new(keys.clone(), redundancy).unwrap();
            Splitter::new(&data[..], chunker(&keys), encoder)
                .run(|chunk| {
                    black_box(chunk);
                    Ok(())
                })
                .unwrap()
        })
    });

    // The path a put runs: one thread cuts, PUT_WORKERS encode.
    g.bench_function("store_3of5_parallel", |b| {
        b.iter(|| {
            split_parallel(
                &keys,
                redundancy,
                &chunker(&keys),
                PUT_WORKERS,
                &|_| Ok(redundancy),
                &|chunk| {
                    black_box(chunk);
                    true
                },
                |feed| feed.file(0, &data[..]).unwrap(),
            )
            .unwrap()
        })
    });

    let mut shares = HashMap::new();
    let encoder = ChunkEncoder::new(keys.clone(), redundancy).unwrap();
    let manifest = Splitter::new(&data[..], chunker(&keys), encoder)
        .run(|chunk| {
            for s in chunk.shares {
                shares.insert(s.id(), s.to_bytes());
            }
            Ok(())
        })
        .unwrap();
    let mut source = MemSource(shares);
    g.bench_function("restore_3of5", |b| {
        b.iter(|| {
            let mut decoder = ChunkDecoder::new(keys.clone());
            restore(&mut decoder, &manifest.chunks, &mut source, std::io::sink()).unwrap()
        })
    });
    // The path a get runs: GET_WORKERS fetch and decode, this thread writes in order.
    g.bench_function("restore_3of5_parallel", |b| {
        b.iter(|| {
            restore_parallel(&keys, &manifest.chunks, &source, GET_WORKERS, |b| {
                black_box(b);
                Ok(())
            })
            .unwrap()
        })
    });
    // Two data shares of every chunk lost: Reed-Solomon decoding on the restore path.
    let lost: Vec<ChunkRef> = manifest.chunks.clone();
    for chunk in &lost {
        source.0.remove(&chunk.shares[0]);
        source.0.remove(&chunk.shares[1]);
    }
    g.bench_function("restore_3of5_2lost", |b| {
        b.iter(|| {
            let mut decoder = ChunkDecoder::new(keys.clone());
            restore(&mut decoder, &lost, &mut source, std::io::sink()).unwrap()
        })
    });
    g.bench_function("restore_3of5_2lost_parallel", |b| {
        b.iter(|| {
            restore_parallel(&keys, &lost, &source, GET_WORKERS, |b| {
                black_box(b);
                Ok(())
            })
            .unwrap()
        })
    });
    g.finish();
}

/// What a put runs since packs: one thread cuts, [`PUT_WORKERS`] id and seal each chunk as a
/// blob (`seal_parallel`), and the blobs go through `Packing` (gathered into packs, each
/// pack closed coded into `n` shares on the thread that closed it): the same two stages, with
/// the same calls, as `shard-node`'s put before it sends the shares.
fn pack_store(keys: &Arc<VaultKeys>, redundancy: Redundancy, data: &[u8]) -> Vec<EncodedPack> {
    let packing = Packing::new(redundancy).unwrap();
    let coded = std::sync::Mutex::new(Vec::new());
    let code = |pack: Pack| {
        let encoded = packing.code(pack).unwrap();
        coded.lock().unwrap().push(encoded);
    };
    let emit = |chunk: SealedChunk| {
        if let Sealed::Blob(blob) = chunk.result.unwrap()
            && let Some(pack) = packing.add(blob).unwrap()
        {
            code(pack);
        }
        true
    };
    seal_parallel(
        keys,
        &chunker(keys),
        PUT_WORKERS,
        &|_, _| Ok(None),
        &emit,
        |feed| feed.file(0, data).unwrap(),
    )
    .unwrap();
    for pack in packing.close_open().unwrap() {
        code(pack);
    }
    coded.into_inner().unwrap()
}

fn packs(c: &mut Criterion) {
    let data = data();
    let keys = keys();
    let redundancy = Redundancy::new(3, 5).unwrap();
    let mut g = group(c, "packs");
    g.bench_function("store_3of5", |b| {
        b.iter(|| black_box(pack_store(&keys, redundancy, &data)))
    });
    let packs = pack_store(&keys, redundancy, &data);
    // What a get runs when every data share answers: each blob read by ranges from the data
    // shares (no decoding), authenticated.
    g.bench_function("restore_3of5", |b| {
        b.iter(|| {
            let mut coder = PackCoder::new();
            for pack in &packs {
                for place in &pack.blobs {
                    let blob = coder
                        .read_blob(&keys, &pack.pack, place, |index, range| {
                            let payload = pack.shares.get(usize::from(index))?.payload();
                            Some(payload.slice(range.start as usize..range.end as usize))
                        })
                        .unwrap();
                    black_box(blob);
                }
            }
        })
    });
    // Two data shares of every pack lost: each pack decoded whole from the other three.
    g.bench_function("restore_3of5_2lost", |b| {
        b.iter(|| {
            let mut coder = PackCoder::new();
            for pack in &packs {
                let bytes = coder.decode(&pack.pack, &pack.shares[2..]).unwrap();
                let shape = PackShape::of(&pack.pack).unwrap();
                for place in &pack.blobs {
                    black_box(blob_in_pack(&keys, &shape, place, &bytes).unwrap());
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, raw, stages, pipelines, packs);
criterion_main!(benches);
