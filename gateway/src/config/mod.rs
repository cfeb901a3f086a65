//! Configuration: the TOML file (`file`), its validation into the checked model
//! (`Settings`, this module), and the error type that names file, line, key and reason.

mod file;
mod locate;
mod parse;

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

pub use file::{AuthMode, ForwardToken, OnStoreError, RouteKind};
use filters::exchange::{ClientAuth, RemoteStsConfig};
use filters::revocation::KeyScheme;
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

impl SignerSettings {
    /// Loads the keys and builds the signer.
    pub fn load(&self) -> Result<filters::exchange::LocalSigner, String> {
        let mut keys = Vec::new();
        for (kid, alg, path) in &self.keys {
            let pem =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = filters::sign::SigningKey::from_pkcs8_pem(&pem, *alg, kid.clone())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            keys.push(key);
        }
        let signer = filters::exchange::LocalSigner::new(self.issuer.clone(), keys, &self.active)
            .map_err(|e| e.to_string())?;
        Ok(match &self.actor {
            Some(a) => signer.with_actor(a.clone()),
            None => signer,
        })
    }
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
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub max_token_bytes: usize,
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
        let routes = f
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, &known))
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
        }
    }

    fn sts(&mut self, s: &file::Sts, has_signer: bool) -> Option<StsSettings> {
        let before = self.errors.len();
        if !has_signer {
            self.err("sts", "the STS mints with the [signer]: configure one");
        }
        if !s.path.starts_with('/') || filters::route::check_path(&s.path).is_err() {
            self.err("sts.path", "must be a path starting with '/'");
        }
        let ttl = self.duration("sts.ttl".into(), &s.ttl).unwrap_or_default();
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
            self.err("sts.ttl", "must be between 1s and 1h");
        }
        let mut clients = Vec::new();
        for (i, c) in s.clients.iter().enumerate() {
            if c.id.is_empty() || c.id.contains(':') {
                self.err(
                    format!("sts.client[{i}].id"),
                    "must be non-empty and without ':'",
                );
            }
            if let Some(secret) = self.secret(format!("sts.client[{i}].secret"), &c.secret) {
                clients.push(StsClientSettings {
                    id: c.id.clone(),
                    secret,
                    audiences: c.audiences.clone(),
                    scopes: c.scopes.clone(),
                });
            }
        }
        self.unique(s.clients.iter().map(|c| c.id.as_str()), "sts.client", "id");
        if s.clients.is_empty() {
            self.err("sts", "at least one [[sts.client]] is required");
        }
        (self.errors.len() == before).then(|| StsSettings {
            path: s.path.clone(),
            ttl,
            clients,
        })
    }

    fn signer(&mut self, s: &file::Signer) -> Option<SignerSettings> {
        let before = self.errors.len();
        if !(s.issuer.starts_with("https://") || s.issuer.starts_with("http://")) {
            self.err(
                "signer.issuer",
                "must be a URL: the iss of the tokens tokengate mints",
            );
        }
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut keys = Vec::new();
        for (i, k) in s.keys.iter().enumerate() {
            let Some(alg) = Algorithm::from_name(&k.alg) else {
                self.err(
                    format!("signer.keys[{i}].alg"),
                    format!("{:?} is not a supported algorithm", k.alg),
                );
                continue;
            };
            keys.push((k.kid.clone(), alg, base.join(&k.file)));
        }
        if s.keys.is_empty() {
            self.err(
                "signer.keys",
                "at least one key is required (tokengate keygen writes one)",
            );
        }
        if let Some(p) = &s.public_jwks_path {
            if !p.starts_with('/') || filters::route::check_path(p).is_err() {
                self.err(
                    "signer.public_jwks_path",
                    "must be a path starting with '/'",
                );
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let settings = SignerSettings {
            issuer: s.issuer.clone(),
            keys,
            active: s.active.clone(),
            actor: s.actor.clone(),
            public_jwks_path: s.public_jwks_path.clone(),
        };
        // Load once now, so that a bad key file fails `check`, not the first request.
        if let Err(e) = settings.load() {
            self.err("signer.keys", e);
            return None;
        }
        Some(settings)
    }

    fn exchanger(&mut self, i: usize, x: &file::Exchanger) -> Option<(String, RemoteStsConfig)> {
        let k = |name: &str| format!("exchanger[{i}].{name}");
        let before = self.errors.len();
        if x.id.is_empty() || x.id == "local" {
            self.err(
                k("id"),
                "must be non-empty and not \"local\" (the [signer])",
            );
        }
        let secret = self.secret(k("client_secret"), &x.client_secret);
        let timeout = self.duration(k("timeout"), &x.timeout).unwrap_or_default();
        if self.errors.len() > before {
            return None;
        }
        let file::ExchangerKind::Remote = x.kind;
        let mut cfg =
            RemoteStsConfig::new(x.token_endpoint.clone(), x.client_id.clone(), secret?.0);
        cfg.auth = match x.auth {
            file::ClientAuthFile::ClientSecretBasic => ClientAuth::Basic,
            file::ClientAuthFile::ClientSecretPost => ClientAuth::Post,
        };
        cfg.timeout = timeout;
        cfg.allow_insecure_http = x.allow_insecure_http;
        if let Err(e) = filters::exchange::RemoteSts::new(cfg.clone()) {
            self.err(k("token_endpoint"), e.to_string());
            return None;
        }
        Some((x.id.clone(), cfg))
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

    fn revocation(
        &mut self,
        r: &file::Revocation,
        redis: Option<&file::Redis>,
    ) -> RevocationSettings {
        let keys = KeyScheme {
            token_prefix: r.token_prefix.clone(),
            family_prefix: r.family_prefix.clone(),
            subject_prefix: r.subject_prefix.clone(),
        };
        for (name, p) in [
            ("token_prefix", &r.token_prefix),
            ("family_prefix", &r.family_prefix),
            ("subject_prefix", &r.subject_prefix),
        ] {
            if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                self.err(
                    format!("revocation.{name}"),
                    "must be 1 to 64 visible ASCII characters",
                );
            }
        }
        if r.max_entries == 0 {
            self.err("revocation.max_entries", "must be at least 1");
        }
        let default_ttl = self
            .duration("revocation.default_ttl".into(), &r.default_ttl)
            .unwrap_or_default();
        let redis = redis.map(|x| {
            if x.urls.is_empty() {
                self.err("redis.urls", "at least one redis:// or rediss:// URL is required");
            }
            if !x.cluster && x.urls.len() > 1 {
                self.err("redis.urls", "several URLs need cluster = true");
            }
            for (i, u) in x.urls.iter().enumerate() {
                if u.starts_with("rediss://") {
                    self.err(format!("redis.urls[{i}]"), "TLS to Redis (rediss://) is not built in yet: use redis:// on a private network or a TLS sidecar");
                } else if !u.starts_with("redis://") {
                    self.err(format!("redis.urls[{i}]"), "must start with redis://");
                }
            }
            let timeout = self.duration("redis.timeout".into(), &x.timeout).unwrap_or_default();
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                self.err("redis.timeout", "must be more than 0s and at most 5s");
            }
            RedisSettings {
                urls: x.urls.clone(),
                cluster: x.cluster,
                timeout,
                connect_timeout: self.duration("redis.connect_timeout".into(), &x.connect_timeout).unwrap_or_default(),
            }
        });
        RevocationSettings {
            keys,
            max_entries: r.max_entries,
            default_ttl,
            redis,
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

    fn server(&mut self, s: &file::Server) -> ServerSettings {
        let listen = self.addr("server.listen".into(), &s.listen);
        let admin_listen = s
            .admin_listen
            .as_deref()
            .and_then(|a| self.addr("server.admin_listen".into(), a));
        let threads = s
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 || threads > 256 {
            self.err("server.threads", "must be between 1 and 256");
        }
        let max_token_bytes = self.size("server.max_token_size".into(), &s.max_token_size);
        if !(256..=64 * 1024).contains(&max_token_bytes) {
            self.err("server.max_token_size", "must be between 256B and 64KiB");
        }
        ServerSettings {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            admin_listen,
            threads,
            grace_period: self
                .duration("server.grace_period".into(), &s.grace_period)
                .unwrap_or_default(),
            shutdown_timeout: self
                .duration("server.shutdown_timeout".into(), &s.shutdown_timeout)
                .unwrap_or_default(),
            max_token_bytes,
            upgrade_sock: s.upgrade_sock.clone(),
            pid_file: s.pid_file.clone(),
        }
    }

    fn log(&mut self, l: &file::Log) -> LogSettings {
        if tracing_subscriber::EnvFilter::try_new(&l.level).is_err() {
            self.err(
                "log.level",
                format!("{:?} is not a log level or filter (e.g. \"info\")", l.level),
            );
        }
        let json = match l.format.as_str() {
            "json" => true,
            "text" => false,
            other => {
                self.err(
                    "log.format",
                    format!("{other:?}: expected \"json\" or \"text\""),
                );
                true
            }
        };
        LogSettings {
            level: l.level.clone(),
            json,
            access_log: l.access_log,
        }
    }

    fn issuer(&mut self, i: usize, x: &file::Issuer) -> Option<IssuerSettings> {
        let k = |name: &str| format!("issuer[{i}].{name}");
        let before = self.errors.len();
        if x.id.is_empty() {
            self.err(k("id"), "must not be empty");
        }
        let sources = [x.discovery, x.jwks_uri.is_some(), x.jwks_file.is_some()];
        let source = match (x.discovery, &x.jwks_uri, &x.jwks_file) {
            _ if sources.iter().filter(|s| **s).count() != 1 => {
                self.err(
                    k("id"),
                    "exactly one of discovery = true, jwks_uri or jwks_file is required",
                );
                None
            }
            (true, _, _) => Some(JwksSource::Discovery),
            (_, Some(u), _) => Some(JwksSource::Uri(u.clone())),
            (_, _, Some(p)) => {
                let base = self.path.parent().unwrap_or(Path::new("."));
                let p = base.join(p);
                if !p.is_file() {
                    self.err(
                        k("jwks_file"),
                        format!("{} is not a readable file", p.display()),
                    );
                }
                Some(JwksSource::File(p))
            }
            _ => None,
        };
        if x.audiences.is_empty() || x.audiences.iter().any(String::is_empty) {
            self.err(
                k("audiences"),
                "at least one non-empty audience is required (aud is always checked)",
            );
        }
        let mut algorithms = Vec::new();
        for (j, a) in x.algorithms.iter().enumerate() {
            match Algorithm::from_name(a) {
                Some(alg) => algorithms.push(alg),
                None => self.err(
                    format!("issuer[{i}].algorithms[{j}]"),
                    format!(
                        "{a:?} is not allowed: only asymmetric algorithms ({}) are accepted; HMAC and none never are",
                        Algorithm::ALL.map(Algorithm::name).join(", ")
                    ),
                ),
            }
        }
        if x.algorithms.is_empty() {
            self.err(k("algorithms"), "at least one algorithm is required");
        }
        let leeway = self.duration(k("leeway"), &x.leeway).unwrap_or_default();
        if leeway > Duration::from_secs(300) {
            self.err(k("leeway"), "must be at most 5m");
        }
        let refresh = self.duration(k("refresh"), &x.refresh);
        let refetch_cooldown = self
            .duration(k("refetch_cooldown"), &x.refetch_cooldown)
            .unwrap_or_default();
        let max_stale = self.duration(k("max_stale"), &x.max_stale);
        let fetch_timeout = self.duration(k("fetch_timeout"), &x.fetch_timeout);
        if refresh.is_some_and(|r| r < Duration::from_secs(1)) {
            self.err(k("refresh"), "must be at least 1s");
        }
        if let (Some(r), Some(m)) = (refresh, max_stale) {
            if m < r {
                self.err(
                    k("max_stale"),
                    "must be at least as long as refresh, or keys would lapse between refreshes",
                );
            }
        }
        if fetch_timeout.is_some_and(|t| t.is_zero()) {
            self.err(k("fetch_timeout"), "must be more than 0s");
        }
        let (refresh, max_stale, fetch_timeout) = (
            refresh.unwrap_or_default(),
            max_stale.unwrap_or_default(),
            fetch_timeout.unwrap_or_default(),
        );
        let max_bytes = self.size(k("max_jwks_size"), &x.max_jwks_size);
        if x.max_keys == 0 || x.max_keys > 1024 {
            self.err(k("max_keys"), "must be between 1 and 1024");
        }
        if !(x.issuer.starts_with("https://") || x.issuer.starts_with("http://")) {
            self.err(
                k("issuer"),
                "must be the issuer's URL exactly as in the tokens' iss claim",
            );
        }
        if self.errors.len() > before {
            return None;
        }
        let jwks = JwksConfig {
            issuer: x.issuer.clone(),
            source: source?,
            algorithms: algorithms.clone(),
            refresh,
            refetch_cooldown,
            max_stale,
            fetch_timeout,
            limits: JwksLimits {
                max_bytes,
                max_keys: x.max_keys,
            },
            allow_insecure_http: x.allow_insecure_http,
        };
        if let Err(e) = filters::jwks::JwksCache::new(jwks.clone()) {
            let key = if x.jwks_uri.is_some() {
                k("jwks_uri")
            } else {
                k("issuer")
            };
            self.err(key, e.to_string());
            return None;
        }
        Some(IssuerSettings {
            policy: IssuerPolicy {
                id: x.id.as_str().into(),
                issuer: x.issuer.clone(),
                audiences: x.audiences.clone(),
                algorithms,
                leeway,
                accepted_types: x.token_types.clone(),
                allow_missing_typ: x.allow_missing_typ,
            },
            jwks,
            family_claim: x.family_claim.clone(),
            require_jti: x.require_jti,
        })
    }

    fn route(&mut self, i: usize, r: &file::Route, known: &HashSet<&str>) -> Option<RouteSettings> {
        let k = |name: &str| format!("route[{i}].{name}");
        let before = self.errors.len();
        if r.id.is_empty()
            || !r
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            self.err(k("id"), "must be non-empty and use only letters, digits, '-', '_' and '.' (it is a metric label)");
        }
        if !r.path_prefix.starts_with('/') || filters::route::check_path(&r.path_prefix).is_err() {
            self.err(
                k("path_prefix"),
                "must start with '/' and contain no dot segments or encoded separators",
            );
        }
        let methods: Vec<String> = r.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        for (j, m) in methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                self.err(
                    format!("route[{i}].methods[{j}]"),
                    format!("{m:?} is not an HTTP method"),
                );
            }
        }
        let hosts: Vec<String> = r.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        for (j, h) in hosts.iter().enumerate() {
            let name = h.strip_prefix("*.").unwrap_or(h);
            if name.is_empty()
                || name.contains(':')
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                self.err(
                    format!("route[{i}].hosts[{j}]"),
                    format!("{h:?} is not a host name (no port; \"*.\" wildcard allowed)"),
                );
            }
        }
        let mut upstreams = Vec::new();
        for (j, u) in r.upstream.iter().enumerate() {
            if let Some(a) = self.addr(format!("route[{i}].upstream[{j}]"), u) {
                upstreams.push(a);
            }
        }
        let mut methods = methods;
        match r.kind {
            RouteKind::Proxy if r.upstream.is_empty() => {
                self.err(k("upstream"), "at least one upstream host:port is required");
            }
            RouteKind::Proxy => {}
            RouteKind::Logout => {
                if !r.upstream.is_empty() {
                    self.err(
                        k("upstream"),
                        "a logout route answers itself and has no upstream",
                    );
                }
                if r.auth != AuthMode::Required || !r.revocation {
                    self.err(
                        k("kind"),
                        "a logout route needs auth = \"required\" and revocation = true",
                    );
                }
                if methods.iter().any(|m| m != "POST") {
                    self.err(k("methods"), "a logout route only accepts POST");
                }
                methods = vec!["POST".to_string()];
            }
        }
        let exchange = match (&r.exchange, r.forward_token) {
            (Some(x), ForwardToken::Exchange) => {
                if x.audience.is_empty() {
                    self.err(k("exchange.audience"), "the backend audience is required");
                }
                let ttl = self.duration(k("exchange.ttl"), &x.ttl).unwrap_or_default();
                if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
                    self.err(k("exchange.ttl"), "must be between 1s and 1h");
                }
                Some(RouteExchangeSettings {
                    exchanger: x.exchanger.clone(),
                    audience: x.audience.clone(),
                    scopes: x.scopes.clone(),
                    ttl,
                    claims: x.claims.clone(),
                })
            }
            (None, ForwardToken::Exchange) => {
                self.err(
                    k("forward_token"),
                    "forward_token = \"exchange\" needs a [route.exchange] table",
                );
                None
            }
            (Some(_), _) => {
                self.err(
                    k("exchange"),
                    "[route.exchange] needs forward_token = \"exchange\"",
                );
                None
            }
            (None, _) => None,
        };
        if r.forward_token == ForwardToken::Exchange && r.auth != AuthMode::Required {
            self.err(
                k("forward_token"),
                "exchange needs auth = \"required\" (there must be a subject token)",
            );
        }
        if r.logout_family && r.kind != RouteKind::Logout {
            self.err(k("logout_family"), "only applies to kind = \"logout\"");
        }
        for (j, iss) in r.issuers.iter().enumerate() {
            if !known.contains(iss.as_str()) {
                self.err(
                    format!("route[{i}].issuers[{j}]"),
                    format!("no [[issuer]] has id {iss:?}"),
                );
            }
        }
        match r.auth {
            AuthMode::None => {
                if !r.issuers.is_empty()
                    || !r.require_scopes.is_empty()
                    || !r.require_claims.is_empty()
                    || !r.inject.is_empty()
                {
                    self.err(k("auth"), "auth = \"none\" cannot have issuers, require_scopes, require_claims or inject");
                }
            }
            AuthMode::Required | AuthMode::Optional => {
                if known.is_empty() {
                    self.err(k("auth"), "a route with auth needs at least one [[issuer]]");
                }
            }
        }
        let mut require_claims = Vec::new();
        for (name, v) in &r.require_claims {
            match toml_to_json(v) {
                Some(j) => require_claims.push((name.clone(), j)),
                None => self.err(
                    format!("route[{i}].require_claims.{name}"),
                    "must be a string, number, boolean or array of them",
                ),
            }
        }
        let mut inject = Vec::new();
        for (header, claim) in &r.inject {
            let h = header.to_ascii_lowercase();
            let canon = filters::headers::canonical_name(&h);
            let valid = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "is not a valid header name (letters, digits, '-')",
                );
            } else if IDENTITY_HEADERS.contains(&canon.as_str())
                || [
                    "authorization",
                    "host",
                    "x-request-id",
                    "connection",
                    "content-length",
                    "transfer-encoding",
                ]
                .contains(&canon.as_str())
            {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "this header is set by the gateway and cannot be injected",
                );
            }
            if claim.is_empty() {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "claim name must not be empty",
                );
            }
            inject.push((h, claim.clone()));
        }
        let connect_timeout = self
            .duration(k("connect_timeout"), &r.connect_timeout)
            .unwrap_or_default();
        let read_timeout = self
            .duration(k("read_timeout"), &r.read_timeout)
            .unwrap_or_default();
        if self.errors.len() > before {
            return None;
        }
        Some(RouteSettings {
            id: r.id.as_str().into(),
            kind: r.kind,
            revocation: r.revocation,
            on_store_error: r.on_store_error,
            logout_family: r.logout_family,
            exchange,
            matcher: RouteMatch {
                hosts,
                path_prefix: r.path_prefix.clone(),
                methods,
            },
            upstreams,
            auth: r.auth,
            policy: RoutePolicy::new(
                r.issuers
                    .iter()
                    .map(|s| Arc::<str>::from(s.as_str()))
                    .collect(),
                r.require_scopes.clone(),
                require_claims,
            ),
            forward_token: r.forward_token,
            inject,
            connect_timeout,
            read_timeout,
        })
    }
}

fn toml_to_json(v: &toml::Value) -> Option<serde_json::Value> {
    Some(match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
