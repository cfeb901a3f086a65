//! Runs Wycheproof's `json_web_signature_test.json` through the JWS verification layer:
//! [`parse_compact`] → [`VerifyingKey::from_jwk`] (the group's public JWK) →
//! [`VerifyingKey::verify`]. Claims are not validated: the payloads are not JWT claims.
//!
//! The vectors live outside the repository, in `shared/testdata/wycheproof/` beside the
//! workspace. When they are missing the test fails under CI (`CI` set) and is skipped, with a
//! message on stderr, elsewhere.
//!
//! Verdicts:
//! - every `invalid` vector must be rejected, at whichever layer;
//! - every `valid` vector must be accepted when its algorithm is one tokengate supports and
//!   its key is one tokengate accepts; the others are counted as refused by design (HMAC,
//!   JWE) or not applicable (unsupported algorithm, RSA below 2048 bits) and must still be
//!   rejected — tokengate never accepts what it cannot verify;
//! - vectors in JSON serialization are skipped (tokengate only speaks compact), counted;
//! - vectors whose verdict disagrees with tokengate's policy are listed in [`POLICY_REJECTS`]
//!   with the reason, and must be rejected.

use filters::jwk::VerifyingKey;
use filters::jws::{parse_compact, Algorithm};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/wycheproof/json_web_signature_test.json"
);

/// Why tokengate's policy rejects a vector that Wycheproof marks `valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The JWK's `alg` pins the key to one algorithm and the token uses another. Checked:
    /// with `alg` removed from the JWK the vector must verify, so the pin is the only reason.
    JwkAlgPin,
}

/// `valid` vectors that tokengate rejects on purpose, by tcId, with the reason.
const POLICY_REJECTS: &[(u64, Policy, &str)] = &[
    (
        346,
        Policy::JwkAlgPin,
        "RFC 7520 Figure 20 is signed with PS384 but the vector's JWK declares \"alg\":\"PS256\"; \
         a JWK's alg pins the key (RFC 7517 §4.4), so a PS384 token is refused",
    ),
    (
        350,
        Policy::JwkAlgPin,
        "same token as 346 (RFC 7520 Figure 20, PS384) with a JWK that declares \"alg\":\"PS256\" \
         and key_ops [\"verify\"]; the alg pin refuses PS384",
    ),
];

/// Where a vector was rejected (or that it was accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Accepted,
    /// Refused by `parse_compact`.
    Parse(String),
    /// The group has no public key (HMAC vectors carry only a symmetric `private` key).
    NoPublicKey,
    /// Refused by `VerifyingKey::from_jwk`.
    Key(String),
    /// The key is not pinned to the token's `alg`.
    AlgNotPinned(Algorithm),
    /// The signature did not verify.
    Signature,
}

fn run(public: Option<&Value>, jws: &str) -> Outcome {
    let parsed = match parse_compact(jws) {
        Ok(parsed) => parsed,
        Err(e) => return Outcome::Parse(format!("{e:?}")),
    };
    let Some(public) = public else {
        return Outcome::NoPublicKey;
    };
    let key = match VerifyingKey::from_jwk(public, &Algorithm::ALL) {
        Ok(key) => key,
        Err(reason) => return Outcome::Key(reason),
    };
    if !key.supports(parsed.header.alg) {
        return Outcome::AlgNotPinned(parsed.header.alg);
    }
    match key.verify(parsed.header.alg, parsed.signing_input, &parsed.signature) {
        Ok(()) => Outcome::Accepted,
        Err(_) => Outcome::Signature,
    }
}

/// Why a `valid` vector is outside what tokengate accepts, if it is.
fn not_applicable(group: &Value, jws: &str) -> Option<&'static str> {
    let public = match group.get("public") {
        Some(p) if p.as_object().is_some_and(|o| !o.is_empty()) => p,
        _ => {
            return Some(if group["private"]["kty"] == "oct" {
                "hmac"
            } else {
                "no public key"
            })
        }
    };
    if jws.split('.').count() == 5 {
        return Some("jwe");
    }
    match public["kty"].as_str() {
        Some("EC") if !matches!(public["crv"].as_str(), Some("P-256" | "P-384")) => {
            return Some("unsupported curve")
        }
        Some("RSA") => {
            let n = decode(public["n"].as_str().unwrap_or_default()).unwrap_or_default();
            let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
            let n = &n[first..];
            let bits = n
                .first()
                .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if bits < 2048 {
                return Some("rsa below 2048 bits");
            }
        }
        Some("EC" | "OKP") => {}
        _ => return Some("unsupported key type"),
    }
    let header = jws.split('.').next().unwrap_or_default();
    let alg = base64_header_alg(header);
    match alg.as_deref().map(Algorithm::from_name) {
        Some(Some(_)) => None,
        _ => Some("unsupported algorithm"),
    }
}

