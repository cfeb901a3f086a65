//! The gateway's own signer: mints audience-restricted RFC 9068 JWT access tokens and
//! publishes the JWKS that verifies them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{
    audit, narrow_scopes, ExchangeConfigError, ExchangeError, ExchangeRequest, Exchanger,
    IssuedToken, ISSUED_TOKEN_TYP,
};
use crate::sign::{jwks_document, SigningKey};
use crate::validate::unix_now;

/// Claim of a minted token naming the subject token's `jti` (RFC 8693 defines no claim
/// for this). It links the backend token to the token it was exchanged for, for audit and
/// revocation, without copying the token. Omitted when the subject has no `jti`.
pub const SUBJECT_TOKEN_JTI_CLAIM: &str = "subject_token_jti";

/// Claims never copied by `carry_claims`: the ones the signer sets itself, and the ones
/// whose copy would widen, re-bind or forge the token (`scp` is an alternative scope
/// claim, `cnf` a proof-of-possession binding, `act`/`may_act` delegation).
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "cnf",
    "act",
    "may_act",
    "scope",
    "scp",
    "client_id",
    "azp",
    SUBJECT_TOKEN_JTI_CLAIM,
];

/// Random bytes of a minted `jti` (128 bits, written as 22 base64url characters).
const JTI_BYTES: usize = 16;

