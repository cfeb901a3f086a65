//! The runtime model the proxy serves from: compiled routes, one validator, the issuers'
//! key caches. Built from checked `Settings` off the request path and swapped atomically
//! (`ArcSwap`); a rebuild reuses every key cache whose settings did not change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use arc_swap::ArcSwapOption;
use filters::jwks::JwksCache;
use filters::revocation::{MemoryStore, RevocationStore};
use filters::route::RouteTable;
use filters::validate::{Issuer, RoutePolicy, Validator};

use crate::config::{
    AuthMode, ForwardToken, OnStoreError, RedisSettings, RevocationSettings, RouteKind, Settings,
    IDENTITY_HEADERS,
};

/// A revocation store behind a pointer that can be filled later: a Redis store is
/// connected by the supervisor on its runtime after the server starts, and until then
/// the slot is empty (checks fail, and routes apply `on_store_error`).
pub struct StoreSlot {
    /// `None`: the embedded memory store.
    pub redis: Option<RedisSettings>,
    current: ArcSwapOption<StoreBox>,
}

/// Sized holder of a store, for `ArcSwapOption`.
pub struct StoreBox(pub Box<dyn RevocationStore>);

impl StoreSlot {
    fn memory(max_entries: u64) -> Self {
        StoreSlot {
            redis: None,
            current: ArcSwapOption::from_pointee(StoreBox(Box::new(MemoryStore::new(max_entries)))),
        }
    }

    fn redis(settings: RedisSettings) -> Self {
        StoreSlot {
            redis: Some(settings),
            current: ArcSwapOption::empty(),
        }
    }

    /// The store, once connected.
    pub fn get(&self) -> Option<Arc<StoreBox>> {
        self.current.load_full()
    }

    /// The store, or the error a call would get before the Redis store is created.
    pub fn connected(&self) -> Result<Arc<StoreBox>, filters::revocation::StoreError> {
        self.get()
            .ok_or_else(|| filters::revocation::StoreError::Unavailable("not connected yet".into()))
    }

    /// Installs a connected store.
    pub fn set(&self, store: Box<dyn RevocationStore>) {
        self.current.store(Some(Arc::new(StoreBox(store))));
    }

    /// `"redis"` or `"memory"`, for logs and readiness.
    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }
}

/// Per-issuer options used after validation.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    pub family_claim: String,
    pub require_jti: bool,
    /// The issuer's leeway: a token is accepted until `exp + leeway`, so revocations of it
    /// must live that long.
    pub leeway: Duration,
}

/// A route's token exchange: the (cached) exchanger and what to ask of it.
pub struct RouteExchange {
    pub exchanger: Arc<filters::exchange::ExchangeCache>,
    pub audience: String,
    pub scopes: Vec<String>,
    pub ttl: Duration,
    pub claims: Vec<String>,
}

/// One route, ready to serve.
pub struct Route {
    pub id: Arc<str>,
    pub kind: RouteKind,
    pub revocation: bool,
    pub on_store_error: OnStoreError,
    pub logout_family: bool,
    pub exchange: Option<RouteExchange>,
    pub auth: AuthMode,
    pub policy: RoutePolicy,
    pub forward_token: ForwardToken,
    /// Header name (lower-case) ← claim name.
    pub inject: Vec<(http::HeaderName, String)>,
    pub upstreams: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Origin of DPoP `htu` (`scheme://host[:port]`, normalised); `None`: DPoP is refused.
    pub public_origin: Option<String>,
    pub require_dpop: bool,
    pub use_dpop_nonce: bool,
    pub step_up: Option<filters::stepup::StepUp>,
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
    pub max_header_bytes: usize,
    pub max_header_count: usize,
    pub issuer_options: HashMap<Arc<str>, IssuerOptions>,
    pub store: Arc<StoreSlot>,
    pub revocation: RevocationSettings,
    /// Bearer secret of the admin API's write endpoints.
    pub admin_token: Option<crate::config::Secret>,
    /// The signer's JWKS document (served on the admin listener, and on the proxy
    /// listener at `public_jwks_path` when set).
    pub signer_jwks: Option<bytes::Bytes>,
    pub public_jwks_path: Option<String>,
    /// Exchanged-token caches by exchanger id (`local` for the signer), for metrics.
    pub exchangers: Vec<(String, Arc<filters::exchange::ExchangeCache>)>,
    /// The STS endpoint, when `[sts]` is configured.
    pub sts: Option<crate::sts::Sts>,
    pub dpop: Arc<Dpop>,
}