fn decode(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

fn base64_header_alg(segment: &str) -> Option<String> {
    let bytes = decode(segment)?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

#[derive(Default, Debug)]
struct Counts {
    total: usize,
    json_serialization_skipped: usize,
    valid_accepted: usize,
    valid_policy_rejected: usize,
    valid_refused_hmac: usize,
    valid_not_applicable: usize,
    invalid_rejected: usize,
    /// Invalid vectors whose group has a public key tokengate accepts: they exercise the
    /// signature and algorithm-pinning layers, not only the parser.
    invalid_applicable: usize,
    rejected_at_parse: usize,
    rejected_at_key: usize,
    rejected_alg_not_pinned: usize,
    rejected_at_signature: usize,
    rejected_no_public_key: usize,
}

#[test]
fn wycheproof_json_web_signature_vectors() {
    let text = match std::fs::read_to_string(VECTORS) {
        Ok(text) => text,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("wycheproof vectors not found at {VECTORS} ({e}); CI must provide them")
        }
        Err(e) => {
            eprintln!("SKIPPED: wycheproof vectors not found at {VECTORS} ({e})");
            return;
        }
    };
    let file: Value = serde_json::from_str(&text).expect("vector file is JSON");
    assert_eq!(
        file["schema"], "json_web_signature_schema_v1.json",
        "unexpected schema"
    );

    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut policy_seen = Vec::new();
    for group in file["testGroups"].as_array().expect("testGroups") {
        assert_eq!(group["type"], "JsonWebSignature");
        let public = group
            .get("public")
            .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()));
        let key_usable = public.is_some_and(|p| VerifyingKey::from_jwk(p, &Algorithm::ALL).is_ok());
        for test in group["tests"].as_array().expect("tests") {
            counts.total += 1;
            let id = test["tcId"].as_u64().expect("tcId");
            let jws = test["jws"].as_str().expect("jws is a string");
            let result = test["result"].as_str().expect("result");
            let comment = test["comment"].as_str().unwrap_or_default();

            let flags = test["flags"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if jws.trim_start().starts_with('{') || flags.iter().any(|f| f == "JsonSerialization") {
                counts.json_serialization_skipped += 1;
                // Not run as a vector, but tokengate must not mistake it for a compact JWS.
                assert!(
                    parse_compact(jws).is_err(),
                    "tcId {id}: JSON serialization parsed"
                );
                continue;
            }

            let outcome = run(public, jws);
            let accepted = outcome == Outcome::Accepted;
            if !accepted {
                match &outcome {
                    Outcome::Parse(_) => counts.rejected_at_parse += 1,
                    Outcome::NoPublicKey => counts.rejected_no_public_key += 1,
                    Outcome::Key(_) => counts.rejected_at_key += 1,
                    Outcome::AlgNotPinned(_) => counts.rejected_alg_not_pinned += 1,
                    Outcome::Signature => counts.rejected_at_signature += 1,
                    Outcome::Accepted => {}
                }
            }
            let policy = POLICY_REJECTS.iter().find(|(tc, _, _)| *tc == id);
            match result {
                "invalid" => {
                    if accepted {
                        failures.push(format!("tcId {id} ({comment}): invalid vector accepted"));
                    } else {
                        counts.invalid_rejected += 1;
                        if key_usable {
                            counts.invalid_applicable += 1;
                        }
                    }
                }
                "valid" | "acceptable" => {
                    if let Some((_, kind, reason)) = policy {
                        policy_seen.push(id);
                        if *kind == Policy::JwkAlgPin {
                            let mut unpinned = public.cloned().unwrap_or_default();
                            if let Some(jwk) = unpinned.as_object_mut() {
                                jwk.remove("alg");
                            }
                            let without_pin = run(Some(&unpinned), jws);
                            if without_pin != Outcome::Accepted {
                                failures.push(format!(
                                    "tcId {id}: listed as rejected only by the JWK alg pin, but without it: {without_pin:?}"
                                ));
                            }
                        }
                        if accepted {
                            failures.push(format!(
                                "tcId {id}: listed as a policy rejection ({reason}) but accepted"
                            ));
                        } else {
                            counts.valid_policy_rejected += 1;
                            eprintln!("policy rejection: tcId {id} ({comment}): {reason}; outcome {outcome:?}");
                        }
                    } else if let Some(why) = not_applicable(group, jws) {
                        if accepted {
                            failures.push(format!("tcId {id} ({comment}): {why} vector accepted"));
                        } else if why == "hmac" || why == "jwe" {
                            counts.valid_refused_hmac += 1;
                        } else {
                            counts.valid_not_applicable += 1;
                            eprintln!("not applicable: tcId {id} ({comment}): {why}");
                        }
                    } else if accepted {
                        counts.valid_accepted += 1;
                    } else {
                        failures.push(format!(
                            "tcId {id} ({comment}): valid vector rejected: {outcome:?}"
                        ));
                    }
                }
                other => failures.push(format!("tcId {id}: unknown result {other:?}")),
            }
        }
    }

    eprintln!(
        "wycheproof JWS: {} vectors; valid accepted {}, valid rejected by policy {}, valid refused by design (HMAC/JWE) {}, \
         valid not applicable {}; invalid rejected {} (with a usable key {}); JSON serialization skipped {}; \
         rejections by layer: parse {}, no public key {}, key {}, alg not pinned {}, signature {}",
        counts.total,
        counts.valid_accepted,
        counts.valid_policy_rejected,
        counts.valid_refused_hmac,
        counts.valid_not_applicable,
        counts.invalid_rejected,
        counts.invalid_applicable,
        counts.json_serialization_skipped,
        counts.rejected_at_parse,
        counts.rejected_no_public_key,
        counts.rejected_at_key,
        counts.rejected_alg_not_pinned,
        counts.rejected_at_signature,
    );
    assert!(
        failures.is_empty(),
        "{} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (id, _, _) in POLICY_REJECTS {
        assert!(
            policy_seen.contains(id),
            "policy rejection tcId {id} is not a valid vector in the file any more"
        );
    }
    assert_eq!(
        file["numberOfTests"].as_u64(),
        Some(counts.total as u64),
        "numberOfTests disagrees with the vectors read"
    );
    assert!(counts.valid_accepted > 0, "no applicable valid vector ran");
    assert!(
        counts.invalid_applicable > 0,
        "no applicable invalid vector ran"
    );
    assert!(
        counts.rejected_at_signature > 0,
        "no vector reached signature verification"
    );
}
