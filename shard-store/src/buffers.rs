//! Large buffers used again instead of freshly mapped: the pack and recovery buffers of a put
//! or a prune (4–16 MiB each, one pair per pack).
//!
//! Why: an allocator hands a buffer that large back to the system when it is freed (jemalloc
//! at once, above its 8 MiB "oversize" threshold), so the next pack's buffer is fresh memory
//! and every page of it costs a fault and the kernel zeroing it. Measured on a put of a 1 GiB
//! file, 3-of-5: 498 000 minor faults at the owner, 96% of them on these two buffers, and a
//! fifth of its CPU time in faults and page clearing (BENCHMARKS.md). A pack's buffers live
//! until the last of its shares is sent, so they come back when the [`Bytes`] made of them are
//! dropped ([`BufferPool::share`]), on whichever thread that happens.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

/// Idle buffers a pool keeps at most; more are freed. Four packs' worth (a pack buffer and a
/// recovery buffer each): a put has three packs in flight, and the buffers they hold are at
/// its peak memory already. With two packs' worth, a fifth of the faults stayed (measured).
const KEEP: usize = 8;

/// A few idle buffers, shared by whoever makes and sends packs; cheap to clone. Dropping the
/// last clone frees the idle buffers; those still in use are freed when they come back.
#[derive(Clone, Default)]
pub struct BufferPool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer that can hold `len` bytes: the smallest idle one that can, or a new one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.idle.lock().ok().and_then(|mut idle| {
            let best = idle
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)?;
            Some(idle.swap_remove(best))
        });
        match reused {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => Vec::with_capacity(len),
        }
    }

    /// `len` zero bytes, in a buffer from [`BufferPool::take`].
    pub fn zeroed(&self, len: usize) -> Vec<u8> {
        let mut buf = self.take(len);
        buf.resize(len, 0);
        buf
    }

    /// `buf` as [`Bytes`] that hand it back to this pool when the last of them (and of their
    /// slices) is dropped, if the pool still exists then.
    pub fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            buf,
            pool: Arc::downgrade(&self.idle),
        })
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Keeps `buf` if there is room, or in place of a smaller idle buffer (so a pool that
    /// filled up with small buffers does not turn every large one away).
    fn give_back(idle: &Mutex<Vec<Vec<u8>>>, buf: Vec<u8>) {
        // The buffer not kept is freed after the lock is let go (freeing 16 MiB unmaps it).
        let _freed = {
            let Ok(mut idle) = idle.lock() else {
                return;
            };
            if idle.len() < KEEP {
                idle.push(buf);
                return;
            }
            match idle
                .iter_mut()
                .min_by_key(|b| b.capacity())
                .filter(|b| b.capacity() < buf.capacity())
            {
                Some(slot) => std::mem::replace(slot, buf),
                None => buf,
            }
        };
    }
}

/// A pool's buffer lent out as [`Bytes`].
struct Returning {
    buf: Vec<u8>,
    pool: Weak<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(idle) = self.pool.upgrade() {
            BufferPool::give_back(&idle, std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped_and_is_handed_out_again() {
        let pool = BufferPool::new();
        let mut buf = pool.take(1 << 20);
        buf.extend_from_slice(&[7u8; 1 << 20]);
        let at = buf.as_ptr();
        let bytes = pool.share(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "a slice still holds it");
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        assert_eq!(pool.idle(), 1);
        let again = pool.zeroed(1000);
        assert_eq!(again.as_ptr(), at, "the same memory, not a new buffer");
        assert_eq!(
            again,
            vec![0u8; 1000],
            "and zeroed as asked, not what it held"
        );
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn the_smallest_buffer_that_fits_is_taken_and_a_too_small_one_is_not() {
        let pool = BufferPool::new();
        for len in [4 << 20, 1 << 20, 16 << 20] {
            drop(pool.share(Vec::with_capacity(len)));
        }
        assert_eq!(pool.idle(), 3);
        assert!(pool.take(2 << 20).capacity() >= 4 << 20);
        let small = pool.take(512);
        assert!(small.capacity() >= 1 << 20 && small.capacity() < 4 << 20);
        assert!(pool.take(32 << 20).capacity() >= 32 << 20, "a new one");
        assert_eq!(pool.idle(), 1, "the 16 MiB one is left");
    }

    #[test]
    fn a_full_pool_keeps_a_large_buffer_in_place_of_its_smallest() {
        let pool = BufferPool::new();
        let small: Vec<Bytes> = (0..KEEP)
            .map(|_| pool.share(Vec::with_capacity(1024)))
            .collect();
        drop(small);
        assert_eq!(pool.idle(), KEEP);
        drop(pool.share(Vec::with_capacity(8 << 20)));
        drop(pool.share(Vec::with_capacity(16)));
        assert_eq!(pool.idle(), KEEP);
        assert!(
            pool.take(4 << 20).capacity() >= 8 << 20,
            "the large one was kept"
        );
        let rest: Vec<usize> = (0..KEEP - 1).map(|_| pool.take(0).capacity()).collect();
        assert!(
            rest.iter().all(|c| *c >= 1024),
            "the one smaller than all idle was not: {rest:?}"
        );
    }

    #[test]
    fn at_most_a_few_idle_buffers_are_kept_and_none_once_the_pool_is_gone() {
        let pool = BufferPool::new();
        let lent: Vec<Bytes> = (0..KEEP + 3).map(|_| pool.share(vec![1u8; 64])).collect();
        drop(lent);
        assert_eq!(pool.idle(), KEEP);
        let late = pool.share(vec![1u8; 64]);
        drop(pool);
        // Nothing to return to: the buffer is freed with the bytes, no panic, no leak.
        drop(late);
    }
}
