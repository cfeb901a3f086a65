//! DPoP (RFC 9449): proof validation, the token's key binding (`cnf`), RFC 7638
//! thumbprints, `htu` normalisation and stateless server nonces.
//!
//! [`verify_proof`] performs every check of RFC 9449 §4.3 that needs only the proof, the
//! request and the access token; the caller then compares [`VerifiedProof::jkt`] with the
//! token's `cnf.jkt` ([`Binding`]), checks the nonce ([`NonceIssuer`]) when the route uses
//! them, and records [`VerifiedProof::replay_id`] once in the shared store, so that a proof is
//! accepted at most once across every replica.

use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::jwk::VerifyingKey;
use crate::jws::{self, Algorithm};

mod htu;
mod nonce;
#[cfg(test)]
mod tests;

pub use htu::normalize_htu;
pub use nonce::NonceIssuer;

/// Default cap on the size of a DPoP proof (4 KiB), checked before parsing. An RSA-4096 proof
/// is about 1.6 KiB.
pub const DEFAULT_MAX_PROOF_BYTES: usize = 4 * 1024;

/// Longest proof `jti` accepted (256 bytes); it is hashed into the replay key anyway.
pub const MAX_JTI_BYTES: usize = 256;

/// Clock difference between replicas the replay cache allows for (2 s): a proof id outlives
/// the time any replica would still accept the proof by this much.
pub const REPLICA_CLOCK_SKEW: Duration = Duration::from_secs(2);

/// Deepest JSON nesting accepted in a proof payload (the object itself counts as 1).
const MAX_PROOF_DEPTH: usize = 4;

/// What a proof must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopPolicy {
    /// Algorithms a proof may use (default ES256, ES384, EdDSA, PS256, RS256): advertised in
    /// the `algs` challenge parameter. Asymmetric only by construction of [`Algorithm`].
    pub algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be (default 60 s). Also the replay-cache TTL (plus twice
    /// the leeway): raising it lengthens how long proof ids are kept.
    pub max_age: Duration,
    /// Clock skew tolerated on `iat` in both directions (default 5 s).
    pub leeway: Duration,
    /// Largest proof accepted (default [`DEFAULT_MAX_PROOF_BYTES`]).
    pub max_proof_bytes: usize,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        DpopPolicy {
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256,
            ],
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
        }
    }
}

impl DpopPolicy {
    /// The `algs` challenge parameter: the accepted algorithms, space-separated.
    pub fn algs(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        names.join(" ")
    }

