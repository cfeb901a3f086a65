//! The runtime model the proxy serves from: compiled routes, one validator, the issuers'
//! key caches. Built from checked `Settings` off the request path and swapped atomically
//! (`ArcSwap`); a rebuild reuses every key cache whose settings did not change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filters::jwks::JwksCache;
use filters::route::RouteTable;
use filters::validate::{Issuer, RoutePolicy, Validator};

use crate::config::{AuthMode, ForwardToken, Settings, IDENTITY_HEADERS};

/// One route, ready to serve.
pub struct Route {
    pub id: Arc<str>,
    pub auth: AuthMode,
    pub policy: RoutePolicy,
    pub forward_token: ForwardToken,
    /// Header name (lower-case) ← claim name.
    pub inject: Vec<(http::HeaderName, String)>,
    pub upstreams: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    next: AtomicUsize,
}

impl Route {
    /// The next upstream, round robin.
    pub fn next_upstream(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.upstreams[i % self.upstreams.len()]
    }
}

/// Everything a request needs, in one snapshot.
pub struct Runtime {
    pub routes: RouteTable<Route>,
    pub validator: Validator,
    pub issuers: Vec<Arc<Issuer>>,
    /// Canonical prefix of headers stripped from every request.
    pub strip_prefix: String,
    /// Canonical names stripped from every request besides the prefix: the identity
    /// headers and every route's injected names.
    pub strip_names: Vec<String>,
    pub max_token_bytes: usize,
}

/// Why a runtime could not be built from checked settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl Runtime {
    /// Builds a runtime. Key caches of `previous` whose configuration is unchanged are
    /// reused (with their keys); new ones start empty and are returned in the second
    /// element so the caller can fetch and refresh them.
    pub fn build(
        settings: &Settings,
        previous: Option<&Runtime>,
    ) -> Result<(Runtime, Vec<Arc<JwksCache>>), BuildError> {
        let mut fresh = Vec::new();
        let mut issuers = Vec::new();
        for s in &settings.issuers {
            let reused = previous.and_then(|p| {
                p.issuers
                    .iter()
                    .find(|i| *i.jwks.config() == s.jwks)
                    .map(|i| i.jwks.clone())
            });
            let jwks = match reused {
                Some(j) => j,
                None => {
                    let j = JwksCache::new(s.jwks.clone())
                        .map_err(|e| BuildError(format!("issuer {}: {e}", s.policy.id)))?;
                    fresh.push(j.clone());
                    j
                }
            };
            issuers.push(Arc::new(Issuer {
                policy: s.policy.clone(),
                jwks,
            }));
        }
        let mut strip_names: Vec<String> = IDENTITY_HEADERS.iter().map(|s| s.to_string()).collect();
        let mut routes = Vec::new();
        for r in &settings.routes {
            let mut inject = Vec::new();
            for (h, claim) in &r.inject {
                let name = http::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| BuildError(format!("route {}: bad header name {h:?}", r.id)))?;
                let canon = filters::headers::canonical_name(h);
                if !strip_names.contains(&canon) {
                    strip_names.push(canon);
                }
                inject.push((name, claim.clone()));
            }
            routes.push((
                r.matcher.clone(),
                Arc::new(Route {
                    id: r.id.clone(),
                    auth: r.auth,
                    policy: r.policy.clone(),
                    forward_token: r.forward_token,
                    inject,
                    upstreams: r.upstreams.clone(),
                    connect_timeout: r.connect_timeout,
                    read_timeout: r.read_timeout,
                    next: AtomicUsize::new(0),
                }),
            ));
        }
        let validator = Validator::new(
            issuers.clone(),
            settings.cache,
            settings.server.max_token_bytes,
        );
        Ok((
            Runtime {
                routes: RouteTable::new(routes),
                validator,
                issuers,
                strip_prefix: settings.strip_prefix.clone(),
                strip_names,
                max_token_bytes: settings.server.max_token_bytes,
            },
            fresh,
        ))
    }
}
