//! The request path's own RESP connection (`resp.rs`) against real `redis-server` processes
//! and against a misbehaving server: authentication, database selection, protocol errors and
//! reconnection.

use std::time::Duration;

use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::test_redis::{admin, RedisServer};
use super::tests::{config, token, HOUR};
use super::*;

/// Requires a password (and an ACL user) on a running server.
async fn protect(server: &RedisServer) {
    let mut conn = admin(server.port).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "gate", "on", ">gate-pw", "~*", "+@all"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "s3cret"])
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn checks_authenticate_and_read_the_configured_database() {
    let server = RedisServer::start().await;
    protect(&server).await;
    let port = server.port;
    let raw = |url: String| async move {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    };
    // Revoked in database 0 only: a store on database 3 must not see it.
    let mut db0 = raw(format!("redis://:s3cret@127.0.0.1:{port}/0")).await;
    let _: () = db0.set("revoked:in-db0", 1).await.unwrap();
    for (i, url) in [
        format!("redis://:s3cret@127.0.0.1:{port}/3"),
        format!("redis://gate:gate-pw@127.0.0.1:{port}/3"),
    ]
    .into_iter()
    .enumerate()
    {
        let s = RedisStore::connect(config(vec![url])).await.unwrap();
        assert_eq!(
            s.check(&token(Some("in-db0"), None, None)).await,
            Ok(Verdict::Valid)
        );
        s.revoke_token("in-db3", HOUR).await.unwrap();
        assert_eq!(
            s.check(&token(Some("in-db3"), None, None)).await,
            Ok(Verdict::TokenRevoked)
        );
        let proof = format!("proof-{i}");
        assert!(s.use_once(&proof, HOUR).await.unwrap());
        assert!(!s.use_once(&proof, HOUR).await.unwrap());
    }
    let mut db3 = raw(format!("redis://:s3cret@127.0.0.1:{port}/3")).await;
    assert_eq!(db3.exists::<_, bool>("revoked:in-db3").await, Ok(true));
    assert_eq!(db0.exists::<_, bool>("revoked:in-db3").await, Ok(false));
}

#[tokio::test]
async fn a_wrong_password_fails_checks_without_leaking_it() {
    let server = RedisServer::start().await;
    protect(&server).await;
    let url = format!("redis://:not-it@127.0.0.1:{}", server.port);
    let s = RedisStore::connect_lazy(config(vec![url])).unwrap();
    for _ in 0..3 {
        match s.check(&token(Some("j"), None, None)).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(!message.contains("not-it"), "{message}");
            }
            other => panic!("a refused AUTH must fail the check: {other:?}"),
        }
    }
}

/// Reads one RESP command (an array of bulk strings) from `buf`: its arguments and length.
fn command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let text = buf;
    let line_end = |from: usize| {
        text[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let end = line_end(0)?;
    let n: usize = std::str::from_utf8(&text[1..end]).ok()?.parse().ok()?;
    let mut at = end + 2;
    let mut args = Vec::new();
    for _ in 0..n {
        let end = line_end(at)?;
        let len: usize = std::str::from_utf8(&text[at + 1..end]).ok()?.parse().ok()?;
        let start = end + 2;
        args.push(text.get(start..start + len)?.to_vec());
        at = start + len + 2;
        if at > text.len() {
            return None;
        }
    }
    Some((args, at))
}

/// A server that answers its first connection's first command with `garbage`, then closes
/// it; later connections get well-formed replies (every `MGET` key absent).
async fn misbehaving_server(garbage: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let bad = std::mem::replace(&mut first, false);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some((args, used)) = command(&buf) {
                        buf.drain(..used);
                        if bad {
                            let _ = socket.write_all(garbage).await;
                            return;
                        }
                        let reply = if args[0].eq_ignore_ascii_case(b"MGET") {
                            let mut r = format!("*{}\r\n", args.len() - 1).into_bytes();
                            for _ in 1..args.len() {
                                r.extend_from_slice(b"$-1\r\n");
                            }
                            r
                        } else {
                            b"+OK\r\n".to_vec()
                        };
                        if socket.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_protocol_error_fails_the_batch_and_the_next_check_reconnects() {
    for garbage in [
        &b":1\r\n"[..],
        b"*2\r\n$-1\r\n",
        b"*1\r\n$999999\r\n",
        b"hello",
    ] {
        let port = misbehaving_server(garbage).await;
        let cfg = RedisConfig {
            urls: vec![format!("redis://127.0.0.1:{port}")],
            timeout: Duration::from_millis(500),
            ..RedisConfig::default()
        };
        let s = RedisStore::connect_lazy(cfg).unwrap();
        let first = s.check(&token(Some("j"), Some("f"), Some(1))).await;
        assert!(
            matches!(first, Err(StoreError::Unavailable(_) | StoreError::Timeout)),
            "{garbage:?}: {first:?}"
        );
        // The broken connection is gone; a new one answers.
        assert_eq!(
            s.check(&token(Some("j"), Some("f"), Some(1))).await,
            Ok(Verdict::Valid),
            "{garbage:?}"
        );
    }
}

#[tokio::test]
async fn a_restart_between_checks_costs_no_failed_check() {
    let mut server = RedisServer::start().await;
    let s = RedisStore::connect(config(vec![server.url()]))
        .await
        .unwrap();
    s.revoke_token("before", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("before"), None, None)).await,
        Ok(Verdict::TokenRevoked)
    );
    server.restart().await;
    // The old connection's end was seen while idle: the first check uses a new one (and the
    // restarted server, without persistence, no longer holds the revocation).
    assert_eq!(
        s.check(&token(Some("before"), None, None)).await,
        Ok(Verdict::Valid)
    );
}
