//! Tests of [`RedisStore`] against real `redis-server` processes started here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use super::test_redis::{admin, RedisServer};
use super::*;

pub(super) const ISS: &str = "https://idp.example";
pub(super) const HOUR: Duration = Duration::from_secs(3600);

pub(super) fn config(urls: Vec<String>) -> RedisConfig {
    RedisConfig {
        urls,
        // Generous for functional tests on a loaded CI machine; the outage tests use a short one.
        timeout: Duration::from_secs(2),
        ..RedisConfig::default()
    }
}

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(config(vec![server.url()]))
        .await
        .expect("connect")
}

pub(super) fn token<'a>(
    jti: Option<&'a str>,
    family: Option<&'a str>,
    iat: Option<i64>,
) -> RevocationQuery<'a> {
    RevocationQuery {
        jti,
        family,
        issuer: ISS,
        subject: Some("alice"),
        iat,
    }
}

/// Polls `check` until it succeeds, within `limit`.
async fn wait_until_checks_succeed(s: &RedisStore, limit: Duration) -> Verdict {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(v) = s.check(&token(Some("probe"), None, Some(1))).await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "store did not recover within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn revoked_jti_is_refused() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_token("jti-1", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("jti-1"), None, Some(1))).await,
        Ok(Verdict::TokenRevoked)
    );
}

#[tokio::test]
async fn once_ids_are_accepted_once_across_connections() {
    let server = RedisServer::start().await;
    let a = store(&server).await;
    let b = store(&server).await;
    assert_eq!(a.use_once("proof-1", HOUR).await, Ok(true));
    assert_eq!(b.use_once("proof-1", HOUR).await, Ok(false));
    assert_eq!(a.use_once("proof-1", HOUR).await, Ok(false));
    let mut conn = admin(server.port).await;
    let ttl: i64 = conn.pttl("dpop_jti:proof-1").await.unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "ttl {ttl}");
}

#[tokio::test]
async fn unrevoked_token_passes() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_token("other", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("jti-1"), Some("fam-1"), Some(1))).await,
        Ok(Verdict::Valid)
    );
    assert!(s.ping().await.is_ok());
}

#[tokio::test]
async fn revoked_family_refuses_every_member() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_family("fam-1", HOUR).await.unwrap();
    for jti in ["a", "b", "c"] {
        assert_eq!(
            s.check(&token(Some(jti), Some("fam-1"), Some(1))).await,
            Ok(Verdict::FamilyRevoked)
        );
    }
    assert_eq!(
        s.check(&token(Some("a"), Some("fam-2"), Some(1))).await,
        Ok(Verdict::Valid)
    );
}

#[tokio::test]
async fn subject_revocation_refuses_older_iat_and_accepts_newer() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_subject(ISS, "alice", 1_700_000_000, HOUR)
        .await
        .unwrap();
    assert_eq!(
        s.check(&token(None, None, Some(1_699_999_999))).await,
        Ok(Verdict::SubjectRevoked)
    );
    assert_eq!(
        s.check(&token(None, None, Some(1_700_000_000))).await,
        Ok(Verdict::Valid)
    );
    assert_eq!(
        s.check(&token(None, None, Some(1_700_000_001))).await,
        Ok(Verdict::Valid)
    );
    // Same subject at another issuer is not affected.
    let mut other = token(None, None, Some(1));
    other.issuer = "https://other.example";
    assert_eq!(s.check(&other).await, Ok(Verdict::Valid));
    // The value is the decimal timestamp, readable by other tools.
    let mut conn = admin(server.port).await;
    let raw: String = conn
        .get(KeyScheme::default().subject_key(ISS, "alice"))
        .await
        .unwrap();
    assert_eq!(raw, "1700000000");
}

#[tokio::test]
async fn token_without_iat_is_refused_when_subject_key_exists() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    assert_eq!(s.check(&token(None, None, None)).await, Ok(Verdict::Valid));
    s.revoke_subject(ISS, "alice", 1, HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(None, None, None)).await,
        Ok(Verdict::SubjectRevoked)
    );
}

