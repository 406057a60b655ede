//! Catalog snapshots and heads: how a vault survives the loss of its owner's machine.
//!
//! After every change (a put, an rm), the node writes the vault's whole catalog as a stream of
//! records ([`shard_store::VaultCatalog::export_to`], snapshot version 5), seals it as it goes
//! with the vault's catalog key (AES-256-GCM in the STREAM construction,
//! [`shard_crypto::StreamSealer`], 64 KiB segments), stores the sealed bytes as shares exactly
//! like a file, a chunk at a time, and leaves a *head* with every peer that holds any of the
//! vault's shares. Neither the writer nor `recover` holds the snapshot whole: a vault of 10⁶
//! files has one of hundreds of MiB. A head is:
//! ```text
//! seq       the head's sequence number (peers keep only the newest from the vault's owner)
//! payload   sealed with the catalog key, AAD = "shard head v4" ‖ vault id ‖ seq:
//!           postcard (account name, snapshot manifest, holders: the node of each snapshot
//!           share, when it was written: seconds since the epoch, the node that wrote it)
//! ```
//! A head sealed under "shard head v3" (an earlier build of this data format) points at a
//! snapshot sealed whole, as one GCM message; it is still read.
//! A peer keeps a head only when the vault authority signed the request for it (see
//! [`shard_net::rpc`]). With the recovery code, a new machine opens the newest head, takes the
//! vault over (signed too), fetches the snapshot and rebuilds the catalog (the `recover` module).
//! Old snapshot shares that the new snapshot does not reuse are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shard_crypto::{Label, StreamOpener, StreamSealer, VaultKeys, open, seal};
use shard_proto::{Manifest, NodeId, ShareId};
use shard_store::{
    ChunkEncoder, ChunkSizes, Chunker, KeptHead, KeyedFastCdc, Redundancy, ShareState, VaultState,
};

use crate::node::Node;
use crate::session::Session;
use crate::swarm::Nodes;
use crate::{Error, Result};
use zeroize::Zeroizing;

/// The AAD of a snapshot sealed whole (under a head of [`HEAD_AAD_WHOLE`]).
const SNAPSHOT_AAD: &[u8] = b"shard snapshot v1";
/// The AAD of every segment of a snapshot sealed as a stream (under a head of [`HEAD_AAD`]).
const SNAPSHOT_STREAM_AAD: &[u8] = b"shard snapshot stream v1";
/// v4: heads whose snapshot is sealed as a stream. v3: heads of data format 2 (BLAKE3 ids)
/// whose snapshot is sealed whole. A head sealed under v2 is of format 1.
const HEAD_AAD: &[u8] = b"shard head v4";
const HEAD_AAD_WHOLE: &[u8] = b"shard head v3";
const HEAD_AAD_FORMAT_1: &[u8] = b"shard head v2";

/// Sealed snapshot bytes handed from the catalog's reader to the uploader at a time.
const SNAPSHOT_PIECE: usize = 1 << 20;

/// How a head's snapshot is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotSeal {
    /// As a stream of segments ([`StreamOpener`]).
    Stream,
    /// As one message (earlier builds).
    Whole,
}

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

/// Opens a snapshot as its head says it is sealed, given its sealed bytes in pieces.
pub(crate) enum SnapshotOpener {
    /// A stream: opened a segment at a time.
    Stream(Box<StreamOpener>),
    /// Sealed whole: gathered, and opened at the end.
    Whole(Zeroizing<Vec<u8>>),
}

impl SnapshotOpener {
    pub(crate) fn new(keys: &VaultKeys, seal: SnapshotSeal) -> Self {
        match seal {
            SnapshotSeal::Stream => Self::Stream(Box::new(StreamOpener::new(
                &keys.subkey(Label::Catalog),
                &with_vault(SNAPSHOT_STREAM_AAD, &keys.vault_id().0, None),
            ))),
            SnapshotSeal::Whole => Self::Whole(Zeroizing::new(Vec::new())),
        }
    }

    /// Takes more sealed bytes: the plaintext now known to be authentic.
    pub(crate) fn push(&mut self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Self::Stream(opener) => Ok(opener.push(sealed)?),
            Self::Whole(all) => {
                all.extend_from_slice(sealed);
                Ok(Zeroizing::new(Vec::new()))
            }
        }
    }

    /// The end: the rest of the plaintext.
    pub(crate) fn finish(self, keys: &VaultKeys) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Self::Stream(opener) => Ok(opener.finish()?),
            Self::Whole(all) => Ok(Zeroizing::new(open(
                &keys.subkey(Label::Catalog),
                &with_vault(SNAPSHOT_AAD, &keys.vault_id().0, None),
                &all,
            )?)),
        }
    }
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
    open_head_sealing(keys, seq, sealed).map(|(payload, _)| payload)
}

