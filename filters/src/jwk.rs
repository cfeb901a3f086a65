//! JWK / JWKS parsing into verification keys pinned to their algorithms.
//!
//! INTERFACE STUB — implementation owned by the crypto helper.

use crate::jws::Algorithm;

/// Caps applied to a JWKS document before and while parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksLimits {
    /// Largest document accepted, in bytes (default 256 KiB).
    pub max_bytes: usize,
    /// Most keys accepted in one document (default 64); more is an error, not a truncation.
    pub max_keys: usize,
}

impl Default for JwksLimits {
    fn default() -> Self {
        JwksLimits { max_bytes: 256 * 1024, max_keys: 64 }
    }
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    #[error("JWKS document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("JWKS document has more than {0} keys")]
    TooManyKeys(usize),
    #[error("JWKS document is not a JSON object with a `keys` array")]
    NotAKeySet,
}

/// Signature verification failed (bad signature, wrong length, or alg not pinned to key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureError;

/// A public key usable for verification, with the algorithms it is pinned to.
pub struct VerifyingKey {
    _private: (),
}

impl VerifyingKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        todo!()
    }
    /// Whether the key may verify `alg`.
    pub fn supports(&self, _alg: Algorithm) -> bool {
        todo!()
    }
    /// Verifies a JWS signature (raw `R||S` for ECDSA).
    pub fn verify(&self, _alg: Algorithm, _signing_input: &[u8], _signature: &[u8]) -> Result<(), SignatureError> {
        todo!()
    }
    /// Builds a key from one JWK object, pinned to `allowed ∩ what the JWK allows`.
    pub fn from_jwk(_jwk: &serde_json::Value, _allowed: &[Algorithm]) -> Result<Self, String> {
        todo!()
    }
}

/// Parses a JWKS document; unusable keys are skipped, the document as a whole may be refused.
pub fn parse_jwks(_doc: &[u8], _allowed: &[Algorithm], _limits: &JwksLimits) -> Result<Vec<VerifyingKey>, JwkError> {
    todo!()
}