#[tokio::test]
async fn the_most_specific_revocation_is_reported() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_subject(ISS, "alice", 10, HOUR).await.unwrap();
    s.revoke_family("fam", HOUR).await.unwrap();
    s.revoke_token("jti", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("jti"), Some("fam"), Some(1))).await,
        Ok(Verdict::TokenRevoked)
    );
    assert_eq!(
        s.check(&token(Some("x"), Some("fam"), Some(1))).await,
        Ok(Verdict::FamilyRevoked)
    );
}

#[tokio::test]
async fn key_written_by_an_issuer_with_set_is_seen() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let mut conn = admin(server.port).await;
    // As an issuer does on logout: SET revoked:<jti> <anything> EX <remaining lifetime>.
    let _: () = redis::cmd("SET")
        .arg("revoked:issuer-jti-42")
        .arg("1")
        .arg("EX")
        .arg(600)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = conn.set("revoked:issuer-jti-43", "").await.unwrap();
    let _: () = conn.set("family:issuer-fam", "whatever").await.unwrap();
    let _: () = conn
        .set(format!("revoked_before:{ISS}:alice"), "1700000000.25")
        .await
        .unwrap();
    assert_eq!(
        s.check(&token(Some("issuer-jti-42"), None, None)).await,
        Ok(Verdict::TokenRevoked)
    );
    assert_eq!(
        s.check(&token(Some("issuer-jti-43"), None, None)).await,
        Ok(Verdict::TokenRevoked)
    );
    assert_eq!(
        s.check(&token(Some("x"), Some("issuer-fam"), None)).await,
        Ok(Verdict::FamilyRevoked)
    );
    // A fractional timestamp rounds up: iat 1700000000 is before 1700000000.25.
    assert_eq!(
        s.check(&token(Some("x"), None, Some(1_700_000_000))).await,
        Ok(Verdict::SubjectRevoked)
    );
    assert_eq!(
        s.check(&token(Some("x"), None, Some(1_700_000_001))).await,
        Ok(Verdict::Valid)
    );
}

#[tokio::test]
async fn unreadable_subject_timestamp_fails_closed() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let mut conn = admin(server.port).await;
    let _: () = conn
        .set(format!("revoked_before:{ISS}:alice"), "yesterday")
        .await
        .unwrap();
    assert_eq!(
        s.check(&token(None, None, Some(i64::MAX))).await,
        Ok(Verdict::SubjectRevoked)
    );
}

#[tokio::test]
async fn entries_have_ttls() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let keys = KeyScheme::default();
    s.revoke_token("t", Duration::from_secs(300)).await.unwrap();
    s.revoke_family("f", Duration::from_secs(600))
        .await
        .unwrap();
    s.revoke_subject(ISS, "alice", 5, Duration::from_secs(900))
        .await
        .unwrap();
    // Below the minimum: clamped to 1 s, never "no TTL".
    s.revoke_token("tiny", Duration::ZERO).await.unwrap();
    let mut conn = admin(server.port).await;
    for (key, max_ms) in [
        (keys.token_key("t"), 300_000),
        (keys.family_key("f"), 600_000),
        (keys.subject_key(ISS, "alice"), 900_000),
        (keys.token_key("tiny"), 1_000),
    ] {
        let pttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(
            pttl > 0 && pttl <= max_ms,
            "{key}: PTTL {pttl} not in (0, {max_ms}]"
        );
    }
    let ttl: i64 = conn.ttl(keys.family_key("f")).await.unwrap();
    assert!(ttl > 590, "family TTL {ttl}");
    assert_eq!(
        s.revoke_token("t", MAX_TTL + Duration::from_secs(1)).await,
        Err(StoreError::InvalidTtl)
    );
}

