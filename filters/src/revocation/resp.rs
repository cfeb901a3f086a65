//! The request path's own connection to a standalone Redis: one pipelined RESP2 connection per
//! runtime, owned by that runtime's batcher task.
//!
//! The `redis` crate's multiplexed connection costs about 3,600 instructions per request on
//! the check path (its combinator parser, its command objects, a driver task and a channel
//! hop; callgrind, BENCHMARKS.md). The check path only ever sends two commands, `MGET` and
//! `SET key 1 NX PX ttl`, and only ever reads back arrays of bulk strings, nil, `+OK` and
//! errors: this module (with `resp/codec.rs`) encodes those into one reused buffer and parses
//! the replies in place, in the task that batches the checks, with no other task in between.
//!
//! Behaviour on failure matches the crate's connection manager: the connection is made on
//! first use (`AUTH` and `SELECT` as the URL says), an I/O or protocol error fails every
//! command in flight and drops the connection, and the next command reconnects; while
//! connection attempts fail they are spaced by a doubling delay (at most
//! [`RECONNECT_MAX_DELAY`]), and commands in between fail at once. An error reply (`-ERR …`)
//! fails its command only. A connection whose oldest command has had no reply within the
//! batch limit is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod codec;

use codec::{encode, encode_mget, parse_status, parse_values, Status};

use super::batch::{answer_all, answer_checks, Job, Work, MAX_BATCH_CHECKS, MAX_IN_FLIGHT};
use super::redis_store::{sanitize, RECONNECT_MAX_DELAY};
use super::StoreError;

/// First wait after a failed connection attempt; doubled per failure up to
/// [`RECONNECT_MAX_DELAY`].
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(25);

/// Where and how to connect: a `redis://` URL over TCP.
pub(super) struct Endpoint {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
    /// Bound on the reply to the oldest command in flight.
    reply_limit: Duration,
    secrets: Arc<[String]>,
}

impl Endpoint {
    /// The endpoint of a standalone `redis://host:port[/db]` URL; `None` for addresses this
    /// client does not speak (Unix sockets), which keep the `redis` crate's connection.
    /// `connect_timeout` bounds a connection attempt, and the wait for the reply to the
    /// oldest command in flight.
    pub(super) fn of(
        client: &redis::Client,
        connect_timeout: Duration,
        secrets: Arc<[String]>,
    ) -> Option<Endpoint> {
        let info = client.get_connection_info();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(Endpoint {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            connect_timeout,
            reply_limit: connect_timeout,
            secrets,
        })
    }

    fn unavailable(&self, what: &str) -> StoreError {
        StoreError::Unavailable(sanitize(what, &self.secrets))
    }

    /// Connects, authenticates and selects the database, within `connect_timeout`.
    async fn connect(&self) -> Result<Conn, StoreError> {
        let attempt = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| self.unavailable(&format!("connecting to Redis: {e}")))?;
            // Small commands, one per batch: send each at once.
            stream
                .set_nodelay(true)
                .map_err(|e| self.unavailable(&format!("connecting to Redis: {e}")))?;
            let mut conn = Conn {
                stream,
                rbuf: BytesMut::with_capacity(4096),
                wbuf: Vec::with_capacity(4096),
            };
            let mut expected = 0;
            if let Some(password) = &self.password {
                match &self.username {
                    Some(user) => encode(
                        &mut conn.wbuf,
                        &[b"AUTH", user.as_bytes(), password.as_bytes()],
                    ),
                    None => encode(&mut conn.wbuf, &[b"AUTH", password.as_bytes()]),
                }
                expected += 1;
            }
            if self.db != 0 {
                encode(&mut conn.wbuf, &[b"SELECT", self.db.to_string().as_bytes()]);
                expected += 1;
            }
            if expected > 0 {
                conn.flush()
                    .await
                    .map_err(|e| self.unavailable(&format!("Redis handshake: {e}")))?;
            }
            for _ in 0..expected {
                loop {
                    match parse_status(&conn.rbuf) {
                        Ok(Some((Status::Ok, used))) => {
                            conn.rbuf.advance(used);
                            break;
                        }
                        Ok(Some((Status::Error(message), _))) => {
                            return Err(self.unavailable(&format!("Redis handshake: {message}")));
                        }
                        Ok(Some((Status::Nil, _))) | Err(_) => {
                            return Err(self.unavailable("Redis handshake: unexpected reply"));
                        }
                        Ok(None) => conn
                            .fill()
                            .await
                            .map_err(|e| self.unavailable(&format!("Redis handshake: {e}")))?,
                    }
                }
            }
            Ok(conn)
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no connection to Redis within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }
}

