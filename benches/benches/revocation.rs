//! Cost of one revocation `check` (jti + family + subject, as on the request path): the
//! embedded `MemoryStore` against `RedisStore` (one `MGET` over loopback), one check at a
//! time and 64 checks in flight at once on a one-worker runtime (as the gateway runs with
//! `threads = 1`), where the store coalesces concurrent checks into one `MGET` per batch.
//!
//! Redis: `REDIS_URL` when set, otherwise a `redis-server` started here on an ephemeral
//! loopback port (no persistence, killed at the end).
//!
//! cargo bench -p tokengate-benches --bench revocation

use std::hint::black_box;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use filters::revocation::{
    MemoryStore, RedisConfig, RedisStore, RevocationQuery, RevocationStore, Verdict,
};
use tokio::runtime::Runtime;

const HOUR: Duration = Duration::from_secs(3600);
const ISS: &str = "https://idp.bench";

fn query<'a>(jti: &'a str) -> RevocationQuery<'a> {
    RevocationQuery {
        jti: Some(jti),
        family: Some("fam-0001"),
        issuer: ISS,
        subject: Some("user-0001"),
        iat: Some(1_700_000_000),
    }
}

/// A `redis-server` on an ephemeral loopback port, killed on drop.
struct LocalRedis {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl LocalRedis {
    fn start() -> LocalRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "tokengate-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed; install it or set REDIS_URL");
        LocalRedis {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects from within the runtime that will use the store, retrying until Redis answers.
async fn connect_here(url: &str) -> RedisStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cfg = RedisConfig {
            urls: vec![url.to_string()],
            timeout: Duration::from_secs(1),
            ..RedisConfig::default()
        };
        match RedisStore::connect(cfg).await {
            Ok(store) => return store,
            Err(e) if Instant::now() > deadline => panic!("redis at {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Times `iters` sequential checks inside one `block_on`, so the runtime entry is not measured.
fn time_checks(
    rt: &Runtime,
    store: &dyn RevocationStore,
    q: &RevocationQuery<'_>,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let _ = black_box(store.check(black_box(q)).await);
        }
        start.elapsed()
    })
}

/// Times `iters` checks made by `tasks` concurrent tasks on `rt`; the time per check is the
/// elapsed time divided by `iters` (throughput, not latency).
fn time_concurrent_checks(rt: &Runtime, store: &RedisStore, tasks: u64, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let n = iters / tasks + u64::from(t < iters % tasks);
            handles.push(tokio::spawn(async move {
                for i in 0..n {
                    let jti = format!("jti-{t}-{i}");
                    let _ = black_box(store.check(&query(&jti)).await);
                }
            }));
        }
        for h in handles {
            h.await.expect("check task");
        }
        start.elapsed()
    })
}

fn bench_revocation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let memory = MemoryStore::new(100_000);
    rt.block_on(async {
        for i in 0..10_000 {
            memory
                .revoke_token(&format!("revoked-{i}"), HOUR)
                .await
                .ok();
        }
    });
    let long_jti = "j".repeat(4096);
    let mut g = c.benchmark_group("revocation_check_memory");
    g.bench_function("valid", |b| {
        b.iter_custom(|n| time_checks(&rt, &memory, &query("jti-valid"), n))
    });
    g.bench_function("revoked", |b| {
        b.iter_custom(|n| time_checks(&rt, &memory, &query("revoked-42"), n))
    });
    g.bench_function("valid_4KiB_jti_hashed", |b| {
        b.iter_custom(|n| time_checks(&rt, &memory, &query(&long_jti), n))
    });
    g.finish();

    let local = match std::env::var("REDIS_URL") {
        Ok(_) => None,
        Err(_) => Some(LocalRedis::start()),
    };
    let url = std::env::var("REDIS_URL")
        .ok()
        .or_else(|| local.as_ref().map(|l| l.url.clone()))
        .expect("a Redis URL");
    // Made on the runtime that uses it, so its connection's driver runs there.
    let redis = rt.block_on(connect_here(&url));
    rt.block_on(async {
        redis
            .revoke_token("revoked-42", HOUR)
            .await
            .expect("revoke");
        assert_eq!(
            redis.check(&query("revoked-42")).await,
            Ok(Verdict::TokenRevoked)
        );
    });
    let mut g = c.benchmark_group("revocation_check_redis");
    g.bench_function("valid", |b| {
        b.iter_custom(|n| time_checks(&rt, &redis, &query("jti-valid"), n))
    });
    g.bench_function("revoked", |b| {
        b.iter_custom(|n| time_checks(&rt, &redis, &query("revoked-42"), n))
    });
    g.finish();

    // Concurrent checks, as under load: one worker thread, 64 tasks checking in a loop.
    let one_worker = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = one_worker.block_on(async { connect_here(&url).await });
    let mut g = c.benchmark_group("revocation_check_redis_concurrent");
    g.bench_function("64_in_flight_per_check", |b| {
        b.iter_custom(|n| time_concurrent_checks(&one_worker, &redis, 64, n))
    });
    g.finish();
    drop(local);
}

criterion_group!(benches, bench_revocation);
criterion_main!(benches);
