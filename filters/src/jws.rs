//! Strict compact JWS parsing (RFC 7515 §7.1) and the algorithms tokengate verifies.
//!
//! Everything here runs on attacker-controlled input before any signature is checked, so the
//! parser is deliberately narrow: one serialization (compact), one base64 alphabet without
//! padding or stray bits, a header that is a JSON object without duplicate members, and no
//! extension (`crit`, `b64`) honoured. Key-locating header members (`jku`, `x5u`, `jwk`,
//! `x5c`) are never read.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The asymmetric JWS algorithms tokengate verifies. `none` and HMAC are not representable.
///
/// There is no default: every key is pinned to the algorithms its JWK and the issuer's
/// configuration allow. Adding a variant widens what a token may claim, so each one must map
/// to a verification primitive with a fixed key type (see [`crate::jwk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256; signature is raw `R||S`, 64 bytes.
    ES256,
    /// ECDSA on P-384 with SHA-384; signature is raw `R||S`, 96 bytes.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048–8192 bits).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RSA keys of 2048–8192 bits).
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RSA keys of 2048–8192 bits).
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt length 32 (RFC 7518 §3.5).
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, salt length 48.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, salt length 64.
    PS512,
    /// Ed25519 (RFC 8037); `EdDSA` with any other curve is refused.
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm, in a fixed order (the order of [`Algorithm::index`]).
    pub const ALL: [Algorithm; 9] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::EdDSA,
    ];

    /// Parses the exact, case-sensitive JOSE name (`"ES256"`); `None` for anything else,
    /// including `none`, `HS256` and odd spellings such as `"es256"`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Position of the algorithm in [`Algorithm::ALL`]; a dense index for per-algorithm
    /// tables (always `< Algorithm::ALL.len()`).
    pub fn index(self) -> usize {
        match self {
            Algorithm::ES256 => 0,
            Algorithm::ES384 => 1,
            Algorithm::RS256 => 2,
            Algorithm::RS384 => 3,
            Algorithm::RS512 => 4,
            Algorithm::PS256 => 5,
            Algorithm::PS384 => 6,
            Algorithm::PS512 => 7,
            Algorithm::EdDSA => 8,
        }
    }

    /// Whether the algorithm uses an RSA key (`RS*` and `PS*`).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a compact JWS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three dot-separated segments (and not five either), or the header or signature
    /// segment is empty.
    NotCompact,
    /// Five segments: a JWE.
    Encrypted,
    /// A segment is not canonical, unpadded base64url.
    Base64,
    /// Header or payload is not a JSON object, has duplicate members, or is too deep.
    Json,
    /// `alg` missing, not a string, or not a supported asymmetric algorithm.
    UnsupportedAlgorithm,
    /// `crit` or `b64` present (tokengate understands no extension), in any form.
    Critical,
    /// A header member has the wrong JSON type (`kid`, `typ` not strings).
    BadHeader,
}

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwsError::NotCompact => "not a compact JWS",
            JwsError::Encrypted => "an encrypted JWT (JWE) is not accepted",
            JwsError::Base64 => "a segment is not canonical unpadded base64url",
            JwsError::Json => "the header is not a strict JSON object",
            JwsError::UnsupportedAlgorithm => "the alg is not a supported asymmetric algorithm",
            JwsError::Critical => "the header uses an extension (crit/b64)",
            JwsError::BadHeader => "a header member has the wrong type",
        })
    }
}

impl std::error::Error for JwsError {}

/// Deepest nesting accepted in a JOSE header (the header object itself counts as 1).
///
/// Default 8: real headers are flat; an embedded `jwk` is 2 deep. Raising it lets a token
/// make the parser recurse further before any signature is checked.
pub const MAX_HEADER_DEPTH: usize = 8;

/// The protected header members tokengate acts on. `jku`, `x5u`, `jwk` and `x5c` are never
/// used to find a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    /// The algorithm the token claims; verification also requires the key to be pinned to it.
    pub alg: Algorithm,
    /// The key id, if present (a string; any other type is refused).
    pub kid: Option<String>,
    /// The media type, if present (a string; any other type is refused). Not checked here.
    pub typ: Option<String>,
}

/// A parsed compact JWS. `signing_input` borrows the token (`header.payload`).
///
/// Nothing in it is trusted until [`crate::jwk::VerifyingKey::verify`] accepted `signature`
/// over `signing_input` for `header.alg`.
#[derive(Debug)]
pub struct CompactJws<'a> {
    /// The parsed protected header.
    pub header: JoseHeader,
    /// The ASCII bytes `BASE64URL(header) || '.' || BASE64URL(payload)` of the token.
    pub signing_input: &'a [u8],
    /// The decoded payload, uninterpreted (it need not be JSON).
    pub payload: Vec<u8>,
    /// The decoded signature (raw `R||S` for ECDSA).
    pub signature: Vec<u8>,
}

