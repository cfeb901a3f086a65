//! JWK / JWKS parsing into verification keys pinned to their algorithms.
//!
//! A [`VerifyingKey`] is built once per JWK when a key set is fetched: the public key is
//! parsed and validated by aws-lc (EC point on curve, RSA modulus size) once per algorithm
//! it may verify, so that [`VerifyingKey::verify`] on the request path only looks up a table
//! entry and runs the primitive.

use std::fmt;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::jws::{parse_strict_object, Algorithm};

/// Caps applied to a JWKS document before and while parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksLimits {
    /// Largest document accepted, in bytes (default 256 KiB), checked before parsing.
    /// Raising it lets a key-set endpoint make the gateway parse more JSON per refresh.
    pub max_bytes: usize,
    /// Most keys accepted in one document (default 64); more is an error, not a truncation.
    /// Raising it makes every refresh parse (and validate) more public keys.
    pub max_keys: usize,
}

impl Default for JwksLimits {
    fn default() -> Self {
        JwksLimits {
            max_bytes: 256 * 1024,
            max_keys: 64,
        }
    }
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The document exceeds [`JwksLimits::max_bytes`] (the limit is carried).
    #[error("JWKS document is larger than {0} bytes")]
    TooLarge(usize),
    /// The `keys` array exceeds [`JwksLimits::max_keys`] (the limit is carried).
    #[error("JWKS document has more than {0} keys")]
    TooManyKeys(usize),
    /// Not strict JSON (duplicate members, too deep, trailing data) or no `keys` array.
    #[error("JWKS document is not a JSON object with a `keys` array")]
    NotAKeySet,
}

/// Signature verification failed (bad signature, wrong length, or alg not pinned to key).
///
/// Deliberately carries no reason: the caller reports one outcome for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureError;

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signature verification failed")
    }
}

impl std::error::Error for SignatureError {}

/// Smallest RSA modulus accepted, in bits (2048, as NIST SP 800-131A and RFC 7518 §3.3).
/// Lowering it admits keys that can be factored with modest resources.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits (8192, the upper bound of aws-lc's verifiers).
/// Larger keys would make every verification slower for no gain.
pub const MAX_RSA_BITS: usize = 8192;

/// Deepest nesting accepted in a JWKS document (document = 1, `keys` = 2, a key = 3,
/// `x5c`/`key_ops` = 4, `oth` entries = 5). Default 8.
const JWKS_MAX_DEPTH: usize = 8;

