//! Getting a JWKS document's bytes: the URL rule, the HTTP client, discovery, and files.
//!
//! Every read is capped before it is buffered: a `Content-Length` over the cap is refused
//! before the body is read, and a body without one is read chunk by chunk and dropped as
//! soon as it passes the cap.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::Url;

use super::{JwksConfig, JwksError, JwksSource};

/// Largest OpenID Provider Metadata document accepted (64 KiB).
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// Longest error detail kept from a transport error, so `last_error` stays short.
const MAX_DETAIL_CHARS: usize = 160;

/// Where the keys are fetched from, resolved and checked at construction.
#[derive(Debug)]
pub(super) enum Origin {
    /// A JWKS URI that passed [`check_url`].
    Uri(Url),
    /// The issuer's metadata URL; its `jwks_uri` is checked on every fetch.
    Discovery(Url),
    /// A local file.
    File(PathBuf),
}

/// Fetches key set documents for one issuer.
#[derive(Debug)]
pub(super) struct Fetcher {
    origin: Origin,
    client: reqwest::Client,
    issuer: String,
    allow_insecure_http: bool,
    timeout: Duration,
    max_bytes: usize,
}

/// A failed fetch and where it failed (a URL or a path, for the log).
pub(super) struct Failure {
    pub(super) at: String,
    pub(super) error: JwksError,
}

