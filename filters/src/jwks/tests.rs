//! JWKS cache tests against real HTTP servers on loopback ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::*;
use crate::sign::{jwks_document, SigningKey};

const ES256: Algorithm = Algorithm::ES256;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn key(kid: &str) -> SigningKey {
    SigningKey::generate(ES256, kid).expect("key generation")
}

fn doc(keys: &[&SigningKey]) -> String {
    jwks_document(keys.iter().copied()).to_string()
}

fn config(source: JwksSource) -> JwksConfig {
    JwksConfig {
        issuer: "https://issuer.test".into(),
        source,
        algorithms: vec![ES256],
        refresh: Duration::from_secs(300),
        refetch_cooldown: Duration::from_secs(30),
        max_stale: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(5),
        limits: JwksLimits::default(),
        allow_insecure_http: false,
    }
}

fn found_kid(lookup: &KeyLookup) -> Option<String> {
    match lookup {
        KeyLookup::Found(key) => Some(key.kid().unwrap_or_default().to_owned()),
        _ => None,
    }
}

/// What `/jwks` answers.
#[derive(Clone)]
enum Reply {
    Json(String),
    Status(u16),
    Redirect(&'static str),
    Slow(Duration, String),
    /// Signals `arrived`, then waits for `gate` before answering.
    Gated(String),
}

struct ServerState {
    reply: Mutex<Reply>,
    jwks_hits: AtomicUsize,
    other_hits: AtomicUsize,
    discovery: Mutex<String>,
    discovery_hits: AtomicUsize,
    arrived: Notify,
    gate: Notify,
}

struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(reply: Reply) -> Server {
        let state = Arc::new(ServerState {
            reply: Mutex::new(reply),
            jwks_hits: AtomicUsize::new(0),
            other_hits: AtomicUsize::new(0),
            discovery: Mutex::new(String::new()),
            discovery_hits: AtomicUsize::new(0),
            arrived: Notify::new(),
            gate: Notify::new(),
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/other", get(serve_other))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .route(
                "/tenant/.well-known/openid-configuration",
                get(serve_discovery),
            )
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, reply: Reply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    fn set_discovery(&self, metadata: serde_json::Value) {
        *self.state.discovery.lock().unwrap() = metadata.to_string();
    }

    fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let reply = state.reply.lock().unwrap().clone();
    match reply {
        Reply::Json(body) => json(body),
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
        Reply::Slow(delay, body) => {
            tokio::time::sleep(delay).await;
            json(body)
        }
        Reply::Gated(body) => {
            state.arrived.notify_one();
            state.gate.notified().await;
            json(body)
        }
    }
}

async fn serve_other(State(state): State<Arc<ServerState>>) -> Response {
    state.other_hits.fetch_add(1, Ordering::SeqCst);
    let reply = state.reply.lock().unwrap().clone();
    match reply {
        Reply::Json(body) => json(body),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve_discovery(State(state): State<Arc<ServerState>>) -> Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    json(state.discovery.lock().unwrap().clone())
}

/// A raw HTTP/1.1 server that answers every request with `head`, then either streams
/// 1 KiB chunks until the client hangs up (`endless_chunks`) or sends nothing more.
async fn raw_server(head: &'static str, endless_chunks: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if endless_chunks {
                    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                } else {
                    // Hold the connection until the client gives up on it.
                    let _ = socket.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tokengate-jwks-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// Loading and rotation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn initial_refresh_loads_keys() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();

    assert!(!cache.is_ready());
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Unavailable
    ));
    assert_eq!(cache.generation(), 0);
    assert!(cache.stats().age.is_none());

    assert_eq!(cache.refresh().await, Ok(1));

    assert!(cache.is_ready());
    assert_eq!(
        found_kid(&cache.lookup(Some("k1"), ES256)).as_deref(),
        Some("k1")
    );
    assert_eq!(
        found_kid(&cache.lookup(None, ES256)).as_deref(),
        Some("k1"),
        "the only key fits a kid-less token"
    );
    assert!(matches!(
        cache.lookup(Some("k2"), ES256),
        KeyLookup::NotFound
    ));
    assert!(matches!(
        cache.lookup(Some("k1"), Algorithm::RS256),
        KeyLookup::NotFound
    ));
    assert_eq!(cache.generation(), 1);
    let stats = cache.stats();
    assert_eq!((stats.keys, stats.fetch_ok, stats.fetch_error), (1, 1, 0));
    assert!(stats.age.is_some() && stats.last_error.is_none());
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn kidless_lookup_needs_exactly_one_fitting_key() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start(Reply::Json(doc(&[&k1, &k2]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();

    assert!(matches!(cache.lookup(None, ES256), KeyLookup::NotFound));
    assert!(matches!(
        cache.lookup_or_refetch(Some("k2"), ES256).await,
        KeyLookup::Found(_)
    ));
}

#[tokio::test]
async fn rotation_is_picked_up_on_refresh() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();

    // The same document again is not a change.
    cache.refresh().await.unwrap();
    assert_eq!(cache.generation(), 1);

    server.set(Reply::Json(doc(&[&k2])));
    assert_eq!(cache.refresh().await, Ok(1));

    assert_eq!(
        found_kid(&cache.lookup(Some("k2"), ES256)).as_deref(),
        Some("k2")
    );
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::NotFound
    ));
    assert_eq!(cache.generation(), 2);
    assert_eq!(cache.stats().fetch_ok, 3);
}

#[tokio::test]
async fn file_source_loads_keys() {
    let (k1, k2) = (key("k1"), key("k2"));
    let dir = temp_dir("file");
    let path = dir.join("jwks.json");
    std::fs::write(&path, doc(&[&k1])).unwrap();
    let cache = JwksCache::new(config(JwksSource::File(path.clone()))).unwrap();

    assert_eq!(cache.refresh().await, Ok(1));
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));

    // Read again on every refresh.
    std::fs::write(&path, doc(&[&k1, &k2])).unwrap();
    assert_eq!(cache.refresh().await, Ok(2));
    assert!(matches!(
        cache.lookup(Some("k2"), ES256),
        KeyLookup::Found(_)
    ));

    // A file that disappears is a failed fetch; the keys stay.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(cache.refresh().await, Err(JwksError::Fetch(_))));
    assert!(matches!(
        cache.lookup(Some("k2"), ES256),
        KeyLookup::Found(_)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn oversized_file_is_refused() {
    let dir = temp_dir("big-file");
    let path = dir.join("jwks.json");
    std::fs::write(&path, vec![b' '; 2048]).unwrap();
    let mut cfg = config(JwksSource::File(path));
    cfg.limits.max_bytes = 1024;
    let cache = JwksCache::new(cfg).unwrap();

    assert!(matches!(cache.refresh().await, Err(JwksError::BadKeySet(m)) if m.contains("larger")));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Refetch on unknown kid, single-flight
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_kid_triggers_one_refetch() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();

    // The IdP rotates; the first token signed with the new key makes the cache refetch.
    server.set(Reply::Json(doc(&[&k1, &k2])));
    assert_eq!(
        found_kid(&cache.lookup_or_refetch(Some("k2"), ES256).await).as_deref(),
        Some("k2")
    );
    assert_eq!(server.jwks_hits(), 2);

    // Known kids never fetch; another unknown kid within the cooldown does not either.
    assert!(matches!(
        cache.lookup_or_refetch(Some("k1"), ES256).await,
        KeyLookup::Found(_)
    ));
    assert!(matches!(
        cache.lookup_or_refetch(Some("k3"), ES256).await,
        KeyLookup::NotFound
    ));
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_refetch_is_allowed_again_after_cooldown() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let mut cfg = config(JwksSource::Uri(server.url("/jwks")));
    cfg.refetch_cooldown = Duration::from_millis(50);
    let cache = JwksCache::new(cfg).unwrap();
    cache.refresh().await.unwrap();

    assert!(matches!(
        cache.lookup_or_refetch(Some("nope"), ES256).await,
        KeyLookup::NotFound
    ));
    assert!(matches!(
        cache.lookup_or_refetch(Some("nope"), ES256).await,
        KeyLookup::NotFound
    ));
    assert_eq!(server.jwks_hits(), 2);

    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(matches!(
        cache.lookup_or_refetch(Some("nope"), ES256).await,
        KeyLookup::NotFound
    ));
    assert_eq!(server.jwks_hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let k1 = key("k1");
    // A slow answer makes most of the flood arrive while the refetch is in flight.
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();
    server.set(Reply::Slow(Duration::from_millis(50), doc(&[&k1])));

    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let lookups: Vec<_> = (0..200)
        .map(|i| {
            let (cache, barrier) = (Arc::clone(&cache), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let kid = format!("random-{i}-{}", i * 7919 % 1000);
                matches!(
                    cache.lookup_or_refetch(Some(&kid), ES256).await,
                    KeyLookup::NotFound
                )
            })
        })
        .collect();
    for lookup in lookups {
        assert!(lookup.await.unwrap(), "a random kid is never found");
    }

    assert_eq!(
        server.jwks_hits(),
        2,
        "the initial fetch and exactly one refetch"
    );
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_share_one_fetch() {
    let k1 = key("k1");
    let server = Server::start(Reply::Gated(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();

    let refreshes: Vec<_> = (0..10)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.refresh().await })
        })
        .collect();
    // One request is in flight and held; wait until the nine others queue behind it.
    server.state.arrived.notified().await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while cache.waiters.load(Ordering::SeqCst) < 9 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the other refreshes wait for the fetch in flight");
    server.state.gate.notify_one();

    for refresh in refreshes {
        assert_eq!(refresh.await.unwrap(), Ok(1));
    }
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(cache.stats().fetch_ok, 1);
}

#[tokio::test]
async fn refetch_completes_when_the_caller_goes_away() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();
    server.set(Reply::Gated(doc(&[&k1, &k2])));

    // The request that triggered the refetch is dropped while the fetch is in flight.
    let caller = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { found_kid(&cache.lookup_or_refetch(Some("k2"), ES256).await) })
    };
    server.state.arrived.notified().await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    server.state.gate.notify_one();

    // The fetch still finishes and installs.
    tokio::time::timeout(Duration::from_secs(5), async {
        while cache.generation() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the orphaned fetch installs the new keys");
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(cache.stats().fetch_ok, 2);
    assert!(matches!(
        cache.lookup(Some("k2"), ES256),
        KeyLookup::Found(_)
    ));
}

// ---------------------------------------------------------------------------------------
// Failures keep the last good keys
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn server_down_keeps_last_good_keys() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();

    server.set(Reply::Status(503));
    assert_eq!(
        cache.refresh().await,
        Err(JwksError::Fetch("HTTP 503".into()))
    );
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));
    assert!(cache.is_ready());

    server.task.abort();
    let _ = server.task.await;
    assert!(matches!(cache.refresh().await, Err(JwksError::Fetch(_))));
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));

    let stats = cache.stats();
    assert_eq!((stats.keys, stats.fetch_ok, stats.fetch_error), (1, 1, 2));
    assert!(stats.last_error.is_some());
    assert_eq!(cache.generation(), 1);
}