/// [`open_head`], and how the head's snapshot is sealed.
pub(crate) fn open_head_sealing(
    keys: &VaultKeys,
    seq: u64,
    sealed: &[u8],
) -> Result<(HeadPayload, SnapshotSeal)> {
    let (plain, seal) = match open_head_as(HEAD_AAD, keys, seq, sealed) {
        Ok(plain) => (plain, SnapshotSeal::Stream),
        Err(e) => match open_head_as(HEAD_AAD_WHOLE, keys, seq, sealed) {
            Ok(plain) => (plain, SnapshotSeal::Whole),
            Err(_) => return Err(e),
        },
    };
    let payload = postcard::from_bytes(&plain)
        .map_err(|_| Error::SnapshotUnreadable("a catalog head does not decode".into()))?;
    Ok((payload, seal))
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

/// Stores a sealed snapshot given in pieces as chunks, `redundancy` over the nodes of `ctx`:
/// a chunk is cut and sent as soon as a longest chunk's worth has come, so it holds one chunk
/// and a piece.
struct SnapshotUpload<'c> {
    ctx: &'c Arc<Nodes>,
    chunker: &'c KeyedFastCdc,
    encoder: ChunkEncoder,
    pending: Vec<u8>,
    size: u64,
    chunks: Vec<shard_proto::ChunkRef>,
    holders: Vec<Vec<NodeId>>,
}

impl<'c> SnapshotUpload<'c> {
    fn new(
        ctx: &'c Arc<Nodes>,
        keys: &Arc<VaultKeys>,
        chunker: &'c KeyedFastCdc,
        redundancy: Redundancy,
    ) -> std::result::Result<Self, crate::error::UploadFailed> {
        Ok(Self {
            ctx,
            chunker,
            encoder: ChunkEncoder::new(keys.clone(), redundancy)?,
            pending: Vec::new(),
            size: 0,
            chunks: Vec::new(),
            holders: Vec::new(),
        })
    }

    async fn push(&mut self, sealed: &[u8]) -> std::result::Result<(), crate::error::UploadFailed> {
        self.size += sealed.len() as u64;
        self.pending.extend_from_slice(sealed);
        while self.pending.len() >= self.chunker.max_size() {
            self.send_one().await?;
        }
        Ok(())
    }

    /// Cuts the next chunk off the front of what is pending and stores it.
    async fn send_one(&mut self) -> std::result::Result<(), crate::error::UploadFailed> {
        let cut = self.chunker.cut(&self.pending).clamp(1, self.pending.len());
        let encoded = self
            .encoder
            .encode(self.pending.get(..cut).unwrap_or_default())?;
        self.pending.drain(..cut);
        self.chunks.push(encoded.chunk.clone());
        let n = usize::from(encoded.chunk.n);
        let (acks, _) = crate::swarm::send_chunk(self.ctx.clone(), encoded, HashMap::new()).await?;
        let mut by_index = vec![NodeId([0; 32]); n];
        for ack in acks {
            if let Some(slot) = by_index.get_mut(usize::from(ack.index)) {
                *slot = ack.peer;
            }
        }
        self.holders.push(by_index);
        Ok(())
    }

    /// Stores what is left: the snapshot's manifest and, for each chunk, the node holding each
    /// share.
    async fn finish(
        &mut self,
    ) -> std::result::Result<(Manifest, Vec<Vec<NodeId>>), crate::error::UploadFailed> {
        while !self.pending.is_empty() {
            self.send_one().await?;
        }
        Ok((
            Manifest {
                size: self.size,
                chunks: std::mem::take(&mut self.chunks),
            },
            std::mem::take(&mut self.holders),
        ))
    }

    /// After a failure: deletes the chunks stored so far (no head will ever name them), or
    /// queues their deletion on the peers that cannot be reached now.
    async fn discard(self, node: &Arc<Node>, session: &Session) {
        if self.chunks.is_empty() {
            return;
        }
        let stored = HeadPayload {
            account: String::new(),
            snapshot: Manifest {
                size: self.size,
                chunks: self.chunks,
            },
            holders: self.holders,
            written_at: 0,
            owner: node.node_id(),
        };
        delete_snapshot_shares(node, session, &stored, &HashSet::new()).await;
    }
}

