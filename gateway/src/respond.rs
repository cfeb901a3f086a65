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
    /// More header fields or bytes than `max_header_count` / `max_header_size`: 431.
    HeadersTooLarge,
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
            Denial::BadPath(_)
                | Denial::HeadersTooLarge
                | Denial::NotFound
                | Denial::MethodNotAllowed
        )
    }

    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Auth(e) => e.reason(),
            Denial::BadPath(_) => "bad_path",
            Denial::HeadersTooLarge => "headers_too_large",
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
            Denial::HeadersTooLarge => 431,
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
            Denial::HeadersTooLarge => (
                "invalid_request",
                "the request has more header fields or bytes than allowed",
            ),
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

    /// The `WWW-Authenticate` challenge, for 400/401/403 auth refusals: the `DPoP` scheme
    /// with its `algs` parameter when `dpop_algs` is given (RFC 9449 §7.1), else `Bearer`.
    pub fn challenge(&self, dpop_algs: Option<&str>) -> Option<String> {
        let scheme = if dpop_algs.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        let mut c = format!("{scheme} realm=\"{REALM}\"");
        match self {
            Denial::Exchange(e) if matches!(e.status(), 401 | 403) => {
                let (code, description) = self.error_and_description();
                c.push_str(&format!(
                    ", error=\"{code}\", error_description=\"{description}\""
                ));
            }
            Denial::Auth(e) if matches!(e.status(), 400 | 401 | 403) => {
                if let Some(code) = e.code().as_str() {
                    c.push_str(&format!(
                        ", error=\"{code}\", error_description=\"{}\"",
                        e.description()
                    ));
                }
                if let Some(scope) = e.required_scope() {
                    c.push_str(&format!(", scope=\"{scope}\""));
                }
                if let AuthError::InsufficientUserAuthentication {
                    acr_values,
                    max_age,
                } = e
                {
                    if !acr_values.is_empty() {
                        c.push_str(&format!(", acr_values=\"{acr_values}\""));
                    }
                    if let Some(max_age) = max_age {
                        c.push_str(&format!(", max_age={max_age}"));
                    }
                }
            }
            _ => return None,
        }
        if let Some(algs) = dpop_algs {
            c.push_str(&format!(", algs=\"{algs}\""));
        }
        Some(c)
    }

    /// Whether this refusal is about a DPoP proof, so that it must be answered with the
    /// `DPoP` scheme whatever the request used.
    pub fn is_dpop(&self) -> bool {
        matches!(
            self,
            Denial::Auth(
                AuthError::InvalidDpopProof(_)
                    | AuthError::DpopReplay
                    | AuthError::UseDpopNonce
                    | AuthError::DpopKeyMismatch
                    | AuthError::DpopRequired
            )
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let (error, description) = self.error_and_description();
        serde_json::json!({ "error": error, "error_description": description }).to_string()
    }
}

/// What a refusal adds for DPoP clients.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'a> {
    /// Challenge with the `DPoP` scheme, advertising these algorithms.
    pub dpop_algs: Option<&'a str>,
    /// A fresh server nonce (`DPoP-Nonce` header).
    pub dpop_nonce: Option<&'a str>,
    /// Besides the `Bearer` challenge, offer `DPoP` with these algorithms.
    pub also_dpop: Option<&'a str>,
}

/// Writes a refusal as the complete response, with the DPoP challenge and nonce when given.
pub async fn write(
    session: &mut Session,
    request_id: &str,
    d: &Denial,
    extras: Extras<'_>,
) -> Result<()> {
    let body = d.body();
    let mut resp = ResponseHeader::build(d.status(), Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header(REQUEST_ID, request_id)?;
    if let Some(c) = d.challenge(extras.dpop_algs) {
        resp.insert_header("www-authenticate", c)?;
        if let Some(algs) = extras.also_dpop {
            resp.append_header(
                "www-authenticate",
                format!("DPoP realm=\"{REALM}\", algs=\"{algs}\""),
            )?;
        }
    }
    if let Some(nonce) = extras.dpop_nonce {
        resp.insert_header(crate::bind::DPOP_NONCE, nonce)?;
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
        let c = d.challenge(None).unwrap();
        assert!(
            c.starts_with("Bearer realm=\"tokengate\", error=\"insufficient_scope\""),
            "{c}"
        );
        assert!(c.ends_with(", scope=\"orders:read\""), "{c}");
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        assert_eq!(
            Denial::Auth(AuthError::MissingToken)
                .challenge(None)
                .unwrap(),
            "Bearer realm=\"tokengate\""
        );
    }

    #[test]
    fn unavailable_keys_get_no_challenge() {
        assert_eq!(
            Denial::Auth(AuthError::KeysUnavailable).challenge(None),
            None
        );
        assert!(Denial::Auth(AuthError::KeysUnavailable)
            .body()
            .contains("temporarily_unavailable"));
    }

    #[test]
    fn dpop_challenge_uses_the_dpop_scheme_and_lists_algorithms() {
        let c = Denial::Auth(AuthError::InvalidDpopProof("the DPoP proof is too old"))
            .challenge(Some("ES256 EdDSA"))
            .unwrap();
        assert_eq!(
            c,
            "DPoP realm=\"tokengate\", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof is too old\", algs=\"ES256 EdDSA\""
        );
        let n = Denial::Auth(AuthError::UseDpopNonce)
            .challenge(Some("ES256"))
            .unwrap();
        assert!(n.contains("error=\"use_dpop_nonce\""), "{n}");
        assert!(Denial::Auth(AuthError::DpopReplay).is_dpop());
        assert!(!Denial::Auth(AuthError::Expired).is_dpop());
    }

    #[test]
    fn step_up_challenge_names_acr_values_and_max_age() {
        let c = Denial::Auth(AuthError::InsufficientUserAuthentication {
            acr_values: "urn:mfa urn:hwk".into(),
            max_age: Some(300),
        })
        .challenge(None)
        .unwrap();
        assert!(
            c.starts_with("Bearer realm=\"tokengate\", error=\"insufficient_user_authentication\""),
            "{c}"
        );
        assert!(
            c.ends_with(", acr_values=\"urn:mfa urn:hwk\", max_age=300"),
            "{c}"
        );
    }

    #[test]
    fn body_is_json_with_fixed_strings() {
        let v: serde_json::Value =
            serde_json::from_str(&Denial::Auth(AuthError::Expired).body()).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(v["error_description"], "the token has expired");
    }
}