#[tokio::test]
async fn success_clears_last_error() {
    let k1 = key("k1");
    let server = Server::start(Reply::Status(500)).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    assert!(cache.refresh().await.is_err());
    assert_eq!(
        cache.stats().last_error.as_deref(),
        Some("fetch failed: HTTP 500")
    );

    server.set(Reply::Json(doc(&[&k1])));
    cache.refresh().await.unwrap();
    assert_eq!(cache.stats().last_error, None);
}

#[tokio::test]
async fn empty_key_set_keeps_old_keys() {
    let k1 = key("k1");
    let rsa = SigningKey::generate(Algorithm::RS256, "rsa").unwrap();
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();
    cache.refresh().await.unwrap();

    server.set(Reply::Json(r#"{"keys":[]}"#.into()));
    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::BadKeySet(_))
    ));
    // Keys this issuer may not use (RS256 is not in its allow-list) are no better.
    server.set(Reply::Json(doc(&[&rsa])));
    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::BadKeySet(_))
    ));

    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));
    assert_eq!(cache.generation(), 1);
    assert_eq!(cache.stats().fetch_error, 2);
}

#[tokio::test]
async fn keys_become_unavailable_after_max_stale() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let mut cfg = config(JwksSource::Uri(server.url("/jwks")));
    cfg.max_stale = Duration::from_millis(50);
    let cache = JwksCache::new(cfg).unwrap();
    cache.refresh().await.unwrap();
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));

    server.set(Reply::Status(500));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(cache.refresh().await.is_err());

    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Unavailable
    ));
    assert!(matches!(
        cache.lookup_or_refetch(Some("k1"), ES256).await,
        KeyLookup::Unavailable
    ));
    assert!(!cache.is_ready());
    assert_eq!(cache.stats().keys, 1, "the keys are kept, not used");

    // The next success makes them usable again.
    server.set(Reply::Json(doc(&[&k1])));
    cache.refresh().await.unwrap();
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));
    assert_eq!(cache.generation(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    server.set(Reply::Redirect("/other"));
    let cache = JwksCache::new(config(JwksSource::Uri(server.url("/jwks")))).unwrap();

    let err = cache.refresh().await.unwrap_err();
    assert!(
        matches!(&err, JwksError::Fetch(m) if m.contains("redirect not followed")),
        "{err}"
    );
    assert_eq!(server.state.other_hits.load(Ordering::SeqCst), 0);
    assert!(!cache.is_ready());
}

#[tokio::test]
async fn oversized_document_is_refused() {
    let mut cfg = config(JwksSource::Uri(String::new()));
    cfg.limits.max_bytes = 4096;
    cfg.fetch_timeout = Duration::from_secs(10);

    // Declared too large: refused on the header, without waiting for a body.
    let declared = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n",
        false,
    )
    .await;
    cfg.source = JwksSource::Uri(format!("http://{declared}/jwks"));
    let cache = JwksCache::new(cfg.clone()).unwrap();
    let started = std::time::Instant::now();
    assert!(
        matches!(cache.refresh().await, Err(JwksError::BadKeySet(m)) if m.contains("larger than 4096"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Chunked and endless: reading stops at the cap.
    let endless = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        true,
    )
    .await;
    cfg.source = JwksSource::Uri(format!("http://{endless}/jwks"));
    let cache = JwksCache::new(cfg.clone()).unwrap();
    let started = std::time::Instant::now();
    assert!(
        matches!(cache.refresh().await, Err(JwksError::BadKeySet(m)) if m.contains("larger than 4096"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // An ordinary response one byte over the cap.
    let server = Server::start(Reply::Json(format!(
        "{{\"keys\":[],\"pad\":\"{}\"}}",
        "a".repeat(4096)
    )))
    .await;
    cfg.source = JwksSource::Uri(server.url("/jwks"));
    let cache = JwksCache::new(cfg).unwrap();
    assert!(matches!(cache.refresh().await, Err(JwksError::BadKeySet(m)) if m.contains("larger")));
}

#[tokio::test]
async fn too_many_keys_is_refused() {
    let keys: Vec<SigningKey> = (0..3).map(|i| key(&format!("k{i}"))).collect();
    let server = Server::start(Reply::Json(doc(&keys.iter().collect::<Vec<_>>()))).await;
    let mut cfg = config(JwksSource::Uri(server.url("/jwks")));
    cfg.limits.max_keys = 2;
    let cache = JwksCache::new(cfg).unwrap();

    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::BadKeySet(_))
    ));
    assert!(!cache.is_ready());
    assert_eq!(cache.stats().keys, 0);
}

#[tokio::test]
async fn slow_server_times_out() {
    let k1 = key("k1");
    let server = Server::start(Reply::Slow(Duration::from_secs(30), doc(&[&k1]))).await;
    let mut cfg = config(JwksSource::Uri(server.url("/jwks")));
    cfg.fetch_timeout = Duration::from_millis(200);
    let cache = JwksCache::new(cfg).unwrap();

    let started = std::time::Instant::now();
    let err = cache.refresh().await.unwrap_err();
    assert!(
        matches!(&err, JwksError::Fetch(m) if m.contains("timed out")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------
// URL rule and discovery
// ---------------------------------------------------------------------------------------

#[test]
fn plain_http_to_non_loopback_is_refused() {
    let uri = |u: &str| config(JwksSource::Uri(u.into()));
    assert!(matches!(
        JwksCache::new(uri("http://idp.example/jwks")),
        Err(JwksError::InsecureUrl(_))
    ));
    assert!(matches!(
        JwksCache::new(uri("http://10.0.0.1/jwks")),
        Err(JwksError::InsecureUrl(_))
    ));
    assert!(matches!(
        JwksCache::new(uri("http://localhost.idp.example/jwks")),
        Err(JwksError::InsecureUrl(_))
    ));

    let mut discovery = config(JwksSource::Discovery);
    discovery.issuer = "http://idp.example".into();
    assert!(matches!(
        JwksCache::new(discovery.clone()),
        Err(JwksError::InsecureUrl(_))
    ));

    // Opting in allows it.
    discovery.allow_insecure_http = true;
    assert!(JwksCache::new(discovery).is_ok());
    let mut opted_in = uri("http://idp.example/jwks");
    opted_in.allow_insecure_http = true;
    assert!(JwksCache::new(opted_in).is_ok());
}

#[test]
fn https_and_loopback_http_are_accepted() {
    for url in [
        "https://idp.example/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://127.9.9.9/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost/jwks",
        "http://LOCALHOST:1/jwks",
    ] {
        assert!(
            JwksCache::new(config(JwksSource::Uri(url.into()))).is_ok(),
            "{url}"
        );
    }
}

#[test]
fn other_schemes_and_credentials_in_urls_are_refused() {
    for url in [
        "ftp://idp.example/jwks",
        "file:///etc/jwks.json",
        "not a url",
        "https://user:pw@idp.example/jwks",
    ] {
        let mut cfg = config(JwksSource::Uri(url.into()));
        cfg.allow_insecure_http = true;
        assert!(
            matches!(JwksCache::new(cfg), Err(JwksError::BadUrl(_))),
            "{url}"
        );
    }
}

#[tokio::test]
async fn discovery_follows_jwks_uri() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let issuer = server.url("/tenant");
    server.set_discovery(serde_json::json!({ "issuer": issuer, "jwks_uri": server.url("/other") }));

    let mut cfg = config(JwksSource::Discovery);
    cfg.issuer = issuer.clone();
    let cache = JwksCache::new(cfg.clone()).unwrap();
    assert_eq!(cache.refresh().await, Ok(1));
    assert!(matches!(
        cache.lookup(Some("k1"), ES256),
        KeyLookup::Found(_)
    ));
    assert_eq!(server.state.discovery_hits.load(Ordering::SeqCst), 1);
    assert_eq!(server.state.other_hits.load(Ordering::SeqCst), 1);

    // Discovery is repeated on each fetch: a moved `jwks_uri` is followed.
    server.set_discovery(serde_json::json!({ "issuer": issuer, "jwks_uri": server.url("/jwks") }));
    cache.refresh().await.unwrap();
    assert_eq!(server.jwks_hits(), 1);

    // An issuer with a trailing slash: the metadata path does not get a double slash.
    server.set_discovery(
        serde_json::json!({ "issuer": format!("{issuer}/"), "jwks_uri": server.url("/jwks") }),
    );
    cfg.issuer = format!("{issuer}/");
    let cache = JwksCache::new(cfg).unwrap();
    assert_eq!(cache.refresh().await, Ok(1));
}

#[tokio::test]
async fn discovery_with_foreign_issuer_is_refused() {
    let k1 = key("k1");
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    server.set_discovery(
        serde_json::json!({ "issuer": "https://evil.example", "jwks_uri": server.url("/jwks") }),
    );
    let mut cfg = config(JwksSource::Discovery);
    cfg.issuer = server.url("");
    let cache = JwksCache::new(cfg.clone()).unwrap();

    assert_eq!(
        cache.refresh().await,
        Err(JwksError::IssuerMismatch {
            expected: cfg.issuer.clone(),
            found: "https://evil.example".into()
        })
    );
    assert_eq!(server.jwks_hits(), 0);
    assert!(!cache.is_ready());

    // A trailing-slash difference is a different issuer too.
    server.set_discovery(serde_json::json!({ "issuer": format!("{}/", cfg.issuer), "jwks_uri": server.url("/jwks") }));
    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::IssuerMismatch { .. })
    ));
}

#[tokio::test]
async fn discovered_jwks_uri_must_pass_the_url_rule() {
    let server = Server::start(Reply::Status(500)).await;
    let mut cfg = config(JwksSource::Discovery);
    cfg.issuer = server.url("");
    server.set_discovery(
        serde_json::json!({ "issuer": cfg.issuer, "jwks_uri": "http://idp.example/jwks" }),
    );
    let cache = JwksCache::new(cfg.clone()).unwrap();
    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::InsecureUrl(_))
    ));

    server.set_discovery(serde_json::json!({ "issuer": cfg.issuer, "jwks_uri": 42 }));
    assert!(matches!(cache.refresh().await, Err(JwksError::Fetch(_))));
    server.set_discovery(serde_json::json!(["not", "an", "object"]));
    assert!(matches!(cache.refresh().await, Err(JwksError::Fetch(_))));
    assert_eq!(server.jwks_hits(), 0);
}

