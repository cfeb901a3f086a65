//! Operating a running gateway under traffic: configuration reloads (`SIGHUP`), the
//! zero-downtime hand-over of the listeners to a new process (`SIGQUIT` + `--upgrade`), the
//! drain on `SIGTERM`, and trace context reaching the upstream untouched.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use filters::Algorithm;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::support::gateway::{sample, Options};
use crate::support::http::{client, get, get_bearer};
use crate::support::keys::fresh;
use crate::support::{
    claims, issuer_toml, root_route, route_toml, sign, token, wait_until, with, Env, Gateway,
    JwksServer, Upstream, AUD, DEADLINE,
};

/// Longest a background load runs.
const LOAD_TIME: Duration = Duration::from_secs(20);

/// Most requests a background load sends, all workers together.
const LOAD_REQUESTS: usize = 2000;

/// Pause between two requests of one worker under reloads: four workers send at most ~400
/// requests a second, so the cap lasts about 5 s — longer than the reload steps.
const RELOAD_PACE: Duration = Duration::from_millis(10);

/// Pause between two requests of one worker during a hand-over, which takes about 7 s
/// (Pingora's fixed waits): at most ~160 requests a second, so the cap lasts about 12 s.
const UPGRADE_PACE: Duration = Duration::from_millis(25);

/// Concurrent workers of a background load.
const LOAD_WORKERS: usize = 4;

/// Successful load requests required after each step before the next one starts.
const PER_STEP: usize = 20;

/// `tokengate_config_reloads_total` and its `result` label.
const RELOADS: &str = "tokengate_config_reloads_total";

/// `tokengate_config_last_reload_success_timestamp_seconds`.
const LAST_RELOAD: &str = "tokengate_config_last_reload_success_timestamp_seconds";

/// A second issuer, for the reload that adds one.
const ISS2: &str = "https://idp2.tokengate.test";

