//! `RemoteSts` against real HTTP servers on loopback ports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::exchange::remote::form_urlencode;

/// Put in every error body: it must never surface in an error.
const MARKER: &str = "STS-BODY-MARKER-7f3a";

/// What `/token` answers.
#[derive(Clone)]
enum Reply {
    Json(u16, String),
    Slow(Duration, String),
    Redirect,
}

/// What the STS saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct StsState {
    reply: Mutex<Reply>,
    seen: Mutex<Vec<Seen>>,
    elsewhere_hits: AtomicUsize,
}

struct Sts {
    addr: SocketAddr,
    state: Arc<StsState>,
    task: JoinHandle<()>,
}

impl Drop for Sts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sts {
    async fn start(reply: Reply) -> Sts {
        let state = Arc::new(StsState {
            reply: Mutex::new(reply),
            seen: Mutex::new(Vec::new()),
            elsewhere_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/token", post(token_endpoint))
            .route("/elsewhere", post(elsewhere).get(elsewhere))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sts { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn client(&self, auth: ClientAuth) -> RemoteSts {
        let mut config = RemoteStsConfig::new(self.url(), "gate way:1", "s3cr%t/+é");
        config.auth = auth;
        config.timeout = Duration::from_millis(500);
        RemoteSts::new(config).unwrap()
    }
}

async fn token_endpoint(
    State(state): State<Arc<StsState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // An independent form decoder: the url crate's.
    let form = Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    state.seen.lock().unwrap().push(Seen {
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        form,
    });
    let reply = state.reply.lock().unwrap().clone();
    match reply {
        Reply::Json(status, body) => json_response(status, body),
        Reply::Slow(delay, body) => {
            tokio::time::sleep(delay).await;
            json_response(200, body)
        }
        Reply::Redirect => (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response(),
    }
}

async fn elsewhere(State(state): State<Arc<StsState>>) -> Response {
    state.elsewhere_hits.fetch_add(1, Ordering::SeqCst);
    json_response(200, good_answer(3600))
}

fn json_response(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn answer(members: Value) -> String {
    members.to_string()
}

fn good_answer(expires_in: i64) -> String {
    answer(json!({
        "access_token": "backend-token-123",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
}

fn error_body(code: &str) -> String {
    answer(json!({ "error": code, "error_description": MARKER }))
}

async fn exchange_with(reply: Reply) -> Result<IssuedToken, ExchangeError> {
    let sts = Sts::start(reply).await;
    let ask = Ask::new(alice());
    sts.client(ClientAuth::Basic).exchange(&ask.req()).await
}

fn assert_no_body_leak(error: &ExchangeError) {
    assert!(!error.to_string().contains(MARKER), "{error}");
    assert!(!format!("{error:?}").contains(MARKER), "{error:?}");
    assert!(!error.to_string().contains("backend-token"));
}

#[tokio::test]
async fn basic_auth_sends_form_encoded_credentials_and_the_rfc8693_form() {
    let sts = Sts::start(Reply::Json(200, good_answer(600))).await;
    let mut ask = Ask::new(alice());
    ask.token = "subject+token/with=chars&more".into();
    let before = unix_now();
    let issued = sts
        .client(ClientAuth::Basic)
        .exchange(&ask.req())
        .await
        .unwrap();
    assert_eq!(&*issued.token, "backend-token-123");
    assert_eq!(&*issued.scope, "orders:read orders:write");
    assert!(issued.expires_at >= before + 600 && issued.expires_at <= unix_now() + 600);

    let seen = sts.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    // base64("gate+way%3A1:s3cr%25t%2F%2B%C3%A9"), computed independently.
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Basic Z2F0ZSt3YXklM0ExOnMzY3IlMjV0JTJGJTJCJUMzJUE5")
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.form,
        vec![
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned()
            ),
            (
                "subject_token".to_owned(),
                "subject+token/with=chars&more".to_owned()
            ),
            (
                "subject_token_type".to_owned(),
                "urn:ietf:params:oauth:token-type:access_token".to_owned()
            ),
            ("audience".to_owned(), "orders-api".to_owned()),
            (
                "requested_token_type".to_owned(),
                "urn:ietf:params:oauth:token-type:access_token".to_owned()
            ),
            ("scope".to_owned(), "orders:read orders:write".to_owned()),
        ]
    );
}

#[tokio::test]
async fn post_auth_sends_credentials_in_the_form_only() {
    let sts = Sts::start(Reply::Json(200, good_answer(600))).await;
    let ask = Ask::new(alice());
    sts.client(ClientAuth::Post)
        .exchange(&ask.req())
        .await
        .unwrap();
    let seen = &sts.seen()[0];
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.get("client_id"), Some("gate way:1"));
    assert_eq!(seen.get("client_secret"), Some("s3cr%t/+é"));
    assert_eq!(seen.get("audience"), Some("orders-api"));
}

#[tokio::test]
async fn empty_narrowed_scope_sends_no_scope_parameter() {
    let sts = Sts::start(Reply::Json(200, good_answer(600))).await;
    let mut ask = Ask::new(alice());
    ask.allowed = strings(&["not-held"]);
    let issued = sts
        .client(ClientAuth::Basic)
        .exchange(&ask.req())
        .await
        .unwrap();
    assert_eq!(sts.seen()[0].get("scope"), None);
    assert_eq!(&*issued.scope, "");
}

#[tokio::test]
async fn granted_scope_within_the_request_is_reported() {
    let body = answer(json!({
        "access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_type": "bearer", "expires_in": 60, "scope": "orders:read",
    }));
    let issued = exchange_with(Reply::Json(200, body)).await.unwrap();
    assert_eq!(&*issued.scope, "orders:read");
}

#[tokio::test]
async fn granted_scope_wider_than_requested_is_refused() {
    let body = answer(json!({
        "access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 60, "scope": "orders:read admin",
    }));
    assert!(matches!(
        exchange_with(Reply::Json(200, body)).await,
        Err(ExchangeError::BadResponse(_))
    ));
}

#[tokio::test]
async fn expiry_is_capped_by_the_subjects_exp() {
    let sts = Sts::start(Reply::Json(200, good_answer(86_400))).await;
    let subject_exp = unix_now() + 90;
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": subject_exp, "scope": "orders:read" }),
    ));
    let issued = sts
        .client(ClientAuth::Basic)
        .exchange(&ask.req())
        .await
        .unwrap();
    assert_eq!(issued.expires_at, subject_exp);
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let sts = Sts::start(Reply::Redirect).await;
    let ask = Ask::new(alice());
    let error = sts
        .client(ClientAuth::Basic)
        .exchange(&ask.req())
        .await
        .unwrap_err();
    assert!(matches!(error, ExchangeError::BadResponse(_)), "{error:?}");
    assert_eq!(error.status(), 503);
    assert_eq!(sts.state.elsewhere_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn slow_sts_times_out() {
    let started = Instant::now();
    let error = exchange_with(Reply::Slow(Duration::from_secs(5), good_answer(60)))
        .await
        .unwrap_err();
    assert_eq!(error, ExchangeError::Timeout);
    assert_eq!(error.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Runs one exchange per ask concurrently (one task each); results in order.
async fn exchange_all(
    client: &Arc<RemoteSts>,
    asks: Vec<Ask>,
) -> Vec<Result<IssuedToken, ExchangeError>> {
    let tasks: Vec<_> = asks
        .into_iter()
        .map(|ask| {
            let client = Arc::clone(client);
            tokio::spawn(async move { client.exchange(&ask.req()).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn asks(n: usize) -> Vec<Ask> {
    (0..n)
        .map(|i| {
            let mut ask = Ask::new(alice());
            ask.audience = format!("api-{i}");
            ask
        })
        .collect()
}

#[tokio::test]
async fn exchanges_in_flight_are_capped_and_the_rest_wait_within_the_timeout() {
    let sts = Sts::start(Reply::Slow(Duration::from_millis(300), good_answer(60))).await;
    let mut config = RemoteStsConfig::new(sts.url(), "gw", "secret");
    config.max_concurrent = 2;
    config.timeout = Duration::from_millis(1500);
    let client = Arc::new(RemoteSts::new(config).unwrap());
    // Exactly at the cap: two at once finish in one round of 300 ms.
    let started = Instant::now();
    let results = exchange_all(&client, asks(2)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    // One over: the third waits for a slot, so two rounds.
    let started = Instant::now();
    let results = exchange_all(&client, asks(3)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(580),
        "three slow exchanges took {:?}: more than two ran at once",
        started.elapsed()
    );
    assert_eq!(sts.seen().len(), 5);
    // A queue longer than the timeout allows: the waiters time out before reaching the STS.
    let mut config = RemoteStsConfig::new(sts.url(), "gw", "secret");
    config.max_concurrent = 1;
    config.timeout = Duration::from_millis(450);
    let narrow = Arc::new(RemoteSts::new(config).unwrap());
    let results = exchange_all(&narrow, asks(8)).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let timeouts = results
        .iter()
        .filter(|r| matches!(r, Err(ExchangeError::Timeout)))
        .count();
    assert_eq!((ok, timeouts), (1, 7), "{results:?}");
    assert!(
        sts.seen().len() <= 5 + 2,
        "queued exchanges reached the STS"
    );
}

#[test]
fn zero_concurrency_cap_is_refused() {
    let mut config = RemoteStsConfig::new("http://127.0.0.1:1/token", "gw", "secret");
    assert_eq!(config.max_concurrent, DEFAULT_MAX_CONCURRENT_EXCHANGES);
    config.max_concurrent = 0;
    assert!(matches!(
        RemoteSts::new(config),
        Err(ExchangeConfigError::InvalidSetting(_))
    ));
}

#[tokio::test]
async fn unreachable_sts_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = RemoteStsConfig::new(format!("http://{addr}/token"), "gw", "secret");
    config.timeout = Duration::from_millis(500);
    let sts = RemoteSts::new(config).unwrap();
    let error = sts.exchange(&Ask::new(alice()).req()).await.unwrap_err();
    assert!(matches!(error, ExchangeError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn oversized_answer_is_refused() {
    let padding = "x".repeat(100 * 1024);
    let body = answer(json!({
        "access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 60, "padding": padding,
    }));
    let error = exchange_with(Reply::Json(200, body)).await.unwrap_err();
    assert_eq!(
        error,
        ExchangeError::BadResponse("the answer is larger than the cap")
    );
}

/// A raw HTTP server that answers every connection with `response` (for bodies axum would
/// not produce, such as a chunked one).
async fn raw_server(response: Vec<u8>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn oversized_chunked_answer_is_refused_while_reading() {
    let mut response =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    let chunk = "y".repeat(8 * 1024);
    for _ in 0..12 {
        response.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (addr, task) = raw_server(response).await;
    let mut config = RemoteStsConfig::new(format!("http://{addr}/token"), "gw", "secret");
    config.timeout = Duration::from_secs(2);
    let error = RemoteSts::new(config)
        .unwrap()
        .exchange(&Ask::new(alice()).req())
        .await
        .unwrap_err();
    task.abort();
    assert_eq!(
        error,
        ExchangeError::BadResponse("the answer is larger than the cap")
    );
}

#[tokio::test]
async fn malformed_answers_are_bad_responses() {
    let base = || {
        json!({
            "access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer", "expires_in": 60,
        })
    };
    let with = |name: &str, value: Value| {
        let mut v = base();
        v[name] = value;
        answer(v)
    };
    let without = |name: &str| {
        let mut v = base();
        v.as_object_mut().unwrap().remove(name);
        answer(v)
    };
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{not json".into()),
        ("array", "[1,2]".into()),
        (
            "duplicate member",
            r#"{"access_token":"a","access_token":"b"}"#.into(),
        ),
        ("no access_token", without("access_token")),
        ("empty access_token", with("access_token", json!(""))),
        ("numeric access_token", with("access_token", json!(42))),
        (
            "access_token with a space",
            with("access_token", json!("a b")),
        ),
        (
            "access_token with CRLF",
            with("access_token", json!("a\r\nX-Evil: 1")),
        ),
        ("expires_in 0", with("expires_in", json!(0))),
        ("expires_in negative", with("expires_in", json!(-5))),
        ("expires_in string", with("expires_in", json!("3600"))),
        ("expires_in float", with("expires_in", json!(1.5))),
        ("no expires_in", without("expires_in")),
        ("token_type N_A", with("token_type", json!("N_A"))),
        ("token_type DPoP", with("token_type", json!("DPoP"))),
        ("no token_type", without("token_type")),
        (
            "refresh token type",
            with(
                "issued_token_type",
                json!("urn:ietf:params:oauth:token-type:refresh_token"),
            ),
        ),
        ("no issued_token_type", without("issued_token_type")),
    ];
    let sts = Sts::start(Reply::Json(200, String::new())).await;
    let client = sts.client(ClientAuth::Basic);
    let ask = Ask::new(alice());
    for (case, body) in cases {
        *sts.state.reply.lock().unwrap() = Reply::Json(200, body);
        let error = client.exchange(&ask.req()).await.unwrap_err();
        assert!(
            matches!(error, ExchangeError::BadResponse(_)),
            "{case}: {error:?}"
        );
        assert_eq!(error.status(), 503, "{case}");
        assert_eq!(error.reason(), "sts_bad_response", "{case}");
    }
}

#[tokio::test]
async fn error_answers_map_to_typed_errors_without_the_body() {
    let cases: Vec<(u16, String, ExchangeError)> = vec![
        (
            400,
            error_body("invalid_target"),
            ExchangeError::InvalidTarget,
        ),
        (400, error_body("invalid_scope"), ExchangeError::Forbidden),
        (
            400,
            error_body("unauthorized_client"),
            ExchangeError::Forbidden,
        ),
        (403, error_body("access_denied"), ExchangeError::Forbidden),
        (
            400,
            error_body("invalid_grant"),
            ExchangeError::SubjectRejected,
        ),
        (
            401,
            error_body("invalid_client"),
            ExchangeError::Unauthorized,
        ),
        (
            400,
            error_body("invalid_client"),
            ExchangeError::Unauthorized,
        ),
        (401, MARKER.to_owned(), ExchangeError::Unauthorized),
        (403, MARKER.to_owned(), ExchangeError::Forbidden),
        (
            400,
            error_body("invalid_request"),
            ExchangeError::Rejected("invalid_request"),
        ),
        (400, error_body(MARKER), ExchangeError::Rejected("other")),
        (404, MARKER.to_owned(), ExchangeError::Rejected("other")),
        (
            400,
            error_body("temporarily_unavailable"),
            ExchangeError::Unavailable("the STS reported an error"),
        ),
        (
            500,
            error_body("server_error"),
            ExchangeError::Unavailable("the STS answered with a server error"),
        ),
        (
            503,
            MARKER.to_owned(),
            ExchangeError::Unavailable("the STS answered with a server error"),
        ),
        (
            429,
            MARKER.to_owned(),
            ExchangeError::Unavailable("the STS is rate limiting"),
        ),
        (
            201,
            good_answer(60),
            ExchangeError::BadResponse("unexpected HTTP status"),
        ),
    ];
    let sts = Sts::start(Reply::Json(200, String::new())).await;
    let client = sts.client(ClientAuth::Basic);
    let ask = Ask::new(alice());
    for (status, body, expected) in cases {
        *sts.state.reply.lock().unwrap() = Reply::Json(status, body);
        let error = client.exchange(&ask.req()).await.unwrap_err();
        assert_eq!(error, expected, "HTTP {status}");
        assert_no_body_leak(&error);
    }
    assert_eq!(
        ExchangeError::Unauthorized.status(),
        503,
        "our misconfiguration"
    );
    assert_eq!(ExchangeError::SubjectRejected.status(), 401);
    assert_eq!(ExchangeError::InvalidTarget.status(), 403);
}

#[tokio::test]
async fn expired_subject_is_not_sent() {
    let sts = Sts::start(Reply::Json(200, good_answer(60))).await;
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": unix_now() - 1 }),
    ));
    let error = sts
        .client(ClientAuth::Basic)
        .exchange(&ask.req())
        .await
        .unwrap_err();
    assert_eq!(error, ExchangeError::SubjectRejected);
    assert!(sts.seen().is_empty());
}

#[tokio::test]
async fn obtaining_a_token_writes_an_audit_event_with_its_jti() {
    use base64::Engine as _;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "ES256"})),
        b64(json!({"jti": "issued-jti-9", "sub": "alice"}))
    );
    let body = answer(json!({
        "access_token": jwt, "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_type": "Bearer", "expires_in": 60,
    }));
    let sts = Sts::start(Reply::Json(200, body)).await;
    let client = sts.client(ClientAuth::Basic);
    let ask = Ask::new(alice());
    let recorder = Recorder::start();
    client.exchange(&ask.req()).await.unwrap();
    let events = recorder.events();
    let audit: Vec<_> = events
        .iter()
        .filter(|e| field(e, "message") == Some("token exchanged"))
        .collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(field(audit[0], "jti_of_issued"), Some("issued-jti-9"));
    assert_eq!(field(audit[0], "source"), Some("remote"));
    let everything = format!("{events:?}");
    assert!(!everything.contains(&jwt) && !everything.contains(&ask.token));
    assert!(!everything.contains("s3cr"));
}

#[test]
fn endpoint_must_be_https_or_loopback_http() {
    let build = |url: &str, insecure: bool| {
        let mut config = RemoteStsConfig::new(url, "gw", "secret");
        config.allow_insecure_http = insecure;
        RemoteSts::new(config)
    };
    assert!(build("https://sts.example/token", false).is_ok());
    assert!(build("http://127.0.0.1:8080/token", false).is_ok());
    assert!(build("http://[::1]:8080/token", false).is_ok());
    assert!(build("http://localhost/token", false).is_ok());
    assert!(build("http://sts.example/token", true).is_ok());
    for bad in [
        "http://sts.example/token",
        "https://user:pw@sts.example/token",
        "ftp://sts.example/token",
        "not a url",
    ] {
        assert!(
            matches!(build(bad, false), Err(ExchangeConfigError::BadEndpoint(_))),
            "{bad}"
        );
    }
}

#[test]
fn config_settings_are_checked() {
    let mut config = RemoteStsConfig::new("https://sts.example/token", "", "secret");
    assert!(matches!(
        RemoteSts::new(config.clone()),
        Err(ExchangeConfigError::InvalidSetting(_))
    ));
    config.client_id = "gw".into();
    config.timeout = Duration::ZERO;
    assert!(matches!(
        RemoteSts::new(config),
        Err(ExchangeConfigError::InvalidSetting(_))
    ));
}

#[test]
fn secret_never_appears_in_debug_output() {
    let config = RemoteStsConfig::new("https://sts.example/token", "gw", "hunter2-secret");
    assert!(!format!("{config:?}").contains("hunter2"));
    let sts = RemoteSts::new(config).unwrap();
    let debug = format!("{sts:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("aHVudGVy"));
    assert!(debug.contains("gw"));
}

#[test]
fn form_encoding_round_trips_through_an_independent_decoder() {
    let input = "a b+c&d=e%f/g?h~i*j-k.l_m\u{e9}\u{1F600}:";
    let encoded = form_urlencode(input);
    assert!(encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"*-._+%".contains(&b)));
    let decoded: Vec<(String, String)> = Url::parse(&format!("http://x/?v={encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(decoded, vec![("v".to_owned(), input.to_owned())]);
}
