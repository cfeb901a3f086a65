//! HTTP clients: reqwest for ordinary requests, and a raw HTTP/1.1 client for requests a
//! client library would normalise or refuse (dot segments, nominated `Connection` headers).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response the raw client reads.
const MAX_RESPONSE: usize = 1 << 20;

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A shared client: no proxy (the environment's must not apply), no pooling surprises.
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("build the HTTP client")
    })
}

/// Sends `method url` with `headers` (appended in order, so a name may repeat).
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(method, url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("body of {url}: {e}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, headers).await
}

/// `GET url` with `Authorization: Bearer token`.
pub async fn get_bearer(url: &str, token: &str) -> Reply {
    get(url, &[("authorization", &format!("Bearer {token}"))]).await
}

/// Sends `request_line` (e.g. `GET /a/../b HTTP/1.1`) and `headers` verbatim over a new
/// connection, with `Host` and `Connection: close` added unless given, and reads the
/// response to the end.
pub async fn raw(addr: SocketAddr, request_line: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = format!("{request_line}\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || buf.len() > MAX_RESPONSE {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(reply) = parse_complete(&buf) {
                return Ok(reply);
            }
        }
        Ok::<_, std::io::Error>(parse(&buf))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("raw request {request_line:?} timed out"))
        .unwrap_or_else(|e| panic!("raw request {request_line:?} failed: {e}"))
}

/// The response in `buf` once its head and `Content-Length` body are complete.
fn parse_complete(buf: &[u8]) -> Option<Reply> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let reply = parse(&buf[..head_end]);
    let len: usize = reply.header("content-length")?.parse().ok()?;
    (buf.len() >= head_end + len).then(|| parse(&buf[..head_end + len]))
}

/// Parses a whole response (the body is whatever follows the head).
fn parse(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in response: {text:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((n, v)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                headers.append(n, v);
            }
        }
    }
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}
