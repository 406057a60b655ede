//! The swarm as one job sees it, in one place for put, get, repair, catalog snapshots and
//! recovery:
//!
//! - [`Nodes`]: where shares can go now (this node and the connected peers, less those
//!   counted lost), their room, and the nodes found full during the job;
//! - [`Nodes::place`]: each share of a chunk on a node of its own, chosen by [`Placement`],
//!   sent in parallel within [`PER_NODE`] requests per node, a node that fails replaced;
//! - [`fetch`]: `k` shares of a chunk back, data shares first, then the best source; a holder
//!   slow to answer gets another one asked beside it, and every share that comes back is
//!   checked against the manifest before it counts — a peer's word is never taken for its
//!   bytes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use shard_proto::{ChunkRef, NodeId, Share, ShareId};
use shard_store::{AckedShare, EncodedChunk, check_share};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::node::Node;
use crate::placement::{Candidate, FullNodes, Placement};
use crate::target::Target;

/// Shares sent at once to one node.
pub const PER_NODE: usize = 16;
/// Rounds of placing a chunk's shares (a node that fails is replaced in the next).
const ATTEMPTS: usize = 3;

use crate::error::NotPlaced;

/// Sends the shares of one chunk that are not acknowledged yet (`acked`: index → holder);
/// returns the new acks and their bytes. Nothing is sent unless every missing share has a
/// node to go to. Put, prune and catalog snapshots store their chunks through it.
pub(crate) async fn send_chunk(
    nodes: Arc<Nodes>,
    chunk: EncodedChunk,
    acked: HashMap<u8, NodeId>,
) -> Result<(Vec<AckedShare>, u64), NotPlaced> {
    let c = &chunk.chunk;
    let holding: Vec<NodeId> = acked.values().copied().collect();
    let needed: Vec<(u8, Share)> = (0..c.n)
        .filter(|i| !acked.contains_key(i))
        .filter_map(|i| chunk.shares.get(usize::from(i)).map(|s| (i, s.clone())))
        .collect();
    let available = nodes.available(&holding);
    if available < needed.len() {
        // Nodes an earlier chunk found full are left out: say so, or the count looks wrong.
        let full = nodes
            .full()
            .iter()
            .filter_map(|n| nodes.target(n).map(|t| format!("{} is full", t.name())))
            .collect();
        return Err(NotPlaced::TooFewNodes {
            can: available + holding.len(),
            needed: c.n,
            full,
        });
    }
    let placing = nodes.place(needed, &holding, &[]).await;
    if !placing.unplaced.is_empty() {
        return Err(NotPlaced::Refused {
            count: placing.unplaced.len(),
            refused: placing.refused,
        });
    }
    let bytes = placing.placed.iter().map(|p| p.len).sum();
    let acks = placing
        .placed
        .into_iter()
        .map(|p| AckedShare {
            chunk: c.id,
            k: c.k,
            n: c.n,
            share_len: c.share_len,
            index: p.index,
            share: p.id,
            peer: p.node,
        })
        .collect();
    Ok((acks, bytes))
}

/// Where one job can place shares.
pub(crate) struct Nodes {
    vault: [u8; 16],
    targets: HashMap<NodeId, (Target, Arc<Semaphore>)>,
    candidates: Vec<Candidate>,
    timeout: Duration,
    placement: Arc<dyn Placement>,
    /// Nodes that said they were full during this job.
    full: FullNodes,
}

/// A share a node acknowledged.
pub(crate) struct Placed {
    /// Its index in the chunk's encoding.
    pub index: u8,
    /// Its id.
    pub id: ShareId,
    /// Who holds it now.
    pub node: NodeId,
    /// Its bytes on the wire.
    pub len: u64,
}

/// What placing a chunk's shares came to.
pub(crate) struct Placing {
    /// The shares acknowledged.
    pub placed: Vec<Placed>,
    /// The indexes no node took.
    pub unplaced: Vec<u8>,
    /// Why nodes refused, one line each.
    pub refused: Vec<String>,
}