/// Writes the vault's catalog snapshot, sealed as a stream, into `upload`: the catalog is read
/// on a blocking thread and its sealed bytes come over in pieces. Returns the files written.
async fn export_sealed(
    node: &Arc<Node>,
    session: &Session,
    upload: &mut SnapshotUpload<'_>,
) -> Result<std::result::Result<usize, crate::error::UploadFailed>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let catalog = node.catalog().clone();
    let (account, user, keys) = (session.account, session.user.clone(), session.keys.clone());
    let export = tokio::task::spawn_blocking(move || -> Result<usize> {
        let vault = catalog.vault(account, &keys);
        let mut sealer = StreamSealer::new(
            &keys.subkey(Label::Catalog),
            &with_vault(SNAPSHOT_STREAM_AAD, &keys.vault_id().0, None),
        )?;
        let files = vault.export_to(&user, &mut |plain| {
            // A piece at a time: a record of tens of MB (a backup snapshot's names) is not
            // sealed whole into memory before it leaves.
            for part in plain.chunks(SNAPSHOT_PIECE) {
                sealer.write_all(part).map_err(shard_store::Error::from)?;
                if sealer.sealed_len() >= SNAPSHOT_PIECE {
                    // The uploader gone (it failed): the export stops.
                    tx.blocking_send(sealer.take_sealed())
                        .map_err(|_| shard_store::Error::Stopped)?;
                }
            }
            Ok(())
        });
        let files = match files {
            Err(shard_store::Error::Stopped) => return Ok(0),
            other => other?,
        };
        // A closed channel here means the uploader failed; it says why.
        let _ = tx.blocking_send(sealer.finish()?);
        Ok(files)
    });
    let mut uploaded = Ok(());
    while let Some(piece) = rx.recv().await {
        if let Err(e) = upload.push(&piece).await {
            uploaded = Err(e);
            break;
        }
    }
    // Dropping the receiver stops an export still writing.
    drop(rx);
    let files = export
        .await
        .map_err(|_| Error::Internal("the catalog snapshot's export crashed".into()))??;
    Ok(uploaded.map(|()| files))
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
    // Every node holding an acknowledged share of the vault is told of the new head.
    let mut tell = acked_holders(&catalog)?;

    // Stored like a file, over whoever is online now and has room: a node found full while
    // storing it is left out and the snapshot written and stored again over the others.
    let ctx = Arc::new(Nodes::gather(node, vault_id, &Default::default()));
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let mut attempt = 0;
    let (snapshot, holders) = loop {
        attempt += 1;
        let room = ctx.online().saturating_sub(ctx.full().len()).max(1);
        let redundancy = Redundancy::for_peers(room).map_err(Error::Store)?;
        let stored = match SnapshotUpload::new(&ctx, &keys, &chunker, redundancy) {
            Ok(mut upload) => {
                let stored = match export_sealed(node, session, &mut upload).await {
                    Ok(Ok(_)) => upload.finish().await,
                    Ok(Err(e)) => Err(e),
                    Err(e) => {
                        upload.discard(node, session).await;
                        return Err(e);
                    }
                };
                if stored.is_err() {
                    upload.discard(node, session).await;
                }
                stored
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => break stored,
            Err(e) if attempt < 3 && !ctx.full().is_empty() => {
                tracing::info!("catalog snapshot stored again without the full nodes: {e}");
            }
            Err(e) => {
                return Err(Error::SnapshotNotStored(e));
            }
        }
    };
    let sealed_len = snapshot.size;
    let payload = HeadPayload {
        written_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        account: session.user.clone(),
        snapshot,
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
    // A paired holder that does not get the new head (it is away) keeps pointing at the head
    // it last took, and a new machine may find only that one: its snapshot stays.
    let holders: Vec<NodeId> = tell
        .iter()
        .filter(|id| node.paired_name(id).is_some())
        .copied()
        .collect();
    // Kept (in the catalog, so across a restart) before the catalog moves on to the new one;
    // released below unless a holder away needs it.
    if let Some(previous) = &state.snapshot {
        catalog.keep_head(state.seq, previous, catalog.told()?.as_deref())?;
    }
    let peers: Vec<_> = node
        .online_peers()
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| tell.contains(&c.peer().id))
        .collect();
    let timeout = node.options().request_timeout;
    let mut told: HashSet<NodeId> = HashSet::new();
    // Holders that answered with a refusal (full, or a liar keeping junk): what they took
    // before is kept like an absent peer's (a full peer still points at it), but they are
    // only logged, not waited for.
    let mut refused: HashSet<NodeId> = HashSet::new();
    for round in 0..2 {
        let head = Bytes::from(seal_head(&keys, seq, &payload)?);
        let (mut ok, mut newer) = (HashSet::new(), 0u64);
        refused.clear();
        for client in &peers {
            match client
                .put_catalog_head(vault_id, seq, head.clone(), keys.authority(), timeout)
                .await
            {
                Ok(()) => {
                    ok.insert(client.peer().id);
                }
                Err(e) => {
                    if matches!(e, shard_net::Error::Remote { .. }) {
                        refused.insert(client.peer().id);
                    }
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
        catalog.set_told(&told.iter().copied().collect::<Vec<_>>())?;
        break;
    }
    // The earlier snapshots' shares that this one does not reuse are deleted — except, for
    // each paired peer that did not take the new head (away, silent, or refusing it), the
    // newest earlier snapshot it took: its head still points there, and a new machine may find
    // only that one. A head whose takers are not known (an earlier build's, a recovered one)
    // may be anyone's. So at most one earlier snapshot per such peer is kept, not one per
    // change.
    let unreached: Vec<NodeId> = node
        .paired_ids()
        .into_iter()
        .filter(|id| *id != me && !told.contains(id))
        .collect();
    let kept: Vec<KeptHead> = catalog
        .kept_heads()?
        .into_iter()
        .filter(|k| k.seq < seq)
        .collect();
    let mut needed: HashSet<u64> = HashSet::new();
    let mut waiting: HashSet<NodeId> = HashSet::new();
    for peer in &unreached {
        if let Some(k) = kept
            .iter()
            .rev()
            .find(|k| k.told.as_ref().is_none_or(|t| t.contains(peer)))
        {
            needed.insert(k.seq);
            // Named when it took that one for certain, or holds the vault's shares.
            if k.told.is_some() || holders.contains(peer) {
                waiting.insert(*peer);
            }
        } else if holders.contains(peer) {
            waiting.insert(*peer);
        }
    }
    let mut keep = share_ids(&payload);
    let (mut stay, mut go) = (Vec::new(), Vec::new());
    for k in kept {
        match open_head(&keys, k.seq, &k.head) {
            Ok(old) if needed.contains(&k.seq) => {
                keep.extend(share_ids(&old));
                stay.push(k.seq);
            }
            Ok(old) => go.push((k.seq, Some(old))),
            Err(e) => {
                tracing::warn!("kept catalog head {} does not open: {e}", k.seq);
                go.push((k.seq, None));
            }
        }
    }
    for (old_seq, old) in go {
        if let Some(old) = old {
            delete_snapshot_shares(node, session, &old, &keep).await;
        }
        catalog.release_kept_head(old_seq)?;
    }
    if told.is_empty() && !peers.is_empty() {
        tracing::warn!(
            "no peer kept catalog head {seq}; the catalog snapshots they point at ({stay:?}) are kept for recovery"
        );
        return Err(Error::HeadNotKept {
            seq,
            peers: peers.len(),
        });
    }
    // A peer that refused the head (full, or lying) is logged above; one away is waited for.
    let away: Vec<NodeId> = waiting
        .into_iter()
        .filter(|id| !refused.contains(id))
        .collect();
    if !away.is_empty() {
        let mut missing: Vec<String> = away.iter().filter_map(|id| node.paired_name(id)).collect();
        missing.sort();
        tracing::warn!(
            "catalog head {seq} not on {} (away); the catalog snapshots they point at ({stay:?}) are kept for recovery",
            missing.join(", ")
        );
        return Err(Error::HeadNotOnEveryHolder { seq, missing });
    }
    // Logged last: tests and operators read this line as "the old snapshot is gone too".
    tracing::info!(
        "catalog snapshot {seq} written ({sealed_len} bytes sealed), head kept by {} peers",
        told.len()
    );
    Ok(seq)
}

/// The nodes holding an acknowledged share of the vault: those a new head is for.
fn acked_holders(catalog: &shard_store::VaultCatalog<'_>) -> Result<HashSet<NodeId>> {
    Ok(catalog
        .holders()?
        .into_iter()
        .filter(|(_, state, _)| *state == ShareState::Acked)
        .map(|(peer, _, _)| peer)
        .collect())
}

/// Whether `session`'s vault owes its holders a catalog snapshot: one was kept back because a
/// holder had not got the newer head, or a node holding the current snapshot's shares is
/// lost (`lost`) or no longer paired.
pub(crate) fn snapshot_owed(
    node: &Node,
    session: &Session,
    lost: &HashSet<NodeId>,
) -> Result<bool> {
    let catalog = node.catalog().vault(session.account, &session.keys);
    let state = catalog.state()?;
    // Kept for a peer away: owed once a peer that took a kept head, or holds the vault's
    // shares, and has not got the newest head is back.
    let kept = catalog.kept_heads()?;
    if !kept.is_empty() {
        let told = catalog.told()?.unwrap_or_default();
        let holders = acked_holders(&catalog)?;
        let me = node.node_id();
        if node.online_peers().iter().any(|(c, _)| {
            let id = c.peer().id;
            id != me
                && !told.contains(&id)
                && (holders.contains(&id)
                    || kept
                        .iter()
                        .any(|k| k.told.as_ref().is_some_and(|t| t.contains(&id))))
        }) {
            return Ok(true);
        }
    }
    let Some(current) = state
        .snapshot
        .as_deref()
        .and_then(|b| open_head(&session.keys, state.seq, b).ok())
    else {
        return Ok(false);
    };
    let me = node.node_id();
    Ok(current
        .holders
        .iter()
        .flatten()
        .any(|h| *h != me && (lost.contains(h) || node.paired_name(h).is_none())))
}

/// Snapshots after each change of a catalog.
impl Node {
    /// Writes `session`'s catalog snapshot again when it is owed: the last one failed, a holder
    /// that was away when it was written is back, or a node holding its shares is lost
    /// (`lost`) or unpaired. `None` when nothing is owed. The node's repair check runs it.
    pub async fn settle_snapshot(
        self: &Arc<Self>,
        session: &Arc<Session>,
        lost: &HashSet<NodeId>,
    ) -> Option<Result<u64>> {
        let owed = snapshot_owed(self, session, lost).unwrap_or_else(|e| {
            tracing::warn!("could not tell whether a catalog snapshot is owed: {e}");
            false
        });
        // A failure is tried again at each check — unless earlier snapshots are kept for
        // peers away: then only their return (`owed`) helps, and writing the whole snapshot
        // every few minutes while they are gone would not.
        let waiting_for_peers = self
            .catalog()
            .vault(session.account, &session.keys)
            .kept_heads()
            .is_ok_and(|k| !k.is_empty());
        if !owed && (self.snapshot_failure(session.account).is_none() || waiting_for_peers) {
            return None;
        }
        Some(self.write_snapshot(session).await)
    }

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

    /// A head of this build says its snapshot is a sealed stream; one of the build before (a
    /// snapshot sealed whole) still opens, and says so; each snapshot opens only as its head
    /// says, given in pieces of any size.
    #[test]
    fn heads_say_how_their_snapshot_is_sealed_and_both_open() {
        let keys = VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
        let plain = postcard::to_stdvec(&payload()).unwrap();
        let whole_head = seal(
            &keys.subkey(Label::Catalog),
            &with_vault(HEAD_AAD_WHOLE, &keys.vault_id().0, Some(3)),
            &plain,
        )
        .unwrap();
        let (_, how) = open_head_sealing(&keys, 3, &whole_head).unwrap();
        assert_eq!(how, SnapshotSeal::Whole);
        let (_, how) =
            open_head_sealing(&keys, 3, &seal_head(&keys, 3, &payload()).unwrap()).unwrap();
        assert_eq!(how, SnapshotSeal::Stream);

        let snapshot: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let whole = seal(
            &keys.subkey(Label::Catalog),
            &with_vault(SNAPSHOT_AAD, &keys.vault_id().0, None),
            &snapshot,
        )
        .unwrap();
        let mut sealer = StreamSealer::new(
            &keys.subkey(Label::Catalog),
            &with_vault(SNAPSHOT_STREAM_AAD, &keys.vault_id().0, None),
        )
        .unwrap();
        sealer.write_all(&snapshot).unwrap();
        let mut stream = sealer.take_sealed();
        stream.extend(sealer.finish().unwrap());
        let read = |how: SnapshotSeal, sealed: &[u8]| -> Result<Vec<u8>> {
            let mut opener = SnapshotOpener::new(&keys, how);
            let mut out = Vec::new();
            for piece in sealed.chunks(50_000) {
                out.extend_from_slice(&opener.push(piece)?);
            }
            out.extend_from_slice(&opener.finish(&keys)?);
            Ok(out)
        };
        assert_eq!(read(SnapshotSeal::Whole, &whole).unwrap(), snapshot);
        assert_eq!(read(SnapshotSeal::Stream, &stream).unwrap(), snapshot);
        assert!(read(SnapshotSeal::Stream, &whole).is_err());
        assert!(read(SnapshotSeal::Whole, &stream).is_err());
        // Another vault's key opens neither.
        let other = VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
        let mut opener = SnapshotOpener::new(&other, SnapshotSeal::Stream);
        let opened = opener.push(&stream).and_then(|_| opener.finish(&other));
        assert!(opened.is_err());
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
