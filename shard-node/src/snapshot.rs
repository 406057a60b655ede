//! Catalog snapshots and heads: how a vault survives the loss of its owner's machine.
//!
//! After every change (a put, an rm), the node seals the vault's whole catalog
//! ([`shard_store::VaultSnapshot`], postcard) with the vault's catalog key, stores the sealed
//! bytes as shares exactly like a file, and leaves a *head* with every peer that holds any of
//! the vault's shares. A head is:
//! ```text
//! seq       the head's sequence number (peers keep only the newest from the vault's owner)
//! payload   sealed with the catalog key, AAD = "shard head v2" ‖ vault id ‖ seq:
//!           postcard (account name, snapshot manifest, holders: the node of each snapshot
//!           share, when it was written: seconds since the epoch, the node that wrote it)
//! ```
//! A peer keeps a head only when the vault authority signed the request for it (see
//! [`shard_net::rpc`]). With the recovery code, a new machine opens the newest head, takes the
//! vault over (signed too), fetches the snapshot and rebuilds the catalog (the `recover` module).
//! Old snapshot shares that the new snapshot does not reuse are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shard_crypto::{Label, VaultKeys, open, seal};
use shard_proto::{Manifest, NodeId, ShareId};
use shard_store::{
    ChunkEncoder, ChunkSizes, Chunker, KeyedFastCdc, Redundancy, ShareState, VaultState,
};

use crate::node::Node;
use crate::put::send_chunk;
use crate::session::Session;
use crate::swarm::Nodes;
use crate::{Error, Result};

const SNAPSHOT_AAD: &[u8] = b"shard snapshot v1";
/// v3: heads of data format 2 (BLAKE3 ids). A head sealed under v2 is of format 1.
const HEAD_AAD: &[u8] = b"shard head v3";
const HEAD_AAD_FORMAT_1: &[u8] = b"shard head v2";

/// What a head points at (sealed in the head).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeadPayload {
    /// The account's name on its owner's node.
    pub account: String,
    /// The sealed snapshot's chunks.
    pub snapshot: Manifest,
    /// For each chunk, the node holding each share (by index).
    pub holders: Vec<Vec<NodeId>>,
    /// When the head was written, seconds since the epoch.
    pub written_at: i64,
    /// The node that wrote it: the one whose namespace holds the vault's shares on the peers
    /// (a recovery's hand-over moves what this node stored).
    pub owner: NodeId,
}

fn with_vault(label: &[u8], vault: &[u8; 16], seq: Option<u64>) -> Vec<u8> {
    let mut aad = label.to_vec();
    aad.extend_from_slice(vault);
    if let Some(seq) = seq {
        aad.extend_from_slice(&seq.to_le_bytes());
    }
    aad
}

/// Seals a snapshot's bytes in place (`buf` holds the plaintext, then the sealed bytes).
pub(crate) fn seal_snapshot_in_place(keys: &VaultKeys, buf: &mut Vec<u8>) -> Result<()> {
    Ok(shard_crypto::seal_in_place(
        &keys.subkey(Label::Catalog),
        &with_vault(SNAPSHOT_AAD, &keys.vault_id().0, None),
        buf,
    )?)
}

/// Opens a snapshot's bytes.
pub(crate) fn open_snapshot(keys: &VaultKeys, sealed: &[u8]) -> Result<Vec<u8>> {
    Ok(open(
        &keys.subkey(Label::Catalog),
        &with_vault(SNAPSHOT_AAD, &keys.vault_id().0, None),
        sealed,
    )?)
}

/// Seals a head's payload for sequence number `seq`.
pub(crate) fn seal_head(keys: &VaultKeys, seq: u64, payload: &HeadPayload) -> Result<Vec<u8>> {
    let plain = postcard::to_stdvec(payload)
        .map_err(|_| Error::Internal("a head does not encode".into()))?;
    Ok(seal(
        &keys.subkey(Label::Catalog),
        &with_vault(HEAD_AAD, &keys.vault_id().0, Some(seq)),
        &plain,
    )?)
}

