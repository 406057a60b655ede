//! `shard demo`: the data path on an embedded sample, in one process.
//!
//! Until the networked node exists, the five "nodes" are five in-memory share stores; the
//! chunking, sealing, erasure coding, verification and restore are the real library code.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use shard_crypto::{Label, VaultKey, VaultKeys, encode_recovery_code, sha256};
use shard_proto::ShareId;
use shard_store::{
    ChunkDecoder, ChunkEncoder, ChunkSizes, KeyedFastCdc, Redundancy, ShareSource, Splitter,
    restore,
};

const NODES: usize = 5;

/// Five share stores; "stopping" a node empties its slot.
struct Swarm {
    nodes: Vec<Option<HashMap<ShareId, Vec<u8>>>>,
}

impl ShareSource for Swarm {
    fn fetch(&mut self, id: &ShareId) -> shard_store::Result<Option<Vec<u8>>> {
        Ok(self
            .nodes
            .iter()
            .flatten()
            .find_map(|node| node.get(id).cloned()))
    }
}

/// About 6 MiB of sample "papers": text lines, so the result is easy to eyeball.
fn sample() -> Vec<u8> {
    let mut out = Vec::with_capacity(6 << 20);
    let mut line = 0u64;
    while out.len() < 6 << 20 {
        line += 1;
        out.extend_from_slice(
            format!(
                "{line:08} family papers: deeds, certificates, letters; checksum {:016x}\n",
                line.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
            .as_bytes(),
        );
    }
    out
}

pub fn run() -> Result<()> {
    println!("shard demo: the data path on one machine, with {NODES} in-memory nodes.");
    println!(
        "(The swarm of {NODES} real nodes on loopback and the web UI come with the networking issues.)\n"
    );

    let key = VaultKey::generate().context("creating a vault key")?;
    let code = encode_recovery_code(&key);
    let keys = Arc::new(VaultKeys::derive(&key));
    println!(
        "1. New vault {}; its recovery code would be shown once:",
        keys.vault_id()
    );
    println!("   {}\n", code.as_str());

    let data = sample();
    let redundancy = Redundancy::for_peers(NODES)?;
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let encoder = ChunkEncoder::new(keys.clone(), redundancy)?;
    let mut swarm = Swarm {
        nodes: vec![Some(HashMap::new()); NODES],
    };
    let manifest = Splitter::new(&data[..], chunker, encoder).run(|chunk| {
        // Share i of every chunk goes to node i: each node holds one share per chunk.
        for (node, share) in swarm.nodes.iter_mut().flatten().zip(&chunk.shares) {
            node.insert(share.id(), share.to_bytes());
        }
        Ok(())
    })?;
    let stored: usize = swarm
        .nodes
        .iter()
        .flatten()
        .map(|n| n.values().map(Vec::len).sum::<usize>())
        .sum();
    println!(
        "2. Split {} bytes into {} chunks (keyed content-defined chunking), sealed each with AES-256-GCM,",
        data.len(),
        manifest.chunks.len()
    );
    println!(
        "   and coded each {redundancy}: {} shares, {} bytes in all, one share per chunk on each node.",
        manifest.chunks.len() * NODES,
        stored
    );
    let sample_share = swarm
        .nodes
        .first()
        .and_then(|n| n.as_ref())
        .and_then(|n| n.values().next());
    if let Some(share) = sample_share {
        println!(
            "   A node sees only this (first 32 bytes of a share): {}",
            hex::encode(share.get(16..48).unwrap_or_default())
        );
    }

    let lost = NODES - usize::from(redundancy.k());
    for node in swarm.nodes.iter_mut().take(lost) {
        *node = None;
    }
    println!(
        "\n3. Stopped {lost} of the {NODES} nodes; {} remain.",
        NODES - lost
    );

    let mut restored = Vec::with_capacity(data.len());
    let report = restore(
        &mut ChunkDecoder::new(keys),
        &manifest.chunks,
        &mut swarm,
        &mut restored,
    )?;
    println!(
        "4. Restored {} bytes from the remaining nodes ({} shares were unreachable, {} failed verification).",
        report.bytes,
        report.missing.len(),
        report.bad.len()
    );
    let (a, b) = (sha256(&data), sha256(&restored));
    println!(
        "   original SHA-256: {}\n   restored SHA-256: {}",
        hex::encode(a),
        hex::encode(b)
    );
    if restored != data {
        bail!("the restored bytes differ from the original");
    }
    println!(
        "\nThe bytes match: {} of {NODES} nodes were enough.",
        redundancy.k()
    );
    Ok(())
}
