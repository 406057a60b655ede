//! Where a node keeps the shares other owners send it: the [`ShareStore`] trait and its
//! implementations — [`MemoryStore`] for tests, [`DiskStore`] with the `plain` or `scatter`
//! layout for real use.
//!
//! Shares are filed by [`Namespace`] (owner node, vault): a request may only ever touch its own
//! namespace. A put returns only once every share is on disk (see [`DiskStore`] for the exact
//! sequence), so an acknowledgement built on it means "durable".

mod disk;
mod index;
mod memory;
mod scatter;

pub use disk::{DiskOptions, DiskStore, Layout};
pub use memory::MemoryStore;

use shard_proto::{Namespace, Share, ShareId};

use crate::{Error, Result};

/// How full a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Bytes held (shares, including quarantined ones until deleted).
    pub used: u64,
    /// Shares held and servable.
    pub shares: u64,
    /// The configured quota, if any.
    pub quota: Option<u64>,
    /// Of `used`, bytes of shares their owners deleted, kept through the grace period but
    /// reclaimed first when room is needed.
    #[serde(default)]
    pub reclaimable: u64,
}

impl Usage {
    /// Bytes that may still be stored under the quota (`None`: no quota, only the disk limits);
    /// deleted shares in their grace period give way.
    pub fn free(&self) -> Option<u64> {
        self.quota
            .map(|q| q.saturating_sub(self.used.saturating_sub(self.reclaimable)))
    }
}

/// What a scrub found in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Shares looked at.
    pub checked: u64,
    /// Shares the index lists but whose file is gone.
    pub missing: Vec<ShareId>,
    /// Shares whose bytes no longer match their id (now quarantined).
    pub corrupt: Vec<ShareId>,
}

/// [`Error::RangeOutOfBounds`] unless `start < end <= len`.
pub(crate) fn check_range(id: &ShareId, start: u32, end: u32, len: u32) -> Result<()> {
    if start < end && end <= len {
        Ok(())
    } else {
        Err(Error::RangeOutOfBounds {
            share: *id,
            start,
            end,
            len,
        })
    }
}

/// A store of shares, filed by namespace. Implementations are safe to share between threads.
pub trait ShareStore: Send + Sync {
    /// Stores `shares` durably; returns once all of them are on disk. Shares already held are
    /// skipped. On error none of the new shares is kept, and earlier ones are untouched.
    fn put(&self, ns: &Namespace, shares: &[Share]) -> Result<()>;

    /// The share `id`, verified against its id; `None` if not held. A share whose bytes no
    /// longer match is quarantined and reported as [`Error::Corrupt`].
    fn get(&self, ns: &Namespace, id: &ShareId) -> Result<Option<Share>>;

    /// Bytes `start..end` of the payload of share `id` (a ranged restore out of a pack);
    /// `None` if not held, [`Error::RangeOutOfBounds`] unless `start < end <= payload length`.
    /// Unlike [`ShareStore::get`] the bytes are not checked against the id (that takes the
    /// whole share): their owner authenticates them, and the scrub checks whole shares.
    fn get_range(
        &self,
        ns: &Namespace,
        id: &ShareId,
        start: u32,
        end: u32,
    ) -> Result<Option<bytes::Bytes>> {
        let Some(share) = self.get(ns, id)? else {
            return Ok(None);
        };
        let len = share.header().payload_len();
        check_range(id, start, end, len)?;
        Ok(Some(share.payload().slice(start as usize..end as usize)))
    }

    /// For each id, whether it is held (and not known to be damaged).
    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> Result<Vec<bool>>;

    /// The owner's delete: the shares stop being listed, counted and offered, but stay readable
    /// through `get` and come back when stored again, until [`ShareStore::expire`] or
    /// [`ShareStore::purge`] removes them (or room is needed: then oldest first). Missing ids
    /// are ignored; returns how many shares were deleted.
    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64>;

    /// Brings deleted shares (still in their grace period) back, as if never deleted; returns
    /// how many came back.
    fn undelete(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64>;

    /// Removes the shares at once, deleted or not; returns how many were servable.
    fn purge(&self, ns: &Namespace, ids: &[ShareId]) -> Result<u64>;

    /// Removes the shares deleted before `before` (seconds since the epoch): their grace
    /// period is over. Returns (shares, bytes) removed.
    fn expire(&self, before: i64) -> Result<(u64, u64)>;

    /// Every namespace that holds shares (servable or deleted).
    fn namespaces(&self) -> Result<Vec<Namespace>>;

    /// Up to `limit` ids held in `ns`, in ascending order, starting after `after`.
    fn list(&self, ns: &Namespace, after: Option<&ShareId>, limit: usize) -> Result<Vec<ShareId>>;
    /// Bytes and shares held, and the quota.
    fn usage(&self) -> Result<Usage>;

    /// Re-files every share of `from` under `to` (a vault taken over by a new owner node after
    /// recovery); returns how many moved. Shares `to` already holds stay as they are.
    fn move_namespace(&self, from: &Namespace, to: &Namespace) -> Result<u64>;

    /// Up to `limit` (namespace, id) pairs held, in ascending order after `after`: the
    /// background scrub walks the whole store with it.
    fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> Result<Vec<(Namespace, ShareId)>>;

    /// Shares of `ns` found corrupt and quarantined (until replaced or deleted), so their owner
    /// can repair them.
    fn quarantined(&self, ns: &Namespace) -> Result<Vec<ShareId>> {
        let _ = ns;
        Ok(Vec::new())
    }

    /// Reads every share of `ns` back and reports the missing and the corrupt ones (which are
    /// quarantined on the way).
    fn scrub(&self, ns: &Namespace) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let mut cursor: Option<ShareId> = None;
        loop {
            let page = self.list(ns, cursor.as_ref(), 512)?;
            let Some(last) = page.last().copied() else {
                break;
            };
            for id in &page {
                report.checked += 1;
                match self.get(ns, id) {
                    Ok(Some(_)) => {}
                    Ok(None) => report.missing.push(*id),
                    Err(Error::Corrupt { .. }) => report.corrupt.push(*id),
                    Err(e) => return Err(e),
                }
            }
            cursor = Some(last);
        }
        Ok(report)
    }
}
