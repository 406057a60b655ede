//! The trash: what `rm` removes stays restorable for `[vault] trash_days` (30 by default)
//! before it is deleted for good. Removing is the commonest way people lose files, so a
//! removal first only hides the versions: their chunks, packs and shares stay where they are,
//! and `shard trash restore NAME` makes them visible again. `rm --now`, `shard trash empty`
//! and the expiry delete them, which is when the shares leave the peers and compaction can
//! return the space.
//!
//! A folder removed with everything under it is one item of the trash: an entry removed at
//! the same moment as a folder above it belongs to that folder's item.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use shard_store::{FileId, FileKind, TrashedEntry};

use crate::node::Node;
use crate::report::{Removal, TrashItem, TrashRestore};
use crate::session::Session;
use crate::{Error, Result};

const DAY: i64 = 86_400;

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The folder above `name` whose removal took it along (a folder version in the trash removed
/// at the same moment), the topmost if several; `None` for an item of its own.
fn taken_along<'a>(name: &'a [u8], at: i64, folders: &HashSet<(&[u8], i64)>) -> Option<&'a [u8]> {
    name.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| name.get(..i).unwrap_or_default())
        .find(|prefix| folders.contains(&(*prefix, at)))
}

fn folders_removed(entries: &[TrashedEntry]) -> HashSet<(&[u8], i64)> {
    entries
        .iter()
        .filter(|t| t.entry.meta.kind == FileKind::Dir)
        .map(|t| (t.entry.meta.name.as_slice(), t.trashed_at))
        .collect()
}

/// A name taken along by a folder's removal: (the folder's item, the name).
type Under<'a> = (&'a [u8], &'a [u8]);

/// The items of the trash, by name: each name removed on its own, with what its removal as a
/// folder took along counted in it.
pub fn items(entries: &[TrashedEntry], trash_days: u64) -> Vec<TrashItem> {
    let keep = i64::try_from(trash_days)
        .unwrap_or(i64::MAX / DAY)
        .saturating_mul(DAY);
    let folders = folders_removed(entries);
    let mut by_name: BTreeMap<&[u8], TrashItem> = BTreeMap::new();
    // (item, name under it) → (newest version, its size), for a folder's bytes.
    let mut under: BTreeMap<Under<'_>, (u32, u64)> = BTreeMap::new();
    // Entries are in name and version order: the last one seen of a name is its newest.
    for t in entries {
        let name = t.entry.meta.name.as_slice();
        if let Some(top) = taken_along(name, t.trashed_at, &folders) {
            let slot = under.entry((top, name)).or_insert((0, 0));
            if t.entry.version >= slot.0 {
                *slot = (t.entry.version, t.entry.meta.size);
            }
            continue;
        }
        let item = by_name.entry(name).or_insert_with(|| TrashItem {
            name: lossy(name),
            name_hex: hex::encode(name),
            kind: t.entry.meta.kind.into(),
            versions: 0,
            entries_under: 0,
            size: 0,
            removed_at: t.trashed_at,
            kept_until: t.trashed_at.saturating_add(keep),
        });
        item.versions += 1;
        item.kind = t.entry.meta.kind.into();
        item.removed_at = item.removed_at.max(t.trashed_at);
        item.kept_until = item.kept_until.min(t.trashed_at.saturating_add(keep));
        if t.entry.meta.kind != FileKind::Dir {
            item.size = t.entry.meta.size;
        }
    }
    let mut counted: HashSet<&[u8]> = HashSet::new();
    for ((top, name), (_, size)) in under {
        if let Some(item) = by_name.get_mut(top) {
            item.size = item.size.saturating_add(size);
            if counted.insert(name) {
                item.entries_under += 1;
            }
        }
    }
    by_name.into_values().collect()
}

/// The entries of the trash that `name` stands for, as `shard trash` lists them: the versions
/// of the item `name` (its own removals, not those a folder above took along) and, for a
/// folder, what each of those removals took along. A name that is no item of its own but lies
/// in a removed folder stands for its versions there: one file out of a removed folder.
pub fn selection(entries: &[TrashedEntry], name: &[u8]) -> Vec<FileId> {
    let folders = folders_removed(entries);
    let own: Vec<&TrashedEntry> = entries
        .iter()
        .filter(|t| t.entry.meta.name == name)
        .collect();
    let mut item: Vec<&TrashedEntry> = own
        .iter()
        .copied()
        .filter(|t| taken_along(name, t.trashed_at, &folders).is_none())
        .collect();
    if item.is_empty() {
        item = own;
    }
    let times: HashSet<i64> = item
        .iter()
        .filter(|t| t.entry.meta.kind == FileKind::Dir)
        .map(|t| t.trashed_at)
        .collect();
    let mut ids: Vec<FileId> = item.iter().map(|t| t.entry.id).collect();
    ids.extend(
        entries
            .iter()
            .filter(|t| {
                t.entry
                    .meta
                    .name
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.first() == Some(&b'/'))
                    && times.contains(&t.trashed_at)
            })
            .map(|t| t.entry.id),
    );
    ids
}

