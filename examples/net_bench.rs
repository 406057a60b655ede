//! The peer channel on loopback, in one run: plain TCP, the Noise channel, shares through the
//! protocol, and the latency of a first contact.
//!
//! `net_bench [MiB]` (default 1024). One connection each. Figures:
//! - plain TCP: 1 MiB writes, the reader discards;
//! - Noise channel: 1 MiB frames through `ChannelWriter`/`ChannelReader` (encrypt, frame,
//!   decrypt, decode);
//! - share put / get: 1 MiB shares through `PeerClient` to a node serving a memory store, 16 in
//!   flight (includes the BLAKE3 check of every share on arrival);
//! - handshake + first share round trip: connect, Noise XX, admission, one 64 KiB put and its
//!   acknowledgement; median of 50.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_secs(300);

use bytes::Bytes;
use shard_net::identity::NodeIdentity;
use shard_net::noise::{self, Gatekeeper, Hello, PairingKey, PeerInfo};
use shard_net::rpc::{PeerClient, ShareService, serve_channel};
use shard_proto::{Message, Response, Share, ShareHeader};
use shard_store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

async fn plain_tcp(mib: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let buf = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    for _ in 0..mib {
        s.write_all(&buf).await.unwrap();
    }
    s.shutdown().await.unwrap();
    let total = reader.await.unwrap();
    assert_eq!(total, mib << 20);
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn noise_channel(mib: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_id = Arc::new(NodeIdentity::generate().unwrap());
    let id = server_id.clone();
    let reader = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ch = noise::accept(stream, &id, &hello(), &Everyone)
            .await
            .unwrap();
        let mut total = 0usize;
        while let Ok(Message::Response {
            body: Response::Share { share },
            ..
        }) = ch.reader.read_frame().await
        {
            total += share.len();
        }
        total
    });
    let me = NodeIdentity::generate().unwrap();
    let mut ch = noise::connect(addr, &me, &hello(), None, None)
        .await
        .unwrap();
    let payload = Bytes::from(vec![0x5au8; 1 << 20]);
    let start = Instant::now();
    for i in 0..mib {
        let m = Message::Response {
            id: i as u64,
            body: Response::Share {
                share: payload.clone(),
            },
        };
        ch.writer.write_frame(&m).await.unwrap();
    }
    ch.writer.shutdown().await.unwrap();
    let total = reader.await.unwrap();
    assert_eq!(total, mib << 20);
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn serve_memory() -> (std::net::SocketAddr, Arc<NodeIdentity>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let id = Arc::new(NodeIdentity::generate().unwrap());
    let service = ShareService::new(id.node_id(), Arc::new(MemoryStore::new()), None);
    let server_id = id.clone();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _stop_tx;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (id, service, stop) = (server_id.clone(), service.clone(), stop.clone());
            tokio::spawn(async move {
                if let Ok(ch) = noise::accept(stream, &id, &hello(), &Everyone).await {
                    serve_channel(ch, service, stop, IDLE).await;
                }
            });
        }
    });
    (addr, id)
}

async fn shares(mib: usize) -> (f64, f64) {
    let (addr, id) = serve_memory().await;
    let me = NodeIdentity::generate().unwrap();
    let client = PeerClient::start(
        noise::connect(addr, &me, &hello(), Some(id.node_id()), None)
            .await
            .unwrap(),
    );
    let all: Vec<Share> = (0..mib as u32).map(|i| share(i, 1 << 20)).collect();
    let t = Duration::from_secs(60);
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for s in &all {
        let s = s.clone();
        let (client, permit) = (client.clone(), sem.clone().acquire_owned().await.unwrap());
        tasks.push(tokio::spawn(async move {
            client.put_share([1; 16], &s, t).await.unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let put = (mib << 20) as f64 / start.elapsed().as_secs_f64() / 1e6;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in &all {
        let (client, permit, id) = (
            client.clone(),
            sem.clone().acquire_owned().await.unwrap(),
            s.id(),
        );
        tasks.push(tokio::spawn(async move {
            let got = client.get_share([1; 16], id, t).await.unwrap();
            drop(permit);
            assert!(got.is_some());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let get = (mib << 20) as f64 / start.elapsed().as_secs_f64() / 1e6;
    (put, get)
}

async fn first_contact() -> (f64, f64) {
    let (addr, id) = serve_memory().await;
    let me = NodeIdentity::generate().unwrap();
    let mut times = Vec::new();
    for i in 0..50 {
        let s = share(i, 64 << 10);
        let start = Instant::now();
        let ch = noise::connect(addr, &me, &hello(), Some(id.node_id()), None)
            .await
            .unwrap();
        let client = PeerClient::start(ch);
        client
            .put_share([2; 16], &s, Duration::from_secs(10))
            .await
            .unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[25], times[45])
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(1024);
    let tcp = plain_tcp(mib).await;
    let noise = noise_channel(mib).await;
    let (put, get) = shares(mib.min(512)).await;
    let tcp_again = plain_tcp(mib).await;
    let (median, p90) = first_contact().await;
    println!("loopback, one connection, {mib} MiB");
    println!("| measure | figure | vs plain TCP |");
    println!("|---|---:|---:|");
    println!("| plain TCP, 1 MiB writes | {tcp:.0} MB/s | 100% |");
    println!(
        "| Noise channel, 1 MiB frames | {noise:.0} MB/s | {:.0}% |",
        noise / tcp * 100.0
    );
    println!(
        "| share put (memory store, 16 in flight) | {put:.0} MB/s | {:.0}% |",
        put / tcp * 100.0
    );
    println!(
        "| share get (memory store, 16 in flight) | {get:.0} MB/s | {:.0}% |",
        get / tcp * 100.0
    );
    println!(
        "| plain TCP again (drift check) | {tcp_again:.0} MB/s | {:.0}% |",
        tcp_again / tcp * 100.0
    );
    println!(
        "| handshake + first 64 KiB share acknowledged | median {median:.2} ms, p90 {p90:.2} ms | |"
    );
}
