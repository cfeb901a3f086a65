use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

use serde_json::json;

use super::*;
use crate::jwks::{JwksConfig, JwksSource};
use crate::sign::{jwks_document, SigningKey};

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "tokengate-validate-{}-{tag}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn policy(id: &str, iss: &str) -> IssuerPolicy {
    IssuerPolicy {
        id: id.into(),
        issuer: iss.into(),
        audiences: vec![AUD.into(), "other-api".into()],
        algorithms: vec![
            Algorithm::ES256,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ],
        leeway: Duration::from_secs(30),
        accepted_types: vec!["at+jwt".into(), "JWT".into()],
        allow_missing_typ: true,
    }
}

async fn issuer_with(policy: IssuerPolicy, keys: &[&SigningKey]) -> (Arc<Issuer>, PathBuf) {
    let path = temp_path(&policy.id);
    std::fs::write(&path, jwks_document(keys.iter().copied()).to_string()).unwrap();
    let mut config = JwksConfig::new(
        policy.issuer.clone(),
        JwksSource::File(path.clone()),
        policy.algorithms.clone(),
    );
    config.refetch_cooldown = Duration::from_secs(300);
    let jwks = JwksCache::new(config).unwrap();
    jwks.refresh().await.unwrap();
    (Arc::new(Issuer { policy, jwks }), path)
}

struct Fixture {
    key: SigningKey,
    validator: Validator,
    issuer: Arc<Issuer>,
    path: PathBuf,
}

async fn fixture(alg: Algorithm) -> Fixture {
    let key = SigningKey::generate(alg, "k1").unwrap();
    let (issuer, path) = issuer_with(policy("corp", ISS), &[&key]).await;
    let validator = Validator::new(vec![issuer.clone()], TokenCacheConfig::default(), 8192);
    Fixture {
        key,
        validator,
        issuer,
        path,
    }
}

