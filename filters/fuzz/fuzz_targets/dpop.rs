//! The DPoP proof validator (`filters::dpop::verify_proof`).
//!
//! Input starting with byte 0: the rest is a proof payload, signed with a fixed key whose
//! public JWK is in the header, so the claim checks behind the signature are reached. Any
//! other input is a proof as received, which can never verify (nobody signed it).
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use filters::dpop::{verify_proof, DpopPolicy, ProofContext};
use filters::jws::parse_strict_object;
use filters::sign::SigningKey;
use filters::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;

fn key() -> &'static (SigningKey, String) {
    static KEY: OnceLock<(SigningKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::generate(Algorithm::ES256, "dpop").expect("key");
        let mut jwk = key.public_jwk();
        if let Some(m) = jwk.as_object_mut() {
            for member in ["kid", "alg", "use"] {
                m.remove(member);
            }
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string();
        (key, URL_SAFE_NO_PAD.encode(header))
    })
}

fuzz_target!(|data: &[u8]| {
    let policy = DpopPolicy::default();
    let ctx = ProofContext {
        method: "GET",
        htu: "https://api.fuzz.test/orders",
        access_token: "at",
        now: NOW,
    };
    match data.split_first() {
        Some((0, payload)) => {
            let (key, header) = key();
            let mut proof = header.clone();
            proof.push('.');
            URL_SAFE_NO_PAD.encode_string(payload, &mut proof);
            let signature = key.sign_raw(proof.as_bytes()).expect("sign");
            proof.push('.');
            URL_SAFE_NO_PAD.encode_string(&signature, &mut proof);
            if let Ok(verified) = verify_proof(&proof, &policy, &ctx) {
                let claims = parse_strict_object(payload, 8).expect("a strict object");
                assert_eq!(claims.get("htm"), Some(&Value::from("GET")));
                assert_eq!(claims.get("jti").and_then(Value::as_str), Some(verified.jti.as_str()));
                assert!(!verified.jti.is_empty());
                assert!(proof.len() <= policy.max_proof_bytes);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(data) {
                assert!(verify_proof(text, &policy, &ctx).is_err(), "an unsigned proof verified");
            }
        }
    }
});
