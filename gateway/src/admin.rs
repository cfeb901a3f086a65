//! The admin listener: `/healthz`, `/readyz`, `/metrics`. Bind it to loopback or a
//! private network; it carries no authentication of its own yet.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::proxy::Shared;

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

impl Admin {
    /// Readiness: every issuer has usable keys. Returns the status and a JSON report.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let rt = self.shared.runtime.load();
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
        let ready = not_ready.is_empty();
        (
            ready,
            json!({ "ready": ready, "not_ready": not_ready, "issuers": issuers }),
        )
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => reply(
                StatusCode::OK,
                "application/json",
                br#"{"status":"ok"}"#.to_vec(),
            ),
            "/readyz" => {
                let (ready, report) = self.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(status, "application/json", report.to_string().into_bytes())
            }
            "/metrics" => {
                let rt = self.shared.runtime.load();
                let text = self.shared.metrics.render(&rt);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    text.into_bytes(),
                )
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ),
        }
    }
}
