//! Shares to a peer over each path, in one run: TCP + Noise (the LAN's), iroh on a direct path
//! and iroh through a relay (the test's own `shard relay` server on 127.0.0.1, plain HTTP —
//! never a public one). All on loopback, so the figures compare the paths' own costs (QUIC,
//! the relay's copies), not a real network's.
//!
//! `wan_bench [MiB]` (default 256). For each path: the time to first byte (connect,
//! handshakes, one 64 KiB share put and its acknowledgement), the throughput of 1 MiB share
//! puts (16 in flight, as a put sends them) and the process's CPU seconds per GB (both ends
//! and the relay are in this process).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shard_net::identity::NodeIdentity;
use shard_net::noise::{Gatekeeper, Hello, PairingKey, PathKind, PeerInfo};
use shard_net::relay::{Relay, RelayOptions};
use shard_net::rpc::{PeerClient, ShareService, serve_channel};
use shard_net::transport::{IrohRoute, NoiseTcp, Route, Transport};
use shard_net::wan::{IrohTransport, Relays, WanConfig};
use shard_proto::{Share, ShareHeader};
use shard_store::MemoryStore;

struct Everyone;
impl Gatekeeper for Everyone {
    fn pairing_key(&self, _: &[u8; 8]) -> Result<PairingKey, String> {
        Err("benchmark".into())
    }
    fn admit(&self, _: &PeerInfo, _: Option<&[u8; 8]>) -> Result<(), String> {
        Ok(())
    }
}

fn hello() -> Hello {
    Hello {
        name: "bench".into(),
        listen: vec![],
        protocol: 1,
    }
}

fn share(i: u32, len: u32) -> Share {
    let mut payload = vec![0x5au8; len as usize];
    payload[..4].copy_from_slice(&i.to_le_bytes());
    Share::new(
        ShareHeader::new(3, 5, 0, len).unwrap(),
        Bytes::from(payload),
    )
    .unwrap()
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Serves shares from a memory store on `transport`.
async fn serve(transport: Arc<dyn Transport>) {
    let service = ShareService::new(
        NodeIdentity::generate().unwrap().node_id(),
        Arc::new(MemoryStore::new()),
        None,
    );
    let mut listener = transport.listen(([127, 0, 0, 1], 0).into()).await.unwrap();
    let (keep, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = keep;
        let _transport = transport;
        while let Ok(incoming) = listener.accept().await {
            let (service, stop) = (service.clone(), stop.clone());
            tokio::spawn(async move {
                if let Ok(c) = incoming.authenticate(hello(), Arc::new(Everyone)).await {
                    serve_channel(c, service, stop, Duration::from_secs(300)).await;
                }
            });
        }
    });
}

struct Figures {
    first_ms: f64,
    mb_s: f64,
    cpu_s_per_gb: f64,
    path: PathKind,
}

async fn measure(dialer: &dyn Transport, route: &Route, mib: usize) -> Figures {
    let t = Duration::from_secs(60);
    let start = Instant::now();
    let client = PeerClient::start(dialer.connect(route, &hello(), None, None).await.unwrap());
    client
        .put_share([1; 16], &share(u32::MAX, 64 << 10), t)
        .await
        .unwrap();
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    // Let iroh settle on its path (a direct one, after hole punching) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let path = client.peer().path();
    let all: Vec<Share> = (0..mib as u32).map(|i| share(i, 1 << 20)).collect();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for s in all {
        let (client, permit) = (client.clone(), sem.clone().acquire_owned().await.unwrap());
        tasks.push(tokio::spawn(async move {
            client.put_share([1; 16], &s, t).await.unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = (mib << 20) as f64;
    Figures {
        first_ms,
        mb_s: bytes / secs / 1e6,
        cpu_s_per_gb: (cpu_seconds() - cpu) / (bytes / 1e9),
        path,
    }
}

async fn iroh(relay: &Relay, relay_only: bool) -> Arc<IrohTransport> {
    let config = WanConfig {
        relays: Relays::Own(vec![relay.url().to_string()]),
        extra_roots: Vec::new(),
        bind: ([127, 0, 0, 1], 0).into(),
        relay_only,
    };
    let t = IrohTransport::bind(Arc::new(NodeIdentity::generate().unwrap()), &config)
        .await
        .unwrap();
    assert!(
        t.online(Duration::from_secs(10)).await,
        "the relay did not answer"
    );
    Arc::new(t)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB"))
        .unwrap_or(256);
    let relay = Relay::start(RelayOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        tls: None,
        quic_port: 0,
    })
    .await
    .unwrap();

    // TCP + Noise.
    let tcp_id = Arc::new(NodeIdentity::generate().unwrap());
    let tcp_listener_transport: Arc<dyn Transport> = Arc::new(NoiseTcp::new(tcp_id));
    let mut listener = tcp_listener_transport
        .listen(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let tcp_addr = listener.local_addr();
    let service = ShareService::new(
        NodeIdentity::generate().unwrap().node_id(),
        Arc::new(MemoryStore::new()),
        None,
    );
    let (keep, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = keep;
        while let Ok(incoming) = listener.accept().await {
            let (service, stop) = (service.clone(), stop.clone());
            tokio::spawn(async move {
                if let Ok(c) = incoming.authenticate(hello(), Arc::new(Everyone)).await {
                    serve_channel(c, service, stop, Duration::from_secs(300)).await;
                }
            });
        }
    });

    // iroh, direct and relayed: a server endpoint each.
    let direct_server = iroh(&relay, false).await;
    serve(direct_server.clone()).await;
    let relayed_server = iroh(&relay, true).await;
    serve(relayed_server.clone()).await;
    let direct_client = iroh(&relay, false).await;
    let relayed_client = iroh(&relay, true).await;

    let dialer = NoiseTcp::new(Arc::new(NodeIdentity::generate().unwrap()));
    let tcp = measure(&dialer, &Route::Tcp(tcp_addr), mib).await;
    let route = |t: &IrohTransport| {
        Route::Iroh(IrohRoute {
            key: t.key(),
            relay: Some(relay.url().to_string()),
        })
    };
    let direct = measure(direct_client.as_ref(), &route(&direct_server), mib).await;
    let relayed = measure(relayed_client.as_ref(), &route(&relayed_server), mib).await;

    println!("share puts, 1 MiB shares, 16 in flight, {mib} MiB per path (loopback)");
    println!(
        "{:<14} {:>8} {:>10} {:>12} {:>12}  path",
        "", "MB/s", "vs TCP", "first (ms)", "CPU s/GB"
    );
    for (name, f) in [
        ("TCP + Noise", &tcp),
        ("iroh direct", &direct),
        ("iroh relayed", &relayed),
    ] {
        println!(
            "{name:<14} {:>8.0} {:>9.0}% {:>12.1} {:>12.2}  {}",
            f.mb_s,
            f.mb_s / tcp.mb_s * 100.0,
            f.first_ms,
            f.cpu_s_per_gb,
            f.path.as_str()
        );
    }
    for t in [direct_server, relayed_server, direct_client, relayed_client] {
        t.close().await;
    }
    relay.shutdown().await.unwrap();
}