/// The error and its sources, one line (reqwest hides the cause in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// A bounded background load: `GET url` with a bearer token from several tasks until
/// stopped, [`LOAD_TIME`] or [`LOAD_REQUESTS`]. Anything but `200 upstream ok` is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts [`LOAD_WORKERS`] workers. Even ones open a new connection per request, odd
    /// ones keep theirs alive, so requests both arrive on new connections and ride
    /// connections opened before a change. Each worker sends at most one request per `pace`.
    fn start(url: String, token: String, pace: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..LOAD_WORKERS)
            .map(|i| {
                let client = if i % 2 == 0 {
                    client().clone()
                } else {
                    reqwest::Client::builder()
                        .no_proxy()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("build a keep-alive client")
                };
                let (url, token) = (url.clone(), token.clone());
                let (stop, sent, ok, failures) =
                    (stop.clone(), sent.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let mut pace = tokio::time::interval(pace);
                    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    while !stop.load(Ordering::SeqCst)
                        && start.elapsed() < LOAD_TIME
                        && sent.fetch_add(1, Ordering::SeqCst) < LOAD_REQUESTS
                    {
                        pace.tick().await;
                        let mut sent = client.get(&url).bearer_auth(&token).send().await;
                        // A keep-alive connection the old process closes as this request goes
                        // out is reset before any byte of an answer: like any HTTP client
                        // (RFC 9110 §9.2.2), retry that idempotent GET once, on a new
                        // connection. Everything else, and a second failure, counts.
                        if let Err(e) = &sent {
                            let text = chain(e);
                            if text.contains("Connection reset by peer")
                                || text.contains("connection closed before message completed")
                            {
                                sent = client.get(&url).bearer_auth(&token).send().await;
                            }
                        }
                        let outcome = match sent {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                match r.text().await {
                                    Ok(body) if status == 200 && body == "upstream ok" => Ok(()),
                                    Ok(body) => Err(format!("{status}: {body}")),
                                    Err(e) => Err(format!("{status}, body: {}", chain(&e))),
                                }
                            }
                            Err(e) => Err(chain(&e)),
                        };
                        match outcome {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                if let Ok(mut f) = failures.lock() {
                                    f.push(format!("after {:?}: {e}", start.elapsed()));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            workers,
        }
    }

    /// Successful requests so far.
    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until [`PER_STEP`] more requests than `mark` have succeeded: the load really
    /// runs across `what`. Returns the new count.
    async fn progress(&self, mark: usize, what: &str) -> usize {
        let ok = self.ok.clone();
        let failures = self.failures.clone();
        let done = self.workers.iter().all(JoinHandle::is_finished);
        assert!(
            !done,
            "the load stopped before {what} (cap of {LOAD_REQUESTS} requests or {LOAD_TIME:?} reached); failures: {:?}",
            failures.lock().map(|f| f.clone()).unwrap_or_default()
        );
        wait_until(&format!("{PER_STEP} load requests after {what}"), || {
            let n = ok.load(Ordering::SeqCst);
            async move { (n >= mark + PER_STEP).then_some(n) }
        })
        .await
    }

    /// Stops the workers; returns the successes and the failures.
    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            w.await.expect("a load worker panicked");
        }
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

/// Value of the reload counter for `result` in `metrics` (no sample: 0).
fn reloads(metrics: &str, result: &str) -> f64 {
    sample(metrics, RELOADS, &[("result", result)]).unwrap_or(0.0)
}

/// Value of the last-successful-load timestamp in `metrics`.
fn last_reload(metrics: &str) -> f64 {
    sample(metrics, LAST_RELOAD, &[]).unwrap_or_else(|| panic!("no {LAST_RELOAD}:\n{metrics}"))
}

/// Waits until the `result` reload counter reaches `n`; asserts it is exactly `n` and
/// returns the metrics text.
async fn wait_reloads(gw: &Gateway, result: &str, n: f64) -> String {
    let text = gw.metrics_when(|t| reloads(t, result) >= n).await;
    assert_eq!(
        reloads(&text, result),
        n,
        "{RELOADS}{{result=\"{result}\"}}; stderr:\n{}",
        gw.logs()
    );
    text
}

/// Waits until the gateway has finished starting its supervisor (it sets the load
/// timestamp at the end of its start, then installs its `SIGHUP` handler), so that a
/// `SIGHUP` is a reload, not the default action that ends the process.
async fn wait_reloadable(gw: &Gateway) -> f64 {
    wait_until("the start-up load timestamp", || async {
        let t = gw.metric(LAST_RELOAD, &[]).await?;
        (t > 0.0).then_some(t)
    })
    .await
}

/// Replaces the configuration body and sends `SIGHUP`.
fn reload(gw: &Gateway, body: &str) {
    gw.write_config(body);
    gw.signal(Signal::SIGHUP);
}

/// `[[route]]` `a`: `/a` to the fixture's upstream (`{up}`, see [`Env`]).
const ROUTE_A_TEMPLATE: &str =
    "\n[[route]]\nid = \"a\"\npath_prefix = \"/a\"\nupstream = [\"{up}\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_traffic_loses_no_request_on_unchanged_routes() {
    let k = fresh(Algorithm::ES256, "reload-traffic");
    let env = Env::start(&[&k], "", ROUTE_A_TEMPLATE).await;
    let (u2, u3) = (Upstream::start().await, Upstream::start().await);
    let issuer = issuer_toml("main", &env.jwks.uri(), "");
    let route_a = route_toml("a", "/a", &env.upstream, "");
    let bearer = token(&k);
    let gw = &env.gw;
    let t0 = wait_reloadable(gw).await;
    assert_eq!(get_bearer(&gw.url("/a"), &bearer).await.status, 200);
    assert_eq!(get_bearer(&gw.url("/b"), &bearer).await.status, 404);

    let load = Load::start(gw.url("/a"), bearer.clone(), RELOAD_PACE);
    let mut mark = load.progress(0, "the start of the load").await;
    // Successful load requests counted when each SIGHUP is sent.
    let mut at_signal = Vec::new();

    // 1. Add route b → U2.
    at_signal.push(load.ok());
    reload(
        gw,
        &format!("{issuer}{route_a}{}", route_toml("b", "/b", &u2, "")),
    );
    wait_until("/b to answer 200 once added", || async {
        (get_bearer(&gw.url("/b"), &bearer).await.status == 200).then_some(())
    })
    .await;
    assert!(u2.count() >= 1, "U2 got nothing for /b");
    let t1 = last_reload(&wait_reloads(gw, "success", 1.0).await);
    assert!(t1 > t0, "{LAST_RELOAD} did not move: {t0} then {t1}");
    mark = load.progress(mark, "step 1 (add route b)").await;

    // 2. Move route b to U3.
    at_signal.push(load.ok());
    reload(
        gw,
        &format!("{issuer}{route_a}{}", route_toml("b", "/b", &u3, "")),
    );
    wait_until("U3 to receive /b", || async {
        let r = get_bearer(&gw.url("/b"), &bearer).await;
        assert_eq!(r.status, 200, "/b while moving it: {}", r.body);
        (u3.count() > 0).then_some(())
    })
    .await;
    let t2 = last_reload(&wait_reloads(gw, "success", 2.0).await);
    assert!(t2 > t1, "{LAST_RELOAD} did not move: {t1} then {t2}");
    mark = load.progress(mark, "step 2 (route b to U3)").await;

    // 3. A file that does not check: refused, the running configuration stays.
    at_signal.push(load.ok());
    reload(
        gw,
        &format!(
            "{issuer}{route_a}{}",
            route_toml("b", "/b", &u3, "bogus_key = true")
        ),
    );
    let text = wait_reloads(gw, "failure", 1.0).await;
    assert_eq!(
        reloads(&text, "success"),
        2.0,
        "a refused file counted as success"
    );
    assert_eq!(
        last_reload(&text),
        t2,
        "{LAST_RELOAD} moved on a refused file"
    );
    let (seen2, seen3) = (u2.count(), u3.count());
    let r = get_bearer(&gw.url("/b"), &bearer).await;
    assert_eq!(r.status, 200, "/b after a refused reload: {}", r.body);
    assert_eq!(u3.count(), seen3 + 1, "/b no longer goes to U3");
    assert_eq!(u2.count(), seen2, "/b went back to U2");
    let config = gw.config_text();
    let line = config
        .lines()
        .position(|l| l.starts_with("bogus_key"))
        .map(|i| i + 1)
        .expect("the bogus key is in the file");
    let location = format!("{}:{line}:", gw.config_path().display());
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains(&location) && l.contains("bogus_key")),
        "no log line names {location} and bogus_key:\n{logs}"
    );
    mark = load.progress(mark, "step 3 (refused file)").await;

    // 4. Fix the file by removing route b.
    at_signal.push(load.ok());
    reload(gw, &format!("{issuer}{route_a}"));
    wait_until("/b to answer 404 once removed", || async {
        (get_bearer(&gw.url("/b"), &bearer).await.status == 404).then_some(())
    })
    .await;
    let text = wait_reloads(gw, "success", 3.0).await;
    assert_eq!(reloads(&text, "failure"), 1.0);
    let t4 = last_reload(&text);
    assert!(t4 > t2, "{LAST_RELOAD} did not move: {t2} then {t4}");
    load.progress(mark, "step 4 (route b removed)").await;

    let (ok, failures) = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} requests on /a failed across the reloads: {failures:#?}\nstderr:\n{}",
        failures.len(),
        ok + failures.len(),
        gw.logs()
    );
    assert!(ok > LOAD_WORKERS * PER_STEP, "only {ok} load requests ran");
    // Requests completed between every two signals (and after the last one).
    at_signal.push(ok);
    assert!(
        at_signal.windows(2).all(|w| w[0] < w[1]),
        "no load between some reloads: successes at each SIGHUP {at_signal:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_issuers_keys_without_refetching() {
    let k = fresh(Algorithm::ES256, "reload-keeps-keys");
    let env = Env::start(&[&k], "", &root_route("")).await;
    wait_reloadable(&env.gw).await;
    let fetched = env.jwks.requests();
    assert!(fetched >= 1, "the keys were never fetched");

    let routes = format!(
        "{}{}",
        root_route("").replace("{up}", &env.upstream.addr().to_string()),
        route_toml(
            "orders",
            "/orders",
            &env.upstream,
            "require_scopes = [\"orders:read\"]"
        )
    );
    reload(
        &env.gw,
        &format!("{}{routes}", issuer_toml("main", &env.jwks.uri(), "")),
    );
    wait_reloads(&env.gw, "success", 1.0).await;
    assert_eq!(
        env.jwks.requests(),
        fetched,
        "the reload fetched the unchanged issuer's keys again"
    );
    // A token never seen (new jti: no verified-token cache entry) needs the keys now.
    let r = get_bearer(&env.gw.url("/orders/1"), &token(&k)).await;
    assert_eq!(
        r.status, 200,
        "new route right after the reload: {}",
        r.body
    );
    assert_eq!(env.upstream.last().path, "/orders/1");
    let r = get_bearer(&env.gw.url("/other"), &token(&k)).await;
    assert_eq!(
        r.status, 200,
        "unchanged route after the reload: {}",
        r.body
    );
    assert_eq!(
        env.jwks.requests(),
        fetched,
        "serving after the reload fetched the keys again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_new_issuer_fetches_its_keys_before_serving_it() {
    let k1 = fresh(Algorithm::ES256, "first-issuer");
    let k2 = fresh(Algorithm::ES256, "second-issuer");
    let env = Env::start(
        &[&k1],
        "",
        "\n[[route]]\nid = \"one\"\npath_prefix = \"/one\"\nupstream = [\"{up}\"]\n",
    )
    .await;
    wait_reloadable(&env.gw).await;
    // A slow key server makes a swap-before-fetch visible: /two would answer 503 for
    // half a second.
    let jwks2 = JwksServer::start(&[&k2]).await;
    jwks2.set_delay(Duration::from_millis(500));
    let second = format!(
        "\n[[issuer]]\nid = \"second\"\nissuer = \"{ISS2}\"\njwks_uri = \"{}\"\naudiences = [\"{AUD}\"]\n",
        jwks2.uri()
    );
    let body = format!(
        "{}{second}{}{}",
        issuer_toml("main", &env.jwks.uri(), ""),
        route_toml("one", "/one", &env.upstream, ""),
        route_toml("two", "/two", &env.upstream, "issuers = [\"second\"]"),
    );
    let token2 = || sign(&k2, &with(claims(), json!({ "iss": ISS2 })));
    assert_eq!(get_bearer(&env.gw.url("/two"), &token2()).await.status, 404);

    reload(&env.gw, &body);
    // Until the swap the old table answers 404; after it, the keys must be there.
    wait_until("/two to answer 200", || async {
        let r = get_bearer(&env.gw.url("/two"), &token2()).await;
        match r.status {
            404 => None,
            200 => Some(()),
            s => panic!("/two during the reload adding its issuer: {s} {}", r.body),
        }
    })
    .await;
    assert!(
        jwks2.requests() >= 1,
        "the new issuer's keys were not fetched"
    );
    wait_reloads(&env.gw, "success", 1.0).await;
    let r = get_bearer(&env.gw.url("/two"), &token2()).await;
    assert_eq!(r.status, 200, "new issuer after the reload: {}", r.body);
    assert_eq!(
        env.upstream.last().header("x-auth-issuer"),
        Some(ISS2),
        "the upstream did not see the new issuer's identity"
    );
    let r = get_bearer(&env.gw.url("/one"), &token(&k1)).await;
    assert_eq!(r.status, 200, "first issuer after the reload: {}", r.body);
    // The route stays bound to its issuer.
    let r = get_bearer(&env.gw.url("/two"), &token(&k1)).await;
    assert_eq!(r.status, 401, "first issuer's token on /two: {}", r.body);
}

/// Pingora's old process waits 5 s (`CLOSE_TIMEOUT`) after sending its sockets, then the
/// grace period (1 s here) and the shutdown timeout (1 s); plus the retries of the socket
/// transfer (1 s each) and slack for a loaded machine.
const UPGRADE_LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_upgrade_hands_the_listener_to_a_new_process() {
    hand_over_under_load("upgrade", Duration::ZERO).await;
}

/// The new process starts accepting on the inherited listener as soon as it runs; with an
/// identity provider that takes a moment to answer (300 ms here, a remote IdP), every
/// request it accepts before its keys arrive would be refused 503 — downtime the old
/// process, which has the keys, would not have caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_upgrade_serves_no_503_while_the_new_process_fetches_its_keys() {
    hand_over_under_load("upgrade-slow-idp", Duration::from_millis(300)).await;
}

