//! A node that lies, for tests only (cargo feature `adversary`, never in a release build).
//!
//! Promise: an owner never trusts a peer's word about its shares, only bytes it can check. To
//! show it, the tests start real `shard serve` processes whose share store is wrapped in
//! [`Adversary`], chosen by the `SHARD_ADVERSARY` environment variable (a comma-separated list):
//!
//! - `wrong-bytes`: says it has every share it holds, then serves them with one byte changed;
//! - `truncated`: serves the first half of each share, as a well-formed shorter share;
//! - `other-share`: serves a different share of the same owner than the one asked for;
//! - `stall`: never answers a share request (the caller's timeout must fire);
//! - `fake-capacity`: claims a terabyte free but refuses every put as full;
//! - `fill-after=N`: accepts `N` more shares, then is full (a disk filling up mid-repair);
//! - `old-heads`: keeps the first catalog head it is given, acknowledges newer ones, and
//!   serves the old one for ever (a replay).
//!
//! Everything else (has, list, delete, heads) is honest, so the lie is the only difference
//! from a good peer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shard_proto::{Namespace, Share, ShareHeader, ShareId};
use shard_store::{ScrubReport, ShareStore, Usage};

/// The environment variable that turns a node into an adversary.
pub const ENV: &str = "SHARD_ADVERSARY";

/// One way of lying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// Serves shares with a byte changed.
    WrongBytes,
    /// Serves the first half of each share.
    Truncated,
    /// Serves another share than the one asked for.
    OtherShare,
    /// Never answers a share request.
    Stall,
    /// Claims lots of room, refuses every put.
    FakeCapacity,
    /// Accepts this many more shares, then is full.
    FillAfter(u64),
    /// Keeps the first catalog head of a vault and serves it for ever.
    OldHeads,
}

/// Dies on the spot, as kill -9 would (no destructors, no flushing), when the environment
/// variable `SHARD_CRASH_AT` names `phase`: the crash tests stop the node at each phase of a
/// put, a removal, a repair and a snapshot, then check that nothing acknowledged is lost.
pub fn crash_point(phase: &str) {
    if std::env::var("SHARD_CRASH_AT").is_ok_and(|p| p == phase) {
        eprintln!("crash point {phase}: dying now");
        std::process::abort();
    }
}

/// Whether this node was told to tell `lie` (for the lies told outside the share store).
pub fn active(lie: Lie) -> bool {
    static LIES: std::sync::OnceLock<Vec<Lie>> = std::sync::OnceLock::new();
    LIES.get_or_init(|| {
        std::env::var(ENV)
            .ok()
            .and_then(|t| Lie::parse_list(&t).ok())
            .unwrap_or_default()
    })
    .contains(&lie)
}

impl Lie {
    /// Parses the `SHARD_ADVERSARY` list; unknown words are an error (a test typo must not
    /// silently start an honest node).
    pub fn parse_list(text: &str) -> Result<Vec<Lie>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|word| match word {
                "wrong-bytes" => Ok(Lie::WrongBytes),
                "truncated" => Ok(Lie::Truncated),
                "other-share" => Ok(Lie::OtherShare),
                "stall" => Ok(Lie::Stall),
                "fake-capacity" => Ok(Lie::FakeCapacity),
                "old-heads" => Ok(Lie::OldHeads),
                _ => match word.strip_prefix("fill-after=").map(str::parse) {
                    Some(Ok(n)) => Ok(Lie::FillAfter(n)),
                    _ => Err(format!("unknown {ENV} behaviour {word:?}")),
                },
            })
            .collect()
    }
}

/// A share store that lies as told (see the module docs).
pub struct Adversary {
    inner: Arc<dyn ShareStore>,
    lies: Vec<Lie>,
    accepted: AtomicU64,
}

impl Adversary {
    /// Wraps `inner` when `SHARD_ADVERSARY` is set; returns it unchanged otherwise.
    pub fn from_env(inner: Arc<dyn ShareStore>) -> crate::Result<Arc<dyn ShareStore>> {
        let Ok(text) = std::env::var(ENV) else {
            return Ok(inner);
        };
        let lies = Lie::parse_list(&text).map_err(crate::Error::Config)?;
        tracing::warn!("this node is a test adversary: {lies:?}");
        Ok(Arc::new(Self {
            inner,
            lies,
            accepted: AtomicU64::new(0),
        }))
    }

    fn lies(&self, lie: Lie) -> bool {
        self.lies.contains(&lie)
    }

    fn fill_after(&self) -> Option<u64> {
        self.lies.iter().find_map(|l| match l {
            Lie::FillAfter(n) => Some(*n),
            _ => None,
        })
    }
}

fn full() -> shard_store::Error {
    shard_store::Error::Full { needed: 0, free: 0 }
}

impl ShareStore for Adversary {
    fn put(&self, ns: &Namespace, shares: &[Share]) -> shard_store::Result<()> {
        if self.lies(Lie::FakeCapacity) {
            return Err(full());
        }
        if let Some(limit) = self.fill_after() {
            let count = shares.len() as u64;
            let before = self.accepted.fetch_add(count, Ordering::SeqCst);
            if before + count > limit {
                return Err(full());
            }
        }
        self.inner.put(ns, shares)
    }

