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

#[derive(Default)]
struct Inner {
    shares: HashMap<Namespace, BTreeMap<ShareId, Share>>,
    used: u64,
    quota: Option<u64>,
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
        let existing = inner.shares.get(ns);
        let mut seen = std::collections::HashSet::new();
        let new: Vec<&Share> = shares
            .iter()
            .filter(|s| existing.is_none_or(|m| !m.contains_key(&s.id())) && seen.insert(s.id()))
            .collect();
        let needed: u64 = new.iter().map(|s| s.encoded_len() as u64).sum();
        if let Some(quota) = inner.quota {
            let free = quota.saturating_sub(inner.used);
            if needed > free {
                return Err(Error::Full { needed, free });
            }
        }
        inner.used += needed;
        let map = inner.shares.entry(*ns).or_default();
        for share in new {
            map.insert(share.id(), share.clone());
        }
        Ok(())
    }

    fn get(&self, ns: &Namespace, id: &ShareId) -> Result<Option<Share>> {
        Ok(self.lock()?.shares.get(ns).and_then(|m| m.get(id)).cloned())
    }

    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> Result<Vec<bool>> {
        let inner = self.lock()?;
        let map = inner.shares.get(ns);
        Ok(ids
            .iter()
            .map(|id| map.is_some_and(|m| m.contains_key(id)))
            .collect())
    }

    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut freed = 0u64;
        let mut removed = 0u64;
        if let Some(map) = inner.shares.get_mut(ns) {
            for id in ids {
                if let Some(share) = map.remove(id) {
                    freed += share.encoded_len() as u64;
                    removed += 1;
                }
            }
        }
        inner.used -= freed;
        Ok(removed)
    }

    fn list(&self, ns: &Namespace, after: Option<&ShareId>, limit: usize) -> Result<Vec<ShareId>> {
        let inner = self.lock()?;
        let Some(map) = inner.shares.get(ns) else {
            return Ok(Vec::new());
        };
        let ids = match after {
            Some(after) => map
                .range((
                    std::ops::Bound::Excluded(*after),
                    std::ops::Bound::Unbounded,
                ))
                .map(|(id, _)| *id)
                .take(limit)
                .collect(),
            None => map.keys().copied().take(limit).collect(),
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
            .flat_map(|(ns, map)| map.keys().map(move |id| (*ns, *id)))
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
        let mut left = std::collections::BTreeMap::new();
        let mut count = 0;
        for (id, share) in moving {
            if let std::collections::btree_map::Entry::Vacant(slot) = target.entry(id) {
                slot.insert(share);
                count += 1;
            } else {
                left.insert(id, share);
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
            shares: inner.shares.values().map(|m| m.len() as u64).sum(),
            quota: inner.quota,
        })
    }
}
