//! The gateway's limits at their edge, against the real binary: bearer token size (default
//! and configured), JWKS document size and key count (configured per issuer), Redis
//! timeout, and Pingora's fixed request-header limits (256 headers, about 1 MiB).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use filters::sign::jwks_document;
use filters::Algorithm;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::http::{get, get_bearer};
use crate::support::keys::{fresh, token_of_len};
use crate::support::{
    assert_denied, assert_refused, claims, key, root_route, sign, with, Env, Gateway, JwksServer,
    Options, Upstream, AUD,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_size_limit_is_exact_by_default_and_when_configured() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("")).await;
    let at = token_of_len(k, 8 * 1024);
    let r = get_bearer(&env.gw.url("/a"), &at).await;
    assert_eq!(r.status, 200, "a token of exactly 8 KiB: {}", r.body);
    let over = token_of_len(k, 8 * 1024 + 1);
    let r = get_bearer(&env.gw.url("/a"), &over).await;
    assert_denied(&r, 401, Some("invalid_token"), "a token of 8 KiB + 1");
    let id = r.header("x-request-id").expect("x-request-id");
    assert_eq!(env.gw.access_reason(id).await, "token_too_large");
    assert_eq!(env.upstream.count(), 1);

    let options = Options {
        server: "max_token_size = \"1KiB\"".into(),
        ..Options::default()
    };
    let env = Env::start_with(&[k], "", &root_route(""), options).await;
    let r = get_bearer(&env.gw.url("/a"), &token_of_len(k, 1024)).await;
    assert_eq!(r.status, 200, "a token of exactly 1 KiB: {}", r.body);
    let r = get_bearer(&env.gw.url("/a"), &token_of_len(k, 1025)).await;
    assert_denied(&r, 401, Some("invalid_token"), "a token of 1 KiB + 1");
    assert_eq!(env.upstream.count(), 1);
}