/// Parses a compact JWS strictly: three segments of canonical unpadded base64url, header a
/// JSON object without duplicate members, `alg` supported, no `crit`.
///
/// Checks, in order: segment count (5 → [`JwsError::Encrypted`], other than 3 →
/// [`JwsError::NotCompact`]); non-empty header and signature segments; base64url (no `=`,
/// no `+`/`/`, no whitespace, no non-zero trailing bits); header JSON (depth at most
/// [`MAX_HEADER_DEPTH`]); `alg`; `crit`/`b64`; `kid`/`typ` types. The caller caps the token
/// length before calling.
pub fn parse_compact(token: &str) -> Result<CompactJws<'_>, JwsError> {
    parse_compact_with_header(token).map(|(jws, _)| jws)
}

/// [`parse_compact`], also returning the whole protected header as parsed (for members
/// tokens never use, such as a DPoP proof's `jwk`). The same checks apply.
pub fn parse_compact_with_header(
    token: &str,
) -> Result<(CompactJws<'_>, Map<String, Value>), JwsError> {
    let bytes = token.as_bytes();
    let mut dots = [0usize; 2];
    let mut count = 0usize;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'.' {
            if let Some(slot) = dots.get_mut(count) {
                *slot = i;
            }
            count += 1;
        }
    }
    match count {
        2 => {}
        4 => return Err(JwsError::Encrypted),
        _ => return Err(JwsError::NotCompact),
    }
    let [first, second] = dots;
    let header_b64 = &bytes[..first];
    let payload_b64 = &bytes[first + 1..second];
    let signature_b64 = &bytes[second + 1..];
    if header_b64.is_empty() || signature_b64.is_empty() {
        return Err(JwsError::NotCompact);
    }

    let header_json = decode_segment(header_b64)?;
    let (header, members) = parse_header(&header_json)?;
    let payload = decode_segment(payload_b64)?;
    let signature = decode_segment(signature_b64)?;
    let jws = CompactJws {
        header,
        signing_input: &bytes[..second],
        payload,
        signature,
    };
    Ok((jws, members))
}

fn decode_segment(segment: &[u8]) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwsError::Base64)
}

fn parse_header(json: &[u8]) -> Result<(JoseHeader, Map<String, Value>), JwsError> {
    let header = parse_strict_object(json, MAX_HEADER_DEPTH)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            Algorithm::from_name(name).ok_or(JwsError::UnsupportedAlgorithm)?
        }
        _ => return Err(JwsError::UnsupportedAlgorithm),
    };
    // RFC 7515 §4.1.11: a recipient must refuse a `crit` it does not fully understand; we
    // understand no extension, so any `crit` (even `[]`, which is itself invalid) is refused.
    // `b64` (RFC 7797) changes what is signed, so it is refused even without `crit`.
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(JwsError::Critical);
    }
    let parsed = JoseHeader {
        alg,
        kid: optional_string(&header, "kid")?,
        typ: optional_string(&header, "typ")?,
    };
    Ok((parsed, header))
}

fn optional_string(header: &Map<String, Value>, name: &str) -> Result<Option<String>, JwsError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwsError::BadHeader),
    }
}

/// Parses a JSON object, refusing duplicate member names at any depth and nesting deeper
/// than `max_depth`.
///
/// The top-level object counts as depth 1, so `max_depth == 0` refuses everything. Member
/// names are compared after unescaping (`"a"` and `"\u0061"` are duplicates). Trailing
/// non-whitespace data is refused. Every failure is [`JwsError::Json`].
pub fn parse_strict_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, JwsError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth_left: max_depth,
    }
    .deserialize(&mut de)
    .map_err(|_| JwsError::Json)?;
    de.end().map_err(|_| JwsError::Json)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JwsError::Json),
    }
}

/// Builds a [`Value`] like serde_json does, but refuses duplicate member names and nesting
/// beyond `depth_left` containers.
#[derive(Clone, Copy)]
struct StrictValue {
    depth_left: usize,
}

impl StrictValue {
    fn child<E: de::Error>(&self) -> Result<StrictValue, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(StrictValue { depth_left }),
            None => Err(E::custom("JSON nested too deeply")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = map.next_value_seed(child)?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn well_formed_token_is_parsed_with_borrowed_signing_input() {
        let t = token(
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            "not json at all",
        );
        let jws = parse_compact(&t).unwrap();
        assert_eq!(jws.header.alg, Algorithm::ES256);
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jws.payload, b"not json at all");
        assert_eq!(jws.signature, b"sig");
        let dot = t.rfind('.').unwrap();
        assert_eq!(jws.signing_input, &t.as_bytes()[..dot]);
    }