    /// How long a proof id must be remembered to refuse every replay of it: a proof is
    /// accepted until `max_age + leeway` after its `iat` (in whole seconds, so up to one
    /// second more), its `iat` may lie `leeway` ahead, and replicas' clocks may differ by
    /// up to [`REPLICA_CLOCK_SKEW`].
    pub fn replay_ttl(&self) -> Duration {
        self.max_age + self.leeway * 2 + Duration::from_secs(1) + REPLICA_CLOCK_SKEW
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    /// The request method, exactly as received (`htm` is compared case-sensitively).
    pub method: &'a str,
    /// The request URI built from the route's configured public origin and the request path,
    /// already normalised with [`normalize_htu`] (never from `Host` / `X-Forwarded-*`).
    pub htu: &'a str,
    /// The access token presented with the proof (for `ath`).
    pub access_token: &'a str,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// A proof that passed every check of [`verify_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's public key (base64url).
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
    /// The proof's `nonce`, if any (checked by the caller when the route uses nonces).
    pub nonce: Option<String>,
}

impl VerifiedProof {
    /// The id recorded in the replay cache: the key thumbprint and the `jti`, so that two
    /// clients cannot collide (nor block each other) by choosing the same `jti`.
    pub fn replay_id(&self) -> String {
        format!("{}:{}", self.jkt, self.jti)
    }
}

fn invalid(why: &'static str) -> AuthError {
    AuthError::InvalidDpopProof(why)
}

/// Validates a DPoP proof against the request (RFC 9449 §4.3, checks 1–12 except the nonce
/// and the replay check, which need state; see the module docs).
///
/// In order: size; compact JWS with a JSON header; `typ` is `dpop+jwt`; `alg` is in the
/// policy; `jwk` is a public asymmetric key usable with `alg` (no private members, no `oct`);
/// the signature verifies with it; the payload is a JSON object; `jti` is a non-empty string
/// of at most [`MAX_JTI_BYTES`]; `htm` equals the method; `htu` equals `ctx.htu` after
/// normalisation, query and fragment ignored; `iat` is within `max_age` (± leeway); `ath`
/// equals base64url(SHA-256(access token)).
pub fn verify_proof(
    proof: &str,
    policy: &DpopPolicy,
    ctx: &ProofContext<'_>,
) -> Result<VerifiedProof, AuthError> {
    if proof.is_empty() {
        return Err(invalid("the DPoP proof is empty"));
    }
    if proof.len() > policy.max_proof_bytes {
        return Err(invalid("the DPoP proof is larger than allowed"));
    }
    let (parsed, header) = jws::parse_compact_with_header(proof)
        .map_err(|_| invalid("the DPoP proof is not a well-formed compact JWS"))?;
    if !parsed
        .header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg = parsed.header.alg;
    if !policy.algorithms.contains(&alg) {
        return Err(invalid("the DPoP proof's algorithm is not accepted"));
    }
    let (jwk_value, jwk) = match header.get("jwk") {
        Some(v @ Value::Object(jwk)) => (v, jwk),
        Some(_) => return Err(invalid("the DPoP proof's jwk must be a JSON object")),
        None => return Err(invalid("the DPoP proof has no jwk header")),
    };
    let key = VerifyingKey::from_jwk(jwk_value, &[alg])
        .map_err(|_| invalid("the DPoP proof's jwk is not an acceptable public key"))?;
    key.verify(alg, parsed.signing_input, &parsed.signature)
        .map_err(|_| invalid("the DPoP proof's signature is invalid"))?;

    let claims = jws::parse_strict_object(&parsed.payload, MAX_PROOF_DEPTH)
        .map_err(|_| invalid("the DPoP proof's payload is not a JSON object"))?;
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j.clone(),
        _ => {
            return Err(invalid(
                "the DPoP proof needs a jti string of 1 to 256 bytes",
            ))
        }
    };
    match claims.get("htm") {
        Some(Value::String(m)) if m == ctx.method => {}
        _ => {
            return Err(invalid(
                "the DPoP proof's htm does not match the request method",
            ))
        }
    }
    match claims.get("htu") {
        Some(Value::String(u)) if normalize_htu(u).as_deref() == Some(ctx.htu) => {}
        _ => {
            return Err(invalid(
                "the DPoP proof's htu does not match the request URI",
            ))
        }
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.is_finite() => f.trunc() as i64,
            _ => return Err(invalid("the DPoP proof's iat must be a number")),
        },
        _ => return Err(invalid("the DPoP proof's iat must be a number")),
    };
    let leeway = secs(policy.leeway);
    if iat > ctx.now.saturating_add(leeway) {
        return Err(invalid("the DPoP proof was issued in the future"));
    }
    if ctx.now.saturating_sub(iat) > secs(policy.max_age).saturating_add(leeway) {
        return Err(invalid("the DPoP proof is too old"));
    }
    match claims.get("ath") {
        Some(Value::String(a)) if constant_time_eq(a, &access_token_hash(ctx.access_token)) => {}
        Some(_) => {
            return Err(invalid(
                "the DPoP proof's ath does not match the access token",
            ))
        }
        None => return Err(invalid("the DPoP proof has no ath")),
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(invalid("the DPoP proof's nonce must be a string")),
    };
    let jkt = thumbprint(jwk).map_err(invalid)?;
    Ok(VerifiedProof {
        jkt,
        jti,
        iat,
        nonce,
    })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `ath`: base64url(SHA-256(ASCII access token)), RFC 9449 §4.2.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url: the hash of the JSON object
/// of its required members only (EC: `crv`, `kty`, `x`, `y`; RSA: `e`, `kty`, `n`; OKP:
/// `crv`, `kty`, `x`), in lexicographic order without whitespace.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, &'static str> {
    const BAD: &str = "the DPoP proof's jwk lacks a member its thumbprint needs";
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err(BAD),
    };
    let mut canonical = Map::new();
    for m in members {
        match jwk.get(*m) {
            Some(v @ Value::String(_)) => {
                canonical.insert((*m).to_owned(), v.clone());
            }
            _ => return Err(BAD),
        }
    }
    // serde_json's Map is ordered by key (no `preserve_order` feature), and strings are
    // written with the minimal escaping RFC 7638 §3.3 asks for.
    let json = serde_json::to_vec(&Value::Object(canonical)).map_err(|_| BAD)?;
    Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &json)))
}