/// Mints backend tokens with the active key of a key set, and publishes every key.
///
/// Holding several keys makes rotation safe: publish the new key next to the old one, make
/// it active, and drop the old key only once the tokens it signed have expired (at most the
/// longest route `ttl`). `Debug` shows the issuer, the actor and the `kid`s, never keys.
///
/// Header: `alg` of the active key, `kid` = active kid, `typ` = `at+jwt`. Claims:
/// - `iss`: the signer's issuer; `aud`: the request's audience;
/// - `sub`: the subject's `sub`, else its client (RFC 9068 §2.2 for client-credentials
///   tokens); a subject with neither is refused ([`ExchangeError::SubjectRejected`]);
/// - `scope`: [`narrow_scopes`], omitted when empty;
/// - `jti`: 128 random bits; `iat`: now; `exp`: min(now + ttl, subject `exp`);
/// - `client_id`: the subject's `client_id`, else its `azp`; `azp`: the subject's `azp`;
///   each omitted when absent;
/// - `act` (RFC 8693 §4.1): `{"sub": <actor>}`, with the subject's own `act` nested as
///   `act.act` so the delegation chain is kept;
/// - [`SUBJECT_TOKEN_JTI_CLAIM`]: the subject's `jti`;
/// - each `carry_claims` entry present in the subject and not in [`RESERVED_CLAIMS`].
pub struct LocalSigner {
    issuer: String,
    actor: String,
    keys: Vec<Arc<SigningKey>>,
    active: Arc<SigningKey>,
    jwks: Value,
    rng: SystemRandom,
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("issuer", &self.issuer)
            .field("actor", &self.actor)
            .field("active_kid", &self.active.kid())
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// Builds a signer over `keys` that signs with the key whose `kid` is `active_kid`; the
    /// others are only published in [`LocalSigner::jwks`].
    ///
    /// The actor named in `act.sub` defaults to `issuer` (see [`LocalSigner::with_actor`]).
    /// Refuses an empty issuer, no keys, duplicate `kid`s and an unknown active `kid`.
    pub fn new(
        issuer: String,
        keys: Vec<SigningKey>,
        active_kid: &str,
    ) -> Result<Self, ExchangeConfigError> {
        if issuer.is_empty() {
            return Err(ExchangeConfigError::InvalidSetting(
                "the signer issuer is empty",
            ));
        }
        if keys.is_empty() {
            return Err(ExchangeConfigError::NoKeys);
        }
        let keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid() == key.kid()) {
                return Err(ExchangeConfigError::DuplicateKeyId(key.kid().to_owned()));
            }
        }
        let active = keys
            .iter()
            .find(|k| k.kid() == active_kid)
            .cloned()
            .ok_or_else(|| ExchangeConfigError::UnknownActiveKey(active_kid.to_owned()))?;
        let jwks = jwks_document(keys.iter().map(|k| &**k));
        Ok(LocalSigner {
            actor: issuer.clone(),
            issuer,
            keys,
            active,
            jwks,
            rng: SystemRandom::new(),
        })
    }

    /// Names the acting party in `act.sub` (default: the signer's issuer). Use the
    /// gateway's client id when backends authorize the actor by client id.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` new tokens are signed with.
    pub fn active_kid(&self) -> &str {
        self.active.kid()
    }

    /// The JWKS document (`{"keys":[…]}`) with every key's public JWK (`kid`, `alg`,
    /// `use`="sig"), active or not, for backends to verify minted tokens.
    pub fn jwks(&self) -> Value {
        self.jwks.clone()
    }

    /// Mints a token synchronously on the calling thread.
    ///
    /// ECDSA and EdDSA signing takes tens of microseconds; RSA about a millisecond, which
    /// is why [`Exchanger::exchange`] moves RSA signing off the async threads. Writes the
    /// audit event.
    pub fn mint(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError> {
        let draft = self.draft(req)?;
        let token = sign(&self.active, &draft.claims)?;
        Ok(draft.finish(req, token))
    }

    /// Everything but the signature.
    fn draft(&self, req: &ExchangeRequest<'_>) -> Result<Draft, ExchangeError> {
        if req.audience.is_empty() {
            return Err(ExchangeError::InvalidTarget);
        }
        let subject = req.subject;
        let now = unix_now();
        if subject.exp <= now {
            return Err(ExchangeError::SubjectRejected);
        }
        let ttl = i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let exp = now.saturating_add(ttl).min(subject.exp);
        let sub = subject
            .sub
            .as_deref()
            .or(subject.client.as_deref())
            .ok_or(ExchangeError::SubjectRejected)?;
        let jti = self.new_jti()?;
        let scope = narrow_scopes(&subject.scopes, req.allowed_scopes);

        let mut claims = Map::new();
        for name in req.carry_claims {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                continue;
            }
            if let Some(value) = subject.claims.get(name) {
                claims.insert(name.clone(), value.clone());
            }
        }
        claims.insert("iss".into(), Value::from(self.issuer.as_str()));
        claims.insert("sub".into(), Value::from(sub));
        claims.insert("aud".into(), Value::from(req.audience));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("jti".into(), Value::from(jti.as_str()));
        if !scope.is_empty() {
            claims.insert("scope".into(), Value::from(scope.as_str()));
        }
        let client_id = string_claim(subject, "client_id").or(string_claim(subject, "azp"));
        if let Some(client_id) = client_id {
            claims.insert("client_id".into(), Value::from(client_id));
        }
        if let Some(azp) = string_claim(subject, "azp") {
            claims.insert("azp".into(), Value::from(azp));
        }
        let mut act = Map::new();
        act.insert("sub".into(), Value::from(req.actor.unwrap_or(&self.actor)));
        if let Some(previous @ Value::Object(_)) = subject.claims.get("act") {
            act.insert("act".into(), previous.clone());
        }
        claims.insert("act".into(), Value::Object(act));
        if let Some(subject_jti) = &subject.jti {
            claims.insert(
                SUBJECT_TOKEN_JTI_CLAIM.into(),
                Value::from(subject_jti.as_str()),
            );
        }
        Ok(Draft {
            claims: Value::Object(claims),
            jti,
            exp,
            scope,
        })
    }

    fn new_jti(&self) -> Result<String, ExchangeError> {
        let mut bytes = [0u8; JTI_BYTES];
        self.rng.fill(&mut bytes).map_err(|_| {
            tracing::error!(target: "tokengate::exchange", "the system random generator failed");
            ExchangeError::Signing
        })?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

#[async_trait]
impl Exchanger for LocalSigner {
    /// Mints a token; RSA signing runs on the blocking pool, other algorithms inline.
    async fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError> {
        if !self.active.alg().is_rsa() {
            return self.mint(req);
        }
        let draft = self.draft(req)?;
        let key = Arc::clone(&self.active);
        let claims = draft.claims.clone();
        let token = tokio::task::spawn_blocking(move || sign(&key, &claims))
            .await
            .map_err(|_| ExchangeError::Signing)??;
        Ok(draft.finish(req, token))
    }
}

/// A token's claims before signing.
struct Draft {
    claims: Value,
    jti: String,
    exp: i64,
    scope: String,
}

impl Draft {
    fn finish(self, req: &ExchangeRequest<'_>, token: String) -> IssuedToken {
        audit(req, "local", &self.scope, &self.jti);
        IssuedToken {
            token: token.into(),
            expires_at: self.exp,
            scope: self.scope.into(),
        }
    }
}

fn sign(key: &SigningKey, claims: &Value) -> Result<String, ExchangeError> {
    key.sign_jwt(Some(ISSUED_TOKEN_TYP), claims).map_err(|e| {
        // SignError messages never hold key material.
        tracing::error!(target: "tokengate::exchange", kid = key.kid(), error = %e, "minting a backend token failed");
        ExchangeError::Signing
    })
}

fn string_claim<'a>(subject: &'a crate::VerifiedToken, name: &str) -> Option<&'a str> {
    subject.claims.get(name).and_then(Value::as_str)
}
