//! An in-memory share store: the reference model for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use shard_proto::{Namespace, Share, ShareId};

use super::{ShareStore, Usage};
use crate::{Error, Result};

/// Shares in a map, with an optional quota. Nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

/// A share held, and when its owner deleted it (kept through the grace period).
struct Held {
    share: Share,
    deleted_at: Option<i64>,
}

#[derive(Default)]
struct Inner {
    shares: HashMap<Namespace, BTreeMap<ShareId, Held>>,
    used: u64,
    quota: Option<u64>,
}

impl Inner {
    fn deleted_bytes(&self) -> u64 {
        self.shares
            .values()
            .flat_map(|m| m.values())
            .filter(|h| h.deleted_at.is_some())
            .map(|h| h.share.encoded_len() as u64)
            .sum()
    }

    /// Removes deleted shares matching `pick`, oldest deletion first, until `enough` bytes are
    /// freed; returns (shares, bytes).
    fn purge_deleted(&mut self, pick: impl Fn(i64) -> bool, enough: u64) -> (u64, u64) {
        let mut victims: Vec<(i64, Namespace, ShareId)> = self
            .shares
            .iter()
            .flat_map(|(ns, m)| {
                m.iter()
                    .filter_map(move |(id, h)| h.deleted_at.map(|at| (at, *ns, *id)))
            })
            .filter(|(at, _, _)| pick(*at))
            .collect();
        victims.sort_by_key(|(at, ns, id)| (*at, ns.to_bytes(), id.0));
        let (mut count, mut bytes) = (0u64, 0u64);
        for (_, ns, id) in victims {
            if bytes >= enough {
                break;
            }
            if let Some(held) = self.shares.get_mut(&ns).and_then(|m| m.remove(&id)) {
                let len = held.share.encoded_len() as u64;
                bytes += len;
                count += 1;
                self.used -= len;
            }
        }
        (count, bytes)
    }
}

impl MemoryStore {
    /// An empty store without quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that holds at most `quota` bytes.
    pub fn with_quota(quota: u64) -> Self {
        let store = Self::default();
        if let Ok(mut inner) = store.inner.lock() {
            inner.quota = Some(quota);
        }
        store
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl ShareStore for MemoryStore {
    fn put(&self, ns: &Namespace, shares: &[Share]) -> Result<()> {
        let mut inner = self.lock()?;
        let mut seen = std::collections::HashSet::new();
        let mut new = Vec::new();
        for share in shares {
            if !seen.insert(share.id()) {
                continue;
            }
            match inner
                .shares
                .get_mut(ns)
                .and_then(|m| m.get_mut(&share.id()))
            {
                // Stored again within the grace period: it is back.
                Some(held) => held.deleted_at = None,
                None => new.push(share),
            }
        }
        let needed: u64 = new.iter().map(|s| s.encoded_len() as u64).sum();
        if let Some(quota) = inner.quota {
            let free = quota.saturating_sub(inner.used);
            if needed > free {
                inner.purge_deleted(|_| true, needed - free);
                let free = quota.saturating_sub(inner.used);
                if needed > free {
                    return Err(Error::Full { needed, free });
                }
            }
        }
        inner.used += needed;
        let map = inner.shares.entry(*ns).or_default();
        for share in new {
            map.insert(
                share.id(),
                Held {
                    share: share.clone(),
                    deleted_at: None,
                },
            );
        }
        Ok(())
    }

    fn get(&self, ns: &Namespace, id: &ShareId) -> Result<Option<Share>> {
        Ok(self
            .lock()?
            .shares
            .get(ns)
            .and_then(|m| m.get(id))
            .map(|h| h.share.clone()))
    }

    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> Result<Vec<bool>> {
        let inner = self.lock()?;
        let map = inner.shares.get(ns);
        Ok(ids
            .iter()
            .map(|id| {
                map.and_then(|m| m.get(id))
                    .is_some_and(|h| h.deleted_at.is_none())
            })
            .collect())
    }

    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let mut inner = self.lock()?;
        let now = crate::catalog::unix_now();
        let mut deleted = 0u64;
        if let Some(map) = inner.shares.get_mut(ns) {
            for id in ids {
                if let Some(held) = map.get_mut(id)
                    && held.deleted_at.is_none()
                {
                    held.deleted_at = Some(now);
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    fn undelete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut back = 0u64;
        if let Some(map) = inner.shares.get_mut(ns) {
            for id in ids {
                if let Some(held) = map.get_mut(id)
                    && held.deleted_at.take().is_some()
                {
                    back += 1;
                }
            }
        }
        Ok(back)
    }

    fn purge(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut freed = 0u64;
        let mut removed = 0u64;
        if let Some(map) = inner.shares.get_mut(ns) {
            for id in ids {
                if let Some(held) = map.remove(id) {
                    freed += held.share.encoded_len() as u64;
                    removed += u64::from(held.deleted_at.is_none());
                }
            }
        }
        inner.used -= freed;
        Ok(removed)
    }

    fn expire(&self, before: i64) -> Result<(u64, u64)> {
        Ok(self.lock()?.purge_deleted(|at| at < before, u64::MAX))
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        let inner = self.lock()?;
        Ok(inner
            .shares
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(ns, _)| *ns)
            .collect())
    }

    fn list(&self, ns: &Namespace, after: Option<&ShareId>, limit: usize) -> Result<Vec<ShareId>> {
        let inner = self.lock()?;
        let Some(map) = inner.shares.get(ns) else {
            return Ok(Vec::new());
        };
        let live = |(id, h): (&ShareId, &Held)| h.deleted_at.is_none().then_some(*id);
        let ids = match after {
            Some(after) => map
                .range((
                    std::ops::Bound::Excluded(*after),
                    std::ops::Bound::Unbounded,
                ))
                .filter_map(live)
                .take(limit)
                .collect(),
            None => map.iter().filter_map(live).take(limit).collect(),
        };
        Ok(ids)
    }

    fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> Result<Vec<(Namespace, ShareId)>> {
        let inner = self.lock()?;
        let mut all: Vec<(Namespace, ShareId)> = inner
            .shares
            .iter()
            .flat_map(|(ns, map)| {
                map.iter()
                    .filter(|(_, h)| h.deleted_at.is_none())
                    .map(move |(id, _)| (*ns, *id))
            })
            .filter(|(ns, id)| {
                after.is_none_or(|(a_ns, a_id)| (ns.to_bytes(), id.0) > (a_ns.to_bytes(), a_id.0))
            })
            .collect();
        all.sort_by_key(|(ns, id)| (ns.to_bytes(), id.0));
        all.truncate(limit);
        Ok(all)
    }

    fn move_namespace(&self, from: &Namespace, to: &Namespace) -> Result<u64> {
        let mut inner = self.lock()?;
        let Some(moving) = inner.shares.remove(from) else {
            return Ok(0);
        };
        let target = inner.shares.entry(*to).or_default();
        let mut left = BTreeMap::new();
        let mut count = 0;
        for (id, held) in moving {
            if let std::collections::btree_map::Entry::Vacant(slot) = target.entry(id) {
                slot.insert(held);
                count += 1;
            } else {
                left.insert(id, held);
            }
        }
        if !left.is_empty() {
            inner.shares.insert(*from, left);
        }
        Ok(count)
    }

    fn usage(&self) -> Result<Usage> {
        let inner = self.lock()?;
        Ok(Usage {
            used: inner.used,
            shares: inner
                .shares
                .values()
                .flat_map(|m| m.values())
                .filter(|h| h.deleted_at.is_none())
                .count() as u64,
            quota: inner.quota,
            reclaimable: inner.deleted_bytes(),
        })
    }
}
