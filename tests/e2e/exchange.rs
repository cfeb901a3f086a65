//! RFC 8693 exchange end to end: the backend receives a token minted for it alone, checked
//! here with an independent verifier (jsonwebtoken) against the JWKS the gateway publishes;
//! the user's token never arrives; tokens are cached per (subject, audience, scope).

use std::process::Command;

use filters::Algorithm;
use serde_json::{json, Value};

use crate::support::http::{get, get_bearer};
use crate::support::keys::now;
use crate::support::{claims, key, sign, with, Env};

pub(crate) const SIGNER_ISS: &str = "https://tokengate.internal";

/// Writes signing keys with `tokengate keygen` (which refuses to overwrite) and returns the
/// `[signer]` section with `active` as the active key.
pub(crate) fn signer_section(dir: &std::path::Path, kids: &[&str], active: &str) -> String {
    let mut keys = Vec::new();
    for kid in kids {
        let path = dir.join(format!("{kid}.pem"));
        if !path.exists() {
            let out = Command::new(crate::support::gateway::bin())
                .args(["keygen", "--alg", "ES256", "--kid", kid, "--out"])
                .arg(&path)
                .output()
                .expect("run tokengate keygen");
            assert!(
                out.status.success(),
                "keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let again = Command::new(crate::support::gateway::bin())
                .args(["keygen", "--kid", kid, "--out"])
                .arg(&path)
                .output()
                .expect("run tokengate keygen");
            assert!(!again.status.success(), "keygen must never overwrite a key");
        }
        keys.push(format!(
            "{{ kid = \"{kid}\", file = \"{}\" }}",
            path.display()
        ));
    }
    format!(
        "\n[signer]\nissuer = \"{SIGNER_ISS}\"\nactive = \"{active}\"\nkeys = [{}]\npublic_jwks_path = \"/.well-known/jwks.json\"\n",
        keys.join(", ")
    )
}

pub(crate) fn exchange_route(id: &str, prefix: &str, audience: &str) -> String {
    format!(
        "\n[[route]]\nid = \"{id}\"\npath_prefix = \"{prefix}\"\nupstream = [\"{{up}}\"]\nforward_token = \"exchange\"\n\
         [route.exchange]\naudience = \"{audience}\"\nscopes = [\"orders:read\", \"admin\"]\nttl = \"60s\"\nclaims = [\"tenant\"]\n"
    )
}

/// Verifies `token` with jsonwebtoken against the gateway's published JWKS.
fn verify(token: &str, jwks: &Value, audience: &str) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let jwk = set.find(&kid).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[audience]);
    v.set_issuer(&[SIGNER_ISS]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("the backend token verifies")
        .claims
}

