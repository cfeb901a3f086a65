//! A JWKS server whose document can be swapped (key rotation), that counts requests, and
//! that can be taken down (503), slowed down, or stopped (listener dropped: connection
//! refused).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use filters::sign::SigningKey;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    document: Mutex<String>,
    requests: AtomicUsize,
    down: AtomicBool,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
}

/// The JWKS server. Dropping it stops it.
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

async fn serve_document(State(shared): State<Arc<Shared>>) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if shared.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
    }
    let doc = shared
        .document
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/jwk-set+json")], doc).into_response()
}

impl JwksServer {
    /// Starts serving the public halves of `keys` at `/jwks.json` on an ephemeral port.
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS server");
        let addr = listener.local_addr().expect("JWKS server address");
        let app = Router::new()
            .route("/jwks.json", get(serve_document))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let server = JwksServer { addr, shared, task };
        server.serve(keys);
        server
    }

    /// The document's URL.
    pub fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Serves the public halves of `keys` from now on (rotation).
    pub fn serve(&self, keys: &[&SigningKey]) {
        self.serve_document(filters::sign::jwks_document(keys.iter().copied()).to_string());
    }

    /// Serves `document` verbatim from now on (for documents no key set produces).
    pub fn serve_document(&self, document: String) {
        *self.shared.document.lock().expect("JWKS document lock") = document;
    }

    /// While `down`, every request is answered 503 (and still counted).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// From now on, every answer is sent `delay` after the request arrives.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Drops the listener: once this returns, connections are refused.
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
