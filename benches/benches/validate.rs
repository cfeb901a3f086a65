//! Hot-path costs of the filters crate: verification per algorithm (cold: every token
//! distinct, cache disabled), the verified-token cache hit, parsing, route matching and
//! header encoding.
//!
//! cargo bench -p tokengate-benches --bench validate

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use filters::jwks::{JwksCache, JwksConfig, JwksSource};
use filters::route::{RouteMatch, RouteTable};
use filters::sign::{jwks_document, SigningKey};
use filters::validate::{unix_now, Issuer, IssuerPolicy, TokenCacheConfig, Validator};
use filters::Algorithm;
use serde_json::json;

const ISS: &str = "https://idp.bench";

fn setup(alg: Algorithm, cache: TokenCacheConfig) -> (SigningKey, Validator, PathBuf) {
    let key = SigningKey::generate(alg, "k1").expect("key");
    let path =
        std::env::temp_dir().join(format!("tokengate-bench-{}-{alg}.json", std::process::id()));
    std::fs::write(&path, jwks_document([&key]).to_string()).expect("write jwks");
    let algorithms = vec![alg];
    let jwks = JwksCache::new(JwksConfig::new(
        ISS,
        JwksSource::File(path.clone()),
        algorithms.clone(),
    ))
    .expect("jwks");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(jwks.refresh()).expect("load keys");
    let issuer = Arc::new(Issuer {
        policy: IssuerPolicy {
            id: "bench".into(),
            issuer: ISS.into(),
            audiences: vec!["api".into()],
            algorithms,
            leeway: Duration::from_secs(30),
            accepted_types: vec!["at+jwt".into()],
            allow_missing_typ: true,
        },
        jwks,
    });
    (key, Validator::new(vec![issuer], cache, 8192), path)
}

fn token(key: &SigningKey, n: u64) -> String {
    let now = unix_now();
    key.sign_jwt(
        Some("at+jwt"),
        &json!({ "iss": ISS, "sub": format!("user-{n}"), "aud": "api", "iat": now, "exp": now + 3600,
                 "jti": format!("j-{n}"), "scope": "orders:read orders:write", "azp": "web", "tenant": "acme" }),
    )
    .expect("sign")
}

fn bench_validate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut g = c.benchmark_group("validate_uncached");
    for alg in [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let (key, v, path) = setup(
            alg,
            TokenCacheConfig {
                max_entries: 0,
                ..Default::default()
            },
        );
        let t = token(&key, 1);
        g.bench_function(alg.name(), |b| {
            b.iter(|| rt.block_on(v.validate(black_box(&t))).expect("valid"))
        });
        let _ = std::fs::remove_file(path);
    }
    g.finish();

    // A miss on every request: distinct tokens, cache enabled (verify + insert) versus
    // cache disabled (verify only).
    for (name, cache) in [
        ("validate_distinct_cache_on", TokenCacheConfig::default()),
        (
            "validate_distinct_cache_off",
            TokenCacheConfig {
                max_entries: 0,
                ..Default::default()
            },
        ),
    ] {
        let (key, v, path) = setup(Algorithm::ES256, cache);
        let mut n = 0u64;
        c.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    token(&key, n)
                },
                |t| rt.block_on(v.validate(black_box(&t))).expect("valid"),
                criterion::BatchSize::SmallInput,
            )
        });
        let _ = std::fs::remove_file(path);
    }

    let (key, v, path) = setup(Algorithm::ES256, TokenCacheConfig::default());
    let t = token(&key, 1);
    rt.block_on(v.validate(&t)).expect("valid");
    c.bench_function("validate_cache_hit", |b| {
        b.iter(|| rt.block_on(v.validate(black_box(&t))).expect("valid"))
    });
    c.bench_function("parse_compact", |b| {
        b.iter(|| filters::jws::parse_compact(black_box(&t)).expect("parse"))
    });
    // The `Authorization` value as it arrives: scheme, then the token68 check of every byte.
    let header = format!("Bearer {t}");
    c.bench_function("extract_token", |b| {
        b.iter(|| filters::extract_token(black_box(header.as_bytes()), 8192).expect("token"))
    });
    let _ = std::fs::remove_file(path);
}

fn bench_route_and_headers(c: &mut Criterion) {
    let routes = (0..50)
        .map(|i| {
            (
                RouteMatch {
                    hosts: vec![],
                    path_prefix: format!("/svc{i}"),
                    methods: vec!["GET".into()],
                },
                Arc::new(i),
            )
        })
        .collect();
    let table = RouteTable::new(routes);
    c.bench_function("route_match_50", |b| {
        b.iter(|| {
            table.matches(
                black_box("api.example.com"),
                black_box("/svc42/items/7"),
                "GET",
            )
        })
    });
    let v = json!("Zoë, the \"tenant\"");
    c.bench_function("encode_claim", |b| {
        b.iter(|| filters::headers::encode_claim(black_box(&v)))
    });
    let injected = vec!["x-tenant".to_string()];
    c.bench_function("must_strip", |b| {
        b.iter(|| filters::headers::must_strip(black_box("X_Auth_Subject"), "x-auth-", &injected))
    });
}

criterion_group!(benches, bench_validate, bench_route_and_headers);
criterion_main!(benches);
