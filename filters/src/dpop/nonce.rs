//! Stateless DPoP server nonces (RFC 9449 §8–9): any replica sharing the secret accepts a
//! nonce another one issued, with no shared state.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Bytes of HMAC kept in a nonce (16: 128 bits).
const TAG_BYTES: usize = 16;

/// Issues and checks nonces of the form base64url(issued-at (8 bytes, big-endian) ‖
/// HMAC-SHA-256(secret, issued-at)[..16]). A nonce is accepted from its issue time (minus a
/// 5 s skew between replicas) until `lifetime` later.
pub struct NonceIssuer {
    key: hmac::Key,
    lifetime: Duration,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer keyed with `secret` (replicas that must accept each other's nonces share
    /// it). `lifetime` is how long a nonce stays valid (default in config: 5 min).
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        NonceIssuer {
            key: super::hmac_key(secret),
            lifetime,
        }
    }

    /// An issuer with a random key: nonces are only accepted by this process. `None` when
    /// the system RNG fails (no predictable key is ever used).
    pub fn random(lifetime: Duration) -> Option<Self> {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).ok()?;
        Some(Self::new(&secret, lifetime))
    }

    /// A fresh nonce issued at `now` (Unix seconds).
    pub fn issue(&self, now: i64) -> String {
        let ts = now.to_be_bytes();
        let tag = hmac::sign(&self.key, &ts);
        let mut raw = [0u8; 8 + TAG_BYTES];
        raw[..8].copy_from_slice(&ts);
        raw[8..].copy_from_slice(&tag.as_ref()[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` was issued by a holder of the secret and is still fresh at `now`.
    pub fn check(&self, nonce: &str, now: i64) -> bool {
        if nonce.len() != 32 {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if raw.len() != 8 + TAG_BYTES {
            return false;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let mut full = hmac::sign(&self.key, &ts).as_ref().to_vec();
        full.truncate(TAG_BYTES);
        // hmac::verify needs the whole tag; compare the truncated one in constant time.
        let diff = full
            .iter()
            .zip(&raw[8..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return false;
        }
        let issued = i64::from_be_bytes(ts);
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        issued <= now.saturating_add(5) && now.saturating_sub(issued) <= lifetime
    }
}
