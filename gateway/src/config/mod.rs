//! Configuration: the TOML file (`file`), its validation into the checked model
//! (`Settings`, this module), and the error type that names file, line, key and reason.

mod binding;
mod exchange;
mod file;
mod issuer;
mod locate;
mod parse;
mod route;
mod sections;

use std::collections::HashSet;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use filters::jwk::JwksLimits;
use filters::jwks::{JwksConfig, JwksSource};
use filters::route::RouteMatch;
use filters::validate::{IssuerPolicy, RoutePolicy, TokenCacheConfig};
use filters::Algorithm;

pub use binding::{DpopSettings, TlsSettings};
pub use file::{AuthMode, ClientCertMode, ForwardToken, OnStoreError, RouteKind};
use filters::exchange::{ClientAuth, RemoteStsConfig};
use filters::revocation::KeyScheme;
use filters::stepup::StepUp;
use locate::Locator;
use parse::{parse_duration, parse_size};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key path, e.g. `route[1].issuers[0]`.
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// All problems found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The checked configuration: every reference resolved, every value parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub cache: TokenCacheConfig,
    /// Canonical (lower-case, `-`) prefix of headers stripped from every request.
    pub strip_prefix: String,
    pub issuers: Vec<IssuerSettings>,
    pub routes: Vec<RouteSettings>,
    /// Bearer secret of the admin API's write endpoints; `None`: those endpoints are off.
    pub admin_token: Option<Secret>,
    pub revocation: RevocationSettings,
    pub signer: Option<SignerSettings>,
    /// Remote STSs by id.
    pub exchangers: Vec<(String, RemoteStsConfig)>,
    /// Bound of the exchanged-token cache.
    pub max_exchanged_tokens: u64,
    pub sts: Option<StsSettings>,
    pub dpop: DpopSettings,
    pub tls: Option<TlsSettings>,
}

/// `[sts]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsSettings {
    pub path: String,
    pub ttl: Duration,
    pub clients: Vec<StsClientSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsClientSettings {
    pub id: String,
    pub secret: Secret,
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
}

/// `[signer]`, with its keys' files checked to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerSettings {
    pub issuer: String,
    /// (kid, algorithm, PEM file).
    pub keys: Vec<(String, Algorithm, PathBuf)>,
    pub active: String,
    pub actor: Option<String>,
    pub public_jwks_path: Option<String>,
}

/// `[route.exchange]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteExchangeSettings {
    /// `"local"` or an `[[exchanger]]` id.
    pub exchanger: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub ttl: Duration,
    pub claims: Vec<String>,
}

/// A secret taken from the environment. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret for unit tests.
#[cfg(test)]
pub fn test_secret(v: &str) -> Secret {
    Secret(v.to_string())
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    pub keys: KeyScheme,
    /// Bound of the embedded memory store.
    pub max_entries: u64,
    /// TTL of family and subject revocations when none is given.
    pub default_ttl: Duration,
    /// `None`: the embedded memory store.
    pub redis: Option<RedisSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub urls: Vec<String>,
    pub cluster: bool,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub threads: usize,
    /// Tokio's work-stealing scheduler over `threads` (true), or one single-threaded
    /// scheduler per thread, each connection staying on the thread that accepted it (false).
    pub work_stealing: bool,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub max_token_bytes: usize,
    /// Request line + headers, bytes; larger requests get 431.
    pub max_header_bytes: usize,
    /// Header fields; more get 431.
    pub max_header_count: usize,
    /// Top-level claims of a token, and their nesting depth.
    pub max_claims: usize,
    pub max_claims_depth: usize,
    pub upgrade_sock: String,
    pub pid_file: String,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub json: bool,
    pub access_log: bool,
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub policy: IssuerPolicy,
    pub jwks: JwksConfig,
    /// Claim holding the refresh-token family id (default `fid`).
    pub family_claim: String,
    /// Refuse tokens without `jti` on routes that check revocation (default true).
    pub require_jti: bool,
}

