//! Costs of the token exchange: minting one backend token with the local signer (ES256),
//! and answering from the exchange cache.
//!
//! cargo bench -p tokengate-benches --bench exchange

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use filters::exchange::{
    ExchangeCache, ExchangeRequest, Exchanger, LocalSigner, DEFAULT_EXCHANGE_CACHE_ENTRIES,
};
use filters::sign::SigningKey;
use filters::validate::unix_now;
use filters::{Algorithm, VerifiedToken};
use serde_json::{json, Value};

fn subject() -> VerifiedToken {
    let now = unix_now();
    let Value::Object(claims) = json!({
        "iss": "https://idp.bench", "sub": "user-1", "aud": "gateway", "iat": now,
        "exp": now + 3600, "jti": "subject-1", "scope": "orders:read orders:write admin",
        "client_id": "web", "azp": "web", "tenant": "acme",
    }) else {
        unreachable!("a JSON object literal")
    };
    VerifiedToken {
        issuer_id: "bench".into(),
        iss: "https://idp.bench".into(),
        sub: Some("user-1".into()),
        exp: now + 3600,
        iat: Some(now),
        jti: Some("subject-1".into()),
        scopes: vec!["orders:read".into(), "orders:write".into(), "admin".into()],
        client: Some("web".into()),
        claims,
    }
}

fn signer(alg: Algorithm) -> LocalSigner {
    let key = SigningKey::generate(alg, "k1").expect("key");
    LocalSigner::new("https://gateway.bench".into(), vec![key], "k1").expect("signer")
}

fn bench_exchange(c: &mut Criterion) {
    let subject = subject();
    let allowed = vec!["orders:read".to_owned(), "orders:write".to_owned()];
    let carry = vec!["tenant".to_owned()];
    let req = ExchangeRequest {
        subject: &subject,
        subject_token: "subject.token.bench",
        audience: "orders-api",
        allowed_scopes: &allowed,
        ttl: Duration::from_secs(300),
        carry_claims: &carry,
        request_id: None,
        actor: None,
    };

    let mut g = c.benchmark_group("exchange");
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let signer = signer(alg);
        g.bench_function(format!("local_mint_{alg}"), |b| {
            b.iter(|| black_box(signer.mint(black_box(&req)).expect("mint")))
        });
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let cache = ExchangeCache::new(
        Arc::new(signer(Algorithm::ES256)),
        DEFAULT_EXCHANGE_CACHE_ENTRIES,
    );
    rt.block_on(cache.exchange(&req)).expect("first exchange");
    g.bench_function("cache_hit", |b| {
        b.iter(|| black_box(rt.block_on(cache.exchange(black_box(&req))).expect("hit")))
    });
    g.finish();
}

criterion_group!(benches, bench_exchange);
criterion_main!(benches);
