//! [`MemoryStore`]: revocations of one node, in a bounded in-process cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use moka::Expiry;

use super::{
    effective_ttl, query_keys, refuses, verdict_of, KeyScheme, RevocationQuery, RevocationStore,
    StoreError, Verdict,
};

/// One stored revocation: its value (the `revoked_before` time of a subject, 0 otherwise)
/// and when it expires.
#[derive(Debug, Clone, Copy)]
struct Entry {
    before: i64,
    expires_at: Instant,
}

/// Each entry expires at its own deadline.
struct ByDeadline;

impl Expiry<String, Entry> for ByDeadline {
    fn expire_after_create(&self, _: &String, e: &Entry, now: Instant) -> Option<Duration> {
        Some(e.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        e: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.expires_at.saturating_duration_since(now))
    }
}

/// Revocations held in this process: the embedded single-node default.
///
/// Bounded by `max_entries`; every entry expires with its TTL. When full, a new revocation is
/// refused with [`StoreError::Full`] instead of evicting an older one (eviction would
/// silently un-revoke a token). Replicas do not share it: with more than one replica, use
/// [`super::RedisStore`]. `check` does no I/O and never fails.
pub struct MemoryStore {
    cache: Cache<String, Entry>,
    /// One-time ids ([`RevocationStore::use_once`]), bounded on their own.
    once: Cache<String, Entry>,
    /// Live one-time ids: raised on insert, lowered by the cache's removal listener (the
    /// cache's own count lags behind inserts).
    once_live: Arc<AtomicU64>,
    keys: KeyScheme,
    max_entries: u64,
    /// Serialises writes, so that "read the old entry, store the larger one" and the bound
    /// check are atomic. Held only in synchronous code, never across an `.await`.
    writes: Mutex<()>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl MemoryStore {
    /// A store of at most `max_entries` revocations (no default: size it to the revocations
    /// expected within the longest token lifetime; each entry costs roughly 200 bytes). Too
    /// small a bound makes revocations fail with [`StoreError::Full`].
    pub fn new(max_entries: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_entries)
            .expire_after(ByDeadline)
            .build();
        let once_live = Arc::new(AtomicU64::new(0));
        let live = once_live.clone();
        // Capacity above the bound enforced by `use_once`, so the cache never evicts a live
        // id (that would reopen its replay window).
        let once = Cache::builder()
            .max_capacity(max_entries.saturating_mul(2))
            .expire_after(ByDeadline)
            .eviction_listener(move |_, _, _| {
                live.fetch_sub(1, Ordering::Relaxed);
            })
            .build();
        MemoryStore {
            cache,
            once,
            once_live,
            keys: KeyScheme::default(),
            max_entries,
            writes: Mutex::new(()),
        }
    }

    /// Number of entries held. Entries that expired within the last second or so may still
    /// be counted (the cache drops them in batches); a lookup never returns them.
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether the store holds no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict for `q`, synchronously (what [`RevocationStore::check`] returns).
    pub fn check_now(&self, q: &RevocationQuery<'_>) -> Verdict {
        for (kind, key) in query_keys(&self.keys, q) {
            if let Some(entry) = self.cache.get(&key) {
                if refuses(kind, Some(entry.before), q.iat) {
                    return verdict_of(kind);
                }
            }
        }
        Verdict::Valid
    }

    fn store(&self, key: String, before: i64, ttl: Duration) -> Result<(), StoreError> {
        let ttl = effective_ttl(ttl)?;
        let expires_at = Instant::now() + ttl;
        // A poisoned lock only means another writer panicked; the cache itself is consistent.
        let _guard = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = match self.cache.get(&key) {
            Some(old) => Entry {
                before: old.before.max(before),
                expires_at: old.expires_at.max(expires_at),
            },
            None => {
                self.cache.run_pending_tasks();
                if self.cache.entry_count() >= self.max_entries {
                    return Err(StoreError::Full);
                }
                Entry { before, expires_at }
            }
        };
        self.cache.insert(key, entry);
        Ok(())
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn check(&self, q: &RevocationQuery<'_>) -> Result<Verdict, StoreError> {
        Ok(self.check_now(q))
    }

    async fn revoke_token(&self, jti: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(self.keys.token_key(jti), 0, ttl)
    }

    async fn revoke_family(&self, family: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(self.keys.family_key(family), 0, ttl)
    }

    async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        before: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.store(self.keys.subject_key(issuer, subject), before, ttl)
    }