/// Opens a head sealed under `label` for sequence number `seq`: its plain bytes.
fn open_head_as(label: &[u8], keys: &VaultKeys, seq: u64, sealed: &[u8]) -> Result<Vec<u8>> {
    Ok(open(
        &keys.subkey(Label::Catalog),
        &with_vault(label, &keys.vault_id().0, Some(seq)),
        sealed,
    )?)
}

/// Opens a head; a forged or altered head, or one of another vault or sequence number, fails.
pub(crate) fn open_head(keys: &VaultKeys, seq: u64, sealed: &[u8]) -> Result<HeadPayload> {
    let plain = open_head_as(HEAD_AAD, keys, seq, sealed)?;
    postcard::from_bytes(&plain)
        .map_err(|_| Error::SnapshotUnreadable("a catalog head does not decode".into()))
}

/// Whether `sealed` is a head of this vault in data format 1 (an earlier, unreleased build's:
/// its snapshot's ids are SHA-256), which this build does not read.
pub(crate) fn is_format_1_head(keys: &VaultKeys, seq: u64, sealed: &[u8]) -> bool {
    open_head_as(HEAD_AAD_FORMAT_1, keys, seq, sealed).is_ok()
}

/// Share ids of a head's snapshot.
pub(crate) fn share_ids(payload: &HeadPayload) -> HashSet<ShareId> {
    payload
        .snapshot
        .chunks
        .iter()
        .flat_map(|c| c.shares.iter().copied())
        .collect()
}

/// Deletes the shares of the snapshot `state` points at, except `keep`; those on peers that
/// cannot be reached now are queued, like a removed file's.
pub(crate) async fn delete_snapshot(
    node: &Arc<Node>,
    session: &Session,
    state: &VaultState,
    keep: &HashSet<ShareId>,
) {
    let Some(old) = state
        .snapshot
        .as_deref()
        .and_then(|b| open_head(&session.keys, state.seq, b).ok())
    else {
        return;
    };
    delete_snapshot_shares(node, session, &old, keep).await;
}

/// Deletes the shares of the snapshot `old` names, except `keep`; those on peers that cannot
/// be reached now are queued.
pub(crate) async fn delete_snapshot_shares(
    node: &Arc<Node>,
    session: &Session,
    old: &HeadPayload,
    keep: &HashSet<ShareId>,
) {
    let mut by_node: HashMap<NodeId, Vec<ShareId>> = HashMap::new();
    for (chunk, nodes) in old.snapshot.chunks.iter().zip(&old.holders) {
        for (share, holder) in chunk.shares.iter().zip(nodes) {
            if !keep.contains(share) {
                by_node.entry(*holder).or_default().push(*share);
            }
        }
    }
    let targets = node.targets();
    let vault = node.catalog().vault(session.account, &session.keys);
    for (holder, shares) in by_node {
        let done = match targets.iter().find(|t| t.node() == holder) {
            Some(t) => t
                .delete(
                    session.vault(),
                    shares.clone(),
                    false,
                    session.keys.authority(),
                    node.options().request_timeout,
                )
                .await
                .is_ok(),
            None => false,
        };
        if !done {
            let pairs: Vec<_> = shares.into_iter().map(|s| (holder, s)).collect();
            if let Err(e) = vault.queue_deletions(&session.vault(), &pairs) {
                tracing::warn!("old catalog snapshot shares not queued for deletion: {e}");
            }
        }
    }
}

/// Stores the sealed snapshot as chunks `redundancy` over the nodes of `ctx`; returns the
/// chunks and, for each, the node holding each share.
async fn store_sealed(
    ctx: &Arc<Nodes>,
    keys: &Arc<VaultKeys>,
    chunker: &KeyedFastCdc,
    redundancy: Redundancy,
    sealed: &[u8],
) -> std::result::Result<(Vec<shard_proto::ChunkRef>, Vec<Vec<NodeId>>), String> {
    let mut encoder = ChunkEncoder::new(keys.clone(), redundancy).map_err(|e| e.to_string())?;
    let mut rest: &[u8] = sealed;
    let mut chunks = Vec::new();
    let mut holders = Vec::new();
    while !rest.is_empty() {
        let cut = chunker.cut(rest).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        let encoded = encoder.encode(piece).map_err(|e| e.to_string())?;
        chunks.push(encoded.chunk.clone());
        let n = usize::from(encoded.chunk.n);
        let (acks, _) = send_chunk(ctx.clone(), encoded, HashMap::new()).await?;
        let mut by_index = vec![NodeId([0; 32]); n];
        for ack in acks {
            if let Some(slot) = by_index.get_mut(usize::from(ack.index)) {
                *slot = ack.peer;
            }
        }
        holders.push(by_index);
    }
    Ok((chunks, holders))
}

