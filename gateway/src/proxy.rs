//! The `ProxyHttp` implementation: a thin dispatcher over `filters`.
//!
//! `request_filter` decides (route, token, route policy) and fills the context;
//! `upstream_peer` picks the peer; `upstream_request_filter` only rewrites headers;
//! `logging` records metrics and the access log for every request, denied ones included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use filters::route::Matched;
use filters::{AuthError, Scheme, VerifiedToken};
use http::header::{AUTHORIZATION, CONNECTION, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::config::{AuthMode, ForwardToken, OnStoreError, RouteKind};
use crate::metrics::Metrics;
use crate::respond::{self, Denial};
use crate::runtime::{Route, Runtime};

/// Request-id header, generated unless a well-formed one came in; returned on responses.
pub const REQUEST_ID: &str = "x-request-id";

/// State shared by every request: the swappable runtime and the metrics.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
    pub access_log: bool,
}

/// The proxy service.
pub struct Gateway {
    pub shared: Arc<Shared>,
}

/// How a request ended, for metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded with a validated identity.
    Allowed,
    /// Forwarded without identity (`auth = "none"`, or `"optional"` without a token).
    Anonymous,
    /// Refused by token or route policy.
    Denied,
    /// No route (404 / 405) or a refused path (400).
    Unrouted,
    /// Forwarded, but the upstream failed (502 / 504).
    UpstreamError,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Anonymous => "anonymous",
            Outcome::Denied => "denied",
            Outcome::Unrouted => "unrouted",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// Per-request context: this request's results only.
pub struct Ctx {
    /// When the request head had been read (`new_ctx`).
    pub(crate) start: Instant,
    pub(crate) request_id: String,
    pub(crate) runtime: Option<Arc<Runtime>>,
    pub(crate) route: Option<Arc<Route>>,
    pub(crate) identity: Option<Arc<VerifiedToken>>,
    /// The token minted for the backend (`forward_token = "exchange"`).
    pub(crate) backend_token: Option<Arc<str>>,
    pub(crate) outcome: Outcome,
    pub(crate) reason: Option<&'static str>,
    pub(crate) upstream: Option<std::net::SocketAddr>,
    pub(crate) gateway_time: Option<Duration>,
    pub(crate) upstream_start: Option<Instant>,
    /// Challenge with the `DPoP` scheme (the request used it, or the route requires it).
    pub(crate) dpop_challenge: bool,
    /// A fresh server nonce for the `DPoP-Nonce` response header.
    pub(crate) dpop_nonce: Option<String>,
}

