//! Per-issuer JWKS cache: fetched at start, refreshed in the background, refetched once on
//! an unknown `kid` (single-flight, with a cooldown), last good keys kept on failure up to
//! `max_stale`.
//!
//! The request path only ever calls [`JwksCache::lookup`] (one atomic load, no lock, no
//! I/O) or [`JwksCache::lookup_or_refetch`], which adds I/O only for a `kid` it does not
//! know, and then at most once per `refetch_cooldown` for all requests together.
//!
//! Fetching: no redirects, no proxy, `https` only (loopback excepted), a timeout per
//! request, the document capped at `limits.max_bytes` before it is buffered. A document
//! that cannot be fetched, does not parse, or holds no usable key is a failed fetch: the
//! keys in use are kept (until `max_stale`), and the failure is logged and counted.

mod fetch;
pub(crate) use fetch::check_url;
mod keys;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::jwk::{JwksLimits, VerifyingKey};
use crate::jws::Algorithm;

use self::fetch::Fetcher;
use self::keys::{KeySet, Keys};

/// Shortest wait of the background refresher between two fetches, and the first retry
/// delay after a failure (1 s). It bounds the load a failing or tiny `refresh` can cause.
const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An explicit JWKS URI.
    Uri(String),
    /// `{issuer}/.well-known/openid-configuration` → `jwks_uri`; the metadata's `issuer`
    /// must equal the configured one.
    ///
    /// Discovery is repeated on every fetch (the metadata is small, fetches are rare), so an
    /// IdP that moves its `jwks_uri` is followed on the next refresh. The `jwks_uri` must
    /// pass the same URL rule as a configured URI.
    Discovery,
    /// A local file, read at start and on every refresh.
    File(PathBuf),
}

/// Settings of one issuer's key cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The issuer's exact `iss` value (used for discovery and its check).
    pub issuer: String,
    /// Where the keys come from (no default: the configuration must name one).
    pub source: JwksSource,
    /// Algorithms keys may be pinned to (the issuer's allow-list).
    pub algorithms: Vec<Algorithm>,
    /// Background refresh period (default 5 min). Shorter means more load on the IdP;
    /// longer means a rotation is seen later (unknown `kid`s still trigger a refetch).
    /// The refresher never waits less than 1 s.
    pub refresh: Duration,
    /// Least time between two fetches triggered by unknown `kid`s (default 30 s). Shorter
    /// lets clients sending random `kid`s make the gateway fetch more often.
    pub refetch_cooldown: Duration,
    /// How long last good keys are used after fetches start failing (default 1 h).
    /// Longer keeps the service up through a longer IdP outage, but also keeps a key the
    /// IdP has withdrawn usable for longer.
    pub max_stale: Duration,
    /// Timeout of one fetch, connect to last byte (default 5 s); with discovery, of each of
    /// its two requests.
    pub fetch_timeout: Duration,
    /// Size and key-count caps of the document (default 256 KiB, 64 keys).
    pub limits: JwksLimits,
    /// Allow plain `http` to non-loopback hosts (default false: https only, loopback excepted).
    pub allow_insecure_http: bool,
}

impl JwksConfig {
    /// A configuration with the documented defaults: refresh 5 min, refetch cooldown 30 s,
    /// `max_stale` 1 h, fetch timeout 5 s, default limits, https only (loopback excepted).
    pub fn new(issuer: impl Into<String>, source: JwksSource, algorithms: Vec<Algorithm>) -> Self {
        JwksConfig {
            issuer: issuer.into(),
            source,
            algorithms,
            refresh: Duration::from_secs(300),
            refetch_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
            limits: JwksLimits::default(),
            allow_insecure_http: false,
        }
    }

    /// Checks the source against the URL rule (https, or http to loopback unless
    /// `allow_insecure_http`) without building a client: what [`JwksCache::new`] refuses.
    pub fn check(&self) -> Result<(), JwksError> {
        fetch::origin(self).map(|_| ())
    }
}

