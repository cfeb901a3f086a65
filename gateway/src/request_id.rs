//! Request ids: 32 lowercase hex digits (128 bits), for correlating a request's log line, its
//! upstream request and its answer.
//!
//! Ids need to be unique, not secret, so they do not come from the system RNG on every
//! request (one `RAND_bytes` was ≈ 1.7 % of a pass-through request's CPU). Each thread draws a
//! 128-bit seed from the system RNG once, then steps two SplitMix64 generators: each is a
//! bijection of its counter, so a thread repeats no id for 2^64 requests, and ids of different
//! threads or replicas collide only if their random seeds do. One id reveals its thread's next
//! ones; that is acceptable because a client may choose its own id anyway (a valid incoming
//! `x-request-id` is kept), so an id is never a secret or a capability.

use std::cell::Cell;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn seed() -> [u64; 2] {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // No system RNG: the standard library's per-thread hash keys, still distinct per
        // thread and per start (ids are for correlation, not security).
        use std::hash::{BuildHasher as _, RandomState};
        let keys = RandomState::new();
        b[..8].copy_from_slice(&keys.hash_one(1u8).to_le_bytes());
        b[8..].copy_from_slice(&keys.hash_one(2u8).to_le_bytes());
    }
    let (lo, hi) = b.split_at(8);
    let word = |s: &[u8]| s.try_into().map_or(0, u64::from_le_bytes);
    [word(lo), word(hi)]
}

thread_local! {
    static STATE: Cell<[u64; 2]> = Cell::new(seed());
}

/// A fresh request id.
pub fn new() -> String {
    let [a, b] = STATE.with(|s| {
        let [x, y] = s.get();
        let next = [x.wrapping_add(GOLDEN), y.wrapping_add(GOLDEN)];
        s.set(next);
        next
    });
    let mut id = String::with_capacity(32);
    for word in [mix(a), mix(b)] {
        for shift in (0..16).rev() {
            let digit = ((word >> (shift * 4)) & 0xf) as usize;
            id.push(char::from(b"0123456789abcdef"[digit]));
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn ids_are_32_lowercase_hex_digits_and_valid_request_ids() {
        for _ in 0..100 {
            let id = super::new();
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            assert!(filters::headers::is_valid_request_id(id.as_bytes()));
        }
    }

    #[test]
    fn ids_do_not_repeat_within_or_across_threads() {
        let per_thread = 20_000;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..per_thread).map(|_| super::new()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().expect("id thread") {
                assert!(seen.insert(id), "an id repeated");
            }
        }
        assert_eq!(seen.len(), 4 * per_thread);
    }

    #[test]
    fn threads_start_from_different_seeds() {
        let first = || std::thread::spawn(super::new).join().expect("id thread");
        assert_ne!(first(), first());
    }
}
