//! The configuration file as written: serde structs that mirror the TOML one to one.
//! Nothing here is validated beyond types; see `build` for the checked runtime model.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub cache: Cache,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default, rename = "issuer")]
    pub issuers: Vec<Issuer>,
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub admin_listen: Option<String>,
    pub threads: Option<usize>,
    #[serde(default = "default_grace")]
    pub grace_period: String,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
    #[serde(default = "default_max_token_size")]
    pub max_token_size: String,
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            admin_listen: None,
            threads: None,
            grace_period: default_grace(),
            shutdown_timeout: default_shutdown_timeout(),
            max_token_size: default_max_token_size(),
            upgrade_sock: default_upgrade_sock(),
            pid_file: default_pid_file(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_grace() -> String {
    "5s".into()
}
fn default_shutdown_timeout() -> String {
    "20s".into()
}
fn default_max_token_size() -> String {
    "8KiB".into()
}
fn default_upgrade_sock() -> String {
    "/tmp/tokengate_upgrade.sock".into()
}
fn default_pid_file() -> String {
    "/tmp/tokengate.pid".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default = "yes")]
    pub access_log: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: default_level(),
            format: default_format(),
            access_log: true,
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn default_format() -> String {
    "json".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    #[serde(default = "default_cache_ttl")]
    pub max_ttl: String,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            max_tokens: default_max_tokens(),
            max_ttl: default_cache_ttl(),
        }
    }
}

fn default_max_tokens() -> u64 {
    100_000
}
fn default_cache_ttl() -> String {
    "5m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    #[serde(default = "default_strip_prefix")]
    pub strip_prefix: String,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            strip_prefix: default_strip_prefix(),
        }
    }
}

fn default_strip_prefix() -> String {
    "x-auth-".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    pub id: String,
    pub issuer: String,
    #[serde(default)]
    pub discovery: bool,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway: String,
    #[serde(default = "default_refresh")]
    pub refresh: String,
    #[serde(default = "default_cooldown")]
    pub refetch_cooldown: String,
    #[serde(default = "default_max_stale")]
    pub max_stale: String,
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: String,
    #[serde(default = "default_max_jwks_size")]
    pub max_jwks_size: String,
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "default_token_types")]
    pub token_types: Vec<String>,
    #[serde(default = "yes")]
    pub allow_missing_typ: bool,
}

fn default_algorithms() -> Vec<String> {
    ["ES256", "RS256", "PS256", "EdDSA"]
        .map(String::from)
        .to_vec()
}
fn default_leeway() -> String {
    "30s".into()
}
fn default_refresh() -> String {
    "5m".into()
}
fn default_cooldown() -> String {
    "30s".into()
}
fn default_max_stale() -> String {
    "1h".into()
}
fn default_fetch_timeout() -> String {
    "5s".into()
}
fn default_max_jwks_size() -> String {
    "256KiB".into()
}
fn default_max_keys() -> usize {
    64
}
fn default_token_types() -> Vec<String> {
    ["at+jwt", "JWT"].map(String::from).to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A valid token is required.
    Required,
    /// A token is validated when present; requests without one pass anonymously.
    Optional,
    /// No token processing; identity headers are still stripped.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardToken {
    /// `Authorization` is removed before forwarding.
    Strip,
    /// `Authorization` is forwarded as sent.
    Passthrough,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path_prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
    pub upstream: Vec<String>,
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    #[serde(default)]
    pub issuers: Vec<String>,
    #[serde(default)]
    pub require_scopes: Vec<String>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, toml::Value>,
    #[serde(default = "default_forward")]
    pub forward_token: ForwardToken,
    #[serde(default)]
    pub inject: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: String,
}

fn default_auth() -> AuthMode {
    AuthMode::Required
}
fn default_forward() -> ForwardToken {
    ForwardToken::Strip
}
fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_read_timeout() -> String {
    "30s".into()
}
