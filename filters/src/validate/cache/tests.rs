use super::*;
use std::sync::atomic::Ordering;

/// A key whose shard byte and bucket bytes come from `n` (distinct `n` give distinct keys).
fn key(n: u64) -> Digest {
    let mut d = [0u8; 32];
    // A cheap mix so that consecutive `n` spread over shards and buckets like digests do.
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n >> 7);
    d[..8].copy_from_slice(&x.to_le_bytes());
    d[8..16].copy_from_slice(&x.rotate_left(29).to_le_bytes());
    d[16..24].copy_from_slice(&n.to_le_bytes());
    Digest(d)
}

fn live(c: &TokenCache<u64>, k: &Digest, now: i64) -> Option<u64> {
    c.get(k, now, |v| Some(*v))
}

/// Entries in the maps; also checks that the shared count agrees with them.
fn held(c: &TokenCache<u64>) -> usize {
    let n = c.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
    assert_eq!(
        c.len.load(Ordering::Relaxed),
        n,
        "the count drifted from the maps"
    );
    n
}

#[test]
fn entry_is_served_until_its_expiry_and_dropped_at_it() {
    let c = TokenCache::new(10);
    c.insert(key(1), 7, 100, 50);
    assert_eq!(live(&c, &key(1), 50), Some(7));
    assert_eq!(live(&c, &key(1), 99), Some(7));
    assert_eq!(live(&c, &key(1), 100), None);
    // The look-up at expiry dropped it: it is gone even for an earlier clock.
    assert_eq!(live(&c, &key(1), 60), None);
    assert_eq!(held(&c), 0);
}

#[test]
fn already_dead_entry_is_not_inserted() {
    let c = TokenCache::new(10);
    c.insert(key(1), 7, 50, 50);
    c.insert(key(2), 7, 10, 50);
    assert_eq!(held(&c), 0);
}

#[test]
fn rejected_entry_is_dropped() {
    let c = TokenCache::new(10);
    c.insert(key(1), 7, 100, 0);
    assert_eq!(c.get(&key(1), 1, |_| None::<()>), None);
    assert_eq!(held(&c), 0);
}

#[test]
fn small_cache_keeps_exactly_its_bound_and_evicts_the_oldest() {
    let c = TokenCache::new(3);
    assert_eq!(c.shards.len(), 1);
    for n in 1..=3 {
        c.insert(key(n), n, 100, 0);
    }
    for n in 1..=3 {
        assert_eq!(live(&c, &key(n), 1), Some(n));
    }
    c.insert(key(4), 4, 100, 0);
    assert_eq!(held(&c), 3);
    assert_eq!(live(&c, &key(1), 1), None, "the oldest insert goes first");
    for n in 2..=4 {
        assert_eq!(live(&c, &key(n), 1), Some(n));
    }
}

#[test]
fn replacing_a_key_updates_it_without_growing() {
    let c = TokenCache::new(3);
    c.insert(key(1), 1, 100, 0);
    c.insert(key(1), 2, 200, 0);
    assert_eq!(held(&c), 1);
    assert_eq!(c.shards[0].lock().unwrap().order.len(), 1);
    assert_eq!(live(&c, &key(1), 150), Some(2));
}

#[test]
fn large_cache_is_sharded_and_holds_exactly_its_bound() {
    assert_eq!(TokenCache::<u64>::new(100_000).shards.len(), MAX_SHARDS);
    assert_eq!(TokenCache::<u64>::new(2048).shards.len(), 2);
    assert_eq!(TokenCache::<u64>::new(3 * 1024).shards.len(), 2);
    assert_eq!(TokenCache::<u64>::new(1023).shards.len(), 1);

    let c = TokenCache::new(5000);
    assert_eq!(c.shards.len(), 4);
    for n in 0..30_000 {
        c.insert(key(n), n, 1000, 0);
        if n % 1000 == 999 {
            assert!(held(&c) <= 5000, "after {n}: {}", held(&c));
        }
    }
    // The bound is over all shards, so uneven shards do not evict early: exactly full.
    assert_eq!(held(&c), 5000);
    // The newest inserts are all there.
    for n in 29_900..30_000 {
        assert_eq!(live(&c, &key(n), 1), Some(n));
    }
}

