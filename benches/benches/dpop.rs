//! Cost of a DPoP proof check (RFC 9449 §4.3, everything but the replay-cache write):
//! per algorithm, a fresh proof on every iteration is not needed — the check holds no state.
//!
//! cargo bench -p tokengate-benches --bench dpop

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use filters::dpop::{
    normalize_htu, sign_proof, verify_proof, DpopPolicy, ProofClaims, ProofContext,
};
use filters::sign::SigningKey;
use filters::validate::unix_now;
use filters::Algorithm;

const URI: &str = "https://api.example.com/orders/42";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

fn bench(c: &mut Criterion) {
    let policy = DpopPolicy::default();
    let mut g = c.benchmark_group("dpop_verify_proof");
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let key = SigningKey::generate(alg, "client").expect("key");
        let now = unix_now();
        let proof = sign_proof(
            &key,
            &ProofClaims {
                method: "GET",
                uri: URI,
                access_token: TOKEN,
                iat: now,
                jti: "bench-proof",
                nonce: None,
            },
        )
        .expect("proof");
        let ctx = ProofContext {
            method: "GET",
            htu: URI,
            access_token: TOKEN,
            now,
        };
        assert!(verify_proof(&proof, &policy, &ctx).is_ok());
        g.bench_function(alg.name(), |b| {
            b.iter(|| verify_proof(black_box(&proof), &policy, &ctx))
        });
    }
    g.finish();
    c.bench_function("dpop_normalize_htu", |b| {
        b.iter(|| {
            normalize_htu(black_box(
                "https://API.example.com:443/orders/%34%32?page=2",
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
