//! tokengate as an RFC 8693 security token service: `POST [sts] path` on the proxy
//! listener, for registered clients, so services can exchange tokens themselves for
//! service-to-service calls. Tokens are minted by the `[signer]`, with `act.sub` naming the
//! requesting client.
//!
//! Errors follow RFC 6749 §5.2 and RFC 8693 §2.2.2: `invalid_request`, `invalid_client`
//! (401), `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
//! `invalid_target`, `invalid_scope`; bodies are fixed strings.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use filters::exchange::ExchangeCache;

use pingora::prelude::*;
use pingora::proxy::Session;

use crate::config::{OnStoreError, StsClientSettings, StsSettings};
use crate::proxy::{Ctx, Gateway, Outcome};
use crate::respond::{self, Denial};
use crate::runtime::Runtime;
use http::header::AUTHORIZATION;
use std::time::Instant;

/// `grant_type` of a token exchange.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token types accepted as `subject_token_type` and issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Largest request body read.
pub const MAX_BODY: usize = 16 * 1024;

/// The STS of one runtime.
pub struct Sts {
    pub path: String,
    pub ttl: std::time::Duration,
    clients: HashMap<String, StsClientSettings>,
    pub exchanger: Arc<ExchangeCache>,
}

/// A refusal: status, RFC 6749 error code, fixed description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsError {
    pub status: u16,
    pub code: &'static str,
    pub description: &'static str,
}

const fn err(status: u16, code: &'static str, description: &'static str) -> StsError {
    StsError {
        status,
        code,
        description,
    }
}

/// The refusal for a subject token that did not pass validation or the revocation check:
/// 503 when the gateway could not decide (keys or store unavailable), else
/// `invalid_request` (RFC 8693 §2.2.2) without saying why.
pub fn subject_refusal(e: &filters::AuthError) -> StsError {
    if e.status() == 503 {
        err(
            503,
            "temporarily_unavailable",
            "the subject token cannot be checked right now",
        )
    } else {
        err(400, "invalid_request", "the subject token is not valid")
    }
}

/// A checked request: the client, and what it asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant {
    pub client: String,
    pub subject_token: String,
    pub audience: String,
    /// Requested scopes (empty: every scope the client may have).
    pub scopes: Vec<String>,
}

impl Sts {
    pub fn new(settings: StsSettings, exchanger: Arc<ExchangeCache>) -> Self {
        Sts {
            path: settings.path,
            ttl: settings.ttl,
            clients: settings
                .clients
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            exchanger,
        }
    }

    /// The client's allowed scopes.
    pub fn client_scopes(&self, id: &str) -> &[String] {
        self.clients.get(id).map_or(&[], |c| c.scopes.as_slice())
    }

    /// Parses the form and authenticates the client (HTTP Basic per RFC 6749 §2.3.1, or
    /// `client_id`/`client_secret` in the body — not both), then checks grant type,
    /// subject token type, audience and requested scopes against the client's rights.
    pub fn check(&self, authorization: Option<&[u8]>, body: &[u8]) -> Result<Grant, StsError> {
        let mut form: HashMap<String, String> = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if form.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(err(400, "invalid_request", "a parameter is repeated"));
            }
        }
        let basic = match authorization {
            Some(h) => Some(basic_credentials(h).ok_or(err(
                401,
                "invalid_client",
                "malformed client authentication",
            ))?),
            None => None,
        };
        let posted = match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            (None, None) => None,
            _ => return Err(err(401, "invalid_client", "client authentication failed")),
        };
        let (id, secret) = match (basic, posted) {
            (Some(b), None) => b,
            (None, Some(p)) => p,
            (Some(_), Some(_)) => {
                return Err(err(
                    400,
                    "invalid_request",
                    "use one client authentication method",
                ))
            }
            (None, None) => return Err(err(401, "invalid_client", "client authentication failed")),
        };
        let client = self.clients.get(&id);
        let expected = client.map_or(&b"\0no-such-client-secret\0"[..], |c| {
            c.secret.expose().as_bytes()
        });
        let secret_ok =
            aws_lc_rs::constant_time::verify_slices_are_equal(secret.as_bytes(), expected).is_ok();
        let Some(client) = client.filter(|_| secret_ok) else {
            return Err(err(401, "invalid_client", "client authentication failed"));
        };
        match form.get("grant_type").map(String::as_str) {
            Some(GRANT_TYPE) => {}
            Some(_) => {
                return Err(err(
                    400,
                    "unsupported_grant_type",
                    "only the token-exchange grant is supported",
                ))
            }
            None => return Err(err(400, "invalid_request", "grant_type is required")),
        }
        if client.audiences.is_empty() {
            return Err(err(
                400,
                "unauthorized_client",
                "this client may not exchange tokens",
            ));
        }
        let subject_token = form
            .get("subject_token")
            .filter(|t| !t.is_empty())
            .ok_or(err(400, "invalid_request", "subject_token is required"))?;
        match form.get("subject_token_type").map(String::as_str) {
            Some(ACCESS_TOKEN_TYPE) | Some(JWT_TYPE) => {}
            _ => {
                return Err(err(
                    400,
                    "invalid_request",
                    "subject_token_type must be the access_token or jwt type",
                ))
            }
        }
        if form.contains_key("actor_token") {
            return Err(err(400, "invalid_request", "actor_token is not supported"));
        }
        if let Some(t) = form.get("requested_token_type") {
            if t != ACCESS_TOKEN_TYPE {
                return Err(err(400, "invalid_request", "only access tokens are issued"));
            }
        }
        let audience = form
            .get("audience")
            .or_else(|| form.get("resource"))
            .filter(|a| !a.is_empty())
            .ok_or(err(400, "invalid_target", "an audience is required"))?;
        if !client.audiences.iter().any(|a| a == audience) {
            return Err(err(
                400,
                "invalid_target",
                "this client may not ask for this audience",
            ));
        }
        let scopes: Vec<String> = form
            .get("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if scopes.iter().any(|s| !client.scopes.contains(s)) {
            return Err(err(
                400,
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ));
        }
        Ok(Grant {
            client: id,
            subject_token: subject_token.clone(),
            audience: audience.clone(),
            scopes,
        })
    }
}

