//! `shard recover`: a vault back on a new machine, from its recovery code and the old peers.
//!
//! 1. The recovery code gives the vault key, hence the vault id and every derived key.
//! 2. Every connected peer is asked for the vault's catalog heads (the current one and those
//!    it replaced within its grace period); the newest that opens under the vault key wins, or
//!    the one asked for by sequence number (`--head N`: the catalog as it was before, say,
//!    everything was removed by whoever held the unlocked vault).
//! 3. The vault is taken over on each peer: a hand-over signed by the vault authority (derived
//!    from the vault key; each peer checks it against the vault id, for itself and a fresh
//!    challenge of its own, so nothing a peer sees is worth anything at another). Peers move the
//!    vault's shares to this node's namespace and from then on accept heads only from here. The
//!    old node, if it comes back, can no longer reach them. This node's own store hands over
//!    too (it may have kept shares for the old node). Peers that hold shares of the vault but
//!    are offline now are remembered and hand the vault over when they connect.
//! 4. The snapshot's shares are fetched and decoded, the snapshot opened, and the catalog
//!    rebuilt under an account of the snapshot's name, with a new passphrase. Shares the
//!    catalog lists that peers keep as deleted (within their grace period) are brought back.
//! 5. A fresh snapshot and head are written by the new owner, numbered after every head seen.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use shard_crypto::{KdfParams, KeyRecord, VaultKeys, decode_recovery_code};
use shard_proto::{NodeId, ShareId};
use shard_store::{AccountId, ChunkDecoder, SnapshotItem, SnapshotReader, VaultState};
use zeroize::Zeroizing;

use crate::node::Node;
use crate::report::{HeadSeen, Recovery};
use crate::snapshot::{HeadPayload, SnapshotOpener, SnapshotSeal, open_head, open_head_sealing};
use crate::swarm::{Asking, Holder};
use crate::target::Target;
use crate::{Error, Result};

