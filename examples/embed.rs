//! Embedding the engine: two shard nodes in one program, over real TCP on 127.0.0.1, with no
//! CLI, no HTTP and no mDNS. The second pairs with the first, an account stores bytes 1-of-2
//! (one share on each node) and restores them, and the program checks they are the same.
//!
//! ```text
//! cargo run --release -p shard-examples --example embed
//! ```
//! Exits 0 when the restored bytes equal the stored ones; the CI runs it.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use shard_net::discovery::MdnsMode;
use shard_node::get::GetRequest;
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};
use shard_node::put::PutRequest;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A node's home under `root`: peers on a port of the system's choosing on loopback, and no
/// multicast (a program embedding shard decides how peers are found).
fn home(root: &Path, name: &str) -> shard_node::Result<Home> {
    let home = Home::new(root.join(name));
    let mut config = NodeConfig::new(name);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.api = ([127, 0, 0, 1], 0).into();
    config.discovery.mdns = MdnsMode::Off;
    // No relays: this example stays on loopback (an embedder reaching other homes leaves the
    // default, the public relays, or names its own).
    config.net.relays = Some(Vec::new());
    home.init(&config)?;
    Ok(home)
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Node::start(home(dir.path(), "study")?, RunOptions::default()).await?;
    let b = Node::start(home(dir.path(), "attic")?, RunOptions::default()).await?;

    // Pairing: b's invite code, joined by a (both pin each other's key).
    a.join(&b.invite(None)?.encode()).await?;
    let since = Instant::now();
    while a.online_peers().is_empty() {
        if since.elapsed() > Duration::from_secs(10) {
            return Err("the nodes did not connect".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An account on a: its recovery code is what a new machine would need.
    let passphrase = "embedding is a fine way to keep a secret";
    let _recovery_code = shard_node::accounts::create(a.catalog(), "alice", passphrase)?;
    a.login(
        "alice",
        zeroize::Zeroizing::new(passphrase.as_bytes().to_vec()),
    )
    .await?;

    let original = dir.path().join("letter.txt");
    let bytes: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&original, &bytes)?;
    let stored = a
        .put(
            None,
            PutRequest {
                paths: vec![original],
                name: None,
                redundancy: Some((1, 2)),
                move_original: false,
            },
        )
        .await?;
    println!(
        "stored {} bytes as {} chunk(s), {} shares coded {}",
        stored.bytes, stored.chunks, stored.shares_sent, stored.redundancy
    );

    let restored = dir.path().join("letter.restored.txt");
    a.get(
        None,
        GetRequest {
            name: b"letter.txt".to_vec(),
            version: None,
            at: None,
            out: restored.clone(),
            force: false,
            keep_special_bits: false,
        },
    )
    .await?;
    let back = std::fs::read(&restored)?;
    if back != bytes {
        return Err("the restored bytes differ from the stored ones".into());
    }
    println!("restored {} bytes, identical", back.len());
    println!("b holds {} shares", b.status()?.usage.shares);

    for node in [&a, &b] {
        node.shutdown();
        node.stopped(Duration::from_secs(5)).await;
    }
    Ok(())
}
