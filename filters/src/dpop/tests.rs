//! One test per check of RFC 9449 §4.3 (each fails without its check), and known-answer tests
//! from RFC 9449 and RFC 7638.

use serde_json::json;

use super::*;
use crate::sign::SigningKey;

const NOW: i64 = 1_800_000_000;
const URI: &str = "https://api.example.com/orders/42";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::generate(alg, "proof-key").unwrap()
}

fn claims() -> ProofClaims<'static> {
    ProofClaims {
        method: "GET",
        uri: URI,
        access_token: TOKEN,
        iat: NOW,
        jti: "proof-1",
        nonce: None,
    }
}

fn ctx() -> ProofContext<'static> {
    ProofContext {
        method: "GET",
        htu: URI,
        access_token: TOKEN,
        now: NOW,
    }
}

fn check(proof: &str) -> Result<VerifiedProof, AuthError> {
    verify_proof(proof, &DpopPolicy::default(), &ctx())
}

/// A proof with a hand-made header and payload, signed by `k`.
fn custom(k: &SigningKey, header: Value, payload: Value) -> String {
    let Value::Object(h) = header else {
        panic!("header must be an object")
    };
    k.sign_jws(&h, &serde_json::to_vec(&payload).unwrap())
        .unwrap()
}

fn public_jwk(k: &SigningKey) -> Value {
    let mut jwk = k.public_jwk();
    let m = jwk.as_object_mut().unwrap();
    for member in ["kid", "alg", "use"] {
        m.remove(member);
    }
    jwk
}

fn good_payload() -> Value {
    json!({"jti": "proof-1", "htm": "GET", "htu": URI, "iat": NOW, "ath": access_token_hash(TOKEN)})
}

fn reason(r: Result<VerifiedProof, AuthError>) -> &'static str {
    match r {
        Err(AuthError::InvalidDpopProof(why)) => why,
        other => panic!("expected invalid_dpop_proof, got {other:?}"),
    }
}

#[test]
fn valid_proofs_of_every_default_algorithm_are_accepted() {
    for alg in DpopPolicy::default().algorithms {
        let k = key(alg);
        let proof = sign_proof(&k, &claims()).unwrap();
        let v = check(&proof).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.jkt, key_thumbprint(&k), "{alg}");
        assert_eq!(v.jti, "proof-1");
        assert_eq!(v.iat, NOW);
        assert_eq!(v.replay_id(), format!("{}:proof-1", v.jkt));
    }
}

#[test]
fn malformed_proof_is_refused() {
    for p in ["", "a.b", "not a jws", "a.b.c.d.e"] {
        assert!(check(p).is_err(), "{p:?}");
    }
    let k = key(Algorithm::ES256);
    let proof = sign_proof(&k, &claims()).unwrap();
    assert!(reason(check(&format!("{proof}="))).contains("compact JWS"));
}

#[test]
fn oversized_proof_is_refused_before_parsing() {
    let policy = DpopPolicy {
        max_proof_bytes: 100,
        ..DpopPolicy::default()
    };
    let proof = sign_proof(&key(Algorithm::ES256), &claims()).unwrap();
    assert!(proof.len() > 100);
    assert!(reason(verify_proof(&proof, &policy, &ctx())).contains("larger"));
}

#[test]
fn typ_must_be_dpop_jwt() {
    let k = key(Algorithm::ES256);
    for typ in [json!("JWT"), json!("at+jwt"), json!(null)] {
        let mut h = json!({"alg": "ES256", "jwk": public_jwk(&k)});
        if !typ.is_null() {
            h["typ"] = typ;
        }
        assert!(reason(check(&custom(&k, h, good_payload()))).contains("typ"));
    }
    // Media types compare case-insensitively.
    let h = json!({"typ": "DPoP+JWT", "alg": "ES256", "jwk": public_jwk(&k)});
    assert!(check(&custom(&k, h, good_payload())).is_ok());
}

