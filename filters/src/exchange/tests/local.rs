//! `LocalSigner`: minted tokens verified by `jsonwebtoken`, claims, rotation.

use std::collections::HashSet;

use super::*;

#[tokio::test]
async fn minted_token_verifies_independently_with_narrowed_claims() {
    let signer = signer(vec![es256("k1")], "k1");
    let mut ask = Ask::new(alice());
    ask.allowed = strings(&["orders:write", "orders:read", "orders:delete"]);
    let before = unix_now();
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (header, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");

    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some("k1"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["iss"], GATEWAY_ISS);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(
        claims["scope"], "orders:write orders:read",
        "∩, allowed order"
    );
    assert_eq!(&*issued.scope, "orders:write orders:read");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["azp"], "web");
    assert_eq!(claims[SUBJECT_TOKEN_JTI_CLAIM], "subject-jti-1");
    assert_eq!(claims["act"], json!({ "sub": GATEWAY_ISS }));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(iat >= before && iat <= unix_now());
    assert!(exp <= unix_now() + 300, "exp ≤ now + ttl");
    assert!(exp <= ask.subject.exp, "exp ≤ subject exp");
    assert_eq!(issued.expires_at, exp);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 22, "128 random bits, base64url");
    assert!(
        !claims.contains_key("tenant"),
        "nothing carried unless asked"
    );
}

#[tokio::test]
async fn scope_claim_is_omitted_when_nothing_is_allowed() {
    let signer = signer(vec![es256("k1")], "k1");
    let mut ask = Ask::new(alice());
    ask.allowed = Vec::new();
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert!(!claims.contains_key("scope"));
    assert_eq!(&*issued.scope, "");
}

#[tokio::test]
async fn scope_is_never_wider_than_the_subjects() {
    let signer = signer(vec![es256("k1")], "k1");
    let mut ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": unix_now() + 600, "scope": "orders:read" }),
    ));
    ask.allowed = strings(&["orders:read", "orders:write", "admin"]);
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(claims["scope"], "orders:read");
}

#[tokio::test]
async fn exp_is_capped_by_the_subjects_exp() {
    let signer = signer(vec![es256("k1")], "k1");
    let subject_exp = unix_now() + 60;
    let mut ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": subject_exp, "jti": "j" }),
    ));
    ask.ttl = Duration::from_secs(3600);
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(claims["exp"], subject_exp);
    assert_eq!(issued.expires_at, subject_exp);
}

#[tokio::test]
async fn act_names_the_actor_and_nests_the_subjects_act() {
    let signer = signer(vec![es256("k1")], "k1").with_actor("gateway-client");
    let mut claims = alice().claims;
    claims.insert(
        "act".into(),
        json!({ "sub": "svc-a", "act": { "sub": "svc-b" } }),
    );
    let ask = Ask::new(subject(Value::Object(claims)));
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(
        claims["act"],
        json!({ "sub": "gateway-client", "act": { "sub": "svc-a", "act": { "sub": "svc-b" } } })
    );
}

#[tokio::test]
async fn carried_claims_are_copied_and_reserved_ones_skipped() {
    let signer = signer(vec![es256("k1")], "k1");
    let mut claims = alice().claims;
    claims.insert("roles".into(), json!(["reader"]));
    claims.insert("scp".into(), json!(["admin", "root"]));
    claims.insert("cnf".into(), json!({ "jkt": "thumb" }));
    claims.insert("nbf".into(), json!(1));
    let mut ask = Ask::new(subject(Value::Object(claims)));
    ask.carry = strings(&[
        "tenant", "roles", "missing", "iss", "aud", "exp", "iat", "nbf", "jti", "cnf", "act",
        "scope", "scp", "sub",
    ]);
    let issued = signer.exchange(&ask.req()).await.unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["roles"], json!(["reader"]));
    assert!(!claims.contains_key("missing"));
    assert!(!claims.contains_key("scp"), "scp would widen the scope");
    assert!(!claims.contains_key("cnf"));
    assert!(!claims.contains_key("nbf"));
    assert_eq!(claims["iss"], GATEWAY_ISS);
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["scope"], "orders:read orders:write");
    assert_ne!(claims["jti"], "subject-jti-1");
    assert_eq!(claims["act"], json!({ "sub": GATEWAY_ISS }));
}

