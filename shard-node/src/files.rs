//! `ls` and `rm`: what the vault holds, and removing it (shares deleted on their peers now, or
//! when an offline peer comes back).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shard_proto::{Manifest, ShareId};
use shard_store::{FileEntry, FileId, FileKind, ShareState, VaultState};

use crate::node::Node;
use crate::report::{ChunkHealth, ListedFile, Listing, Removal, StoredHealth};
use crate::session::Session;
use crate::{Error, Result};

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// What `ls` knows of a share without asking anyone: its state in the catalog, and whether
/// the node holding it is connected now.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Held {
    state: ShareState,
    online: bool,
}

/// Health of a file from what the catalog knows of the very shares its manifest lists and
/// which of their nodes are connected, by the words `check` uses: every share acknowledged on
/// a connected node (healthy); some acknowledged on nodes offline now, which only a check
/// after they return can vouch for (unknown); fewer than `n` acknowledged (degraded); fewer
/// than `k` (lost). A listing asks no peer: a share a connected node has lost since is found
/// by `check`, not here.
fn health(
    entry: &FileEntry,
    manifest: Option<&Manifest>,
    shares: &HashMap<ShareId, Held>,
) -> Option<StoredHealth> {
    if entry.meta.kind != FileKind::File {
        return None;
    }
    // (k, n, acknowledged, of which on nodes offline now) of the chunk closest to loss.
    let mut worst: Option<(u8, u8, u8, u8)> = None;
    let mut unseen = false;
    for c in manifest.iter().flat_map(|m| m.chunks.iter()) {
        let acked: Vec<&Held> = c
            .shares
            .iter()
            .filter_map(|id| shares.get(id))
            .filter(|h| h.state == ShareState::Acked)
            .collect();
        let offline = acked.iter().filter(|h| !h.online).count();
        unseen |= offline > 0;
        let count = |x: usize| u8::try_from(x).unwrap_or(u8::MAX);
        let margin = |x: (u8, u8, u8, u8)| i32::from(x.2) - i32::from(x.0);
        let this = (c.k, c.n, count(acked.len()), count(offline));
        if worst.is_none_or(|w| margin(this) < margin(w)) {
            worst = Some(this);
        }
    }
    Some(match worst {
        None => StoredHealth {
            state: ChunkHealth::Healthy,
            k: None,
            n: None,
            min_acked: None,
            spare: None,
        },
        Some((k, n, acked, _)) => StoredHealth {
            state: if acked < k {
                ChunkHealth::Lost
            } else if acked < n {
                ChunkHealth::Degraded
            } else if unseen {
                ChunkHealth::Unknown
            } else {
                ChunkHealth::Healthy
            },
            k: Some(k),
            n: Some(n),
            min_acked: Some(acked),
            spare: Some(i32::from(acked) - i32::from(k)),
        },
    })
}

/// Files whose details are read from the catalog at a time while listing or restoring.
pub(crate) const LIST_BATCH: usize = 512;

/// A name's newest visible version, its size, and how many visible versions it has.
pub(crate) struct Newest {
    pub id: FileId,
    pub version: u32,
    pub size: u64,
    pub versions: usize,
}

/// The newest visible version of each name starting with `prefix`, by name. Names are sealed
/// in the catalog, so their order is known only once all are read: what is held is one small
/// record per name (its bytes, an id, two numbers), never the entries themselves.
pub(crate) fn newest_by_name(
    vault: &shard_store::VaultCatalog<'_>,
    prefix: &[u8],
) -> Result<BTreeMap<Vec<u8>, Newest>> {
    let mut by_name: BTreeMap<Vec<u8>, Newest> = BTreeMap::new();
    vault.for_each_entry(|e| {
        if !e.meta.name.starts_with(prefix) {
            return Ok(());
        }
        let slot = by_name.entry(e.meta.name).or_insert(Newest {
            id: e.id,
            version: e.version,
            size: e.meta.size,
            versions: 0,
        });
        slot.versions += 1;
        if e.version >= slot.version {
            slot.id = e.id;
            slot.version = e.version;
            slot.size = e.meta.size;
        }
        Ok(())
    })?;
    Ok(by_name)
}

