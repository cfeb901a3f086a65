//! Requests the gateway refuses before authentication (404, 405, 400) and upstream failures.

use filters::Algorithm;

use crate::support::http::{get, raw, request};
use crate::support::{assert_refused, key, Env};

/// `/orders` for GET and HEAD only; `/public` without auth.
const ROUTES: &str = "\n[[route]]\nid = \"orders\"\npath_prefix = \"/orders\"\nupstream = [\"{up}\"]\nmethods = [\"GET\", \"HEAD\"]\nauth = \"none\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_path_is_404() {
    let env = Env::start(&[key(Algorithm::ES256)], "", ROUTES).await;
    for path in ["/", "/nothing", "/ordersx", "/other/orders"] {
        let r = get(&env.gw.url(path), &[]).await;
        assert_refused(&r, 404, None, path);
    }
    assert_eq!(
        get(&env.gw.url("/orders/1"), &[]).await.status,
        200,
        "positive control"
    );
    assert_eq!(
        env.upstream.count(),
        1,
        "only the matched request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405() {
    let env = Env::start(&[key(Algorithm::ES256)], "", ROUTES).await;
    for method in ["POST", "DELETE", "PUT"] {
        let r = request(method, &env.gw.url("/orders/1"), &[]).await;
        assert_refused(&r, 405, None, method);
    }
    assert_eq!(
        env.upstream.count(),
        0,
        "a refused request never reaches the upstream"
    );
    assert_eq!(
        get(&env.gw.url("/orders/1"), &[]).await.status,
        200,
        "positive control"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_and_encoded_slashes_are_400() {
    let env = Env::start(&[key(Algorithm::ES256)], "", ROUTES).await;
    // Sent raw: an HTTP library would resolve the dot segments before sending.
    for path in [
        "/orders/../admin",
        "/orders/./1",
        "/orders/%2e%2e/admin",
        "/orders%2Fadmin",
        "/orders/a%2fb",
    ] {
        let r = raw(env.gw.listen, &format!("GET {path} HTTP/1.1"), &[]).await;
        assert_refused(&r, 400, None, path);
        assert_eq!(r.json()["error"], "invalid_request", "{path}");
    }
    assert_eq!(
        env.upstream.count(),
        0,
        "a refused path never reaches the upstream"
    );
    let r = raw(env.gw.listen, "GET /orders/a.b/c HTTP/1.1", &[]).await;
    assert_eq!(r.status, 200, "a dot inside a segment is fine: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let routes = format!("\n[[route]]\nid = \"down\"\npath_prefix = \"/\"\nupstream = [\"{closed}\"]\nauth = \"none\"\n");
    let env = Env::start(&[key(Algorithm::ES256)], "", &routes).await;
    let r = get(
        &env.gw.url("/orders"),
        &[("x-request-id", "upstream-down-1")],
    )
    .await;
    assert_refused(&r, 502, Some("upstream_unavailable"), "upstream down");
    assert_eq!(r.header("x-request-id"), Some("upstream-down-1"));
}
