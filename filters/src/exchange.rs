//! RFC 8693 token exchange: audience-restricted backend tokens minted by the gateway's own
//! signer ([`LocalSigner`]) or obtained from a remote STS ([`RemoteSts`]), cached per
//! (subject token, audience, scope) with single-flight ([`ExchangeCache`]).
//!
//! The caller (the gateway's request filter) has already validated the subject token,
//! checked the route policy and checked revocation; an [`Exchanger`] only turns that
//! verified subject into a token for one backend audience.
//!
//! Scopes are never widened: the issued scope is the subject's scopes intersected with the
//! route's allowed set ([`narrow_scopes`]).
//!
//! Every minted or obtained token is recorded as an audit event on the tracing target
//! `tokengate::exchange` (`"token exchanged"`, with the request id, subject, client,
//! audience, scopes and the issued token's `jti`). Cache hits are not audited again. No
//! token, secret or STS response body is ever logged or put into an error.

mod cache;
mod local;
mod remote;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::claims::VerifiedToken;

pub use cache::{ExchangeCache, ExchangeCacheStats, DEFAULT_EXCHANGE_CACHE_ENTRIES};
pub use local::{LocalSigner, RESERVED_CLAIMS, SUBJECT_TOKEN_JTI_CLAIM};
pub use remote::{
    ClientAuth, RemoteSts, RemoteStsConfig, DEFAULT_MAX_CONCURRENT_EXCHANGES,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_STS_TIMEOUT,
};

/// `typ` header of every token the gateway mints (RFC 9068 JWT access token).
pub const ISSUED_TOKEN_TYP: &str = "at+jwt";

/// One exchange: who the subject is, and what the backend token must look like.
///
/// Built per request from the verified subject and the route's exchange settings. Nothing
/// here is copied into logs except the audit fields named in the module docs; `Debug`
/// never shows the subject token.
#[derive(Clone, Copy)]
pub struct ExchangeRequest<'a> {
    /// The verified subject token's claims.
    pub subject: &'a VerifiedToken,
    /// The subject token as presented (sent to a remote STS; hashed for the cache key
    /// when the subject has no `jti`; never logged).
    pub subject_token: &'a str,
    /// The backend audience (`aud` of the issued token, `audience` of the STS request).
    /// Must not be empty ([`ExchangeError::InvalidTarget`]).
    pub audience: &'a str,
    /// Scopes the route lets the backend token carry. The issued scope is the subject's
    /// scopes intersected with this set; an empty set issues no scope at all.
    pub allowed_scopes: &'a [String],
    /// Lifetime of a minted token (local signer only; capped by the subject's `exp`;
    /// below one second counts as one second). A remote STS decides its own lifetime.
    pub ttl: Duration,
    /// Claims copied from the subject into a minted token (local signer only). Names in
    /// [`RESERVED_CLAIMS`] are skipped.
    pub carry_claims: &'a [String],
    /// The request id, for the audit event only (not part of the cache key).
    pub request_id: Option<&'a str>,
    /// The party acting for the subject, named in `act.sub` of a minted token (local
    /// signer only; part of the cache key). `None`: the signer's configured actor. The
    /// STS endpoint passes the requesting client's id here.
    pub actor: Option<&'a str>,
}

impl fmt::Debug for ExchangeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeRequest")
            .field("subject", &self.subject)
            .field("subject_token", &"<redacted>")
            .field("audience", &self.audience)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("ttl", &self.ttl)
            .field("carry_claims", &self.carry_claims)
            .field("request_id", &self.request_id)
            .field("actor", &self.actor)
            .finish()
    }
}

/// A backend token and what the gateway knows about it.
///
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token to send as `Authorization: Bearer <token>`: visible ASCII, no spaces.
    pub token: Arc<str>,
    /// When it expires (seconds since the epoch); never after the subject's `exp`.
    pub expires_at: i64,
    /// The granted scopes, space-separated (empty: none). Never wider than requested.
    pub scope: Arc<str>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Turns a verified subject into a token for a backend audience.
///
/// Implementations: [`LocalSigner`], [`RemoteSts`], and [`ExchangeCache`] wrapping either.
#[async_trait]
pub trait Exchanger: Send + Sync {
    /// Issues (or obtains) a backend token. Must never return a token whose scope is wider
    /// than [`narrow_scopes`] of the request or that outlives the subject's `exp`.
    async fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError>;
}

