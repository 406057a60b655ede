//! The data path as a user of the library sees it: bytes in, shares out, any k shares back in,
//! the same bytes out — or a typed error, never a panic.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use shard_crypto::{Label, VaultKey, VaultKeys};
use shard_proto::{ChunkRef, Share, ShareId};
use shard_store::{
    ChunkDecoder, ChunkEncoder, ChunkSizes, EncodedChunk, Error, KeyedFastCdc, Redundancy,
    ShareSource, Splitter, restore,
};

const SMALL: ChunkSizes = ChunkSizes {
    min: 64,
    avg: 256,
    max: 1024,
};

fn keys(seed: u8) -> Arc<VaultKeys> {
    Arc::new(VaultKeys::derive(&VaultKey::from_bytes([seed; 32])))
}

fn split(keys: &Arc<VaultKeys>, data: &[u8], k: u8, n: u8, sizes: ChunkSizes) -> Vec<EncodedChunk> {
    let chunker = KeyedFastCdc::new(keys.subkey(Label::ChunkerSeed).expose(), sizes).unwrap();
    let encoder = ChunkEncoder::new(keys.clone(), Redundancy::new(k, n).unwrap()).unwrap();
    let mut out = Vec::new();
    let manifest = Splitter::new(data, chunker, encoder)
        .run(|c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
    assert_eq!(manifest.size, data.len() as u64);
    out
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Indices 0..n in a random order drawn from `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// A folder of shares in memory.
#[derive(Default)]
struct MemSource(HashMap<ShareId, Vec<u8>>);

impl ShareSource for MemSource {
    fn fetch(&mut self, id: &ShareId) -> shard_store::Result<Option<Vec<u8>>> {
        Ok(self.0.get(id).cloned())
    }
}

fn source_of(chunks: &[EncodedChunk]) -> MemSource {
    let mut src = MemSource::default();
    for c in chunks {
        for s in &c.shares {
            src.0.insert(s.id(), s.to_bytes());
        }
    }
    src
}

fn refs(chunks: &[EncodedChunk]) -> Vec<ChunkRef> {
    chunks.iter().map(|c| c.chunk.clone()).collect()
}

/// Sizes around every boundary of the small chunker, plus arbitrary ones.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1usize),
        63usize..=65,
        255usize..=257,
        1023usize..=1025,
        2047usize..=2049,
        0usize..12_000,
    ]
}

fn k_n() -> impl Strategy<Value = (u8, u8)> {
    (1u8..=32).prop_flat_map(|n| (1u8..=n, Just(n)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn any_k_shares_per_chunk_restore_the_bytes(
        len in data_len(), (k, n) in k_n(), seed in any::<u64>(), erase_frac in 0.0f64..=1.0
    ) {
        let keys = keys(1);
        let data = random_bytes(seed, len);
        let mut chunks = split(&keys, &data, k, n, SMALL);
        // Erase up to n − k shares of every chunk, a different set each time.
        for (i, c) in chunks.iter_mut().enumerate() {
            let erase = ((f64::from(n - k)) * erase_frac).round() as usize;
            let order = shuffled(usize::from(n), seed ^ i as u64);
            let keep: Vec<Share> = order[erase..].iter().map(|&j| c.shares[j].clone()).collect();
            c.shares = keep;
        }
        let mut decoder = ChunkDecoder::new(keys.clone());
        let mut restored = Vec::new();
        for c in &chunks {
            restored.extend(decoder.decode(&c.chunk, &c.shares).unwrap());
        }
        prop_assert_eq!(&restored, &data);

        // The streaming restore from a share source gives the same bytes.
        let mut src = source_of(&chunks);
        let mut out = Vec::new();
        let report = restore(&mut decoder, refs(&chunks), &mut src, &mut out).unwrap();
        prop_assert_eq!(out, data);
        prop_assert!(report.bad.is_empty());
    }

    #[test]
    fn more_than_n_minus_k_erased_is_not_enough_shares(
        len in 1usize..5000, (k, n) in k_n(), seed in any::<u64>()
    ) {
        let keys = keys(2);
        let data = random_bytes(seed, len);
        let chunks = split(&keys, &data, k, n, SMALL);
        let victim = &chunks[seed as usize % chunks.len()];
        // Keep k − 1 shares.
        let order = shuffled(usize::from(n), seed);
        let kept: Vec<Share> =
            order[..usize::from(k) - 1].iter().map(|&j| victim.shares[j].clone()).collect();
        let err = ChunkDecoder::new(keys).decode(&victim.chunk, &kept).unwrap_err();
        match err {
            Error::NotEnoughShares { chunk, have, need } => {
                prop_assert_eq!(chunk, victim.chunk.id);
                prop_assert_eq!(have, usize::from(k) - 1);
                prop_assert_eq!(need, usize::from(k));
            }
            other => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_share_is_detected(
        len in 1usize..4000, (k, n) in k_n(), seed in any::<u64>(), bit in any::<u64>()
    ) {
        let keys = keys(3);
        let data = random_bytes(seed, len);
        let chunks = split(&keys, &data, k, n, SMALL);
        let victim = &chunks[seed as usize % chunks.len()];
        let index = (seed >> 8) as usize % usize::from(n);
        let mut bytes = victim.shares[index].to_bytes();
        let bit = bit as usize % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // With k = 1 the shares are copies that differ only in their index: a flip of the
        // index can turn one into another, genuine share (found by this test: share 2 became
        // share 0, bit for bit). That is not damage.
        prop_assume!(!victim.shares.iter().any(|s| s.to_bytes() == bytes));

        // Offered exactly k shares including the bad one: the chunk cannot be rebuilt, and
        // that is said, not silently wrong.
        let mut offered: Vec<Share> = Vec::new();
        if let Ok(bad) = Share::parse(&bytes) {
            offered.push(bad);
        }
        offered.extend(
            (0..usize::from(n)).filter(|&j| j != index).take(usize::from(k) - 1)
                .map(|j| victim.shares[j].clone()),
        );
        let mut decoder = ChunkDecoder::new(keys.clone());
        let is_not_enough = matches!(
            decoder.decode(&victim.chunk, &offered),
            Err(Error::NotEnoughShares { .. })
        );
        prop_assert!(is_not_enough);

        // Through a share source, the bad share is reported and the others are used.
        let mut src = source_of(&chunks);
        src.0.insert(victim.shares[index].id(), bytes);
        let mut out = Vec::new();
        // Restore reads shares in index order until k verify: a bad share below k is always
        // read and reported, one at or above k is never needed.
        let read_it = index < usize::from(k);
        match restore(&mut decoder, refs(&chunks), &mut src, &mut out) {
            Ok(report) => {
                prop_assert_eq!(out, data);
                let expected = if read_it { vec![victim.shares[index].id()] } else { vec![] };
                prop_assert_eq!(report.bad, expected);
            }
            Err(Error::NotEnoughShares { .. }) => {
                prop_assert!(k == n && read_it, "only k = n has no spare share");
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn same_key_same_chunks_other_key_other_boundaries() {
    let data = random_bytes(9, 200_000);
    let lens = |c: &[EncodedChunk]| c.iter().map(|c| c.chunk.len).collect::<Vec<_>>();
    let a = split(&keys(4), &data, 2, 3, SMALL);
    let b = split(&keys(4), &data, 2, 3, SMALL);
    let c = split(&keys(5), &data, 2, 3, SMALL);
    assert_eq!(
        refs(&a),
        refs(&b),
        "same key: identical chunks, ids and share ids"
    );
    assert_ne!(lens(&a), lens(&c), "another key: other boundaries");
}

#[test]
fn real_chunk_sizes_multi_megabyte_roundtrip_with_erasures() {
    let keys = keys(6);
    let data = random_bytes(10, 9 << 20);
    let chunks = split(&keys, &data, 3, 5, ChunkSizes::DEFAULT);
    assert!(chunks.len() >= 3);
    let mut src = source_of(&chunks);
    // Lose shares 0 and 3 of every chunk (a data and a recovery share).
    for c in &chunks {
        src.0.remove(&c.shares[0].id());
        src.0.remove(&c.shares[3].id());
    }
    let mut out = Vec::new();
    let report = restore(
        &mut ChunkDecoder::new(keys),
        refs(&chunks),
        &mut src,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, data);
    // Restore asks for shares in index order until k verify: 0 and 3 are asked for and missing.
    assert_eq!(report.missing.len(), 2 * chunks.len());
}

#[test]
fn empty_input_has_no_chunks_and_restores_to_nothing() {
    let keys = keys(7);
    let chunks = split(&keys, &[], 2, 3, ChunkSizes::DEFAULT);
    assert!(chunks.is_empty());
    let mut out = Vec::new();
    restore(
        &mut ChunkDecoder::new(keys),
        refs(&chunks),
        &mut MemSource::default(),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
}

#[test]
fn identical_chunks_give_identical_shares_within_a_vault() {
    // Dedup: a repeated block gives the same chunk id and the same ciphertext.
    let keys = keys(8);
    let block = random_bytes(11, 1024);
    let sizes = ChunkSizes {
        min: 64,
        avg: 128,
        max: 1024,
    };
    let a = split(&keys, &block, 2, 3, sizes);
    let b = split(&keys, &block, 2, 3, sizes);
    assert_eq!(a[0].shares, b[0].shares);
}

#[test]
fn bad_shares_are_typed_errors() {
    let keys = keys(12);
    let data = random_bytes(12, 3000);
    let chunks = split(&keys, &data, 2, 4, SMALL);
    let other = split(&keys, &random_bytes(13, 3000), 2, 4, SMALL);
    let chunk = &chunks[0];
    let mut decoder = ChunkDecoder::new(keys.clone());
    let not_enough = |r: shard_store::Result<Vec<u8>>, have: usize| match r {
        Err(Error::NotEnoughShares {
            have: h, need: 2, ..
        }) => assert_eq!(h, have),
        other => panic!("expected NotEnoughShares, got {other:?}"),
    };

    // Shares of another file are not taken for this chunk's.
    not_enough(decoder.decode(&chunk.chunk, &other[0].shares), 0);
    // The same share twice counts once.
    let twice = vec![chunk.shares[1].clone(), chunk.shares[1].clone()];
    not_enough(decoder.decode(&chunk.chunk, &twice), 1);
    // Truncated shares do not even parse.
    let bytes = chunk.shares[0].to_bytes();
    for cut in [0, 1, 15, 16, bytes.len() - 1] {
        assert!(Share::parse(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A header announcing 4 GiB is refused before any allocation.
    let mut absurd = bytes.clone();
    absurd[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Share::parse(&absurd),
        Err(shard_proto::Error::InvalidHeader(_))
    ));
    // A manifest entry with absurd fields is an error, not an allocation.
    let mut bogus = chunk.chunk.clone();
    bogus.share_len = u32::MAX;
    assert!(matches!(
        decoder.decode(&bogus, &chunk.shares),
        Err(Error::Format(shard_proto::Error::InvalidManifest(_)))
    ));
    // Through a source: garbage bytes under a share's id are reported as bad.
    let mut src = source_of(&chunks);
    src.0.insert(chunk.shares[0].id(), b"garbage".to_vec());
    let mut out = Vec::new();
    let report = restore(&mut decoder, refs(&chunks), &mut src, &mut out).unwrap();
    assert_eq!(out, data);
    assert_eq!(report.bad, vec![chunk.shares[0].id()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any k surviving shares rebuild exactly the lost ones, without the vault key's help for
    /// the coding; a damaged input share is skipped, never copied into the result.
    #[test]
    fn lost_shares_are_rebuilt_bit_exact_from_any_k((k, n) in k_n(), seed in any::<u64>()) {
        let keys = keys(3);
        let data = random_bytes(seed, 3000);
        let chunks = split(&keys, &data, k, n, SMALL);
        let mut decoder = ChunkDecoder::new(keys);
        for (c, chunk) in chunks.iter().enumerate() {
            let order = shuffled(usize::from(n), seed ^ c as u64);
            let (keep, lost) = order.split_at(usize::from(k));
            let mut survivors: Vec<Share> = keep.iter().map(|&i| chunk.shares[i].clone()).collect();
            // A forged share in front: not the chunk's, so it is skipped.
            let forged = Share::new(*survivors[0].header(), bytes::Bytes::from(vec![0u8; survivors[0].payload().len()])).unwrap();
            survivors.insert(0, forged);
            let wanted: Vec<u8> = lost.iter().map(|&i| i as u8).collect();
            if survivors.len() > usize::from(k) {
                let rebuilt = decoder.rebuild(&chunk.chunk, &survivors, &wanted).unwrap();
                for (share, &i) in rebuilt.iter().zip(lost) {
                    prop_assert_eq!(share, &chunk.shares[i]);
                }
            }
            // One short: a typed error.
            let too_few = &survivors[..usize::from(k)];
            prop_assert!(
                matches!(decoder.rebuild(&chunk.chunk, too_few, &wanted), Err(Error::NotEnoughShares { .. })),
                "k - 1 good shares must not be enough"
            );
        }
    }
}
