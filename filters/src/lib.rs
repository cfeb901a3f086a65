//! Token logic of tokengate, free of Pingora types so that it can be unit-tested and
//! benchmarked on its own.
//!
//! The request path calls, in order: [`route::RouteTable::matches`], [`extract_bearer`],
//! [`validate::Validator::validate`], the route policy ([`validate::RoutePolicy`]) and the
//! identity-header policy ([`headers`]).
#![forbid(unsafe_code)]

pub mod claims;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod jwk;
pub mod jwks;
pub mod jws;
pub mod revocation;
pub mod route;
pub mod sign;
pub mod validate;

pub use claims::VerifiedToken;
pub use error::AuthError;
pub use jws::Algorithm;

/// Default cap on the size of a bearer token, checked before any parsing (8 KiB).
/// Raising it lets clients make the gateway base64-decode and JSON-parse larger inputs.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Extracts the token from the value of an `Authorization` header.
///
/// The scheme is matched case-insensitively (`Bearer`), separated from the token by
/// exactly one space; the token must be `token68` (RFC 7235) and at most `max_len` bytes.
/// Returns `Ok(None)` when the header uses another scheme (the request then carries no
/// bearer token, which RFC 6750 answers without an error code).
pub fn extract_bearer(value: &[u8], max_len: usize) -> Result<Option<&str>, AuthError> {
    const SCHEME: &[u8] = b"bearer";
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return if value.eq_ignore_ascii_case(SCHEME) {
            Err(AuthError::InvalidRequest("the Bearer scheme needs a token"))
        } else {
            Ok(None)
        };
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Ok(None);
    }
    let token = &rest[1..];
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("the Bearer scheme needs a token"));
    }
    if token.len() > max_len {
        return Err(AuthError::TokenTooLarge);
    }
    if !is_token68(token) {
        return Err(AuthError::InvalidRequest(
            "the bearer token is not a well-formed token68 value",
        ));
    }
    // token68 is ASCII, so this cannot fail; map defensively rather than unwrap.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| AuthError::InvalidRequest("the bearer token is not ASCII"))
}

/// RFC 7235 `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(t: &[u8]) -> bool {
    let body_end = t.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    body_end > 0
        && t[..body_end]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(
            extract_bearer(b"bEaReR abc.def.ghi", 100).unwrap(),
            Some("abc.def.ghi")
        );
    }

    #[test]
    fn other_schemes_carry_no_bearer_token() {
        assert_eq!(extract_bearer(b"Basic dXNlcjpwYXNz", 100).unwrap(), None);
    }

    #[test]
    fn bearer_without_token_is_invalid_request() {
        assert!(matches!(
            extract_bearer(b"Bearer", 100),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            extract_bearer(b"Bearer ", 100),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn double_space_or_bad_characters_are_invalid_request() {
        assert!(matches!(
            extract_bearer(b"Bearer  a.b.c", 100),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            extract_bearer(b"Bearer a.b.c x", 100),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            extract_bearer(b"Bearer a\r\nb", 100),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            extract_bearer(b"Bearer ====", 100),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 101));
        assert!(matches!(
            extract_bearer(&v, 100),
            Err(AuthError::TokenTooLarge)
        ));
    }
}
