//! Revocation end to end: the admin API, the logout route and the CLI write revocations;
//! every replica sharing the Redis refuses the token on its next request; Redis outages
//! follow the route's `on_store_error`; invalid tokens cause no Redis traffic.

use std::path::PathBuf;
use std::process::Command;

use filters::Algorithm;
use serde_json::{json, Value};

use crate::support::http::{client, get_bearer, request};
use crate::support::keys::now;
use crate::support::redis::{cmd, redis_section, Redis};
use crate::support::{
    assert_denied, assert_refused, claims, issuer_toml, key, root_route, sign, wait_until, with,
    Env, Gateway, JwksServer, Options, Upstream,
};

/// Admin bearer secret, passed to every gateway through the environment.
const ADMIN_ENV: &str = "TOKENGATE_E2E_ADMIN_TOKEN";
const ADMIN_SECRET: &str = "e2e-admin-secret-0123456789";

fn admin_section() -> String {
    // Same value from every test: setting it concurrently is harmless.
    std::env::set_var(ADMIN_ENV, ADMIN_SECRET);
    format!("\n[admin]\ntoken = \"${{{ADMIN_ENV}}}\"\n")
}

/// POSTs JSON to the gateway's admin API with the admin secret (or `bearer`).
async fn admin_post(gw: &Gateway, path: &str, body: Value, bearer: Option<&str>) -> (u16, String) {
    let r = client()
        .post(gw.admin_url(path))
        .header(
            "authorization",
            format!("Bearer {}", bearer.unwrap_or(ADMIN_SECRET)),
        )
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("admin request");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_jti_is_refused_on_the_next_request_with_the_memory_store() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &format!("{}{}", admin_section(), root_route(""))).await;
    let c = claims();
    let t = sign(k, &c);
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    let (status, body) = admin_post(
        &env.gw,
        "/revocations/token",
        json!({ "jti": c["jti"], "exp": c["exp"] }),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let r = get_bearer(&env.gw.url("/a"), &t).await;
    assert_denied(&r, 401, Some("invalid_token"), "revoked token");
    assert_eq!(
        env.upstream.count(),
        1,
        "a revoked token never reaches the upstream"
    );
    // Another token of the same subject is unaffected.
    assert_eq!(
        get_bearer(&env.gw.url("/a"), &sign(k, &claims()))
            .await
            .status,
        200
    );
    let m = env.gw.metrics().await;
    assert!(
        m.contains("tokengate_denials_total{reason=\"revoked\",route=\"api\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tokengate_revocation_checks_total{result=\"token_revoked\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_its_bearer_secret() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &format!("{}{}", admin_section(), root_route(""))).await;
    let body = json!({ "family": "f-1" });
    assert_eq!(
        admin_post(
            &env.gw,
            "/revocations/family",
            body.clone(),
            Some("wrong-secret-wrong-secret")
        )
        .await
        .0,
        401
    );
    let r = client()
        .post(env.gw.admin_url("/revocations/family"))
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        admin_post(&env.gw, "/revocations/family", json!({ "nope": 1 }), None)
            .await
            .0,
        400
    );
    assert_eq!(
        admin_post(&env.gw, "/revocations/family", body, None)
            .await
            .0,
        204
    );

    // Without [admin] token the write endpoints are off.
    let off = Env::start(&[k], "", &root_route("")).await;
    assert_eq!(
        admin_post(
            &off.gw,
            "/revocations/family",
            json!({ "family": "f" }),
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_family_refuses_every_member_and_subject_revocation_refuses_older_tokens() {
    let k = key(Algorithm::ES256);
    let env = Env::start(&[k], "", &format!("{}{}", admin_section(), root_route(""))).await;
    let a = sign(k, &with(claims(), json!({ "fid": "fam-1" })));
    let b = sign(k, &with(claims(), json!({ "fid": "fam-1" })));
    let other = sign(k, &with(claims(), json!({ "fid": "fam-2" })));
    for t in [&a, &b, &other] {
        assert_eq!(get_bearer(&env.gw.url("/a"), t).await.status, 200);
    }
    assert_eq!(
        admin_post(
            &env.gw,
            "/revocations/family",
            json!({ "family": "fam-1" }),
            None
        )
        .await
        .0,
        204
    );
    for t in [&a, &b] {
        assert_denied(
            &get_bearer(&env.gw.url("/a"), t).await,
            401,
            Some("invalid_token"),
            "family member",
        );
    }
    assert_eq!(
        get_bearer(&env.gw.url("/a"), &other).await.status,
        200,
        "another family passes"
    );

    // Logout everywhere: tokens of user-1 issued before now are refused, newer ones pass.
    let old = sign(k, &with(claims(), json!({ "iat": now() - 10 })));
    let (status, body) = admin_post(
        &env.gw,
        "/revocations/subject",
        json!({ "issuer": crate::support::ISS, "subject": "user-1" }),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &old).await,
        401,
        Some("invalid_token"),
        "older token",
    );
    let newer = sign(k, &with(claims(), json!({ "iat": now() + 2 })));
    assert_eq!(
        get_bearer(&env.gw.url("/a"), &newer).await.status,
        200,
        "a token issued after passes"
    );
    let m = env.gw.metrics().await;
    assert!(m.contains("reason=\"family_revoked\""), "{m}");
    assert!(m.contains("reason=\"subject_revoked\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_jti_are_refused_where_revocation_is_checked() {
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}{}",
        root_route(""),
        "\n[[route]]\nid = \"unchecked\"\npath_prefix = \"/open\"\nupstream = [\"{up}\"]\nrevocation = false\n"
    );
    let env = Env::start(&[k], "", &routes).await;
    let mut c = claims();
    c.as_object_mut().expect("object").remove("jti");
    let t = sign(k, &c);
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &t).await,
        401,
        Some("invalid_token"),
        "no jti",
    );
    assert_eq!(get_bearer(&env.gw.url("/open/x"), &t).await.status, 200);
    assert!(env.gw.metrics().await.contains("reason=\"missing_jti\""));
    // require_jti = false lets them through.
    let lenient = Env::start(&[k], "require_jti = false", &root_route("")).await;
    assert_eq!(get_bearer(&lenient.gw.url("/a"), &t).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_route_revokes_the_callers_token_and_family() {
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}\n[[route]]\nid = \"logout\"\nkind = \"logout\"\npath_prefix = \"/logout\"\nlogout_family = true\n",
        root_route("")
    );
    let env = Env::start(&[k], "", &routes).await;
    let t = sign(k, &with(claims(), json!({ "fid": "sess-9" })));
    let sibling = sign(k, &with(claims(), json!({ "fid": "sess-9" })));
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    let auth = format!("Bearer {t}");
    assert_eq!(
        request("GET", &env.gw.url("/logout"), &[("authorization", &auth)])
            .await
            .status,
        405
    );
    let r = request("POST", &env.gw.url("/logout"), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.header("x-request-id").is_some());
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &t).await,
        401,
        Some("invalid_token"),
        "after logout",
    );
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &sibling).await,
        401,
        Some("invalid_token"),
        "same session",
    );
    let r = request("POST", &env.gw.url("/logout"), &[]).await;
    assert_denied(&r, 401, None, "logout without a token");
    assert_eq!(env.upstream.count(), 1, "logout never reaches an upstream");
}