pub(crate) fn bearer_of(seen: &crate::support::upstream::Seen) -> String {
    let auth = seen
        .header("authorization")
        .expect("the backend gets an Authorization header");
    auth.strip_prefix("Bearer ")
        .expect("a bearer token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_receives_an_audience_restricted_token_and_never_the_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}{}{}",
        signer_section(dir.path(), &["k1"], "k1"),
        exchange_route("orders", "/orders", "https://orders.internal"),
        exchange_route("billing", "/billing", "https://billing.internal"),
    );
    let env = Env::start(&[k], "", &routes).await;
    let subject_exp = now() + 30;
    let c = with(
        claims(),
        json!({ "exp": subject_exp, "tenant": "acme", "act": { "sub": "bff" } }),
    );
    let user = sign(k, &c);
    let r = get_bearer(&env.gw.url("/orders/1"), &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert!(
        !seen.mentions(&user),
        "the user's token reached the backend"
    );
    let issued = bearer_of(&seen);
    let jwks = get(&env.gw.admin_url("/.well-known/jwks.json"), &[])
        .await
        .json();
    let public = get(&env.gw.url("/.well-known/jwks.json"), &[]).await.json();
    assert_eq!(jwks, public, "the same JWKS on both listeners");
    let t = verify(&issued, &jwks, "https://orders.internal");
    assert_eq!(t["sub"], "user-1");
    assert_eq!(
        t["scope"], "orders:read",
        "scope narrowed to token ∩ route, never wider"
    );
    assert!(
        t["exp"].as_i64().expect("exp") <= subject_exp,
        "never outlives the subject token"
    );
    assert_eq!(t["tenant"], "acme");
    assert_eq!(t["act"]["sub"], SIGNER_ISS);
    assert_eq!(
        t["act"]["act"]["sub"], "bff",
        "the incoming act is kept nested"
    );
    assert_eq!(t["subject_token_jti"], c["jti"]);
    assert_ne!(t["jti"], c["jti"]);
    // The token for another backend is another token, for that audience only.
    assert_eq!(
        get_bearer(&env.gw.url("/billing/1"), &user).await.status,
        200
    );
    let other = bearer_of(&env.upstream.last());
    assert_ne!(other, issued);
    verify(&other, &jwks, "https://billing.internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_share_one_minted_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}{}",
        signer_section(dir.path(), &["k1"], "k1"),
        exchange_route("orders", "/orders", "https://orders.internal")
    );
    let env = Env::start(&[k], "", &routes).await;
    let user = sign(k, &claims());
    let mut tokens = std::collections::HashSet::new();
    for i in 0..10 {
        assert_eq!(
            get_bearer(&env.gw.url(&format!("/orders/{i}")), &user)
                .await
                .status,
            200
        );
        tokens.insert(bearer_of(&env.upstream.last()));
    }
    assert_eq!(tokens.len(), 1, "one user token, one backend token");
    let m = env.gw.metrics().await;
    let miss = crate::support::gateway::sample(
        &m,
        "tokengate_exchange_cache_total",
        &[("exchanger", "local"), ("result", "miss")],
    );
    let hit = crate::support::gateway::sample(
        &m,
        "tokengate_exchange_cache_total",
        &[("exchanger", "local"), ("result", "hit")],
    );
    assert_eq!((miss, hit), (Some(1.0), Some(9.0)), "{m}");
    assert_eq!(
        crate::support::gateway::sample(
            &m,
            "tokengate_exchanges_total",
            &[("route", "orders"), ("result", "ok")]
        ),
        Some(10.0)
    );
    // A second user gets a token of their own.
    assert_eq!(
        get_bearer(&env.gw.url("/orders/x"), &sign(k, &claims()))
            .await
            .status,
        200
    );
    assert!(!tokens.contains(&bearer_of(&env.upstream.last())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signer_keeps_publishing_the_old_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(Algorithm::ES256);
    let routes = format!(
        "{}{}",
        signer_section(dir.path(), &["k1", "k2"], "k2"),
        exchange_route("orders", "/orders", "https://orders.internal")
    );
    let env = Env::start(&[k], "", &routes).await;
    assert_eq!(
        get_bearer(&env.gw.url("/orders/1"), &sign(k, &claims()))
            .await
            .status,
        200
    );
    let issued = bearer_of(&env.upstream.last());
    assert_eq!(
        jsonwebtoken::decode_header(&issued)
            .expect("header")
            .kid
            .as_deref(),
        Some("k2")
    );
    let jwks = get(&env.gw.admin_url("/.well-known/jwks.json"), &[])
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(
        kids,
        ["k1", "k2"],
        "tokens signed with k1 before the rotation still verify"
    );
    for k in jwks["keys"].as_array().expect("keys") {
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "ES256");
        assert!(k.get("d").is_none(), "no private member is published");
    }
}

const STS_SECRET_ENV: &str = "TOKENGATE_E2E_STS_SECRET";
const STS_SECRET: &str = "sts-client-secret-0123456789";

/// A gateway acting as an STS for client `svc` (audience `https://billing.internal`,
/// scopes `billing:read orders:read`).
async fn start_sts(dir: &std::path::Path, k: &filters::sign::SigningKey) -> Env {
    std::env::set_var(STS_SECRET_ENV, STS_SECRET);
    let sts = format!(
        "{}\n[sts]\nttl = \"2m\"\n[[sts.client]]\nid = \"svc\"\nsecret = \"${{{STS_SECRET_ENV}}}\"\naudiences = [\"https://billing.internal\"]\nscopes = [\"billing:read\", \"orders:read\"]\n\
         [[sts.client]]\nid = \"no-rights\"\nsecret = \"${{{STS_SECRET_ENV}}}\"\n{}",
        signer_section(dir, &["sts-k1"], "sts-k1"),
        crate::support::root_route("")
    );
    Env::start(&[k], "", &sts).await
}

async fn post_form(
    url: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, Option<String>) {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = crate::support::http::client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            urlencode(id),
            urlencode(secret)
        ));
        req = req.header("authorization", format!("Basic {creds}"));
    }
    let r = req.send().await.expect("STS request");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let v = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    (status, v, challenge)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_endpoint_issues_tokens_and_answers_every_error_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(Algorithm::ES256);
    let env = start_sts(dir.path(), k).await;
    let url = env.gw.url("/oauth2/token");
    let user = sign(k, &claims());
    let good = |aud: &'static str, scope: &'static str| {
        vec![
            ("grant_type", GRANT),
            ("subject_token_type", ACCESS),
            ("audience", aud),
            ("scope", scope),
        ]
    };
    let with_token = |mut p: Vec<(&'static str, &'static str)>, t: &'static str| {
        p.push(("subject_token", t));
        p
    };
    let user_static: &'static str = Box::leak(user.clone().into_boxed_str());
    let bound: &'static str = Box::leak(
        sign(
            k,
            &crate::support::with(claims(), serde_json::json!({"cnf": {"jkt": "abc"}})),
        )
        .into_boxed_str(),
    );
    let (status, v, _) = post_form(
        &url,
        &with_token(good("https://billing.internal", "orders:read"), user_static),
        Some(("svc", STS_SECRET)),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["issued_token_type"], ACCESS);
    assert!(
        v["expires_in"].as_i64().is_some_and(|e| e > 0 && e <= 120),
        "{v}"
    );
    assert_eq!(v["scope"], "orders:read");
    let jwks = get(&env.gw.admin_url("/.well-known/jwks.json"), &[])
        .await
        .json();
    let t = verify(
        v["access_token"].as_str().expect("access_token"),
        &jwks,
        "https://billing.internal",
    );
    assert_eq!(t["act"]["sub"], "svc", "the requesting client is the actor");
    assert_eq!(t["sub"], "user-1");

    /// (what, form, Basic credentials, status, error code)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "bad secret",
            with_token(good("https://billing.internal", ""), user_static),
            Some(("svc", "wrong")),
            401,
            "invalid_client",
        ),
        (
            "no client auth",
            with_token(good("https://billing.internal", ""), user_static),
            None,
            401,
            "invalid_client",
        ),
        (
            "audience not allowed",
            with_token(good("https://payroll.internal", ""), user_static),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_target",
        ),
        (
            "scope widening",
            with_token(
                good("https://billing.internal", "orders:write"),
                user_static,
            ),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_scope",
        ),
        (
            "beyond the subject's scopes",
            with_token(
                good("https://billing.internal", "billing:read"),
                user_static,
            ),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_scope",
        ),
        (
            "no subject token",
            good("https://billing.internal", ""),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_request",
        ),
        (
            "invalid subject token",
            with_token(good("https://billing.internal", ""), "a.b.c"),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_request",
        ),
        (
            "sender-constrained subject token",
            with_token(good("https://billing.internal", ""), bound),
            Some(("svc", STS_SECRET)),
            400,
            "invalid_grant",
        ),
        (
            "client without rights",
            with_token(good("https://billing.internal", ""), user_static),
            Some(("no-rights", STS_SECRET)),
            400,
            "unauthorized_client",
        ),
        (
            "other grant",
            vec![("grant_type", "client_credentials")],
            Some(("svc", STS_SECRET)),
            400,
            "unsupported_grant_type",
        ),
    ];
    for (what, form, auth, status, code) in cases {
        let (s, v, challenge) = post_form(&url, &form, auth).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{what}: {v}"
        );
        assert!(v["error_description"].is_string(), "{what}");
        if status == 401 {
            assert!(
                challenge.is_some_and(|c| c.starts_with("Basic")),
                "{what}: 401 needs a challenge"
            );
        }
        assert!(
            !v.to_string().contains(&user),
            "{what}: the answer reflects the token"
        );
    }
    let r = get(&url, &[]).await;
    assert_eq!(r.status, 405);
}

