//! RFC 8693 exchange end to end: the backend receives a token minted for it alone, checked
//! here with an independent verifier (jsonwebtoken) against the JWKS the gateway publishes;
//! the user's token never arrives; tokens are cached per (subject, audience, scope).

use std::process::Command;

use filters::Algorithm;
use serde_json::{json, Value};

use crate::support::http::{get, get_bearer};
use crate::support::keys::now;
use crate::support::{claims, key, sign, with, Env};

const SIGNER_ISS: &str = "https://tokengate.internal";

/// Writes signing keys with `tokengate keygen` (which refuses to overwrite) and returns the
/// `[signer]` section with `active` as the active key.
fn signer_section(dir: &std::path::Path, kids: &[&str], active: &str) -> String {
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

fn exchange_route(id: &str, prefix: &str, audience: &str) -> String {
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

fn bearer_of(seen: &crate::support::upstream::Seen) -> String {
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
