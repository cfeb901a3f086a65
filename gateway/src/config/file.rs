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
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub revocation: Revocation,
    pub redis: Option<Redis>,
    pub signer: Option<Signer>,
    pub sts: Option<Sts>,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub dpop: Dpop,
    #[serde(default, rename = "exchanger")]
    pub exchangers: Vec<Exchanger>,
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
    pub work_stealing: Option<bool>,
    #[serde(default = "default_grace")]
    pub grace_period: String,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
    #[serde(default = "default_max_token_size")]
    pub max_token_size: String,
    #[serde(default = "default_max_header_size")]
    pub max_header_size: String,
    #[serde(default = "default_max_header_count")]
    pub max_header_count: usize,
    #[serde(default = "default_max_claims")]
    pub max_claims: usize,
    #[serde(default = "default_max_claims_depth")]
    pub max_claims_depth: usize,
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    /// `scheme://host[:port]` clients use to reach the gateway: the origin of DPoP `htu`.
    pub public_origin: Option<String>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            admin_listen: None,
            threads: None,
            work_stealing: None,
            grace_period: default_grace(),
            shutdown_timeout: default_shutdown_timeout(),
            max_token_size: default_max_token_size(),
            max_header_size: default_max_header_size(),
            max_header_count: default_max_header_count(),
            max_claims: default_max_claims(),
            max_claims_depth: default_max_claims_depth(),
            upgrade_sock: default_upgrade_sock(),
            pid_file: default_pid_file(),
            public_origin: None,
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
    "5s".into()
}
fn default_max_header_size() -> String {
    "32KiB".into()
}
fn default_max_header_count() -> usize {
    100
}
fn default_max_claims() -> usize {
    filters::validate::MAX_CLAIMS
}
fn default_max_claims_depth() -> usize {
    filters::validate::MAX_CLAIMS_DEPTH
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

/// `[tls]`: a second proxy listener speaking TLS, optionally asking for client certificates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub listen: String,
    /// PEM certificate chain (relative to the config file).
    pub cert: String,
    /// PEM private key (relative to the config file).
    pub key: String,
    /// PEM CA bundle client certificates must chain to.
    pub client_ca: Option<String>,
    #[serde(default = "default_client_cert")]
    pub client_cert: ClientCertMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertMode {
    /// No client certificate is asked for.
    None,
    /// Asked for; a connection without one is accepted, one with an invalid one is not.
    Optional,
    /// Every connection must present a valid client certificate.
    Required,
}

fn default_client_cert() -> ClientCertMode {
    ClientCertMode::None
}

/// `[dpop]`: how DPoP proofs (RFC 9449) are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpop {
    #[serde(default = "default_dpop_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_dpop_max_age")]
    pub max_age: String,
    #[serde(default = "default_dpop_leeway")]
    pub leeway: String,
    #[serde(default = "default_dpop_max_proof_size")]
    pub max_proof_size: String,
    /// `${ENV_NAME}`: key of the server nonces, shared by replicas.
    pub nonce_secret: Option<String>,
    #[serde(default = "default_dpop_nonce_lifetime")]
    pub nonce_lifetime: String,
}

impl Default for Dpop {
    fn default() -> Self {
        Dpop {
            algorithms: default_dpop_algorithms(),
            max_age: default_dpop_max_age(),
            leeway: default_dpop_leeway(),
            max_proof_size: default_dpop_max_proof_size(),
            nonce_secret: None,
            nonce_lifetime: default_dpop_nonce_lifetime(),
        }
    }
}

fn default_dpop_algorithms() -> Vec<String> {
    ["ES256", "ES384", "EdDSA", "PS256", "RS256"]
        .map(String::from)
        .to_vec()
}
fn default_dpop_max_age() -> String {
    "60s".into()
}
fn default_dpop_leeway() -> String {
    "5s".into()
}
fn default_dpop_max_proof_size() -> String {
    "4KiB".into()
}
fn default_dpop_nonce_lifetime() -> String {
    "5m".into()
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
    #[serde(default = "default_max_tokens")]
    pub max_exchanged_tokens: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            max_tokens: default_max_tokens(),
            max_ttl: default_cache_ttl(),
            max_exchanged_tokens: default_max_tokens(),
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

/// tokengate's own token signer, for `forward_token = "exchange"` with the local exchanger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    /// `iss` of the tokens it mints.
    pub issuer: String,
    /// Every key whose public half is published; tokens are signed with `active`.
    pub keys: Vec<SignerKey>,
    pub active: String,
    /// `act.sub` of minted tokens (default: `issuer`).
    pub actor: Option<String>,
    /// Also serve the JWKS on the proxy listener at this path (it is always on the admin
    /// listener at `/.well-known/jwks.json`).
    pub public_jwks_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerKey {
    pub kid: String,
    /// PKCS#8 PEM file (relative to the config file), as written by `tokengate keygen`.
    pub file: String,
    #[serde(default = "default_signer_alg")]
    pub alg: String,
}

fn default_signer_alg() -> String {
    "ES256".into()
}

/// tokengate as an RFC 8693 STS: `POST {path}` on the proxy listener, minting with the
/// `[signer]` for registered clients.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sts {
    #[serde(default = "default_sts_path")]
    pub path: String,
    /// Lifetime of issued tokens (never beyond the subject token's `exp`).
    #[serde(default = "default_sts_ttl")]
    pub ttl: String,
    #[serde(default, rename = "client")]
    pub clients: Vec<StsClient>,
}

