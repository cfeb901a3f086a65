//! Exchange tests: minted tokens checked by an independent verifier (`jsonwebtoken`), the
//! STS client against real loopback HTTP servers, and the cache's single-flight.

mod cache;
mod local;
mod remote;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::*;
use crate::sign::SigningKey;
use crate::validate::unix_now;
use crate::Algorithm;

/// Issuer of subject tokens.
const SUBJECT_ISS: &str = "https://idp.test";
/// Issuer of minted tokens.
const GATEWAY_ISS: &str = "https://gateway.test";

/// A verified subject built from its claims the way the validator does.
fn subject(claims: Value) -> VerifiedToken {
    let Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    VerifiedToken {
        issuer_id: "idp".into(),
        iss: text("iss").unwrap_or_default(),
        sub: text("sub"),
        exp: claims["exp"].as_i64().expect("exp"),
        iat: claims.get("iat").and_then(Value::as_i64),
        jti: text("jti"),
        scopes: text("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        client: text("azp").or_else(|| text("client_id")),
        claims,
    }
}

/// A typical subject: alice via client `web`, valid for an hour.
fn alice() -> VerifiedToken {
    let now = unix_now();
    subject(json!({
        "iss": SUBJECT_ISS, "sub": "alice", "aud": "gateway", "iat": now, "exp": now + 3600,
        "jti": "subject-jti-1", "scope": "orders:read orders:write admin", "client_id": "web",
        "azp": "web", "tenant": "acme",
    }))
}

/// The owned parts of an [`ExchangeRequest`].
struct Ask {
    subject: VerifiedToken,
    token: String,
    audience: String,
    allowed: Vec<String>,
    ttl: Duration,
    carry: Vec<String>,
}

impl Ask {
    fn new(subject: VerifiedToken) -> Ask {
        Ask {
            subject,
            token: "subject.token.value".into(),
            audience: "orders-api".into(),
            allowed: strings(&["orders:read", "orders:write"]),
            ttl: Duration::from_secs(300),
            carry: Vec::new(),
        }
    }

    fn req(&self) -> ExchangeRequest<'_> {
        ExchangeRequest {
            subject: &self.subject,
            subject_token: &self.token,
            audience: &self.audience,
            allowed_scopes: &self.allowed,
            ttl: self.ttl,
            carry_claims: &self.carry,
            request_id: Some("req-1"),
            actor: None,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn es256(kid: &str) -> SigningKey {
    SigningKey::generate(Algorithm::ES256, kid).expect("key generation")
}

fn signer(keys: Vec<SigningKey>, active: &str) -> LocalSigner {
    LocalSigner::new(GATEWAY_ISS.into(), keys, active).expect("signer")
}

/// A minted token verified by `jsonwebtoken` against `jwks` (signature, `iss`, `aud`,
/// `exp`), with its header.
fn verify_independently(
    token: &str,
    jwks: &Value,
    audience: &str,
) -> (jsonwebtoken::Header, Map<String, Value>) {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).expect("the JWKS parses");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.as_deref().expect("kid");
    let jwk = set.find(kid).expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[GATEWAY_ISS]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .expect("the token verifies");
    (data.header, data.claims)
}

/// The fields of the `tokengate::exchange` events of one test.
type Events = Arc<Mutex<Vec<Vec<(String, String)>>>>;

thread_local! {
    /// Where the global [`Sink`] sends this thread's events, while a [`Recorder`] lives.
    static CURRENT: std::cell::RefCell<Option<Events>> = const { std::cell::RefCell::new(None) };
}

/// Records this thread's `tokengate::exchange` events until dropped.
///
/// A global subscriber ([`Sink`]) routes events to the recorder of the emitting thread.
/// Scoped subscribers (`set_default`) would be flaky here: tracing caches a callsite's
/// interest globally, so a test thread without a subscriber can disable a callsite for a
/// test that has one.
struct Recorder {
    events: Events,
}

impl Recorder {
    fn start() -> Recorder {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let _ = tracing::subscriber::set_global_default(Sink);
        });
        tracing::callsite::rebuild_interest_cache();
        let events = Events::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(Arc::clone(&events)));
        Recorder { events }
    }

    fn events(&self) -> Vec<Vec<(String, String)>> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

struct FieldVisitor<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

/// The test binary's global subscriber: interested in `tokengate::exchange` only.
struct Sink;

impl tracing::Subscriber for Sink {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.enabled(metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "tokengate::exchange"
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let Some(events) = CURRENT.with(|c| c.borrow().clone()) else {
            return;
        };
        let mut fields = vec![("target".to_owned(), event.metadata().target().to_owned())];
        event.record(&mut FieldVisitor(&mut fields));
        events.lock().unwrap().push(fields);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn field<'a>(event: &'a [(String, String)], name: &str) -> Option<&'a str> {
    event
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn narrowing_keeps_allowed_order_and_never_widens() {
    let subject = strings(&["a", "b", "c"]);
    assert_eq!(narrow_scopes(&subject, &strings(&["c", "x", "a"])), "c a");
    assert_eq!(narrow_scopes(&subject, &strings(&["a", "a", "b"])), "a b");
    assert_eq!(narrow_scopes(&subject, &strings(&["x", "y"])), "");
    assert_eq!(narrow_scopes(&[], &strings(&["a"])), "");
}

#[test]
fn empty_allowed_set_issues_no_scope() {
    assert_eq!(narrow_scopes(&strings(&["a", "b"]), &[]), "");
}

#[test]
fn scopes_with_whitespace_are_never_issued() {
    let subject = strings(&["a b", "", "c"]);
    assert_eq!(narrow_scopes(&subject, &strings(&["a b", "", "c"])), "c");
}

#[test]
fn error_statuses_and_reasons_are_bounded() {
    let all = [
        ExchangeError::InvalidTarget,
        ExchangeError::Forbidden,
        ExchangeError::SubjectRejected,
        ExchangeError::Unauthorized,
        ExchangeError::Timeout,
        ExchangeError::Unavailable("x"),
        ExchangeError::Rejected("other"),
        ExchangeError::BadResponse("x"),
        ExchangeError::Signing,
    ];
    let statuses: Vec<u16> = all.iter().map(ExchangeError::status).collect();
    assert_eq!(statuses, [403, 403, 401, 503, 503, 503, 503, 503, 503]);
    let mut reasons: Vec<&str> = all.iter().map(ExchangeError::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len(), "one label per variant");
    assert!(reasons
        .iter()
        .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn issued_token_debug_hides_the_token() {
    let issued = IssuedToken {
        token: "eyJ.secret-token.sig".into(),
        expires_at: 1,
        scope: "a".into(),
    };
    assert!(!format!("{issued:?}").contains("secret-token"));
}

#[test]
fn request_debug_hides_the_subject_token() {
    let mut ask = Ask::new(alice());
    ask.token = "eyJ.subject-secret.sig".into();
    let debug = format!("{:?}", ask.req());
    assert!(!debug.contains("subject-secret"));
    assert!(debug.contains("orders-api"));
}