/// Moves every visible version of `name` (a folder with everything under it) to the trash.
/// The caller holds the vault's writer lock and has checked that no backup job holds `name`.
pub(crate) fn trash_held(node: &Node, session: &Session, name: &[u8]) -> Result<Removal> {
    let vault = node.catalog().vault(session.account, &session.keys);
    let ids = crate::deletion::versions_of(&vault, name)?;
    let now = node.options().clock.now();
    let removed = vault.trash_files(&ids, now)?;
    let days = i64::try_from(node.vault_config().trash_days).unwrap_or(i64::MAX / DAY);
    Ok(Removal {
        removed,
        shares_deleted: 0,
        shares_queued_for_offline_peers: 0,
        trashed: true,
        kept_until: Some(now.saturating_add(days.saturating_mul(DAY))),
    })
}

/// Deletes what the trash holds of `name` (as [`selection`] picks it) for good, if anything;
/// the caller holds the vault's writer lock. What `rm --now` adds to the visible versions:
/// "for good" leaves no copy behind.
pub(crate) async fn delete_named_held(
    node: &Arc<Node>,
    session: &Arc<Session>,
    name: &[u8],
    purge: bool,
) -> Result<Option<Removal>> {
    let ids = selection(
        &node
            .catalog()
            .vault(session.account, &session.keys)
            .trashed()?,
        name,
    );
    if ids.is_empty() {
        return Ok(None);
    }
    crate::deletion::delete_versions(node, session, &ids, purge)
        .await
        .map(Some)
}

/// The trash.
impl Node {
    /// What is in `user`'s trash, by name.
    pub fn trash(&self, user: Option<&str>) -> Result<Vec<TrashItem>> {
        let session = self.session(user)?;
        let vault = self.catalog().vault(session.account, &session.keys);
        Ok(items(&vault.trashed()?, self.vault_config().trash_days))
    }

    /// Makes `name` (every version of it in the trash, and what its removal as a folder took
    /// along) visible again. Refused when nothing by that name is in the trash, or when a
    /// backup job's tree holds the name now (its runs alone change it). (The caller writes the
    /// new catalog snapshot: [`Node::catalog_changed`].)
    pub async fn trash_restore(
        self: &Arc<Self>,
        user: Option<&str>,
        name: &[u8],
    ) -> Result<TrashRestore> {
        let session = self.session(user)?;
        let _writer = session.writer.lock().await;
        let vault = self.catalog().vault(session.account, &session.keys);
        let entries = vault.trashed()?;
        let ids = selection(&entries, name);
        if ids.is_empty() {
            return Err(Error::NotInTrash(lossy(name)));
        }
        if let Some(job) = crate::backup::job::holder_of(&vault, name)? {
            return Err(Error::JobsName {
                name: lossy(name),
                job,
            });
        }
        let newer_kept = !vault.versions(name)?.is_empty();
        let restored = vault.untrash_files(&ids)?;
        Ok(TrashRestore {
            name: lossy(name),
            restored,
            newer_kept,
        })
    }

    /// Deletes from the trash for good: `name` (as [`Node::trash_restore`] picks it), or
    /// everything. Its shares leave their peers, and compaction can return the space.
    pub async fn trash_empty(
        self: &Arc<Self>,
        user: Option<&str>,
        name: Option<&[u8]>,
    ) -> Result<Removal> {
        let session = self.session(user)?;
        let _writer = session.writer.lock().await;
        let entries = self
            .catalog()
            .vault(session.account, &session.keys)
            .trashed()?;
        let ids: Vec<FileId> = match name {
            Some(name) => {
                let ids = selection(&entries, name);
                if ids.is_empty() {
                    return Err(Error::NotInTrash(lossy(name)));
                }
                ids
            }
            None => entries.iter().map(|t| t.entry.id).collect(),
        };
        crate::deletion::delete_versions(self, &session, &ids, false).await
    }

    /// Deletes for good what has been in the trash longer than `[vault] trash_days`, in every
    /// unlocked account not busy writing (a locked account's trash waits for its next login:
    /// its catalog cannot be read without its keys; a busy one, for the next expiry). Says
    /// what each account's expiry removed, and which accounts were busy. The node's hourly
    /// expiry calls it.
    pub async fn expire_trash(self: &Arc<Self>) -> TrashExpiry {
        let days = i64::try_from(self.vault_config().trash_days).unwrap_or(i64::MAX / DAY);
        let before = self
            .options()
            .clock
            .now()
            .saturating_sub(days.saturating_mul(DAY));
        let mut out = TrashExpiry::default();
        for user in self.users() {
            let Ok(session) = self.session(Some(&user)) else {
                continue;
            };
            // An account busy with a put, a backup run or a repair is looked at again at the
            // next expiry rather than holding up the others (and the expiry of peers' deleted
            // shares after this).
            let Ok(writer) = session.writer.try_lock() else {
                out.busy.push(user);
                continue;
            };
            let expired = async {
                let ids: Vec<FileId> = self
                    .catalog()
                    .vault(session.account, &session.keys)
                    .trashed()?
                    .into_iter()
                    .filter(|t| t.trashed_at <= before)
                    .map(|t| t.entry.id)
                    .collect();
                if ids.is_empty() {
                    return Ok(None);
                }
                crate::deletion::delete_versions(self, &session, &ids, false)
                    .await
                    .map(Some)
            }
            .await;
            drop(writer);
            match expired {
                Ok(None) => {}
                Ok(Some(removal)) => {
                    self.catalog_changed(&session);
                    out.removed.push((user, Ok(removal)));
                }
                Err(e) => out.removed.push((user, Err(e))),
            }
        }
        out
    }
}