/// Hands the listeners of a gateway under load to a `--upgrade` process (whose key fetch
/// takes `idp_delay`) and asserts that no request fails and the new process serves.
async fn hand_over_under_load(kid: &str, idp_delay: Duration) {
    let k = fresh(Algorithm::ES256, kid);
    // A grace period lets the old process finish what it accepted before its last moment.
    let options = Options {
        grace_period: "1s".into(),
        ..Options::default()
    };
    let mut env = Env::start_with(&[&k], "", &root_route(""), options).await;
    let bearer = token(&k);
    assert_eq!(get_bearer(&env.gw.url("/"), &bearer).await.status, 200);
    // Only the new process fetches from now on (the old one refreshes every 5 min).
    env.jwks.set_delay(idp_delay);
    let load = Load::start(env.gw.url("/up"), bearer.clone(), UPGRADE_PACE);
    load.progress(0, "the start of the load").await;

    // The new process, same file: it binds the upgrade socket and waits for the sockets.
    let mut new = env.gw.spawn_upgrade();
    assert_ne!(new.pid(), env.gw.pid());
    let sock = env.gw.upgrade_sock();
    wait_until("the new process to wait on the upgrade socket", || {
        let running = new.running();
        let bound = sock.exists();
        async move {
            assert!(running, "the --upgrade process exited");
            bound.then_some(())
        }
    })
    .await;

    let before = load.ok();
    env.gw.signal(Signal::SIGQUIT);
    let status = env.gw.wait_exit(UPGRADE_LIMIT).await.unwrap_or_else(|| {
        panic!(
            "the old process still runs {UPGRADE_LIMIT:?} after SIGQUIT; stderr:\n{}",
            env.gw.logs()
        )
    });
    assert!(
        status.success(),
        "old process after SIGQUIT: {status}; stderr:\n{}",
        env.gw.logs()
    );
    assert!(
        new.running(),
        "the new process exited; stderr:\n{}",
        new.logs()
    );
    let during = load.ok() - before;
    // Only the new process can answer now, on the same ports.
    let after = load.progress(load.ok(), "the old process exited").await;
    let (ok, failures) = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the hand-over ({before} before SIGQUIT, {during} until the old process exited, {} after): {failures:#?}\nold stderr:\n{}\nnew stderr:\n{}",
        failures.len(),
        ok + failures.len(),
        ok - before - during,
        env.gw.logs(),
        new.logs()
    );
    assert!(during > 0, "no request completed during the hand-over");
    assert!(after > before + during, "no request after the hand-over");
    // The sockets were handed over, not bound anew once the old process had gone.
    assert!(
        env.gw.logs().contains("listener sockets sent"),
        "the old process did not send its sockets:\n{}",
        env.gw.logs()
    );
    assert!(
        !new.logs().contains("is in use"),
        "the new process bound the ports itself instead of receiving them:\n{}",
        new.logs()
    );
    let health = get(&env.gw.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, 200, "admin listener after the hand-over");
    let served = new
        .metric(
            "tokengate_requests_total",
            &[("route", "api"), ("outcome", "allowed")],
        )
        .await
        .unwrap_or(0.0);
    assert!(served > 0.0, "the new process served no request");
    assert_eq!(
        get_bearer(&env.gw.url("/last"), &bearer).await.status,
        200,
        "proxy after the hand-over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_passed_through_to_the_upstream() {
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    let k = fresh(Algorithm::ES256, "traceparent");
    let env = Env::start(&[&k], "", &root_route("")).await;
    let auth = format!("Bearer {}", token(&k));
    let r = get(
        &env.gw.url("/traced"),
        &[
            ("authorization", &auth),
            ("traceparent", TRACEPARENT),
            ("tracestate", TRACESTATE),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = env.upstream.last();
    assert_eq!(seen.path, "/traced");
    assert_eq!(seen.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(seen.header("tracestate"), Some(TRACESTATE));
}

/// How long the slow upstream takes to answer.
const SLOW: Duration = Duration::from_secs(1);

/// `shutdown_timeout` of the drain test.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let k = fresh(Algorithm::ES256, "drain");
    let jwks = JwksServer::start(&[&k]).await;
    let slow = Upstream::start_slow(SLOW).await;
    // Requests in flight at SIGTERM get grace_period to finish (Pingora stops the
    // listeners at once, waits grace_period, then stops the runtimes).
    let options = Options {
        grace_period: format!("{}s", DRAIN_TIMEOUT.as_secs()),
        shutdown_timeout: "1s".into(),
        ..Options::default()
    };
    let body = format!(
        "{}{}",
        issuer_toml("main", &jwks.uri(), ""),
        route_toml("slow", "/", &slow, "")
    );
    let mut gw = Gateway::start(&body, options).await;
    gw.wait_ready().await;

    let (url, bearer) = (gw.url("/slow"), token(&k));
    let in_flight = tokio::spawn(async move {
        let r = client()
            .get(&url)
            .bearer_auth(&bearer)
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|e| chain(&e))?;
        Ok::<_, String>((status, body))
    });
    wait_until("the upstream to receive the request", || async {
        (slow.count() == 1).then_some(())
    })
    .await;
    let start = Instant::now();
    gw.signal(Signal::SIGTERM);
    let reply = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .expect("the in-flight request did not end")
        .expect("the request task panicked");
    let exited = gw.wait_exit(DRAIN_TIMEOUT + Duration::from_secs(4)).await;
    let took = start.elapsed();
    assert_eq!(
        reply,
        Ok((200, "upstream ok".to_string())),
        "the request in flight at SIGTERM (grace_period {DRAIN_TIMEOUT:?}); stderr:\n{}",
        gw.logs()
    );
    let status = exited.unwrap_or_else(|| {
        panic!(
            "still running {took:?} after SIGTERM; stderr:\n{}",
            gw.logs()
        )
    });
    assert!(status.success(), "exit after SIGTERM: {status}");
}