/// `[[issuer]]` `id` with `iss` `https://<id>.test`, keys at `jwks`, and `extra` lines.
fn issuer_block(id: &str, jwks: &JwksServer, extra: &str) -> String {
    format!(
        "\n[[issuer]]\nid = \"{id}\"\nissuer = \"https://{id}.test\"\njwks_uri = \"{}\"\naudiences = [\"{AUD}\"]\n{extra}\n",
        jwks.uri()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_size_and_key_count_limits_are_exact() {
    const LIMITS: &str = "max_jwks_size = \"4096B\"\nmax_keys = 2";
    let keys: Vec<_> = (0..3)
        .map(|i| fresh(Algorithm::ES256, &format!("k{i}")))
        .collect();
    // A document of exactly `len` bytes with the first `n` keys.
    let document = |n: usize, len: usize| {
        let mut doc = jwks_document(keys[..n].iter());
        doc["pad"] = json!("");
        let bare = doc.to_string().len();
        doc["pad"] = json!("p".repeat(len - bare));
        let text = doc.to_string();
        assert_eq!(text.len(), len);
        text
    };
    let exact = JwksServer::start(&[]).await;
    exact.serve_document(document(2, 4096));
    let too_big = JwksServer::start(&[]).await;
    too_big.serve_document(document(2, 4097));
    let too_many = JwksServer::start(&[]).await;
    too_many.serve_document(document(3, 4096));
    let upstream = Upstream::start().await;
    let config = format!(
        "{}{}{}{}",
        issuer_block("exact", &exact, LIMITS),
        issuer_block("big", &too_big, LIMITS),
        issuer_block("many", &too_many, LIMITS),
        root_route("").replace("{up}", &upstream.addr().to_string()),
    );
    let gw = Gateway::start(&config, Options::default()).await;
    let token = |id: &str, k: usize| {
        sign(
            &keys[k],
            &with(claims(), json!({ "iss": format!("https://{id}.test") })),
        )
    };
    // At both limits: the keys load and their tokens pass.
    let url = gw.url("/a");
    let exact_token = token("exact", 1);
    crate::support::wait_until("the issuer at its limits to have keys", || {
        let (url, t) = (url.clone(), exact_token.clone());
        async move { (get_bearer(&url, &t).await.status == 200).then_some(()) }
    })
    .await;
    // One byte or one key over: the document is refused, so that issuer has no keys.
    for id in ["big", "many"] {
        let r = get_bearer(&gw.url("/a"), &token(id, 0)).await;
        assert_refused(&r, 503, Some("temporarily_unavailable"), id);
    }
    let ready = get(&gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let not_ready = ready.json()["not_ready"].to_string();
    assert!(
        not_ready.contains("issuer big ")
            && not_ready.contains("issuer many ")
            && !not_ready.contains("issuer exact "),
        "{not_ready}"
    );
    assert_eq!(upstream.count(), 1);
    assert!(exact.requests() >= 1 && too_big.requests() >= 1 && too_many.requests() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_never_answers_fails_closed_within_the_timeout() {
    // Accepts connections and reads, but never writes a byte.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let k = key(Algorithm::ES256);
    let redis = format!(
        "\n[redis]\nurls = [\"redis://{addr}\"]\ntimeout = \"300ms\"\nconnect_timeout = \"500ms\"\n"
    );
    let jwks = JwksServer::start(&[k]).await;
    let upstream = Upstream::start().await;
    let config = format!(
        "{}{redis}{}",
        crate::support::issuer_toml("main", &jwks.uri(), ""),
        root_route("").replace("{up}", &upstream.addr().to_string()),
    );
    let gw = Gateway::start(&config, Options::default()).await;
    let url = gw.url("/a");
    let t = sign(k, &claims());
    // Keys first (the store is never ready, so /readyz cannot tell): until they load, the
    // 503 is for the keys.
    let gw_ref = &gw;
    crate::support::wait_until("keys to load", || {
        let (url, t) = (url.clone(), t.clone());
        async move {
            let r = get_bearer(&url, &t).await;
            let id = r.header("x-request-id")?.to_string();
            (gw_ref.access_reason(&id).await == "store_unavailable").then_some(())
        }
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = get_bearer(&url, &t).await;
        let took = started.elapsed();
        assert_refused(&r, 503, Some("temporarily_unavailable"), "silent Redis");
        assert!(took < Duration::from_secs(2), "a check took {took:?}");
        let id = r.header("x-request-id").expect("x-request-id");
        assert_eq!(gw.access_reason(id).await, "store_unavailable");
    }
    assert_eq!(upstream.count(), 0, "forwarded without a revocation check");
    hold.abort();
}

/// Sends a raw request head; `Some(status)` if a response came, `None` if the gateway
/// closed the connection without one.
async fn send_head(addr: SocketAddr, head: &str) -> Option<u16> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        // The gateway may answer (and close) before it read everything: ignore write errors.
        let _ = s.write_all(head.as_bytes()).await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.split(' ').nth(1).and_then(|s| s.parse().ok())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the gateway answered or closed within 10 s")
}

/// A request head with `count` header lines in total (Host and Connection included), the
/// extra ones `x-filler-<i>` with `value`.
fn head_with(addr: SocketAddr, count: usize, value: &str) -> String {
    let mut head = format!("GET /a HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for i in 0..count - 2 {
        head.push_str(&format!("x-filler-{i}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_header_count_and_size_are_exact() {
    // A route that needs a token: a request the gateway parsed whole is answered 401 by the
    // gateway itself; one over a limit gets 431 before routing.
    let options = Options {
        server: "max_header_count = 20\nmax_header_size = \"4KiB\"\nmax_token_size = \"1KiB\""
            .into(),
        ..Options::default()
    };
    let env = Env::start_with(&[key(Algorithm::ES256)], "", &root_route(""), options).await;
    let addr = env.gw.listen;
    assert_eq!(send_head(addr, &head_with(addr, 20, "v")).await, Some(401));
    assert_eq!(send_head(addr, &head_with(addr, 21, "v")).await, Some(431));
    // Bytes counted: the request target and `name: value\r\n` per header.
    let fixed = "/a".len()
        + ("host".len() + addr.to_string().len() + 4)
        + ("connection".len() + "close".len() + 4)
        + ("x-filler-0".len() + 4);
    let exact = "v".repeat(4096 - fixed);
    assert_eq!(
        send_head(addr, &head_with(addr, 3, &exact)).await,
        Some(401)
    );
    let over = "v".repeat(4096 - fixed + 1);
    assert_eq!(send_head(addr, &head_with(addr, 3, &over)).await, Some(431));
    assert_eq!(env.upstream.count(), 0);
    assert_eq!(
        env.gw
            .metric_reaching(
                "tokengate_requests_total",
                &[("route", "_unrouted"), ("outcome", "unrouted")],
                2.0
            )
            .await,
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_header_count_and_size_are_bounded_by_pingora_too() {
    let options = Options {
        server: "max_header_count = 256\nmax_header_size = \"512KiB\"".into(),
        ..Options::default()
    };
    let env = Env::start_with(&[key(Algorithm::ES256)], "", &root_route(""), options).await;
    let addr = env.gw.listen;
    // Pingora reads at most 256 header lines.
    assert_eq!(send_head(addr, &head_with(addr, 256, "v")).await, Some(401));
    let over = send_head(addr, &head_with(addr, 257, "v")).await;
    assert!(over.is_none_or(|s| s >= 400), "257 headers: {over:?}");
    // 400 KiB pass; 2 MiB never reach a handler (Pingora stops reading at about 1 MiB).
    let four_kib = "v".repeat(4 * 1024);
    assert_eq!(
        send_head(addr, &head_with(addr, 2 + 100, &four_kib)).await,
        Some(401)
    );
    let big = "v".repeat(8 * 1024);
    let over = send_head(addr, &head_with(addr, 2 + 250, &big)).await;
    assert!(over.is_none_or(|s| s >= 400), "2 MiB of headers: {over:?}");
    assert_eq!(env.upstream.count(), 0);
    // The gateway still serves.
    let r = get_bearer(&env.gw.url("/a"), &sign(key(Algorithm::ES256), &claims())).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