/// Members that only a private or symmetric JWK has. Their presence means the publisher
/// leaked a secret; such a key is never used.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A public key usable for verification, with the algorithms it is pinned to.
///
/// Built by [`VerifyingKey::from_jwk`]; it cannot exist without a validated public key and at
/// least one algorithm. It holds one pre-parsed aws-lc key per pinned algorithm.
pub struct VerifyingKey {
    kid: Option<String>,
    /// Indexed by [`Algorithm::index`]; `Some` only for the algorithms the key is pinned to.
    verifiers: [Option<ParsedPublicKey>; Algorithm::ALL.len()],
    /// The only signature length this key can produce (64/96 for ECDSA `R||S`, 64 for
    /// Ed25519, the modulus length for RSA); anything else is refused before aws-lc runs.
    signature_len: usize,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key may verify `alg` (it is pinned to `alg`).
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.verifiers[alg.index()].is_some()
    }

    /// The algorithms the key is pinned to, in [`Algorithm::ALL`] order (never empty).
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        Algorithm::ALL.into_iter().filter(|a| self.supports(*a))
    }

    /// Verifies a JWS signature (raw `R||S` for ECDSA).
    ///
    /// Fails unless the key is pinned to `alg`, `signature` has the exact length the key
    /// produces, and the signature is valid over `signing_input`. No allocation.
    pub fn verify(
        &self,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let verifier = self.verifiers[alg.index()].as_ref().ok_or(SignatureError)?;
        if signature.len() != self.signature_len {
            return Err(SignatureError);
        }
        verifier
            .verify_sig(signing_input, signature)
            .map_err(|_| SignatureError)
    }

    /// Builds a key from one JWK object, pinned to `allowed ∩ what the JWK allows`.
    ///
    /// Accepted: `kty` `EC` with `crv` `P-256` (ES256) or `P-384` (ES384), coordinates of
    /// exact length and a point on the curve; `RSA` with a 2048–8192-bit modulus and an odd
    /// exponent in `3..2^32` (leading zero octets of `n`/`e` are tolerated); `OKP` with `crv`
    /// `Ed25519` (EdDSA). Refused: `oct` and any other `kty`/`crv`; any private member (`d`,
    /// `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`); `use` other than `"sig"`; `key_ops` without
    /// `"verify"`; an `alg` that is unsupported, does not fit the key type or curve, or is not
    /// in `allowed`; a non-string `kid`. Without `alg`, an EC/OKP key gets its curve's
    /// algorithm and an RSA key every `RS*`/`PS*` in `allowed`.
    ///
    /// The error is a short reason without key material, for logs.
    pub fn from_jwk(jwk: &Value, allowed: &[Algorithm]) -> Result<Self, String> {
        let jwk = jwk.as_object().ok_or("JWK is not a JSON object")?;
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err("`kid` is not a string".into()),
        };
        let kty = match jwk.get("kty") {
            Some(Value::String(kty)) => kty.as_str(),
            Some(_) => return Err("`kty` is not a string".into()),
            None => return Err("`kty` is missing".into()),
        };
        if kty == "oct" {
            return Err("symmetric keys (kty oct) are not accepted".into());
        }
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return Err(format!("private key member `{member}` present"));
        }
        check_use(jwk)?;
        let declared = match jwk.get("alg") {
            None => None,
            Some(Value::String(name)) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| format!("unsupported alg {:?}", truncate(name)))?,
            ),
            Some(_) => return Err("`alg` is not a string".into()),
        };

        let mut key = VerifyingKey {
            kid,
            verifiers: Default::default(),
            signature_len: 0,
        };
        match kty {
            "EC" => key.add_ec(jwk, declared, allowed)?,
            "OKP" => key.add_okp(jwk, declared, allowed)?,
            "RSA" => key.add_rsa(jwk, declared, allowed)?,
            other => return Err(format!("unsupported kty {:?}", truncate(other))),
        }
        Ok(key)
    }

    fn add_ec(
        &mut self,
        jwk: &Map<String, Value>,
        declared: Option<Algorithm>,
        allowed: &[Algorithm],
    ) -> Result<(), String> {
        let (alg, coordinate_len, verification): (
            _,
            _,
            &'static signature::EcdsaVerificationAlgorithm,
        ) = match string_member(jwk, "crv")? {
            "P-256" => (Algorithm::ES256, 32, &signature::ECDSA_P256_SHA256_FIXED),
            "P-384" => (Algorithm::ES384, 48, &signature::ECDSA_P384_SHA384_FIXED),
            other => return Err(format!("unsupported EC crv {:?}", truncate(other))),
        };
        let alg = pin_single(alg, declared, allowed)?;
        let x = bytes_member(jwk, "x")?;
        let y = bytes_member(jwk, "y")?;
        if x.len() != coordinate_len || y.len() != coordinate_len {
            return Err(format!("EC coordinates must be {coordinate_len} bytes"));
        }
        let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        let parsed = ParsedPublicKey::new(verification, &point)
            .map_err(|_| "EC point is not on the curve")?;
        self.verifiers[alg.index()] = Some(parsed);
        self.signature_len = 2 * coordinate_len;
        Ok(())
    }

    fn add_okp(
        &mut self,
        jwk: &Map<String, Value>,
        declared: Option<Algorithm>,
        allowed: &[Algorithm],
    ) -> Result<(), String> {
        match string_member(jwk, "crv")? {
            "Ed25519" => {}
            other => return Err(format!("unsupported OKP crv {:?}", truncate(other))),
        }
        let alg = pin_single(Algorithm::EdDSA, declared, allowed)?;
        let x = bytes_member(jwk, "x")?;
        if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
            return Err("Ed25519 public key must be 32 bytes".into());
        }
        let parsed = ParsedPublicKey::new(&signature::ED25519, &x)
            .map_err(|_| "invalid Ed25519 public key")?;
        self.verifiers[alg.index()] = Some(parsed);
        self.signature_len = 64;
        Ok(())
    }

    fn add_rsa(
        &mut self,
        jwk: &Map<String, Value>,
        declared: Option<Algorithm>,
        allowed: &[Algorithm],
    ) -> Result<(), String> {
        let n = bytes_member(jwk, "n")?;
        let e = bytes_member(jwk, "e")?;
        let n = strip_leading_zeros(&n);
        let e = strip_leading_zeros(&e);
        let bits = bit_length(n);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA modulus of {bits} bits is below {MIN_RSA_BITS}"
            ));
        }
        if bits > MAX_RSA_BITS {
            return Err(format!(
                "RSA modulus of {bits} bits is above {MAX_RSA_BITS}"
            ));
        }
        // aws-lc refuses such exponents at verification time; refusing them here keeps a
        // key that can never verify (or e = 1, which would make any message its own
        // signature) out of the key set.
        let e_value = e.iter().try_fold(0u64, |acc, b| {
            acc.checked_mul(256).map(|v| v | u64::from(*b))
        });
        match e_value {
            Some(v) if (3..1 << 32).contains(&v) && v % 2 == 1 => {}
            _ => return Err("RSA public exponent must be odd and in 3..2^32".into()),
        }
        let algorithms: Vec<Algorithm> = match declared {
            Some(alg) if !alg.is_rsa() => return Err(format!("alg {alg} does not fit kty RSA")),
            Some(alg) if !allowed.contains(&alg) => {
                return Err(format!("alg {alg} is not allowed"))
            }
            Some(alg) => vec![alg],
            None => allowed.iter().copied().filter(|a| a.is_rsa()).collect(),
        };
        if algorithms.is_empty() {
            return Err("no allowed algorithm for an RSA key".into());
        }
        let components = RsaPublicKeyComponents { n, e };
        for alg in algorithms {
            let parameters =
                rsa_parameters(alg).ok_or_else(|| format!("alg {alg} does not fit kty RSA"))?;
            let parsed = components
                .to_parsed_public_key(parameters)
                .map_err(|_| "invalid RSA public key")?;
            self.verifiers[alg.index()] = Some(parsed);
        }
        self.signature_len = n.len();
        Ok(())
    }
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    match alg {
        Algorithm::RS256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => None,
    }
}