/// Writes a new snapshot of the vault and its head; returns the head's sequence number.
pub async fn write_snapshot(node: &Arc<Node>, session: &Arc<Session>) -> Result<u64> {
    let _writer = session.writer.lock().await;
    write_snapshot_held(node, session).await
}

/// [`write_snapshot`] by a caller that holds the vault's writer lock already (prune writes
/// one between relocating files and deleting the packs they left).
pub(crate) async fn write_snapshot_held(node: &Arc<Node>, session: &Arc<Session>) -> Result<u64> {
    let keys = session.keys.clone();
    let vault_id = session.vault();
    let catalog = node.catalog().vault(session.account, &keys);
    let state = catalog.state()?;
    // Written straight from the catalog and sealed in place: with 10⁵ files the snapshot is
    // tens of MiB, held once (not also decoded, and not also as plaintext beside it).
    let mut sealed = catalog.export_bytes(&session.user)?;
    seal_snapshot_in_place(&keys, &mut sealed)?;
    // Every node holding an acknowledged share of the vault is told of the new head.
    let mut tell: HashSet<NodeId> = catalog
        .holders()?
        .into_iter()
        .filter(|(_, state, _)| *state == ShareState::Acked)
        .map(|(peer, _, _)| peer)
        .collect();

    // Stored like a file, over whoever is online now and has room: a node found full while
    // storing it is left out and the snapshot stored again over the others.
    let ctx = Arc::new(Nodes::gather(node, vault_id, &Default::default()));
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let mut attempt = 0;
    let (chunks, holders) = loop {
        attempt += 1;
        let room = ctx.online().saturating_sub(ctx.full().len()).max(1);
        let redundancy = Redundancy::for_peers(room).map_err(Error::Store)?;
        match store_sealed(&ctx, &keys, &chunker, redundancy, &sealed).await {
            Ok(stored) => break stored,
            Err(e) if attempt < 3 && !ctx.full().is_empty() => {
                tracing::info!("catalog snapshot stored again without the full nodes: {e}");
            }
            Err(e) => {
                return Err(Error::SnapshotNotStored(e));
            }
        }
    };
    let payload = HeadPayload {
        written_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        account: session.user.clone(),
        snapshot: Manifest {
            size: sealed.len() as u64,
            chunks,
        },
        holders,
        owner: node.node_id(),
    };
    crate::crash_point!("snapshot:stored");
    // Numbered after the newest head this node knows it wrote: the catalog's record, or this
    // node's own head store, which is ahead of it when a crash came between the two.
    let me = node.node_id();
    let kept_here = node
        .heads()
        .and_then(|h| h.get(&vault_id).ok().flatten())
        .filter(|h| h.owner == me && open_head(&keys, h.seq, &h.head).is_ok())
        .map_or(0, |h| h.seq);
    let mut seq = state.seq.max(kept_here) + 1;

    // Every peer holding any of the vault's shares gets the head, and this node keeps one too.
    tell.extend(payload.holders.iter().flatten().copied());
    tell.remove(&me);
    let peers: Vec<_> = node
        .online_peers()
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| tell.contains(&c.peer().id))
        .collect();
    let timeout = node.options().request_timeout;
    let mut told = 0;
    for round in 0..2 {
        let head = Bytes::from(seal_head(&keys, seq, &payload)?);
        let (mut ok, mut newer) = (0, 0u64);
        for client in &peers {
            match client
                .put_catalog_head(vault_id, seq, head.clone(), keys.authority(), timeout)
                .await
            {
                Ok(()) => ok += 1,
                Err(e) => {
                    tracing::warn!(
                        "{} did not keep the catalog head: {e}",
                        client.peer().hello.name
                    );
                    // A peer may hold a newer head of this vault written elsewhere (before a
                    // recovery here): only one that opens under the vault key counts.
                    if round == 0
                        && let Ok(heads) = client
                            .catalog_heads(vault_id, keys.authority(), timeout)
                            .await
                        && let Some(top) = heads
                            .iter()
                            .filter(|(s, b)| open_head(&keys, *s, b).is_ok())
                            .map(|(s, _)| *s)
                            .max()
                    {
                        newer = newer.max(top);
                    }
                }
            }
        }
        told = ok;
        if newer >= seq {
            seq = newer + 1;
            continue;
        }
        if let Some(heads) = node.heads() {
            heads.put(&me, &vault_id, seq, &head)?;
        }
        crate::crash_point!("snapshot:head-sent");
        catalog.set_state(&VaultState {
            seq,
            snapshot: Some(head.to_vec()),
        })?;
        break;
    }
    // The previous snapshot's shares that this one does not reuse are deleted — unless no peer
    // took the new head: the peers' heads still point at the previous snapshot, so it stays
    // (its shares are left behind rather than the only catalog a new machine could find).
    if told == 0 && !peers.is_empty() {
        tracing::warn!(
            "no peer kept catalog head {seq}; the previous catalog snapshot is kept for recovery"
        );
        return Err(Error::HeadNotKept {
            seq,
            peers: peers.len(),
        });
    }
    delete_snapshot(node, session, &state, &share_ids(&payload)).await;
    // Logged last: tests and operators read this line as "the old snapshot is gone too".
    tracing::info!(
        "catalog snapshot {seq} written ({} bytes sealed), head kept by {told} peers",
        sealed.len()
    );
    Ok(seq)
}

