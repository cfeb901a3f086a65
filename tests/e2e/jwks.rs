//! The issuer's keys over time: rotation, outages, `kid` floods, cold start.

use filters::Algorithm;
use serde_json::json;

use crate::support::gateway::sample;
use crate::support::http::{get, get_bearer};
use crate::support::keys::{forge, fresh, now};
use crate::support::{
    assert_denied, assert_refused, claims, issuer_toml, root_route, route_toml, token, wait_until,
    Env, Gateway, JwksServer, Options, Upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_accepted_without_restart() {
    let old = fresh(Algorithm::ES256, "rotation-old");
    let new = fresh(Algorithm::ES256, "rotation-new");
    let env = Env::start(&[&old], "", &root_route("")).await;
    let before_rotation = token(&old);
    let r = get_bearer(&env.gw.url("/"), &before_rotation).await;
    assert_eq!(r.status, 200, "old key before rotation: {}", r.body);

    // The IdP rotates: only the new key is published. The gateway is not told.
    env.jwks.serve(&[&new]);
    let fetches = env.jwks.requests();
    let r = get_bearer(&env.gw.url("/"), &token(&new)).await;
    assert_eq!(r.status, 200, "new key after rotation: {}", r.body);
    assert_eq!(env.upstream.last().header("x-auth-subject"), Some("user-1"));
    assert_eq!(
        env.jwks.requests(),
        fetches + 1,
        "the unknown kid caused exactly one refetch"
    );

    // The withdrawn key no longer verifies, even for a token accepted (and cached) before.
    let r = get_bearer(&env.gw.url("/"), &before_rotation).await;
    assert_denied(&r, 401, Some("invalid_token"), "token of the withdrawn key");
    let r = get_bearer(&env.gw.url("/"), &token(&old)).await;
    assert_denied(
        &r,
        401,
        Some("invalid_token"),
        "new token of the withdrawn key",
    );
    assert_eq!(
        env.upstream.count(),
        2,
        "only the two accepted requests reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_cache_keeps_serving_while_the_jwks_server_is_down() {
    let k = fresh(Algorithm::ES256, "warm");
    let mut env = Env::start(&[&k], "refresh = \"1s\"", &root_route("")).await;
    assert_eq!(get_bearer(&env.gw.url("/"), &token(&k)).await.status, 200);

    // 503 first, then no listener at all; each time wait until the gateway has tried.
    env.jwks.set_down(true);
    let seen = env.jwks.requests();
    wait_until(
        "a background refresh against the 503 JWKS server",
        || async { (env.jwks.requests() > seen).then_some(()) },
    )
    .await;
    let r = get_bearer(&env.gw.url("/"), &token(&k)).await;
    assert_eq!(r.status, 200, "JWKS answering 503, keys cached: {}", r.body);

    env.jwks.stop().await;
    let errors = env
        .gw
        .metric(
            "tokengate_jwks_fetches_total",
            &[("issuer", "main"), ("result", "error")],
        )
        .await;
    let errors = errors.unwrap_or(0.0);
    wait_until(
        "a failed refresh against the stopped JWKS server",
        || async {
            let now = env
                .gw
                .metric(
                    "tokengate_jwks_fetches_total",
                    &[("issuer", "main"), ("result", "error")],
                )
                .await;
            now.is_some_and(|n| n > errors).then_some(())
        },
    )
    .await;
    let r = get_bearer(&env.gw.url("/"), &token(&k)).await;
    assert_eq!(r.status, 200, "JWKS server gone, keys cached: {}", r.body);
    let ready = get(&env.gw.admin_url("/readyz"), &[]).await;
    assert_eq!(
        ready.status, 200,
        "stale-but-usable keys keep the gateway ready: {}",
        ready.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_flood_causes_at_most_one_jwks_fetch() {
    let k = fresh(Algorithm::ES256, "flood-real");
    let env = Env::start(&[&k], "refetch_cooldown = \"60s\"", &root_route("")).await;
    let before = env.jwks.requests();
    // Well-formed ES256 tokens whose kids no key has; the signature is never checked.
    let random_kid = |i: usize| {
        let header =
            json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("random-{i}-{}", now())});
        forge(&header, &claims(), &[i as u8; 64])
    };
    let url = env.gw.url("/");
    // 25 at once (single flight), then 25 one after another (cooldown).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..25 {
        let (url, t) = (url.clone(), random_kid(i));
        tasks.spawn(async move { get_bearer(&url, &t).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_denied(
            &r.expect("request task"),
            401,
            Some("invalid_token"),
            "random kid, concurrent",
        );
    }
    for i in 25..50 {
        let r = get_bearer(&url, &random_kid(i)).await;
        assert_denied(&r, 401, Some("invalid_token"), "random kid, sequential");
    }
    let fetched = env.jwks.requests() - before;
    assert!(
        fetched <= 1,
        "50 random kids caused {fetched} JWKS fetches (cooldown 60s)"
    );
    assert_eq!(
        env.upstream.count(),
        0,
        "a denied request never reaches the upstream"
    );
    // The real key still works, without another fetch.
    assert_eq!(get_bearer(&url, &token(&k)).await.status, 200);
    assert_eq!(env.jwks.requests() - before, fetched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_without_keys_is_503_until_the_jwks_server_answers() {
    let k = fresh(Algorithm::ES256, "cold");
    let jwks = JwksServer::start(&[&k]).await;
    jwks.set_down(true);
    let upstream = Upstream::start().await;
    let config = format!(
        "{}{}",
        issuer_toml("main", &jwks.uri(), "refresh = \"1s\""),
        route_toml("api", "/", &upstream, "")
    );
    let gw = Gateway::start(&config, Options::default()).await;
    wait_until("the initial fetch to fail", || async {
        (jwks.requests() > 0).then_some(())
    })
    .await;

    let ready = get(&gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "not ready without keys: {}", ready.body);
    assert_eq!(ready.json()["ready"], false);
    let r = get_bearer(&gw.url("/"), &token(&k)).await;
    assert_refused(
        &r,
        503,
        Some("temporarily_unavailable"),
        "valid token, no keys yet",
    );
    assert_eq!(upstream.count(), 0, "nothing is forwarded without keys");

    jwks.set_down(false);
    gw.wait_ready().await;
    let r = get_bearer(&gw.url("/"), &token(&k)).await;
    assert_eq!(r.status, 200, "after the keys arrived: {}", r.body);
    assert_eq!(upstream.count(), 1);
    let metrics = gw.metrics().await;
    assert!(
        sample(
            &metrics,
            "tokengate_jwks_fetches_total",
            &[("issuer", "main"), ("result", "error")]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "tokengate_jwks_fetches_total",
            &[("issuer", "main"), ("result", "ok")]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}
