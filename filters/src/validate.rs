//! The JWT validation pipeline: parse → issuer by `iss` → key by (`iss`, `kid`) → verify the
//! signature with the algorithm pinned to the key → claims (`exp`, `nbf`, `iat`, `aud`,
//! `typ`) → verified-token cache. Route rules (issuers, scopes, claim equality) are checked
//! per request by [`RoutePolicy`], never cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::claims::VerifiedToken;
use crate::error::AuthError;
use crate::jwks::{JwksCache, KeyLookup};
use crate::jws::{self, Algorithm, JwsError};

mod cache;
use cache::{Digest, TokenCache};

/// Default deepest JSON nesting accepted in a token payload (16; the object itself is 1).
/// Raising it lets a token make the parser recurse further before its signature is checked.
pub const MAX_CLAIMS_DEPTH: usize = 16;

/// Default most top-level claims accepted in a token payload (256). Real access tokens carry
/// a few dozen; the token size bounds the count anyway.
pub const MAX_CLAIMS: usize = 256;

/// What one issuer's tokens must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPolicy {
    /// Configured id, used by routes and in metrics.
    pub id: Arc<str>,
    /// Exact `iss` value.
    pub issuer: String,
    /// `aud` must name at least one of these. Never empty.
    pub audiences: Vec<String>,
    /// Algorithms accepted from this issuer (asymmetric only by construction).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf`, `iat` (default 30 s).
    pub leeway: Duration,
    /// Accepted `typ` header values, compared case-insensitively with an optional
    /// `application/` prefix (default `at+jwt`, `JWT`).
    pub accepted_types: Vec<String>,
    /// Accept tokens without `typ` (default true: many IdPs omit it).
    pub allow_missing_typ: bool,
}

impl IssuerPolicy {
    fn check_typ(&self, typ: Option<&str>) -> Result<(), AuthError> {
        match typ {
            None if self.allow_missing_typ => Ok(()),
            None => Err(AuthError::WrongTokenType),
            Some(t) => {
                let t = canonical_typ(t);
                if self.accepted_types.iter().any(|a| canonical_typ(a) == t) {
                    Ok(())
                } else {
                    Err(AuthError::WrongTokenType)
                }
            }
        }
    }

    /// Checks the time and audience claims and builds the verified token.
    fn check_claims(
        &self,
        claims: Map<String, Value>,
        now: i64,
    ) -> Result<VerifiedToken, AuthError> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp =
            numeric_date(&claims, "exp")?.ok_or(AuthError::InvalidClaim("the token has no exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")? {
            if nbf > now.saturating_add(leeway) {
                return Err(AuthError::NotYetValid);
            }
        }
        let iat = numeric_date(&claims, "iat")?;
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AuthError::IssuedInFuture);
        }
        match claims.get("aud") {
            Some(Value::String(a)) if self.audiences.iter().any(|x| x == a) => {}
            Some(Value::Array(list)) => {
                let mut ok = false;
                for a in list {
                    let a = a.as_str().ok_or(AuthError::InvalidClaim(
                        "aud must be a string or an array of strings",
                    ))?;
                    ok |= self.audiences.iter().any(|x| x == a);
                }
                if !ok {
                    return Err(AuthError::AudienceMismatch);
                }
            }
            Some(Value::String(_)) | None => return Err(AuthError::AudienceMismatch),
            Some(_) => {
                return Err(AuthError::InvalidClaim(
                    "aud must be a string or an array of strings",
                ))
            }
        }
        let sub = opt_string(&claims, "sub")?;
        let jti = opt_string(&claims, "jti")?;
        let client = match opt_string(&claims, "azp")? {
            Some(c) => Some(c),
            None => opt_string(&claims, "client_id")?,
        };
        let scopes = scopes(&claims)?;
        Ok(VerifiedToken {
            issuer_id: self.id.clone(),
            iss: self.issuer.clone(),
            sub,
            exp,
            iat,
            jti,
            scopes,
            client,
            claims,
        })
    }
}

fn canonical_typ(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => t,
    }
}