    fn get(&self, ns: &Namespace, id: &ShareId) -> shard_store::Result<Option<Share>> {
        if self.lies(Lie::Stall) {
            // A blocking-pool thread parked for the rest of the test: what a wedged disk does.
            std::thread::sleep(Duration::from_secs(3600));
        }
        if self.lies(Lie::OtherShare) {
            for other in self.inner.list(ns, None, 64)? {
                if other != *id
                    && let Some(share) = self.inner.get(ns, &other)?
                {
                    return Ok(Some(share));
                }
            }
        }
        let Some(share) = self.inner.get(ns, id)? else {
            return Ok(None);
        };
        let header = share.header();
        if self.lies(Lie::Truncated) {
            let half = (header.payload_len() / 2) & !1;
            let cut = ShareHeader::new(header.k(), header.n(), header.index(), half.max(2))?;
            let payload = share.payload().slice(..cut.payload_len() as usize);
            return Ok(Some(Share::new(cut, payload)?));
        }
        if self.lies(Lie::WrongBytes) {
            let mut payload = share.payload().to_vec();
            if let Some(b) = payload.get_mut(0) {
                *b ^= 0x01;
            }
            return Ok(Some(Share::new(*header, Bytes::from(payload))?));
        }
        Ok(Some(share))
    }

    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<Vec<bool>> {
        self.inner.has(ns, ids)
    }

    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.delete(ns, ids)
    }

    fn undelete(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.undelete(ns, ids)
    }

    fn purge(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.purge(ns, ids)
    }

    fn expire(&self, before: i64) -> shard_store::Result<(u64, u64)> {
        self.inner.expire(before)
    }

    fn namespaces(&self) -> shard_store::Result<Vec<Namespace>> {
        self.inner.namespaces()
    }

    fn list(
        &self,
        ns: &Namespace,
        after: Option<&ShareId>,
        limit: usize,
    ) -> shard_store::Result<Vec<ShareId>> {
        self.inner.list(ns, after, limit)
    }

    fn usage(&self) -> shard_store::Result<Usage> {
        let usage = self.inner.usage()?;
        if self.lies(Lie::FakeCapacity) {
            return Ok(Usage {
                used: 0,
                shares: usage.shares,
                quota: Some(1 << 40),
                reclaimable: 0,
            });
        }
        Ok(usage)
    }

    fn move_namespace(&self, from: &Namespace, to: &Namespace) -> shard_store::Result<u64> {
        self.inner.move_namespace(from, to)
    }

    fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> shard_store::Result<Vec<(Namespace, ShareId)>> {
        self.inner.walk(after, limit)
    }

    fn quarantined(&self, ns: &Namespace) -> shard_store::Result<Vec<ShareId>> {
        self.inner.quarantined(ns)
    }

    // The node's own scrub must not see the lies (it would quarantine what it serves badly).
    fn scrub(&self, ns: &Namespace) -> shard_store::Result<ScrubReport> {
        self.inner.scrub(ns)
    }
}

/// What a hostile client does to a node over the network (the node's side needs no lie):
/// connections held open without a handshake, connection storms, a paired node that asks for
/// shares and never reads the answers, and one that floods catalog heads. Tests drive them
/// against real nodes. (A forged mDNS sighting is fed to the node with
/// `Node::inject_sighting`: tests may not send multicast on the machine's interfaces.)
pub mod attacks {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use shard_proto::{Message, Request, Share, VaultRef};
    use tokio::net::{TcpSocket, TcpStream};

    use crate::identity::NodeIdentity;
    use crate::noise::{self, Hello, PairingKey};

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
    ) -> crate::Result<(usize, noise::SecureChannel)> {
        let hello = Hello {
            name: "hoarder".into(),
            listen: Vec::new(),
            protocol: shard_proto::PROTOCOL_VERSION,
        };
        let paired = noise::connect(to, identity, &hello, None, Some(pairing)).await?;
        let client = crate::rpc::PeerClient::start(paired);
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
            match tokio::time::timeout(Duration::from_secs(2), channel.writer.write_frame(&ask))
                .await
            {
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
        client: &crate::rpc::PeerClient,
        head_len: usize,
        max: usize,
    ) -> (usize, u64, Option<crate::Error>) {
        let head = bytes::Bytes::from(vec![0x5a; head_len]);
        let (mut taken, mut share_bytes) = (0, 0u64);
        for i in 0..max {
            let keys = match shard_crypto::VaultKey::generate() {
                Ok(key) => shard_crypto::VaultKeys::derive(&key),
                Err(e) => return (taken, share_bytes, Some(e.into())),
            };
            let vault = keys.vault_id().0;
            let payload = bytes::Bytes::from((i as u64).to_le_bytes().repeat(128));
            let share = shard_proto::ShareHeader::new(1, 1, 0, payload.len() as u32)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse_and_typos_are_refused() {
        assert_eq!(
            Lie::parse_list("wrong-bytes, fill-after=7"),
            Ok(vec![Lie::WrongBytes, Lie::FillAfter(7)])
        );
        assert!(Lie::parse_list("wrong-byte").is_err());
        assert!(Lie::parse_list("fill-after=x").is_err());
    }
}
