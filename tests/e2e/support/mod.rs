//! The end-to-end harness: a JWKS server and an upstream (axum, in the test's runtime), the
//! real `tokengate` binary in a temp dir, tokens signed by `filters::sign`, and HTTP
//! clients (reqwest, and a raw one for requests reqwest would normalise).
//!
//! Everything listens on 127.0.0.1 ephemeral ports. Waiting is always a bounded poll
//! ([`wait_until`]), never a fixed sleep.

pub mod gateway;
pub mod http;
pub mod jwks;
pub mod keys;
pub mod redis;
pub mod upstream;

use std::future::Future;
use std::time::{Duration, Instant};

pub use self::gateway::{Gateway, Options};
pub use self::http::Reply;
pub use self::jwks::JwksServer;
pub use self::keys::{claims, key, sign, token, with, AUD, ISS};
pub use self::upstream::Upstream;

/// Longest wait for anything to happen (start-up, readiness, a log line, a refetch).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Interval between two polls of a condition.
const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Some`, at most [`DEADLINE`]; panics naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `[[issuer]]` block for the test issuer ([`ISS`], audience [`AUD`]) with keys at `jwks_uri`.
pub fn issuer_toml(id: &str, jwks_uri: &str, extra: &str) -> String {
    format!(
        "\n[[issuer]]\nid = \"{id}\"\nissuer = \"{ISS}\"\njwks_uri = \"{jwks_uri}\"\naudiences = [\"{AUD}\"]\n{extra}\n"
    )
}

/// `[[route]]` block: `id`, `path_prefix`, one upstream, and any `extra` keys.
pub fn route_toml(id: &str, prefix: &str, upstream: &Upstream, extra: &str) -> String {
    format!(
        "\n[[route]]\nid = \"{id}\"\npath_prefix = \"{prefix}\"\nupstream = [\"{}\"]\n{extra}\n",
        upstream.addr()
    )
}

/// `[[route]]` `api` for every path to the fixture's upstream (`{up}`, see [`Env`]), with
/// any `extra` keys.
pub fn root_route(extra: &str) -> String {
    format!("\n[[route]]\nid = \"api\"\npath_prefix = \"/\"\nupstream = [\"{{up}}\"]\n{extra}\n")
}

/// The common fixture: a JWKS server serving `keys`, an upstream, and a ready gateway with
/// issuer `main` and the given routes (`routes` may use `{up}` for the upstream address).
pub struct Env {
    pub jwks: JwksServer,
    pub upstream: Upstream,
    pub gw: Gateway,
}

impl Env {
    /// Starts everything with default options and waits until the gateway is ready.
    pub async fn start(
        keys: &[&filters::sign::SigningKey],
        issuer_extra: &str,
        routes: &str,
    ) -> Env {
        Self::start_with(keys, issuer_extra, routes, Options::default()).await
    }

    /// As [`Env::start`], with gateway options.
    pub async fn start_with(
        keys: &[&filters::sign::SigningKey],
        issuer_extra: &str,
        routes: &str,
        options: Options,
    ) -> Env {
        let jwks = JwksServer::start(keys).await;
        let upstream = Upstream::start().await;
        let routes = routes.replace("{up}", &upstream.addr().to_string());
        let config = format!("{}{routes}", issuer_toml("main", &jwks.uri(), issuer_extra));
        let gw = Gateway::start(&config, options).await;
        gw.wait_ready().await;
        Env { jwks, upstream, gw }
    }
}

/// Asserts a refusal written by the gateway: status, JSON body `{"error","error_description"}`
/// (with `error` equal to `error` when given) and an `x-request-id`.
pub fn assert_refused(r: &Reply, status: u16, error: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: status; body {}", r.body);
    let body = r.json();
    assert!(
        body["error"].is_string(),
        "{what}: body has no error: {}",
        r.body
    );
    assert!(
        body["error_description"].is_string(),
        "{what}: body has no error_description: {}",
        r.body
    );
    if let Some(code) = error {
        assert_eq!(body["error"], code, "{what}: body {}", r.body);
    }
    assert!(
        r.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "{what}: no x-request-id"
    );
}

/// Asserts an authentication refusal (RFC 6750): [`assert_refused`], and a
/// `WWW-Authenticate: Bearer realm="tokengate"` challenge naming `error` — exactly the bare
/// challenge when `error` is `None` (no credentials sent).
pub fn assert_denied(r: &Reply, status: u16, error: Option<&str>, what: &str) {
    assert_refused(r, status, error, what);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    match error {
        Some(code) => {
            assert!(
                challenge.starts_with("Bearer realm=\"tokengate\""),
                "{what}: challenge {challenge}"
            );
            assert!(
                challenge.contains(&format!("error=\"{code}\"")),
                "{what}: challenge {challenge}"
            );
        }
        None => assert_eq!(challenge, "Bearer realm=\"tokengate\"", "{what}: challenge"),
    }
}