/// Pins an EC/OKP key to the one algorithm its curve implies, after checking a declared
/// `alg` agrees and the algorithm is allowed.
fn pin_single(
    implied: Algorithm,
    declared: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Algorithm, String> {
    if let Some(declared) = declared {
        if declared != implied {
            return Err(format!(
                "alg {declared} does not fit the key's curve ({implied})"
            ));
        }
    }
    if !allowed.contains(&implied) {
        return Err(format!("alg {implied} is not allowed"));
    }
    Ok(implied)
}

/// `use`, if present, must be `"sig"`; `key_ops`, if present, must be an array of strings
/// that contains `"verify"`.
fn check_use(jwk: &Map<String, Value>) -> Result<(), String> {
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("`use` is not \"sig\"".into()),
    }
    match jwk.get("key_ops") {
        None => Ok(()),
        Some(Value::Array(ops)) => {
            let mut verify = false;
            for op in ops {
                match op.as_str() {
                    Some("verify") => verify = true,
                    Some(_) => {}
                    None => return Err("`key_ops` holds a non-string".into()),
                }
            }
            if verify {
                Ok(())
            } else {
                Err("`key_ops` does not include \"verify\"".into())
            }
        }
        Some(_) => Err("`key_ops` is not an array".into()),
    }
}

fn string_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("`{name}` is not a string")),
        None => Err(format!("`{name}` is missing")),
    }
}

/// Decodes a base64url member strictly (no padding, no stray bits).
fn bytes_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(string_member(jwk, name)?)
        .map_err(|_| format!("`{name}` is not unpadded base64url"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bit length of a big-endian unsigned integer without leading zero octets.
fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(first) => be.len() * 8 - first.leading_zeros() as usize,
    }
}

