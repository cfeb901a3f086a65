//! The verified-token cache: token digest → verified claims, bounded by entries and by each
//! token's `exp`.
//!
//! Every token seen for the first time is inserted, so on a stream of fresh tokens the insert
//! is paid once per request next to a signature check. A general-purpose cache (admission
//! sketch, timer wheel, write log) costs a tenth of such a request; this one is a sharded
//! hash map with first-in-first-out eviction and a sweep of expired entries at most once a
//! second per shard:
//!
//! - a look-up never returns an entry at or past its expiry, swept or not;
//! - the cache never holds more than its bound, counted over all shards: an insert into a full
//!   cache first drops the oldest insert of its own shard (tokens are inserted roughly in
//!   issue order, so that is also about the soonest to expire);
//! - expired entries are dropped by the next insert into their shard after they expire, and
//!   by [`TokenCache::len`] (the metrics scrape), so memory returns once tokens expire.
//!
//! Keys are SHA-256 digests of tokens that passed verification, so their bits are uniform and
//! cannot be chosen by a client: the map hashes them by taking eight of their bytes.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards of a large cache (a power of two). Caches too small to give each shard
/// [`MIN_PER_SHARD`] entries use fewer, down to one, so that the entry a small cache evicts
/// is its oldest.
const MAX_SHARDS: usize = 16;
const MIN_PER_SHARD: u64 = 1024;

/// An expired entry is swept at most this often per shard (seconds).
const SWEEP_EVERY: i64 = 1;

/// A SHA-256 digest used as a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Digest(pub(super) [u8; 32]);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Bytes 0.. select the shard; these select the bucket.
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(b));
    }
}

/// Passes [`Digest`]'s eight bytes through: they are already uniform.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `Digest`; kept correct for any other caller (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

struct Slot<V> {
    value: V,
    /// Unix seconds; the entry is dead from this second on.
    expires_at: i64,
}

struct Shard<V> {
    map: HashMap<Digest, Slot<V>, BuildHasherDefault<DigestHasher>>,
    /// Keys in insert order. Holds every key of `map`, plus keys already dropped by a look-up
    /// or a sweep until eviction or the next sweep passes them.
    order: VecDeque<Digest>,
    /// No entry expires before this (unix seconds), so no sweep is due before it.
    next_sweep: i64,
}

impl<V> Shard<V> {
    /// Drops the entries dead at `now`; returns how many.
    fn sweep(&mut self, now: i64) -> usize {
        let before = self.map.len();
        let mut soonest = i64::MAX;
        self.map.retain(|_, s| {
            let live = s.expires_at > now;
            if live {
                soonest = soonest.min(s.expires_at);
            }
            live
        });
        self.order.retain(|k| self.map.contains_key(k));
        self.next_sweep = soonest.max(now + SWEEP_EVERY);
        before - self.map.len()
    }

    /// Drops the oldest entry; false when the shard is empty.
    fn evict_one(&mut self) -> bool {
        while let Some(k) = self.order.pop_front() {
            if self.map.remove(&k).is_some() {
                return true;
            }
        }
        false
    }
}

/// A bounded map from token digest to `V`, each entry dead at its own expiry.
pub(super) struct TokenCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    max: usize,
    /// Entries held, over all shards. An insert reserves its place here before it adds the
    /// entry, so concurrent inserts into different shards cannot overshoot `max` together.
    len: AtomicUsize,
}

impl<V> TokenCache<V> {
    /// A cache of at most `max_entries` (≥ 1) entries.
    pub(super) fn new(max_entries: u64) -> Self {
        let max_entries = max_entries.max(1);
        let shards = usize::try_from(max_entries / MIN_PER_SHARD)
            .unwrap_or(MAX_SHARDS)
            .clamp(1, MAX_SHARDS);
        // Round down to a power of two so that a digest byte picks the shard with a mask.
        let shards = 1usize << (usize::BITS - 1 - shards.leading_zeros());
        TokenCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        order: VecDeque::new(),
                        next_sweep: i64::MAX,
                    })
                })
                .collect(),
            max: usize::try_from(max_entries).unwrap_or(usize::MAX),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &Digest) -> MutexGuard<'_, Shard<V>> {
        let i = usize::from(key.0[0]) & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a shard inconsistent in a way that
        // matters (at worst a key in `order` without an entry), so a poisoned lock is used.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks `key` up at `now` (unix seconds). `accept` sees the live entry and says what to
    /// return; when it returns `None` (the entry went stale in some other way), the entry is
    /// dropped.
    pub(super) fn get<R>(
        &self,
        key: &Digest,
        now: i64,
        accept: impl FnOnce(&V) -> Option<R>,
    ) -> Option<R> {
        let mut shard = self.shard(key);
        let slot = shard.map.get(key)?;
        let found = if now < slot.expires_at {
            accept(&slot.value)
        } else {
            None
        };
        if found.is_none() && shard.map.remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        found
    }

    /// Inserts (or replaces) `key`, live until `expires_at` (unix seconds). An entry that
    /// would already be dead is not inserted.
    pub(super) fn insert(&self, key: Digest, value: V, expires_at: i64, now: i64) {
        if expires_at <= now {
            return;
        }
        let mut guard = self.shard(&key);
        let shard = &mut *guard;
        if now >= shard.next_sweep {
            self.len.fetch_sub(shard.sweep(now), Ordering::Relaxed);
        }
        let slot = Slot { value, expires_at };
        if let Some(old) = shard.map.get_mut(&key) {
            *old = slot;
        } else {
            if self.len.fetch_add(1, Ordering::Relaxed) >= self.max {
                // Full: this shard's oldest makes room. A shard with nothing to give leaves
                // the token uncached (it is verified again on its next use).
                self.len.fetch_sub(1, Ordering::Relaxed);
                if !shard.evict_one() {
                    return;
                }
            }
            shard.map.insert(key, slot);
            shard.order.push_back(key);
            // Look-ups drop entries without touching `order`; compact it once the dropped
            // keys outnumber the live ones (amortised: each pass removes more than it keeps).
            if shard.order.len() > 2 * shard.map.len() + 64 {
                shard.order.retain(|k| shard.map.contains_key(k));
            }
        }
        shard.next_sweep = shard.next_sweep.min(expires_at.max(now + SWEEP_EVERY));
    }

    /// Live entries at `now`, after dropping the expired ones. Walks every entry: meant for
    /// the metrics scrape, not for the request path.
    pub(super) fn len(&self, now: i64) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                let mut shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                self.len.fetch_sub(shard.sweep(now), Ordering::Relaxed);
                shard.map.len() as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