    #[test]
    fn every_supported_algorithm_name_round_trips() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
            assert_eq!(Algorithm::ALL[alg.index()], alg);
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(parse_compact(&t).unwrap().header.alg, alg);
        }
    }

    #[test]
    fn alg_none_in_every_spelling_is_refused() {
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                parse_compact(&t).unwrap_err(),
                JwsError::UnsupportedAlgorithm,
                "{alg}"
            );
            // An alg=none token usually has an empty signature: still UnsupportedAlgorithm
            // or NotCompact, never accepted.
            let t = format!("{}.{}.", b64(&format!(r#"{{"alg":"{alg}"}}"#)), b64("{}"));
            assert!(parse_compact(&t).is_err());
        }
    }

    #[test]
    fn hmac_and_unknown_and_miscased_algorithms_are_refused() {
        for alg in [
            "HS256",
            "HS384",
            "HS512",
            "es256",
            "ES512",
            "RS1",
            "ES256 ",
            "EdDSA25519",
        ] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                parse_compact(&t).unwrap_err(),
                JwsError::UnsupportedAlgorithm,
                "{alg}"
            );
        }
    }

    #[test]
    fn missing_or_non_string_alg_is_refused() {
        for h in [
            r#"{}"#,
            r#"{"alg":null}"#,
            r#"{"alg":256}"#,
            r#"{"alg":["ES256"]}"#,
        ] {
            assert_eq!(
                parse_compact(&token(h, "{}")).unwrap_err(),
                JwsError::UnsupportedAlgorithm,
                "{h}"
            );
        }
    }

    #[test]
    fn crit_in_any_form_is_refused() {
        for h in [
            r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"ES256","crit":[]}"#,
            r#"{"alg":"ES256","crit":null}"#,
            r#"{"alg":"ES256","crit":"b64"}"#,
        ] {
            assert_eq!(
                parse_compact(&token(h, "{}")).unwrap_err(),
                JwsError::Critical,
                "{h}"
            );
        }
    }

    #[test]
    fn b64_header_is_refused_even_without_crit() {
        for h in [
            r#"{"alg":"ES256","b64":false}"#,
            r#"{"alg":"ES256","b64":true}"#,
        ] {
            assert_eq!(
                parse_compact(&token(h, "{}")).unwrap_err(),
                JwsError::Critical,
                "{h}"
            );
        }
    }

    #[test]
    fn non_string_kid_or_typ_is_refused() {
        for h in [
            r#"{"alg":"ES256","kid":1}"#,
            r#"{"alg":"ES256","kid":null}"#,
            r#"{"alg":"ES256","typ":["JWT"]}"#,
            r#"{"alg":"ES256","typ":{}}"#,
        ] {
            assert_eq!(
                parse_compact(&token(h, "{}")).unwrap_err(),
                JwsError::BadHeader,
                "{h}"
            );
        }
    }

    #[test]
    fn key_locating_header_members_are_ignored() {
        let h = r#"{"alg":"RS256","jku":"https://evil.example/jwks","x5u":"https://evil.example/c",
                    "jwk":{"kty":"oct","k":"AAAA"},"x5c":["MII"]}"#;
        let t = token(h, "{}");
        let jws = parse_compact(&t).unwrap();
        assert_eq!(
            jws.header,
            JoseHeader {
                alg: Algorithm::RS256,
                kid: None,
                typ: None
            }
        );
    }

    #[test]
    fn wrong_segment_counts_are_not_compact_and_five_is_encrypted() {
        let h = b64(r#"{"alg":"ES256"}"#);
        for t in [
            String::new(),
            h.clone(),
            format!("{h}.e30"),
            format!("{h}.e30.c2ln.x"),
            format!("{h}.e30.c2ln.x.y.z"),
        ] {
            assert_eq!(parse_compact(&t).unwrap_err(), JwsError::NotCompact, "{t}");
        }
        let jwe = format!("{}.a.b.c.d", b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#));
        assert_eq!(parse_compact(&jwe).unwrap_err(), JwsError::Encrypted);
    }

    #[test]
    fn empty_header_or_signature_is_refused() {
        let h = b64(r#"{"alg":"ES256"}"#);
        assert_eq!(
            parse_compact(&format!("{h}.e30.")).unwrap_err(),
            JwsError::NotCompact
        );
        assert_eq!(
            parse_compact(".e30.c2ln").unwrap_err(),
            JwsError::NotCompact
        );
        // An empty payload is legal (detached content is not, but the signature then fails).
        assert!(parse_compact(&format!("{h}..c2ln")).is_ok());
    }

    #[test]
    fn padded_base64_is_refused() {
        let h = b64(r#"{"alg":"ES256"}"#);
        // "sig" is 3 bytes (no padding); "si" encodes as "c2k" / padded "c2k=".
        assert_eq!(
            parse_compact(&format!("{h}.e30.c2k=")).unwrap_err(),
            JwsError::Base64
        );
        assert_eq!(
            parse_compact(&format!("{h}.e30=.c2k")).unwrap_err(),
            JwsError::Base64
        );
        assert_eq!(
            parse_compact(&format!("{h}=.e30.c2k")).unwrap_err(),
            JwsError::Base64
        );
    }

    #[test]
    fn standard_alphabet_and_whitespace_are_refused() {
        let h = b64(r#"{"alg":"ES256"}"#);
        for sig in ["c2k+", "c2k/", "c2 k", "c2k\n", " c2k", "c2k?", "c2k#"] {
            assert_eq!(
                parse_compact(&format!("{h}.e30.{sig}")).unwrap_err(),
                JwsError::Base64,
                "{sig:?}"
            );
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        let h = b64(r#"{"alg":"ES256"}"#);
        // "AA" decodes to one zero byte; "AB" has non-zero unused bits.
        assert!(parse_compact(&format!("{h}.AA.c2k")).is_ok());
        assert_eq!(
            parse_compact(&format!("{h}.AB.c2k")).unwrap_err(),
            JwsError::Base64
        );
        // A single base64 character can encode no byte at all.
        assert_eq!(
            parse_compact(&format!("{h}.e30.c")).unwrap_err(),
            JwsError::Base64
        );
    }

    #[test]
    fn header_that_is_not_a_json_object_is_refused() {
        for h in [
            "[]",
            "\"ES256\"",
            "null",
            "{",
            r#"{"alg":"ES256"} x"#,
            r#"{"alg":"ES256"}{}"#,
        ] {
            assert_eq!(
                parse_compact(&token(h, "{}")).unwrap_err(),
                JwsError::Json,
                "{h}"
            );
        }
    }

    #[test]
    fn duplicate_alg_in_header_is_refused() {
        // serde_json alone would keep the last one and verify as ES256.
        let h = r#"{"alg":"none","alg":"ES256"}"#;
        assert_eq!(parse_compact(&token(h, "{}")).unwrap_err(), JwsError::Json);
    }

    #[test]
    fn duplicate_member_is_refused_at_depth() {
        assert!(parse_strict_object(br#"{"a":{"b":[{"c":1,"d":2}]}}"#, 8).is_ok());
        assert_eq!(
            parse_strict_object(br#"{"a":{"b":[{"c":1,"c":2}]}}"#, 8),
            Err(JwsError::Json)
        );
        assert_eq!(
            parse_strict_object(br#"{"a":{"b":1,"b":1}}"#, 8),
            Err(JwsError::Json)
        );
    }

    #[test]
    fn escaped_duplicate_member_is_refused() {
        assert_eq!(
            parse_strict_object(br#"{"alg":1,"\u0061lg":2}"#, 8),
            Err(JwsError::Json)
        );
    }

    #[test]
    fn nesting_beyond_max_depth_is_refused() {
        assert!(parse_strict_object(br#"{"a":{"b":[1]}}"#, 3).is_ok());
        assert_eq!(
            parse_strict_object(br#"{"a":{"b":[1]}}"#, 2),
            Err(JwsError::Json)
        );
        assert_eq!(parse_strict_object(br#"{}"#, 0), Err(JwsError::Json));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_strict_object(deep.as_bytes(), MAX_HEADER_DEPTH),
            Err(JwsError::Json)
        );
    }

    #[test]
    fn trailing_data_after_object_is_refused() {
        assert!(parse_strict_object(b" {} \n", 8).is_ok());
        assert_eq!(parse_strict_object(b"{} {}", 8), Err(JwsError::Json));
        assert_eq!(parse_strict_object(b"{},", 8), Err(JwsError::Json));
    }

    #[test]
    fn strict_object_keeps_every_json_type() {
        let m = parse_strict_object(br#"{"s":"x","i":-1,"u":18446744073709551615,"f":1.5,"b":true,"n":null,"a":[1,"2"],"o":{}}"#, 8).unwrap();
        let expected = serde_json::json!({"s":"x","i":-1,"u":18446744073709551615u64,"f":1.5,"b":true,"n":null,"a":[1,"2"],"o":{}});
        assert_eq!(Value::Object(m), expected);
    }

    #[test]
    fn invalid_utf8_or_lone_surrogate_in_header_is_refused() {
        assert_eq!(
            parse_strict_object(b"{\"a\":\"\xff\"}", 8),
            Err(JwsError::Json)
        );
        assert_eq!(
            parse_strict_object(br#"{"a":"\ud800"}"#, 8),
            Err(JwsError::Json)
        );
    }
}