#[test]
fn algorithm_must_be_in_the_allow_list() {
    let k = key(Algorithm::ES384);
    let policy = DpopPolicy {
        algorithms: vec![Algorithm::ES256],
        ..DpopPolicy::default()
    };
    let proof = sign_proof(&k, &claims()).unwrap();
    assert!(reason(verify_proof(&proof, &policy, &ctx())).contains("algorithm"));
    assert_eq!(policy.algs(), "ES256");
    // Symmetric and `none` never parse as a supported algorithm.
    for alg in ["HS256", "none", "NONE"] {
        let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        let p = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(good_payload().to_string())
        );
        assert!(reason(check(&p)).contains("compact JWS"), "{alg}");
    }
}

#[test]
fn jwk_must_be_a_public_key_that_fits_the_algorithm() {
    let k = key(Algorithm::ES256);
    let other_curve = key(Algorithm::ES384);
    let mut private = public_jwk(&k);
    private["d"] = json!("AAAA");
    let cases = [
        (json!({"typ": "dpop+jwt", "alg": "ES256"}), "no jwk"),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": "x"}),
            "object",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            "public key",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            "public key",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&other_curve)}),
            "public key",
        ),
    ];
    for (h, why) in cases {
        let shown = h.to_string();
        assert!(
            reason(check(&custom(&k, h, good_payload()))).contains(why),
            "{shown}"
        );
    }
}

#[test]
fn signature_must_verify_with_the_embedded_key() {
    let k = key(Algorithm::ES256);
    let other = key(Algorithm::ES256);
    // Signed by `k`, but carrying `other`'s public key.
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&other)});
    assert!(reason(check(&custom(&k, h, good_payload()))).contains("signature"));
    // A payload changed after signing.
    let proof = sign_proof(&k, &claims()).unwrap();
    let parts: Vec<&str> = proof.split('.').collect();
    let mut p = good_payload();
    p["htm"] = json!("POST");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(p.to_string()),
        parts[2]
    );
    assert!(reason(check(&forged)).contains("signature"));
}

#[test]
fn jti_is_required_and_bounded() {
    let k = key(Algorithm::ES256);
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    for jti in [json!(null), json!(""), json!(7), json!("x".repeat(257))] {
        let mut p = good_payload();
        if jti.is_null() {
            p.as_object_mut().unwrap().remove("jti");
        } else {
            p["jti"] = jti;
        }
        assert!(reason(check(&custom(&k, h.clone(), p))).contains("jti"));
    }
}

#[test]
fn htm_must_equal_the_method() {
    let k = key(Algorithm::ES256);
    let proof = sign_proof(&k, &claims()).unwrap();
    let post = ProofContext {
        method: "POST",
        ..ctx()
    };
    assert!(reason(verify_proof(&proof, &DpopPolicy::default(), &post)).contains("htm"));
    let lower = sign_proof(
        &k,
        &ProofClaims {
            method: "get",
            ..claims()
        },
    )
    .unwrap();
    assert!(reason(check(&lower)).contains("htm"));
}

#[test]
fn htu_must_equal_the_uri_after_normalisation_ignoring_query_and_fragment() {
    let k = key(Algorithm::ES256);
    for same in [
        "https://api.example.com/orders/42",
        "HTTPS://API.Example.COM:443/orders/42",
        "https://api.example.com/orders/%34%32",
        "https://api.example.com/orders/42?x=1",
        "https://api.example.com/orders/42#frag",
        "https://api.example.com/a/../orders/./42",
    ] {
        let p = sign_proof(
            &k,
            &ProofClaims {
                uri: same,
                ..claims()
            },
        )
        .unwrap();
        assert!(check(&p).is_ok(), "{same}");
    }
    for different in [
        "https://api.example.com/orders/43",
        "https://api.example.com/orders/42/",
        "http://api.example.com/orders/42",
        "https://api.example.com:8443/orders/42",
        "https://evil.example.com/orders/42",
        "https://user@api.example.com/orders/42",
        "/orders/42",
    ] {
        let p = sign_proof(
            &k,
            &ProofClaims {
                uri: different,
                ..claims()
            },
        )
        .unwrap();
        assert!(reason(check(&p)).contains("htu"), "{different}");
    }
}