/// DPoP proof policy and server nonces.
pub struct Dpop {
    pub policy: filters::dpop::DpopPolicy,
    /// The `algs` challenge parameter.
    pub algs: String,
    pub nonces: Arc<filters::dpop::NonceIssuer>,
    /// Whether `nonces` is keyed by the configured secret (else random, per process).
    keyed: bool,
    lifetime: Duration,
}

impl Dpop {
    /// Builds it, keeping `previous`'s random nonce key when the nonce settings did not
    /// change, so that a reload does not invalidate the nonces clients hold.
    fn build(
        s: &crate::config::DpopSettings,
        previous: Option<&Arc<Dpop>>,
    ) -> Result<Arc<Dpop>, BuildError> {
        let reused = previous
            .filter(|p| s.nonce_secret.is_none() && !p.keyed && p.lifetime == s.nonce_lifetime)
            .map(|p| p.nonces.clone());
        let nonces = match (reused, &s.nonce_secret) {
            (Some(n), _) => n,
            (None, Some(secret)) => Arc::new(filters::dpop::NonceIssuer::new(
                secret.expose().as_bytes(),
                s.nonce_lifetime,
            )),
            (None, None) => Arc::new(
                filters::dpop::NonceIssuer::random(s.nonce_lifetime)
                    .ok_or_else(|| BuildError("dpop: the system RNG failed".into()))?,
            ),
        };
        Ok(Arc::new(Dpop {
            algs: s.policy.algs(),
            policy: s.policy.clone(),
            nonces,
            keyed: s.nonce_secret.is_some(),
            lifetime: s.nonce_lifetime,
        }))
    }
}

impl Runtime {
    /// Options of a configured issuer (present for every issuer a token can come from).
    pub fn issuer_options(&self, id: &str) -> Option<&IssuerOptions> {
        self.issuer_options.get(id)
    }
}

/// What a new runtime needs started before it serves well.
#[derive(Default)]
pub struct Fresh {
    /// Key caches to fetch and refresh.
    pub caches: Vec<Arc<JwksCache>>,
    /// A Redis store slot to connect.
    pub store: Option<Arc<StoreSlot>>,
}

