//! An upstream that records every request it receives (method, path, headers) and answers
//! 200 `upstream ok` — at once, or after a delay ([`Upstream::start_slow`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::Router;
use tokio::task::JoinHandle;

/// One request as the upstream saw it. Header names are lower-case (as hyper gives them).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of header `name` (lower-case).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of header `name`; panics if it was sent more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "upstream got {name} {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }

    /// Names of the headers whose canonical name (lower-case, `_` → `-`) starts with `prefix`.
    pub fn names_starting(&self, prefix: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.replace('_', "-").starts_with(prefix))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether any header name or value contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.contains(needle) || v.contains(needle))
    }
}

/// The upstream server. Dropping it stops it.
pub struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

async fn record(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> &'static str {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.to_string());
    if let Ok(mut seen) = seen.lock() {
        seen.push(Seen {
            method: req.method().to_string(),
            path,
            headers,
        });
    }
    "upstream ok"
}

impl Upstream {
    /// Starts on an ephemeral port.
    pub async fn start() -> Upstream {
        Self::start_slow(Duration::ZERO).await
    }

    /// Starts on an ephemeral port; each request is recorded when it arrives (so
    /// [`Upstream::count`] shows it in flight) and answered `delay` later.
    pub async fn start_slow(delay: Duration) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the upstream");
        let addr = listener.local_addr().expect("upstream address");
        let app = Router::new()
            .fallback(move |state, req| async move {
                let answer = record(state, req).await;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                answer
            })
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { addr, seen, task }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// The last request received; panics if there was none.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.last().cloned())
            .expect("the upstream received no request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
