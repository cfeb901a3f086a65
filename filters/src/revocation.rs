//! Revocation: per token (`jti`), per refresh-token family, per subject ("logout
//! everywhere"). One store round trip per request.
//!
//! # Data model
//!
//! Three kinds of entries, all with a TTL so that the store never grows without bound:
//!
//! | entry | key (default scheme) | value | a token is refused when |
//! | --- | --- | --- | --- |
//! | token | `revoked:<jti>` | anything | the key exists |
//! | family | `family:<fid>` | anything | the key exists |
//! | subject | `revoked_before:<iss>:<sub>` | Unix seconds, decimal | its `iat` is before the value, or it has no `iat` |
//!
//! The default token key is what many issuers already write on logout (`SET revoked:<jti> 1
//! EX <remaining lifetime>`), so tokengate reads their revocations unchanged. Values must be
//! Redis *strings*: a key of another type (a hash, a set) reads as absent.
//!
//! # Key rule (for external writers)
//!
//! Ids come from tokens, that is from the network, so they are never put in a key as they
//! are unless they are short and plain. Each id (`jti`, family id, `iss`, `sub`) is turned
//! into a key component by this rule, which every writer must follow:
//!
//! * an id made only of the bytes `A-Z a-z 0-9 - . _ ~ : @ + / =` and at most
//!   [`MAX_VERBATIM_ID_BYTES`] (128) bytes long, and not empty, is used verbatim;
//! * any other id (longer, empty, or with any other byte: space, CR/LF, `*`, `{`, `%`,
//!   non-ASCII …) is replaced by `sha256:` followed by the 64 lowercase hex digits of the
//!   SHA-256 of its UTF-8 bytes.
//!
//! So a key is at most `prefix + 128` bytes (`prefix + iss + ":" + sub` for subjects), holds
//! no whitespace, no glob characters and no cluster hash tags (`{`/`}`), and a 4 KiB `jti`
//! costs what a short one costs. [`KeyScheme::token_key`], [`KeyScheme::family_key`] and
//! [`KeyScheme::subject_key`] build the keys; the admin API and CLI use them, and
//! [`key_component`] exposes the rule itself. Two ids can only map to one key when one of them
//! is literally the `sha256:…` form of the other (or, for subjects, when a `:` inside a
//! configured issuer shifts the split); both cases can only over-refuse, never admit.
//!
//! # Writes only tighten
//!
//! `revoke_*` never shortens an entry's remaining TTL nor lowers a subject's
//! `revoked_before` time: the stored value becomes the larger of the old and the new one, and
//! the TTL the longer of the two (atomically, in one Lua script on Redis). Undoing a
//! revocation is a deliberate `DEL` of the key by an operator.
//!
//! # Stores
//!
//! * [`MemoryStore`]: one node, bounded, no I/O; the embedded default.
//! * [`RedisStore`]: shared by every replica; standalone (multiplexed connection that
//!   reconnects by itself) or Cluster; every call under a timeout; `check` is one `MGET`
//!   (on a Cluster, one `MGET` per slot, sent to the shards concurrently). Concurrent checks
//!   are coalesced into one `MGET` per batch (`batch.rs`): still one round trip per check,
//!   read after the check began, never answered from a local copy.

use std::time::Duration;

use async_trait::async_trait;

mod batch;
#[cfg(test)]
mod cluster_tests;
mod keys;
mod memory;
mod redis_store;
mod resp;
#[cfg(test)]
mod resp_tests;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;

pub use keys::{key_component, HASHED_ID_PREFIX, MAX_VERBATIM_ID_BYTES};
pub use memory::MemoryStore;
pub use redis_store::{RedisConfig, RedisStore};

/// Shortest TTL a revocation is stored with (1 s). Shorter TTLs are raised to it, so that a
/// revocation written with a TTL rounded down to zero still exists for at least a second.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// Longest TTL a revocation may be stored with (400 days). Longer TTLs are refused with
/// [`StoreError::InvalidTtl`] rather than silently shortened; raising it lets an entry live
/// (and occupy memory) for longer than any sane token lifetime.
pub const MAX_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// What is checked for one validated token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationQuery<'a> {
    /// `jti`, when the token has one.
    pub jti: Option<&'a str>,
    /// The family id (claim configured per issuer, default `fid`), when present.
    pub family: Option<&'a str>,
    /// `iss` and `sub`, for subject-wide revocation; `iat` is compared with its timestamp.
    pub issuer: &'a str,
    /// `sub`, when the token has one; without it no subject entry is looked up.
    pub subject: Option<&'a str>,
    /// `iat` (Unix seconds); a token without it is refused when its subject entry exists.
    pub iat: Option<i64>,
}

/// The answer of a check.
///
/// When several entries match, the most specific one is reported: token, then family, then
/// subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No entry refuses the token.
    Valid,
    /// `revoked:<jti>` exists.
    TokenRevoked,
    /// `family:<fid>` exists.
    FamilyRevoked,
    /// `revoked_before:<iss>:<sub>` holds a time after the token's `iat` (or the token has
    /// no `iat`).
    SubjectRevoked,
}

impl Verdict {
    /// Whether the token must be refused.
    pub fn is_revoked(self) -> bool {
        self != Verdict::Valid
    }

    /// Bounded metric label (`valid`, `token_revoked`, `family_revoked`, `subject_revoked`).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::TokenRevoked => "token_revoked",
            Verdict::FamilyRevoked => "family_revoked",
            Verdict::SubjectRevoked => "subject_revoked",
        }
    }
}

