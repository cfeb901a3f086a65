//! Every size and nesting limit of the token layer at its edge: exactly at the limit is
//! accepted, one over is refused (the gateway-level limits are in `tests/e2e/limits.rs`).

use filters::jwk::{parse_jwks, JwkError, JwksLimits};
use filters::jws::{parse_compact, parse_strict_object, JwsError, MAX_HEADER_DEPTH};
use filters::sign::{jwks_document, SigningKey};
use filters::validate::MAX_CLAIMS_DEPTH;
use filters::{extract_bearer, Algorithm, AuthError};
use serde_json::{json, Value};

/// A JSON object nested `depth` deep in total (the object itself is 1).
fn object_of_depth(depth: usize) -> String {
    assert!(depth >= 1);
    format!(
        "{{\"a\":{}1{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[test]
fn header_depth_limit_is_exact() {
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let header = |depth: usize| {
        let inner = object_of_depth(depth);
        format!(r#"{{"alg":"ES256","x":{}}}"#, &inner[5..inner.len() - 1])
    };
    // `header(d)` is d deep: the header object plus d-1 arrays.
    let at = format!("{}.e30.c2ln", b64(&header(MAX_HEADER_DEPTH)));
    assert!(parse_compact(&at).is_ok());
    let over = format!("{}.e30.c2ln", b64(&header(MAX_HEADER_DEPTH + 1)));
    assert_eq!(parse_compact(&over).unwrap_err(), JwsError::Json);
}

#[test]
fn claims_depth_limit_is_exact() {
    let at = object_of_depth(MAX_CLAIMS_DEPTH);
    assert!(parse_strict_object(at.as_bytes(), MAX_CLAIMS_DEPTH).is_ok());
    let over = object_of_depth(MAX_CLAIMS_DEPTH + 1);
    assert_eq!(
        parse_strict_object(over.as_bytes(), MAX_CLAIMS_DEPTH),
        Err(JwsError::Json)
    );
}

#[test]
fn bearer_token_size_limit_is_exact() {
    for max in [256usize, 8 * 1024, 64 * 1024] {
        let at = format!("Bearer {}", "a".repeat(max));
        assert_eq!(
            extract_bearer(at.as_bytes(), max).unwrap().map(str::len),
            Some(max)
        );
        let over = format!("Bearer {}", "a".repeat(max + 1));
        assert_eq!(
            extract_bearer(over.as_bytes(), max),
            Err(AuthError::TokenTooLarge)
        );
    }
}

/// A JWKS document of `keys` padded with an unknown member to exactly `len` bytes.
fn padded_document(keys: &[&SigningKey], len: usize) -> Vec<u8> {
    let mut doc = jwks_document(keys.iter().copied());
    doc["pad"] = json!("");
    let bare = doc.to_string().len();
    assert!(bare <= len, "the document is already {bare} bytes");
    doc["pad"] = Value::from("p".repeat(len - bare));
    let text = doc.to_string();
    assert_eq!(text.len(), len);
    text.into_bytes()
}

#[test]
fn jwks_size_limit_is_exact() {
    let key = SigningKey::generate(Algorithm::ES256, "k1").expect("key");
    let limits = JwksLimits {
        max_bytes: 4096,
        max_keys: 64,
    };
    let at = padded_document(&[&key], 4096);
    assert_eq!(
        parse_jwks(&at, &Algorithm::ALL, &limits).expect("at").len(),
        1
    );
    let over = padded_document(&[&key], 4097);
    assert_eq!(
        parse_jwks(&over, &Algorithm::ALL, &limits).unwrap_err(),
        JwkError::TooLarge(4096)
    );
    // The default is 256 KiB.
    let default = JwksLimits::default();
    assert_eq!(default.max_bytes, 256 * 1024);
    let at = padded_document(&[&key], default.max_bytes);
    assert!(parse_jwks(&at, &Algorithm::ALL, &default).is_ok());
    let over = padded_document(&[&key], default.max_bytes + 1);
    assert!(parse_jwks(&over, &Algorithm::ALL, &default).is_err());
}

#[test]
fn jwks_key_count_limit_is_exact() {
    let keys: Vec<SigningKey> = (0..5)
        .map(|i| SigningKey::generate(Algorithm::EdDSA, format!("k{i}")).expect("key"))
        .collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let limits = JwksLimits {
        max_bytes: 256 * 1024,
        max_keys: 4,
    };
    let at = jwks_document(refs[..4].iter().copied()).to_string();
    assert_eq!(
        parse_jwks(at.as_bytes(), &Algorithm::ALL, &limits)
            .expect("at")
            .len(),
        4
    );
    let over = jwks_document(refs.iter().copied()).to_string();
    assert_eq!(
        parse_jwks(over.as_bytes(), &Algorithm::ALL, &limits).unwrap_err(),
        JwkError::TooManyKeys(4)
    );
    // Unusable entries count too: the cap bounds parsing work, not the usable keys.
    let mut junk = jwks_document(refs[..4].iter().copied());
    junk["keys"]
        .as_array_mut()
        .expect("keys")
        .push(json!({"kty": "oct", "k": "AAAA"}));
    assert_eq!(
        parse_jwks(junk.to_string().as_bytes(), &Algorithm::ALL, &limits).unwrap_err(),
        JwkError::TooManyKeys(4)
    );
    assert_eq!(JwksLimits::default().max_keys, 64);
}

#[test]
fn dpop_proof_size_limit_is_exact() {
    use filters::dpop::{
        normalize_htu, sign_proof, verify_proof, DpopPolicy, ProofClaims, ProofContext,
    };
    let key = SigningKey::generate(Algorithm::ES256, "client").expect("key");
    let now = filters::validate::unix_now();
    let uri = "https://api.test/orders";
    let proof = sign_proof(
        &key,
        &ProofClaims {
            method: "GET",
            uri,
            access_token: "at",
            iat: now,
            jti: "proof-1",
            nonce: None,
        },
    )
    .expect("proof");
    let htu = normalize_htu(uri).expect("htu");
    let ctx = ProofContext {
        method: "GET",
        htu: &htu,
        access_token: "at",
        now,
    };
    let at = DpopPolicy {
        max_proof_bytes: proof.len(),
        ..DpopPolicy::default()
    };
    assert!(verify_proof(&proof, &at, &ctx).is_ok());
    let under = DpopPolicy {
        max_proof_bytes: proof.len() - 1,
        ..DpopPolicy::default()
    };
    assert!(verify_proof(&proof, &under, &ctx)
        .unwrap_err()
        .description()
        .contains("larger"));
}