/// Recovers the vault of `code` under the account name `user` (default: its old name);
/// `passphrase` protects the rebuilt account. `head`: the catalog head to recover from
/// (default: the newest).
pub async fn recover(
    node: &Arc<Node>,
    code: &str,
    user: Option<&str>,
    passphrase: Zeroizing<Vec<u8>>,
    head: Option<u64>,
) -> Result<Recovery> {
    let _one_at_a_time = RECOVERING.lock().await;
    let key = decode_recovery_code(code)?;
    let keys = Arc::new(VaultKeys::derive(&key));
    let vault = keys.vault_id().0;
    let timeout = node.options().request_timeout;
    let peers = node.online_peers();
    if peers.is_empty() {
        return Err(Error::NoPeersConnected);
    }

    // 2. Every head that opens under the vault key (what peers keep, and this node, which may
    // have been one of them); the one asked for, or the newest. A head that does not open is
    // no one's word for anything, its sequence number included.
    let mut found: Vec<(u64, HeadPayload, SnapshotSeal)> = Vec::new();
    let mut format_1 = 0usize;
    let mut consider = |seq: u64, bytes: &[u8]| match open_head_sealing(&keys, seq, bytes) {
        Ok((payload, seal)) if !found.iter().any(|(s, _, _)| *s == seq) => {
            found.push((seq, payload, seal));
        }
        Ok(_) => {}
        Err(_) if crate::snapshot::is_format_1_head(&keys, seq, bytes) => format_1 += 1,
        Err(_) => {}
    };
    if let Some(heads) = node.heads() {
        for (seq, bytes) in heads.list(&vault, None, 1024)? {
            consider(seq, &bytes);
        }
    }
    for (client, _) in &peers {
        match client.catalog_heads(vault, keys.authority(), timeout).await {
            Ok(heads) => {
                for (seq, bytes) in heads {
                    consider(seq, &bytes);
                }
            }
            Err(e) => tracing::warn!(
                "{} did not answer for the catalog heads: {e}",
                client.peer().hello.name
            ),
        }
    }
    let newest_seen = found.iter().map(|(seq, _, _)| *seq).max().unwrap_or(0);
    // The nodes that held the vault: what they stored moves here.
    let mut former: Vec<NodeId> = found.iter().map(|(_, p, _)| p.owner).collect();
    former.sort();
    former.dedup();
    former.truncate(shard_proto::MAX_ADOPT_FROM);
    found.sort_by_key(|(seq, _, _)| std::cmp::Reverse(*seq));
    let available: Vec<HeadSeen> = found
        .iter()
        .map(|(seq, p, _)| HeadSeen {
            head: *seq,
            written_at: p.written_at,
        })
        .collect();
    let chosen = match head {
        Some(wanted) => found
            .iter()
            .position(|(seq, _, _)| *seq == wanted)
            .ok_or_else(|| Error::NoSuchHead {
                wanted,
                kept: if found.is_empty() {
                    "none".to_string()
                } else {
                    found
                        .iter()
                        .map(|(s, _, _)| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?,
        // Only heads of the earlier format: refused before anything is handed over.
        None if found.is_empty() && format_1 > 0 => {
            return Err(Error::CatalogOfFormat1 { heads: format_1 });
        }
        None if found.is_empty() => {
            return Err(Error::NoCatalogFound { peers: peers.len() });
        }
        None => 0,
    };
    let (seq, payload, seal) = found.swap_remove(chosen);

    let account_name = user.unwrap_or(&payload.account).to_string();
    let new_passphrase = std::str::from_utf8(&passphrase)
        .map_err(|_| Error::WeakPassphrase("the passphrase is not valid UTF-8".into()))?;
    crate::accounts::check_new_passphrase(&account_name, new_passphrase)?;
    // Refused before anything changes: an account of that name that holds another vault.
    // (One of this vault is what an interrupted recovery left: it is made again below.)
    if node
        .catalog()
        .account(&account_name)?
        .is_some_and(|a| a.key_record.vault_id() != keys.vault_id())
    {
        return Err(Error::Store(shard_store::Error::AccountExists(
            account_name,
        )));
    }

    // 3. Take the vault over on every peer that is here, and in this node's own store.
    let mut moved = node.service().adopt_here(vault, former.clone()).await?;
    let mut adopted_on = 0usize;
    let mut handed_over = HashSet::new();
    for (client, _) in &peers {
        match client
            .adopt(vault, former.clone(), keys.authority(), timeout)
            .await
        {
            Ok(n) => {
                moved += n;
                adopted_on += 1;
                handed_over.insert(client.peer().id);
            }
            Err(e) => tracing::info!(
                "{} did not hand the vault over: {e}",
                client.peer().hello.name
            ),
        }
    }

    crate::crash_point!("recover:adopted");

    // 4. The snapshot, from the shares the head lists (kept as deleted or not), fetched a chunk
    // at a time into a spool file beside the catalog and read through once as it comes: it is
    // known authentic, complete and well formed before anything here changes, and neither the
    // snapshot nor the vault is held in memory.
    let spool = Spool(node.home().root().join(SPOOL));
    fetch_snapshot(node, &keys, &payload, seal, &spool.0).await?;

    let record = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || KeyRecord::wrap(&key, &passphrase, KdfParams::DEFAULT))
            .await
            .map_err(|_| Error::Internal("the key wrap crashed".into()))??
    };
    // A recovery of this same vault that a crash interrupted (or that is run again) left its
    // account behind: it is made again from the head rather than refused. An account of that
    // name with another vault is left alone (create_account refuses it).
    if let Some(existing) = node.catalog().account(&account_name)?
        && existing.key_record.vault_id() == keys.vault_id()
    {
        node.logout(Some(&account_name));
        node.catalog().delete_account(existing.id)?;
    }
    let account = node.catalog().create_account(&account_name, &record)?;
    // Read again from the spool, into the account, a batch of files at a time, off the async
    // threads. What fails now (writing the catalog: a full disk) takes the new account with
    // it; a rerun rebuilds it from the peers.
    let imported = {
        let (node, keys, path) = (node.clone(), keys.clone(), spool.0.clone());
        tokio::task::spawn_blocking(move || import_spool(&node, &keys, account, seal, &path))
            .await
            .map_err(|e| Error::task(&e))
            .and_then(|imported| imported)
    };
    drop(spool);
    let (files, by_holder) = match imported {
        Ok(imported) => imported,
        Err(e) => {
            if let Err(gone) = node.catalog().delete_account(account) {
                tracing::warn!("the account of a failed recovery was not removed: {gone}");
            }
            return Err(e);
        }
    };
    let catalog = node.catalog().vault(account, &keys);
    // The next head must be newer than every head the peers keep (an older catalog may have
    // been chosen).
    catalog.set_state(&VaultState {
        seq: newest_seen.max(seq),
        snapshot: None,
    })?;
    // Peers holding shares of the vault that did not hand it over now (offline): when they
    // connect.
    let me = node.node_id();
    let mut owed: Vec<NodeId> = by_holder
        .keys()
        .copied()
        .chain(payload.holders.iter().flatten().copied())
        .filter(|p| *p != me && !handed_over.contains(p))
        .collect();
    owed.sort();
    owed.dedup();
    node.catalog().add_adoptions(account, &owed, &former)?;
    crate::crash_point!("recover:imported");

    // Shares the catalog lists that their holders keep as deleted come back.
    let targets: Vec<Target> = node.targets();
    let mut undeleted = 0u64;
    for (holder, ids) in by_holder {
        let Some(target) = targets.iter().find(|t| t.node() == holder) else {
            continue;
        };
        for batch in ids.chunks(shard_proto::MAX_IDS_PER_REQUEST) {
            match target
                .undelete(vault, batch.to_vec(), keys.authority(), timeout)
                .await
            {
                Ok(n) => undeleted += n,
                Err(e) => tracing::warn!("{} did not bring shares back: {e}", target.name()),
            }
        }
    }
    let session = node.unlock(&account_name, account, keys.clone());

    // 5. A snapshot and head from the new owner; the recovered snapshot's shares go (those
    // it does not share with the new one).
    let everywhere = match crate::snapshot::write_snapshot(node, &session).await {
        Ok(_) => true,
        // Some old holder is away: its head still points at the recovered snapshot, which is
        // kept (deleted once a later head reaches every holder; the repair check writes one
        // when the holder is back).
        Err(e @ Error::HeadNotOnEveryHolder { .. }) => {
            tracing::warn!("{e}");
            let sealed = crate::snapshot::seal_head(&keys, seq, &payload)?;
            node.catalog()
                .vault(account, &keys)
                .keep_head(seq, &sealed, None)?;
            node.record_snapshot(account, Err(e.to_string()));
            false
        }
        Err(e) => return Err(e),
    };
    let state = node.catalog().vault(account, &keys).state()?;
    if everywhere
        && let Some(new) = state
            .snapshot
            .as_deref()
            .and_then(|b| open_head(&keys, state.seq, b).ok())
    {
        let keep = crate::snapshot::share_ids(&new);
        crate::snapshot::delete_snapshot_shares(node, &session, &payload, &keep).await;
    }
    Ok(Recovery {
        account: account_name,
        files,
        catalog_head: seq,
        catalog_written_at: payload.written_at,
        heads_available: available,
        peers_handed_over: adopted_on,
        shares_moved: moved,
        shares_brought_back: undeleted,
        // Offline now: they hand the vault over when they connect (while it is unlocked).
        peers_owing_hand_over: owed.len(),
    })
}

/// The spool file of a recovery's snapshot, in the node's home (sealed bytes only: nothing in
/// it opens without the vault key).
const SPOOL: &str = "recover.spool";

/// Sealed snapshot bytes read from the spool at a time.
const SPOOL_PIECE: usize = 1 << 20;

/// One recovery at a time in this process: two would share the spool and the account.
static RECOVERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The spool file, removed when the recovery is done with it however it ends (an error, a
/// client that went away and dropped the recovery); one left by a crash is written over by
/// the next recovery.
struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("the recovery's spool file was not removed: {e}");
        }
    }
}