/// The store could not answer (timeout, connection down). Callers apply the route's
/// `on_store_error` policy.
///
/// Messages never hold token material nor credentials (passwords are cut from URLs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The call did not complete within the configured timeout.
    #[error("revocation store timed out")]
    Timeout,
    /// The store cannot be reached or answered with an error.
    #[error("revocation store unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work (bad URL, bad key prefix, no tokio runtime).
    #[error("revocation store misconfigured: {0}")]
    InvalidConfig(String),
    /// A `revoke_*` TTL is longer than [`MAX_TTL`].
    #[error("revocation ttl is longer than the maximum of {} s", MAX_TTL.as_secs())]
    InvalidTtl,
    /// The memory store holds its maximum number of entries; the revocation was not stored
    /// (existing revocations are never evicted to make room).
    #[error("revocation store is full")]
    Full,
}

impl StoreError {
    /// Bounded metric label (`timeout`, `unavailable`, `invalid_config`, `invalid_ttl`, `full`).
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::InvalidConfig(_) => "invalid_config",
            StoreError::InvalidTtl => "invalid_ttl",
            StoreError::Full => "full",
        }
    }
}

/// Key names. Defaults interoperate with issuers that already write `revoked:<jti>`.
///
/// Changing a prefix makes tokengate blind to entries written under the old one (and to
/// issuers that write the default); [`KeyScheme::validate`] checks that prefixes are
/// printable, short and that none is a prefix of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScheme {
    /// Default `revoked:`.
    pub token_prefix: String,
    /// Default `family:`.
    pub family_prefix: String,
    /// Default `revoked_before:`.
    pub subject_prefix: String,
    /// Default `dpop_jti:`: one-time ids recorded by [`RevocationStore::use_once`] (DPoP
    /// proof `jti`s).
    pub once_prefix: String,
}

impl Default for KeyScheme {
    fn default() -> Self {
        KeyScheme {
            token_prefix: "revoked:".into(),
            family_prefix: "family:".into(),
            subject_prefix: "revoked_before:".into(),
            once_prefix: "dpop_jti:".into(),
        }
    }
}

/// A revocation store: Redis (shared by replicas) or memory (one node).
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Checks token, family and subject in ONE round trip.
    async fn check(&self, q: &RevocationQuery<'_>) -> Result<Verdict, StoreError>;
    /// Revokes one token until `ttl` elapses (its remaining lifetime).
    async fn revoke_token(&self, jti: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Revokes a family for `ttl` (at least the longest lifetime of its tokens).
    async fn revoke_family(&self, family: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Refuses tokens of (`issuer`, `subject`) issued before `before` (Unix seconds), for `ttl`.
    async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        before: i64,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Records a one-time id (a DPoP proof's `jti`) for `ttl`: `Ok(true)` the first time it
    /// is seen by any replica sharing the store, `Ok(false)` on every later call within `ttl`.
    /// One round trip (`SET <once_prefix><id> 1 NX PX <ttl>` on Redis). The memory store keeps
    /// these ids apart from revocations, so a flood of proofs can never crowd them out.
    async fn use_once(&self, id: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Which entry a looked-up key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Family,
    Subject,
}

/// The keys a query needs, in verdict order (token, family, subject); absent fields add none.
fn query_keys(keys: &KeyScheme, q: &RevocationQuery<'_>) -> Vec<(Kind, String)> {
    let mut out = Vec::with_capacity(3);
    if let Some(jti) = q.jti {
        out.push((Kind::Token, keys.token_key(jti)));
    }
    if let Some(family) = q.family {
        out.push((Kind::Family, keys.family_key(family)));
    }
    if let Some(subject) = q.subject {
        out.push((Kind::Subject, keys.subject_key(q.issuer, subject)));
    }
    out
}

/// Whether one found entry refuses the token. `before` is the parsed value of a subject
/// entry (`None`: unreadable); it is ignored for token and family entries.
fn refuses(kind: Kind, before: Option<i64>, iat: Option<i64>) -> bool {
    match kind {
        Kind::Token | Kind::Family => true,
        Kind::Subject => match (before, iat) {
            (Some(before), Some(iat)) => iat < before,
            // No `iat`: nothing proves the token is newer.
            (Some(_), None) => true,
            // Unreadable timestamp: fail closed, the entry exists. Logged at debug level
            // only: it would otherwise be logged on every request of that subject.
            (None, _) => {
                tracing::debug!(
                    "revocation: unreadable revoked_before value; refusing the subject's tokens"
                );
                true
            }
        },
    }
}

/// The verdict for entries found, given in verdict order.
fn verdict_of(kind: Kind) -> Verdict {
    match kind {
        Kind::Token => Verdict::TokenRevoked,
        Kind::Family => Verdict::FamilyRevoked,
        Kind::Subject => Verdict::SubjectRevoked,
    }
}

/// Parses a `revoked_before` value: decimal Unix seconds, optionally with a fraction (written
/// by tools using floating-point time), which rounds up. At most 32 bytes.
fn parse_before(value: &[u8]) -> Option<i64> {
    if value.len() > 32 {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?.trim();
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (text, ""),
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let round_up = frac.bytes().any(|b| b != b'0') && !int.starts_with('-');
    Some(if round_up {
        whole.saturating_add(1)
    } else {
        whole
    })
}

/// Raises a TTL below [`MIN_TTL`] to it; refuses one above [`MAX_TTL`].
fn effective_ttl(ttl: Duration) -> Result<Duration, StoreError> {
    if ttl > MAX_TTL {
        return Err(StoreError::InvalidTtl);
    }
    Ok(ttl.max(MIN_TTL))
}