/// Two gateways sharing one Redis: a revocation through either one's admin API is refused
/// by both on the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_refuse_immediately() {
    let redis = Redis::start().await;
    let k = key(Algorithm::ES256);
    let jwks = JwksServer::start(&[k]).await;
    let up = Upstream::start().await;
    let body = format!(
        "{}{}{}{}",
        issuer_toml("main", &jwks.uri(), ""),
        redis_section(&redis),
        admin_section(),
        root_route("").replace("{up}", &up.addr().to_string())
    );
    let a = Gateway::start(&body, Options::default()).await;
    let b = Gateway::start(&body, Options::default()).await;
    a.wait_ready().await;
    b.wait_ready().await;
    let c1 = claims();
    let c2 = with(claims(), json!({ "fid": "shared-fam" }));
    let (t1, t2) = (sign(k, &c1), sign(k, &c2));
    for gw in [&a, &b] {
        assert_eq!(get_bearer(&gw.url("/x"), &t1).await.status, 200);
        assert_eq!(get_bearer(&gw.url("/x"), &t2).await.status, 200);
    }
    assert_eq!(
        admin_post(&a, "/revocations/token", json!({ "token": t1 }), None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin_post(
            &b,
            "/revocations/family",
            json!({ "family": "shared-fam" }),
            None
        )
        .await
        .0,
        204
    );
    for gw in [&a, &b] {
        assert_denied(
            &get_bearer(&gw.url("/x"), &t1).await,
            401,
            Some("invalid_token"),
            "jti revoked via a",
        );
        assert_denied(
            &get_bearer(&gw.url("/x"), &t2).await,
            401,
            Some("invalid_token"),
            "family revoked via b",
        );
    }
    // The keys carry TTLs (the token's remaining life; the family's default_ttl).
    let keys = redis.keys().await;
    assert!(
        keys.contains(&format!(
            "revoked:{}",
            c1["jti"].as_str().unwrap_or_default()
        )),
        "{keys}"
    );
    assert!(keys.contains("family:shared-fam"), "{keys}");
    let ttl = cmd(redis.addr(), "TTL family:shared-fam")
        .await
        .unwrap_or_default();
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap_or(-1);
    assert!(ttl > 0 && ttl <= 24 * 3600, "family ttl {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_cause_no_redis_commands() {
    let redis = Redis::start().await;
    let k = key(Algorithm::ES256);
    let env = Env::start(
        &[k],
        "",
        &format!("{}{}", redis_section(&redis), root_route("")),
    )
    .await;
    let valid = sign(k, &claims());
    assert_eq!(get_bearer(&env.gw.url("/a"), &valid).await.status, 200);
    let before = redis.calls("mget").await;
    assert!(before >= 1, "a valid token is checked with MGET");
    let stranger = crate::support::keys::fresh(Algorithm::ES256, "k-es256");
    let invalid = [
        sign(k, &with(claims(), json!({ "exp": now() - 3600 }))),
        sign(k, &with(claims(), json!({ "aud": "elsewhere" }))),
        sign(&stranger, &claims()),
        "not.a.jwt".to_string(),
    ];
    for t in &invalid {
        assert_eq!(get_bearer(&env.gw.url("/a"), t).await.status, 401, "{t}");
    }
    assert_eq!(
        redis.calls("mget").await,
        before,
        "invalid tokens reached Redis"
    );
    assert_eq!(redis.calls("get").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_denies_or_allows_per_route_and_recovers_without_restart() {
    let mut redis = Redis::start().await;
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}{}{}",
        redis_section(&redis),
        root_route(""),
        "\n[[route]]\nid = \"lenient\"\npath_prefix = \"/lenient\"\nupstream = [\"{up}\"]\non_store_error = \"allow\"\n"
    );
    let env = Env::start(&[k], "", &routes).await;
    let t = sign(k, &claims());
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    redis.kill();
    let r = get_bearer(&env.gw.url("/a"), &t).await;
    assert_refused(&r, 503, Some("temporarily_unavailable"), "store down, deny");
    let upstream_before = env.upstream.count();
    assert_eq!(
        get_bearer(&env.gw.url("/lenient/x"), &t).await.status,
        200,
        "store down, allow"
    );
    assert_eq!(env.upstream.count(), upstream_before + 1);
    let ready = request("GET", &env.gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("revocation store"), "{}", ready.body);
    // Redis comes back on the same port: the same gateway recovers by itself.
    redis.spawn().await;
    let url = env.gw.url("/a");
    wait_until("the gateway to use Redis again", || {
        let (url, t) = (url.clone(), t.clone());
        async move { (get_bearer(&url, &t).await.status == 200).then_some(()) }
    })
    .await;
    let m = env.gw.metrics().await;
    assert!(
        m.contains("tokengate_revocation_checks_total{result=\"error\"}"),
        "{m}"
    );
    assert!(m.contains("reason=\"store_unavailable\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_jti_values_are_revoked_under_bounded_keys() {
    let redis = Redis::start().await;
    let k = key(Algorithm::ES256);
    let env = Env::start(
        &[k],
        "",
        &format!(
            "{}{}{}",
            redis_section(&redis),
            admin_section(),
            root_route("")
        ),
    )
    .await;
    for jti in [
        "a".repeat(4096),
        "x\r\nFLUSHALL\r\n".to_string(),
        "*".to_string(),
        "spa ce".to_string(),
    ] {
        let t = sign(k, &with(claims(), json!({ "jti": jti })));
        assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
        let (status, body) =
            admin_post(&env.gw, "/revocations/token", json!({ "token": t }), None).await;
        assert_eq!(status, 204, "{body}");
        assert_denied(
            &get_bearer(&env.gw.url("/a"), &t).await,
            401,
            Some("invalid_token"),
            "hostile jti",
        );
    }
    let keys = redis.keys().await;
    assert_eq!(
        keys.matches("revoked:sha256:").count(),
        4,
        "every hostile id is hashed: {keys}"
    );
    assert!(!keys.contains("revoked:*"), "{keys}");
    assert!(keys.lines().all(|l| l.len() <= 200), "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revoke_writes_to_the_shared_store() {
    let redis = Redis::start().await;
    let k = key(Algorithm::ES256);
    let env = Env::start(
        &[k],
        "",
        &format!("{}{}", redis_section(&redis), root_route("")),
    )
    .await;
    let c = with(claims(), json!({ "fid": "cli-fam" }));
    let t = sign(k, &c);
    let t2 = sign(k, &claims());
    assert_eq!(get_bearer(&env.gw.url("/a"), &t).await.status, 200);
    let config: PathBuf = env.gw.config_path();
    let run = |args: Vec<String>| {
        let out = Command::new(crate::support::gateway::bin())
            .arg("revoke")
            .arg("--config")
            .arg(&config)
            .args(&args)
            .output()
            .expect("run tokengate revoke");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(vec!["--family".into(), "cli-fam".into()]);
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &t).await,
        401,
        Some("invalid_token"),
        "family via CLI",
    );
    run(vec![
        "--jti".into(),
        c2_jti(&t2),
        "--exp".into(),
        (now() + 300).to_string(),
    ]);
    assert_denied(
        &get_bearer(&env.gw.url("/a"), &t2).await,
        401,
        Some("invalid_token"),
        "jti via CLI",
    );
}

/// The `jti` claim of a token (payload decoded without verification).
fn c2_jti(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["jti"].as_str().unwrap_or_default().to_string()
}
