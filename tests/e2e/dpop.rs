//! DPoP (RFC 9449) and step-up (RFC 9470) end to end: proofs are checked against the
//! route's configured origin, each proof is accepted once across replicas sharing Redis,
//! server nonces work across replicas sharing the nonce secret, and refusals carry the
//! `DPoP` challenge with `algs`.

use filters::dpop::{key_thumbprint, sign_proof, ProofClaims};
use filters::sign::SigningKey;
use filters::Algorithm;
use serde_json::json;

use crate::support::http::request;
use crate::support::keys::{fresh, now};
use crate::support::redis::{redis_section, Redis};
use crate::support::{
    claims, issuer_toml, key, root_route, sign, with, Env, Gateway, JwksServer, Options, Reply,
    Upstream,
};

/// The origin clients use in `htu` (the gateway itself listens on 127.0.0.1).
const ORIGIN: &str = "https://api.tokengate.test";

/// A token bound to `proof_key` (`cnf.jkt`).
fn bound_token(issuer: &SigningKey, proof_key: &SigningKey) -> String {
    sign(
        issuer,
        &with(claims(), json!({"cnf": {"jkt": key_thumbprint(proof_key)}})),
    )
}

/// A proof for `method ORIGIN+path` and `token`, with a fresh `jti`.
fn proof(proof_key: &SigningKey, method: &str, path: &str, token: &str) -> String {
    proof_with(
        proof_key,
        method,
        &format!("{ORIGIN}{path}"),
        token,
        now(),
        None,
    )
}

fn proof_with(
    proof_key: &SigningKey,
    method: &str,
    uri: &str,
    token: &str,
    iat: i64,
    nonce: Option<&str>,
) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = format!(
        "p-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sign_proof(
        proof_key,
        &ProofClaims {
            method,
            uri,
            access_token: token,
            iat,
            jti: &jti,
            nonce,
        },
    )
    .expect("sign proof")
}

