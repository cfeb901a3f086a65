//! The one place where denials become HTTP responses (RFC 6750 challenges and a JSON body
//! `{"error":…,"error_description":…}`), so every refusal looks the same. Bodies hold only
//! fixed strings: never token material or claim values.

use bytes::Bytes;
use filters::AuthError;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::proxy::REQUEST_ID;

/// Realm advertised in `WWW-Authenticate`.
pub const REALM: &str = "tokengate";

/// A refusal decided by the gateway.
#[derive(Debug)]
pub enum Denial {
    /// Token or route policy.
    Auth(AuthError),
    /// The path is refused before routing (dot segments, encoded separators).
    BadPath(&'static str),
    NotFound,
    MethodNotAllowed,
    /// The upstream failed: 502 or 504.
    Upstream(u16),
    /// The token exchange failed.
    Exchange(filters::exchange::ExchangeError),
}

impl Denial {
    /// Whether this refusal comes from routing rather than authentication.
    pub fn is_routing(&self) -> bool {
        matches!(
            self,
            Denial::BadPath(_) | Denial::NotFound | Denial::MethodNotAllowed
        )
    }

    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Auth(e) => e.reason(),
            Denial::BadPath(_) => "bad_path",
            Denial::NotFound => "no_route",
            Denial::MethodNotAllowed => "method_not_allowed",
            Denial::Upstream(504) => "upstream_timeout",
            Denial::Upstream(_) => "upstream_unavailable",
            Denial::Exchange(e) => e.reason(),
        }
    }

    fn status(&self) -> u16 {
        match self {
            Denial::Auth(e) => e.status(),
            Denial::BadPath(_) => 400,
            Denial::NotFound => 404,
            Denial::MethodNotAllowed => 405,
            Denial::Upstream(code) => *code,
            Denial::Exchange(e) => e.status(),
        }
    }

    fn error_and_description(&self) -> (&'static str, &'static str) {
        match self {
            Denial::Auth(e) => (e.code().as_str().unwrap_or("unauthorized"), e.description()),
            Denial::BadPath(why) => ("invalid_request", why),
            Denial::NotFound => ("not_found", "no route matches this request"),
            Denial::MethodNotAllowed => {
                ("method_not_allowed", "the route does not allow this method")
            }
            Denial::Upstream(504) => ("upstream_timeout", "the upstream did not answer in time"),
            Denial::Upstream(_) => ("upstream_unavailable", "the upstream could not be reached"),
            Denial::Exchange(e) => match e.status() {
                401 => (
                    "invalid_token",
                    "the token cannot be exchanged for this backend",
                ),
                403 => (
                    "insufficient_scope",
                    "the token is not allowed for this backend",
                ),
                _ => (
                    "temporarily_unavailable",
                    "the backend token cannot be obtained right now",
                ),
            },
        }
    }

    /// The `WWW-Authenticate` challenge, for 400/401/403 auth refusals.
    pub fn challenge(&self) -> Option<String> {
        if let Denial::Exchange(e) = self {
            let (code, description) = self.error_and_description();
            return matches!(e.status(), 401 | 403)
                .then(|| format!("Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{description}\""));
        }
        let Denial::Auth(e) = self else { return None };
        if !matches!(e.status(), 400 | 401 | 403) {
            return None;
        }
        let mut c = format!("Bearer realm=\"{REALM}\"");
        if let Some(code) = e.code().as_str() {
            c.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                e.description()
            ));
        }
        if let Some(scope) = e.required_scope() {
            c.push_str(&format!(", scope=\"{scope}\""));
        }
        Some(c)
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let (error, description) = self.error_and_description();
        serde_json::json!({ "error": error, "error_description": description }).to_string()
    }
}

/// Writes a refusal as the complete response.
pub async fn write(session: &mut Session, request_id: &str, d: &Denial) -> Result<()> {
    let body = d.body();
    let mut resp = ResponseHeader::build(d.status(), Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header(REQUEST_ID, request_id)?;
    if let Some(c) = d.challenge() {
        resp.insert_header("www-authenticate", c)?;
    }
    if matches!(d, Denial::Auth(e) if e.status() == 503) {
        resp.insert_header("retry-after", "5")?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

/// Writes a JSON response that must not be cached (STS answers), with an optional
/// `WWW-Authenticate` challenge.
pub async fn json(
    session: &mut Session,
    request_id: &str,
    status: u16,
    body: String,
    challenge: Option<&str>,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("pragma", "no-cache")?;
    resp.insert_header(REQUEST_ID, request_id)?;
    if let Some(c) = challenge {
        resp.insert_header("www-authenticate", c)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

/// Serves the signer's JWKS.
pub async fn jwks(session: &mut Session, request_id: &str, body: Bytes) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(4))?;
    resp.insert_header("content-type", "application/jwk-set+json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "public, max-age=300")?;
    resp.insert_header(REQUEST_ID, request_id)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Writes an empty 204 (logout).
pub async fn no_content(session: &mut Session, request_id: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(204, Some(2))?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header(REQUEST_ID, request_id)?;
    session.write_response_header(Box::new(resp), true).await?;
    Ok(())
}

/// Status for a proxying error: 504 for upstream timeouts, 502 for other upstream
/// failures, 400 for a broken request, 500 otherwise; 0 when the client is gone.
pub fn status_for_error(e: &Error) -> u16 {
    use pingora::ErrorSource;
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names_error_and_scope() {
        let d = Denial::Auth(AuthError::InsufficientScope {
            required: "orders:read".into(),
        });
        let c = d.challenge().unwrap();
        assert!(
            c.starts_with("Bearer realm=\"tokengate\", error=\"insufficient_scope\""),
            "{c}"
        );
        assert!(c.ends_with(", scope=\"orders:read\""), "{c}");
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        assert_eq!(
            Denial::Auth(AuthError::MissingToken).challenge().unwrap(),
            "Bearer realm=\"tokengate\""
        );
    }

    #[test]
    fn unavailable_keys_get_no_challenge() {
        assert_eq!(Denial::Auth(AuthError::KeysUnavailable).challenge(), None);
        assert!(Denial::Auth(AuthError::KeysUnavailable)
            .body()
            .contains("temporarily_unavailable"));
    }

    #[test]
    fn body_is_json_with_fixed_strings() {
        let v: serde_json::Value =
            serde_json::from_str(&Denial::Auth(AuthError::Expired).body()).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(v["error_description"], "the token has expired");
    }
}