/// A token's confirmation (`cnf`, RFC 7800): what it is bound to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding<'a> {
    /// `cnf.jkt`: the RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1).
    pub jkt: Option<&'a str>,
    /// `cnf["x5t#S256"]`: base64url SHA-256 of the client certificate's DER (RFC 8705 §3.1).
    pub x5t_s256: Option<&'a str>,
}

impl<'a> Binding<'a> {
    /// Reads `cnf` from verified claims. A `cnf` that is not an object, an empty one, one
    /// with any other confirmation method (`jwk`, `kid`, `jku`, …: the token is bound in a
    /// way tokengate cannot check, so it must not pass as a bearer token), or a `jkt` /
    /// `x5t#S256` that is not a non-empty string makes the token invalid.
    pub fn of(claims: &'a Map<String, Value>) -> Result<Self, AuthError> {
        let cnf = match claims.get("cnf") {
            None => return Ok(Binding::default()),
            Some(Value::Object(cnf)) => cnf,
            Some(_) => return Err(AuthError::InvalidClaim("cnf must be an object")),
        };
        if cnf.is_empty() || cnf.keys().any(|k| k != "jkt" && k != "x5t#S256") {
            return Err(AuthError::InvalidClaim(
                "cnf holds a confirmation method tokengate cannot check",
            ));
        }
        let member = |name: &str, bad: &'static str| match cnf.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(AuthError::InvalidClaim(bad)),
        };
        Ok(Binding {
            jkt: member("jkt", "cnf.jkt must be a non-empty string")?,
            x5t_s256: member("x5t#S256", "cnf.x5t#S256 must be a non-empty string")?,
        })
    }
}

/// base64url SHA-256 of a DER certificate: the `x5t#S256` value it matches.
pub fn certificate_thumbprint(sha256_of_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256_of_der)
}

/// HMAC-SHA-256 keys used by [`NonceIssuer`].
fn hmac_key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// The claims of a proof, for clients and tests ([`sign_proof`]).
#[derive(Debug, Clone, Copy)]
pub struct ProofClaims<'a> {
    /// `htm`.
    pub method: &'a str,
    /// `htu`.
    pub uri: &'a str,
    /// The access token `ath` is computed from.
    pub access_token: &'a str,
    /// `iat`.
    pub iat: i64,
    /// `jti`.
    pub jti: &'a str,
    /// `nonce`, when the server asked for one.
    pub nonce: Option<&'a str>,
}

/// Signs a DPoP proof with `key` (client side: `tokengate` itself never needs it on the
/// request path; the tests and the demo use it). The header is `typ` `dpop+jwt`, the key's
/// `alg` and its public `jwk` (`kty` and key members only).
pub fn sign_proof(
    key: &crate::sign::SigningKey,
    claims: &ProofClaims<'_>,
) -> Result<String, crate::sign::SignError> {
    let mut jwk = match key.public_jwk() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for member in ["kid", "alg", "use"] {
        jwk.remove(member);
    }
    let mut header = Map::new();
    header.insert("typ".into(), Value::from("dpop+jwt"));
    header.insert("alg".into(), Value::from(key.alg().name()));
    header.insert("jwk".into(), Value::Object(jwk));
    let mut body = serde_json::json!({
        "jti": claims.jti,
        "htm": claims.method,
        "htu": claims.uri,
        "iat": claims.iat,
        "ath": access_token_hash(claims.access_token),
    });
    if let (Some(n), Some(obj)) = (claims.nonce, body.as_object_mut()) {
        obj.insert("nonce".into(), Value::from(n));
    }
    let payload = serde_json::to_vec(&body)
        .map_err(|_| crate::sign::SignError("could not encode the proof".into()))?;
    key.sign_jws(&header, &payload)
}

/// The RFC 7638 thumbprint of a signing key's public half (what a token's `cnf.jkt` holds).
pub fn key_thumbprint(key: &crate::sign::SigningKey) -> String {
    match key.public_jwk() {
        Value::Object(m) => thumbprint(&m).unwrap_or_default(),
        _ => String::new(),
    }
}