#[tokio::test]
async fn revocations_only_tighten() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let keys = KeyScheme::default();
    let mut conn = admin(server.port).await;
    s.revoke_token("t", HOUR).await.unwrap();
    s.revoke_token("t", Duration::from_secs(5)).await.unwrap();
    let ttl: i64 = conn.ttl(keys.token_key("t")).await.unwrap();
    assert!(ttl > 3500, "a shorter TTL shortened the entry: {ttl}");

    s.revoke_subject(ISS, "alice", 2_000, HOUR).await.unwrap();
    s.revoke_subject(ISS, "alice", 1_000, HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(None, None, Some(1_500))).await,
        Ok(Verdict::SubjectRevoked)
    );
    s.revoke_subject(ISS, "alice", 3_000, HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(None, None, Some(2_500))).await,
        Ok(Verdict::SubjectRevoked)
    );

    // A key an issuer wrote without a TTL gets one when tokengate revokes it again.
    let _: () = conn.set(keys.token_key("forever"), "1").await.unwrap();
    s.revoke_token("forever", HOUR).await.unwrap();
    let ttl: i64 = conn.ttl(keys.token_key("forever")).await.unwrap();
    assert!(ttl > 0 && ttl <= 3600, "TTL {ttl}");
}

#[tokio::test]
async fn hostile_ids_are_hashed_and_bounded() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let hostile = [
        "j".repeat(4096),
        "a\r\nFLUSHALL\r\n".to_string(),
        "*".to_string(),
        "with spaces".to_string(),
        "{hash-tag}".to_string(),
        "\u{0}\u{7f}\u{fffd}caf\u{e9}".to_string(),
    ];
    for id in &hostile {
        s.revoke_token(id, HOUR).await.unwrap();
        s.revoke_family(id, HOUR).await.unwrap();
        s.revoke_subject(id, id, 10, HOUR).await.unwrap();
    }
    for id in &hostile {
        assert_eq!(
            s.check(&token(Some(id), None, None)).await,
            Ok(Verdict::TokenRevoked)
        );
        assert_eq!(
            s.check(&token(None, Some(id), None)).await,
            Ok(Verdict::FamilyRevoked)
        );
        let q = RevocationQuery {
            jti: None,
            family: None,
            issuer: id,
            subject: Some(id),
            iat: Some(1),
        };
        assert_eq!(s.check(&q).await, Ok(Verdict::SubjectRevoked));
    }
    // "*" matched no other key, and nothing was flushed: one key per id and kind.
    let mut conn = admin(server.port).await;
    let all: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(all.len(), hostile.len() * 3);
    for key in &all {
        assert!(
            key.len() <= "revoked_before:".len() + 2 * 71 + 1,
            "key of {} bytes",
            key.len()
        );
        assert!(
            key.iter().all(u8::is_ascii_graphic),
            "{:?}",
            String::from_utf8_lossy(key)
        );
        assert!(!key.contains(&b'{') && !key.contains(&b'*'));
    }
    assert_eq!(
        s.check(&token(Some("j"), None, None)).await,
        Ok(Verdict::Valid)
    );
}

