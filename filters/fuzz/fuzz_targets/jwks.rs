//! The JWKS document parser: `parse_jwks` with every algorithm allowed. Whatever key it
//! returns is pinned to at least one algorithm and verifies no garbage signature.
#![no_main]

use filters::jwk::{parse_jwks, JwksLimits};
use filters::Algorithm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = JwksLimits::default();
    if let Ok(keys) = parse_jwks(data, &Algorithm::ALL, &limits) {
        assert!(data.len() <= limits.max_bytes);
        assert!(keys.len() <= limits.max_keys);
        for key in &keys {
            let algs: Vec<Algorithm> = key.algorithms().collect();
            assert!(!algs.is_empty(), "a key pinned to no algorithm");
            for alg in algs {
                for len in [64, 96, 256, 512] {
                    assert!(key.verify(alg, b"fuzz", &vec![0x5a; len]).is_err());
                }
            }
        }
    }
});