/// Why an exchange failed. Messages are fixed strings: never a token, a secret or an STS
/// response body. [`ExchangeError::status`] is the HTTP status the client gets and
/// [`ExchangeError::reason`] the bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The audience is empty or the STS refused it (`invalid_target`): 403.
    #[error("the token exchange refused the audience")]
    InvalidTarget,
    /// The STS refused the scope or this client for this subject (`invalid_scope`,
    /// `unauthorized_client`, `access_denied`, a bare 403): 403.
    #[error("the token exchange was refused for this subject")]
    Forbidden,
    /// The subject token cannot be exchanged: the STS refused it (`invalid_grant`), it has
    /// expired (within the validator's leeway), or it names neither a subject nor a
    /// client: 401.
    #[error("the subject token cannot be exchanged")]
    SubjectRejected,
    /// The STS refused the gateway's own client credentials (`invalid_client`, a bare
    /// 401). This is a gateway misconfiguration, not the caller's fault: 503.
    #[error("the STS refused the gateway's client credentials")]
    Unauthorized,
    /// The STS did not answer within the timeout: 503.
    #[error("the STS did not answer in time")]
    Timeout,
    /// The STS could not be reached, answered 5xx / 429, or reported
    /// `temporarily_unavailable` / `server_error`: 503.
    #[error("the STS is unavailable: {0}")]
    Unavailable(&'static str),
    /// The STS refused the request for a reason that is the gateway's configuration
    /// (`invalid_request`, `unsupported_grant_type`, another 4xx): 503. The field is the
    /// OAuth error code when it is a registered one, else `"other"`.
    #[error("the STS refused the request ({0})")]
    Rejected(&'static str),
    /// The STS answer is not a valid RFC 8693 token response (status, size, JSON, a
    /// member, a redirect, a scope wider than requested): 503.
    #[error("the STS answer is unusable: {0}")]
    BadResponse(&'static str),
    /// The local signer could not mint the token: 503.
    #[error("minting the backend token failed")]
    Signing,
}

impl ExchangeError {
    /// HTTP status for the client: 401 (subject), 403 (target or scope refused) or 503.
    pub fn status(&self) -> u16 {
        match self {
            ExchangeError::SubjectRejected => 401,
            ExchangeError::InvalidTarget | ExchangeError::Forbidden => 403,
            ExchangeError::Unauthorized
            | ExchangeError::Timeout
            | ExchangeError::Unavailable(_)
            | ExchangeError::Rejected(_)
            | ExchangeError::BadResponse(_)
            | ExchangeError::Signing => 503,
        }
    }

    /// Bounded metric label (`tokengate_exchange_*{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ExchangeError::InvalidTarget => "invalid_target",
            ExchangeError::Forbidden => "forbidden",
            ExchangeError::SubjectRejected => "subject_rejected",
            ExchangeError::Unauthorized => "sts_unauthorized",
            ExchangeError::Timeout => "sts_timeout",
            ExchangeError::Unavailable(_) => "sts_unavailable",
            ExchangeError::Rejected(_) => "sts_rejected",
            ExchangeError::BadResponse(_) => "sts_bad_response",
            ExchangeError::Signing => "signing",
        }
    }
}

/// Why an exchanger could not be built (configuration time only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeConfigError {
    /// The local signer was given no key.
    #[error("the local signer has no signing key")]
    NoKeys,
    /// The active `kid` names none of the signer's keys.
    #[error("the active key id {0:?} is not among the signer's keys")]
    UnknownActiveKey(String),
    /// Two keys share a `kid`: the published JWKS would be ambiguous.
    #[error("two signing keys share the key id {0:?}")]
    DuplicateKeyId(String),
    /// The token endpoint fails the URL rule (https, or http to loopback only).
    #[error("bad token endpoint: {0}")]
    BadEndpoint(String),
    /// The HTTP client could not be built.
    #[error("cannot build the STS HTTP client: {0}")]
    HttpClient(String),
    /// A setting is empty or out of range.
    #[error("invalid exchange setting: {0}")]
    InvalidSetting(&'static str),
}

/// The issued scope: the entries of `allowed` that the subject also holds, in the order of
/// `allowed`, without duplicates, space-separated.
///
/// Never wider than either set: an empty `allowed` yields no scope at all (the backend
/// token then carries no `scope` claim), not the subject's full scope. Entries that are
/// empty or contain whitespace are never issued (they cannot be written in `scope`).
pub fn narrow_scopes(subject: &[String], allowed: &[String]) -> String {
    let mut out = String::new();
    for (i, scope) in allowed.iter().enumerate() {
        let usable = !scope.is_empty() && !scope.chars().any(char::is_whitespace);
        if usable && subject.contains(scope) && !allowed[..i].contains(scope) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(scope);
        }
    }
    out
}

/// Writes the audit event of one issued token. `jti_of_issued` is `"-"` when unknown (an
/// opaque token from an STS).
fn audit(req: &ExchangeRequest<'_>, source: &'static str, scope: &str, jti_of_issued: &str) {
    tracing::info!(
        target: "tokengate::exchange",
        request_id = req.request_id.unwrap_or("-"),
        source,
        issuer = %req.subject.issuer_id,
        subject = req.subject.sub.as_deref().unwrap_or("-"),
        client = req.subject.client.as_deref().unwrap_or("-"),
        audience = req.audience,
        scopes = scope,
        jti_of_issued,
        "token exchanged"
    );
}