/// Reads `cmdstat_<name>:calls=N` from `INFO commandstats`.
pub(super) fn calls(stats: &str, name: &str) -> u64 {
    let prefix = format!("cmdstat_{name}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn reset_stats(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(conn)
        .await
        .unwrap();
}

/// The `MGET`s recorded in the slow log (every command is logged: threshold 0).
async fn logged_mgets(conn: &mut redis::aio::MultiplexedConnection) -> Vec<Vec<String>> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query_async(conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .filter_map(|e| {
            let redis::Value::Array(fields) = e else {
                return None;
            };
            let args: Vec<String> = redis::from_redis_value(fields.get(3)?.clone()).ok()?;
            (args.first()?.eq_ignore_ascii_case("mget")).then_some(args)
        })
        .collect()
}

#[tokio::test]
async fn check_is_one_round_trip_for_present_fields_only() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    let mut conn = admin(server.port).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys = KeyScheme::default();

    reset_stats(&mut conn).await;
    assert_eq!(
        s.check(&token(Some("j"), Some("f"), Some(1))).await,
        Ok(Verdict::Valid)
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(calls(&stats, "mget"), 1, "{stats}");
    for other in ["get", "exists", "eval", "ttl", "pttl"] {
        assert_eq!(calls(&stats, other), 0, "unexpected {other}: {stats}");
    }
    assert_eq!(
        logged_mgets(&mut conn).await,
        vec![vec![
            "MGET".to_string(),
            keys.token_key("j"),
            keys.family_key("f"),
            keys.subject_key(ISS, "alice"),
        ]]
    );

    // No jti, no family: only the subject key is asked for.
    reset_stats(&mut conn).await;
    s.check(&token(None, None, Some(1))).await.unwrap();
    assert_eq!(
        logged_mgets(&mut conn).await,
        vec![vec!["MGET".to_string(), keys.subject_key(ISS, "alice")]]
    );

    // Nothing to look up: no command at all.
    reset_stats(&mut conn).await;
    let nothing = RevocationQuery {
        jti: None,
        family: None,
        issuer: ISS,
        subject: None,
        iat: None,
    };
    assert_eq!(s.check(&nothing).await, Ok(Verdict::Valid));
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(calls(&stats, "mget"), 0, "{stats}");
}

fn outage_config(server: &RedisServer) -> RedisConfig {
    RedisConfig {
        urls: vec![server.url()],
        timeout: Duration::from_millis(100),
        ..RedisConfig::default()
    }
}

/// Generous slack over the timeout for a loaded machine; a hang would exceed it by far.
pub(super) const SLACK: Duration = Duration::from_millis(400);

#[tokio::test]
async fn killed_redis_fails_check_within_the_timeout() {
    let mut server = RedisServer::start().await;
    let cfg = outage_config(&server);
    let timeout = cfg.timeout;
    let s = RedisStore::connect(cfg).await.unwrap();
    s.check(&token(Some("j"), None, None)).await.unwrap();
    server.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let result = s.check(&token(Some("j"), None, None)).await;
        let took = started.elapsed();
        assert!(
            matches!(
                result,
                Err(StoreError::Timeout | StoreError::Unavailable(_))
            ),
            "{result:?}"
        );
        assert!(took < timeout + SLACK, "check took {took:?}");
    }
    assert!(s.ping().await.is_err());
}