/// A NumericDate claim: a JSON number (integer or finite fraction, truncated). Strings,
/// `null`, booleans and the like are refused rather than ignored.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    const BAD: [(&str, &str); 3] = [
        ("exp", "exp must be a number"),
        ("nbf", "nbf must be a number"),
        ("iat", "iat must be a number"),
    ];
    let bad = || {
        AuthError::InvalidClaim(
            BAD.iter()
                .find(|(n, _)| *n == name)
                .map_or("bad date", |(_, m)| m),
        )
    };
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    // Values beyond i64 saturate; `as` on a finite f64 saturates too.
                    Some(f) if f.is_finite() => Ok(Some(f.trunc() as i64)),
                    _ => Err(bad()),
                }
            }
        }
        Some(_) => Err(bad()),
    }
}

fn opt_string(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(match name {
            "sub" => "sub must be a string",
            "jti" => "jti must be a string",
            "azp" => "azp must be a string",
            _ => "client_id must be a string",
        })),
    }
}

/// Scopes from `scope` (space-delimited string, RFC 8693 / RFC 9068) or `scp` (array of
/// strings, or a string).
fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
    const BAD: AuthError = AuthError::InvalidClaim("scope must be a string or an array of strings");
    let split = |s: &str| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match claims.get("scope").or_else(|| claims.get("scp")) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(BAD))
            .collect(),
        Some(_) => Err(BAD),
    }
}

fn from_jws(e: JwsError) -> AuthError {
    match e {
        JwsError::Encrypted => AuthError::EncryptedToken,
        JwsError::UnsupportedAlgorithm => AuthError::UnsupportedAlgorithm,
        JwsError::Critical => AuthError::UnsupportedCriticalHeader,
        JwsError::Base64 => AuthError::Malformed("the token is not valid base64url"),
        JwsError::Json => AuthError::Malformed("the token header is not a valid JSON object"),
        JwsError::BadHeader => {
            AuthError::Malformed("the token header has a member of the wrong type")
        }
        _ => AuthError::Malformed("the token is not a compact JWS"),
    }
}

/// One configured issuer: its policy and its key cache.
pub struct Issuer {
    pub policy: IssuerPolicy,
    pub jwks: Arc<JwksCache>,
}

struct CachedToken {
    token: Arc<VerifiedToken>,
    jwks: Arc<JwksCache>,
    generation: u64,
}