fn default_sts_path() -> String {
    "/oauth2/token".into()
}
fn default_sts_ttl() -> String {
    "5m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StsClient {
    pub id: String,
    /// `${ENV_NAME}`.
    pub secret: String,
    /// Audiences this client may ask tokens for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Scopes this client may ask for (further narrowed to the subject token's).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A remote RFC 8693 security token service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchanger {
    pub id: String,
    pub kind: ExchangerKind,
    pub token_endpoint: String,
    pub client_id: String,
    /// `${ENV_NAME}`.
    pub client_secret: String,
    #[serde(default = "default_client_auth")]
    pub auth: ClientAuthFile,
    #[serde(default = "default_sts_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Calls in flight at once; more wait (within `timeout`) for a slot.
    #[serde(default = "default_sts_max_concurrent")]
    pub max_concurrent: usize,
}

fn default_sts_max_concurrent() -> usize {
    filters::exchange::DEFAULT_MAX_CONCURRENT_EXCHANGES
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangerKind {
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthFile {
    ClientSecretBasic,
    ClientSecretPost,
}

fn default_client_auth() -> ClientAuthFile {
    ClientAuthFile::ClientSecretBasic
}
fn default_sts_timeout() -> String {
    "2s".into()
}

/// `[route.exchange]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteExchange {
    /// `"local"` (the `[signer]`) or an `[[exchanger]]` id.
    #[serde(default = "default_exchanger")]
    pub exchanger: String,
    pub audience: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "default_exchange_ttl")]
    pub ttl: String,
    #[serde(default)]
    pub claims: Vec<String>,
}

fn default_exchanger() -> String {
    "local".into()
}
fn default_exchange_ttl() -> String {
    "60s".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Bearer secret for the admin API's write endpoints, as `${ENV_NAME}`.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    #[serde(default = "default_token_prefix")]
    pub token_prefix: String,
    #[serde(default = "default_family_prefix")]
    pub family_prefix: String,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Prefix of the one-time DPoP proof ids (replay cache).
    #[serde(default = "default_once_prefix")]
    pub once_prefix: String,
    /// Bound of the embedded memory store (used when there is no `[redis]`).
    #[serde(default = "default_max_revocations")]
    pub max_entries: u64,
    /// TTL of family and subject revocations when none is given: at least the longest
    /// lifetime of the issuers' access tokens.
    #[serde(default = "default_revocation_ttl")]
    pub default_ttl: String,
}

impl Default for Revocation {
    fn default() -> Self {
        Revocation {
            token_prefix: default_token_prefix(),
            family_prefix: default_family_prefix(),
            subject_prefix: default_subject_prefix(),
            once_prefix: default_once_prefix(),
            max_entries: default_max_revocations(),
            default_ttl: default_revocation_ttl(),
        }
    }
}

fn default_token_prefix() -> String {
    "revoked:".into()
}
fn default_family_prefix() -> String {
    "family:".into()
}
fn default_subject_prefix() -> String {
    "revoked_before:".into()
}
fn default_once_prefix() -> String {
    "dpop_jti:".into()
}
fn default_max_revocations() -> u64 {
    1_000_000
}
fn default_revocation_ttl() -> String {
    "24h".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://[user:password@]host:port[/db]`; several with `cluster = true`.
    pub urls: Vec<String>,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default = "default_redis_timeout")]
    pub timeout: String,
    #[serde(default = "default_redis_connect_timeout")]
    pub connect_timeout: String,
}

fn default_redis_timeout() -> String {
    "50ms".into()
}
fn default_redis_connect_timeout() -> String {
    "2s".into()
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
    #[serde(default = "default_family_claim")]
    pub family_claim: String,
    #[serde(default = "yes")]
    pub require_jti: bool,
}

fn default_family_claim() -> String {
    "fid".into()
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
    /// `Authorization` carries a token minted for the backend (`[route.exchange]`).
    Exchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// Forward to the upstream.
    Proxy,
    /// `POST` with the caller's own token revokes it (204); nothing is forwarded.
    Logout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// 503 `temporarily_unavailable`, no upstream call.
    Deny,
    /// Forward anyway; logged and counted.
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    #[serde(default = "default_kind")]
    pub kind: RouteKind,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path_prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
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
    #[serde(default = "yes")]
    pub revocation: bool,
    #[serde(default = "default_on_store_error")]
    pub on_store_error: OnStoreError,
    #[serde(default)]
    pub logout_family: bool,
    pub exchange: Option<RouteExchange>,
    /// Overrides `server.public_origin` for this route's DPoP `htu`.
    pub public_origin: Option<String>,
    #[serde(default)]
    pub require_dpop: bool,
    #[serde(default)]
    pub use_dpop_nonce: bool,
    /// RFC 9470 step-up: accepted `acr` values.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// RFC 9470 step-up: longest time since `auth_time`.
    pub max_age: Option<String>,
}

fn default_kind() -> RouteKind {
    RouteKind::Proxy
}
fn default_on_store_error() -> OnStoreError {
    OnStoreError::Deny
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