/// The entries of `ids` still visible, in the order of `ids` (a version removed since its id
/// was read is left out, as it would be a moment later).
pub(crate) fn entries_in_order(
    vault: &shard_store::VaultCatalog<'_>,
    ids: &[FileId],
) -> Result<Vec<FileEntry>> {
    let mut found: HashMap<FileId, FileEntry> = vault
        .entries_by_id(ids)?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// The newest version of each name (under `prefix`), with its number of versions and health,
/// collected. A caller that passes the entries on (the HTTP API) uses [`ls_each`], which does
/// not hold the listing.
pub fn ls(node: &Node, session: &Session, prefix: &[u8]) -> Result<Listing> {
    let mut files = Vec::new();
    ls_each(node, session, prefix, |f| {
        files.push(f);
        Ok(())
    })?;
    Ok(Listing { files })
}

/// Calls `each` with the newest version of each name under `prefix`, in name order, with its
/// number of versions and health; returns how many. What stays in memory is one small record
/// per name (its bytes, the newest version's id, how many versions) and the details —
/// metadata, manifests, share states — of 512 files at a time, so a vault of 10⁵
/// files lists in a few MiB rather than in its whole listing.
pub fn ls_each(
    node: &Node,
    session: &Session,
    prefix: &[u8],
    mut each: impl FnMut(ListedFile) -> Result<()>,
) -> Result<usize> {
    let vault = node.catalog().vault(session.account, &session.keys);
    let by_name = newest_by_name(&vault, prefix)?;
    let mut listed_count = 0;
    let mut names = by_name.into_iter().peekable();
    while names.peek().is_some() {
        let batch: Vec<(Vec<u8>, Newest)> = names.by_ref().take(LIST_BATCH).collect();
        // The keys stay only while the account is unlocked: a listing a slow client is still
        // reading stops at logout.
        if !node.is_current(session) {
            return Err(Error::NotLoggedIn(format!(
                "account {:?} was locked during the listing",
                session.user
            )));
        }
        let ids: Vec<FileId> = batch.iter().map(|(_, n)| n.id).collect();
        // A version removed since the names were read is left out, as it would be a moment
        // later.
        let mut entries: HashMap<FileId, FileEntry> = vault
            .entries_by_id(&ids)?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let mut manifests: HashMap<FileId, Manifest> = HashMap::new();
        for e in entries.values() {
            if e.meta.kind != FileKind::File {
                continue;
            }
            match vault.manifest(e.id) {
                Ok(m) => {
                    manifests.insert(e.id, m);
                }
                Err(shard_store::Error::NoSuchFile(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        entries.retain(|id, e| e.meta.kind != FileKind::File || manifests.contains_key(id));
        // The states of exactly the shares these manifests list, looked up by id.
        let mut listed: Vec<ShareId> = manifests
            .values()
            .flat_map(|m| m.chunks.iter().flat_map(|c| c.shares.iter().copied()))
            .collect();
        // Blobs of one pack list the same shares.
        listed.sort_unstable();
        listed.dedup();
        let online = node.online_ids();
        let shares: HashMap<ShareId, Held> = vault
            .locate(&listed)?
            .into_iter()
            .map(|(id, r)| {
                let held = Held {
                    state: r.state,
                    online: online.contains(&r.peer),
                };
                (id, held)
            })
            .collect();
        for (name, newest) in batch {
            let Some(entry) = entries.remove(&newest.id) else {
                continue;
            };
            listed_count += 1;
            each(ListedFile {
                name: lossy(&name),
                name_hex: hex::encode(&name),
                kind: entry.meta.kind.into(),
                size: entry.meta.size,
                mtime: entry.meta.mtime,
                mode: entry.meta.mode,
                version: entry.version,
                versions: newest.versions,
                stored_at: entry.stored_at,
                health: health(&entry, manifests.get(&entry.id), &shares),
            })?;
        }
    }
    Ok(listed_count)
}

pub use crate::request::Removing;

/// Removes every version of `name` (and, for a folder, everything under it): to the trash, or
/// for good — then with what the trash holds of it — deleting the shares no other file uses.
/// Refused under a backup job's tree.
pub async fn rm(
    node: &Arc<Node>,
    session: &Arc<Session>,
    name: &[u8],
    how: Removing,
) -> Result<Removal> {
    let _writer = session.writer.lock().await;
    // A backup job's tree changes only by its runs and its retention: removing under it
    // would leave snapshots naming versions that are gone.
    {
        let vault = node.catalog().vault(session.account, &session.keys);
        if let Some(job) = crate::backup::job::holder_of(&vault, name)? {
            return Err(Error::JobsName {
                name: lossy(name),
                job,
            });
        }
    }
    match how {
        Removing::ToTrash if node.vault_config().trash_days > 0 => {
            crate::trash::trash_held(node, session, name)
        }
        Removing::ToTrash | Removing::Now | Removing::Purge => {
            let purge = how == Removing::Purge;
            let visible = rm_held(node, session, name, purge).await;
            // What the trash holds of the name goes too: "for good" leaves no copy behind.
            let trashed = match &visible {
                Ok(_) | Err(Error::Store(shard_store::Error::NoSuchFile(_))) => {
                    crate::trash::delete_named_held(node, session, name, purge).await?
                }
                Err(_) => None,
            };
            match (visible, trashed) {
                (Ok(mut r), Some(t)) => {
                    r.removed += t.removed;
                    r.shares_deleted += t.shares_deleted;
                    r.shares_queued_for_offline_peers += t.shares_queued_for_offline_peers;
                    Ok(r)
                }
                (Err(Error::Store(shard_store::Error::NoSuchFile(_))), Some(t)) => Ok(t),
                (visible, _) => visible,
            }
        }
    }
}

/// [`rm`] without asking whether a backup job holds `name`, the caller holding the vault's
/// writer lock: what removing an account, or a job with its snapshots, does.
pub(crate) async fn rm_held(
    node: &Arc<Node>,
    session: &Arc<Session>,
    name: &[u8],
    purge: bool,
) -> Result<Removal> {
    let ids =
        crate::deletion::versions_of(&node.catalog().vault(session.account, &session.keys), name)?;
    crate::deletion::delete_versions(node, session, &ids, purge).await
}

/// Removing files and accounts.
impl Node {
    /// Removes every version of `name` (a folder with everything under it) as `user`, `how`
    /// says where to; returns the removal's summary. (The caller writes the new catalog
    /// snapshot: [`Node::catalog_changed`].)
    pub async fn remove(
        self: &Arc<Self>,
        user: Option<&str>,
        name: &[u8],
        how: Removing,
    ) -> Result<Removal> {
        let session = self.session(user)?;
        rm(self, &session, name, how).await
    }

    /// Removes an account; it must be unlocked (whoever removes it proves they own it). Refused
    /// while it has files, unless `purge`: then every file is removed first, shares included,
    /// and the shares of its catalog snapshot go too.
    pub async fn remove_account(self: &Arc<Self>, user: &str, purge: bool) -> Result<u64> {
        let account = self
            .catalog()
            .account(user)?
            .ok_or_else(|| shard_store::Error::NoSuchAccount(user.to_string()))?;
        let files = self.catalog().file_count(account.id)?;
        if files > 0 && !purge {
            return Err(Error::FilesRemain {
                user: user.to_string(),
                files,
            });
        }
        let session = self.session(Some(user))?;
        // One hold of the writer lock from the list of names to the account's end: no backup
        // run stores in between what the list would miss (a run that waited finds the
        // account locked and gives up).
        let _writer = session.writer.lock().await;
        if files > 0 {
            let names: Vec<Vec<u8>> = {
                let vault = self.catalog().vault(session.account, &session.keys);
                let mut names: Vec<Vec<u8>> =
                    vault.list()?.into_iter().map(|e| e.meta.name).collect();
                names.extend(vault.pending()?.into_iter().map(|e| e.meta.name));
                names.sort();
                names.dedup();
                names
            };
            for name in names {
                match rm_held(self, &session, &name, true).await {
                    Ok(_) | Err(Error::Store(shard_store::Error::NoSuchFile(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            // And the trash, whose shares are on the peers as much as any.
            let trashed: Vec<shard_store::FileId> = self
                .catalog()
                .vault(session.account, &session.keys)
                .trashed()?
                .into_iter()
                .map(|t| t.entry.id)
                .collect();
            crate::deletion::delete_versions(self, &session, &trashed, true).await?;
        }
        let (state, kept) = {
            let vault = self.catalog().vault(session.account, &session.keys);
            (vault.state()?, vault.kept_heads()?)
        };
        // The newest snapshot and those kept for peers that were away.
        let snapshots = std::iter::once(state).chain(kept.into_iter().map(|k| VaultState {
            seq: k.seq,
            snapshot: Some(k.head),
        }));
        for snapshot in snapshots {
            crate::snapshot::delete_snapshot(self, &session, &snapshot, &Default::default()).await;
        }
        self.logout(Some(user));
        self.catalog().delete_account(account.id)?;
        Ok(files)
    }
}