async fn send(gw: &Gateway, path: &str, token: &str, proofs: &[&str]) -> Reply {
    let auth = format!("DPoP {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(proofs.iter().map(|p| ("dpop", *p)));
    request("GET", &gw.url(path), &headers).await
}

/// Asserts a 401 with a `DPoP` challenge naming `error` and the accepted algorithms.
fn assert_dpop_denied(r: &Reply, error: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: body {}", r.body);
    assert_eq!(r.json()["error"], error, "{what}: body {}", r.body);
    let c = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no challenge"));
    assert!(c.starts_with("DPoP realm=\"tokengate\""), "{what}: {c}");
    assert!(c.contains(&format!("error=\"{error}\"")), "{what}: {c}");
    assert!(
        c.contains("algs=\"ES256 ES384 EdDSA PS256 RS256\""),
        "{what}: {c}"
    );
}

fn origin_options() -> Options {
    Options {
        server: format!("public_origin = \"{ORIGIN}\""),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_with_a_valid_proof_reaches_the_upstream_without_the_proof() {
    let issuer = key(Algorithm::ES256);
    let env = Env::start_with(&[issuer], "", &root_route(""), origin_options()).await;
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let pk = fresh(alg, "client");
        let token = bound_token(issuer, &pk);
        // The query is not part of htu.
        let p = proof(&pk, "GET", "/orders/7", &token);
        let r = send(&env.gw, "/orders/7?page=2", &token, &[&p]).await;
        assert_eq!(r.status, 200, "{alg}: {}", r.body);
        let seen = env.upstream.last();
        assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
        assert_eq!(seen.header("dpop"), None, "the proof is never forwarded");
        assert!(!seen.mentions(&p));
        // The embedded store (no [redis]) refuses the same proof a second time.
        let r = send(&env.gw, "/orders/7", &token, &[&p]).await;
        assert_dpop_denied(&r, "invalid_dpop_proof", "replay on one node");
    }
    assert_eq!(env.upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_check_refuses_with_a_dpop_challenge_and_no_upstream_call() {
    let issuer = key(Algorithm::ES256);
    let env = Env::start_with(&[issuer], "", &root_route(""), origin_options()).await;
    let pk = fresh(Algorithm::ES256, "client");
    let thief = fresh(Algorithm::ES256, "thief");
    let token = bound_token(issuer, &pk);
    let other_token = bound_token(issuer, &pk);
    let good = || proof(&pk, "GET", "/orders", &token);
    let p1 = good();
    let p2 = good();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no proof", vec![], "invalid_dpop_proof"),
        ("two proofs", vec![p1, p2], "invalid_dpop_proof"),
        ("not a JWS", vec!["x.y".into()], "invalid_dpop_proof"),
        (
            "wrong htm",
            vec![proof(&pk, "POST", "/orders", &token)],
            "invalid_dpop_proof",
        ),
        (
            "wrong path in htu",
            vec![proof(&pk, "GET", "/admin", &token)],
            "invalid_dpop_proof",
        ),
        (
            "the client-controlled Host, not the configured origin",
            vec![proof_with(
                &pk,
                "GET",
                &format!("http://{}/orders", env.gw.listen),
                &token,
                now(),
                None,
            )],
            "invalid_dpop_proof",
        ),
        (
            "proof for another token (ath)",
            vec![proof(&pk, "GET", "/orders", &other_token)],
            "invalid_dpop_proof",
        ),
        (
            "proof too old",
            vec![proof_with(
                &pk,
                "GET",
                &format!("{ORIGIN}/orders"),
                &token,
                now() - 300,
                None,
            )],
            "invalid_dpop_proof",
        ),
        (
            "a valid proof by another key (stolen token)",
            vec![proof(&thief, "GET", "/orders", &token)],
            "invalid_token",
        ),
    ];
    for (what, proofs, error) in cases {
        let before = env.upstream.count();
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = send(&env.gw, "/orders", &token, &refs).await;
        assert_dpop_denied(&r, error, what);
        assert_eq!(env.upstream.count(), before, "{what}: upstream called");
    }
    // Forwarding headers do not make another origin acceptable either.
    let evil = proof_with(
        &pk,
        "GET",
        "https://evil.example/orders",
        &token,
        now(),
        None,
    );
    let auth = format!("DPoP {token}");
    let r = request(
        "GET",
        &env.gw.url("/orders"),
        &[
            ("authorization", auth.as_str()),
            ("dpop", evil.as_str()),
            ("host", "evil.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "host=evil.example;proto=https"),
        ],
    )
    .await;
    assert_dpop_denied(&r, "invalid_dpop_proof", "forwarding headers");
    // The same token with a good proof passes: the refusals were about the proofs.
    let r = send(&env.gw, "/orders", &token, &[&good()]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemes_must_match_the_binding_and_routes_can_require_dpop() {
    let issuer = key(Algorithm::ES256);
    let routes = format!(
        "{}{}",
        root_route(""),
        "\n[[route]]\nid = \"strict\"\npath_prefix = \"/strict\"\nupstream = [\"{up}\"]\nrequire_dpop = true\n"
    );
    let env = Env::start_with(&[issuer], "", &routes, origin_options()).await;
    let pk = fresh(Algorithm::ES256, "client");
    let bound = bound_token(issuer, &pk);
    let plain = sign(issuer, &claims());

    // No credentials: both schemes are offered where DPoP is accepted (RFC 9449 §7.2).
    let r = request("GET", &env.gw.url("/orders"), &[]).await;
    assert_eq!(r.status, 401);
    let challenges: Vec<&str> = r
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"tokengate\"",
            "DPoP realm=\"tokengate\", algs=\"ES256 ES384 EdDSA PS256 RS256\""
        ]
    );

    // A malformed DPoP authorization is answered in the DPoP scheme.
    let r = request(
        "GET",
        &env.gw.url("/orders"),
        &[("authorization", "DPoP a b")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("DPoP "));

    // A stolen DPoP-bound token replayed as a bearer token.
    let r = request(
        "GET",
        &env.gw.url("/orders"),
        &[("authorization", &format!("Bearer {bound}"))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_token");
    assert!(r
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("DPoP "));

    // A plain token sent with the DPoP scheme.
    let r = send(
        &env.gw,
        "/orders",
        &plain,
        &[&proof(&pk, "GET", "/orders", &plain)],
    )
    .await;
    assert_dpop_denied(&r, "invalid_token", "unbound token with the DPoP scheme");

    // A route that requires DPoP refuses bearer tokens, with a DPoP challenge.
    let before = env.upstream.count();
    let r = request(
        "GET",
        &env.gw.url("/strict/x"),
        &[("authorization", &format!("Bearer {plain}"))],
    )
    .await;
    assert_dpop_denied(&r, "invalid_token", "bearer on a require_dpop route");
    assert_eq!(env.upstream.count(), before);
    let r = send(
        &env.gw,
        "/strict/x",
        &bound,
        &[&proof(&pk, "GET", "/strict/x", &bound)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Plain bearer tokens still work where DPoP is not required.
    let r = request(
        "GET",
        &env.gw.url("/orders"),
        &[("authorization", &format!("Bearer {plain}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_a_public_origin_refuses_dpop() {
    let issuer = key(Algorithm::ES256);
    let env = Env::start(&[issuer], "", &root_route("")).await;
    let pk = fresh(Algorithm::ES256, "client");
    let token = bound_token(issuer, &pk);
    let r = send(
        &env.gw,
        "/orders",
        &token,
        &[&proof(&pk, "GET", "/orders", &token)],
    )
    .await;
    assert_dpop_denied(&r, "invalid_dpop_proof", "no public origin");
    assert_eq!(env.upstream.count(), 0);
}

/// Two gateways sharing one Redis and one nonce secret.
async fn two_replicas(
    redis: &Redis,
    route_extra: &str,
) -> (JwksServer, Upstream, Gateway, Gateway) {
    const NONCE_ENV: &str = "TOKENGATE_E2E_DPOP_NONCE";
    std::env::set_var(NONCE_ENV, "e2e-dpop-nonce-secret-0123456789");
    let issuer = key(Algorithm::ES256);
    let jwks = JwksServer::start(&[issuer]).await;
    let upstream = Upstream::start().await;
    let body = format!(
        "{}{}\n[dpop]\nnonce_secret = \"${{{NONCE_ENV}}}\"\n{}",
        issuer_toml("main", &jwks.uri(), ""),
        redis_section(redis),
        root_route(route_extra).replace("{up}", &upstream.addr().to_string()),
    );
    let a = Gateway::start(&body, origin_options()).await;
    let b = Gateway::start(&body, origin_options()).await;
    a.wait_ready().await;
    b.wait_ready().await;
    (jwks, upstream, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_accepted_once_across_replicas_sharing_redis() {
    let redis = Redis::start().await;
    let (_jwks, upstream, a, b) = two_replicas(&redis, "").await;
    let issuer = key(Algorithm::ES256);
    let pk = fresh(Algorithm::ES256, "client");
    let token = bound_token(issuer, &pk);
    let p = proof(&pk, "GET", "/orders", &token);

    let r = send(&a, "/orders", &token, &[&p]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = upstream.count();
    for (gw, what) in [(&b, "the other replica"), (&a, "the same replica")] {
        let r = send(gw, "/orders", &token, &[&p]).await;
        assert_dpop_denied(&r, "invalid_dpop_proof", what);
        assert_eq!(
            r.json()["error_description"],
            "the DPoP proof was already used"
        );
    }
    assert_eq!(upstream.count(), before);
    assert_eq!(
        redis.calls("set").await,
        3,
        "one SET NX per proof presented"
    );
    assert!(
        redis.keys().await.contains("dpop_jti:"),
        "{}",
        redis.keys().await
    );
    // A new proof from the same client is fine on either replica.
    let r = send(
        &b,
        "/orders",
        &token,
        &[&proof(&pk, "GET", "/orders", &token)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        b.metric(
            "tokengate_dpop_replay_checks_total",
            &[("result", "replay")]
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_nonces_are_required_and_work_across_replicas() {
    let redis = Redis::start().await;
    let (_jwks, upstream, a, b) =
        two_replicas(&redis, "require_dpop = true\nuse_dpop_nonce = true").await;
    let issuer = key(Algorithm::ES256);
    let pk = fresh(Algorithm::ES256, "client");
    let token = bound_token(issuer, &pk);
    let uri = format!("{ORIGIN}/orders");

    let r = send(
        &a,
        "/orders",
        &token,
        &[&proof(&pk, "GET", "/orders", &token)],
    )
    .await;
    assert_dpop_denied(&r, "use_dpop_nonce", "no nonce");
    let nonce = r
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_string();
    assert_eq!(upstream.count(), 0);

    // Every answer of a nonce route carries a fresh nonce, a refused bearer request too.
    let plain = sign(issuer, &claims());
    let r = request(
        "GET",
        &a.url("/orders"),
        &[("authorization", &format!("Bearer {plain}"))],
    )
    .await;
    assert_dpop_denied(&r, "invalid_token", "bearer on a nonce route");
    assert!(r.header("dpop-nonce").is_some_and(|n| n.len() == 32));

    let r = send(
        &a,
        "/orders",
        &token,
        &[&proof_with(
            &pk,
            "GET",
            &uri,
            &token,
            now(),
            Some("made-up"),
        )],
    )
    .await;
    assert_dpop_denied(&r, "use_dpop_nonce", "forged nonce");

    // Replica b accepts the nonce replica a issued, and hands out a fresh one.
    let r = send(
        &b,
        "/orders",
        &token,
        &[&proof_with(&pk, "GET", &uri, &token, now(), Some(&nonce))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("dpop-nonce").is_some_and(|n| !n.is_empty()));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_routes_challenge_with_acr_values_and_max_age() {
    let issuer = key(Algorithm::ES256);
    let env = Env::start(
        &[issuer],
        "",
        &root_route(
            "acr_values = [\"urn:tokengate:mfa\", \"urn:tokengate:hwk\"]\nmax_age = \"5m\"",
        ),
    )
    .await;
    let t = now();
    let cases = [
        (json!({}), "no acr"),
        (
            json!({"acr": "urn:tokengate:pwd", "auth_time": t}),
            "weak acr",
        ),
        (
            json!({"acr": "urn:tokengate:mfa", "auth_time": t - 301}),
            "old authentication",
        ),
        (json!({"acr": "urn:tokengate:mfa"}), "no auth_time"),
    ];
    for (patch, what) in cases {
        let token = sign(issuer, &with(claims(), patch));
        let r = request(
            "GET",
            &env.gw.url("/x"),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(
            r.json()["error"],
            "insufficient_user_authentication",
            "{what}"
        );
        let c = r.header("www-authenticate").unwrap_or_default();
        assert!(
            c.starts_with("Bearer realm=\"tokengate\", error=\"insufficient_user_authentication\""),
            "{what}: {c}"
        );
        assert!(
            c.ends_with(", acr_values=\"urn:tokengate:mfa urn:tokengate:hwk\", max_age=300"),
            "{what}: {c}"
        );
    }
    assert_eq!(env.upstream.count(), 0);
    let token = sign(
        issuer,
        &with(
            claims(),
            json!({"acr": "urn:tokengate:hwk", "auth_time": t - 60}),
        ),
    );
    let r = request(
        "GET",
        &env.gw.url("/x"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.gw
            .metric_reaching(
                "tokengate_denials_total",
                &[
                    ("route", "api"),
                    ("reason", "insufficient_user_authentication")
                ],
                4.0
            )
            .await,
        Some(4.0)
    );
}
