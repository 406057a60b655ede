//! What a hostile client does to a node over the network (the node's side needs no lie):
//! connections held open without a handshake, connection storms, a paired node that asks for
//! shares and never reads the answers, and one that floods catalog heads. Tests drive them
//! against real nodes. (A forged mDNS sighting is fed to the node with
//! `Node::inject_sighting`: tests may not send multicast on the machine's interfaces.)
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shard_proto::{Message, Request, Share, VaultRef};
use tokio::net::{TcpSocket, TcpStream};

use shard_net::identity::NodeIdentity;
use shard_net::noise::{self, Hello, PairingKey};

/// Opens `count` connections to `to` from the local address `from` (a loopback address of
/// the test's choosing, so the flood has an address of its own) and holds them open,
/// silent. Connections the node closes at once are counted but not kept.
pub async fn idle_connections(to: SocketAddr, from: IpAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = match to {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let Ok(socket) = socket else { break };
        if socket.bind(SocketAddr::new(from, 0)).is_err() {
            break;
        }
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(2), socket.connect(to)).await
        {
            held.push(stream);
        }
    }
    held
}

/// Connects to `to` `count` times, closing each connection at once (a storm of refused
/// connections). Returns how many were made.
pub async fn connect_and_close(to: SocketAddr, count: usize) -> usize {
    let mut made = 0;
    for _ in 0..count {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to)).await
        {
            made += 1;
            drop(stream);
        }
    }
    made
}

/// As node `identity`, pairs with the node at `to` through `pairing` (its invite), stores
/// `shares` of `vault` there, then asks for them over one connection, up to `max_requests`
/// times, without ever reading an answer. Stops when a write stalls for 2 s (the node
/// stopped reading: its memory for the connection is spent and the kernel's buffers are
/// full) or the node closes. Returns the requests written and the connection, still open
/// (so the node's memory can be measured while it is held).
pub async fn ask_without_reading(
    to: SocketAddr,
    identity: &NodeIdentity,
    pairing: &PairingKey,
    vault: VaultRef,
    shares: &[Share],
    max_requests: usize,
) -> shard_net::Result<(usize, noise::SecureChannel)> {
    let hello = Hello {
        name: "hoarder".into(),
        listen: Vec::new(),
        protocol: shard_proto::PROTOCOL_VERSION,
    };
    let paired = noise::connect(to, identity, &hello, None, Some(pairing)).await?;
    let client = shard_net::rpc::PeerClient::start(paired);
    for share in shares {
        client
            .put_share(vault, share, Duration::from_secs(30))
            .await?;
    }
    let mut channel = noise::connect(to, identity, &hello, None, None).await?;
    let mut written = 0;
    for (id, share) in (1..).zip(shares.iter().cycle().take(max_requests)) {
        let ask = Message::Request {
            id,
            body: Request::GetShare {
                vault,
                id: share.id(),
            },
        };
        match tokio::time::timeout(Duration::from_secs(2), channel.writer.write_frame(&ask)).await {
            Ok(Ok(())) => written += 1,
            _ => break,
        }
    }
    Ok((written, channel))
}

/// A paired node that floods catalog heads: for each of up to `max` made-up vaults it
/// stores one share (the node takes heads only for vaults the sender keeps shares of),
/// then a head of `head_len` bytes, signed by that vault's own key (a vault it invented,
/// so the signature is valid). Stops at the first refusal. Returns the heads taken, the
/// bytes of shares stored on the way, and the refusal.
pub async fn flood_heads(
    client: &shard_net::rpc::PeerClient,
    head_len: usize,
    max: usize,
) -> (usize, u64, Option<shard_net::Error>) {
    let head = bytes::Bytes::from(vec![0x5a; head_len]);
    let (mut taken, mut share_bytes) = (0, 0u64);
    for i in 0..max {
        let keys = match shard_crypto::VaultKey::generate() {
            Ok(key) => shard_crypto::VaultKeys::derive(&key),
            Err(e) => return (taken, share_bytes, Some(e.into())),
        };
        let vault = keys.vault_id().0;
        let payload = bytes::Bytes::from((i as u64).to_le_bytes().repeat(128));
        let share = shard_proto::ShareHeader::new(1, 1, 0, 1024)
            .and_then(|header| Share::new(header, payload));
        let share = match share {
            Ok(share) => share,
            Err(e) => return (taken, share_bytes, Some(e.into())),
        };
        if let Err(e) = client
            .put_share(vault, &share, Duration::from_secs(30))
            .await
        {
            return (taken, share_bytes, Some(e));
        }
        share_bytes += share.encoded_len() as u64;
        match client
            .put_catalog_head(
                vault,
                1,
                head.clone(),
                keys.authority(),
                Duration::from_secs(30),
            )
            .await
        {
            Ok(()) => taken += 1,
            Err(e) => return (taken, share_bytes, Some(e)),
        }
    }
    (taken, share_bytes, None)
}
