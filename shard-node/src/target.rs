//! Where a share can go: this node's own store or a connected peer, behind one interface.

use std::sync::Arc;
use std::time::Duration;

use shard_crypto::VaultAuthority;
use shard_proto::{Namespace, NodeId, Share, ShareId, VaultRef};

use crate::{Error, Result};
use shard_net::rpc::{PeerClient, ShareService};

/// A node that can hold shares.
#[derive(Clone)]
pub enum Target {
    /// This node's store (the owner's own node counts as one of the `n`).
    Local {
        /// This node's id (the namespace owner).
        id: NodeId,
        /// The store, through the service (so puts share its group commit).
        service: Arc<ShareService>,
    },
    /// A connected peer.
    Peer(Arc<PeerClient>),
}

impl Target {
    /// The node's id.
    pub fn node(&self) -> NodeId {
        match self {
            Target::Local { id, .. } => *id,
            Target::Peer(p) => p.peer().id,
        }
    }

    /// The node's name, for messages.
    pub fn name(&self) -> String {
        match self {
            Target::Local { .. } => "this node".into(),
            Target::Peer(p) => p.peer().hello.name.clone(),
        }
    }

    /// Stores a share; `Ok` means it is on the node's disk.
    pub async fn put(&self, vault: VaultRef, share: &Share, timeout: Duration) -> Result<()> {
        match self {
            Target::Local { id, service } => {
                let ns = Namespace { owner: *id, vault };
                service
                    .put_local(ns, share.clone())
                    .await
                    .map_err(Error::Store)
            }
            Target::Peer(p) => p
                .put_share(vault, share, timeout)
                .await
                .map_err(Error::from),
        }
    }

    /// Fetches a share, verified; `None` if the node does not have it.
    pub async fn get(
        &self,
        vault: VaultRef,
        id: ShareId,
        timeout: Duration,
    ) -> Result<Option<Share>> {
        match self {
            Target::Local { id: me, service } => {
                let (store, ns) = (service.store().clone(), Namespace { owner: *me, vault });
                tokio::task::spawn_blocking(move || store.get(&ns, &id))
                    .await
                    .map_err(|e| Error::task(&e))?
                    .map_err(Error::Store)
            }
            Target::Peer(p) => p.get_share(vault, id, timeout).await.map_err(Error::from),
        }
    }

    /// Bytes `range` of a share's payload, unverified (the caller authenticates what it
    /// assembles); `None` if the node does not have the share.
    pub async fn get_range(
        &self,
        vault: VaultRef,
        id: ShareId,
        range: std::ops::Range<u32>,
        timeout: Duration,
    ) -> Result<Option<bytes::Bytes>> {
        match self {
            Target::Local { id: me, service } => {
                let (store, ns) = (service.store().clone(), Namespace { owner: *me, vault });
                tokio::task::spawn_blocking(move || {
                    store.get_range(&ns, &id, range.start, range.end)
                })
                .await
                .map_err(|e| Error::task(&e))?
                .map_err(Error::Store)
            }
            Target::Peer(p) => p
                .get_share_range(vault, id, range, timeout)
                .await
                .map_err(Error::from),
        }
    }

    /// For each id, whether the node holds it (batches of at most
    /// [`shard_proto::MAX_IDS_PER_REQUEST`]).
    pub async fn have(
        &self,
        vault: VaultRef,
        ids: &[ShareId],
        timeout: Duration,
    ) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(shard_proto::MAX_IDS_PER_REQUEST) {
            let part = match self {
                Target::Local { id, service } => {
                    let (store, ns) = (service.store().clone(), Namespace { owner: *id, vault });
                    let batch = batch.to_vec();
                    tokio::task::spawn_blocking(move || store.has(&ns, &batch))
                        .await
                        .map_err(|e| Error::task(&e))?
                        .map_err(Error::Store)?
                }
                Target::Peer(p) => p.have(vault, batch.to_vec(), timeout).await?,
            };
            if part.len() != batch.len() {
                return Err(
                    shard_net::Error::UnexpectedResponse("have: wrong number of answers").into(),
                );
            }
            out.extend(part);
        }
        Ok(out)
    }

    /// The node's quarantined shares of `vault` (found corrupt).
    pub async fn quarantined(&self, vault: VaultRef, timeout: Duration) -> Result<Vec<ShareId>> {
        match self {
            Target::Local { id, service } => {
                let (store, ns) = (service.store().clone(), Namespace { owner: *id, vault });
                tokio::task::spawn_blocking(move || store.quarantined(&ns))
                    .await
                    .map_err(|e| Error::task(&e))?
                    .map_err(Error::Store)
            }
            Target::Peer(p) => p.quarantined(vault, timeout).await.map_err(Error::from),
        }
    }

    /// Brings back deleted shares the node still keeps; returns how many came back.
    pub async fn undelete(
        &self,
        vault: VaultRef,
        ids: Vec<ShareId>,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<u64> {
        match self {
            Target::Local { id, service } => {
                let (store, ns) = (service.store().clone(), Namespace { owner: *id, vault });
                tokio::task::spawn_blocking(move || store.undelete(&ns, &ids))
                    .await
                    .map_err(|_| Error::Internal("the store task crashed".into()))?
                    .map_err(Error::Store)
            }
            Target::Peer(p) => p
                .undelete(vault, ids, authority, timeout)
                .await
                .map_err(Error::from),
        }
    }

    /// Deletes shares: kept by the node through its grace period, or removed at once when
    /// `purge`. Returns how many it deleted. A peer requires the vault authority's signature;
    /// this node's own store is this node's own disk.
    pub async fn delete(
        &self,
        vault: VaultRef,
        ids: Vec<ShareId>,
        purge: bool,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<u64> {
        match self {
            Target::Local { id, service } => {
                let (store, ns) = (service.store().clone(), Namespace { owner: *id, vault });
                tokio::task::spawn_blocking(move || {
                    if purge {
                        store.purge(&ns, &ids)
                    } else {
                        store.delete(&ns, &ids)
                    }
                })
                .await
                .map_err(|_| Error::Internal("the store task crashed".into()))?
                .map_err(Error::Store)
            }
            Target::Peer(p) => p
                .delete(vault, ids, purge, authority, timeout)
                .await
                .map_err(Error::from),
        }
    }
}