    async fn use_once(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = effective_ttl(ttl)?;
        let key = self.keys.once_key(id);
        let _guard = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.once.contains_key(&key) {
            return Ok(false);
        }
        // Expired ids are removed lazily: flush them only when the bound seems reached.
        if self.once_live.load(Ordering::Relaxed) >= self.max_entries {
            self.once.run_pending_tasks();
            if self.once_live.load(Ordering::Relaxed) >= self.max_entries {
                return Err(StoreError::Full);
            }
        }
        self.once_live.fetch_add(1, Ordering::Relaxed);
        self.once.insert(
            key,
            Entry {
                before: 0,
                expires_at: Instant::now() + ttl,
            },
        );
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn q<'a>(jti: Option<&'a str>, family: Option<&'a str>) -> RevocationQuery<'a> {
        RevocationQuery {
            jti,
            family,
            issuer: "https://idp.example",
            subject: Some("alice"),
            iat: Some(1_000),
        }
    }

    #[tokio::test]
    async fn memory_revoked_jti_is_refused_and_others_pass() {
        let s = MemoryStore::new(100);
        s.revoke_token("j1", HOUR).await.unwrap();
        assert_eq!(
            s.check(&q(Some("j1"), None)).await,
            Ok(Verdict::TokenRevoked)
        );
        assert_eq!(s.check(&q(Some("j2"), None)).await, Ok(Verdict::Valid));
    }

    #[tokio::test]
    async fn memory_revoked_family_refuses_every_member() {
        let s = MemoryStore::new(100);
        s.revoke_family("f1", HOUR).await.unwrap();
        for jti in ["a", "b", "c"] {
            assert_eq!(
                s.check(&q(Some(jti), Some("f1"))).await,
                Ok(Verdict::FamilyRevoked)
            );
        }
        assert_eq!(s.check(&q(Some("a"), Some("f2"))).await, Ok(Verdict::Valid));
    }

    #[tokio::test]
    async fn memory_subject_revocation_compares_iat() {
        let s = MemoryStore::new(100);
        s.revoke_subject("https://idp.example", "alice", 1_000, HOUR)
            .await
            .unwrap();
        let mut query = q(None, None);
        query.iat = Some(999);
        assert_eq!(s.check(&query).await, Ok(Verdict::SubjectRevoked));
        query.iat = Some(1_000);
        assert_eq!(s.check(&query).await, Ok(Verdict::Valid));
        query.iat = None;
        assert_eq!(s.check(&query).await, Ok(Verdict::SubjectRevoked));
        query.issuer = "https://other.example";
        assert_eq!(s.check(&query).await, Ok(Verdict::Valid));
    }

    #[tokio::test]
    async fn memory_subject_revocation_never_moves_back() {
        let s = MemoryStore::new(100);
        let (iss, sub) = ("https://idp.example", "alice");
        s.revoke_subject(iss, sub, 2_000, HOUR).await.unwrap();
        s.revoke_subject(iss, sub, 1_000, HOUR).await.unwrap();
        let mut query = q(None, None);
        query.iat = Some(1_500);
        assert_eq!(s.check(&query).await, Ok(Verdict::SubjectRevoked));
    }

    #[tokio::test]
    async fn memory_entries_expire_with_their_ttl() {
        let s = MemoryStore::new(100);
        // Below the minimum: stored for MIN_TTL (1 s), not zero.
        s.revoke_token("short", Duration::from_millis(1))
            .await
            .unwrap();
        s.revoke_token("long", HOUR).await.unwrap();
        assert_eq!(
            s.check(&q(Some("short"), None)).await,
            Ok(Verdict::TokenRevoked)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.check_now(&q(Some("short"), None)) != Verdict::Valid {
            assert!(Instant::now() < deadline, "entry did not expire");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            s.check(&q(Some("long"), None)).await,
            Ok(Verdict::TokenRevoked)
        );
        // Expired entries are dropped from the count shortly after (timer-wheel granularity).
        while s.len() != 1 {
            assert!(Instant::now() < deadline, "expired entry still counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn memory_store_is_bounded_and_keeps_existing_revocations_when_full() {
        let s = MemoryStore::new(3);
        for jti in ["a", "b", "c"] {
            s.revoke_token(jti, HOUR).await.unwrap();
        }
        assert_eq!(s.revoke_token("d", HOUR).await, Err(StoreError::Full));
        // Re-revoking an existing entry needs no room.
        assert_eq!(s.revoke_token("a", HOUR).await, Ok(()));
        assert_eq!(s.len(), 3);
        for jti in ["a", "b", "c"] {
            assert_eq!(
                s.check(&q(Some(jti), None)).await,
                Ok(Verdict::TokenRevoked)
            );
        }
        assert_eq!(s.check(&q(Some("d"), None)).await, Ok(Verdict::Valid));
    }

    #[tokio::test]
    async fn memory_ttl_above_maximum_is_refused() {
        let s = MemoryStore::new(3);
        let too_long = super::super::MAX_TTL + Duration::from_secs(1);
        assert_eq!(
            s.revoke_token("a", too_long).await,
            Err(StoreError::InvalidTtl)
        );
    }

    #[tokio::test]
    async fn memory_hostile_ids_are_stored_under_bounded_keys() {
        let s = MemoryStore::new(10);
        let huge = "x\r\n*".repeat(1024);
        s.revoke_token(&huge, HOUR).await.unwrap();
        assert_eq!(
            s.check(&q(Some(&huge), None)).await,
            Ok(Verdict::TokenRevoked)
        );
        s.cache.run_pending_tasks();
        assert!(s.cache.iter().all(|(k, _)| k.len() <= 8 + 71));
    }

    #[tokio::test]
    async fn memory_once_ids_are_accepted_once() {
        let s = MemoryStore::new(10);
        assert_eq!(s.use_once("proof-1", HOUR).await, Ok(true));
        assert_eq!(s.use_once("proof-1", HOUR).await, Ok(false));
        assert_eq!(s.use_once("proof-2", HOUR).await, Ok(true));
    }

    #[tokio::test]
    async fn memory_once_ids_do_not_crowd_out_revocations() {
        let s = MemoryStore::new(2);
        assert_eq!(s.use_once("a", HOUR).await, Ok(true));
        assert_eq!(s.use_once("b", HOUR).await, Ok(true));
        assert_eq!(s.use_once("c", HOUR).await, Err(StoreError::Full));
        s.revoke_token("jti-1", HOUR).await.unwrap();
        assert_eq!(s.check_now(&q(Some("jti-1"), None)), Verdict::TokenRevoked);
    }

    #[tokio::test]
    async fn memory_once_ids_expire_with_their_ttl() {
        let s = MemoryStore::new(10);
        assert_eq!(s.use_once("p", Duration::from_secs(1)).await, Ok(true));
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.use_once("p", Duration::from_secs(1)).await == Ok(false) {
            assert!(Instant::now() < deadline, "the one-time id never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