/// Settings of the verified-token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheConfig {
    /// Most tokens held (default 100 000; 0 disables the cache). Each entry holds the
    /// token's claims, so memory grows with this times the typical claim-set size. When
    /// full, the oldest entry goes; every entry goes at its token's `exp`.
    pub max_entries: u64,
    /// Longest an entry lives, whatever its `exp` (default 5 min).
    pub max_ttl: Duration,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        TokenCacheConfig {
            max_entries: 100_000,
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// Validates bearer tokens against the configured issuers.
pub struct Validator {
    by_iss: HashMap<String, Arc<Issuer>>,
    cache: Option<TokenCache<CachedToken>>,
    max_ttl_secs: i64,
    max_token_bytes: usize,
    max_claims: usize,
    max_claims_depth: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Validator {
    /// Builds a validator. Issuers must have distinct `iss` values (checked by config).
    pub fn new(issuers: Vec<Arc<Issuer>>, cache: TokenCacheConfig, max_token_bytes: usize) -> Self {
        let max_ttl_secs = i64::try_from(cache.max_ttl.as_secs()).unwrap_or(i64::MAX);
        let cache = (cache.max_entries > 0).then(|| TokenCache::new(cache.max_entries));
        Validator {
            by_iss: issuers
                .into_iter()
                .map(|i| (i.policy.issuer.clone(), i))
                .collect(),
            cache,
            max_ttl_secs,
            max_token_bytes,
            max_claims: MAX_CLAIMS,
            max_claims_depth: MAX_CLAIMS_DEPTH,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Sets the payload limits: at most `max_claims` top-level claims (default
    /// [`MAX_CLAIMS`]) nested at most `max_depth` deep (default [`MAX_CLAIMS_DEPTH`]). Both are
    /// checked before the issuer is looked up or the signature verified.
    pub fn with_claim_limits(mut self, max_claims: usize, max_depth: usize) -> Self {
        self.max_claims = max_claims;
        self.max_claims_depth = max_depth;
        self
    }

    /// Verified-token cache (hits, misses) since start.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Tokens held by the verified-token cache now (0 when it is disabled). Drops the
    /// expired entries first, so the count is current and their memory is freed; walks every
    /// entry, so it is meant for metrics scrapes, not for the request path.
    pub fn cache_entries(&self) -> u64 {
        self.cache.as_ref().map_or(0, |cache| cache.len(unix_now()))
    }

    /// Validates a token. Errors name the first failed check; nothing in them comes from
    /// the token.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TokenTooLarge);
        }
        let now = unix_now();
        let digest = self.cache.as_ref().map(|_| token_digest(token));
        if let (Some(cache), Some(d)) = (&self.cache, &digest) {
            // An entry verified with a key set that has changed since is dropped.
            let hit = cache.get(d, now, |c| {
                (c.jwks.generation() == c.generation).then(|| c.token.clone())
            });
            if let Some(token) = hit {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(token);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        let parsed = jws::parse_compact(token).map_err(from_jws)?;
        let claims = jws::parse_strict_object(&parsed.payload, self.max_claims_depth)
            .map_err(|_| AuthError::Malformed("the token payload is not a valid JSON object"))?;
        if claims.len() > self.max_claims {
            return Err(AuthError::Malformed(
                "the token has more claims than allowed",
            ));
        }
        let iss = match claims.get("iss") {
            Some(Value::String(s)) => s.as_str(),
            None => return Err(AuthError::InvalidClaim("the token has no iss")),
            Some(_) => return Err(AuthError::InvalidClaim("iss must be a string")),
        };
        let issuer = self.by_iss.get(iss).ok_or(AuthError::UnknownIssuer)?;
        let alg = parsed.header.alg;
        if !issuer.policy.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        issuer.policy.check_typ(parsed.header.typ.as_deref())?;
        let generation = issuer.jwks.generation();
        let key = match issuer
            .jwks
            .lookup_or_refetch(parsed.header.kid.as_deref(), alg)
            .await
        {
            KeyLookup::Found(k) => k,
            KeyLookup::NotFound => return Err(AuthError::UnknownKeyId),
            KeyLookup::Unavailable => return Err(AuthError::KeysUnavailable),
        };
        key.verify(alg, parsed.signing_input, &parsed.signature)
            .map_err(|_| AuthError::BadSignature)?;
        let verified = Arc::new(issuer.policy.check_claims(claims, now)?);
        if let (Some(cache), Some(d)) = (&self.cache, digest) {
            // Dead at the token's `exp` (as the check above), and after `max_ttl` at the latest.
            let expires_at = verified.exp.min(now.saturating_add(self.max_ttl_secs));
            let entry = CachedToken {
                token: verified.clone(),
                jwks: issuer.jwks.clone(),
                generation,
            };
            cache.insert(d, entry, expires_at, now);
        }
        Ok(verified)
    }
}

fn token_digest(token: &str) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Digest(out)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A route's authorization rules, checked on every request after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePolicy {
    /// Issuer ids accepted on the route; empty: every configured issuer.
    pub issuers: Vec<Arc<str>>,
    /// Scopes the token must all carry.
    pub require_scopes: Vec<String>,
    /// Claims that must equal these values; when the claim is an array, it must contain
    /// the value.
    pub require_claims: Vec<(String, Value)>,
    required: Arc<str>,
}

impl RoutePolicy {
    /// Builds a policy.
    pub fn new(
        issuers: Vec<Arc<str>>,
        require_scopes: Vec<String>,
        require_claims: Vec<(String, Value)>,
    ) -> Self {
        let required = require_scopes.join(" ").into();
        RoutePolicy {
            issuers,
            require_scopes,
            require_claims,
            required,
        }
    }

    /// Checks a verified token against the route.
    pub fn check(&self, t: &VerifiedToken) -> Result<(), AuthError> {
        if !self.issuers.is_empty() && !self.issuers.contains(&t.issuer_id) {
            return Err(AuthError::WrongIssuer);
        }
        if !self.require_scopes.iter().all(|s| t.has_scope(s)) {
            return Err(AuthError::InsufficientScope {
                required: self.required.clone(),
            });
        }
        for (name, want) in &self.require_claims {
            let ok = match t.claims.get(name) {
                Some(Value::Array(items)) if !want.is_array() => items.contains(want),
                Some(v) => v == want,
                None => false,
            };
            if !ok {
                return Err(AuthError::ClaimMismatch {
                    required: self.required.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
