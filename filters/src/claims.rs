//! The claims of a token that passed validation.

use std::sync::Arc;

use serde_json::{Map, Value};

/// A token whose signature and claims were verified. Shared (`Arc`) between the verified
/// token cache and the requests that present it; holds no token material, only claims.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Configured id of the issuer that signed it (not the `iss` URL).
    pub issuer_id: Arc<str>,
    /// `iss`.
    pub iss: String,
    /// `sub`, if present.
    pub sub: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: i64,
    /// `iat`, if present.
    pub iat: Option<i64>,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// Scopes from `scope` (space-delimited string) or `scp` (array of strings).
    pub scopes: Vec<String>,
    /// The OAuth client: `azp`, else `client_id`.
    pub client: Option<String>,
    /// Every claim, for route rules and header injection.
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