#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub id: Arc<str>,
    pub kind: RouteKind,
    /// Check revocation (token, family, subject) on this route (default true).
    pub revocation: bool,
    pub on_store_error: OnStoreError,
    /// Logout routes: also revoke the token's family.
    pub logout_family: bool,
    pub exchange: Option<RouteExchangeSettings>,
    pub matcher: RouteMatch,
    pub upstreams: Vec<SocketAddr>,
    pub auth: AuthMode,
    pub policy: RoutePolicy,
    pub forward_token: ForwardToken,
    /// Header name (lower-case) ← claim name.
    pub inject: Vec<(String, String)>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Origin of DPoP `htu` (the route's `public_origin`, else the server's); `None`: DPoP
    /// requests are refused on this route.
    pub public_origin: Option<String>,
    pub require_dpop: bool,
    pub use_dpop_nonce: bool,
    pub step_up: Option<StepUp>,
}

/// Header names the gateway always injects (and so always strips from requests).
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-scopes",
    "x-auth-client",
];

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            reason: format!("cannot read the file: {e}"),
        }])
    })?;
    from_str(path, &src)
}

/// Checks a configuration given as text; `path` names it in errors and anchors relative
/// paths (`jwks_file`).
pub fn from_str(path: &Path, src: &str) -> Result<Settings, ConfigErrors> {
    let locator = Locator::new(src);
    let file: file::File = toml::from_str(src).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: offset.map(|o| locator.line_at(o)),
            key: offset.and_then(|o| locator.path_at(o)).map(str::to_owned),
            reason: e.message().trim().to_string(),
        }])
    })?;
    let mut cx = Checker {
        path,
        locator: &locator,
        errors: Vec::new(),
    };
    let settings = cx.check(file);
    if cx.errors.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigErrors(cx.errors))
    }
}