/// Snapshots after each change of a catalog.
impl Node {
    /// After a change to `session`'s catalog: writes a new snapshot and head in the background.
    /// A failure is remembered until a later snapshot succeeds (`check` reports it).
    pub fn catalog_changed(self: &Arc<Self>, session: &Arc<Session>) {
        let (node, session) = (self.clone(), session.clone());
        self.spawn_task(async move {
            if let Err(e) = node.write_snapshot(&session).await {
                tracing::warn!(
                    "catalog snapshot not written: {e}; it will be at the repair check or the next change"
                );
            }
        });
    }

    /// Writes `session`'s catalog snapshot and head now, remembering a failure until a later
    /// snapshot succeeds (`check` reports it); returns the head's sequence number.
    pub async fn write_snapshot(self: &Arc<Self>, session: &Arc<Session>) -> Result<u64> {
        let written = write_snapshot(self, session).await;
        self.record_snapshot(
            session.account,
            written.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        written
    }

    /// [`Node::write_snapshot`] while holding the vault's writer lock.
    pub(crate) async fn write_snapshot_held(
        self: &Arc<Self>,
        session: &Arc<Session>,
    ) -> Result<u64> {
        let written = write_snapshot_held(self, session).await;
        self.record_snapshot(
            session.account,
            written.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        written
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn payload() -> HeadPayload {
        HeadPayload {
            account: "alice".into(),
            snapshot: Manifest::default(),
            holders: Vec::new(),
            written_at: 1,
            owner: NodeId([1; 32]),
        }
    }

    #[test]
    fn a_head_of_data_format_1_is_told_apart_and_not_opened() {
        let keys = VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
        let plain = postcard::to_stdvec(&payload()).unwrap();
        let old = seal(
            &keys.subkey(Label::Catalog),
            &with_vault(HEAD_AAD_FORMAT_1, &keys.vault_id().0, Some(7)),
            &plain,
        )
        .unwrap();
        assert!(open_head(&keys, 7, &old).is_err());
        assert!(is_format_1_head(&keys, 7, &old));
        // Not at another sequence number, nor under another vault's key.
        assert!(!is_format_1_head(&keys, 8, &old));
        let other = VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
        assert!(!is_format_1_head(&other, 7, &old));
        // A head of this format opens, and is not taken for the old one.
        let new = seal_head(&keys, 7, &payload()).unwrap();
        assert_eq!(open_head(&keys, 7, &new).unwrap().account, "alice");
        assert!(!is_format_1_head(&keys, 7, &new));
    }
}
