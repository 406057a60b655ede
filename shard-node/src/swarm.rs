//! Asking the swarm for a chunk's shares: one hedged fetch that restores, repair and recovery
//! all use. Data shares first (all `k` of them make decoding a plain copy), then the best
//! source; a holder slow to answer gets another one asked beside it, and every share that
//! comes back is checked against the manifest before it counts — a peer's word is never taken
//! for its bytes.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use shard_proto::{ChunkRef, Share, ShareId};
use shard_store::check_share;
use tokio::task::JoinSet;

use crate::target::Target;

/// A share to ask for and who holds it.
pub(crate) struct Holder {
    /// The share's id, as the manifest lists it.
    pub id: ShareId,
    /// Its index in the chunk's encoding.
    pub index: u8,
    /// Who holds it.
    pub target: Target,
    /// How good a source it is (lower first: this node, then peers by round-trip time).
    pub rank: usize,
}

/// How a fetch asks.
#[derive(Clone, Copy)]
pub(crate) struct Asking {
    /// The vault the shares are filed under.
    pub vault: [u8; 16],
    /// Each request's timeout.
    pub timeout: Duration,
    /// A request unanswered this long gets another holder asked beside it.
    pub hedge_after: Duration,
}

/// What a fetch brought back.
pub(crate) struct Fetched {
    /// Verified shares, at most `k`.
    pub good: Vec<Share>,
    /// Shares whose holder served other bytes, or said its copy is corrupt.
    pub bad: HashSet<ShareId>,
}

/// Fetches `k` verified shares of `chunk` from `holders`, at most `k` requests at once plus
/// one per holder that is slower than `hedge_after`.
pub(crate) async fn fetch(chunk: &ChunkRef, mut holders: Vec<Holder>, asking: Asking) -> Fetched {
    holders.sort_by_key(|h| (h.index >= chunk.k, h.rank));
    let need = usize::from(chunk.k);
    let mut fetched = Fetched {
        good: Vec::with_capacity(need),
        bad: HashSet::new(),
    };
    let mut queue: VecDeque<Holder> = holders.into();
    let mut set = JoinSet::new();
    let launch = |set: &mut JoinSet<_>, holder: Holder| {
        set.spawn(async move {
            let answer = holder
                .target
                .get(asking.vault, holder.id, asking.timeout)
                .await;
            (holder.id, holder.target.name(), answer)
        });
    };
    for _ in 0..need {
        if let Some(h) = queue.pop_front() {
            launch(&mut set, h);
        }
    }
    while fetched.good.len() < need {
        // A holder slower than `hedge_after` (stalled, or on a bad link) does not hold the
        // chunk up: one more holder is asked, and whichever answers first is used.
        let joined = match tokio::time::timeout(asking.hedge_after, set.join_next()).await {
            Ok(Some(joined)) => joined,
            Ok(None) => break,
            Err(_) => {
                if let Some(h) = queue.pop_front() {
                    launch(&mut set, h);
                }
                continue;
            }
        };
        let Ok((id, from, answer)) = joined else {
            continue;
        };
        match answer {
            // The same share from a second holder counts once.
            Ok(Some(share)) if share.id() == id && fetched.good.iter().any(|g| g.id() == id) => {}
            Ok(Some(share)) if share.id() == id && check_share(chunk, &share).is_ok() => {
                fetched.good.push(share);
            }
            Ok(Some(_)) => {
                tracing::warn!(
                    "{from} served bytes that are not share {id} of chunk {:?}",
                    chunk.id
                );
                fetched.bad.insert(id);
            }
            Ok(None) => tracing::warn!("{from} no longer has share {id} of chunk {:?}", chunk.id),
            Err(e) => {
                tracing::warn!("fetching from {from} failed (share {id}): {e}");
                if e.remote_code() == Some(shard_proto::ErrorCode::Corrupt) {
                    fetched.bad.insert(id);
                }
            }
        }
        if fetched.good.len() + set.len() < need
            && let Some(h) = queue.pop_front()
        {
            launch(&mut set, h);
        }
    }
    fetched
}
