//! Deleting shares on the peers that hold them: what `rm`, the trash, retention and
//! compaction all end with once the catalog has queued the deletions.

use std::collections::HashMap;
use std::sync::Arc;

use shard_proto::{NodeId, ShareId};

use crate::Result;
use crate::node::Node;
use crate::session::Session;

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