/// A snapshot's sealed bytes, opened as its head says and read record by record.
struct SnapshotRead {
    opener: SnapshotOpener,
    reader: SnapshotReader,
}

impl SnapshotRead {
    fn new(keys: &VaultKeys, seal: SnapshotSeal) -> Self {
        Self {
            opener: SnapshotOpener::new(keys, seal),
            reader: SnapshotReader::new(),
        }
    }

    fn push(
        &mut self,
        sealed: &[u8],
        each: &mut dyn FnMut(SnapshotItem) -> shard_store::Result<()>,
    ) -> Result<()> {
        let plain = self.opener.push(sealed)?;
        self.reader.push(&plain, each).map_err(unreadable)
    }

    /// The end: the last of the plaintext read, and the whole checked complete.
    fn finish(
        mut self,
        keys: &VaultKeys,
        each: &mut dyn FnMut(SnapshotItem) -> shard_store::Result<()>,
    ) -> Result<()> {
        let plain = self.opener.finish(keys)?;
        self.reader.push(&plain, each).map_err(unreadable)?;
        self.reader.finish(each).map_err(unreadable)?;
        Ok(())
    }
}

fn unreadable(e: shard_store::Error) -> Error {
    Error::SnapshotUnreadable(e.to_string())
}

/// Fetches the snapshot `payload` names, a chunk at a time, into `spool`, reading it through
/// as it comes (opened as `seal` says, every record decoded and checked, nothing kept).
async fn fetch_snapshot(
    node: &Arc<Node>,
    keys: &Arc<VaultKeys>,
    payload: &HeadPayload,
    seal: SnapshotSeal,
    spool: &std::path::Path,
) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(spool)?);
    let targets: Vec<Target> = node.targets();
    let mut decoder = ChunkDecoder::new(keys.clone());
    let asking = Asking::new(node, keys.vault_id().0);
    let mut read = SnapshotRead::new(keys, seal);
    let mut check = |_: SnapshotItem| Ok(());
    for (chunk, holders) in payload.snapshot.chunks.iter().zip(&payload.holders) {
        let holders = chunk
            .shares
            .iter()
            .zip(holders)
            .zip(0u8..)
            .filter_map(|((id, holder), index)| {
                let target = targets.iter().find(|t| t.node() == *holder)?;
                Some(Holder {
                    id: *id,
                    index,
                    target: target.clone(),
                    rank: usize::from(*holder != node.node_id()),
                })
            })
            .collect();
        let shares = crate::swarm::fetch(chunk, holders, asking).await.good;
        let sealed = decoder.decode(chunk, &shares)?;
        out.write_all(&sealed)?;
        read.push(&sealed, &mut check)?;
    }
    read.finish(keys, &mut check)?;
    out.flush()?;
    Ok(())
}