/// What one expiry of the trash did.
#[derive(Debug, Default)]
pub struct TrashExpiry {
    /// Each account whose trash held something expired: what was deleted, or why not.
    pub removed: Vec<(String, Result<Removal>)>,
    /// Accounts skipped because they were busy writing (looked at again next time).
    pub busy: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shard_store::{FileEntry, FileMeta};

    fn t(id: i64, name: &str, version: u32, kind: FileKind, size: u64, at: i64) -> TrashedEntry {
        TrashedEntry {
            entry: FileEntry {
                id: FileId(id),
                version,
                stored_at: 0,
                meta: FileMeta {
                    name: name.as_bytes().to_vec(),
                    kind,
                    size,
                    mode: 0o644,
                    mtime: 0,
                    mtime_nanos: 0,
                    link_target: None,
                },
            },
            trashed_at: at,
        }
    }

    /// What `entries` holds, in name and version order (as the catalog hands it out).
    fn sorted(mut entries: Vec<TrashedEntry>) -> Vec<TrashedEntry> {
        entries.sort_by(|a, b| {
            (&a.entry.meta.name, a.entry.version).cmp(&(&b.entry.meta.name, b.entry.version))
        });
        entries
    }

    #[test]
    fn a_folder_removed_whole_is_one_item_and_what_went_before_stays_its_own() {
        use FileKind::{Dir, File};
        let entries = sorted(vec![
            t(1, "photos", 1, Dir, 0, 500),
            t(2, "photos/a.jpg", 1, File, 10, 500),
            t(3, "photos/a.jpg", 2, File, 15, 500),
            t(4, "photos/sub", 1, Dir, 0, 500),
            t(5, "photos/sub/b.jpg", 1, File, 20, 500),
            // Removed on its own, a day earlier.
            t(6, "photos/old.jpg", 1, File, 7, 400),
            t(7, "will.txt", 1, File, 3, 100),
            t(8, "will.txt", 2, File, 4, 300),
        ]);
        let items = items(&entries, 30);
        let view: Vec<(&str, usize, usize, u64, i64, i64)> = items
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.versions,
                    i.entries_under,
                    i.size,
                    i.removed_at,
                    i.kept_until,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("photos", 1, 3, 15 + 20, 500, 500 + 30 * DAY),
                ("photos/old.jpg", 1, 0, 7, 400, 400 + 30 * DAY),
                // Removed twice: the first removal decides when it goes.
                ("will.txt", 2, 0, 4, 300, 100 + 30 * DAY),
            ]
        );
        let mut photos = selection(&entries, b"photos");
        photos.sort();
        assert_eq!(
            photos,
            [FileId(1), FileId(2), FileId(3), FileId(4), FileId(5)]
        );
        // One file out of a removed folder, by its own name.
        assert_eq!(selection(&entries, b"photos/sub/b.jpg"), [FileId(5)]);
        assert_eq!(selection(&entries, b"photos/old.jpg"), [FileId(6)]);
        // A name that only begins the same is not under it.
        assert!(selection(&entries, b"photo").is_empty());
        assert!(selection(&entries, b"nothing").is_empty());
    }

    /// A file removed on its own, stored again and then removed with its folder: its own item
    /// and the folder's each take only their versions.
    #[test]
    fn a_name_removed_alone_and_with_its_folder_is_two_items() {
        use FileKind::{Dir, File};
        let entries = sorted(vec![
            t(1, "photos/a.jpg", 1, File, 10, 100),
            t(2, "photos", 1, Dir, 0, 200),
            t(3, "photos/a.jpg", 2, File, 20, 200),
            t(4, "photos/b.jpg", 1, File, 30, 200),
        ]);
        let names: Vec<(String, usize)> = items(&entries, 30)
            .into_iter()
            .map(|i| (i.name, i.versions))
            .collect();
        assert_eq!(
            names,
            [("photos".to_string(), 1), ("photos/a.jpg".to_string(), 1)]
        );
        assert_eq!(selection(&entries, b"photos/a.jpg"), [FileId(1)]);
        let mut photos = selection(&entries, b"photos");
        photos.sort();
        assert_eq!(photos, [FileId(2), FileId(3), FileId(4)]);
        // Not an item of its own: its version in the removed folder.
        assert_eq!(selection(&entries, b"photos/b.jpg"), [FileId(4)]);
    }
}