impl Nodes {
    /// This node and every connected peer, less those in `lost`, for shares of `vault`.
    pub(crate) fn gather(node: &Node, vault: [u8; 16], lost: &HashSet<NodeId>) -> Self {
        let mut targets = HashMap::new();
        let mut candidates = Vec::new();
        let local = node.local_target();
        let mut add = |target: Target, free: Option<u64>| {
            if lost.contains(&target.node()) {
                return;
            }
            candidates.push(Candidate {
                node: target.node(),
                free,
            });
            targets.insert(target.node(), (target, Arc::new(Semaphore::new(PER_NODE))));
        };
        add(local, node.store().usage().ok().and_then(|u| u.free()));
        // In a stable order (by name, then id): a deterministic placement means the same
        // thing from one run to the next.
        let mut peers = node.online_peers();
        peers.sort_by(|(a, _), (b, _)| {
            (&a.peer().hello.name, a.peer().id).cmp(&(&b.peer().hello.name, b.peer().id))
        });
        for (client, usage) in peers {
            add(Target::Peer(client), usage.and_then(|u| u.free()));
        }
        Self {
            vault,
            targets,
            candidates,
            timeout: node.options().request_timeout,
            placement: node.placement(),
            full: FullNodes::default(),
        }
    }

    /// Nodes that can take shares.
    pub(crate) fn online(&self) -> usize {
        self.targets.len()
    }

    /// The nodes found full so far.
    pub(crate) fn full(&self) -> Vec<NodeId> {
        self.full.list()
    }

    /// How to reach `node`, if it is one of these.
    pub(crate) fn target(&self, node: &NodeId) -> Option<&Target> {
        self.targets.get(node).map(|(t, _)| t)
    }

    /// Nodes that may take a share none of `holding` has, leaving out those found full.
    pub(crate) fn available(&self, holding: &[NodeId]) -> usize {
        let full = self.full.list();
        self.candidates
            .iter()
            .filter(|c| !holding.contains(&c.node) && !full.contains(&c.node))
            .count()
    }

    /// Places each of `shares` (index, share) on a node of its own that holds none of the
    /// chunk's shares (`holding`) and was not found full; nodes in `avoid` (ones that served
    /// bad bytes) only when no other is left. A node that fails is left out and its share
    /// offered to another, for a few rounds.
    pub(crate) async fn place(
        &self,
        shares: Vec<(u8, Share)>,
        holding: &[NodeId],
        avoid: &[NodeId],
    ) -> Placing {
        let mut taken: Vec<NodeId> = holding.to_vec();
        let mut failed: Vec<NodeId> = Vec::new();
        let mut pending = shares;
        let mut placing = Placing {
            placed: Vec::new(),
            unplaced: Vec::new(),
            refused: Vec::new(),
        };
        for _round in 0..ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let full = self.full.list();
            let mut exclude = [taken.as_slice(), failed.as_slice(), full.as_slice()].concat();
            let mut chosen = self.placement.choose(
                &self.candidates,
                pending.len(),
                &[exclude.as_slice(), avoid].concat(),
            );
            if chosen.len() < pending.len() {
                exclude.extend(&chosen);
                let more =
                    self.placement
                        .choose(&self.candidates, pending.len() - chosen.len(), &exclude);
                chosen.extend(more);
            }
            // A placement is a choice, not a promise: only distinct nodes of this job that
            // hold nothing of the chunk yet are used, whatever it returned.
            let mut valid: Vec<NodeId> = Vec::with_capacity(chosen.len());
            for node in chosen {
                if self.targets.contains_key(&node)
                    && !taken.contains(&node)
                    && !failed.contains(&node)
                    && !valid.contains(&node)
                    && !full.contains(&node)
                {
                    valid.push(node);
                }
            }
            if valid.is_empty() {
                break;
            }
            taken.extend(&valid);
            // Shares beyond the nodes chosen wait for the next round.
            let later = pending.split_off(valid.len().min(pending.len()));
            let mut set = JoinSet::new();
            let mut sending: HashMap<tokio::task::Id, (u8, Share)> = HashMap::new();
            for ((index, share), to) in pending.into_iter().zip(valid) {
                // Every node in `valid` has a target (checked above).
                let Some((target, slots)) = self.targets.get(&to).cloned() else {
                    continue;
                };
                let (vault, timeout) = (self.vault, self.timeout);
                let kept = share.clone();
                let task = set.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let result = target.put(vault, &share, timeout).await;
                    (index, share, to, target.name(), result)
                });
                sending.insert(task.id(), (index, kept));
            }
            pending = later;
            while let Some(joined) = set.join_next_with_id().await {
                let (index, share, to, name, result) = match joined {
                    Ok((_, done)) => done,
                    Err(e) => {
                        // A send task that crashed: its share is not placed, and is offered
                        // again (never counted as sent).
                        tracing::warn!("a share's send task failed: {e}");
                        if let Some(again) = sending.remove(&e.id()) {
                            pending.push(again);
                        }
                        continue;
                    }
                };
                match result {
                    Ok(()) => placing.placed.push(Placed {
                        index,
                        id: share.id(),
                        node: to,
                        len: share.encoded_len() as u64,
                    }),
                    Err(e) => {
                        tracing::warn!("share {index} ({}) to {name} failed: {e}", share.id());
                        if e.is_full() {
                            self.full.mark(to);
                            placing.refused.push(format!("{name} is full"));
                        } else {
                            placing.refused.push(format!("{name}: {e}"));
                        }
                        failed.push(to);
                        taken.retain(|n| *n != to);
                        pending.push((index, share));
                    }
                }
            }
        }
        placing.unplaced = pending.into_iter().map(|(index, _)| index).collect();
        placing.refused.dedup();
        placing
    }
}

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