/// Imports the snapshot in `spool` (fetched and checked by [`fetch_snapshot`]) into `account`.
/// Returns the file versions imported and the acknowledged shares the snapshot lists, by
/// holder.
fn import_spool(
    node: &Node,
    keys: &Arc<VaultKeys>,
    account: AccountId,
    seal: SnapshotSeal,
    spool: &std::path::Path,
) -> Result<(usize, HashMap<NodeId, Vec<ShareId>>)> {
    use std::io::Read;
    let mut input = std::fs::File::open(spool)?;
    let catalog = node.catalog().vault(account, keys);
    let mut import = catalog.import_stream();
    let mut by_holder: HashMap<NodeId, Vec<ShareId>> = HashMap::new();
    let mut each = |item: SnapshotItem| {
        if let SnapshotItem::Share(s) = &item {
            by_holder.entry(s.peer).or_default().push(s.share);
        }
        import.add(item)
    };
    let mut read = SnapshotRead::new(keys, seal);
    let mut piece = vec![0u8; SPOOL_PIECE];
    loop {
        let got = input.read(&mut piece)?;
        if got == 0 {
            break;
        }
        read.push(piece.get(..got).unwrap_or_default(), &mut each)?;
    }
    read.finish(keys, &mut each)?;
    let files = import.finish().map_err(unreadable)?;
    Ok((files, by_holder))
}