/// One open connection and its buffers.
struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Writes all of `wbuf`.
    async fn flush(&mut self) -> std::io::Result<()> {
        let result = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result
    }

    /// Reads more bytes into `rbuf`; end of stream is an error. Cancel-safe.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// A command in flight, in the order it was written.
enum Pending {
    /// One `MGET` for these checks (`keys` values expected).
    Checks { jobs: Vec<Job>, keys: usize },
    /// One `SET … NX PX`.
    Once(oneshot::Sender<Result<bool, StoreError>>),
}

impl Pending {
    fn fail(self, e: &StoreError) {
        match self {
            Pending::Checks { jobs, .. } => answer_all(jobs, e),
            Pending::Once(reply) => {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The connection's state between commands.
struct Link {
    endpoint: Arc<Endpoint>,
    conn: Option<Conn>,
    /// Commands written and not yet answered, oldest first, each with when it was written.
    pending: VecDeque<(Instant, Pending)>,
    /// No connection attempt before this instant (after failed ones), and why.
    retry_at: Option<(Instant, StoreError)>,
    delay: Duration,
}

impl Link {
    /// Fails every command in flight and drops the connection.
    fn reset(&mut self, e: &StoreError) {
        self.conn = None;
        for (_, p) in self.pending.drain(..) {
            p.fail(e);
        }
    }

    /// The open connection, making one if allowed.
    async fn connected(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            if let Some((at, why)) = &self.retry_at {
                if Instant::now() < *at {
                    return Err(why.clone());
                }
            }
            match self.endpoint.connect().await {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.retry_at = None;
                    self.delay = RECONNECT_MIN_DELAY;
                }
                Err(e) => {
                    self.retry_at = Some((Instant::now() + self.delay, e.clone()));
                    self.delay = (self.delay * 2).min(RECONNECT_MAX_DELAY);
                    return Err(e);
                }
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no Redis connection".into()))
    }

    /// Writes one `MGET` for `checks` and the `SET`s of `onces`, and records them in flight.
    async fn send(&mut self, work: &mut Vec<Work>) {
        let mut checks = Vec::new();
        let mut onces = Vec::new();
        for w in work.drain(..) {
            match w {
                Work::Check(job) if !job.reply.is_closed() => checks.push(job),
                Work::Once { key, ttl_ms, reply } if !reply.is_closed() => {
                    onces.push((key, ttl_ms, reply))
                }
                _ => {}
            }
        }
        if checks.is_empty() && onces.is_empty() {
            return;
        }
        let limit = self.endpoint.reply_limit;
        let conn = match self.connected().await {
            Ok(conn) => conn,
            Err(e) => {
                answer_all(checks, &e);
                for (_, _, reply) in onces {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut new = Vec::with_capacity(1 + onces.len());
        if !checks.is_empty() {
            let keys: usize = checks.iter().map(|j| j.keys.len()).sum();
            let all = checks
                .iter()
                .flat_map(|j| j.keys.iter().map(|(_, k)| k.as_bytes()));
            encode_mget(&mut conn.wbuf, keys, all);
            new.push(Pending::Checks { jobs: checks, keys });
        }
        for (key, ttl_ms, reply) in onces {
            let ttl = ttl_ms.to_string();
            encode(
                &mut conn.wbuf,
                &[b"SET", key.as_bytes(), b"1", b"NX", b"PX", ttl.as_bytes()],
            );
            new.push(Pending::Once(reply));
        }
        let written = tokio::time::timeout(limit, conn.flush()).await;
        let now = Instant::now();
        self.pending.extend(new.into_iter().map(|p| (now, p)));
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = self.endpoint.unavailable(&format!("writing to Redis: {e}"));
                self.reset(&e);
            }
            Err(_) => self.reset(&StoreError::Timeout),
        }
    }

    /// Answers every command whose reply is complete in the read buffer. Bytes with no
    /// command waiting for them (Redis sends none unasked in RESP2) are a protocol error.
    fn answer(&mut self) {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let Some((_, front)) = self.pending.front() else {
                if !conn.rbuf.is_empty() {
                    let e = self
                        .endpoint
                        .unavailable("Redis protocol error: unexpected data");
                    self.reset(&e);
                }
                return;
            };
            let parsed = match front {
                Pending::Checks { keys, .. } => parse_values(&conn.rbuf, *keys)
                    .map(|r| r.map(|(v, used)| (Reply::Values(v), used))),
                Pending::Once(_) => {
                    parse_status(&conn.rbuf).map(|r| r.map(|(s, used)| (Reply::Status(s), used)))
                }
            };
            let (reply, used) = match parsed {
                Ok(Some(done)) => done,
                Ok(None) => return,
                Err(e) => {
                    let e = self
                        .endpoint
                        .unavailable(&format!("Redis protocol error: {e}"));
                    return self.reset(&e);
                }
            };
            let Some((_, front)) = self.pending.pop_front() else {
                return;
            };
            match (front, reply) {
                (Pending::Checks { jobs, .. }, Reply::Values(Ok(values))) => {
                    answer_checks(jobs, &values);
                }
                (Pending::Once(reply), Reply::Status(Status::Ok)) => {
                    let _ = reply.send(Ok(true));
                }
                (Pending::Once(reply), Reply::Status(Status::Nil)) => {
                    let _ = reply.send(Ok(false));
                }
                (front, Reply::Values(Err(message)) | Reply::Status(Status::Error(message))) => {
                    front.fail(
                        &self
                            .endpoint
                            .unavailable(&format!("Redis error: {message}")),
                    );
                }
                (front, _) => {
                    // Unreachable: each command is parsed as its own kind.
                    front.fail(&StoreError::Unavailable("unexpected Redis reply".into()));
                }
            }
            if let Some(conn) = self.conn.as_mut() {
                conn.rbuf.advance(used);
            }
        }
    }
}

enum Reply<'a> {
    Values(Result<Vec<Option<&'a [u8]>>, String>),
    Status(Status),
}

/// The batcher task of one runtime on a standalone Redis over TCP: batches checks as
/// `batch::run_batcher` does and runs them on its own connection. Runs until every sender
/// (the store) is gone.
pub(super) async fn run_direct(mut queue: mpsc::Receiver<Work>, endpoint: Arc<Endpoint>) {
    let limit = endpoint.reply_limit;
    let mut link = Link {
        endpoint,
        conn: None,
        pending: VecDeque::new(),
        retry_at: None,
        delay: RECONNECT_MIN_DELAY,
    };
    let mut work = Vec::with_capacity(MAX_BATCH_CHECKS);
    loop {
        let oldest = link.pending.front().map(|(sent, _)| *sent);
        let accepting = link.pending.len() < MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            // Also while idle, so that a connection closed by the server (a restart) is
            // dropped before the next check would fail on it.
            read = async {
                match link.conn.as_mut() {
                    Some(conn) => conn.fill().await,
                    None => std::future::pending().await,
                }
            }, if link.conn.is_some() => match read {
                Ok(()) => link.answer(),
                Err(e) => {
                    let e = link.endpoint.unavailable(&format!("reading from Redis: {e}"));
                    link.reset(&e);
                }
            },
            () = tokio::time::sleep_until(oldest.unwrap_or_else(Instant::now) + limit), if oldest.is_some() => {
                link.reset(&StoreError::Timeout);
            },
            n = queue.recv_many(&mut work, MAX_BATCH_CHECKS), if accepting => {
                if n == 0 {
                    break;
                }
                // Sent as soon as it is taken, without first yielding to let more checks
                // queue: the connection is pipelined, so the next batch forms while this one
                // is in flight. Waiting for a whole wave of requests made them all wait on one
                // reply and left the thread idle meanwhile (see `batch.rs`).
                link.send(&mut work).await;
            },
        }
    }
    link.reset(&StoreError::Unavailable("revocation store closed".into()));
}