#[test]
fn iat_must_be_recent_and_not_in_the_future() {
    let k = key(Algorithm::ES256);
    let policy = DpopPolicy::default();
    let max = i64::try_from((policy.max_age + policy.leeway).as_secs()).unwrap();
    let lee = i64::try_from(policy.leeway.as_secs()).unwrap();
    let at = |iat| check(&sign_proof(&k, &ProofClaims { iat, ..claims() }).unwrap());
    assert!(at(NOW - max).is_ok());
    assert!(reason(at(NOW - max - 1)).contains("too old"));
    assert!(at(NOW + lee).is_ok());
    assert!(reason(at(NOW + lee + 1)).contains("future"));
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    for bad in [json!("1800000000"), json!(null), json!(true)] {
        let mut p = good_payload();
        p["iat"] = bad;
        assert!(reason(check(&custom(&k, h.clone(), p))).contains("iat"));
    }
}

#[test]
fn ath_must_hash_the_presented_token() {
    let k = key(Algorithm::ES256);
    let other_token = sign_proof(
        &k,
        &ProofClaims {
            access_token: "another.access.token",
            ..claims()
        },
    )
    .unwrap();
    assert!(reason(check(&other_token)).contains("ath"));
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    let mut p = good_payload();
    p.as_object_mut().unwrap().remove("ath");
    assert!(reason(check(&custom(&k, h, p))).contains("ath"));
}

#[test]
fn replay_ids_outlive_every_moment_a_proof_is_accepted() {
    let policy = DpopPolicy::default();
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap();
    // Latest acceptance of a proof first seen at `seen`: its iat may be `seen + leeway`,
    // and it is accepted while `now - iat <= max_age + leeway` in whole seconds (so until
    // just before `iat + max_age + leeway + 1`), on a replica whose clock may be ahead.
    let seen = NOW;
    let last_accept = seen + secs(policy.leeway) + secs(policy.max_age) + secs(policy.leeway) + 1;
    let forgotten = seen + secs(policy.replay_ttl());
    assert!(
        forgotten >= last_accept + secs(REPLICA_CLOCK_SKEW),
        "id forgotten at {forgotten}, proof accepted until {last_accept}"
    );
    let k = key(Algorithm::ES256);
    let p = sign_proof(
        &k,
        &ProofClaims {
            iat: NOW + secs(policy.leeway),
            ..claims()
        },
    )
    .unwrap();
    let at = |now| verify_proof(&p, &policy, &ProofContext { now, ..ctx() });
    assert!(at(last_accept - 1).is_ok());
    assert!(at(last_accept).is_err());
}

#[test]
fn nonce_is_returned_for_the_caller_to_check() {
    let k = key(Algorithm::ES256);
    let p = sign_proof(
        &k,
        &ProofClaims {
            nonce: Some("n-1"),
            ..claims()
        },
    )
    .unwrap();
    assert_eq!(check(&p).unwrap().nonce.as_deref(), Some("n-1"));
}

