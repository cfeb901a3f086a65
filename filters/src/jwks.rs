//! Per-issuer JWKS cache: fetched at start, refreshed in the background, refetched once on
//! an unknown `kid` (single-flight, with a cooldown), last good keys kept on failure up to
//! `max_stale`.
//!
//! INTERFACE STUB — implementation owned by the JWKS helper.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::jwk::{JwksLimits, VerifyingKey};
use crate::jws::Algorithm;

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An explicit JWKS URI.
    Uri(String),
    /// `{issuer}/.well-known/openid-configuration` → `jwks_uri`; the metadata's `issuer`
    /// must equal the configured one.
    Discovery,
    /// A local file, read at start and on every refresh.
    File(PathBuf),
}

/// Settings of one issuer's key cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The issuer's exact `iss` value (used for discovery and its check).
    pub issuer: String,
    pub source: JwksSource,
    /// Algorithms keys may be pinned to (the issuer's allow-list).
    pub algorithms: Vec<Algorithm>,
    /// Background refresh period (default 5 min).
    pub refresh: Duration,
    /// Least time between two fetches triggered by unknown `kid`s (default 30 s).
    pub refetch_cooldown: Duration,
    /// How long last good keys are used after fetches start failing (default 1 h).
    pub max_stale: Duration,
    /// Timeout of one fetch, connect to last byte (default 5 s).
    pub fetch_timeout: Duration,
    pub limits: JwksLimits,
    /// Allow plain `http` to non-loopback hosts (default false: https only, loopback excepted).
    pub allow_insecure_http: bool,
}

/// Why a fetch failed, or a source was refused at construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("refusing to fetch keys over plain http from a non-loopback host: {0}")]
    InsecureUrl(String),
    #[error("invalid URL: {0}")]
    BadUrl(String),
    #[error("fetch failed: {0}")]
    Fetch(String),
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("bad key set: {0}")]
    BadKeySet(String),
}

/// Result of a key lookup.
pub enum KeyLookup {
    Found(Arc<VerifyingKey>),
    /// Keys are loaded but none has this `kid` (or none fits when `kid` is absent).
    NotFound,
    /// No usable key set: never fetched, or stale beyond `max_stale`.
    Unavailable,
}

/// Counters and gauges for metrics and readiness.
#[derive(Debug, Clone, Default)]
pub struct JwksStats {
    pub keys: usize,
    /// Time since the key set in use was fetched; `None` before the first success.
    pub age: Option<Duration>,
    pub fetch_ok: u64,
    pub fetch_error: u64,
    pub last_error: Option<String>,
}

/// One issuer's key cache.
pub struct JwksCache {
    _private: (),
}

impl JwksCache {
    /// Builds the cache (no fetch yet). Refuses insecure or unparsable URLs.
    pub fn new(_config: JwksConfig) -> Result<Arc<Self>, JwksError> {
        todo!()
    }
    /// The configuration it was built with (the gateway reuses a cache whose config is equal).
    pub fn config(&self) -> &JwksConfig {
        todo!()
    }
    /// Fetches now and installs the keys on success. Concurrent calls share one fetch.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        todo!()
    }
    /// Looks a key up without I/O. With `kid = None`, the single key supporting `alg`, if
    /// exactly one does.
    pub fn lookup(&self, _kid: Option<&str>, _alg: Algorithm) -> KeyLookup {
        todo!()
    }
    /// Looks a key up; on `NotFound` refetches at most once per cooldown (single-flight)
    /// and looks again.
    pub async fn lookup_or_refetch(&self, _kid: Option<&str>, _alg: Algorithm) -> KeyLookup {
        todo!()
    }
    /// Runs the background refresh loop forever (every `refresh`; retries sooner after a
    /// failure, never more often than once a second).
    pub async fn run_refresher(self: Arc<Self>) {
        todo!()
    }
    /// True when a usable key set is loaded.
    pub fn is_ready(&self) -> bool {
        todo!()
    }
    /// Incremented each time the installed key set changes (lets callers drop derived caches).
    pub fn generation(&self) -> u64 {
        todo!()
    }
    pub fn stats(&self) -> JwksStats {
        todo!()
    }
}
