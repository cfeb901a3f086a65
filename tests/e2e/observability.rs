//! What operators see: `/healthz`, `/readyz`, `/metrics`, the access log — and what they
//! must never see: tokens.

use filters::Algorithm;
use serde_json::json;

use crate::support::gateway::sample;
use crate::support::http::{get, get_bearer};
use crate::support::keys::{forge, fresh, now, signature_of};
use crate::support::{claims, root_route, sign, token, wait_until, with, Env, Options};

/// The log lines containing `needle` (at most three, `needle` shown as `<LEAKED>`), for
/// the failure message.
fn leaks(logs: &str, needle: &str) -> String {
    logs.lines()
        .filter(|l| l.contains(needle))
        .take(3)
        .map(|l| {
            l.replace(needle, "<LEAKED>")
                .chars()
                .take(2000)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let k = fresh(Algorithm::ES256, "metrics");
    let env = Env::start(&[&k], "", &root_route("")).await;
    let health = get(&env.gw.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, 200);
    let ready = get(&env.gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true, "{}", ready.body);

    let t = token(&k);
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    assert_eq!(get(&env.gw.url("/a"), &[]).await.status, 401);
    let expired = sign(&k, &with(claims(), json!({"exp": now() - 3600})));
    assert_eq!(get_bearer(&env.gw.url("/a"), &expired).await.status, 401);

    // Metrics are recorded after the response is sent: wait for the last request's.
    let text = env
        .gw
        .metrics_when(|text| {
            sample(
                text,
                "tokengate_requests_total",
                &[("route", "api"), ("outcome", "denied")],
            ) == Some(2.0)
        })
        .await;
    let m = |name, labels: &[(&str, &str)]| sample(&text, name, labels);
    assert_eq!(
        m(
            "tokengate_requests_total",
            &[("route", "api"), ("outcome", "allowed")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        m(
            "tokengate_requests_total",
            &[("route", "api"), ("outcome", "denied")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        m(
            "tokengate_denials_total",
            &[("route", "api"), ("reason", "missing_token")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        m(
            "tokengate_denials_total",
            &[("route", "api"), ("reason", "expired")]
        ),
        Some(1.0),
        "{text}"
    );
    let fetched = m(
        "tokengate_jwks_fetches_total",
        &[("issuer", "main"), ("result", "ok")],
    );
    assert!(fetched.is_some_and(|n| n >= 1.0), "jwks fetches: {text}");
    assert_eq!(
        m("tokengate_jwks_keys", &[("issuer", "main")]),
        Some(1.0),
        "{text}"
    );
    let hits = m("tokengate_token_cache_hits_total", &[]);
    assert!(
        hits.is_some_and(|n| n >= 1.0),
        "the second use of a token is a cache hit: {text}"
    );
    assert!(
        !text.contains(&t) && !text.contains("user-1"),
        "metrics carry a token or a subject:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_access_log_line() {
    let k = fresh(Algorithm::ES256, "access");
    let env = Env::start(&[&k], "", &root_route("")).await;
    let bearer = format!("Bearer {}", token(&k));
    assert_eq!(
        get(
            &env.gw.url("/ok"),
            &[("x-request-id", "access-ok"), ("authorization", &bearer)]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(&env.gw.url("/no"), &[("x-request-id", "access-denied")])
            .await
            .status,
        401
    );
    let lines = wait_until("two access-log lines", || async {
        let lines = env.gw.access_lines();
        let ours = |id: &str| lines.iter().filter(|l| l["request_id"] == id).count();
        (ours("access-ok") == 1 && ours("access-denied") == 1).then_some(lines)
    })
    .await;
    let ok = lines
        .iter()
        .find(|l| l["request_id"] == "access-ok")
        .expect("line of the allowed request");
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["route"], "api", "{ok}");
    assert_eq!(ok["outcome"], "allowed", "{ok}");
    assert_eq!(ok["path"], "/ok", "{ok}");
    let denied = lines
        .iter()
        .find(|l| l["request_id"] == "access-denied")
        .expect("line of the denied request");
    assert_eq!(denied["status"], 401, "{denied}");
    assert_eq!(denied["outcome"], "denied", "{denied}");
    assert_eq!(denied["reason"], "missing_token", "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_appear_in_the_logs_at_any_level() {
    let k = fresh(Algorithm::ES256, "logged");
    let stranger = fresh(Algorithm::ES256, "logged-unknown-kid");
    // Every level on: the gateway's own events and those of Pingora and the HTTP client.
    let options = Options {
        level: "trace".into(),
        ..Options::default()
    };
    let routes = format!("{}{}", root_route(""), PASSTHROUGH_ROUTE);
    let env = Env::start_with(&[&k], "", &routes, options).await;
    let valid = token(&k);
    // (what, path, Authorization values)
    let mut sent: Vec<(&str, &str, Vec<String>)> = vec![
        ("valid", "/logged", vec![format!("Bearer {valid}")]),
        (
            "valid again (cache hit)",
            "/logged",
            vec![format!("Bearer {valid}")],
        ),
        (
            "valid, passed through",
            "/pass/logged",
            vec![format!("Bearer {}", token(&k))],
        ),
        (
            "expired",
            "/logged",
            vec![bearer(sign(
                &k,
                &with(claims(), json!({"exp": now() - 3600})),
            ))],
        ),
        (
            "wrong audience",
            "/logged",
            vec![bearer(sign(
                &k,
                &with(claims(), json!({"aud": "elsewhere"})),
            ))],
        ),
        (
            "bad signature",
            "/logged",
            vec![bearer(sign(&fresh(Algorithm::ES256, "logged"), &claims()))],
        ),
        (
            "unknown kid (refetch)",
            "/logged",
            vec![bearer(sign(&stranger, &claims()))],
        ),
        (
            "alg none",
            "/logged",
            vec![bearer(forge(&json!({"alg": "none"}), &claims(), b""))],
        ),
        (
            "malformed header",
            "/logged",
            vec![format!("Bearer {} trailing", token(&k))],
        ),
    ];
    let doubled = bearer(token(&k));
    sent.push(("doubled header", "/logged", vec![doubled.clone(), doubled]));
    for (what, path, values) in &sent {
        let headers: Vec<(&str, &str)> = values
            .iter()
            .map(|v| ("authorization", v.as_str()))
            .collect();
        let r = get(&env.gw.url(path), &headers).await;
        assert!(r.status < 500, "{what}: {}", r.body);
    }
    wait_until("an access-log line per request", || async {
        let n = env
            .gw
            .access_lines()
            .iter()
            .filter(|l| l["path"].as_str().is_some_and(|p| p.ends_with("/logged")))
            .count();
        (n >= sent.len()).then_some(())
    })
    .await;
    let logs = env.gw.logs();
    for (what, _, values) in &sent {
        for v in values {
            let t = v.split(' ').nth(1).unwrap_or_default();
            assert!(
                !logs.contains(t),
                "{what}: the token is in the gateway's log:\n{}",
                leaks(&logs, t)
            );
            let sig = signature_of(t);
            if !sig.is_empty() {
                assert!(
                    !logs.contains(sig),
                    "{what}: the token's signature is in the log:\n{}",
                    leaks(&logs, sig)
                );
            }
        }
    }
}

/// A route `/pass` that forwards `Authorization`.
const PASSTHROUGH_ROUTE: &str =
    "\n[[route]]\nid = \"pass\"\npath_prefix = \"/pass\"\nupstream = [\"{up}\"]\nforward_token = \"passthrough\"\n";

fn bearer(token: String) -> String {
    format!("Bearer {token}")
}
