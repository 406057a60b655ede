//! `shard demo`: five nodes on 127.0.0.1 in this one process, paired, storing a sample 3-of-5;
//! two nodes stop, the sample comes back from the other three, byte for byte. The nodes then
//! keep running (the CLI can talk to the first) until Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shard_crypto::sha256;
use shard_http::{HttpOptions, HttpServer};
use shard_node::get::GetRequest;
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};
use shard_node::put::PutRequest;

const NODES: usize = 5;
const USER: &str = "demo";
const PASSPHRASE: &str = "demo passphrase, not a secret";

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

fn home_at(root: &Path, i: usize) -> Result<Home> {
    let home = Home::new(root.join(format!("node{}", i + 1)));
    if !home.is_initialized() {
        let mut config = NodeConfig::new(&format!("node{}", i + 1));
        config.listen = "127.0.0.1:0".parse()?;
        config.api = "127.0.0.1:0".parse()?;
        // Loopback only: no multicast on the machine's real interfaces.
        config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
        // No relays: the demo never leaves 127.0.0.1.
        config.net.relays = Some(Vec::new());
        home.init(&config)?;
    }
    Ok(home)
}

pub fn run(keep: Option<PathBuf>) -> Result<()> {
    let temp;
    let root = match keep {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(&root))
}

async fn demo(root: &Path) -> Result<()> {
    println!(
        "shard demo: {NODES} nodes on 127.0.0.1, in this process, homes under {}\n",
        root.display()
    );
    let homes: Vec<Home> = (0..NODES)
        .map(|i| home_at(root, i))
        .collect::<Result<_>>()?;
    let mut nodes = Vec::new();
    for home in &homes {
        nodes.push(Node::start(home.clone(), RunOptions::default()).await?);
    }
    // node1 has the control API and the web UI (the UI on its usual port if free, else
    // wherever the system says); the CLI reaches node1 only.
    let usual = HttpOptions {
        ui: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 7716))),
        ..HttpOptions::default()
    };
    let http = match HttpServer::start(nodes[0].clone(), &usual).await {
        Ok(http) => http,
        Err(_) => {
            let anywhere = HttpOptions {
                ui: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                ..HttpOptions::default()
            };
            HttpServer::start(nodes[0].clone(), &anywhere).await?
        }
    };
    let owner = nodes[0].clone();
    println!(
        "1. Started {NODES} nodes; each has its own X25519 identity, share store and catalog."
    );

    let catalog = owner.catalog();
    if catalog.account(USER)?.is_none() {
        let code = shard_node::accounts::create(catalog, USER, PASSPHRASE)?;
        println!(
            "2. Created account {USER:?} on node1 (vault key wrapped with Argon2id); its recovery code,"
        );
        println!(
            "   shown once, would be written down:\n   {}",
            code.as_str()
        );
    } else {
        println!("2. Account {USER:?} exists on node1 from an earlier run.");
    }
    owner
        .login(
            USER,
            zeroize::Zeroizing::new(PASSPHRASE.as_bytes().to_vec()),
        )
        .await?;

    for node in &nodes[1..] {
        let id = node.status()?.id;
        if owner.peers().iter().any(|p| p.id == id) {
            continue;
        }
        let code = node.invite(None)?.encode();
        owner.join(&code).await?;
    }
    let start = Instant::now();
    while owner.online_peers().len() < NODES - 1 {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the peers did not all connect");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "3. Paired node1 with the other four (invite codes, Noise XXpsk3); all connected over Noise XX."
    );

    let work = root.join("files");
    std::fs::create_dir_all(&work)?;
    let original = work.join("family-papers.txt");
    let data = sample();
    std::fs::write(&original, &data)?;
    let stored = owner
        .put(
            None,
            PutRequest {
                paths: vec![original.clone()],
                name: None,
                redundancy: None,
                move_original: false,
            },
        )
        .await?;
    println!(
        "4. Stored {} ({} bytes): {} chunks, each sealed with AES-256-GCM and coded {},",
        original.display(),
        data.len(),
        stored.chunks,
        stored.redundancy
    );
    println!(
        "   {} shares ({} bytes) spread over the five nodes; each node holds one share per chunk.",
        stored.shares_sent, stored.share_bytes_sent
    );

    for node in &nodes[3..] {
        node.shutdown();
        node.stopped(Duration::from_secs(5)).await;
    }
    println!("5. Stopped node4 and node5: 3 of 5 nodes remain.");

    let restored = work.join("family-papers.restored.txt");
    let _ = std::fs::remove_file(&restored);
    owner
        .get(
            None,
            GetRequest {
                name: b"family-papers.txt".to_vec(),
                version: None,
                at: None,
                out: restored.clone(),
                force: false,
                keep_special_bits: false,
            },
        )
        .await?;
    let back = std::fs::read(&restored)?;
    println!(
        "6. Restored it from the three nodes still running, to {}.",
        restored.display()
    );
    println!("   original SHA-256: {}", hex::encode(sha256(&data)));
    println!("   restored SHA-256: {}", hex::encode(sha256(&back)));
    if back != data {
        bail!("the restored bytes differ from the original");
    }
    println!("\nThe bytes match: 3 of 5 nodes were enough.");

    http.announce()?;
    let alive: Vec<Arc<Node>> = nodes[..3].to_vec();
    // The command that works from here: after `cargo run` there is no `shard` on the PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "shard".to_string());
    println!(
        "\nnode1, node2 and node3 keep running; try `{exe} --home {home} ls` or `{exe} --home {home} peers`\n(`cargo install --path shard-cli` puts `shard` on your PATH).",
        home = homes[0].root().display(),
    );
    if let Some(ui) = http.ui_addr() {
        println!("web UI of node1: http://{ui}/ (account {USER:?}, passphrase {PASSPHRASE:?})");
    }
    println!("Ctrl-C stops the demo.");
    tokio::signal::ctrl_c().await?;
    for node in &alive {
        node.shutdown();
    }
    for node in &alive {
        node.stopped(Duration::from_secs(5)).await;
    }
    println!("demo stopped");
    Ok(())
}
