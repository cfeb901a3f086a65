//! Reading an STS answer: the error mapping of a refusal and the checks of a success.
//!
//! Only the status and the registered OAuth `error` code of a refusal are used; the rest of
//! the body (`error_description`, `error_uri`) is never read into an error or a log.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use super::{ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE};
use crate::exchange::{ExchangeError, IssuedToken};
use crate::jws::parse_strict_object;

/// Longest `access_token` accepted (16 KiB): it becomes an upstream request header.
const MAX_ISSUED_TOKEN_BYTES: usize = 16 * 1024;

/// Deepest JSON nesting accepted in an STS answer.
const MAX_RESPONSE_DEPTH: usize = 16;

/// Longest `jti` of an issued token written to the audit log.
const MAX_AUDIT_JTI_CHARS: usize = 128;

/// Maps a non-200 answer to an error from its status and its OAuth `error` code only.
pub(super) fn status_error(status: StatusCode, body: &[u8]) -> ExchangeError {
    if status.is_redirection() {
        return ExchangeError::BadResponse("redirect not followed");
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ExchangeError::Unavailable("the STS is rate limiting");
    }
    if status.is_server_error() {
        return ExchangeError::Unavailable("the STS answered with a server error");
    }
    if !status.is_client_error() {
        return ExchangeError::BadResponse("unexpected HTTP status");
    }
    match oauth_error_code(body) {
        Some("invalid_client") => ExchangeError::Unauthorized,
        Some("invalid_grant") => ExchangeError::SubjectRejected,
        Some("invalid_target") => ExchangeError::InvalidTarget,
        Some("invalid_scope" | "unauthorized_client" | "access_denied") => ExchangeError::Forbidden,
        Some("temporarily_unavailable" | "server_error") => {
            ExchangeError::Unavailable("the STS reported an error")
        }
        Some(code) => ExchangeError::Rejected(code),
        None if status == StatusCode::UNAUTHORIZED => ExchangeError::Unauthorized,
        None if status == StatusCode::FORBIDDEN => ExchangeError::Forbidden,
        None => ExchangeError::Rejected("other"),
    }
}

/// The RFC 6749 §5.2 `error` code of an error answer, as one of the registered codes
/// (`"other"` for any other string); `None` when the body has none.
fn oauth_error_code(body: &[u8]) -> Option<&'static str> {
    let object = parse_strict_object(body, MAX_RESPONSE_DEPTH).ok()?;
    let code = object.get("error")?.as_str()?;
    const KNOWN: &[&str] = &[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "access_denied",
        "temporarily_unavailable",
        "server_error",
    ];
    Some(
        KNOWN
            .iter()
            .copied()
            .find(|k| *k == code)
            .unwrap_or("other"),
    )
}

/// Checks a 200 answer and turns it into the issued token.
pub(super) fn parse_success(
    body: &[u8],
    requested_scope: &str,
    subject_exp: i64,
    now: i64,
) -> Result<IssuedToken, ExchangeError> {
    let bad = ExchangeError::BadResponse;
    let object = parse_strict_object(body, MAX_RESPONSE_DEPTH)
        .map_err(|_| bad("the answer is not a JSON object"))?;
    let token = string_member(&object, "access_token")?.ok_or(bad("no access_token"))?;
    if token.is_empty() || token.len() > MAX_ISSUED_TOKEN_BYTES {
        return Err(bad("the access_token is empty or too long"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the access_token is not visible ASCII"));
    }
    match string_member(&object, "issued_token_type")? {
        Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
        Some(_) => return Err(bad("the issued_token_type is not an access token or JWT")),
        None => return Err(bad("no issued_token_type")),
    }
    match string_member(&object, "token_type")? {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(bad("the token_type is not Bearer")),
        None => return Err(bad("no token_type")),
    }
    let expires_in = match object.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64().ok_or(bad("expires_in is not an integer"))?,
        Some(_) => return Err(bad("expires_in is not an integer")),
        None => return Err(bad("no expires_in")),
    };
    if expires_in <= 0 {
        return Err(bad("expires_in is not positive"));
    }
    let scope = match string_member(&object, "scope")? {
        None => requested_scope.to_owned(),
        Some(granted) => {
            let requested: Vec<&str> = requested_scope.split(' ').collect();
            if granted
                .split(' ')
                .filter(|s| !s.is_empty())
                .any(|s| !requested.contains(&s))
            {
                return Err(bad("the STS granted a scope that was not requested"));
            }
            granted.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    };
    Ok(IssuedToken {
        token: token.into(),
        expires_at: now.saturating_add(expires_in).min(subject_exp),
        scope: scope.into(),
    })
}

/// A member that must be a string when present.
fn string_member<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, ExchangeError> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ExchangeError::BadResponse(
            "a member has the wrong JSON type",
        )),
    }
}

/// The `jti` of an issued token that is a JWT, for the audit log only (not verified:
/// the STS is the issuer; the backend verifies). `None` for opaque tokens.
pub(super) fn jwt_jti(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload).ok()?;
    let jti = claims.get("jti")?.as_str()?;
    Some(jti.chars().take(MAX_AUDIT_JTI_CHARS).collect())
}
