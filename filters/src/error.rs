//! The typed error of the validation pipeline: one variant per reason a request is denied.
//!
//! Each variant knows its HTTP status, its RFC 6750 error code and its metric label. The
//! descriptions are fixed strings: they never carry token material or claim values.

use std::fmt;

/// Why a request was denied. `reason()` is the bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token on a route that requires one (401, no error code, per RFC 6750 §3.1).
    MissingToken,
    /// The `Authorization` header is present but malformed (400 `invalid_request`).
    InvalidRequest(&'static str),
    /// The token is larger than the configured cap (401 `invalid_token`).
    TokenTooLarge,
    /// The token is not a well-formed compact JWS / JWT (401 `invalid_token`).
    Malformed(&'static str),
    /// The token is a JWE (five segments); only signed tokens are accepted.
    EncryptedToken,
    /// `alg` is not an asymmetric algorithm tokengate verifies (`none`, HMAC, unknown).
    UnsupportedAlgorithm,
    /// `alg` is valid in general but not allowed for this issuer or not pinned to this key.
    AlgorithmNotAllowed,
    /// The token names a critical header parameter (`crit`) tokengate does not understand.
    UnsupportedCriticalHeader,
    /// `iss` is missing or names no configured issuer.
    UnknownIssuer,
    /// The issuer is configured but not accepted on this route.
    WrongIssuer,
    /// No key of the issuer has this `kid` (after at most one refetch).
    UnknownKeyId,
    /// The signature does not verify with the issuer's key.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// A required claim is missing or has the wrong JSON type.
    InvalidClaim(&'static str),
    /// `aud` does not name any audience configured for the issuer.
    AudienceMismatch,
    /// The `typ` header is not accepted for access tokens of this issuer.
    WrongTokenType,
    /// The token lacks a scope the route requires (403 `insufficient_scope`).
    InsufficientScope {
        /// The scopes the route requires, space-separated (from configuration, not the token).
        required: std::sync::Arc<str>,
    },
    /// A claim rule of the route (e.g. tenant binding) does not hold (403).
    ClaimMismatch {
        /// The scopes the route requires, if any, to put in the challenge.
        required: std::sync::Arc<str>,
    },
    /// The issuer's keys are not available (cold start, or stale beyond `max_stale`): 503.
    KeysUnavailable,
    /// The route checks revocation and the token has no `jti` (issuer's `require_jti`).
    MissingJti,
    /// `revoked:<jti>` exists.
    TokenRevoked,
    /// The token's refresh-token family is revoked.
    FamilyRevoked,
    /// Every token of the subject issued before a time is revoked (logout everywhere).
    SubjectRevoked,
    /// The revocation store did not answer and the route fails closed: 503.
    StoreUnavailable,
    /// The DPoP proof is missing, malformed, or fails a check of RFC 9449 §4.3 (401
    /// `invalid_dpop_proof`).
    InvalidDpopProof(&'static str),
    /// The DPoP proof's `jti` was already used (401 `invalid_dpop_proof`).
    DpopReplay,
    /// The route requires server nonces and the proof has none or a stale one (401
    /// `use_dpop_nonce`, with a fresh `DPoP-Nonce` header).
    UseDpopNonce,
    /// The proof key's thumbprint is not the token's `cnf.jkt` (401 `invalid_token`).
    DpopKeyMismatch,
    /// A DPoP-bound token (`cnf.jkt`) was sent with the `Bearer` scheme, or a token sent with
    /// the `DPoP` scheme is not DPoP-bound (401 `invalid_token`).
    WrongTokenScheme(&'static str),
    /// The route requires DPoP and the request used a plain bearer token (401
    /// `invalid_token`).
    DpopRequired,
    /// The token is bound to a client certificate (`cnf["x5t#S256"]`) that the connection did
    /// not present (401 `invalid_token`).
    CertificateMismatch,
    /// The token's `acr` or `auth_time` does not satisfy the route (RFC 9470: 401
    /// `insufficient_user_authentication`).
    InsufficientUserAuthentication {
        /// The route's accepted `acr` values, space-separated (from configuration).
        acr_values: std::sync::Arc<str>,
        /// The route's `max_age` in seconds, if it has one.
        max_age: Option<u64>,
    },
}

/// The RFC 6750 §3.1 error code of a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No error code: the request carried no credentials.
    None,
    /// `invalid_request` (400).
    InvalidRequest,
    /// `invalid_token` (401).
    InvalidToken,
    /// `insufficient_scope` (403).
    InsufficientScope,
    /// `temporarily_unavailable` (503), borrowed from RFC 6749 §4.1.2.1.
    TemporarilyUnavailable,
    /// `invalid_dpop_proof` (401, RFC 9449 §7.1).
    InvalidDpopProof,
    /// `use_dpop_nonce` (401, RFC 9449 §9).
    UseDpopNonce,
    /// `insufficient_user_authentication` (401, RFC 9470 §3).
    InsufficientUserAuthentication,
}

impl ErrorCode {
    /// The code as written in `WWW-Authenticate` and the JSON body.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            ErrorCode::None => None,
            ErrorCode::InvalidRequest => Some("invalid_request"),
            ErrorCode::InvalidToken => Some("invalid_token"),
            ErrorCode::InsufficientScope => Some("insufficient_scope"),
            ErrorCode::TemporarilyUnavailable => Some("temporarily_unavailable"),
            ErrorCode::InvalidDpopProof => Some("invalid_dpop_proof"),
            ErrorCode::UseDpopNonce => Some("use_dpop_nonce"),
            ErrorCode::InsufficientUserAuthentication => Some("insufficient_user_authentication"),
        }
    }
}

impl AuthError {
    /// HTTP status of the response.
    pub fn status(&self) -> u16 {
        match self.code() {
            ErrorCode::None
            | ErrorCode::InvalidToken
            | ErrorCode::InvalidDpopProof
            | ErrorCode::UseDpopNonce
            | ErrorCode::InsufficientUserAuthentication => 401,
            ErrorCode::InvalidRequest => 400,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::TemporarilyUnavailable => 503,
        }
    }

    /// RFC 6750 error code.
    pub fn code(&self) -> ErrorCode {
        use AuthError::*;
        match self {
            MissingToken => ErrorCode::None,
            InvalidRequest(_) => ErrorCode::InvalidRequest,
            InsufficientScope { .. } | ClaimMismatch { .. } => ErrorCode::InsufficientScope,
            KeysUnavailable | StoreUnavailable => ErrorCode::TemporarilyUnavailable,
            InvalidDpopProof(_) | DpopReplay => ErrorCode::InvalidDpopProof,
            UseDpopNonce => ErrorCode::UseDpopNonce,
            InsufficientUserAuthentication { .. } => ErrorCode::InsufficientUserAuthentication,
            _ => ErrorCode::InvalidToken,
        }
    }

    /// The scope to advertise in the challenge (`scope="…"`), if any.
    pub fn required_scope(&self) -> Option<&str> {
        match self {
            AuthError::InsufficientScope { required } | AuthError::ClaimMismatch { required }
                if !required.is_empty() =>
            {
                Some(required)
            }
            _ => None,
        }
    }

    /// Bounded metric label, one per variant.
    pub fn reason(&self) -> &'static str {
        use AuthError::*;
        match self {
            MissingToken => "missing_token",
            InvalidRequest(_) => "invalid_request",
            TokenTooLarge => "token_too_large",
            Malformed(_) => "malformed",
            EncryptedToken => "encrypted_token",
            UnsupportedAlgorithm => "unsupported_alg",
            AlgorithmNotAllowed => "alg_not_allowed",
            UnsupportedCriticalHeader => "unsupported_crit",
            UnknownIssuer => "unknown_issuer",
            WrongIssuer => "wrong_issuer",
            UnknownKeyId => "unknown_kid",
            BadSignature => "bad_signature",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IssuedInFuture => "issued_in_future",
            InvalidClaim(_) => "invalid_claim",
            AudienceMismatch => "wrong_audience",
            WrongTokenType => "wrong_type",
            InsufficientScope { .. } => "insufficient_scope",
            ClaimMismatch { .. } => "claim_mismatch",
            KeysUnavailable => "keys_unavailable",
            MissingJti => "missing_jti",
            TokenRevoked => "revoked",
            FamilyRevoked => "family_revoked",
            SubjectRevoked => "subject_revoked",
            StoreUnavailable => "store_unavailable",
            InvalidDpopProof(_) => "invalid_dpop_proof",
            DpopReplay => "dpop_replay",
            UseDpopNonce => "use_dpop_nonce",
            DpopKeyMismatch => "dpop_key_mismatch",
            WrongTokenScheme(_) => "wrong_token_scheme",
            DpopRequired => "dpop_required",
            CertificateMismatch => "certificate_mismatch",
            InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
        }
    }

    /// Human-readable, fixed description: safe to return to the client.
    pub fn description(&self) -> &'static str {
        use AuthError::*;
        match self {
            MissingToken => "a bearer token is required",
            InvalidRequest(why)
            | Malformed(why)
            | InvalidClaim(why)
            | InvalidDpopProof(why)
            | WrongTokenScheme(why) => why,
            TokenTooLarge => "the token is larger than allowed",
            EncryptedToken => "encrypted tokens (JWE) are not accepted",
            UnsupportedAlgorithm => "the token's algorithm is not supported",
            AlgorithmNotAllowed => "the token's algorithm is not allowed for this key",
            UnsupportedCriticalHeader => "the token has an unsupported critical header",
            UnknownIssuer => "the token's issuer is not trusted",
            WrongIssuer => "the token's issuer is not accepted on this route",
            UnknownKeyId => "the token's signing key is unknown",
            BadSignature => "the token's signature is invalid",
            Expired => "the token has expired",
            NotYetValid => "the token is not valid yet",
            IssuedInFuture => "the token was issued in the future",
            AudienceMismatch => "the token is not meant for this audience",
            WrongTokenType => "the token's type is not accepted",
            InsufficientScope { .. } => "the token lacks a required scope",
            ClaimMismatch { .. } => "the token is not allowed on this route",
            KeysUnavailable => "the issuer's keys are temporarily unavailable",
            MissingJti => "the token has no jti, so its revocation cannot be checked",
            TokenRevoked | FamilyRevoked | SubjectRevoked => "the token has been revoked",
            StoreUnavailable => "the revocation status cannot be checked right now",
            DpopReplay => "the DPoP proof was already used",
            UseDpopNonce => "a fresh DPoP nonce is required",
            DpopKeyMismatch => "the DPoP proof key does not match the token's binding",
            DpopRequired => "this route requires a DPoP-bound token and proof",
            CertificateMismatch => {
                "the token is bound to a client certificate this connection did not present"
            }
            InsufficientUserAuthentication { .. } => {
                "a stronger or more recent authentication is required"
            }
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.reason())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc6750() {
        assert_eq!(AuthError::MissingToken.status(), 401);
        assert_eq!(AuthError::MissingToken.code().as_str(), None);
        assert_eq!(AuthError::InvalidRequest("x").status(), 400);
        assert_eq!(AuthError::Expired.status(), 401);
        assert_eq!(AuthError::Expired.code().as_str(), Some("invalid_token"));
        let e = AuthError::InsufficientScope {
            required: "a b".into(),
        };
        assert_eq!(e.status(), 403);
        assert_eq!(e.required_scope(), Some("a b"));
        assert_eq!(AuthError::KeysUnavailable.status(), 503);
    }
}