/// Why a runtime could not be built from checked settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl Runtime {
    /// Builds a runtime. Key caches and the revocation store of `previous` whose settings
    /// are unchanged are reused (with their keys, connections and, for the memory store,
    /// revocations); new ones are returned in [`Fresh`] for the caller to start.
    pub fn build(
        settings: &Settings,
        previous: Option<&Runtime>,
    ) -> Result<(Runtime, Fresh), BuildError> {
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
        let mut exchangers: Vec<(String, Arc<filters::exchange::ExchangeCache>)> = Vec::new();
        let mut signer_jwks = None;
        if let Some(sig) = &settings.signer {
            let signer = sig.load().map_err(|e| BuildError(format!("signer: {e}")))?;
            signer_jwks = Some(bytes::Bytes::from(signer.jwks().to_string()));
            let inner: Arc<dyn filters::exchange::Exchanger> = Arc::new(signer);
            exchangers.push((
                "local".into(),
                Arc::new(filters::exchange::ExchangeCache::new(
                    inner,
                    settings.max_exchanged_tokens,
                )),
            ));
        }
        for (id, cfg) in &settings.exchangers {
            let sts = filters::exchange::RemoteSts::new(cfg.clone())
                .map_err(|e| BuildError(format!("exchanger {id}: {e}")))?;
            let inner: Arc<dyn filters::exchange::Exchanger> = Arc::new(sts);
            exchangers.push((
                id.clone(),
                Arc::new(filters::exchange::ExchangeCache::new(
                    inner,
                    settings.max_exchanged_tokens,
                )),
            ));
        }
        let mut strip_names: Vec<String> = IDENTITY_HEADERS
            .iter()
            .chain(filters::headers::CREDENTIAL_HEADERS.iter())
            .map(|s| s.to_string())
            .collect();
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
                    kind: r.kind,
                    revocation: r.revocation,
                    on_store_error: r.on_store_error,
                    logout_family: r.logout_family,
                    exchange: match &r.exchange {
                        Some(x) => Some(RouteExchange {
                            exchanger: exchangers
                                .iter()
                                .find(|(id, _)| *id == x.exchanger)
                                .map(|(_, c)| c.clone())
                                .ok_or_else(|| {
                                    BuildError(format!(
                                        "route {}: unknown exchanger {}",
                                        r.id, x.exchanger
                                    ))
                                })?,
                            audience: x.audience.clone(),
                            scopes: x.scopes.clone(),
                            ttl: x.ttl,
                            claims: x.claims.clone(),
                        }),
                        None => None,
                    },
                    auth: r.auth,
                    policy: r.policy.clone(),
                    forward_token: r.forward_token,
                    inject,
                    upstreams: r.upstreams.clone(),
                    connect_timeout: r.connect_timeout,
                    read_timeout: r.read_timeout,
                    public_origin: r.public_origin.clone(),
                    require_dpop: r.require_dpop,
                    use_dpop_nonce: r.use_dpop_nonce,
                    step_up: r.step_up.clone(),
                    next: AtomicUsize::new(0),
                }),
            ));
        }
        let validator = Validator::new(
            issuers.clone(),
            settings.cache,
            settings.server.max_token_bytes,
        )
        .with_claim_limits(settings.server.max_claims, settings.server.max_claims_depth);
        let issuer_options = settings
            .issuers
            .iter()
            .map(|i| {
                let o = IssuerOptions {
                    family_claim: i.family_claim.clone(),
                    require_jti: i.require_jti,
                    leeway: i.policy.leeway,
                };
                (i.policy.id.clone(), o)
            })
            .collect();
        let wanted = &settings.revocation.redis;
        let mut store_to_connect = None;
        let store = match previous.map(|p| &p.store) {
            Some(old) if old.redis == *wanted => old.clone(),
            _ => match wanted {
                None => Arc::new(StoreSlot::memory(settings.revocation.max_entries)),
                Some(r) => {
                    let slot = Arc::new(StoreSlot::redis(r.clone()));
                    store_to_connect = Some(slot.clone());
                    slot
                }
            },
        };
        Ok((
            Runtime {
                routes: RouteTable::new(routes),
                validator,
                issuers,
                strip_prefix: settings.strip_prefix.clone(),
                strip_names,
                max_token_bytes: settings.server.max_token_bytes,
                max_header_bytes: settings.server.max_header_bytes,
                max_header_count: settings.server.max_header_count,
                issuer_options,
                store,
                revocation: settings.revocation.clone(),
                admin_token: settings.admin_token.clone(),
                signer_jwks,
                public_jwks_path: settings
                    .signer
                    .as_ref()
                    .and_then(|s| s.public_jwks_path.clone()),
                sts: match (
                    &settings.sts,
                    exchangers.iter().find(|(id, _)| id == "local"),
                ) {
                    (Some(s), Some((_, local))) => {
                        Some(crate::sts::Sts::new(s.clone(), local.clone()))
                    }
                    _ => None,
                },
                exchangers,
                dpop: Dpop::build(&settings.dpop, previous.map(|p| &p.dpop))?,
            },
            Fresh {
                caches: fresh,
                store: store_to_connect,
            },
        ))
    }
}
