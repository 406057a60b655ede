//! A node that lies, for tests only (the `shard` binary's test-only `adversary` feature wraps
//! its store in [`Adversary`]; release builds never contain this crate).
//!
//! Promise: an owner never trusts a peer's word about its shares, only bytes it can check. To
//! show it, the tests start real `shard serve` processes whose share store is wrapped in
//! [`Adversary`], chosen by the `SHARD_ADVERSARY` environment variable (a comma-separated list):
//!
//! - `wrong-bytes`: says it has every share it holds, then serves them with one byte changed;
//! - `truncated`: serves the first half of each share, as a well-formed shorter share;
//! - `other-share`: serves a different share of the same owner than the one asked for;
//! - `stall`: never answers a share request (the caller's timeout must fire);
//! - `fake-capacity`: claims a terabyte free but refuses every put as full;
//! - `fill-after=N`: accepts `N` more shares, then is full (a disk filling up mid-repair);
//! - `fail-reads-for-ms=MS`: fails every share read for `MS` milliseconds from its first one,
//!   then serves honestly (a passing fault);
//! - `old-heads`: keeps the first catalog head it is given, acknowledges newer ones, and
//!   serves the old one for ever (a replay).
//!
//! Everything else (has, list, delete, heads) is honest, so the lie is the only difference
//! from a good peer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shard_proto::{Namespace, Share, ShareHeader, ShareId};
use shard_store::{ScrubReport, ShareStore, Usage};

pub use shard_net::faults::{ENV, Lie};

/// A share store that lies as told (see the module docs).
pub struct Adversary {
    inner: Arc<dyn ShareStore>,
    lies: Vec<Lie>,
    accepted: AtomicU64,
    first_read: OnceLock<Instant>,
}

impl Adversary {
    /// Wraps `inner` when `SHARD_ADVERSARY` is set; returns it unchanged otherwise.
    pub fn from_env(inner: Arc<dyn ShareStore>) -> Result<Arc<dyn ShareStore>, String> {
        let Ok(text) = std::env::var(ENV) else {
            return Ok(inner);
        };
        let lies = Lie::parse_list(&text)?;
        tracing::warn!("this node is a test adversary: {lies:?}");
        Ok(Arc::new(Self {
            inner,
            lies,
            accepted: AtomicU64::new(0),
            first_read: OnceLock::new(),
        }))
    }

    /// Wraps `inner` in a store that tells `lies` (an in-process test's lying node).
    pub fn wrap(inner: Arc<dyn ShareStore>, lies: Vec<Lie>) -> Arc<dyn ShareStore> {
        Arc::new(Self {
            inner,
            lies,
            accepted: AtomicU64::new(0),
            first_read: OnceLock::new(),
        })
    }

    fn lies(&self, lie: Lie) -> bool {
        self.lies.contains(&lie)
    }

    /// Whether a share read now falls in the `fail-reads-for-ms` window.
    fn read_fails(&self) -> bool {
        self.lies.iter().any(|l| match l {
            Lie::FailReadsFor(ms) => {
                let first = self.first_read.get_or_init(Instant::now);
                first.elapsed() < Duration::from_millis(*ms)
            }
            _ => false,
        })
    }

    fn fill_after(&self) -> Option<u64> {
        self.lies.iter().find_map(|l| match l {
            Lie::FillAfter(n) => Some(*n),
            _ => None,
        })
    }
}

fn full() -> shard_store::Error {
    shard_store::Error::Full { needed: 0, free: 0 }
}

impl ShareStore for Adversary {
    fn put(&self, ns: &Namespace, shares: &[Share]) -> shard_store::Result<()> {
        if self.lies(Lie::FakeCapacity) {
            return Err(full());
        }
        if let Some(limit) = self.fill_after() {
            let count = shares.len() as u64;
            let before = self.accepted.fetch_add(count, Ordering::SeqCst);
            if before + count > limit {
                return Err(full());
            }
        }
        self.inner.put(ns, shares)
    }

    fn get(&self, ns: &Namespace, id: &ShareId) -> shard_store::Result<Option<Share>> {
        if self.lies(Lie::Stall) {
            // A blocking-pool thread parked for the rest of the test: what a wedged disk does.
            std::thread::sleep(Duration::from_secs(3600));
        }
        if self.read_fails() {
            return Err(std::io::Error::other("a passing read fault (test adversary)").into());
        }
        if self.lies(Lie::OtherShare) {
            for other in self.inner.list(ns, None, 64)? {
                if other != *id
                    && let Some(share) = self.inner.get(ns, &other)?
                {
                    return Ok(Some(share));
                }
            }
        }
        let Some(share) = self.inner.get(ns, id)? else {
            return Ok(None);
        };
        let header = share.header();
        if self.lies(Lie::Truncated) {
            let half = (header.payload_len() / 2) & !1;
            let cut = ShareHeader::new(header.k(), header.n(), header.index(), half.max(2))?;
            let payload = share.payload().slice(..cut.payload_len() as usize);
            return Ok(Some(Share::new(cut, payload)?));
        }
        if self.lies(Lie::WrongBytes) {
            // One bit in every 16 bytes: a read of any range of 16 bytes or more sees some,
            // even a blob that reaches only a few bytes past a share's salt.
            let mut payload = share.payload().to_vec();
            for b in payload.iter_mut().step_by(16) {
                *b ^= 0x01;
            }
            return Ok(Some(Share::new(*header, Bytes::from(payload))?));
        }
        Ok(Some(share))
    }

    fn has(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<Vec<bool>> {
        self.inner.has(ns, ids)
    }

    fn delete(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.delete(ns, ids)
    }

    fn undelete(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.undelete(ns, ids)
    }

    fn purge(&self, ns: &Namespace, ids: &[ShareId]) -> shard_store::Result<u64> {
        self.inner.purge(ns, ids)
    }

    fn expire(&self, before: i64) -> shard_store::Result<(u64, u64)> {
        self.inner.expire(before)
    }

    fn namespaces(&self) -> shard_store::Result<Vec<Namespace>> {
        self.inner.namespaces()
    }

    fn list(
        &self,
        ns: &Namespace,
        after: Option<&ShareId>,
        limit: usize,
    ) -> shard_store::Result<Vec<ShareId>> {
        self.inner.list(ns, after, limit)
    }

    fn usage(&self) -> shard_store::Result<Usage> {
        let usage = self.inner.usage()?;
        if self.lies(Lie::FakeCapacity) {
            return Ok(Usage {
                used: 0,
                shares: usage.shares,
                quota: Some(1 << 40),
                reclaimable: 0,
            });
        }
        Ok(usage)
    }

    fn move_namespace(&self, from: &Namespace, to: &Namespace) -> shard_store::Result<u64> {
        self.inner.move_namespace(from, to)
    }

    fn walk(
        &self,
        after: Option<&(Namespace, ShareId)>,
        limit: usize,
    ) -> shard_store::Result<Vec<(Namespace, ShareId)>> {
        self.inner.walk(after, limit)
    }

    fn quarantined(&self, ns: &Namespace) -> shard_store::Result<Vec<ShareId>> {
        self.inner.quarantined(ns)
    }

    // The node's own scrub must not see the lies (it would quarantine what it serves badly).
    fn scrub(&self, ns: &Namespace) -> shard_store::Result<ScrubReport> {
        self.inner.scrub(ns)
    }
}