impl Gateway {
    /// The STS endpoint: authenticates the client, validates the subject token (signature,
    /// claims, revocation), and mints a token for the requested audience.
    pub(crate) async fn serve_sts(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        sts: &crate::sts::Sts,
    ) -> Result<bool> {
        use crate::sts::{StsError, ACCESS_TOKEN_TYPE, MAX_BODY};
        const TOO_LARGE: StsError = StsError {
            status: 400,
            code: "invalid_request",
            description: "the request body is too large",
        };
        use filters::exchange::{ExchangeRequest, Exchanger as _};
        const ROUTE: &str = "_sts";
        if session.req_header().method != http::Method::POST {
            return self.deny(session, ctx, Denial::MethodNotAllowed).await;
        }
        let authorization = session
            .req_header()
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await? {
                Some(chunk) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Some(_) => {
                    return self.sts_refuse(session, ctx, TOO_LARGE).await;
                }
                None => break,
            }
        }
        let grant = match sts.check(authorization.as_deref(), &body) {
            Ok(g) => g,
            Err(e) => return self.sts_refuse(session, ctx, e).await,
        };
        let subject = match rt.validator.validate(&grant.subject_token).await {
            Ok(t) => t,
            Err(e) => {
                return self
                    .sts_refuse(session, ctx, crate::sts::subject_refusal(&e))
                    .await
            }
        };
        // A sender-constrained subject token (DPoP or certificate bound) would come out as an
        // unconstrained one: the STS never proves possession, so it refuses them.
        if !filters::dpop::Binding::of(&subject.claims)
            .is_ok_and(|b| b.jkt.is_none() && b.x5t_s256.is_none())
        {
            let e = StsError {
                status: 400,
                code: "invalid_grant",
                description: "a sender-constrained subject token cannot be exchanged here",
            };
            return self.sts_refuse(session, ctx, e).await;
        }
        if let Err(e) = self
            .check_revocation(rt, ROUTE, OnStoreError::Deny, &subject)
            .await
        {
            return self
                .sts_refuse(session, ctx, crate::sts::subject_refusal(&e))
                .await;
        }
        // Never wider than the subject token: every requested scope must be held by it.
        if grant.scopes.iter().any(|s| !subject.has_scope(s)) {
            let e = StsError {
                status: 400,
                code: "invalid_scope",
                description: "a requested scope exceeds the subject token's",
            };
            return self.sts_refuse(session, ctx, e).await;
        }
        let allowed: &[String] = if grant.scopes.is_empty() {
            sts.client_scopes(&grant.client)
        } else {
            &grant.scopes
        };
        let req = ExchangeRequest {
            subject: &subject,
            subject_token: &grant.subject_token,
            audience: &grant.audience,
            allowed_scopes: allowed,
            ttl: sts.ttl,
            carry_claims: &[],
            request_id: Some(&ctx.request_id),
            actor: Some(&grant.client),
        };
        let started = Instant::now();
        let result = sts.exchanger.exchange(&req).await;
        let m = &self.shared.metrics;
        m.exchange_duration.observe(started.elapsed().as_secs_f64());
        m.exchanges
            .with_label_values(&[ROUTE, result.as_ref().map_or_else(|e| e.reason(), |_| "ok")])
            .inc();
        let issued = match result {
            Ok(t) => t,
            Err(e) => {
                let e = StsError {
                    status: e.status().max(400),
                    code: "temporarily_unavailable",
                    description: "the token could not be issued",
                };
                return self.sts_refuse(session, ctx, e).await;
            }
        };
        ctx.identity = Some(subject);
        ctx.outcome = Outcome::Allowed;
        ctx.reason = Some("token_issued");
        let expires_in = (issued.expires_at - filters::validate::unix_now()).max(1);
        let mut answer = serde_json::json!({
            "access_token": &*issued.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": expires_in,
        });
        if !issued.scope.is_empty() {
            answer["scope"] = serde_json::Value::from(&*issued.scope);
        }
        respond::json(session, &ctx.request_id, 200, answer.to_string(), None).await?;
        Ok(true)
    }

    async fn sts_refuse(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        e: crate::sts::StsError,
    ) -> Result<bool> {
        ctx.outcome = Outcome::Denied;
        ctx.reason = Some(e.code);
        let body =
            serde_json::json!({ "error": e.code, "error_description": e.description }).to_string();
        let challenge = (e.status == 401).then_some("Basic realm=\"tokengate\"");
        respond::json(session, &ctx.request_id, e.status, body, challenge).await?;
        Ok(true)
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(header).ok()?;
    let (scheme, b64) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode = |v: &str| -> String {
        form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn sts() -> Sts {
        let client = StsClientSettings {
            id: "svc".into(),
            secret: secret("s3cret-with:colon&plus+0123"),
            audiences: vec!["https://b".into()],
            scopes: vec!["b:read".into()],
        };
        let no_rights = StsClientSettings {
            id: "ro".into(),
            secret: secret("ro-secret-0123456789"),
            audiences: vec![],
            scopes: vec![],
        };
        let signer = filters::sign::SigningKey::generate(filters::Algorithm::ES256, "k").unwrap();
        let local =
            filters::exchange::LocalSigner::new("https://tg".into(), vec![signer], "k").unwrap();
        let cache = Arc::new(ExchangeCache::new(Arc::new(local), 10));
        Sts::new(
            StsSettings {
                path: "/oauth2/token".into(),
                ttl: std::time::Duration::from_secs(60),
                clients: vec![client, no_rights],
            },
            cache,
        )
    }

    fn secret(s: &str) -> Secret {
        crate::config::test_secret(s)
    }

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(id),
                enc(secret)
            ))
        )
        .into_bytes()
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", "a.b.c"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "https://b"),
            ("scope", "b:read"),
        ]
    }

    fn code(r: Result<Grant, StsError>) -> &'static str {
        r.map_or_else(|e| e.code, |_| "ok")
    }

    #[test]
    fn basic_and_post_client_authentication_are_accepted() {
        let s = sts();
        let g = s
            .check(
                Some(&basic("svc", "s3cret-with:colon&plus+0123")),
                &form(&good()),
            )
            .unwrap();
        assert_eq!(g.client, "svc");
        assert_eq!(g.scopes, vec!["b:read"]);
        let mut p = good();
        p.extend([
            ("client_id", "svc"),
            ("client_secret", "s3cret-with:colon&plus+0123"),
        ]);
        assert_eq!(code(s.check(None, &form(&p))), "ok");
    }

    #[test]
    fn bad_or_missing_client_credentials_are_invalid_client() {
        let s = sts();
        assert_eq!(
            code(s.check(Some(&basic("svc", "wrong")), &form(&good()))),
            "invalid_client"
        );
        assert_eq!(
            code(s.check(Some(&basic("nobody", "x")), &form(&good()))),
            "invalid_client"
        );
        assert_eq!(code(s.check(None, &form(&good()))), "invalid_client");
        assert_eq!(
            code(s.check(Some(b"Basic !!!"), &form(&good()))),
            "invalid_client"
        );
        let e = s.check(None, &form(&good())).unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[test]
    fn every_rfc8693_error_code_is_produced() {
        let s = sts();
        let auth = basic("svc", "s3cret-with:colon&plus+0123");
        let with = |k: &'static str, v: &'static str| {
            let mut p: Vec<_> = good().into_iter().filter(|(n, _)| *n != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            form(&p)
        };
        assert_eq!(
            code(s.check(Some(&auth), &with("grant_type", "client_credentials"))),
            "unsupported_grant_type"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("grant_type", ""))),
            "invalid_request"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("subject_token", ""))),
            "invalid_request"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("subject_token_type", "urn:x"))),
            "invalid_request"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("audience", "https://elsewhere"))),
            "invalid_target"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("audience", ""))),
            "invalid_target"
        );
        assert_eq!(
            code(s.check(Some(&auth), &with("scope", "b:read b:write"))),
            "invalid_scope"
        );
        let ro = basic("ro", "ro-secret-0123456789");
        assert_eq!(
            code(s.check(Some(&ro), &form(&good()))),
            "unauthorized_client"
        );
        let mut twice = good();
        twice.push(("audience", "https://b"));
        assert_eq!(code(s.check(Some(&auth), &form(&twice))), "invalid_request");
    }
}