#[test]
fn rfc9449_ath_known_answer() {
    // RFC 9449 §7.1: the access token of the example request and its `ath`.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn rfc9449_jkt_known_answer() {
    // RFC 9449 §6.1: the proof key of the examples and its `cnf.jkt`.
    let jwk = json!({
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256"
    });
    assert_eq!(
        thumbprint(jwk.as_object().unwrap()).unwrap(),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
}

#[test]
fn rfc7638_rsa_thumbprint_known_answer_ignores_other_members() {
    // RFC 7638 §3.1 (the key of RFC 7517 Appendix A.1); `alg` and `kid` are not hashed.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        thumbprint(jwk.as_object().unwrap()).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert!(thumbprint(json!({"kty": "oct", "k": "x"}).as_object().unwrap()).is_err());
    assert!(thumbprint(
        json!({"kty": "EC", "crv": "P-256", "x": "a"})
            .as_object()
            .unwrap()
    )
    .is_err());
}

#[test]
fn binding_reads_cnf_and_refuses_bad_types() {
    let claims = json!({"cnf": {"jkt": "abc", "x5t#S256": "def"}});
    let b = Binding::of(claims.as_object().unwrap()).unwrap();
    assert_eq!(b.jkt, Some("abc"));
    assert_eq!(b.x5t_s256, Some("def"));
    assert_eq!(
        Binding::of(json!({}).as_object().unwrap()).unwrap(),
        Binding::default()
    );
    for bad in [
        json!({"cnf": "abc"}),
        json!({"cnf": {}}),
        json!({"cnf": {"jwk": {"kty": "EC"}}}),
        json!({"cnf": {"kid": "k1"}}),
        json!({"cnf": {"jkt": "abc", "jku": "https://x"}}),
        json!({"cnf": {"jkt": 1}}),
        json!({"cnf": {"jkt": ""}}),
        json!({"cnf": {"x5t#S256": ["a"]}}),
    ] {
        assert!(
            matches!(
                Binding::of(bad.as_object().unwrap()),
                Err(AuthError::InvalidClaim(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn htu_normalisation_follows_rfc3986() {
    let cases = [
        ("HTTPS://Api.EXAMPLE.com", Some("https://api.example.com/")),
        ("http://a.example:80/x", Some("http://a.example/x")),
        ("https://a.example:443/x", Some("https://a.example/x")),
        ("https://a.example:/x", Some("https://a.example/x")),
        (
            "https://a.example:08443/x",
            Some("https://a.example:8443/x"),
        ),
        (
            "https://a.example/%7euser/%2f",
            Some("https://a.example/~user/%2F"),
        ),
        ("https://a.example/a/b/../../c", Some("https://a.example/c")),
        ("https://[::1]:8443/x", Some("https://[::1]:8443/x")),
        (
            "https://a.example/a{b}|c",
            Some("https://a.example/a%7Bb%7D%7Cc"),
        ),
        (
            "https://a.example/a%7bb%7D%7c",
            Some("https://a.example/a%7Bb%7D%7C"),
        ),
        ("https://a.example/x?q#f", Some("https://a.example/x")),
        ("ftp://a.example/x", None),
        ("https://u:p@a.example/x", None),
        ("https:///x", None),
        ("https://a.example:99999/x", None),
        ("https://a.example/%zz", None),
        ("https://a.example/a b", None),
        ("https://a.example/\u{e9}", None),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_htu(input).as_deref(), want, "{input}");
    }
}

#[test]
fn nonces_are_accepted_while_fresh_and_only_with_the_right_secret() {
    let issuer = NonceIssuer::new(b"a shared secret of some length", Duration::from_secs(300));
    let n = issuer.issue(NOW);
    assert!(issuer.check(&n, NOW));
    assert!(issuer.check(&n, NOW + 300));
    assert!(!issuer.check(&n, NOW + 301));
    assert!(!issuer.check(&n, NOW - 6), "issued too far in the future");
    let other = NonceIssuer::new(b"another secret of some length!", Duration::from_secs(300));
    assert!(!other.check(&n, NOW));
    // A replica sharing the secret accepts it.
    let twin = NonceIssuer::new(b"a shared secret of some length", Duration::from_secs(300));
    assert!(twin.check(&n, NOW));
    // Tampering with the time or the tag breaks it.
    let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
    raw[7] ^= 1;
    assert!(!issuer.check(&URL_SAFE_NO_PAD.encode(&raw), NOW));
    for bad in ["", "x", &"A".repeat(32), &n[..31]] {
        assert!(!issuer.check(bad, NOW), "{bad:?}");
    }
    let random = NonceIssuer::random(Duration::from_secs(60)).unwrap();
    assert!(random.check(&random.issue(NOW), NOW));
    assert!(!issuer.check(&random.issue(NOW), NOW));
}
