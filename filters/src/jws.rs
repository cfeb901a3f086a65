//! Strict compact JWS parsing (RFC 7515 §7.1) and the algorithms tokengate verifies.
//!
//! INTERFACE STUB — implementation owned by the crypto helper.

use serde_json::{Map, Value};

/// The asymmetric JWS algorithms tokengate verifies. `none` and HMAC are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    ES256,
    ES384,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm.
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
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a compact JWS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three dot-separated segments (and not five either).
    NotCompact,
    /// Five segments: a JWE.
    Encrypted,
    /// A segment is not canonical, unpadded base64url.
    Base64,
    /// Header or payload is not a JSON object, has duplicate members, or is too deep.
    Json,
    /// `alg` missing, not a string, or not a supported asymmetric algorithm.
    UnsupportedAlgorithm,
    /// `crit` present (tokengate understands no extension), or malformed.
    Critical,
    /// A header member has the wrong JSON type (`kid`, `typ` not strings).
    BadHeader,
}

/// The protected header members tokengate acts on. `jku`, `x5u`, `jwk` and `x5c` are never
/// used to find a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A parsed compact JWS. `signing_input` borrows the token (`header.payload`).
#[derive(Debug)]
pub struct CompactJws<'a> {
    pub header: JoseHeader,
    pub signing_input: &'a [u8],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Parses a compact JWS strictly: three segments of canonical unpadded base64url, header a
/// JSON object without duplicate members, `alg` supported, no `crit`.
pub fn parse_compact(_token: &str) -> Result<CompactJws<'_>, JwsError> {
    todo!()
}

/// Parses a JSON object, refusing duplicate member names at any depth and nesting deeper
/// than `max_depth`.
pub fn parse_strict_object(_bytes: &[u8], _max_depth: usize) -> Result<Map<String, Value>, JwsError> {
    todo!()
}