/// The remote-STS client against a real peer: gateway A exchanges through gateway B's STS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_exchanger_obtains_backend_tokens_from_another_tokengate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(Algorithm::ES256);
    let sts = start_sts(dir.path(), k).await;
    let routes = format!(
        "\n[[exchanger]]\nid = \"sts\"\nkind = \"remote\"\ntoken_endpoint = \"{}\"\nclient_id = \"svc\"\nclient_secret = \"${{{STS_SECRET_ENV}}}\"\nauth = \"client_secret_post\"\n\
         \n[[route]]\nid = \"billing\"\npath_prefix = \"/billing\"\nupstream = [\"{{up}}\"]\nforward_token = \"exchange\"\n[route.exchange]\nexchanger = \"sts\"\naudience = \"https://billing.internal\"\nscopes = [\"orders:read\"]\n",
        sts.gw.url("/oauth2/token")
    );
    let env = Env::start(&[k], "", &routes).await;
    let user = sign(k, &claims());
    for i in 0..5 {
        let r = get_bearer(&env.gw.url(&format!("/billing/{i}")), &user).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let seen = env.upstream.last();
    assert!(
        !seen.mentions(&user),
        "the user's token reached the backend"
    );
    let jwks = get(&sts.gw.admin_url("/.well-known/jwks.json"), &[])
        .await
        .json();
    let t = verify(&bearer_of(&seen), &jwks, "https://billing.internal");
    assert_eq!(t["scope"], "orders:read");
    assert_eq!(t["act"]["sub"], "svc");
    let issued = crate::support::gateway::sample(
        &sts.gw.metrics().await,
        "tokengate_exchanges_total",
        &[("route", "_sts"), ("result", "ok")],
    );
    assert_eq!(issued, Some(1.0), "five requests, one STS call");
    // An audience the STS refuses maps to 403 at the gateway, without the STS body.
    let refused = format!(
        "{}\n[[route]]\nid = \"payroll\"\npath_prefix = \"/payroll\"\nupstream = [\"{{up}}\"]\nforward_token = \"exchange\"\n[route.exchange]\nexchanger = \"sts\"\naudience = \"https://payroll.internal\"\n",
        routes.split("\n[[route]]").next().unwrap_or_default()
    );
    let env2 = Env::start(&[k], "", &refused).await;
    let r = get_bearer(&env2.gw.url("/payroll/1"), &sign(k, &claims())).await;
    crate::support::assert_denied(
        &r,
        403,
        Some("insufficient_scope"),
        "STS refused the audience",
    );
    assert_eq!(env2.upstream.count(), 0);
}
