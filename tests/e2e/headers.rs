//! What the upstream receives: identity headers only from the gateway, hop-by-hop headers
//! removed, `Authorization` stripped or passed, claim values encoded, request ids.

use filters::Algorithm;
use serde_json::json;

use crate::support::http::{get, get_bearer, raw};
use crate::support::keys::signature_of;
use crate::support::{claims, key, root_route, sign, token, with, Env, ISS};

/// A route `/` that injects the `tenant` claim as `x-auth-tenant`.
pub(crate) const INJECTING_ROUTE: &str =
    "\n[[route]]\nid = \"api\"\npath_prefix = \"/\"\nupstream = [\"{up}\"]\n\
                               [route.inject]\n\"x-auth-tenant\" = \"tenant\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", INJECTING_ROUTE).await;
    let bearer = format!("Bearer {}", token(k));
    let spoofed = [
        ("X-Auth-Subject", "spoof-subject"),
        ("x_auth_subject", "spoof-underscore"),
        ("X_AUTH_SCOPES", "spoof-scopes"),
        ("X-Auth-Tenant", "spoof-tenant"),
        ("x-auth-issuer", "spoof-issuer"),
        ("X-Auth-Client", "spoof-client"),
        ("X-Auth-Role", "spoof-role"),
    ];
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend(spoofed);
    let r = raw(env.gw.listen, "GET /orders HTTP/1.1", &headers).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert!(
        !seen.mentions("spoof-"),
        "a spoofed header reached the upstream: {seen:?}"
    );
    assert!(
        seen.all("x_auth_subject").is_empty() && seen.all("x_auth_scopes").is_empty(),
        "{seen:?}"
    );
    assert!(
        seen.all("x-auth-role").is_empty(),
        "prefix-matched header kept: {seen:?}"
    );
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
    assert_eq!(seen.header("x-auth-tenant"), Some("acme"));
    assert_eq!(seen.header("x-auth-issuer"), Some(ISS));
    assert_eq!(seen.header("x-auth-client"), Some("web-app"));
    assert_eq!(
        seen.header("x-auth-scopes"),
        Some("orders:read orders:write")
    );
    // Without a tenant claim the injected header is absent, not the client's copy.
    let r = raw(
        env.gw.listen,
        "GET /orders HTTP/1.1",
        &[
            (
                "Authorization",
                &format!(
                    "Bearer {}",
                    sign(k, &with(claims(), json!({"tenant": null})))
                ),
            ),
            ("X-Auth-Tenant", "spoof-tenant"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(seen.header("x-auth-tenant"), None, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_nominated_headers_are_dropped_without_losing_identity() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", INJECTING_ROUTE).await;
    let bearer = format!("Bearer {}", token(k));
    let r = raw(
        env.gw.listen,
        "GET /orders HTTP/1.1",
        &[
            ("Authorization", &bearer),
            (
                "Connection",
                "close, x-auth-subject, x-auth-tenant, x-secret",
            ),
            ("X-Secret", "hop-by-hop-value"),
            ("X-Auth-Subject", "spoof-subject"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(
        seen.header("x-auth-subject"),
        Some("user-1"),
        "injected identity lost: {seen:?}"
    );
    assert_eq!(
        seen.header("x-auth-tenant"),
        Some("acme"),
        "injected header lost: {seen:?}"
    );
    assert!(
        seen.all("x-secret").is_empty(),
        "a nominated header was forwarded: {seen:?}"
    );
    for v in seen.all("connection") {
        let v = v.to_ascii_lowercase();
        assert!(
            !v.contains("x-auth") && !v.contains("x-secret"),
            "Connection still nominates: {v}"
        );
    }
    assert!(
        !seen.mentions("spoof-") && !seen.mentions("hop-by-hop-value"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_is_stripped_unless_the_route_passes_it_through() {
    let k = key(Algorithm::ES256);
    let routes = "\n[[route]]\nid = \"strip\"\npath_prefix = \"/strip\"\nupstream = [\"{up}\"]\n\
                  \n[[route]]\nid = \"pass\"\npath_prefix = \"/pass\"\nupstream = [\"{up}\"]\nforward_token = \"passthrough\"\n";
    let env = Env::start(&[k], "", routes).await;
    let t = token(k);
    let r = get_bearer(&env.gw.url("/strip/x"), &t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert!(
        seen.all("authorization").is_empty(),
        "Authorization forwarded on a strip route: {seen:?}"
    );
    assert!(
        !seen.mentions(&t) && !seen.mentions(signature_of(&t)),
        "the token reached the upstream: {seen:?}"
    );
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));

    let t = token(k);
    let r = get_bearer(&env.gw.url("/pass/x"), &t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {t}").as_str())
    );
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_values_with_crlf_arrive_percent_encoded() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", INJECTING_ROUTE).await;
    let c = with(
        claims(),
        json!({"tenant": "acme\r\nX-Injected: 1", "sub": "Zoë Doe\n"}),
    );
    let r = get_bearer(&env.gw.url("/orders"), &sign(k, &c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(
        seen.header("x-auth-tenant"),
        Some("acme%0D%0AX-Injected:%201")
    );
    assert_eq!(seen.header("x-auth-subject"), Some("Zo%C3%AB%20Doe%0A"));
    assert!(
        seen.all("x-injected").is_empty(),
        "a claim value split a header: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_kept_or_replaced_and_returned() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &root_route("auth = \"optional\"")).await;
    let (gw, upstream) = (&env.gw, &env.upstream);

    // Absent: generated, returned, and the same one sent upstream.
    let r = get(&gw.url("/a"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r
        .header("x-request-id")
        .expect("x-request-id on the response")
        .to_string();
    assert!(!id.is_empty());
    assert_eq!(upstream.last().header("x-request-id"), Some(id.as_str()));
    let r2 = get(&gw.url("/a"), &[]).await;
    assert_ne!(
        r2.header("x-request-id"),
        Some(id.as_str()),
        "two requests got the same generated id"
    );

    // Well-formed: kept.
    let mine = "client-req_42.a:b";
    let r = get(&gw.url("/a"), &[("x-request-id", mine)]).await;
    assert_eq!(r.header("x-request-id"), Some(mine));
    assert_eq!(upstream.last().header("x-request-id"), Some(mine));

    // Malformed (bad characters, too long): replaced, and never forwarded.
    let too_long = "a".repeat(200);
    for bad in ["bad id with spaces", "semi;colon", too_long.as_str()] {
        let r = get(&gw.url("/a"), &[("x-request-id", bad)]).await;
        let id = r.header("x-request-id").expect("x-request-id").to_string();
        assert_ne!(id, bad, "malformed id kept");
        assert!(!id.is_empty());
        assert_eq!(
            upstream.last().all("x-request-id"),
            vec![id.as_str()],
            "upstream id for {bad:?}"
        );
    }

    // Refusals carry one too, and a well-formed one is kept there as well.
    let r = get_bearer(&gw.url("/a"), "not-a-jwt").await;
    assert_eq!(r.status, 401);
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let r = get(
        &gw.url("/a"),
        &[("x-request-id", mine), ("authorization", "Bearer")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-request-id"), Some(mine));
}
