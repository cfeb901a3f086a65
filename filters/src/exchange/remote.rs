//! RFC 8693 client: obtains backend tokens from a remote security token service.
//!
//! One `POST` per exchange (form-encoded, RFC 6749 client authentication), no redirects,
//! one timeout over the whole call, the answer capped before it is buffered and checked
//! member by member before it is used.

mod answer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::sync::Semaphore;

use super::{
    audit, narrow_scopes, ExchangeConfigError, ExchangeError, ExchangeRequest, Exchanger,
    IssuedToken,
};
use crate::validate::unix_now;

use self::answer::{jwt_jti, parse_success, status_error};

/// Default timeout of one exchange, connect to last byte (2 s). Longer holds client
/// requests (and their connections) longer while the STS struggles; shorter fails
/// exchanges a slow but healthy STS would have answered.
pub const DEFAULT_STS_TIMEOUT: Duration = Duration::from_secs(2);

/// Default cap on the STS answer (64 KiB), checked before buffering. Token responses are
/// a few KiB; raising it lets a misbehaving STS make the gateway buffer more per request.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Default cap on exchanges in flight to one STS at once (64). Requests beyond it wait for
/// a slot within the same [`RemoteStsConfig::timeout`] (then 503), so a flood of distinct
/// subjects cannot open unbounded connections to the STS. Raising it lets one gateway put
/// more load on a struggling STS; lowering it queues requests sooner.
pub const DEFAULT_MAX_CONCURRENT_EXCHANGES: usize = 64;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// How the gateway authenticates to the STS (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_secret_basic` (default): `Authorization: Basic` over the form-urlencoded id
    /// and secret. Keeps the secret out of request bodies that an STS might log.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` as form fields. Only for STSes
    /// that do not support Basic.
    Post,
}

/// Settings of a [`RemoteSts`]. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteStsConfig {
    /// The STS token endpoint. `https`, or `http` to a loopback host; no credentials in
    /// the URL.
    pub token_endpoint: String,
    /// The gateway's client id at the STS.
    pub client_id: String,
    /// The gateway's client secret (from the environment, never from the config file).
    pub client_secret: String,
    /// Client authentication method (default [`ClientAuth::Basic`]).
    pub auth: ClientAuth,
    /// Timeout of one exchange, connect to last byte (default [`DEFAULT_STS_TIMEOUT`]).
    pub timeout: Duration,
    /// Allow plain `http` to non-loopback hosts (default false). Turning it on sends the
    /// client secret and the subject token in clear text.
    pub allow_insecure_http: bool,
    /// Cap on the answer's size (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: usize,
    /// Most exchanges in flight at once (default [`DEFAULT_MAX_CONCURRENT_EXCHANGES`]).
    pub max_concurrent: usize,
}

impl RemoteStsConfig {
    /// A configuration with the defaults: Basic auth, 2 s timeout, https only (loopback
    /// excepted), 64 KiB answers, 64 exchanges in flight.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        RemoteStsConfig {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth: ClientAuth::Basic,
            timeout: DEFAULT_STS_TIMEOUT,
            allow_insecure_http: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent: DEFAULT_MAX_CONCURRENT_EXCHANGES,
        }
    }
}

impl RemoteStsConfig {
    /// Checks the settings without building a client: what [`RemoteSts::new`] refuses.
    /// Returns the token endpoint as a parsed URL.
    pub fn check(&self) -> Result<Url, ExchangeConfigError> {
        let endpoint = check_endpoint(&self.token_endpoint, self.allow_insecure_http)?;
        if self.client_id.is_empty() {
            return Err(ExchangeConfigError::InvalidSetting(
                "the STS client_id is empty",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ExchangeConfigError::InvalidSetting(
                "the STS timeout is zero",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(ExchangeConfigError::InvalidSetting(
                "the STS answer cap is zero",
            ));
        }
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ExchangeConfigError::InvalidSetting(
                "the STS concurrency cap is zero or too large",
            ));
        }
        Ok(endpoint)
    }
}

impl fmt::Debug for RemoteStsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStsConfig")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

/// An RFC 8693 client of one STS.
///
/// Request: `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, the subject
/// token as an `access_token`, `audience`, `scope` (the narrowed set; omitted when empty)
/// and `requested_token_type` = access token.
///
/// The answer must be a 200 JSON object with a non-empty `access_token` (visible ASCII, at
/// most 16 KiB), `issued_token_type` = the access-token or JWT token type, `token_type`
/// `Bearer` (case-insensitive; `N_A` is refused: the token must be usable as a bearer
/// access token), an integer `expires_in` > 0 (required here, only recommended by RFC
/// 8693: without it the cache could not know when to stop using the token) and, if
/// present, a `scope` within the requested one. Expiry: min(now + `expires_in`, subject
/// `exp`). A `refresh_token` is ignored.
///
/// Build it on the runtime that uses it (its connection pool belongs to that runtime).
/// `Debug` never shows the secret.
pub struct RemoteSts {
    endpoint: Url,
    client: reqwest::Client,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    basic: Option<HeaderValue>,
    timeout: Duration,
    max_response_bytes: usize,
    /// One permit per exchange in flight ([`RemoteStsConfig::max_concurrent`]).
    in_flight: Arc<Semaphore>,
}

impl fmt::Debug for RemoteSts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSts")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteSts {
    /// Checks the configuration and builds the HTTP client (no I/O).
    pub fn new(config: RemoteStsConfig) -> Result<Self, ExchangeConfigError> {
        let endpoint = config.check()?;
        let basic = match config.auth {
            ClientAuth::Basic => {
                let mut credentials = form_urlencode(&config.client_id);
                credentials.push(':');
                credentials.push_str(&form_urlencode(&config.client_secret));
                let mut value =
                    HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
                        .map_err(|_| {
                            ExchangeConfigError::InvalidSetting(
                                "the STS client credentials do not fit a header",
                            )
                        })?;
                value.set_sensitive(true);
                Some(value)
            }
            ClientAuth::Post => None,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .no_proxy()
            .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ExchangeConfigError::HttpClient(e.to_string()))?;
        Ok(RemoteSts {
            endpoint,
            client,
            client_id: config.client_id,
            client_secret: config.client_secret,
            auth: config.auth,
            basic,
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            in_flight: Arc::new(Semaphore::new(config.max_concurrent)),
        })
    }

