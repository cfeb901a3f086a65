//! Signing keys: the dev issuer of `tokengate demo`, tests, and (later) the local signer.
//!
//! INTERFACE STUB — implementation owned by the crypto helper.

use crate::jws::Algorithm;

/// Why a key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// A private signing key with its `kid` and algorithm.
pub struct SigningKey {
    _private: (),
}

impl SigningKey {
    /// Generates a fresh key (ES256, ES384, RS256/PS256 2048-bit, EdDSA Ed25519).
    pub fn generate(_alg: Algorithm, _kid: impl Into<String>) -> Result<Self, SignError> {
        todo!()
    }
    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        todo!()
    }
    /// The key's algorithm.
    pub fn alg(&self) -> Algorithm {
        todo!()
    }
    /// The public half as a JWK object (`kty`, curve/modulus members, `kid`, `alg`, `use`="sig").
    pub fn public_jwk(&self) -> serde_json::Value {
        todo!()
    }
    /// Signs `claims` as a compact JWS with header `{alg, kid, typ}` where `typ` is `typ`.
    pub fn sign_jwt(&self, _typ: Option<&str>, _claims: &serde_json::Value) -> Result<String, SignError> {
        todo!()
    }
    /// Raw JWS signature over `signing_input` (R||S for ECDSA).
    pub fn sign_raw(&self, _signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        todo!()
    }
}

/// A JWKS document (`{"keys":[…]}`) of the given keys' public halves.
pub fn jwks_document<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> serde_json::Value {
    serde_json::json!({ "keys": keys.into_iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
}