/// Why a fetch failed, or a source was refused at construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A URL uses plain `http` to a host that is not loopback, and `allow_insecure_http`
    /// is off.
    #[error("refusing to fetch keys over plain http from a non-loopback host: {0}")]
    InsecureUrl(String),
    /// A URL does not parse, has no host, an unsupported scheme, or carries credentials.
    #[error("invalid URL: {0}")]
    BadUrl(String),
    /// Transport failure, non-2xx status (only the status is kept), redirect, timeout, or
    /// an unreadable file.
    #[error("fetch failed: {0}")]
    Fetch(String),
    /// The discovery document names another issuer than the configured one.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The metadata's `issuer` (shortened if long).
        found: String,
    },
    /// The document is too large, is not a key set, has too many keys, or no usable key.
    #[error("bad key set: {0}")]
    BadKeySet(String),
}

/// Result of a key lookup.
pub enum KeyLookup {
    /// The key to verify with; it supports the requested algorithm.
    Found(Arc<VerifyingKey>),
    /// Keys are loaded but none has this `kid` (or none fits when `kid` is absent).
    NotFound,
    /// No usable key set: never fetched, or stale beyond `max_stale`.
    Unavailable,
}

impl std::fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLookup::Found(key) => f.debug_tuple("Found").field(&key.kid()).finish(),
            KeyLookup::NotFound => f.write_str("NotFound"),
            KeyLookup::Unavailable => f.write_str("Unavailable"),
        }
    }
}

/// Counters and gauges for metrics and readiness.
#[derive(Debug, Clone, Default)]
pub struct JwksStats {
    /// Keys held (including while stale beyond `max_stale`, when they are not used).
    pub keys: usize,
    /// Time since the key set in use was fetched; `None` before the first success.
    pub age: Option<Duration>,
    /// Successful fetches since construction.
    pub fetch_ok: u64,
    /// Failed fetches since construction.
    pub fetch_error: u64,
    /// The failure of the most recent fetch, cleared by the next success. Short text with
    /// no key material or response body.
    pub last_error: Option<String>,
}

/// State guarded by the single-flight lock.
#[derive(Default)]
struct Flight {
    /// Result of the last completed fetch, handed to callers that waited for it.
    last_result: Option<Result<usize, JwksError>>,
}

