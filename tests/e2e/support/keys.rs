//! Test keys and tokens, made with `filters::sign` (the same code as the dev issuer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use filters::sign::SigningKey;
use filters::Algorithm;
use serde_json::{json, Value};

/// `iss` of the test issuer.
pub const ISS: &str = "https://idp.tokengate.test";

/// The audience the test issuer is configured with.
pub const AUD: &str = "api";

/// A process-wide key per algorithm, `kid` = `k-<alg>` (RSA generation is slow in debug
/// builds; tests that need a key of their own use [`fresh`]).
pub fn key(alg: Algorithm) -> &'static SigningKey {
    static KEYS: [OnceLock<SigningKey>; Algorithm::ALL.len()] =
        [const { OnceLock::new() }; Algorithm::ALL.len()];
    KEYS[alg.index()].get_or_init(|| fresh(alg, &format!("k-{}", alg.name().to_ascii_lowercase())))
}

/// A new key.
pub fn fresh(alg: Algorithm, kid: &str) -> SigningKey {
    SigningKey::generate(alg, kid).unwrap_or_else(|e| panic!("generate {kid}: {e}"))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A unique `jti`, so that no two tokens of a test run are equal.
fn jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "jti-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Valid claims: `sub` user-1, scopes `orders:read orders:write`, `azp` web-app, tenant acme,
/// expiring in 5 minutes.
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "jti": jti(),
        "scope": "orders:read orders:write",
        "azp": "web-app",
        "tenant": "acme",
    })
}

/// `base` with the members of `patch` set (a `null` member is removed).
pub fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// A JWT (`typ` at+jwt) over `claims`.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    key.sign_jwt(Some("at+jwt"), claims)
        .unwrap_or_else(|e| panic!("sign: {e}"))
}

/// A valid token with default [`claims`].
pub fn token(key: &SigningKey) -> String {
    sign(key, &claims())
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A compact JWS with an arbitrary header and signature (for tokens no key can make:
/// `alg` none, HS256).
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// A compact JWS with exactly these header and payload bytes, signed by `key` (whatever
/// `alg` the header claims).
pub fn signed_text(key: &SigningKey, header: &str, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload));
    let sig = key.sign_raw(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(&sig))
}

/// A valid token of `key` (default [`claims`]) exactly `len` bytes long, padded with a
/// `pad` claim and, when base64 cannot hit the length, an unknown header member.
pub fn token_of_len(key: &SigningKey, len: usize) -> String {
    for filler in 0..4 {
        let header = json!({"alg": key.alg().name(), "kid": key.kid(), "typ": "at+jwt", "x": "x".repeat(filler)})
            .to_string();
        let signature = b64(&key.sign_raw(b"length probe").expect("sign")).len();
        let header_len = b64(header.as_bytes()).len();
        let Some(payload_len) = len.checked_sub(header_len + signature + 2) else {
            continue;
        };
        // base64url of n bytes is 4n/3 rounded up: lengths 4k+1 cannot occur.
        let bytes = match payload_len % 4 {
            0 => payload_len / 4 * 3,
            2 => payload_len / 4 * 3 + 1,
            3 => payload_len / 4 * 3 + 2,
            _ => continue,
        };
        let mut c = with(claims(), json!({"pad": ""}));
        let bare = c.to_string().len();
        let Some(pad) = bytes.checked_sub(bare) else {
            continue;
        };
        c["pad"] = json!("p".repeat(pad));
        let token = signed_text(key, &header, c.to_string().as_bytes());
        if token.len() == len {
            return token;
        }
    }
    panic!("no token of exactly {len} bytes")
}

/// The signature segment of a compact JWS.
pub fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or(token)
}
