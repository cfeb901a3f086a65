//! The compact JWS parser and the whole validator (`extract_bearer` → `Validator::validate`)
//! on one issuer whose keys come from a file.
//!
//! Input starting with byte 0: "structured" — the rest is `header 0x1E payload` (or only a
//! payload, under a fixed header), base64url-encoded and signed with the issuer's real key,
//! so that the claim checks behind the signature are reached. Any other input is an
//! `Authorization` header value, for which nothing may ever verify (no key signed it).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use filters::jwks::{JwksCache, JwksConfig, JwksSource};
use filters::jws::{parse_compact, parse_strict_object};
use filters::sign::{jwks_document, SigningKey};
use filters::validate::{Issuer, IssuerPolicy, TokenCacheConfig, Validator, MAX_CLAIMS_DEPTH};
use filters::{extract_bearer, Algorithm, DEFAULT_MAX_TOKEN_BYTES};
use libfuzzer_sys::fuzz_target;

const ISS: &str = "https://idp.fuzz.test";

struct Fixture {
    rt: tokio::runtime::Runtime,
    validator: Validator,
    key: SigningKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let key = SigningKey::generate(Algorithm::ES256, "k1").expect("key");
        let path = std::env::temp_dir().join(format!("tokengate-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&path, jwks_document([&key]).to_string()).expect("write the JWKS");
        let algorithms = vec![Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];
        let mut config = JwksConfig::new(ISS, JwksSource::File(path), algorithms.clone());
        config.refetch_cooldown = Duration::from_secs(3600);
        let jwks = JwksCache::new(config).expect("key cache");
        rt.block_on(jwks.refresh()).expect("load the keys");
        let policy = IssuerPolicy {
            id: "fuzz".into(),
            issuer: ISS.into(),
            audiences: vec!["api".into()],
            algorithms,
            leeway: Duration::from_secs(30),
            accepted_types: vec!["at+jwt".into(), "JWT".into()],
            allow_missing_typ: true,
        };
        let cache = TokenCacheConfig {
            max_entries: 0,
            ..TokenCacheConfig::default()
        };
        let validator = Validator::new(
            vec![Arc::new(Issuer { policy, jwks })],
            cache,
            DEFAULT_MAX_TOKEN_BYTES,
        );
        Fixture { rt, validator, key }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    match data.split_first() {
        Some((0, rest)) => {
            let (header, payload) = match rest.iter().position(|b| *b == 0x1e) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#[..], rest),
            };
            let mut token = URL_SAFE_NO_PAD.encode(header);
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(payload, &mut token);
            let signature = f.key.sign_raw(token.as_bytes()).expect("sign");
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
            let result = f.rt.block_on(f.validator.validate(&token));
            if let Ok(verified) = result {
                // Whatever passed is a strict JSON object from this issuer, meant for "api".
                let claims = parse_strict_object(payload, MAX_CLAIMS_DEPTH).expect("object");
                assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some(ISS));
                assert_eq!(verified.iss, ISS);
                assert!(token.len() <= DEFAULT_MAX_TOKEN_BYTES);
                let jws = parse_compact(&token).expect("parsed");
                assert_eq!(jws.header.alg, Algorithm::ES256);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = parse_compact(text);
            }
            if let Ok(Some(token)) = extract_bearer(data, DEFAULT_MAX_TOKEN_BYTES) {
                let result = f.rt.block_on(f.validator.validate(token));
                assert!(result.is_err(), "an unsigned input verified");
            }
        }
    }
});