/// One issuer's key cache.
///
/// Built by [`JwksCache::new`] (no I/O); the gateway then calls [`JwksCache::refresh`] once
/// and spawns [`JwksCache::run_refresher`].
pub struct JwksCache {
    config: JwksConfig,
    fetcher: Fetcher,
    /// Handle on the `Arc` this cache lives in, so that a fetch can run in its own task and
    /// finish even if the request that started it goes away.
    me: Weak<JwksCache>,
    keys: ArcSwapOption<KeySet>,
    generation: AtomicU64,
    fetch_ok: AtomicU64,
    fetch_error: AtomicU64,
    last_error: ArcSwapOption<String>,
    /// Fetches completed (ok or not); a waiter that sees it move reuses that fetch's result.
    completed: AtomicU64,
    flight: Arc<tokio::sync::Mutex<Flight>>,
    /// True while a fetch runs: `kid` lookups then wait for it even within the cooldown.
    fetching: AtomicBool,
    /// Callers waiting for the single-flight lock (observed by tests).
    waiters: AtomicUsize,
    /// Reference point of `kid_refetch_at`.
    epoch: Instant,
    /// Start of the last `kid`-triggered refetch, in nanoseconds since `epoch` plus one;
    /// 0 when there was none.
    kid_refetch_at: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.config.issuer)
            .field("source", &self.fetcher.describe())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// Builds the cache (no fetch yet). Refuses insecure or unparsable URLs: `https` always
    /// passes; `http` only to `127.0.0.0/8`, `::1` or `localhost`, unless
    /// `allow_insecure_http`. With [`JwksSource::Discovery`] the rule applies to the issuer
    /// here and to the discovered `jwks_uri` on each fetch.
    pub fn new(config: JwksConfig) -> Result<Arc<Self>, JwksError> {
        let fetcher = Fetcher::new(&config)?;
        Ok(Arc::new_cyclic(|me| JwksCache {
            config,
            fetcher,
            me: me.clone(),
            keys: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            fetch_ok: AtomicU64::new(0),
            fetch_error: AtomicU64::new(0),
            last_error: ArcSwapOption::empty(),
            completed: AtomicU64::new(0),
            flight: Arc::new(tokio::sync::Mutex::new(Flight::default())),
            fetching: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            epoch: Instant::now(),
            kid_refetch_at: AtomicU64::new(0),
        }))
    }

    /// The configuration it was built with (the gateway reuses a cache whose config is equal).
    pub fn config(&self) -> &JwksConfig {
        &self.config
    }

    /// Fetches now and installs the keys on success; returns how many keys are installed.
    ///
    /// Concurrent calls share one fetch: a call that arrives while a fetch is running waits
    /// for it and returns its result. On failure the keys in use are kept.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        self.single_flight(false)
            .await
            .unwrap_or_else(|| Err(JwksError::Fetch("no fetch was made".into())))
    }

    /// Looks a key up without I/O. With `kid = None`, the single key supporting `alg`, if
    /// exactly one does. A key without a `kid` is only found by a lookup without one.
    ///
    /// Returns [`KeyLookup::Unavailable`] before the first successful fetch and once the
    /// last successful fetch is older than `max_stale` (the keys are kept, and used again
    /// as soon as a fetch succeeds).
    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        let guard = self.keys.load();
        let Some(set) = guard.as_ref() else {
            return KeyLookup::Unavailable;
        };
        if set.fetched_at.elapsed() > self.config.max_stale {
            return KeyLookup::Unavailable;
        }
        set.keys
            .find(kid, alg)
            .map_or(KeyLookup::NotFound, |key| KeyLookup::Found(Arc::clone(key)))
    }

    /// Looks a key up; on `NotFound` refetches at most once per cooldown (single-flight)
    /// and looks again.
    ///
    /// However many requests carry unknown `kid`s at once, they cause at most one fetch per
    /// `refetch_cooldown`. Requests that arrive while any fetch runs (this one or a
    /// background refresh) wait for it, bounded by `fetch_timeout`, and look again; later
    /// ones within the cooldown get `NotFound` without waiting.
    /// `Unavailable` is returned as is: recovering from it is the refresher's job.
    pub async fn lookup_or_refetch(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        match self.lookup(kid, alg) {
            KeyLookup::NotFound => {}
            other => return other,
        }
        if !self.kid_refetch_allowed() && !self.fetching.load(Ordering::Acquire) {
            // Look again: a fetch may have installed new keys since the first look.
            return self.lookup(kid, alg);
        }
        // The outcome is seen through the key set; a failure is already logged and counted.
        let _ = self.single_flight(true).await;
        self.lookup(kid, alg)
    }

    /// Runs the background refresh loop forever; stop it by aborting its task.
    ///
    /// It does not fetch on start (the gateway calls [`JwksCache::refresh`] once itself):
    /// it first waits `refresh`, or 1 s if nothing is loaded or the last fetch failed.
    /// After a success it waits `refresh`; after a failure it retries after 1 s, then 2 s,
    /// 4 s… capped at `refresh`. It never fetches more often than once a second.
    pub async fn run_refresher(self: Arc<Self>) {
        let period = self.config.refresh.max(MIN_REFRESH_DELAY);
        // `backoff` is the wait after the next failure; starting failed counts as one.
        let failing = self.keys.load().is_none() || self.last_error.load().is_some();
        let (mut delay, mut backoff) = if failing {
            (
                MIN_REFRESH_DELAY,
                MIN_REFRESH_DELAY.saturating_mul(2).min(period),
            )
        } else {
            (period, MIN_REFRESH_DELAY)
        };
        loop {
            tokio::time::sleep(delay).await;
            match self.refresh().await {
                Ok(_) => {
                    backoff = MIN_REFRESH_DELAY;
                    delay = period;
                }
                Err(_) => {
                    delay = backoff.min(period);
                    backoff = backoff.saturating_mul(2).min(period);
                }
            }
        }
    }

    /// True when a usable key set is loaded (fetched at least once, not older than
    /// `max_stale`).
    pub fn is_ready(&self) -> bool {
        self.keys
            .load()
            .as_ref()
            .is_some_and(|set| set.fetched_at.elapsed() <= self.config.max_stale)
    }

    /// Incremented each time the installed key set changes (lets callers drop derived caches).
    /// Starts at 0; the first successful fetch makes it 1. Refetching an identical document
    /// does not change it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Current counters, for metrics and the readiness endpoint.
    pub fn stats(&self) -> JwksStats {
        let set = self.keys.load_full();
        JwksStats {
            keys: set.as_ref().map_or(0, |s| s.keys.count),
            age: set.as_ref().map(|s| s.fetched_at.elapsed()),
            fetch_ok: self.fetch_ok.load(Ordering::Relaxed),
            fetch_error: self.fetch_error.load(Ordering::Relaxed),
            last_error: self.last_error.load_full().map(|e| e.as_ref().clone()),
        }
    }

    /// Nanoseconds since `epoch`, plus one (so that 0 can mean "never").
    fn now_mark(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Whether the cooldown since the last `kid`-triggered refetch has passed.
    fn kid_refetch_allowed(&self) -> bool {
        let last = self.kid_refetch_at.load(Ordering::Acquire);
        if last == 0 {
            return true;
        }
        let since = Duration::from_nanos(self.now_mark().saturating_sub(last));
        since >= self.config.refetch_cooldown
    }

    /// Runs one fetch under the single-flight lock and returns its result; or, if a fetch
    /// completed while this call waited for the lock, returns that fetch's result. With
    /// `kid_triggered`, the cooldown is checked again under the lock and `None` is returned
    /// when it has not passed.
    async fn single_flight(&self, kid_triggered: bool) -> Option<Result<usize, JwksError>> {
        let seen = self.completed.load(Ordering::Acquire);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let mut flight = Arc::clone(&self.flight).lock_owned().await;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        if self.completed.load(Ordering::Acquire) != seen {
            return flight.last_result.clone();
        }
        if kid_triggered {
            if !self.kid_refetch_allowed() {
                return None;
            }
            self.kid_refetch_at
                .store(self.now_mark(), Ordering::Release);
        }
        // Run the fetch in its own task: if the caller is dropped (client gone), the fetch
        // still completes and installs, and the lock is held until it has.
        let Some(this) = self.me.upgrade() else {
            return Some(self.fetch_and_install(&mut flight).await);
        };
        let task = tokio::spawn(async move {
            let mut flight = flight;
            this.fetch_and_install(&mut flight).await
        });
        Some(
            task.await.unwrap_or_else(|_| {
                Err(JwksError::Fetch("the fetch task did not complete".into()))
            }),
        )
    }

    /// Fetches, parses and installs; records the outcome. Called with the lock held.
    async fn fetch_and_install(&self, flight: &mut Flight) -> Result<usize, JwksError> {
        let _fetching = FetchingFlag::raise(&self.fetching);
        let result = match self.fetcher.fetch().await {
            Ok(doc) => self
                .parse_and_install(&doc)
                .map_err(|error| (self.fetcher.describe(), error)),
            Err(failure) => Err((failure.at, failure.error)),
        };
        let result = match result {
            Ok(count) => {
                self.fetch_ok.fetch_add(1, Ordering::Relaxed);
                self.last_error.store(None);
                Ok(count)
            }
            Err((at, error)) => {
                tracing::warn!(issuer = %self.config.issuer, url = %at, %error, "JWKS fetch failed; keeping the keys in use");
                self.fetch_error.fetch_add(1, Ordering::Relaxed);
                self.last_error.store(Some(Arc::new(error.to_string())));
                Err(error)
            }
        };
        flight.last_result = Some(result.clone());
        self.completed.fetch_add(1, Ordering::Release);
        result
    }

    /// Parses `doc` and installs its keys; a document without a usable key is refused.
    fn parse_and_install(&self, doc: &[u8]) -> Result<usize, JwksError> {
        let keys = crate::jwk::parse_jwks(doc, &self.config.algorithms, &self.config.limits)
            .map_err(|e| JwksError::BadKeySet(e.to_string()))?;
        if keys.is_empty() {
            return Err(JwksError::BadKeySet("no usable key in the document".into()));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, doc).as_ref());
        let fetched_at = Instant::now();
        // Only the fetch path writes the key set, and it holds the lock: no lost update.
        let unchanged = self
            .keys
            .load_full()
            .filter(|current| current.keys.digest == digest)
            .map(|current| Arc::clone(&current.keys));
        let (keys, changed) = match unchanged {
            Some(keys) => (keys, false),
            None => (Arc::new(Keys::new(keys, digest)), true),
        };
        let count = keys.count;
        self.keys.store(Some(Arc::new(KeySet { keys, fetched_at })));
        if changed {
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            tracing::info!(issuer = %self.config.issuer, keys = count, generation, "JWKS key set installed");
        }
        Ok(count)
    }
}

/// Holds `fetching` up for as long as it lives, even if the fetch is dropped half-way.
struct FetchingFlag<'a>(&'a AtomicBool);

impl<'a> FetchingFlag<'a> {
    fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        FetchingFlag(flag)
    }
}

impl Drop for FetchingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