impl Fetcher {
    /// Checks the configured source and builds the HTTP client (no I/O).
    pub(super) fn new(config: &JwksConfig) -> Result<Self, JwksError> {
        let origin = origin(config)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .no_proxy()
            // Fetches are rare and may run on different runtimes: never reuse a connection
            // whose driver task lives on another (possibly finished) runtime.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                JwksError::Fetch(format!("cannot build the HTTP client: {}", detail(&e)))
            })?;
        Ok(Fetcher {
            origin,
            client,
            issuer: config.issuer.clone(),
            allow_insecure_http: config.allow_insecure_http,
            timeout: config.fetch_timeout,
            max_bytes: config.limits.max_bytes,
        })
    }

    /// A short description of the source, for logs.
    pub(super) fn describe(&self) -> String {
        match &self.origin {
            Origin::Uri(url) | Origin::Discovery(url) => url.to_string(),
            Origin::File(path) => path.display().to_string(),
        }
    }

    /// Fetches the JWKS document's bytes (at most `limits.max_bytes`).
    ///
    /// Discovery is done again on every call, so a changed `jwks_uri` is followed on the
    /// next refresh; the metadata document is small and the fetch is rare.
    pub(super) async fn fetch(&self) -> Result<Bytes, Failure> {
        match &self.origin {
            Origin::Uri(url) => self.get_jwks(url).await,
            Origin::Discovery(metadata_url) => {
                let jwks_url = self.discover(metadata_url).await.map_err(|error| Failure {
                    at: metadata_url.to_string(),
                    error,
                })?;
                self.get_jwks(&jwks_url).await
            }
            Origin::File(path) => read_file(path.clone(), self.max_bytes)
                .await
                .map_err(|error| Failure {
                    at: path.display().to_string(),
                    error,
                }),
        }
    }

    async fn get_jwks(&self, url: &Url) -> Result<Bytes, Failure> {
        self.get_capped(url, self.max_bytes, "JWKS document")
            .await
            .map_err(|error| Failure {
                at: url.to_string(),
                error,
            })
    }

    /// Reads the issuer's metadata and returns its checked `jwks_uri`.
    async fn discover(&self, url: &Url) -> Result<Url, JwksError> {
        let body = self
            .get_capped(url, MAX_DISCOVERY_BYTES, "discovery document")
            .await?;
        let metadata: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| JwksError::Fetch("discovery document is not JSON".into()))?;
        let metadata = metadata
            .as_object()
            .ok_or_else(|| JwksError::Fetch("discovery document is not a JSON object".into()))?;
        let found = metadata
            .get("issuer")
            .and_then(|v| v.as_str())
            .ok_or_else(|| JwksError::Fetch("discovery document has no string `issuer`".into()))?;
        if found != self.issuer {
            return Err(JwksError::IssuerMismatch {
                expected: self.issuer.clone(),
                found: shorten(found),
            });
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                JwksError::Fetch("discovery document has no string `jwks_uri`".into())
            })?;
        check_url(jwks_uri, self.allow_insecure_http)
    }

    /// GETs `url` and returns its body if the status is 2xx and it is at most `cap` bytes.
    async fn get_capped(&self, url: &Url, cap: usize, what: &str) -> Result<Bytes, JwksError> {
        let too_large = || JwksError::BadKeySet(format!("{what} is larger than {cap} bytes"));
        let request = async {
            let mut response = self
                .client
                .get(url.clone())
                .header(
                    reqwest::header::ACCEPT,
                    "application/jwk-set+json, application/json",
                )
                .send()
                .await
                .map_err(|e| JwksError::Fetch(detail(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                return Err(JwksError::Fetch(format!(
                    "redirect not followed (HTTP {})",
                    status.as_u16()
                )));
            }
            if !status.is_success() {
                return Err(JwksError::Fetch(format!("HTTP {}", status.as_u16())));
            }
            let declared = response.content_length();
            if declared.is_some_and(|len| len > cap as u64) {
                return Err(too_large());
            }
            // `declared <= cap` here, so the conversion cannot fail on any platform we run on.
            let initial = declared
                .and_then(|len| usize::try_from(len).ok())
                .unwrap_or(0);
            let mut body = BytesMut::with_capacity(initial.min(cap));
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| JwksError::Fetch(detail(&e)))?
            {
                if chunk.len() > cap - body.len() {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        // reqwest's own timeout covers the body too; this one also bounds anything it does not.
        tokio::time::timeout(self.timeout, request)
            .await
            .unwrap_or_else(|_| Err(JwksError::Fetch("timed out".into())))
    }
}

/// Where keys come from, with the URL rule applied (no I/O, no client).
pub(super) fn origin(config: &JwksConfig) -> Result<Origin, JwksError> {
    Ok(match &config.source {
        JwksSource::Uri(uri) => Origin::Uri(check_url(uri, config.allow_insecure_http)?),
        JwksSource::Discovery => {
            check_url(&config.issuer, config.allow_insecure_http)?;
            let base = config.issuer.strip_suffix('/').unwrap_or(&config.issuer);
            let metadata = format!("{base}/.well-known/openid-configuration");
            Origin::Discovery(check_url(&metadata, config.allow_insecure_http)?)
        }
        JwksSource::File(path) => Origin::File(path.clone()),
    })
}

/// The URL rule: `https` always; `http` only to a loopback host (`127.0.0.0/8`, `::1`,
/// `localhost`) unless `allow_insecure_http`; no other scheme, no credentials in the URL.
pub(crate) fn check_url(raw: &str, allow_insecure_http: bool) -> Result<Url, JwksError> {
    let url = Url::parse(raw).map_err(|e| JwksError::BadUrl(format!("{}: {e}", shorten(raw))))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(JwksError::BadUrl(
            "URLs carrying credentials are refused".into(),
        ));
    }
    let Some(host) = url.host_str() else {
        return Err(JwksError::BadUrl(format!("{}: no host", shorten(raw))));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure_http || is_loopback(host) => Ok(url),
        "http" => Err(JwksError::InsecureUrl(shorten(url.as_str()))),
        other => Err(JwksError::BadUrl(format!("unsupported scheme {other:?}"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Reads at most `cap` bytes of a key file, off the async threads.
async fn read_file(path: PathBuf, cap: usize) -> Result<Bytes, JwksError> {
    tokio::task::spawn_blocking(move || read_file_blocking(&path, cap))
        .await
        .unwrap_or_else(|_| Err(JwksError::Fetch("the file read was cancelled".into())))
}

fn read_file_blocking(path: &Path, cap: usize) -> Result<Bytes, JwksError> {
    let too_large = || JwksError::BadKeySet(format!("JWKS file is larger than {cap} bytes"));
    let io_error =
        |e: std::io::Error| JwksError::Fetch(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    if len > cap as u64 {
        return Err(too_large());
    }
    // The file may grow between the size check and the read: read one byte past the cap.
    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(cap));
    file.take(cap as u64 + 1)
        .read_to_end(&mut body)
        .map_err(io_error)?;
    if body.len() > cap {
        return Err(too_large());
    }
    Ok(Bytes::from(body))
}

/// A short, secret-free description of a transport error.
fn detail(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    // The innermost cause says the most (refused, certificate, reset); the URL is logged apart.
    let mut root: &dyn std::error::Error = e;
    while let Some(source) = root.source() {
        root = source;
    }
    let root = root.to_string();
    if root == e.to_string() || e.is_timeout() {
        kind.to_string()
    } else {
        format!("{kind}: {}", shorten(&root))
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_DETAIL_CHARS {
        s.to_string()
    } else {
        let mut short: String = s.chars().take(MAX_DETAIL_CHARS).collect();
        short.push('…');
        short
    }
}
