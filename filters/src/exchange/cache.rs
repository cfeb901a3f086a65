//! Cache of exchanged tokens, per (subject token, audience, scope), with single-flight.
//!
//! Contract with the caller: revocation of the subject token is checked BEFORE the cache is
//! consulted, on every request. The cache only saves the exchange; it never answers "is
//! this subject still valid". A cached backend token never outlives the subject's `exp`
//! (the exchanger caps `expires_at` by it) and is dropped before its own expiry.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::digest::{Context, SHA256};
use moka::future::Cache;
use moka::Expiry;

use super::{narrow_scopes, ExchangeError, ExchangeRequest, Exchanger, IssuedToken};
use crate::validate::unix_now;

/// Default bound on cached tokens (100 000). Each entry is the backend token (about 1 KiB)
/// plus a 32-byte key; more entries cost memory, fewer cost exchanges (signatures or STS
/// round trips) for busy replicas.
pub const DEFAULT_EXCHANGE_CACHE_ENTRIES: u64 = 100_000;

/// A token is dropped at least this long before it expires (5 s), so that a request never
/// forwards a token that expires in flight.
const MIN_EARLY_EXPIRY: Duration = Duration::from_secs(5);

/// …and at least this fraction of its lifetime early (1/10).
const EARLY_EXPIRY_DIVISOR: i64 = 10;

/// The SHA-256 of everything that shapes the issued token.
type Key = [u8; 32];

#[derive(Clone)]
struct Cached {
    token: IssuedToken,
    keep_for: Duration,
}

/// Per-entry lifetime: the one computed when the token was issued.
struct KeepFor;

impl Expiry<Key, Cached> for KeepFor {
    fn expire_after_create(&self, _: &Key, value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.keep_for)
    }
}

/// Counters of an [`ExchangeCache`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeCacheStats {
    /// Requests answered without calling the exchanger (including requests that waited for
    /// another request's exchange of the same key).
    pub hits: u64,
    /// Requests that called the exchanger (successfully or not).
    pub misses: u64,
    /// Entries held now (approximate: expired entries may still be counted until evicted).
    pub entries: u64,
}

/// Caches another exchanger's tokens; itself an [`Exchanger`].
///
/// Key: the SHA-256 of the subject's `iss`, `jti` and `sub` — or, for a subject without a
/// `jti`, of the subject token itself — with the audience, the narrowed scope, the `ttl`
/// and the carried claim names (every input that shapes the backend token). Keeping only a
/// digest means no token material is held in keys.
///
/// Concurrent requests for one key share one exchange; errors are not cached (each later
/// request tries again). An entry is dropped at `expires_at` minus the larger of 10 % of
/// its lifetime and 5 s; a token with less left than that is returned but not cached.
pub struct ExchangeCache {
    inner: Arc<dyn Exchanger>,
    cache: Cache<Key, Cached>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl fmt::Debug for ExchangeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ExchangeCache {
    /// Wraps `inner` with a cache of at most `max_entries` tokens (see
    /// [`DEFAULT_EXCHANGE_CACHE_ENTRIES`]); when full, the least useful entries are evicted.
    pub fn new(inner: Arc<dyn Exchanger>, max_entries: u64) -> Self {
        ExchangeCache {
            inner,
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(KeepFor)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Hit and miss counts since creation, and the entry count.
    pub fn stats(&self) -> ExchangeCacheStats {
        ExchangeCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
        }
    }

    /// Drops every entry (e.g. after the signer's keys changed).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }
}

#[async_trait]
impl Exchanger for ExchangeCache {
    async fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError> {
        let key = cache_key(req);
        let ran = AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                let token = self.inner.exchange(req).await?;
                let keep_for = keep_for(token.expires_at, unix_now());
                Ok::<_, ExchangeError>(Cached { token, keep_for })
            })
            .await;
        if ran.load(Ordering::Relaxed) {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        result
            .map(|cached| cached.token)
            .map_err(Arc::unwrap_or_clone)
    }
}

/// How long a token expiring at `expires_at` may be served from the cache, from `now`:
/// its remaining lifetime minus max(lifetime / 10, 5 s); zero when nothing is left.
pub(super) fn keep_for(expires_at: i64, now: i64) -> Duration {
    let lifetime = expires_at.saturating_sub(now);
    let early = (lifetime / EARLY_EXPIRY_DIVISOR).max(MIN_EARLY_EXPIRY.as_secs() as i64);
    let keep = lifetime.saturating_sub(early);
    u64::try_from(keep).map_or(Duration::ZERO, Duration::from_secs)
}

/// The cache key of a request: a digest of length-prefixed fields, so that no two
/// different field lists give the same input.
pub(super) fn cache_key(req: &ExchangeRequest<'_>) -> Key {
    fn field(ctx: &mut Context, bytes: &[u8]) {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    }
    let subject = req.subject;
    let mut ctx = Context::new(&SHA256);
    match &subject.jti {
        Some(jti) => {
            field(&mut ctx, b"jti");
            field(&mut ctx, subject.iss.as_bytes());
            field(&mut ctx, jti.as_bytes());
            field(
                &mut ctx,
                subject.sub.as_deref().unwrap_or_default().as_bytes(),
            );
        }
        None => {
            field(&mut ctx, b"token");
            field(&mut ctx, req.subject_token.as_bytes());
        }
    }
    field(&mut ctx, req.audience.as_bytes());
    field(&mut ctx, req.actor.unwrap_or_default().as_bytes());
    field(
        &mut ctx,
        narrow_scopes(&subject.scopes, req.allowed_scopes).as_bytes(),
    );
    field(&mut ctx, &req.ttl.as_secs().to_be_bytes());
    for name in req.carry_claims {
        field(&mut ctx, name.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}