fn claims() -> Value {
    let now = unix_now();
    json!({ "iss": ISS, "sub": "alice", "aud": AUD, "iat": now, "exp": now + 600, "jti": "j1",
            "scope": "orders:read orders:write", "azp": "web", "tenant": "acme" })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

impl Fixture {
    fn token(&self, c: &Value) -> String {
        self.key.sign_jwt(Some("at+jwt"), c).unwrap()
    }
    async fn check(&self, c: &Value) -> Result<Arc<VerifiedToken>, AuthError> {
        self.validator.validate(&self.token(c)).await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test]
async fn valid_token_is_accepted_with_its_claims() {
    let f = fixture(Algorithm::ES256).await;
    let t = f.check(&claims()).await.unwrap();
    assert_eq!(t.sub.as_deref(), Some("alice"));
    assert_eq!(&*t.issuer_id, "corp");
    assert_eq!(t.scopes, vec!["orders:read", "orders:write"]);
    assert_eq!(t.client.as_deref(), Some("web"));
    assert_eq!(t.jti.as_deref(), Some("j1"));
    assert_eq!(t.claims["tenant"], "acme");
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    for alg in [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let f = fixture(alg).await;
        assert!(f.check(&claims()).await.is_ok(), "{alg}");
    }
}

#[tokio::test]
async fn expired_token_is_rejected_beyond_the_leeway_only() {
    let f = fixture(Algorithm::ES256).await;
    let now = unix_now();
    assert!(f
        .check(&with(claims(), "exp", json!(now - 10)))
        .await
        .is_ok());
    assert_eq!(
        f.check(&with(claims(), "exp", json!(now - 31)))
            .await
            .unwrap_err(),
        AuthError::Expired
    );
}

#[tokio::test]
async fn not_yet_valid_and_future_iat_are_rejected() {
    let f = fixture(Algorithm::ES256).await;
    let now = unix_now();
    assert!(f
        .check(&with(claims(), "nbf", json!(now + 20)))
        .await
        .is_ok());
    assert_eq!(
        f.check(&with(claims(), "nbf", json!(now + 120)))
            .await
            .unwrap_err(),
        AuthError::NotYetValid
    );
    assert_eq!(
        f.check(&with(claims(), "iat", json!(now + 120)))
            .await
            .unwrap_err(),
        AuthError::IssuedInFuture
    );
}

#[tokio::test]
async fn dates_must_be_numbers() {
    let f = fixture(Algorithm::ES256).await;
    let now = unix_now();
    for bad in [
        json!((now + 600).to_string()),
        json!(null),
        json!(true),
        json!([now + 600]),
    ] {
        assert!(
            matches!(
                f.check(&with(claims(), "exp", bad.clone())).await,
                Err(AuthError::InvalidClaim(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                f.check(&with(claims(), "nbf", bad.clone())).await,
                Err(AuthError::InvalidClaim(_))
            ),
            "{bad}"
        );
    }
    assert!(f
        .check(&with(claims(), "exp", json!(now as f64 + 600.5)))
        .await
        .is_ok());
    assert_eq!(
        f.check(&with(claims(), "exp", json!(-1)))
            .await
            .unwrap_err(),
        AuthError::Expired
    );
}

#[tokio::test]
async fn exp_is_required() {
    let f = fixture(Algorithm::ES256).await;
    assert!(matches!(
        f.check(&without(claims(), "exp")).await,
        Err(AuthError::InvalidClaim(_))
    ));
}

#[tokio::test]
async fn audience_must_intersect_the_configured_ones() {
    let f = fixture(Algorithm::ES256).await;
    assert!(f
        .check(&with(claims(), "aud", json!(["x", AUD])))
        .await
        .is_ok());
    for bad in [json!("x"), json!([]), json!(["x", "y"])] {
        assert_eq!(
            f.check(&with(claims(), "aud", bad)).await.unwrap_err(),
            AuthError::AudienceMismatch
        );
    }
    assert_eq!(
        f.check(&without(claims(), "aud")).await.unwrap_err(),
        AuthError::AudienceMismatch
    );
    assert!(matches!(
        f.check(&with(claims(), "aud", json!([1]))).await,
        Err(AuthError::InvalidClaim(_))
    ));
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let f = fixture(Algorithm::ES256).await;
    for near in ["https://idp.test/", "HTTPS://IDP.TEST", "https://idp.tes"] {
        assert_eq!(
            f.check(&with(claims(), "iss", json!(near)))
                .await
                .unwrap_err(),
            AuthError::UnknownIssuer,
            "{near}"
        );
    }
    assert!(matches!(
        f.check(&with(claims(), "iss", json!([ISS]))).await,
        Err(AuthError::InvalidClaim(_))
    ));
    assert!(matches!(
        f.check(&without(claims(), "iss")).await,
        Err(AuthError::InvalidClaim(_))
    ));
}

#[tokio::test]
async fn tampered_payload_fails_the_signature() {
    let f = fixture(Algorithm::ES256).await;
    let token = f.token(&claims());
    let forged = f.token(&with(claims(), "sub", json!("mallory")));
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged.split('.').nth(1).unwrap();
    assert_eq!(
        f.validator.validate(&parts.join(".")).await.unwrap_err(),
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let f = fixture(Algorithm::ES256).await;
    let stranger = SigningKey::generate(Algorithm::ES256, "k2").unwrap();
    let t = stranger.sign_jwt(Some("at+jwt"), &claims()).unwrap();
    assert_eq!(
        f.validator.validate(&t).await.unwrap_err(),
        AuthError::UnknownKeyId
    );
}

#[tokio::test]
async fn key_of_another_issuer_with_the_same_kid_is_not_used() {
    // Two issuers, each with a key named "k1": a token naming issuer B but signed with
    // A's key must fail, because keys are bound to their issuer.
    let a = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let b = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let (ia, pa) = issuer_with(policy("a", "https://a.test"), &[&a]).await;
    let (ib, pb) = issuer_with(policy("b", "https://b.test"), &[&b]).await;
    let v = Validator::new(vec![ia, ib], TokenCacheConfig::default(), 8192);
    let forged = a
        .sign_jwt(
            Some("at+jwt"),
            &with(claims(), "iss", json!("https://b.test")),
        )
        .unwrap();
    assert_eq!(
        v.validate(&forged).await.unwrap_err(),
        AuthError::BadSignature
    );
    let genuine = b
        .sign_jwt(
            Some("at+jwt"),
            &with(claims(), "iss", json!("https://b.test")),
        )
        .unwrap();
    assert_eq!(&*v.validate(&genuine).await.unwrap().issuer_id, "b");
    let _ = (std::fs::remove_file(pa), std::fs::remove_file(pb));
}

#[tokio::test]
async fn algorithm_outside_the_issuer_allow_list_is_rejected() {
    let es = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let key = SigningKey::generate(Algorithm::RS256, "k1").unwrap();
    let mut p = policy("corp", ISS);
    p.algorithms = vec![Algorithm::ES256];
    let (issuer, path) = issuer_with(p, &[&es]).await;
    let v = Validator::new(vec![issuer], TokenCacheConfig::default(), 8192);
    let t = key.sign_jwt(Some("at+jwt"), &claims()).unwrap();
    assert_eq!(
        v.validate(&t).await.unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn typ_policy_accepts_access_token_types_only() {
    let f = fixture(Algorithm::ES256).await;
    for ok in [
        Some("at+jwt"),
        Some("JWT"),
        Some("application/at+JWT"),
        None,
    ] {
        let t = f.key.sign_jwt(ok, &claims()).unwrap();
        assert!(f.validator.validate(&t).await.is_ok(), "{ok:?}");
    }
    for bad in ["dpop+jwt", "id_token+jwt", "JOSE"] {
        let t = f.key.sign_jwt(Some(bad), &claims()).unwrap();
        assert_eq!(
            f.validator.validate(&t).await.unwrap_err(),
            AuthError::WrongTokenType,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn missing_typ_is_refused_when_configured() {
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let mut p = policy("corp", ISS);
    p.allow_missing_typ = false;
    let (issuer, path) = issuer_with(p, &[&key]).await;
    let v = Validator::new(vec![issuer], TokenCacheConfig::default(), 8192);
    let t = key.sign_jwt(None, &claims()).unwrap();
    assert_eq!(v.validate(&t).await.unwrap_err(), AuthError::WrongTokenType);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    let f = fixture(Algorithm::ES256).await;
    for (k, v) in [
        ("sub", json!(1)),
        ("jti", json!({})),
        ("scope", json!(1)),
        ("azp", json!([])),
    ] {
        assert!(
            matches!(
                f.check(&with(claims(), k, v)).await,
                Err(AuthError::InvalidClaim(_))
            ),
            "{k}"
        );
    }
    let t = f
        .check(&with(without(claims(), "scope"), "scp", json!(["a", "b"])))
        .await
        .unwrap();
    assert_eq!(t.scopes, vec!["a", "b"]);
}

#[tokio::test]
async fn oversized_token_is_refused_before_parsing() {
    let f = fixture(Algorithm::ES256).await;
    let big = "a".repeat(8193);
    assert_eq!(
        f.validator.validate(&big).await.unwrap_err(),
        AuthError::TokenTooLarge
    );
}

#[tokio::test]
async fn repeated_token_is_served_from_the_cache() {
    let f = fixture(Algorithm::ES256).await;
    let t = f.token(&claims());
    let first = f.validator.validate(&t).await.unwrap();
    let second = f.validator.validate(&t).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(f.validator.cache_stats(), (1, 1));
}

#[tokio::test]
async fn key_rotation_invalidates_cached_tokens() {
    let f = fixture(Algorithm::ES256).await;
    let t = f.token(&claims());
    f.validator.validate(&t).await.unwrap();
    // The issuer drops k1: the cached verification must not outlive the key.
    let k2 = SigningKey::generate(Algorithm::ES256, "k2").unwrap();
    std::fs::write(&f.path, jwks_document([&k2]).to_string()).unwrap();
    f.issuer.jwks.refresh().await.unwrap();
    assert_eq!(
        f.validator.validate(&t).await.unwrap_err(),
        AuthError::UnknownKeyId
    );
}

#[tokio::test]
async fn disabled_cache_verifies_every_time() {
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let (issuer, path) = issuer_with(policy("corp", ISS), &[&key]).await;
    let v = Validator::new(
        vec![issuer],
        TokenCacheConfig {
            max_entries: 0,
            ..Default::default()
        },
        8192,
    );
    let t = key.sign_jwt(Some("at+jwt"), &claims()).unwrap();
    v.validate(&t).await.unwrap();
    v.validate(&t).await.unwrap();
    assert_eq!(v.cache_stats(), (0, 0));
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn token_cache_holds_at_most_max_entries() {
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let (issuer, path) = issuer_with(policy("corp", ISS), &[&key]).await;
    let v = Validator::new(
        vec![issuer],
        TokenCacheConfig {
            max_entries: 3,
            ..Default::default()
        },
        8192,
    );
    let token = |i: usize| {
        key.sign_jwt(
            Some("at+jwt"),
            &with(claims(), "jti", json!(format!("j{i}"))),
        )
        .unwrap()
    };
    // Exactly at the limit: every token is kept, and the next look-ups are hits.
    let first: Vec<String> = (0..3).map(token).collect();
    for t in &first {
        v.validate(t).await.unwrap();
    }
    assert_eq!(v.cache_entries(), 3);
    for t in &first {
        v.validate(t).await.unwrap();
    }
    assert_eq!(v.cache_stats(), (3, 3));
    // Far beyond it: still valid, never more than three held.
    for i in 3..200 {
        v.validate(&token(i)).await.unwrap();
        assert!(v.cache_entries() <= 3, "after {i} tokens");
    }
    let _ = std::fs::remove_file(path);
}

fn verified(c: Value) -> VerifiedToken {
    let claims = c.as_object().unwrap().clone();
    VerifiedToken {
        issuer_id: "corp".into(),
        iss: ISS.into(),
        sub: Some("alice".into()),
        exp: unix_now() + 60,
        iat: None,
        jti: None,
        scopes: vec!["orders:read".into()],
        client: None,
        claims,
    }
}

#[test]
fn route_policy_checks_issuer_scopes_and_claims() {
    let t = verified(json!({ "tenant": "acme", "groups": ["admin", "dev"] }));
    assert!(RoutePolicy::new(vec![], vec![], vec![]).check(&t).is_ok());
    assert_eq!(
        RoutePolicy::new(vec!["other".into()], vec![], vec![])
            .check(&t)
            .unwrap_err(),
        AuthError::WrongIssuer
    );
    let scoped = RoutePolicy::new(
        vec!["corp".into()],
        vec!["orders:read".into(), "orders:write".into()],
        vec![],
    );
    let e = scoped.check(&t).unwrap_err();
    assert_eq!(e.required_scope(), Some("orders:read orders:write"));
    let tenant = |v: Value| RoutePolicy::new(vec![], vec![], vec![("tenant".into(), v)]);
    assert!(tenant(json!("acme")).check(&t).is_ok());
    assert!(matches!(
        tenant(json!("evil")).check(&t),
        Err(AuthError::ClaimMismatch { .. })
    ));
    let group = RoutePolicy::new(vec![], vec![], vec![("groups".into(), json!("admin"))]);
    assert!(group.check(&t).is_ok());
    let missing = RoutePolicy::new(vec![], vec![], vec![("region".into(), json!("eu"))]);
    assert!(missing.check(&t).is_err());
}

#[tokio::test]
async fn claim_count_and_depth_limits_are_exact() {
    let mut f = fixture(Algorithm::ES256).await;
    let issuer = f.issuer.clone();
    f.validator =
        Validator::new(vec![issuer], TokenCacheConfig::default(), 8192).with_claim_limits(12, 3);
    // `claims()` has 9 members: pad to exactly 12, then 13.
    let mut at = claims();
    for i in 0..3 {
        at[format!("x{i}")] = json!(1);
    }
    assert!(f.check(&at).await.is_ok());
    let mut over = at.clone();
    over["x3"] = json!(1);
    assert_eq!(
        f.check(&over).await.unwrap_err(),
        AuthError::Malformed("the token has more claims than allowed")
    );
    // Depth: the payload object is 1, `{"a": [[1]]}` is 3.
    let deep = with(claims(), "nested", json!([[1]]));
    assert!(f.check(&deep).await.is_ok());
    let deeper = with(claims(), "nested", json!([[[1]]]));
    assert!(matches!(
        f.check(&deeper).await,
        Err(AuthError::Malformed(_))
    ));
}
