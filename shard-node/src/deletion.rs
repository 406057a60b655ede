//! Deleting shares on the peers that hold them: what `rm`, the trash, retention and
//! compaction all end with once the catalog has queued the deletions.

use std::collections::HashMap;
use std::sync::Arc;

use shard_proto::{NodeId, ShareId};

use crate::Result;
use crate::node::Node;
use crate::report::Removal;
use crate::session::Session;

/// What removing `name` takes: every visible version of it and, when one is a folder, every
/// visible version under it (read a page at a time); no such file when it has none.
pub(crate) fn versions_of(
    vault: &shard_store::VaultCatalog<'_>,
    name: &[u8],
) -> Result<Vec<shard_store::FileId>> {
    let versions = vault.versions(name)?;
    if versions.is_empty() {
        return Err(crate::Error::Store(shard_store::Error::NoSuchFile(
            String::from_utf8_lossy(name).into_owned(),
        )));
    }
    let mut ids: Vec<_> = versions.iter().map(|e| e.id).collect();
    if versions
        .iter()
        .any(|e| e.meta.kind == shard_store::FileKind::Dir)
    {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        vault.for_each_entry(|e| {
            if e.meta.name.starts_with(&prefix) {
                ids.push(e.id);
            }
            Ok(())
        })?;
    }
    Ok(ids)
}

/// Deletes file versions `ids` for good: the catalog forgets them and queues the deletions of
/// the shares no other version uses (one transaction), then the peers are told. The caller
/// holds the vault's writer lock. What `rm --now`, emptying the trash and removing an account
/// share; with `purge` the peers drop the shares at once.
pub(crate) async fn delete_versions(
    node: &Arc<Node>,
    session: &Arc<Session>,
    ids: &[shard_store::FileId],
    purge: bool,
) -> Result<Removal> {
    let freed = node
        .catalog()
        .vault(session.account, &session.keys)
        .delete_files(&session.vault(), ids)?;
    crate::crash_point!("rm:catalog-deleted");
    session
        .compaction_due
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (deleted, queued) = delete_on_peers(node, session, &freed, purge).await?;
    crate::crash_point!("rm:shares-deleted");
    Ok(Removal {
        removed: ids.len(),
        shares_deleted: deleted,
        shares_queued_for_offline_peers: queued,
        trashed: false,
        kept_until: None,
    })
}

/// Deletes `freed` shares (queued for deletion in the catalog already) on the peers that hold
/// them; the deletions of peers that cannot be reached stay queued and go out when they are
/// back. Returns (deleted, still queued). With `purge` the peers drop them at once rather than
/// after their grace period.
pub(crate) async fn delete_on_peers(
    node: &Arc<Node>,
    session: &Arc<Session>,
    freed: &[shard_store::ShareRecord],
    purge: bool,
) -> Result<(u64, u64)> {
    let vault_id = session.vault();
    let mut by_peer: HashMap<NodeId, Vec<ShareId>> = HashMap::new();
    for share in freed {
        by_peer.entry(share.peer).or_default().push(share.id);
    }
    let (mut deleted, mut queued) = (0u64, 0u64);
    let targets = node.targets();
    for (peer, shares) in by_peer {
        let done = match targets.iter().find(|t| t.node() == peer) {
            Some(target) => target
                .delete(
                    vault_id,
                    shares.clone(),
                    purge,
                    session.keys.authority(),
                    node.options().request_timeout,
                )
                .await
                .is_ok(),
            None => false,
        };
        if done {
            deleted += shares.len() as u64;
            let pairs: Vec<_> = shares.into_iter().map(|s| (vault_id, s)).collect();
            node.catalog().deletions_done(&peer, &pairs)?;
        } else {
            // Still queued: sent when the peer is back.
            queued += shares.len() as u64;
        }
    }
    Ok((deleted, queued))
}
