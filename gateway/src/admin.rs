//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and the revocation API
//! (`POST /revocations/{token,family,subject}`, bearer secret from `[admin] token`). Bind
//! it to loopback or a private network.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::json;

use crate::proxy::Shared;
use crate::runtime::Runtime;

/// Largest admin request body read.
const MAX_BODY: usize = 16 * 1024;
/// Longest a readiness probe waits for the revocation store.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The admin HTTP application.
pub struct Admin {
    pub shared: Arc<Shared>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    reply(status, "application/json", v.to_string().into_bytes())
}

/// An admin refusal, boxed: responses are large and mostly travel the error path.
type Refusal = Box<Response<Vec<u8>>>;

fn error(status: StatusCode, error: &str, description: &str) -> Response<Vec<u8>> {
    json_reply(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

/// `POST /revocations/token`: by `jti` + `exp`, or by presenting the token itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeToken {
    jti: Option<String>,
    exp: Option<i64>,
    token: Option<String>,
}

/// `POST /revocations/family`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeFamily {
    family: String,
    ttl_seconds: Option<u64>,
}

/// `POST /revocations/subject`: tokens of the subject issued before now are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeSubject {
    issuer: String,
    subject: String,
    ttl_seconds: Option<u64>,
}

impl Admin {
    /// Readiness: every issuer has usable keys and the revocation store answers.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let rt = self.shared.runtime.load_full();
        let mut not_ready = Vec::new();
        let mut issuers = serde_json::Map::new();
        for i in &rt.issuers {
            let ready = i.jwks.is_ready();
            let s = i.jwks.stats();
            if !ready {
                not_ready.push(format!("issuer {} has no usable keys", i.policy.id));
            }
            issuers.insert(
                i.policy.id.to_string(),
                json!({ "ready": ready, "keys": s.keys, "age_seconds": s.age.map(|a| a.as_secs()), "last_error": s.last_error }),
            );
        }
        let store_ready = match rt.store.get() {
            None => Err("not connected".to_string()),
            Some(s) => match tokio::time::timeout(PING_TIMEOUT, s.0.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("ping timed out".to_string()),
            },
        };
        if let Err(e) = &store_ready {
            not_ready.push(format!("revocation store ({}): {e}", rt.store.kind()));
        }
        let ready = not_ready.is_empty();
        let store = json!({ "kind": rt.store.kind(), "ready": store_ready.is_ok() });
        (
            ready,
            json!({ "ready": ready, "not_ready": not_ready, "issuers": issuers, "revocation_store": store }),
        )
    }

    fn authorized(rt: &Runtime, session: &ServerSession) -> Result<(), Refusal> {
        let Some(secret) = rt.admin_token.as_ref() else {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "admin_api_disabled",
                "set [admin] token to enable the revocation API",
            )));
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| filters::extract_bearer(v.as_bytes(), 4096).ok().flatten());
        match presented {
            Some(p)
                if aws_lc_rs::constant_time::verify_slices_are_equal(
                    p.as_bytes(),
                    secret.expose().as_bytes(),
                )
                .is_ok() =>
            {
                Ok(())
            }
            _ => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the admin bearer secret is missing or wrong",
                );
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"tokengate-admin\""),
                );
                Err(Box::new(r))
            }
        }
    }

    async fn body<T: for<'de> Deserialize<'de>>(session: &mut ServerSession) -> Result<T, Refusal> {
        let mut buf = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > MAX_BODY {
                        return Err(Box::new(error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "invalid_request",
                            "the body is larger than 16 KiB",
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(Box::new(error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the body could not be read",
                    )))
                }
            }
        }
        serde_json::from_slice(&buf).map_err(|_| -> Refusal {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not the expected JSON object",
            ))
        })
    }

    async fn revoke(&self, session: &mut ServerSession, what: &str) -> Response<Vec<u8>> {
        let rt = self.shared.runtime.load_full();
        if let Err(r) = Self::authorized(&rt, session) {
            return *r;
        }
        let Some(store) = rt.store.get() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the revocation store is not connected",
            );
        };
        let default_ttl = rt.revocation.default_ttl;
        let ttl_or_default = |s: Option<u64>| s.map_or(default_ttl, Duration::from_secs);
        let now = filters::validate::unix_now();
        let result = match what {
            "token" => {
                let req: RevokeToken = match Self::body(session).await {
                    Ok(r) => r,
                    Err(r) => return *r,
                };
                let (jti, exp) = match (req.jti, req.exp, req.token) {
                    (Some(j), Some(e), None) if !j.is_empty() => (j, e),
                    (None, None, Some(t)) => match rt.validator.validate(&t).await {
                        Ok(v) => match v.jti.clone() {
                            Some(j) => {
                                let leeway = rt
                                    .issuer_options(&v.issuer_id)
                                    .map_or(0, |o| o.leeway.as_secs());
                                (j, v.exp.saturating_add(i64::try_from(leeway).unwrap_or(0)))
                            }
                            None => {
                                return error(
                                    StatusCode::BAD_REQUEST,
                                    "invalid_request",
                                    "the token has no jti",
                                )
                            }
                        },
                        Err(e) => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "invalid_request",
                                e.description(),
                            )
                        }
                    },
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "invalid_request",
                            "give either jti and exp, or token",
                        );
                    }
                };
                if exp <= now {
                    return json_reply(
                        StatusCode::OK,
                        json!({ "revoked": false, "reason": "the token has already expired" }),
                    );
                }
                let ttl = Duration::from_secs(u64::try_from(exp - now).unwrap_or(1));
                store.0.revoke_token(&jti, ttl).await
            }
            "family" => match Self::body::<RevokeFamily>(session).await {
                Ok(r) if !r.family.is_empty() => {
                    store
                        .0
                        .revoke_family(&r.family, ttl_or_default(r.ttl_seconds))
                        .await
                }
                Ok(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "family must not be empty",
                    )
                }
                Err(r) => return *r,
            },
            _ => match Self::body::<RevokeSubject>(session).await {
                Ok(r) if !r.issuer.is_empty() && !r.subject.is_empty() => {
                    store
                        .0
                        .revoke_subject(&r.issuer, &r.subject, now, ttl_or_default(r.ttl_seconds))
                        .await
                }
                Ok(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "issuer and subject must not be empty",
                    )
                }
                Err(r) => return *r,
            },
        };
        match result {
            Ok(()) => {
                tracing::info!(target: "tokengate::audit", kind = what, "revocation written through the admin API");
                reply(StatusCode::NO_CONTENT, "application/json", Vec::new())
            }
            Err(filters::revocation::StoreError::InvalidTtl) => error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "ttl_seconds is longer than the store accepts (400 days)",
            ),
            Err(e) => {
                tracing::warn!(error = %e, kind = what, "revocation could not be written");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the revocation store did not accept the write",
                )
            }
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        match (method, path.as_str()) {
            (Method::GET, "/healthz") => json_reply(StatusCode::OK, json!({ "status": "ok" })),
            (Method::GET, "/readyz") => {
                let (ready, report) = self.readiness().await;
                json_reply(
                    if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    },
                    report,
                )
            }
            (Method::GET, "/metrics") => {
                let rt = self.shared.runtime.load();
                let text = self.shared.metrics.render(&rt);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    text.into_bytes(),
                )
            }
            (Method::GET, "/.well-known/jwks.json") => {
                match self.shared.runtime.load().signer_jwks.clone() {
                    Some(body) => reply(StatusCode::OK, "application/jwk-set+json", body.to_vec()),
                    None => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no [signer] is configured",
                    ),
                }
            }
            (Method::POST, "/revocations/token") => self.revoke(session, "token").await,
            (Method::POST, "/revocations/family") => self.revoke(session, "family").await,
            (Method::POST, "/revocations/subject") => self.revoke(session, "subject").await,
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
        }
    }
}