// ---------------------------------------------------------------------------------------
// Background refresher
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn background_refresher_picks_up_rotation_without_fetching_at_start() {
    let (k1, k2) = (key("k1"), key("k2"));
    let server = Server::start(Reply::Json(doc(&[&k1]))).await;
    let mut cfg = config(JwksSource::Uri(server.url("/jwks")));
    cfg.refresh = Duration::from_secs(1);
    let cache = JwksCache::new(cfg).unwrap();
    cache.refresh().await.unwrap();
    server.set(Reply::Json(doc(&[&k2])));

    let started = std::time::Instant::now();
    let refresher = tokio::spawn(Arc::clone(&cache).run_refresher());
    tokio::time::timeout(Duration::from_secs(5), async {
        while cache.generation() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the refresher installs the rotated keys");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "no fetch at start"
    );
    assert!(matches!(
        cache.lookup(Some("k2"), ES256),
        KeyLookup::Found(_)
    ));
    assert_eq!(server.jwks_hits(), 2);
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn refresher_backs_off_after_failures_and_recovers() {
    // A file source: no network I/O, so the paused clock is exact.
    let k1 = key("k1");
    let dir = temp_dir("backoff");
    let path = dir.join("jwks.json");
    let mut cfg = config(JwksSource::File(path.clone()));
    cfg.refresh = Duration::from_secs(10);
    let cache = JwksCache::new(cfg).unwrap();
    assert!(cache.refresh().await.is_err());

    let refresher = tokio::spawn(Arc::clone(&cache).run_refresher());
    let start = tokio::time::Instant::now();
    let errors_at = |secs: f64| {
        let cache = Arc::clone(&cache);
        async move {
            tokio::time::sleep_until(start + Duration::from_secs_f64(secs)).await;
            cache.stats().fetch_error
        }
    };
    // Retries at 1 s, then +2 s (3 s), +4 s (7 s), +8 s (15 s), +10 s (25 s: capped).
    assert_eq!(errors_at(0.5).await, 1);
    assert_eq!(errors_at(1.5).await, 2);
    assert_eq!(errors_at(2.5).await, 2);
    assert_eq!(errors_at(3.5).await, 3);
    assert_eq!(errors_at(6.5).await, 3);
    assert_eq!(errors_at(7.5).await, 4);
    assert_eq!(errors_at(14.5).await, 4);
    assert_eq!(errors_at(15.5).await, 5);
    std::fs::write(&path, doc(&[&k1])).unwrap();
    assert_eq!(errors_at(24.5).await, 5);
    assert_eq!(errors_at(25.5).await, 5);
    assert!(cache.is_ready());
    // Back to the regular period after a success.
    assert_eq!(cache.stats().fetch_ok, 1);
    assert_eq!(errors_at(34.5).await, 5);
    assert_eq!(cache.stats().fetch_ok, 1);
    assert_eq!(errors_at(35.5).await, 5);
    assert_eq!(cache.stats().fetch_ok, 2);

    refresher.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}