/// Bounds attacker-influenced strings quoted in error messages.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses a JWKS document; unusable keys are skipped, the document as a whole may be refused.
///
/// The size is checked against `limits.max_bytes` before any parsing ([`JwkError::TooLarge`]);
/// the document must be a strict JSON object (no duplicate members at any depth) with a
/// `keys` array ([`JwkError::NotAKeySet`]) of at most `limits.max_keys` entries
/// ([`JwkError::TooManyKeys`]). Each entry goes through [`VerifyingKey::from_jwk`]; one that
/// fails is skipped and logged at debug level with its `kid` and the reason only. Several
/// keys may share a `kid` (lookup is by `kid` and algorithm).
pub fn parse_jwks(
    doc: &[u8],
    allowed: &[Algorithm],
    limits: &JwksLimits,
) -> Result<Vec<VerifyingKey>, JwkError> {
    if doc.len() > limits.max_bytes {
        return Err(JwkError::TooLarge(limits.max_bytes));
    }
    let set = parse_strict_object(doc, JWKS_MAX_DEPTH).map_err(|_| JwkError::NotAKeySet)?;
    let entries = match set.get("keys") {
        Some(Value::Array(entries)) => entries,
        _ => return Err(JwkError::NotAKeySet),
    };
    if entries.len() > limits.max_keys {
        return Err(JwkError::TooManyKeys(limits.max_keys));
    }
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        match VerifyingKey::from_jwk(entry, allowed) {
            Ok(key) => keys.push(key),
            Err(reason) => {
                let kid = entry.get("kid").and_then(Value::as_str).map(truncate);
                tracing::debug!(kid = ?kid, %reason, "skipping unusable JWK");
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use serde_json::json;

    use super::*;
    use crate::sign::SigningKey;

    fn key(alg: Algorithm) -> &'static SigningKey {
        static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            Algorithm::ALL
                .into_iter()
                .map(|a| SigningKey::generate(a, format!("kid-{a}")).unwrap())
                .collect()
        });
        &keys[alg.index()]
    }

    /// The public JWK of a generated key with `edit` applied.
    fn jwk_with(alg: Algorithm, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut jwk = key(alg).public_jwk();
        edit(jwk.as_object_mut().unwrap());
        jwk
    }

    fn pinned(jwk: &Value, allowed: &[Algorithm]) -> Vec<Algorithm> {
        VerifyingKey::from_jwk(jwk, allowed)
            .unwrap()
            .algorithms()
            .collect()
    }

    fn signed(alg: Algorithm) -> Vec<u8> {
        key(alg).sign_raw(b"input").unwrap()
    }

    #[test]
    fn ec_keys_are_pinned_to_their_curve_algorithm() {
        for alg in [Algorithm::ES256, Algorithm::ES384] {
            assert_eq!(pinned(&key(alg).public_jwk(), &Algorithm::ALL), vec![alg]);
            let no_alg = jwk_with(alg, |j| drop(j.remove("alg")));
            assert_eq!(pinned(&no_alg, &Algorithm::ALL), vec![alg]);
        }
    }

    #[test]
    fn okp_ed25519_key_is_pinned_to_eddsa() {
        let no_alg = jwk_with(Algorithm::EdDSA, |j| drop(j.remove("alg")));
        assert_eq!(pinned(&no_alg, &Algorithm::ALL), vec![Algorithm::EdDSA]);
    }

    #[test]
    fn rsa_key_without_alg_is_pinned_to_every_allowed_rsa_algorithm() {
        let no_alg = jwk_with(Algorithm::RS256, |j| drop(j.remove("alg")));
        let rsa: Vec<_> = Algorithm::ALL.into_iter().filter(|a| a.is_rsa()).collect();
        assert_eq!(pinned(&no_alg, &Algorithm::ALL), rsa);
        let allowed = [Algorithm::ES256, Algorithm::PS256, Algorithm::RS512];
        assert_eq!(
            pinned(&no_alg, &allowed),
            vec![Algorithm::RS512, Algorithm::PS256]
        );
        let k = VerifyingKey::from_jwk(&no_alg, &allowed).unwrap();
        assert!(
            k.verify(Algorithm::RS256, b"input", &signed(Algorithm::RS256))
                .is_err(),
            "RS256 not allowed"
        );
    }

    #[test]
    fn rsa_key_with_alg_is_pinned_to_that_algorithm_only() {
        let jwk = key(Algorithm::PS256).public_jwk();
        let k = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).unwrap();
        assert_eq!(k.algorithms().collect::<Vec<_>>(), vec![Algorithm::PS256]);
        assert!(k
            .verify(Algorithm::PS256, b"input", &signed(Algorithm::PS256))
            .is_ok());
        assert!(!k.supports(Algorithm::RS256));
    }

    #[test]
    fn oct_key_is_refused() {
        let jwk = json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"});
        let err = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).unwrap_err();
        assert!(err.contains("oct"), "{err}");
        let jwk = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err());
    }

    #[test]
    fn unknown_kty_or_curve_is_refused() {
        let ec = |crv: &str| {
            jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("crv".into(), json!(crv)))
            })
        };
        for jwk in [
            ec("P-521"),
            ec("secp256k1"),
            ec("p-256"),
            jwk_with(Algorithm::ES256, |j| drop(j.remove("crv"))),
            jwk_with(Algorithm::EdDSA, |j| {
                drop(j.insert("crv".into(), json!("Ed448")))
            }),
            jwk_with(Algorithm::EdDSA, |j| {
                drop(j.insert("crv".into(), json!("X25519")))
            }),
            jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("kty".into(), json!("ec")))
            }),
            jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("kty".into(), json!("AKP")))
            }),
            jwk_with(Algorithm::ES256, |j| drop(j.remove("kty"))),
            json!("not an object"),
        ] {
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{jwk}"
            );
        }
    }

    fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
        json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
    }

    #[test]
    fn rsa_key_below_2048_bits_is_refused() {
        for bits in [512usize, 1024, 2047] {
            let mut n = vec![0xc5; bits.div_ceil(8)];
            n[0] = 0xff >> (n.len() * 8 - bits);
            let err =
                VerifyingKey::from_jwk(&rsa_jwk(&n, &[1, 0, 1]), &Algorithm::ALL).unwrap_err();
            assert!(err.contains("below 2048"), "{bits}: {err}");
        }
        let huge = vec![0xc5; 8192 / 8 + 1];
        assert!(VerifyingKey::from_jwk(&rsa_jwk(&huge, &[1, 0, 1]), &Algorithm::ALL).is_err());
    }

    #[test]
    fn rsa_modulus_with_leading_zero_octet_is_tolerated() {
        let jwk = key(Algorithm::RS256).public_jwk();
        let mut n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        n.insert(0, 0);
        let padded = jwk_with(Algorithm::RS256, |j| {
            drop(j.insert("n".into(), json!(URL_SAFE_NO_PAD.encode(&n))))
        });
        let k = VerifyingKey::from_jwk(&padded, &Algorithm::ALL).unwrap();
        assert!(k
            .verify(Algorithm::RS256, b"input", &signed(Algorithm::RS256))
            .is_ok());
    }

    #[test]
    fn rsa_exponent_that_is_even_tiny_or_huge_is_refused() {
        let n = URL_SAFE_NO_PAD
            .decode(key(Algorithm::RS256).public_jwk()["n"].as_str().unwrap())
            .unwrap();
        for e in [&[][..], &[1], &[2], &[0, 1], &[1, 0, 0], &[1, 0, 0, 0, 1]] {
            assert!(
                VerifyingKey::from_jwk(&rsa_jwk(&n, e), &Algorithm::ALL).is_err(),
                "{e:?}"
            );
        }
        assert!(VerifyingKey::from_jwk(&rsa_jwk(&n, &[3]), &Algorithm::ALL).is_ok());
    }

    #[test]
    fn private_key_member_is_refused() {
        for member in PRIVATE_MEMBERS {
            for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
                let jwk = jwk_with(alg, |j| drop(j.insert(member.into(), json!("AQAB"))));
                let err = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).unwrap_err();
                assert!(err.contains("private"), "{alg} {member}: {err}");
                assert!(!err.contains("AQAB"), "error leaks key material: {err}");
            }
        }
    }

    #[test]
    fn use_other_than_sig_is_refused() {
        for value in [json!("enc"), json!("SIG"), json!(null), json!(["sig"])] {
            let jwk = jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("use".into(), value.clone()))
            });
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{value}"
            );
        }
        let absent = jwk_with(Algorithm::ES256, |j| drop(j.remove("use")));
        assert!(VerifyingKey::from_jwk(&absent, &Algorithm::ALL).is_ok());
    }

    #[test]
    fn key_ops_without_verify_is_refused() {
        for value in [
            json!(["encrypt"]),
            json!(["sign"]),
            json!([]),
            json!("verify"),
            json!(["verify", 1]),
        ] {
            let jwk = jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("key_ops".into(), value.clone()))
            });
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{value}"
            );
        }
        let ok = jwk_with(Algorithm::ES256, |j| {
            drop(j.insert("key_ops".into(), json!(["sign", "verify"])))
        });
        assert!(VerifyingKey::from_jwk(&ok, &Algorithm::ALL).is_ok());
    }

    #[test]
    fn alg_inconsistent_with_key_type_or_curve_is_refused() {
        let set_alg = |base: Algorithm, alg: &str| {
            jwk_with(base, |j| drop(j.insert("alg".into(), json!(alg))))
        };
        for (base, alg) in [
            (Algorithm::ES256, "ES384"),
            (Algorithm::ES384, "ES256"),
            (Algorithm::ES256, "RS256"),
            (Algorithm::ES256, "EdDSA"),
            (Algorithm::RS256, "ES256"),
            (Algorithm::RS256, "EdDSA"),
            (Algorithm::EdDSA, "ES256"),
            (Algorithm::EdDSA, "PS256"),
        ] {
            assert!(
                VerifyingKey::from_jwk(&set_alg(base, alg), &Algorithm::ALL).is_err(),
                "{base} key with alg {alg}"
            );
        }
    }

    #[test]
    fn unsupported_or_non_string_alg_is_refused() {
        for value in [
            json!("HS256"),
            json!("none"),
            json!("es256"),
            json!("RSA-OAEP"),
            json!(7),
            json!(null),
        ] {
            let jwk = jwk_with(Algorithm::RS256, |j| {
                drop(j.insert("alg".into(), value.clone()))
            });
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{value}"
            );
        }
    }

    #[test]
    fn alg_outside_allowed_is_refused() {
        assert!(
            VerifyingKey::from_jwk(&key(Algorithm::RS256).public_jwk(), &[Algorithm::PS256])
                .is_err()
        );
        assert!(
            VerifyingKey::from_jwk(&key(Algorithm::ES256).public_jwk(), &[Algorithm::RS256])
                .is_err()
        );
        let no_alg = jwk_with(Algorithm::ES384, |j| drop(j.remove("alg")));
        assert!(VerifyingKey::from_jwk(&no_alg, &[Algorithm::ES256]).is_err());
        let rsa_no_alg = jwk_with(Algorithm::RS256, |j| drop(j.remove("alg")));
        assert!(
            VerifyingKey::from_jwk(&rsa_no_alg, &[Algorithm::ES256, Algorithm::EdDSA]).is_err()
        );
        assert!(VerifyingKey::from_jwk(&rsa_no_alg, &[]).is_err());
    }

    #[test]
    fn ec_coordinates_of_wrong_length_or_off_curve_are_refused() {
        let jwk = key(Algorithm::ES256).public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let mut longer = vec![0];
        longer.extend_from_slice(&x);
        let mut off_curve = x.clone();
        off_curve[31] ^= 1;
        for bad in [longer, x[1..].to_vec(), off_curve] {
            let jwk = jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("x".into(), json!(URL_SAFE_NO_PAD.encode(&bad))))
            });
            assert!(VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err());
        }
        let missing_y = jwk_with(Algorithm::ES256, |j| drop(j.remove("y")));
        assert!(VerifyingKey::from_jwk(&missing_y, &Algorithm::ALL).is_err());
    }

    #[test]
    fn padded_or_standard_base64_in_key_members_is_refused() {
        let x = key(Algorithm::EdDSA).public_jwk()["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let standard_alphabet = format!("+{}", &x[1..]);
        for bad in [format!("{x}="), standard_alphabet, format!(" {x}")] {
            let jwk = jwk_with(Algorithm::EdDSA, |j| drop(j.insert("x".into(), json!(bad))));
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_string_kid_is_refused() {
        for value in [json!(1), json!(null), json!(["a"])] {
            let jwk = jwk_with(Algorithm::ES256, |j| {
                drop(j.insert("kid".into(), value.clone()))
            });
            assert!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err(),
                "{value}"
            );
        }
        let no_kid = jwk_with(Algorithm::ES256, |j| drop(j.remove("kid")));
        assert_eq!(
            VerifyingKey::from_jwk(&no_kid, &Algorithm::ALL)
                .unwrap()
                .kid(),
            None
        );
    }

    #[test]
    fn signature_of_wrong_length_is_refused_before_verification() {
        for alg in [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
        ] {
            let k = VerifyingKey::from_jwk(&key(alg).public_jwk(), &Algorithm::ALL).unwrap();
            let good = signed(alg);
            assert!(k.verify(alg, b"input", &good).is_ok());
            let mut longer = good.clone();
            longer.push(0);
            assert!(
                k.verify(alg, b"input", &longer).is_err(),
                "{alg} trailing zero"
            );
            let mut prefixed = vec![0];
            prefixed.extend_from_slice(&good);
            assert!(
                k.verify(alg, b"input", &prefixed).is_err(),
                "{alg} leading zero"
            );
            assert!(
                k.verify(alg, b"input", &good[..good.len() - 1]).is_err(),
                "{alg} truncated"
            );
            assert!(k.verify(alg, b"input", &[]).is_err(), "{alg} empty");
        }
    }

    #[test]
    fn debug_output_shows_kid_and_algorithms_only() {
        let k =
            VerifyingKey::from_jwk(&key(Algorithm::ES256).public_jwk(), &Algorithm::ALL).unwrap();
        assert_eq!(
            format!("{k:?}"),
            "VerifyingKey { kid: Some(\"kid-ES256\"), algorithms: [ES256], .. }"
        );
    }

    fn doc(keys: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    #[test]
    fn oversized_jwks_is_refused_before_parsing() {
        let limits = JwksLimits {
            max_bytes: 16,
            max_keys: 64,
        };
        // Not even JSON: the size check must come first.
        assert_eq!(
            parse_jwks(&[b'x'; 17], &Algorithm::ALL, &limits).unwrap_err(),
            JwkError::TooLarge(16)
        );
        assert_eq!(
            parse_jwks(br#"{"keys":[]}"#, &Algorithm::ALL, &limits)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn document_without_keys_array_is_not_a_key_set() {
        for d in [
            &b"[]"[..],
            b"{}",
            br#"{"keys":{}}"#,
            br#"{"keys":null}"#,
            b"not json",
            br#"{"keys":[]} x"#,
        ] {
            assert_eq!(
                parse_jwks(d, &Algorithm::ALL, &JwksLimits::default()).unwrap_err(),
                JwkError::NotAKeySet
            );
        }
    }

    #[test]
    fn jwks_with_duplicate_member_is_refused_as_a_whole() {
        let d = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a","x":"b"}]}"#;
        assert_eq!(
            parse_jwks(d, &Algorithm::ALL, &JwksLimits::default()).unwrap_err(),
            JwkError::NotAKeySet
        );
        let d = br#"{"keys":[],"keys":[]}"#;
        assert_eq!(
            parse_jwks(d, &Algorithm::ALL, &JwksLimits::default()).unwrap_err(),
            JwkError::NotAKeySet
        );
    }

    #[test]
    fn too_many_keys_is_an_error_not_a_truncation() {
        let keys = vec![key(Algorithm::ES256).public_jwk(); 3];
        let limits = JwksLimits {
            max_bytes: 1 << 20,
            max_keys: 2,
        };
        assert_eq!(
            parse_jwks(&doc(&keys), &Algorithm::ALL, &limits).unwrap_err(),
            JwkError::TooManyKeys(2)
        );
        assert_eq!(
            parse_jwks(&doc(&keys[..2]), &Algorithm::ALL, &limits)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn unusable_keys_are_skipped_and_duplicate_kids_kept() {
        let same_kid_rsa = jwk_with(Algorithm::PS256, |j| {
            drop(j.insert("kid".into(), json!("kid-ES256")))
        });
        let keys = [
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            key(Algorithm::ES256).public_jwk(),
            jwk_with(Algorithm::ES384, |j| {
                drop(j.insert("use".into(), json!("enc")))
            }),
            same_kid_rsa,
            json!(42),
            key(Algorithm::EdDSA).public_jwk(),
        ];
        let parsed = parse_jwks(&doc(&keys), &Algorithm::ALL, &JwksLimits::default()).unwrap();
        let summary: Vec<_> = parsed
            .iter()
            .map(|k| (k.kid(), k.algorithms().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("kid-ES256"), vec![Algorithm::ES256]),
                (Some("kid-ES256"), vec![Algorithm::PS256]),
                (Some("kid-EdDSA"), vec![Algorithm::EdDSA]),
            ]
        );
    }

    #[test]
    fn jwks_keys_are_filtered_by_allowed_algorithms() {
        let keys = [
            key(Algorithm::ES256).public_jwk(),
            key(Algorithm::RS256).public_jwk(),
        ];
        let parsed = parse_jwks(&doc(&keys), &[Algorithm::RS256], &JwksLimits::default()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].supports(Algorithm::RS256));
    }
}
