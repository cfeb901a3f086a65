//! Token validation and route policy, seen from the client and from the upstream.

use filters::Algorithm;
use serde_json::json;

use crate::support::gateway::sample;
use crate::support::http::{get, get_bearer, request};
use crate::support::keys::{b64, forge, fresh, now};
use crate::support::{
    assert_denied, claims, issuer_toml, key, root_route, route_toml, sign, token, with, Env,
    Gateway, JwksServer, Upstream, AUD, ISS,
};

/// The four algorithm families tokengate verifies.
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_of_every_algorithm_reach_the_upstream_with_identity() {
    let keys: Vec<_> = ALGORITHMS.iter().map(|a| key(*a)).collect();
    let env = Env::start(&keys, "", &root_route("")).await;
    for (i, k) in keys.iter().enumerate() {
        let alg = k.alg().name();
        let t = sign(k, &with(claims(), json!({ "sub": format!("user-{alg}") })));
        let r = get_bearer(&env.gw.url(&format!("/orders/{i}?q=1")), &t).await;
        assert_eq!(r.status, 200, "{alg}: {}", r.body);
        assert_eq!(r.body, "upstream ok", "{alg}");
        assert_eq!(
            env.upstream.count(),
            i + 1,
            "{alg}: one request upstream per request"
        );
        let seen = env.upstream.last();
        assert_eq!(seen.path, format!("/orders/{i}?q=1"), "{alg}");
        assert_eq!(
            seen.header("x-auth-subject"),
            Some(format!("user-{alg}").as_str()),
            "{alg}"
        );
        assert_eq!(seen.header("x-auth-issuer"), Some(ISS), "{alg}");
        assert_eq!(
            seen.header("x-auth-scopes"),
            Some("orders:read orders:write"),
            "{alg}"
        );
        assert_eq!(seen.header("x-auth-client"), Some("web-app"), "{alg}");
        assert!(
            seen.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "{alg}: x-request-id"
        );
    }
    // `client_id` stands in for `azp`, and `scp` (an array) for `scope`.
    let k = key(Algorithm::ES256);
    let c = with(
        claims(),
        json!({ "azp": null, "client_id": "cli-7", "scope": null, "scp": ["a", "b"] }),
    );
    let r = get_bearer(&env.gw.url("/"), &sign(k, &c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-client"), Some("cli-7"));
    assert_eq!(seen.header("x-auth-scopes"), Some("a b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_token_is_401_with_a_bare_challenge() {
    let env = Env::start(&[key(Algorithm::ES256)], "", &root_route("")).await;
    let r = get(&env.gw.url("/orders"), &[]).await;
    assert_denied(&r, 401, None, "no Authorization");
    // Another scheme carries no bearer token: the same answer, without an error code.
    let r = get(
        &env.gw.url("/orders"),
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_denied(&r, 401, None, "Basic");
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_is_400_invalid_request() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("")).await;
    let valid = format!("Bearer {}", token(k));
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("scheme without token", vec![("authorization", "Bearer")]),
        ("two spaces", vec![("authorization", "Bearer  abc.def.ghi")]),
        (
            "characters outside token68",
            vec![("authorization", "Bearer abc$def.ghi")],
        ),
        (
            "space inside the token",
            vec![("authorization", "Bearer abc.def ghi")],
        ),
        (
            "two Authorization headers",
            vec![("authorization", &valid), ("authorization", &valid)],
        ),
    ];
    for (what, headers) in &cases {
        let r = get(&env.gw.url("/orders"), headers).await;
        assert_denied(&r, 400, Some("invalid_request"), what);
    }
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_are_401_invalid_token() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("")).await;
    // Same kid as the served key, different key material.
    let impostor = fresh(Algorithm::ES256, k.kid());
    let stranger = fresh(Algorithm::ES256, "kid-nobody-serves");
    let now = now();
    let good = token(k);
    let mut parts = good.split('.');
    let (h, _, s) = (
        parts.next().unwrap_or(""),
        parts.next(),
        parts.next().unwrap_or(""),
    );
    let tampered_payload = b64(with(claims(), json!({"sub": "admin"}))
        .to_string()
        .as_bytes());
    let cases: Vec<(&str, &str, String)> = vec![
        ("bad signature", "bad_signature", sign(&impostor, &claims())),
        (
            "tampered payload",
            "bad_signature",
            format!("{h}.{tampered_payload}.{s}"),
        ),
        (
            "expired",
            "expired",
            sign(
                k,
                &with(
                    claims(),
                    json!({"exp": now - 3600, "iat": now - 7200, "nbf": null}),
                ),
            ),
        ),
        (
            "nbf in the future",
            "not_yet_valid",
            sign(k, &with(claims(), json!({"nbf": now + 3600}))),
        ),
        (
            "wrong iss",
            "unknown_issuer",
            sign(k, &with(claims(), json!({"iss": "https://evil.test"}))),
        ),
        (
            "wrong aud",
            "wrong_audience",
            sign(k, &with(claims(), json!({"aud": "another-api"}))),
        ),
        (
            "no aud",
            "wrong_audience",
            sign(k, &with(claims(), json!({"aud": null}))),
        ),
        ("unknown kid", "unknown_kid", sign(&stranger, &claims())),
        (
            "alg none",
            "unsupported_alg",
            forge(&json!({"alg": "none", "typ": "at+jwt"}), &claims(), b""),
        ),
        (
            "alg HS256",
            "unsupported_alg",
            forge(
                &json!({"alg": "HS256", "kid": k.kid(), "typ": "at+jwt"}),
                &claims(),
                &[7u8; 32],
            ),
        ),
        (
            "JWE",
            "encrypted_token",
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn".into(),
        ),
        ("garbage", "malformed", "not-a-jwt".into()),
        ("garbage segments", "malformed", "abc.def.ghi".into()),
        ("oversized", "token_too_large", "a".repeat(9 * 1024)),
    ];
    for (what, _, t) in &cases {
        let r = get_bearer(&env.gw.url("/orders"), t).await;
        assert_denied(&r, 401, Some("invalid_token"), what);
    }
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
    // Each case was refused for its own reason, not by an unrelated check. Metrics are
    // recorded after the response is sent: wait for the last request's.
    let reasons: Vec<&str> = cases.iter().map(|(_, reason, _)| *reason).collect();
    let metrics = env.gw.metrics_when(|text| {
        reasons
            .iter()
            .all(|r| sample(text, "tokengate_denials_total", &[("reason", r)]).is_some())
    });
    let metrics = metrics.await;
    for (what, reason, _) in &cases {
        let n = sample(&metrics, "tokengate_denials_total", &[("reason", reason)]);
        assert!(
            n.is_some_and(|n| n >= 1.0),
            "{what}: no denial with reason {reason}:\n{metrics}"
        );
    }
    // Positive control: the same gateway accepts the untouched token.
    assert_eq!(get_bearer(&env.gw.url("/orders"), &good).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("require_scopes = [\"orders:admin\"]")).await;
    let r = get_bearer(&env.gw.url("/orders"), &token(k)).await;
    assert_denied(
        &r,
        403,
        Some("insufficient_scope"),
        "scope orders:admin missing",
    );
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("scope=\"orders:admin\""),
        "challenge: {challenge}"
    );
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
    let admin = sign(
        k,
        &with(claims(), json!({"scope": "orders:read orders:admin"})),
    );
    let r = get_bearer(&env.gw.url("/orders"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.upstream.last().header("x-auth-scopes"),
        Some("orders:read orders:admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_rule_refuses_a_token_of_another_tenant() {
    let k = key(Algorithm::ES256);
    let env = Env::start(
        &[k],
        "",
        &root_route("require_claims = { tenant = \"acme\" }"),
    )
    .await;
    let r = get_bearer(
        &env.gw.url("/orders"),
        &sign(k, &with(claims(), json!({"tenant": "globex"}))),
    )
    .await;
    assert_denied(&r, 403, Some("insufficient_scope"), "tenant globex");
    let r = get_bearer(
        &env.gw.url("/orders"),
        &sign(k, &with(claims(), json!({"tenant": null}))),
    )
    .await;
    assert_denied(&r, 403, Some("insufficient_scope"), "no tenant claim");
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
    let r = get_bearer(&env.gw.url("/orders"), &token(k)).await;
    assert_eq!(r.status, 200, "tenant acme: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_refuses_a_valid_token_of_an_issuer_it_does_not_accept() {
    let k = key(Algorithm::ES256);
    let jwks = JwksServer::start(&[k]).await;
    let upstream = Upstream::start().await;
    let partner = fresh(Algorithm::ES256, "partner-key");
    let partner_jwks = JwksServer::start(&[&partner]).await;
    let config = format!(
        "{}\n[[issuer]]\nid = \"partner\"\nissuer = \"https://partner.test\"\njwks_uri = \"{}\"\naudiences = [\"{AUD}\"]\n{}",
        issuer_toml("main", &jwks.uri(), ""),
        partner_jwks.uri(),
        route_toml("partner-only", "/", &upstream, "issuers = [\"partner\"]"),
    );
    let gw = Gateway::start(&config, Default::default()).await;
    gw.wait_ready().await;
    let r = get_bearer(&gw.url("/orders"), &token(k)).await;
    assert_denied(
        &r,
        401,
        Some("invalid_token"),
        "token of main on a partner-only route",
    );
    assert_eq!(
        upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
    let t = sign(
        &partner,
        &with(claims(), json!({"iss": "https://partner.test"})),
    );
    let r = get_bearer(&gw.url("/orders"), &t).await;
    assert_eq!(r.status, 200, "token of partner: {}", r.body);
    assert_eq!(
        upstream.last().header("x-auth-issuer"),
        Some("https://partner.test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_auth_passes_anonymously_but_refuses_a_bad_token() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("auth = \"optional\"")).await;
    let r = get(&env.gw.url("/public"), &[("x-auth-subject", "admin")]).await;
    assert_eq!(r.status, 200, "anonymous: {}", r.body);
    let seen = env.upstream.last();
    assert!(
        seen.names_starting("x-auth-").is_empty(),
        "anonymous request got identity headers: {seen:?}"
    );
    let r = get_bearer(
        &env.gw.url("/public"),
        &sign(k, &with(claims(), json!({"exp": now() - 3600}))),
    )
    .await;
    assert_denied(
        &r,
        401,
        Some("invalid_token"),
        "expired token on an optional route",
    );
    assert_eq!(
        env.upstream.count(),
        1,
        "the bad token did not reach the upstream"
    );
    let r = get_bearer(&env.gw.url("/public"), &token(k)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.upstream.last().header("x-auth-subject"), Some("user-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_none_still_strips_spoofed_identity_headers() {
    let env = Env::start(&[key(Algorithm::ES256)], "", &root_route("auth = \"none\"")).await;
    let r = request(
        "POST",
        &env.gw.url("/hooks"),
        &[
            ("X-Auth-Subject", "admin"),
            ("x_auth_subject", "admin"),
            ("X-AUTH-SCOPES", "root"),
            ("x-auth-anything", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(seen.method, "POST");
    assert!(
        seen.names_starting("x-auth-").is_empty(),
        "spoofed identity reached the upstream: {seen:?}"
    );
    assert!(
        !seen.mentions("admin") && !seen.mentions("root"),
        "spoofed value reached the upstream: {seen:?}"
    );
}
