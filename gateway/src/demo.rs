//! `tokengate demo`: an echo upstream, a dev issuer (fresh ES256 key, JWKS on loopback) and
//! the gateway, in one process, plus ready-to-paste curl commands. Nothing else needed.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use filters::sign::{jwks_document, SigningKey};
use filters::validate::unix_now;
use filters::Algorithm;
use serde_json::{json, Value};

const AUDIENCE: &str = "demo-api";

fn free_port() -> Result<u16, String> {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// The echo upstream: answers every request with what it received, so the injected
/// identity headers can be seen.
async fn echo(req: Request) -> Json<Value> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    Json(
        json!({ "upstream": "echo", "method": req.method().as_str(), "path": req.uri().path(), "headers": headers }),
    )
}

/// Starts the JWKS server and the echo upstream on a thread of their own; returns their
/// addresses once both listen.
fn start_side_servers(jwks: Value) -> Result<(SocketAddr, SocketAddr), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-servers".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
                let (jl, el) = match (bind().await, bind().await) {
                    (Ok(j), Ok(e)) => (j, e),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = tx.send(Err(format!("bind: {e}")));
                        return;
                    }
                };
                let addrs = (jl.local_addr(), el.local_addr());
                let jwks = Arc::new(jwks);
                let jwks_app = Router::new().route(
                    "/jwks.json",
                    get(move || async move { Json((*jwks).clone()) }),
                );
                let echo_app = Router::new().fallback(echo);
                match addrs {
                    (Ok(j), Ok(e)) => {
                        let _ = tx.send(Ok((j, e)));
                    }
                    _ => {
                        let _ = tx.send(Err("no local address".into()));
                        return;
                    }
                }
                let _ = tokio::join!(axum::serve(jl, jwks_app), axum::serve(el, echo_app));
            });
        })
        .map_err(|e| format!("thread: {e}"))?;
    rx.recv().map_err(|e| format!("side servers: {e}"))?
}

fn mint(key: &SigningKey, claims: Value) -> Result<String, String> {
    key.sign_jwt(Some("at+jwt"), &claims)
        .map_err(|e| e.to_string())
}

/// The valid token with its payload changed (`sub` → `mallory`) and the signature kept.
fn tamper(token: &str) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("minted token is not a JWS".into());
    };
    let mut claims: Value = serde_json::from_slice(&b64.decode(p).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    claims["sub"] = json!("mallory");
    Ok(format!("{h}.{}.{s}", b64.encode(claims.to_string())))
}

/// Runs the demo until interrupted.
pub fn run(port: u16) -> Result<(), String> {
    let key = SigningKey::generate(Algorithm::ES256, "demo-1").map_err(|e| e.to_string())?;
    let (jwks_addr, echo_addr) = start_side_servers(jwks_document([&key]))?;
    let port = if port == 0 { free_port()? } else { port };
    let admin_port = free_port()?;
    let issuer = format!("http://{jwks_addr}");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
threads = 1
grace_period = "0s"
shutdown_timeout = "1s"

[log]
level = "warn"
format = "text"
access_log = false

[[issuer]]
id = "demo"
issuer = "{issuer}"
jwks_uri = "http://{jwks_addr}/jwks.json"
audiences = ["{AUDIENCE}"]

[[route]]
id = "echo"
path_prefix = "/"
upstream = ["{echo_addr}"]
require_scopes = ["orders:read"]

[route.inject]
"x-auth-tenant" = "tenant"
"#
    );
    let settings =
        crate::config::from_str(Path::new("<demo>"), &config).map_err(|e| e.to_string())?;

    let now = unix_now();
    let claims = |iat: i64, exp: i64| {
        json!({ "iss": issuer, "sub": "alice", "aud": AUDIENCE, "iat": iat, "exp": exp,
                "jti": format!("demo-{iat}-{exp}"), "scope": "orders:read", "tenant": "acme", "azp": "demo-cli" })
    };
    let valid = mint(&key, claims(now, now + 3600))?;
    let expired = mint(&key, claims(now - 7200, now - 3600))?;
    let tampered = tamper(&valid)?;

    let url = format!("http://127.0.0.1:{port}/orders/42");
    println!("tokengate demo: gateway on 127.0.0.1:{port}, admin on 127.0.0.1:{admin_port}");
    println!("  dev issuer {issuer} (JWKS at /jwks.json), echo upstream at {echo_addr}\n");
    println!("# 200: a valid token; the echo upstream shows the identity headers it received");
    println!("curl -si -H 'Authorization: Bearer {valid}' {url}\n");
    println!("# 401 invalid_token: the same claims, expired an hour ago");
    println!("curl -si -H 'Authorization: Bearer {expired}' {url}\n");
    println!("# 401 invalid_token: the valid token with its payload changed (sub=mallory)");
    println!("curl -si -H 'Authorization: Bearer {tampered}' {url}\n");
    println!("# 401: no token at all");
    println!("curl -si {url}\n");
    println!("# metrics and readiness");
    println!("curl -s http://127.0.0.1:{admin_port}/metrics | grep tokengate_");
    println!("curl -s http://127.0.0.1:{admin_port}/readyz\n");
    println!("Press Ctrl-C to stop.");
    crate::serve::init_logging(&settings.log);
    crate::serve::run(settings, false)
}