#[test]
fn full_cache_skips_an_insert_into_an_empty_shard() {
    let c = TokenCache::new(2048);
    assert_eq!(c.shards.len(), 2);
    // Fill the cache through shard 0 only (even first byte).
    let mut n = 0u64;
    let mut shard0 = Vec::new();
    while shard0.len() < 2048 {
        let k = key(n);
        if k.0[0] & 1 == 0 {
            c.insert(k, n, 1000, 0);
            shard0.push(k);
        }
        n += 1;
    }
    assert_eq!(held(&c), 2048);
    let odd = (n..).map(key).find(|k| k.0[0] & 1 == 1).unwrap();
    c.insert(odd, 0, 1000, 0);
    assert_eq!(live(&c, &odd, 1), None, "shard 1 had nothing to evict");
    assert_eq!(held(&c), 2048);
    // Shard 0 still takes new tokens, in place of its oldest.
    let even = (n..).map(key).find(|k| k.0[0] & 1 == 0).unwrap();
    c.insert(even, 0, 1000, 0);
    assert_eq!(live(&c, &even, 1), Some(0));
    assert_eq!(live(&c, &shard0[0], 1), None);
    assert_eq!(held(&c), 2048);
}

#[test]
fn concurrent_inserts_never_overshoot_the_bound() {
    use std::sync::atomic::AtomicBool;
    let c = std::sync::Arc::new(TokenCache::new(4096));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    // Takes every shard's lock (in order; inserters hold one at a time), so each count is
    // a consistent snapshot of all shards.
    let checker = {
        let (c, done) = (c.clone(), done.clone());
        std::thread::spawn(move || {
            let mut snapshots = 0u64;
            while !done.load(Ordering::Relaxed) || snapshots == 0 {
                let guards: Vec<_> = c.shards.iter().map(|s| s.lock().unwrap()).collect();
                let n: usize = guards.iter().map(|g| g.map.len()).sum();
                assert!(n <= 4096, "{n} entries");
                snapshots += 1;
            }
            snapshots
        })
    };
    let inserters: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for n in 0..20_000 {
                    c.insert(key(t * 1_000_000 + n), n, 1000, 0);
                }
            })
        })
        .collect();
    for t in inserters {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(checker.join().unwrap() > 0);
    assert_eq!(held(&c), 4096);
}

#[test]
fn insert_after_expiry_sweeps_the_shard() {
    let c = TokenCache::new(1000);
    for n in 0..500 {
        c.insert(key(n), n, 10, 0);
    }
    c.insert(key(1000), 0, 100, 5);
    assert_eq!(held(&c), 501, "nothing is due before the first expiry");
    c.insert(key(1001), 0, 100, 10);
    assert_eq!(held(&c), 2);
    assert_eq!(c.shards[0].lock().unwrap().order.len(), 2);
}

#[test]
fn sweeps_are_at_most_once_a_second_per_shard() {
    let c = TokenCache::new(1000);
    c.insert(key(0), 0, 11, 10);
    c.insert(key(1), 0, 11, 10);
    assert_eq!(c.shards[0].lock().unwrap().next_sweep, 11);
    // A sweep at 11 drops both and schedules the next one no sooner than 12.
    c.insert(key(2), 0, 12, 11);
    assert_eq!(held(&c), 1);
    assert_eq!(c.shards[0].lock().unwrap().next_sweep, 12);
}

#[test]
fn len_drops_expired_entries_of_every_shard() {
    let c = TokenCache::new(100_000);
    for n in 0..2000 {
        c.insert(key(n), n, if n % 2 == 0 { 10 } else { 20 }, 0);
    }
    assert_eq!(c.len(5), 2000);
    assert_eq!(c.len(10), 1000);
    assert_eq!(held(&c), 1000);
    assert_eq!(c.len(20), 0);
    assert_eq!(held(&c), 0);
    let orders: usize = c.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
    assert_eq!(orders, 0);
}

#[test]
fn order_stays_bounded_when_look_ups_drop_entries() {
    let c = TokenCache::new(4);
    for n in 0..1000u64 {
        let now = i64::try_from(n).unwrap();
        c.insert(key(n), n, now + 1, now);
        // Dropped by the look-up, not by a sweep or an eviction.
        assert_eq!(c.get(&key(n), now, |_| None::<()>), None);
        let shard = c.shards[0].lock().unwrap();
        assert!(
            shard.order.len() <= 2 * shard.map.len() + 65,
            "{}",
            shard.order.len()
        );
    }
}

#[test]
fn keys_equal_in_their_hashed_bytes_stay_distinct() {
    let c = TokenCache::new(10);
    let a = Digest([1; 32]);
    let mut b = [1; 32];
    b[31] = 2;
    let b = Digest(b);
    c.insert(a, 1, 100, 0);
    c.insert(b, 2, 100, 0);
    assert_eq!(live(&c, &a, 1), Some(1));
    assert_eq!(live(&c, &b, 1), Some(2));
}

#[test]
fn hasher_byte_path_is_not_constant() {
    let h = |bytes: &[u8]| {
        let mut s = DigestHasher::default();
        s.write(bytes);
        s.finish()
    };
    assert_ne!(h(b"a"), h(b"b"));
}