impl Gateway {
    pub(crate) async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        denial: Denial,
    ) -> Result<bool> {
        ctx.outcome = if denial.is_routing() {
            Outcome::Unrouted
        } else {
            Outcome::Denied
        };
        ctx.reason = Some(denial.reason());
        let dpop = ctx.dpop_challenge || denial.is_dpop();
        let algs = ctx.runtime.as_ref().map(|rt| rt.dpop.algs.as_str());
        // A route that accepts DPoP-bound tokens (it has a public origin) offers both schemes
        // when no credentials came (RFC 9449 §7.2).
        let offers_dpop = matches!(denial, Denial::Auth(AuthError::MissingToken))
            && ctx
                .route
                .as_ref()
                .is_some_and(|r| r.public_origin.is_some());
        let extras = respond::Extras {
            dpop_algs: if dpop { algs } else { None },
            dpop_nonce: ctx.dpop_nonce.as_deref(),
            also_dpop: if offers_dpop && !dpop { algs } else { None },
        };
        respond::write(session, &ctx.request_id, &denial, extras).await?;
        Ok(true)
    }

    /// Authenticates and authorizes against the route: the verified token and the token as
    /// presented (for an exchange). `Ok(None)`: anonymous.
    ///
    /// Order: token → signature and claims → binding (certificate, DPoP proof) → route
    /// policy → step-up → revocation → DPoP replay. Each store call comes after every local
    /// check, so an invalid token or proof causes no store traffic.
    async fn authenticate<'s>(
        &self,
        session: &'s Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        route: &Route,
    ) -> Result<Option<(Arc<VerifiedToken>, &'s str)>, AuthError> {
        ctx.dpop_challenge = route.require_dpop;
        if route.use_dpop_nonce {
            // A fresh nonce goes on every answer of this route, refusal or not.
            ctx.dpop_nonce = Some(rt.dpop.nonces.issue(filters::validate::unix_now()));
        }
        let presented = presented_token(session, rt.max_token_bytes);
        if presented.is_err() {
            ctx.dpop_challenge |=
                session
                    .req_header()
                    .headers
                    .get(AUTHORIZATION)
                    .is_some_and(|v| {
                        v.as_bytes()
                            .get(..5)
                            .is_some_and(|p| p.eq_ignore_ascii_case(b"dpop "))
                    });
        }
        let Some((scheme, token)) = presented? else {
            return match route.auth {
                AuthMode::Optional => Ok(None),
                _ => Err(AuthError::MissingToken),
            };
        };
        ctx.dpop_challenge |= scheme == Scheme::Dpop;
        let verified = rt.validator.validate(token).await?;
        let proof = self.check_binding(session, ctx, rt, route, (scheme, token), &verified)?;
        route.policy.check(&verified)?;
        if let Some(step_up) = &route.step_up {
            let leeway = rt
                .issuer_options(&verified.issuer_id)
                .map_or(Duration::ZERO, |o| o.leeway);
            step_up.check(&verified, filters::validate::unix_now(), leeway)?;
        }
        if route.revocation {
            self.check_revocation(rt, &route.id, route.on_store_error, &verified)
                .await?;
        }
        if let Some(proof) = &proof {
            self.record_proof(rt, route, proof).await?;
        }
        Ok(Some((verified, token)))
    }

    /// One store round trip for the token's `jti`, family and subject. Only tokens that
    /// passed validation get here, so invalid tokens cause no store traffic.
    pub(crate) async fn check_revocation(
        &self,
        rt: &Runtime,
        route_id: &str,
        on_store_error: OnStoreError,
        t: &VerifiedToken,
    ) -> Result<(), AuthError> {
        use filters::revocation::{RevocationQuery, Verdict};
        let m = &self.shared.metrics;
        let opts = rt.issuer_options(&t.issuer_id);
        if t.jti.is_none() && opts.is_none_or(|o| o.require_jti) {
            return Err(AuthError::MissingJti);
        }
        let family = opts
            .and_then(|o| t.claims.get(&o.family_claim))
            .and_then(|v| v.as_str());
        let query = RevocationQuery {
            jti: t.jti.as_deref(),
            family,
            issuer: &t.iss,
            subject: t.sub.as_deref(),
            iat: t.iat,
        };
        let started = Instant::now();
        let result = match rt.store.connected() {
            Ok(store) => store.0.check(&query).await,
            Err(e) => Err(e),
        };
        m.revocation_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(verdict) => {
                m.revocation_checks
                    .with_label_values(&[verdict.label()])
                    .inc();
                match verdict {
                    Verdict::Valid => Ok(()),
                    Verdict::TokenRevoked => Err(AuthError::TokenRevoked),
                    Verdict::FamilyRevoked => Err(AuthError::FamilyRevoked),
                    Verdict::SubjectRevoked => Err(AuthError::SubjectRevoked),
                }
            }
            Err(e) => {
                m.revocation_checks.with_label_values(&["error"]).inc();
                match on_store_error {
                    OnStoreError::Deny => Err(AuthError::StoreUnavailable),
                    OnStoreError::Allow => {
                        tracing::warn!(route = route_id, error = %e, "revocation store unavailable; allowed by on_store_error = \"allow\"");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Exchanges the caller's token for one minted for the route's backend (RFC 8693).
    /// Runs after validation, route policy and the revocation check, so a revoked token
    /// never reaches the exchanged-token cache.
    async fn exchange(
        &self,
        ctx: &Ctx,
        route: &Route,
        t: &VerifiedToken,
        subject_token: &str,
    ) -> Result<Arc<str>, filters::exchange::ExchangeError> {
        use filters::exchange::{ExchangeError, ExchangeRequest, Exchanger as _};
        let Some(x) = route.exchange.as_ref() else {
            return Err(ExchangeError::Unavailable("route has no exchange"));
        };
        let req = ExchangeRequest {
            subject: t,
            subject_token,
            audience: &x.audience,
            allowed_scopes: &x.scopes,
            ttl: x.ttl,
            carry_claims: &x.claims,
            request_id: Some(&ctx.request_id),
            actor: None,
        };
        let started = Instant::now();
        let result = x.exchanger.exchange(&req).await;
        let m = &self.shared.metrics;
        m.exchange_duration.observe(started.elapsed().as_secs_f64());
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        m.exchanges.with_label_values(&[&route.id, label]).inc();
        result.map(|issued| issued.token)
    }

    /// A logout route: revokes the caller's token (and, if configured, its family) and
    /// answers 204 itself.
    async fn logout(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        route: &Route,
        t: &VerifiedToken,
    ) -> Result<bool> {
        let Some(jti) = t.jti.as_deref() else {
            return self
                .deny(
                    session,
                    ctx,
                    Denial::Auth(AuthError::InvalidRequest("the token has no jti to revoke")),
                )
                .await;
        };
        let Some(store) = rt.store.get() else {
            return self
                .deny(session, ctx, Denial::Auth(AuthError::StoreUnavailable))
                .await;
        };
        let opts = rt.issuer_options(&t.issuer_id);
        let leeway = opts.map_or(0, |o| i64::try_from(o.leeway.as_secs()).unwrap_or(0));
        let left = t
            .exp
            .saturating_add(leeway)
            .saturating_sub(filters::validate::unix_now())
            .max(1);
        let ttl = Duration::from_secs(u64::try_from(left).unwrap_or(1));
        let mut result = store.0.revoke_token(jti, ttl).await;
        if route.logout_family && result.is_ok() {
            let family = opts
                .and_then(|o| t.claims.get(&o.family_claim))
                .and_then(|v| v.as_str());
            if let Some(fid) = family {
                result = store
                    .0
                    .revoke_family(fid, rt.revocation.default_ttl.max(ttl))
                    .await;
            }
        }
        if let Err(e) = result {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "logout could not write the revocation");
            return self
                .deny(session, ctx, Denial::Auth(AuthError::StoreUnavailable))
                .await;
        }
        ctx.reason = Some("logout");
        respond::no_content(session, &ctx.request_id).await?;
        Ok(true)
    }
}

/// The token of the request's single `Authorization` header, with its scheme; `Ok(None)`
/// when there is none (or it uses another scheme).
fn presented_token(session: &Session, max: usize) -> Result<Option<(Scheme, &str)>, AuthError> {
    let mut values = session.req_header().headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    match first {
        Some(v) => filters::extract_token(v.as_bytes(), max),
        None => Ok(None),
    }
}

/// Bytes of the request head as received, near enough: the request target and every header
/// line (`name: value\r\n`).
fn header_bytes(req: &RequestHeader) -> usize {
    let target = req.raw_path().len();
    req.headers
        .iter()
        .fold(target, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

fn request_host(req: &RequestHeader) -> &str {
    let raw = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    // Strip a port, keeping IPv6 literals whole.
    if raw.starts_with('[') {
        raw.split_once(']')
            .map_or(raw, |(h, _)| &raw[..h.len() + 1])
    } else {
        raw.split(':').next().unwrap_or("")
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            request_id: String::new(),
            runtime: None,
            route: None,
            identity: None,
            backend_token: None,
            outcome: Outcome::Unrouted,
            reason: None,
            upstream: None,
            gateway_time: None,
            upstream_start: None,
            dpop_challenge: false,
            dpop_nonce: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // `ctx.start` was taken by `new_ctx`, which Pingora calls once the request head is read.
        let req = session.req_header();
        ctx.request_id = match req.headers.get(REQUEST_ID) {
            Some(v) if filters::headers::is_valid_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => crate::request_id::new(),
        };
        let rt = self.shared.runtime.load_full();
        ctx.runtime = Some(rt.clone());

        let too_many = req.headers.len() > rt.max_header_count;
        if too_many || header_bytes(req) > rt.max_header_bytes {
            return self.deny(session, ctx, Denial::HeadersTooLarge).await;
        }
        let path = req.uri.path();
        if let Err(why) = filters::route::check_path(path) {
            return self.deny(session, ctx, Denial::BadPath(why)).await;
        }
        if let Some(sts) = rt.sts.as_ref().filter(|s| s.path == path) {
            return self.serve_sts(session, ctx, &rt, sts).await;
        }
        if let (Some(jwks), Some(p)) = (rt.signer_jwks.as_ref(), rt.public_jwks_path.as_deref()) {
            if p == path && req.method == http::Method::GET {
                ctx.outcome = Outcome::Anonymous;
                respond::jwks(session, &ctx.request_id, jwks.clone()).await?;
                return Ok(true);
            }
        }
        let route = match rt
            .routes
            .matches(request_host(req), path, req.method.as_str())
        {
            Matched::Route(r) => r.clone(),
            Matched::MethodNotAllowed => {
                return self.deny(session, ctx, Denial::MethodNotAllowed).await
            }
            Matched::NotFound => return self.deny(session, ctx, Denial::NotFound).await,
        };
        ctx.route = Some(route.clone());
        if route.auth == AuthMode::None {
            ctx.outcome = Outcome::Anonymous;
            return Ok(false);
        }
        let (id, exchanged) = match self.authenticate(session, ctx, &rt, &route).await {
            Ok(Some((id, token))) => {
                // The token as presented is only needed here, while `session` is borrowed.
                let exchanged = if route.exchange.is_some() && route.kind != RouteKind::Logout {
                    Some(self.exchange(ctx, &route, &id, token).await)
                } else {
                    None
                };
                (id, exchanged)
            }
            Ok(None) => {
                ctx.outcome = Outcome::Anonymous;
                return Ok(false);
            }
            Err(e) => return self.deny(session, ctx, Denial::Auth(e)).await,
        };
        ctx.outcome = Outcome::Allowed;
        ctx.identity = Some(id.clone());
        if route.kind == RouteKind::Logout {
            return self.logout(session, ctx, &rt, &route, &id).await;
        }
        match exchanged {
            Some(Ok(token)) => {
                ctx.backend_token = Some(token);
                Ok(false)
            }
            Some(Err(e)) => self.deny(session, ctx, Denial::Exchange(e)).await,
            None => Ok(false),
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no route selected",
            ));
        };
        let addr = route.next_upstream();
        ctx.upstream = Some(addr);
        let now = Instant::now();
        ctx.gateway_time = Some(now.saturating_duration_since(ctx.start));
        ctx.upstream_start = Some(now);
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(route.connect_timeout);
        peer.options.read_timeout = Some(route.read_timeout);
        peer.options.write_timeout = Some(route.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (Some(rt), Some(route)) = (ctx.runtime.as_ref(), ctx.route.as_ref()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no route selected",
            ));
        };
        // Hop-by-hop: keep only the connection options Pingora itself acts on, and drop
        // every header the client nominated, so `Connection: x-auth-subject` cannot make a
        // downstream hop remove an injected header.
        let mut nominated = Vec::new();
        for v in up.headers.get_all(CONNECTION) {
            for token in v.to_str().unwrap_or("").split(',') {
                let t = token.trim().to_ascii_lowercase();
                if !t.is_empty() && !matches!(t.as_str(), "close" | "keep-alive" | "upgrade") {
                    nominated.push(t);
                }
            }
        }
        if !nominated.is_empty() {
            let kept: Vec<String> = up
                .headers
                .get_all(CONNECTION)
                .iter()
                .flat_map(|v| {
                    v.to_str()
                        .unwrap_or("")
                        .split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                })
                .filter(|t| matches!(t.as_str(), "close" | "keep-alive" | "upgrade"))
                .collect();
            up.remove_header(&CONNECTION);
            if !kept.is_empty() {
                up.insert_header(CONNECTION, kept.join(", "))?;
            }
            for n in nominated {
                up.remove_header(n.as_str());
            }
        }
        // Identity headers are only ever the gateway's: remove every client-sent copy.
        let doomed: Vec<http::HeaderName> = up
            .headers
            .keys()
            .filter(|n| filters::headers::must_strip(n.as_str(), &rt.strip_prefix, &rt.strip_names))
            .cloned()
            .collect();
        for n in doomed {
            up.remove_header(&n);
        }
        match (route.forward_token, ctx.backend_token.as_deref()) {
            (ForwardToken::Passthrough, _) => {}
            (ForwardToken::Exchange, Some(token)) => {
                up.insert_header(AUTHORIZATION, format!("Bearer {token}"))?;
            }
            // Strip, or an exchange that produced nothing (not reachable: it is refused).
            _ => {
                up.remove_header(&AUTHORIZATION);
            }
        }
        if let Some(id) = ctx.identity.as_ref() {
            use filters::headers::{encode_claim, encode_scopes, encode_str};
            if let Some(sub) = id.sub.as_deref() {
                up.insert_header("x-auth-subject", encode_str(sub))?;
            }
            up.insert_header("x-auth-issuer", encode_str(&id.iss))?;
            up.insert_header("x-auth-scopes", encode_scopes(&id.scopes))?;
            if let Some(client) = id.client.as_deref() {
                up.insert_header("x-auth-client", encode_str(client))?;
            }
            for (header, claim) in &route.inject {
                if let Some(v) = id.claims.get(claim).and_then(encode_claim) {
                    up.insert_header(header.clone(), v)?;
                }
            }
        }
        up.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        tracing::trace!(request_id = %ctx.request_id, route = &*route.id, "upstream request headers rewritten");
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        resp.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(nonce) = ctx.dpop_nonce.as_deref() {
            resp.insert_header(crate::bind::DPOP_NONCE, nonce)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::status_for_error(e);
        if ctx.upstream.is_some() {
            ctx.outcome = Outcome::UpstreamError;
            ctx.reason = Some(if code == 504 {
                "upstream_timeout"
            } else {
                "upstream_unavailable"
            });
        }
        if code > 0 {
            let extras = respond::Extras {
                dpop_nonce: ctx.dpop_nonce.as_deref(),
                ..respond::Extras::default()
            };
            if let Err(err) =
                respond::write(session, &ctx.request_id, &Denial::Upstream(code), extras).await
            {
                tracing::debug!(request_id = %ctx.request_id, error = %err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let m = &self.shared.metrics;
        let route = ctx.route.as_ref().map_or("_unrouted", |r| &*r.id);
        // One clock read for both durations (each read is a vDSO call).
        let now = Instant::now();
        let gateway = ctx
            .gateway_time
            .unwrap_or_else(|| now.saturating_duration_since(ctx.start));
        let upstream = ctx.upstream_start.map(|s| now.saturating_duration_since(s));
        m.requests
            .with_label_values(&[route, ctx.outcome.label()])
            .inc();
        if ctx.outcome == Outcome::Denied {
            m.denials
                .with_label_values(&[route, ctx.reason.unwrap_or("unknown")])
                .inc();
        }
        m.request_duration
            .with_label_values(&[route])
            .observe(gateway.as_secs_f64());
        if let Some(u) = upstream {
            m.upstream_duration
                .with_label_values(&[route])
                .observe(u.as_secs_f64());
        }
        if !self.shared.access_log {
            return;
        }
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::info!(
            target: "tokengate::access",
            request_id = %ctx.request_id,
            route,
            method = %req.method,
            path = req.uri.path(),
            status,
            outcome = ctx.outcome.label(),
            reason = ctx.reason.unwrap_or(""),
            subject = ctx.identity.as_ref().and_then(|i| i.sub.as_deref()).unwrap_or(""),
            issuer = ctx.identity.as_ref().map_or("", |i| &*i.issuer_id),
            upstream = %ctx.upstream.map(|a| a.to_string()).unwrap_or_default(),
            gateway_us = u64::try_from(gateway.as_micros()).unwrap_or(u64::MAX),
            upstream_us = upstream.map_or(0, |u| u64::try_from(u.as_micros()).unwrap_or(u64::MAX)),
            "request"
        );
    }
}
