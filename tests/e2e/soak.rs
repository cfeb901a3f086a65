//! A bounded soak against the real binary: slow-loris clients and a flood of garbage tokens
//! while valid traffic is measured. Valid requests must keep succeeding, the gateway's
//! resident memory must stay under a bound, and garbage must not make it fetch keys.
//!
//! Loopback only; every loop is bounded in count and in time. `TOKENGATE_SOAK_SECS`
//! (default 8, at most 600) sets the duration; `benches/soak.sh` runs a longer one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use filters::Algorithm;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::keys::{b64, forge, fresh};
use crate::support::{claims, key, root_route, sign, with, Env};

/// Slow-loris connections held open at once.
const LORIS: usize = 200;

/// Most garbage requests sent (the time bound usually ends the flood first).
const GARBAGE_MAX: u64 = 200_000;

/// Most valid requests sent.
const VALID_MAX: u64 = 100_000;

/// Growth of the gateway's resident memory over the soak that fails the test.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

fn soak_duration() -> Duration {
    let secs = std::env::var("TOKENGATE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(8)
        .clamp(1, 600);
    Duration::from_secs(secs)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A cheap pseudo-random sequence (xorshift), so garbage differs request to request.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One garbage token: random bytes, a JWT shape with a random `kid`, or a real token with
/// a flipped signature, in turn.
fn garbage(noise: &mut Noise, real: &str, i: u64) -> String {
    match i % 3 {
        0 => {
            let len = 64 + (noise.next() % 512) as usize;
            b64(&noise.bytes(len))
        }
        1 => forge(
            &json!({"alg": "ES256", "kid": format!("kid-{}", noise.next())}),
            &claims(),
            &noise.bytes(64),
        ),
        _ => {
            let (input, _) = real.rsplit_once('.').expect("segments");
            format!("{input}.{}", b64(&noise.bytes(64)))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_garbage_flood_do_not_starve_valid_traffic_or_grow_memory() {
    let k = key(Algorithm::ES256);
    // Every valid request carries a new token: a small verified-token cache keeps its
    // (bounded, configured) growth out of what the RSS bound measures.
    let routes = format!("\n[cache]\nmax_tokens = 1000\n{}", root_route(""));
    let env = Env::start(&[k], "refetch_cooldown = \"1h\"", &routes).await;
    let pid = env.gw.pid();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // Warm up (connections, caches, allocator) before the baseline.
    let valid = sign(k, &claims());
    for _ in 0..50 {
        let r = client
            .get(env.gw.url("/warm"))
            .bearer_auth(&valid)
            .send()
            .await
            .expect("warm-up request");
        assert_eq!(r.status(), 200);
    }
    let baseline = rss_kib(pid);
    let jwks_before = env.jwks.requests();
    let duration = soak_duration();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + duration;

    // Slow loris: open connections that send one header byte every half second.
    let loris = {
        let (stop, addr) = (stop.clone(), env.gw.listen);
        tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..LORIS {
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    let _ = s
                        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        .await;
                    conns.push(s);
                }
            }
            let opened = conns.len();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut alive = Vec::with_capacity(conns.len());
                for mut s in conns {
                    if s.write_all(b"a").await.is_ok() {
                        alive.push(s);
                    }
                }
                conns = alive;
            }
            (opened, conns.len())
        })
    };

    // Garbage flood: two clients, as fast as the gateway answers.
    let garbage_sent = Arc::new(AtomicU64::new(0));
    let floods: Vec<_> = (0..2u64)
        .map(|seed| {
            let (stop, sent, client) = (stop.clone(), garbage_sent.clone(), client.clone());
            let url = env.gw.url("/flood");
            let real = sign(k, &claims());
            tokio::spawn(async move {
                let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let mut non_401 = 0u64;
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                    && sent.load(Ordering::Relaxed) < GARBAGE_MAX
                {
                    let i = sent.fetch_add(1, Ordering::Relaxed);
                    let t = garbage(&mut noise, &real, i);
                    match client.get(&url).bearer_auth(&t).send().await {
                        Ok(r) if r.status() == 401 || r.status() == 400 => {}
                        _ => non_401 += 1,
                    }
                }
                non_401
            })
        })
        .collect();

    // Valid traffic, measured; and the gateway's memory, sampled.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut peak = baseline;
    let mut sent = 0u64;
    let stranger = fresh(Algorithm::ES256, "k-es256");
    while Instant::now() < deadline && sent < VALID_MAX {
        let t = sign(k, &with(claims(), json!({"sub": format!("user-{sent}")})));
        let started = Instant::now();
        match client
            .get(env.gw.url("/valid"))
            .bearer_auth(&t)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => latencies.push(started.elapsed()),
            Ok(r) => failures.push(format!("status {}", r.status())),
            Err(e) => failures.push(e.to_string()),
        }
        sent += 1;
        if sent.is_multiple_of(20) {
            peak = peak.max(rss_kib(pid));
        }
        // A forged token of a known kid is refused all along (a control that the gateway
        // still validates rather than waving requests through).
        if sent.is_multiple_of(50) {
            let r = client
                .get(env.gw.url("/valid"))
                .bearer_auth(sign(&stranger, &claims()))
                .send()
                .await
                .expect("control request");
            assert_eq!(r.status(), 401);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut unexpected = 0;
    for f in floods {
        unexpected += f.await.expect("flood task");
    }
    let (opened, still_open) = loris.await.expect("loris task");
    peak = peak.max(rss_kib(pid));

    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let garbage_total = garbage_sent.load(Ordering::Relaxed);
    eprintln!(
        "soak {duration:?}: {} valid ok (p50 {:?}, p99 {:?}, max {:?}), {} failed; {garbage_total} garbage \
         ({unexpected} not 400/401); {opened} slow-loris connections, {still_open} still open; \
         RSS {baseline} KiB -> peak {peak} KiB",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().copied().unwrap_or_default(),
        failures.len(),
    );
    assert!(failures.is_empty(), "valid requests failed: {failures:?}");
    assert!(
        latencies.len() >= 50,
        "only {} valid requests",
        latencies.len()
    );
    assert!(p(0.99) < Duration::from_secs(1), "p99 {:?}", p(0.99));
    assert!(
        garbage_total >= 1000,
        "only {garbage_total} garbage requests"
    );
    assert_eq!(unexpected, 0, "garbage answered other than 400/401");
    assert_eq!(opened, LORIS, "could not open the slow-loris connections");
    assert!(
        peak <= baseline + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
    assert!(
        env.jwks.requests() <= jwks_before + 1,
        "garbage kids made the gateway fetch keys {} times",
        env.jwks.requests() - jwks_before
    );
    // Afterwards the gateway answers as before.
    let r = client
        .get(env.gw.url("/after"))
        .bearer_auth(sign(k, &claims()))
        .send()
        .await
        .expect("request after the soak");
    assert_eq!(r.status(), 200);
}
