//! Packs as the owner uses them: files cut into chunks, sealed as blobs, gathered into packs of
//! a few fixed share sizes, coded, shares lost, and any file read back by byte ranges.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use shard_crypto::{Label, VaultKey, VaultKeys};
use shard_proto::{ChunkId, Share};
use shard_store::{
    Blob, BlobPlace, ChunkSizes, Chunker, EncodedPack, Error, KeyedFastCdc, PackBuilder, PackCoder,
    Redundancy, SHARE_CLASSES, blob_in_pack,
};

/// Small chunks, so that a few hundred KiB make many.
const SIZES: ChunkSizes = ChunkSizes {
    min: 1024,
    avg: 4096,
    max: 16 * 1024,
};

fn keys(seed: u8) -> Arc<VaultKeys> {
    Arc::new(VaultKeys::derive(&VaultKey::from_bytes([seed; 32])))
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// What a put of `files` leaves: each file's chunk ids in order, each chunk's pack and place,
/// and the packs coded.
struct Stored {
    files: Vec<Vec<ChunkId>>,
    places: HashMap<ChunkId, (usize, BlobPlace)>,
    packs: Vec<EncodedPack>,
}

fn store(keys: &VaultKeys, files: &[Vec<u8>], redundancy: Redundancy, seed: [u8; 32]) -> Stored {
    let chunker = KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), SIZES).unwrap();
    let mut builder = PackBuilder::seeded(redundancy, seed);
    let mut coder = PackCoder::new();
    let mut packs = Vec::new();
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for file in files {
        let mut rest = &file[..];
        let mut chunks = Vec::new();
        while !rest.is_empty() {
            let cut = chunker.cut(rest);
            let (chunk, tail) = rest.split_at(cut);
            rest = tail;
            let blob = Blob::seal(keys, chunk).unwrap();
            chunks.push(blob.id());
            // A chunk seen before is not packed again (the catalog's dedup).
            if seen.insert(blob.id())
                && let Some(pack) = builder.add(blob).unwrap()
            {
                packs.push(coder.encode(pack).unwrap());
            }
        }
        ids.push(chunks);
    }
    for pack in builder.finish().unwrap() {
        packs.push(coder.encode(pack).unwrap());
    }
    let mut places = HashMap::new();
    for (i, p) in packs.iter().enumerate() {
        for place in &p.blobs {
            assert!(places.insert(place.chunk, (i, *place)).is_none());
        }
    }
    Stored {
        files: ids,
        places,
        packs,
    }
}

/// A share's bytes in `range`, unless the share is lost.
fn ranged(
    shares: &[Share],
    lost: &[bool],
    index: u8,
    range: std::ops::Range<u32>,
) -> Option<Bytes> {
    let i = usize::from(index);
    if lost[i] {
        return None;
    }
    Some(
        shares[i]
            .payload()
            .slice(range.start as usize..range.end as usize),
    )
}