impl Asking {
    /// How `node` asks for shares of `vault`: its request timeout and hedge delay.
    pub(crate) fn new(node: &Node, vault: [u8; 16]) -> Self {
        Self {
            vault,
            timeout: node.options().request_timeout,
            hedge_after: node.options().hedge_after,
        }
    }
}

/// What a fetch brought back.
pub(crate) struct Fetched {
    /// Verified shares, at most `k`.
    pub good: Vec<Share>,
    /// Shares whose holder served other bytes, or said its copy is corrupt.
    pub bad: HashSet<ShareId>,
    /// The holders of requests that failed in a way that may pass (a timeout, a dropped
    /// connection, an error of the holder's), as opposed to "not held" or bad bytes.
    pub passing: Vec<NodeId>,
}

/// Fetches `k` verified shares of `chunk` from `holders`, at most `k` requests at once plus
/// one per holder that is slower than `hedge_after`.
pub(crate) async fn fetch(chunk: &ChunkRef, holders: Vec<Holder>, asking: Asking) -> Fetched {
    fetch_some(chunk, holders, asking, usize::from(chunk.k)).await
}

/// [`fetch`] of `need` shares (fewer than `k` when the others are at hand already).
pub(crate) async fn fetch_some(
    chunk: &ChunkRef,
    mut holders: Vec<Holder>,
    asking: Asking,
    need: usize,
) -> Fetched {
    holders.sort_by_key(|h| (h.index >= chunk.k, h.rank));
    let mut fetched = Fetched {
        good: Vec::with_capacity(need),
        bad: HashSet::new(),
        passing: Vec::new(),
    };
    let mut queue: VecDeque<Holder> = holders.into();
    let mut set = JoinSet::new();
    let launch = |set: &mut JoinSet<_>, holder: Holder| {
        set.spawn(async move {
            let answer = holder
                .target
                .get(asking.vault, holder.id, asking.timeout)
                .await;
            (
                holder.id,
                (holder.target.node(), holder.target.name()),
                answer,
            )
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
        let Ok((id, (node, from), answer)) = joined else {
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
                } else {
                    fetched.passing.push(node);
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