struct Checker<'a> {
    path: &'a Path,
    locator: &'a Locator<'a>,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn err(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        let key = key.into();
        self.errors.push(ConfigError {
            file: self.path.to_path_buf(),
            line: self.locator.line_of(&key),
            key: Some(key),
            reason: reason.into(),
        });
    }

    /// Parses a duration; `None` (with the error recorded) when it does not parse, so
    /// that checks depending on it are skipped rather than reported twice.
    fn duration(&mut self, key: String, v: &str) -> Option<Duration> {
        parse_duration(v).map_err(|e| self.err(key, e)).ok()
    }

    fn size(&mut self, key: String, v: &str) -> usize {
        parse_size(v).unwrap_or_else(|e| {
            self.err(key, e);
            0
        })
    }

    fn addr(&mut self, key: String, v: &str) -> Option<SocketAddr> {
        match v.to_socket_addrs() {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => Some(a),
                None => {
                    self.err(key, format!("{v:?} resolves to no address"));
                    None
                }
            },
            Err(e) => {
                self.err(key, format!("{v:?} is not a host:port address ({e})"));
                None
            }
        }
    }

    fn check(&mut self, f: file::File) -> Settings {
        let server = self.server(&f.server);
        let log = self.log(&f.log);
        let cache = TokenCacheConfig {
            max_entries: f.cache.max_tokens,
            max_ttl: self
                .duration("cache.max_ttl".into(), &f.cache.max_ttl)
                .unwrap_or_default(),
        };
        let strip_prefix = filters::headers::canonical_name(&f.headers.strip_prefix);
        if strip_prefix.is_empty()
            || !strip_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            self.err(
                "headers.strip_prefix",
                "must be a non-empty header-name prefix such as \"x-auth-\"",
            );
        }
        let issuers = f
            .issuers
            .iter()
            .enumerate()
            .filter_map(|(i, x)| self.issuer(i, x))
            .collect::<Vec<_>>();
        self.unique(f.issuers.iter().map(|i| i.id.as_str()), "issuer", "id");
        self.unique(
            f.issuers.iter().map(|i| i.issuer.as_str()),
            "issuer",
            "issuer",
        );
        let known: HashSet<&str> = f.issuers.iter().map(|i| i.id.as_str()).collect();
        let server_origin = f
            .server
            .public_origin
            .as_deref()
            .and_then(|o| self.origin("server.public_origin".into(), o));
        let routes = f
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, &known, server_origin.as_deref()))
            .collect::<Vec<_>>();
        self.unique(f.routes.iter().map(|r| r.id.as_str()), "route", "id");
        if f.routes.is_empty() {
            self.err("route", "at least one [[route]] is required");
        }
        let admin_token = f
            .admin
            .token
            .as_deref()
            .and_then(|t| self.secret("admin.token".into(), t));
        let signer = f.signer.as_ref().and_then(|s| self.signer(s));
        let sts = f.sts.as_ref().and_then(|s| self.sts(s, f.signer.is_some()));
        let exchangers = f
            .exchangers
            .iter()
            .enumerate()
            .filter_map(|(i, x)| self.exchanger(i, x))
            .collect::<Vec<_>>();
        self.unique(
            f.exchangers.iter().map(|x| x.id.as_str()),
            "exchanger",
            "id",
        );
        for (i, r) in f.routes.iter().enumerate() {
            if let Some(x) = &r.exchange {
                let known = if x.exchanger == "local" {
                    f.signer.is_some()
                } else {
                    f.exchangers.iter().any(|e| e.id == x.exchanger)
                };
                if !known {
                    let why = if x.exchanger == "local" {
                        "the local exchanger needs a [signer]".to_string()
                    } else {
                        format!("no [[exchanger]] has id {:?}", x.exchanger)
                    };
                    self.err(format!("route[{i}].exchange.exchanger"), why);
                }
            }
        }
        let revocation = self.revocation(&f.revocation, f.redis.as_ref());
        let dpop = self.dpop(&f.dpop);
        let tls = f.tls.as_ref().and_then(|t| self.tls(t));
        if revocation.redis.is_some() && f.dpop.nonce_secret.is_none() {
            for (i, r) in f.routes.iter().enumerate() {
                if r.use_dpop_nonce {
                    self.err(
                        format!("route[{i}].use_dpop_nonce"),
                        "with [redis] (several replicas), server nonces need dpop.nonce_secret, or a nonce from one replica is refused by the others",
                    );
                }
            }
        }
        Settings {
            path: self.path.to_path_buf(),
            server,
            log,
            cache,
            strip_prefix,
            issuers,
            routes,
            admin_token,
            revocation,
            signer,
            exchangers,
            max_exchanged_tokens: f.cache.max_exchanged_tokens,
            sts,
            dpop,
            tls,
        }
    }

    /// A secret must be written as `${ENV_NAME}` and the variable must hold at least 16
    /// bytes; the file itself never carries secrets.
    fn secret(&mut self, key: String, v: &str) -> Option<Secret> {
        let name = v.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
        let Some(name) = name.filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }) else {
            self.err(
                key,
                "secrets are not written in the file: use \"${ENV_NAME}\"",
            );
            return None;
        };
        match std::env::var(name) {
            Ok(value) if value.len() >= 16 => Some(Secret(value)),
            Ok(_) => {
                self.err(
                    key,
                    format!("environment variable {name} must hold at least 16 bytes"),
                );
                None
            }
            Err(_) => {
                self.err(key, format!("environment variable {name} is not set"));
                None
            }
        }
    }

    fn unique<'s>(&mut self, values: impl Iterator<Item = &'s str>, table: &str, key: &str) {
        let mut seen = HashSet::new();
        for (i, v) in values.enumerate() {
            if !seen.insert(v) {
                self.err(
                    format!("{table}[{i}].{key}"),
                    format!("duplicate {key} {v:?}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