#[tokio::test]
async fn hung_redis_times_out_instead_of_hanging() {
    let server = RedisServer::start().await;
    let cfg = outage_config(&server);
    let timeout = cfg.timeout;
    let s = RedisStore::connect(cfg).await.unwrap();
    s.check(&token(Some("j"), None, None)).await.unwrap();
    server.signal("STOP");
    let started = Instant::now();
    let result = s.check(&token(Some("j"), None, None)).await;
    let took = started.elapsed();
    server.signal("CONT");
    assert_eq!(result, Err(StoreError::Timeout));
    assert!(
        took >= timeout && took < timeout + SLACK,
        "check took {took:?}"
    );
    // Once Redis answers again, so does the store.
    wait_until_checks_succeed(&s, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn store_recovers_when_redis_restarts_on_the_same_port() {
    let mut server = RedisServer::start().await;
    let s = RedisStore::connect(outage_config(&server)).await.unwrap();
    s.revoke_token("before-crash", HOUR).await.unwrap();
    server.kill();
    assert!(s.check(&token(Some("j"), None, None)).await.is_err());
    server.restart().await;
    // No persistence: the restarted Redis is empty, and the same store uses it.
    assert_eq!(
        wait_until_checks_succeed(&s, Duration::from_secs(15)).await,
        Verdict::Valid
    );
    s.revoke_token("after-restart", HOUR).await.unwrap();
    assert_eq!(
        s.check(&token(Some("after-restart"), None, None)).await,
        Ok(Verdict::TokenRevoked)
    );
    assert!(s.ping().await.is_ok());
}

#[tokio::test]
async fn connect_to_absent_redis_fails_without_leaking_the_password() {
    let port = super::test_redis::free_port();
    let cfg = RedisConfig {
        urls: vec![format!("redis://user:hunter2@127.0.0.1:{port}/0")],
        connect_timeout: Duration::from_millis(200),
        ..RedisConfig::default()
    };
    let started = Instant::now();
    let err = RedisStore::connect(cfg).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("user:***@127.0.0.1"), "{text}");
}

#[tokio::test]
async fn lazy_store_starts_without_redis_and_works_once_it_is_up() {
    let port = super::test_redis::free_port();
    let s = RedisStore::connect_lazy(RedisConfig {
        urls: vec![format!("redis://127.0.0.1:{port}")],
        timeout: Duration::from_millis(100),
        ..RedisConfig::default()
    })
    .unwrap();
    assert!(s.ping().await.is_err());
    // Take the port just chosen (a conflict fails the start, reported by the helper).
    let server = RedisServer::start_on(port).await;
    assert_eq!(
        wait_until_checks_succeed(&s, Duration::from_secs(15)).await,
        Verdict::Valid
    );
    drop(server);
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let bad = [
        RedisConfig::default(),
        RedisConfig {
            urls: vec!["not a url".into()],
            ..RedisConfig::default()
        },
        RedisConfig {
            urls: vec!["redis://a:1".into(), "redis://b:1".into()],
            ..RedisConfig::default()
        },
        RedisConfig {
            urls: vec!["redis://127.0.0.1:1".into()],
            keys: KeyScheme {
                token_prefix: "x".into(),
                family_prefix: "xy".into(),
                ..KeyScheme::default()
            },
            ..RedisConfig::default()
        },
    ];
    for cfg in bad {
        let shown = format!("{cfg:?}");
        assert!(
            matches!(
                RedisStore::connect_lazy(cfg),
                Err(StoreError::InvalidConfig(_))
            ),
            "{shown}"
        );
    }
}

/// Runs `n` checks at once from `n` tasks released together, on a one-worker multi-thread
/// runtime (as the gateway runs with `threads = 1`); returns the verdicts in task order.
async fn concurrent_checks(
    s: &RedisStore,
    queries: Vec<(String, Option<String>, i64)>,
) -> Vec<Result<Verdict, StoreError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(queries.len()));
    let mut tasks = Vec::new();
    for (jti, family, iat) in queries {
        let s = s.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.check(&token(Some(&jti), family.as_deref(), Some(iat)))
                .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("check task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn concurrent_checks_are_coalesced_and_each_gets_its_own_verdict() {
    let server = RedisServer::start().await;
    let s = store(&server).await;
    s.revoke_token("jti-revoked", HOUR).await.unwrap();
    s.revoke_family("fam-revoked", HOUR).await.unwrap();
    s.revoke_subject(ISS, "alice", 1_000, HOUR).await.unwrap();
    let mut conn = admin(server.port).await;
    // 4 kinds of answers, interleaved, 12 of each.
    let mut queries = Vec::new();
    let mut expected = Vec::new();
    for i in 0..12 {
        queries.push((format!("jti-{i}"), None, 2_000));
        expected.push(Ok(Verdict::Valid));
        queries.push(("jti-revoked".to_string(), Some(format!("fam-{i}")), 2_000));
        expected.push(Ok(Verdict::TokenRevoked));
        queries.push((format!("jti-f{i}"), Some("fam-revoked".to_string()), 2_000));
        expected.push(Ok(Verdict::FamilyRevoked));
        queries.push((format!("jti-s{i}"), Some(format!("fam-s{i}")), 999));
        expected.push(Ok(Verdict::SubjectRevoked));
    }
    let checks = queries.len() as u64;
    reset_stats(&mut conn).await;
    assert_eq!(concurrent_checks(&s, queries).await, expected);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mgets = calls(&stats, "mget");
    eprintln!("{checks} checks in {mgets} MGETs");
    assert!(
        mgets >= 1 && mgets * 4 <= checks,
        "{checks} checks took {mgets} MGETs"
    );
}
