//! The key set installed by a successful fetch, indexed for lookups without I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::jwk::VerifyingKey;
use crate::jws::Algorithm;

/// The keys of one successful fetch; shared by later fetches of the same document.
pub(super) struct Keys {
    /// Keys by `kid`; several keys may share one (e.g. one per algorithm).
    by_kid: HashMap<String, Vec<Arc<VerifyingKey>>>,
    /// For each algorithm supported by exactly one key, that key (`kid`-less lookups).
    sole_by_alg: HashMap<Algorithm, Arc<VerifyingKey>>,
    /// How many keys the document yielded.
    pub(super) count: usize,
    /// SHA-256 of the raw document: an identical document is not a change.
    pub(super) digest: [u8; 32],
}

impl Keys {
    pub(super) fn new(keys: Vec<VerifyingKey>, digest: [u8; 32]) -> Self {
        let keys: Vec<Arc<VerifyingKey>> = keys.into_iter().map(Arc::new).collect();
        let mut by_kid: HashMap<String, Vec<Arc<VerifyingKey>>> = HashMap::new();
        for key in &keys {
            if let Some(kid) = key.kid() {
                by_kid
                    .entry(kid.to_owned())
                    .or_default()
                    .push(Arc::clone(key));
            }
        }
        let sole_by_alg = Algorithm::ALL
            .into_iter()
            .filter_map(|alg| {
                let mut supporting = keys.iter().filter(|k| k.supports(alg));
                match (supporting.next(), supporting.next()) {
                    (Some(only), None) => Some((alg, Arc::clone(only))),
                    _ => None,
                }
            })
            .collect();
        Keys {
            by_kid,
            sole_by_alg,
            count: keys.len(),
            digest,
        }
    }

    /// The key with this `kid` that supports `alg`; with no `kid`, the only key that
    /// supports `alg`, if exactly one does. A key without a `kid` is only found without one.
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid)?.iter().find(|k| k.supports(alg)),
            None => self.sole_by_alg.get(&alg),
        }
    }
}

/// The installed key set and when it was last confirmed by a successful fetch.
pub(super) struct KeySet {
    /// The keys, shared with earlier sets when the document did not change.
    pub(super) keys: Arc<Keys>,
    /// When the last successful fetch confirmed these keys (drives `max_stale`).
    pub(super) fetched_at: Instant,
}
