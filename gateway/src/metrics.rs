//! Prometheus metrics. Labels are bounded: route ids and issuer ids come from the
//! configuration, outcomes and reasons from fixed lists — never a subject, `jti` or token.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::runtime::Runtime;

/// Latency buckets in seconds: 50 µs … 10 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// All metrics of one process.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub denials: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub revocation_checks: IntCounterVec,
    pub exchanges: IntCounterVec,
    pub exchange_duration: prometheus::Histogram,
    exchange_cache: IntCounterVec,
    pub revocation_duration: prometheus::Histogram,
    pub dpop_replay_checks: IntCounterVec,
    pub dpop_replay_duration: prometheus::Histogram,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGaugeVec,
    jwks_age: IntGaugeVec,
    cache_hits: IntCounter,
    reloads: IntCounterVec,
    last_reload: prometheus::Gauge,
    cache_misses: IntCounter,
    cache_entries: IntGauge,
    /// Last values seen of counters kept elsewhere (key → value), to add only the delta.
    seen: Mutex<HashMap<String, u64>>,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

fn histogram(r: &Registry, name: &str, help: &str) -> prometheus::Histogram {
    let h =
        prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

impl Metrics {
    /// Registers every metric. Panics only on a programming error (duplicate names), at
    /// start-up.
    pub fn new() -> Self {
        let r = Registry::new();
        let build = IntGauge::with_opts(
            Opts::new("tokengate_build_info", "Build information; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .unwrap_or_else(|e| panic!("metric build_info: {e}"));
        build.set(1);
        r.register(Box::new(build))
            .unwrap_or_else(|e| panic!("metric build_info: {e}"));
        let cache_hits = IntCounter::new(
            "tokengate_token_cache_hits_total",
            "Verified-token cache hits.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cache_misses = IntCounter::new(
            "tokengate_token_cache_misses_total",
            "Verified-token cache misses.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        r.register(Box::new(cache_hits.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        r.register(Box::new(cache_misses.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        let cache_entries = IntGauge::new(
            "tokengate_token_cache_entries",
            "Tokens held by the verified-token cache (bounded by max_tokens and by each token's exp).",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        r.register(Box::new(cache_entries.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        Metrics {
            requests: counter_vec(
                &r,
                "tokengate_requests_total",
                "Requests by route and outcome.",
                &["route", "outcome"],
            ),
            denials: counter_vec(
                &r,
                "tokengate_denials_total",
                "Denied requests by route and reason.",
                &["route", "reason"],
            ),
            request_duration: histogram_vec(
                &r,
                "tokengate_request_duration_seconds",
                "Time spent in the gateway per request, upstream excluded.",
                &["route"],
            ),
            upstream_duration: histogram_vec(
                &r,
                "tokengate_upstream_duration_seconds",
                "Time from sending the request upstream to the end of the response.",
                &["route"],
            ),
            revocation_checks: counter_vec(
                &r,
                "tokengate_revocation_checks_total",
                "Revocation store checks by result (valid, revoked, family_revoked, subject_revoked, error).",
                &["result"],
            ),
            revocation_duration: histogram(&r, "tokengate_revocation_check_duration_seconds", "Time of one revocation store check (one round trip)."),
            dpop_replay_checks: counter_vec(
                &r,
                "tokengate_dpop_replay_checks_total",
                "DPoP proof ids recorded in the replay cache by result (first_use, replay, error).",
                &["result"],
            ),
            dpop_replay_duration: histogram(&r, "tokengate_dpop_replay_check_duration_seconds", "Time of one DPoP replay-cache write (one round trip)."),
            exchanges: counter_vec(
                &r,
                "tokengate_exchanges_total",
                "Token exchanges by route and result (ok, or the failure reason).",
                &["route", "result"],
            ),
            exchange_duration: histogram(&r, "tokengate_exchange_duration_seconds", "Time to obtain a backend token (cache hit, local mint or STS call)."),
            exchange_cache: counter_vec(
                &r,
                "tokengate_exchange_cache_total",
                "Exchanged-token cache lookups by exchanger and result (hit, miss).",
                &["exchanger", "result"],
            ),
            jwks_fetches: counter_vec(
                &r,
                "tokengate_jwks_fetches_total",
                "JWKS fetches by issuer and result.",
                &["issuer", "result"],
            ),
            jwks_keys: gauge_vec(
                &r,
                "tokengate_jwks_keys",
                "Usable keys per issuer.",
                &["issuer"],
            ),
            jwks_age: gauge_vec(
                &r,
                "tokengate_jwks_age_seconds",
                "Seconds since the issuer's keys were last fetched successfully (-1: never).",
                &["issuer"],
            ),
            cache_hits,
            cache_misses,
            cache_entries,
            reloads: counter_vec(
                &r,
                "tokengate_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            last_reload: {
                let g = prometheus::Gauge::new(
                    "tokengate_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load (start or reload).",
                )
                .unwrap_or_else(|e| panic!("{e}"));
                r.register(Box::new(g.clone()))
                    .unwrap_or_else(|e| panic!("{e}"));
                g
            },
            seen: Mutex::new(HashMap::new()),
            registry: r,
        }
    }

    /// Adds to `counter` what `current` grew by since the last scrape (a counter kept by
    /// a component that may be rebuilt on reload: a drop means it restarted from zero).
    fn add_delta(seen: &mut HashMap<String, u64>, key: String, current: u64, counter: &IntCounter) {
        let last = seen.insert(key, current).unwrap_or(0);
        counter.inc_by(if current >= last {
            current - last
        } else {
            current
        });
    }

    /// Records the configuration loaded at start.
    pub fn config_loaded(&self, now: f64) {
        self.last_reload.set(now);
    }

    /// Records a reload attempt.
    pub fn reload_result(&self, ok: bool, now: f64) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            self.last_reload.set(now);
        }
    }

    /// Renders the text exposition, refreshing the gauges kept by other components.
    pub fn render(&self, rt: &Runtime) -> String {
        if let Ok(mut seen) = self.seen.lock() {
            let (hits, misses) = rt.validator.cache_stats();
            Self::add_delta(&mut seen, "cache_hits".into(), hits, &self.cache_hits);
            Self::add_delta(&mut seen, "cache_misses".into(), misses, &self.cache_misses);
            self.cache_entries
                .set(i64::try_from(rt.validator.cache_entries()).unwrap_or(i64::MAX));
            for (id, cache) in &rt.exchangers {
                let st = cache.stats();
                let hit = self.exchange_cache.with_label_values(&[id, "hit"]);
                let miss = self.exchange_cache.with_label_values(&[id, "miss"]);
                Self::add_delta(&mut seen, format!("xhit/{id}"), st.hits, &hit);
                Self::add_delta(&mut seen, format!("xmiss/{id}"), st.misses, &miss);
            }
            for i in &rt.issuers {
                let id = &*i.policy.id;
                let s = i.jwks.stats();
                self.jwks_keys
                    .with_label_values(&[id])
                    .set(i64::try_from(s.keys).unwrap_or(i64::MAX));
                self.jwks_age.with_label_values(&[id]).set(
                    s.age
                        .map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)),
                );
                let ok = self.jwks_fetches.with_label_values(&[id, "ok"]);
                let err = self.jwks_fetches.with_label_values(&[id, "error"]);
                Self::add_delta(&mut seen, format!("jwks_ok/{id}"), s.fetch_ok, &ok);
                Self::add_delta(&mut seen, format!("jwks_err/{id}"), s.fetch_error, &err);
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