    /// The form body of one exchange.
    fn form(&self, req: &ExchangeRequest<'_>, scope: &str) -> String {
        let mut pairs = vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", req.subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", req.audience),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", scope));
        }
        if self.auth == ClientAuth::Post {
            pairs.push(("client_id", &self.client_id));
            pairs.push(("client_secret", &self.client_secret));
        }
        let mut body = String::with_capacity(req.subject_token.len() + 512);
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            if i > 0 {
                body.push('&');
            }
            body.push_str(name);
            body.push('=');
            body.push_str(&form_urlencode(value));
        }
        body
    }

    /// POSTs the form; returns the status and the body (at most `max_response_bytes`).
    async fn post(&self, body: String) -> Result<(StatusCode, Bytes), ExchangeError> {
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(basic) = &self.basic {
            request = request.header(AUTHORIZATION, basic.clone());
        }
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_redirection() || status.is_server_error() {
            // Neither body is read: it would not be used.
            return Ok((status, Bytes::new()));
        }
        let cap = self.max_response_bytes;
        let too_large = ExchangeError::BadResponse("the answer is larger than the cap");
        let declared = response.content_length();
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(too_large);
        }
        let initial = declared
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0);
        let mut buffer = BytesMut::with_capacity(initial.min(cap));
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if chunk.len() > cap - buffer.len() {
                return Err(too_large);
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok((status, buffer.freeze()))
    }
}

#[async_trait]
impl Exchanger for RemoteSts {
    async fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError> {
        if req.audience.is_empty() {
            return Err(ExchangeError::InvalidTarget);
        }
        if req.subject.exp <= unix_now() {
            return Err(ExchangeError::SubjectRejected);
        }
        let scope = narrow_scopes(&req.subject.scopes, req.allowed_scopes);
        let body = self.form(req, &scope);
        // reqwest's timeout covers the body too; this one also bounds anything it does not,
        // and the wait for a slot when `max_concurrent` exchanges are in flight.
        let call = async {
            let _slot = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| ExchangeError::Unavailable("the STS client is closed"))?;
            self.post(body).await
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        if status != StatusCode::OK {
            let error = status_error(status, &bytes);
            let code = status.as_u16();
            if error == ExchangeError::Unauthorized {
                tracing::error!(target: "tokengate::exchange", endpoint = %self.endpoint, status = code, "the STS refused tokengate's client credentials");
            } else {
                tracing::warn!(target: "tokengate::exchange", endpoint = %self.endpoint, status = code, reason = error.reason(), "token exchange refused");
            }
            return Err(error);
        }
        let issued = parse_success(&bytes, &scope, req.subject.exp, unix_now())?;
        let jti = jwt_jti(&issued.token);
        audit(req, "remote", &issued.scope, jti.as_deref().unwrap_or("-"));
        Ok(issued)
    }
}

fn transport_error(e: reqwest::Error) -> ExchangeError {
    if e.is_timeout() {
        ExchangeError::Timeout
    } else if e.is_connect() {
        ExchangeError::Unavailable("cannot connect to the STS")
    } else {
        ExchangeError::Unavailable("the STS request failed")
    }
}

/// The `application/x-www-form-urlencoded` byte serializer (WHATWG URL §5.2): ASCII
/// alphanumerics and `*-._` as is, space as `+`, every other byte as `%XX`.
pub(super) fn form_urlencode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// The token endpoint under the same URL rule as key fetching ([`crate::jwks`]):
/// `https` always; `http` only to a loopback host unless `allow_insecure_http`; no other
/// scheme, no credentials in the URL.
fn check_endpoint(raw: &str, allow_insecure_http: bool) -> Result<Url, ExchangeConfigError> {
    crate::jwks::check_url(raw, allow_insecure_http)
        .map_err(|e| ExchangeConfigError::BadEndpoint(e.to_string()))
}