fn file_strategy() -> impl Strategy<Value = Vec<(usize, u64)>> {
    // (length, content seed); some files repeat content (seed collisions on purpose).
    proptest::collection::vec(
        (
            prop_oneof![Just(0usize), 1usize..600, 600usize..70_000],
            0u64..6,
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any files packed with any k-of-n, up to n − k shares of every pack lost, any subset of
    /// the files read back by ranges: identical bytes.
    #[test]
    fn any_files_any_losses_read_back_by_range(
        specs in file_strategy(),
        n in 1u8..=7,
        k_pick in 0u8..7,
        seed in any::<[u8; 32]>(),
        loss_seed in any::<u64>(),
        wanted in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let k = 1 + k_pick % n;
        let keys = keys(3);
        let files: Vec<Vec<u8>> = specs
            .iter()
            .map(|(len, s)| random_bytes(&mut ChaCha20Rng::seed_from_u64(*s), *len))
            .collect();
        let stored = store(&keys, &files, Redundancy::new(k, n).unwrap(), seed);
        let mut rng = ChaCha20Rng::seed_from_u64(loss_seed);
        let lost: Vec<Vec<bool>> = stored
            .packs
            .iter()
            .map(|_| {
                let mut lost = vec![false; usize::from(n)];
                for _ in 0..(rng.next_u64() % u64::from(n - k + 1)) {
                    lost[(rng.next_u64() % u64::from(n)) as usize] = true;
                }
                lost
            })
            .collect();
        let mut coder = PackCoder::new();
        for (f, chunks) in stored.files.iter().enumerate() {
            if !wanted[f] {
                continue;
            }
            let mut back = Vec::new();
            for id in chunks {
                let (p, place) = stored.places[id];
                let pack = &stored.packs[p];
                let bytes = coder
                    .read_blob(&keys, &pack.pack, &place, |i, r| ranged(&pack.shares, &lost[p], i, r))
                    .unwrap();
                back.extend_from_slice(&bytes);
            }
            prop_assert_eq!(&back, &files[f], "file {}", f);
        }
    }

    /// Whole packs decode from any k of their shares, and every blob comes out of the bytes.
    #[test]
    fn whole_packs_decode_from_any_k_shares(
        specs in file_strategy(),
        n in 1u8..=6,
        k_pick in 0u8..6,
        seed in any::<[u8; 32]>(),
        keep_seed in any::<u64>(),
    ) {
        let k = 1 + k_pick % n;
        let keys = keys(4);
        let files: Vec<Vec<u8>> = specs
            .iter()
            .map(|(len, s)| random_bytes(&mut ChaCha20Rng::seed_from_u64(*s), *len))
            .collect();
        let stored = store(&keys, &files, Redundancy::new(k, n).unwrap(), seed);
        let mut coder = PackCoder::new();
        let mut rng = ChaCha20Rng::seed_from_u64(keep_seed);
        let mut blobs: HashMap<ChunkId, Vec<u8>> = HashMap::new();
        for pack in &stored.packs {
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            let some: Vec<Share> = order[..usize::from(k)].iter().map(|i| pack.shares[*i].clone()).collect();
            let bytes = coder.decode(&pack.pack, &some).unwrap();
            for place in &pack.blobs {
                let shape = shard_store::PackShape::of(&pack.pack).unwrap();
                blobs.insert(place.chunk, blob_in_pack(&keys, &shape, place, &bytes).unwrap());
            }
        }
        for (f, chunks) in stored.files.iter().enumerate() {
            let back: Vec<u8> = chunks.iter().flat_map(|id| blobs[id].clone()).collect();
            prop_assert_eq!(&back, &files[f]);
        }
    }
}

#[test]
fn a_peer_sees_only_the_share_classes_whatever_the_files_and_k() {
    // 10 000 files of 0.5–64 KiB, stored in ten puts with different redundancies: every share
    // any peer holds has one of the four class sizes.
    let keys = keys(5);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut sizes = BTreeSet::new();
    let mut shares = 0;
    for put in 0..10u8 {
        let n = 2 + put % 6;
        let k = 1 + put % n;
        let files: Vec<Vec<u8>> = (0..1000)
            .map(|_| {
                let len = 512 + (rng.next_u64() % (64 * 1024 - 512)) as usize;
                random_bytes(&mut rng, len)
            })
            .collect();
        let stored = store(&keys, &files, Redundancy::new(k, n).unwrap(), [put; 32]);
        for pack in &stored.packs {
            for share in &pack.shares {
                sizes.insert(share.payload().len() as u32);
                shares += 1;
            }
        }
    }
    assert!(shares > 50, "{shares} shares");
    assert!(sizes.iter().all(|s| SHARE_CLASSES.contains(s)), "{sizes:?}");
    assert!(sizes.len() <= SHARE_CLASSES.len());
}

#[test]
fn blobs_of_one_file_are_not_laid_out_in_file_order() {
    // One file of many chunks, one pack: the blobs' order in the pack is shuffled.
    let keys = keys(6);
    let file = random_bytes(&mut ChaCha20Rng::seed_from_u64(1), 200_000);
    let stored = store(&keys, &[file], Redundancy::new(2, 3).unwrap(), [9; 32]);
    let chunks = &stored.files[0];
    assert!(chunks.len() > 20);
    let mut by_offset: Vec<(usize, u32, u32)> = chunks
        .iter()
        .map(|id| {
            let (p, place) = stored.places[id];
            (p, place.offset, 0)
        })
        .collect();
    let in_file_order = by_offset.windows(2).all(|w| w[0] < w[1]);
    assert!(!in_file_order, "blobs lie in file order");
    by_offset.sort_unstable();
    by_offset.dedup();
    assert_eq!(by_offset.len(), chunks.len());
}

#[test]
fn a_small_file_is_read_with_a_small_range_even_with_a_data_share_lost() {
    // One 4 KiB file among 16 MiB of others: restoring it moves a few KiB, not the pack.
    let keys = keys(7);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // The small file first: its pack fills up and is closed full (12 MiB at 3-of-5).
    let mut files = vec![random_bytes(&mut rng, 4096)];
    files.extend((0..100).map(|_| random_bytes(&mut rng, 400_000)));
    let stored = store(&keys, &files, Redundancy::new(3, 5).unwrap(), [1; 32]);
    let small = &stored.files[0];
    assert_eq!(small.len(), 1);
    let (p, place) = stored.places[&small[0]];
    let pack = &stored.packs[p];
    assert!(pack.pack.len() >= 12 << 20, "the file sits in a large pack");
    let mut coder = PackCoder::new();
    for lose_data in [false, true] {
        let moved = Cell::new(0usize);
        let mut lost = vec![false; 5];
        if lose_data {
            // Lose every data share the blob lies in.
            for piece in shard_store::PackShape::of(&pack.pack)
                .unwrap()
                .pieces(u64::from(place.offset), place.sealed_len())
                .unwrap()
            {
                lost[usize::from(piece.index)] = true;
            }
            assert!(lost.iter().filter(|l| **l).count() <= 2);
        }
        let back = coder
            .read_blob(&keys, &pack.pack, &place, |i, r| {
                let got = ranged(&pack.shares, &lost, i, r);
                moved.set(moved.get() + got.as_ref().map_or(0, Bytes::len));
                got
            })
            .unwrap();
        assert_eq!(&back, &files[0]);
        assert!(moved.get() < 64 * 1024, "moved {} bytes", moved.get());
    }
}

#[test]
fn packs_built_in_buffers_used_again_hold_only_their_own_blobs() {
    // A put's packs take the buffers of packs whose shares were sent. A large pack first,
    // then small ones in its buffers: each must read back its own blobs and only those, from
    // its data shares and rebuilt from others.
    let keys = keys(9);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut coder = PackCoder::new();
    let redundancy = Redundancy::new(3, 5).unwrap();
    for (round, (blobs, len)) in [(30, 400_000), (3, 5_000), (1, 100), (20, 300_000), (2, 70)]
        .into_iter()
        .enumerate()
    {
        let idle_before = coder.pool().idle();
        let mut builder = PackBuilder::new(redundancy)
            .unwrap()
            .recycling(coder.pool());
        let plains: Vec<Vec<u8>> = (0..blobs).map(|_| random_bytes(&mut rng, len)).collect();
        let mut packs = Vec::new();
        for plain in &plains {
            if let Some(pack) = builder.add(Blob::seal(&keys, plain).unwrap()).unwrap() {
                packs.push(coder.encode(pack).unwrap());
            }
        }
        for pack in builder.finish().unwrap() {
            packs.push(coder.encode(pack).unwrap());
        }
        if round > 0 {
            assert!(
                idle_before >= 2,
                "round {round}: the last round's buffers came back"
            );
            assert!(
                coder.pool().idle() < idle_before,
                "round {round}: and were taken again"
            );
        }
        let mut found = 0;
        for pack in &packs {
            for place in &pack.blobs {
                for lost in [[false; 5], [true, false, true, false, false]] {
                    let back = coder
                        .read_blob(&keys, &pack.pack, place, |i, r| {
                            ranged(&pack.shares, &lost, i, r)
                        })
                        .unwrap();
                    assert!(plains.contains(&back), "round {round}: a blob not stored");
                }
                found += 1;
            }
        }
        assert_eq!(found, blobs, "round {round}");
        drop(packs);
    }
}

#[test]
fn altered_bytes_too_few_shares_and_bad_places_are_typed_errors() {
    let keys = keys(8);
    let files = vec![random_bytes(&mut ChaCha20Rng::seed_from_u64(3), 50_000)];
    let stored = store(&keys, &files, Redundancy::new(2, 4).unwrap(), [2; 32]);
    let pack = &stored.packs[0];
    let place = stored.places[&stored.files[0][0]].1;
    let mut coder = PackCoder::new();

    // Every peer serves other bytes for its range: the blob does not authenticate.
    let lying = coder.read_blob(&keys, &pack.pack, &place, |i, r| {
        let mut b =
            pack.shares[usize::from(i)].payload()[r.start as usize..r.end as usize].to_vec();
        b.iter_mut().for_each(|x| *x ^= 1);
        Some(Bytes::from(b))
    });
    assert!(matches!(lying, Err(Error::CorruptChunk { chunk, .. }) if chunk == place.chunk));

    // Only the holder of the blob's data share lies: the blob is rebuilt from the others.
    let pieces = shard_store::PackShape::of(&pack.pack)
        .unwrap()
        .pieces(u64::from(place.offset), place.sealed_len())
        .unwrap();
    let liar = pieces[0].index;
    let mut suspects = Vec::new();
    let honest = coder
        .read_blob_noting(
            &keys,
            &pack.pack,
            &place,
            |i, r| {
                let mut b = pack.shares[usize::from(i)].payload()[r.start as usize..r.end as usize]
                    .to_vec();
                if i == liar {
                    b[0] ^= 1;
                }
                Some(Bytes::from(b))
            },
            &mut suspects,
        )
        .unwrap();
    assert_eq!(&honest[..], &files[0][..honest.len()]);
    assert_eq!(suspects, vec![liar], "the liar, and only it, is named");

    // Only one share answers of a 2-of-4 pack, and its data share is not it.
    let lost = [true, true, true, false];
    let few = coder.read_blob(&keys, &pack.pack, &place, |i, r| {
        ranged(&pack.shares, &lost, i, r)
    });
    assert!(
        matches!(
            few,
            Err(Error::NotEnoughShares {
                have: 1,
                need: 2,
                ..
            })
        ),
        "{few:?}"
    );

    // A catalog entry pointing past the pack's end.
    let beyond = BlobPlace {
        offset: u32::try_from(pack.pack.len()).unwrap() - 10,
        ..place
    };
    let outside = coder.read_blob(&keys, &pack.pack, &beyond, |i, r| {
        ranged(&pack.shares, &[false; 4], i, r)
    });
    assert!(
        matches!(outside, Err(Error::OutsidePack { .. })),
        "{outside:?}"
    );

    // Whole-pack decoding skips shares that are not the pack's and counts only good ones.
    let other = store(
        &keys,
        &[random_bytes(&mut ChaCha20Rng::seed_from_u64(4), 9000)],
        Redundancy::new(2, 4).unwrap(),
        [3; 32],
    );
    let mixed = vec![pack.shares[0].clone(), other.packs[0].shares[1].clone()];
    let decoded = coder.decode(&pack.pack, &mixed);
    let want = pack.pack.id;
    assert!(
        matches!(decoded, Err(Error::NotEnoughPackShares { have: 1, need: 2, pack }) if pack == want),
        "{decoded:?}"
    );
}