#[test]
fn every_minted_token_has_a_distinct_jti() {
    let signer = signer(vec![es256("k1")], "k1");
    let ask = Ask::new(alice());
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let issued = signer.mint(&ask.req()).unwrap();
        let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_old_tokens_verifiable() {
    let k1 = es256("k1");
    let k1_pem = k1.to_pkcs8_pem().unwrap();
    let old = signer(vec![k1], "k1");
    let ask = Ask::new(alice());
    let before_rotation = old.exchange(&ask.req()).await.unwrap();

    let k1_again = SigningKey::from_pkcs8_pem(&k1_pem, Algorithm::ES256, "k1").unwrap();
    let rotated = signer(vec![k1_again, es256("k2")], "k2");
    assert_eq!(rotated.active_kid(), "k2");
    let after_rotation = rotated.exchange(&ask.req()).await.unwrap();

    let jwks = rotated.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k1", "k2"]);
    for key in jwks["keys"].as_array().unwrap() {
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
    }
    let (header, _) = verify_independently(&after_rotation.token, &jwks, "orders-api");
    assert_eq!(header.kid.as_deref(), Some("k2"));
    let (header, _) = verify_independently(&before_rotation.token, &jwks, "orders-api");
    assert_eq!(header.kid.as_deref(), Some("k1"));
}

#[tokio::test]
async fn rsa_signer_mints_verifiable_tokens() {
    let key = SigningKey::generate(Algorithm::PS256, "rsa-1").unwrap();
    let signer = signer(vec![key], "rsa-1");
    let issued = signer.exchange(&Ask::new(alice()).req()).await.unwrap();
    let (header, _) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
}

#[test]
fn signer_construction_refuses_bad_key_sets() {
    let unknown = LocalSigner::new(GATEWAY_ISS.into(), vec![es256("k1")], "k9").unwrap_err();
    assert_eq!(unknown, ExchangeConfigError::UnknownActiveKey("k9".into()));
    let duplicate =
        LocalSigner::new(GATEWAY_ISS.into(), vec![es256("k1"), es256("k1")], "k1").unwrap_err();
    assert_eq!(duplicate, ExchangeConfigError::DuplicateKeyId("k1".into()));
    assert_eq!(
        LocalSigner::new(GATEWAY_ISS.into(), Vec::new(), "k1").unwrap_err(),
        ExchangeConfigError::NoKeys
    );
    assert!(matches!(
        LocalSigner::new(String::new(), vec![es256("k1")], "k1"),
        Err(ExchangeConfigError::InvalidSetting(_))
    ));
}

#[test]
fn signer_debug_shows_kids_but_no_key_material() {
    let signer = signer(vec![es256("k1")], "k1");
    let debug = format!("{signer:?}");
    assert!(debug.contains("k1") && debug.contains(GATEWAY_ISS));
    assert!(!debug.contains("PRIVATE"));
}

#[test]
fn expired_subject_is_rejected() {
    let signer = signer(vec![es256("k1")], "k1");
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": unix_now() - 1 }),
    ));
    assert_eq!(
        signer.mint(&ask.req()).unwrap_err(),
        ExchangeError::SubjectRejected
    );
}

#[test]
fn empty_audience_is_an_invalid_target() {
    let signer = signer(vec![es256("k1")], "k1");
    let mut ask = Ask::new(alice());
    ask.audience = String::new();
    assert_eq!(
        signer.mint(&ask.req()).unwrap_err(),
        ExchangeError::InvalidTarget
    );
}

#[test]
fn subject_without_sub_is_named_by_its_client() {
    let signer = signer(vec![es256("k1")], "k1");
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "client_id": "batch-job", "exp": unix_now() + 600 }),
    ));
    let issued = signer.mint(&ask.req()).unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    assert_eq!(claims["sub"], "batch-job");
    assert_eq!(claims["client_id"], "batch-job");
    assert!(!claims.contains_key("azp"));
    assert!(!claims.contains_key(SUBJECT_TOKEN_JTI_CLAIM));

    let nobody = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "exp": unix_now() + 600 }),
    ));
    assert_eq!(
        signer.mint(&nobody.req()).unwrap_err(),
        ExchangeError::SubjectRejected
    );
}

#[test]
fn minting_writes_an_audit_event_without_the_token() {
    let signer = signer(vec![es256("k1")], "k1");
    let ask = Ask::new(alice());
    let recorder = Recorder::start();
    let issued = signer.mint(&ask.req()).unwrap();
    let (_, claims) = verify_independently(&issued.token, &signer.jwks(), "orders-api");
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(field(event, "message"), Some("token exchanged"));
    assert_eq!(field(event, "request_id"), Some("req-1"));
    assert_eq!(field(event, "subject"), Some("alice"));
    assert_eq!(field(event, "client"), Some("web"));
    assert_eq!(field(event, "audience"), Some("orders-api"));
    assert_eq!(field(event, "scopes"), Some("orders:read orders:write"));
    assert_eq!(field(event, "jti_of_issued"), claims["jti"].as_str());
    let everything = format!("{event:?}");
    assert!(!everything.contains(&*issued.token));
    assert!(!everything.contains(&ask.token));
}
