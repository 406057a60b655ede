//! Streams a large pseudo-random input through the store pipeline (keyed CDC, chunk ids,
//! sealing, Reed-Solomon 3-of-5) and prints throughput and peak memory: the evidence that
//! memory stays bounded whatever the input size.
//!
//! `split_rss [GiB]` (default 4). Shares are hashed and dropped, as a sender would after
//! handing them to the network.
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use shard_crypto::{Label, VaultKey, VaultKeys};
use shard_store::{ChunkEncoder, ChunkSizes, KeyedFastCdc, Redundancy, Splitter};

/// `remaining` bytes of ChaCha8 output: incompressible, unique data without a file.
struct RandomReader {
    rng: ChaCha8Rng,
    remaining: u64,
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let (head, _) = buf.split_at_mut(n);
        self.rng.fill_bytes(head);
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(4);
    let size = gib << 30;
    let keys = Arc::new(VaultKeys::derive(&VaultKey::generate()?));
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let encoder = ChunkEncoder::new(keys, Redundancy::new(3, 5)?)?;
    let input = RandomReader {
        rng: ChaCha8Rng::seed_from_u64(7),
        remaining: size,
    };
    let start = Instant::now();
    let mut share_bytes = 0u64;
    let manifest = Splitter::new(input, chunker, encoder).run(|chunk| {
        share_bytes += chunk
            .shares
            .iter()
            .map(|s| s.encoded_len() as u64)
            .sum::<u64>();
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "split {} GiB into {} chunks ({:.1} GiB of shares) in {:.1} s: {:.0} MB/s (includes generating the input); peak RSS {} MiB",
        gib,
        manifest.chunks.len(),
        share_bytes as f64 / f64::from(1u32 << 30),
        secs,
        size as f64 / secs / 1e6,
        peak_rss_kib() / 1024
    );
    Ok(())
}
