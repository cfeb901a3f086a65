//! The hostile-input table (issue #8): each case is one request against the real binary and
//! its expected outcome — status, `WWW-Authenticate` error code, denial reason (from the
//! access log, matched by request id), and whether the upstream, the issuer's JWKS
//! endpoint, Redis (`MGET` in `INFO commandstats`) and a loopback "attacker" listener named
//! in `jku`/`x5u` headers were contacted.
//!
//! The cases run in order against one gateway whose issuer refetches keys at most once an
//! hour: the first case with an unknown `kid` is the one allowed refetch (a positive
//! control for the JWKS column), every later case must cause none.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;
use filters::sign::SigningKey;
use filters::Algorithm;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::exchange::{bearer_of, exchange_route, signer_section, SIGNER_ISS};
use crate::headers::INJECTING_ROUTE;
use crate::support::http::{get, get_bearer, raw};
use crate::support::keys::{b64, forge, fresh, now, signed_text};
use crate::support::redis::{redis_section, Redis};
use crate::support::upstream::Seen;
use crate::support::{
    assert_denied, claims, issuer_toml, key, sign, with, Gateway, JwksServer, Options, Upstream,
    AUD, ISS,
};

/// `iss` of the second issuer, whose only key has the same `kid` as the main ES256 key.
const OTHER_ISS: &str = "https://other.tokengate.test";

/// A loopback listener standing for an attacker's server: counts the connections it gets.
struct Trap {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the trap");
        let addr = listener.local_addr().expect("trap address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Trap {
            addr,
            connections,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a case sends.
enum Send {
    /// `Authorization: Bearer <token>` (reqwest).
    Bearer(String),
    /// These headers verbatim on a raw HTTP/1.1 `GET /hostile` (for spellings and
    /// `Connection` tricks a client library would normalise).
    Raw(Vec<(String, String)>),
}

/// A check of what the upstream saw: `Err` says what is wrong.
type SeenCheck = fn(&Seen) -> Result<(), String>;

/// What must happen.
#[derive(Clone, Copy)]
struct Expect {
    status: u16,
    /// RFC 6750 error code in the challenge and the body (`None`: none, as for a success or
    /// a request without credentials).
    error: Option<&'static str>,
    /// Denial reason in the access log (`""` for a success).
    reason: &'static str,
    /// The upstream received the request.
    upstream: bool,
    /// The revocation store was asked (`MGET`).
    redis: bool,
    /// The issuer's JWKS endpoint was fetched.
    jwks: bool,
    /// Extra checks on what the upstream saw (successes only).
    seen: Option<SeenCheck>,
}

/// Forwarded with the token's identity, after one revocation check.
fn pass() -> Expect {
    Expect {
        status: 200,
        error: None,
        reason: "",
        upstream: true,
        redis: true,
        jwks: false,
        seen: None,
    }
}

/// 401 `invalid_token` for `reason`; nothing contacted.
fn deny(reason: &'static str) -> Expect {
    Expect {
        status: 401,
        error: Some("invalid_token"),
        reason,
        upstream: false,
        redis: false,
        jwks: false,
        seen: None,
    }
}

/// 400 `invalid_request` (the `Authorization` header itself is malformed).
fn bad_request() -> Expect {
    Expect {
        status: 400,
        error: Some("invalid_request"),
        ..deny("invalid_request")
    }
}

impl Expect {
    /// The one refetch an unknown `kid` may trigger.
    fn refetching(self) -> Expect {
        Expect { jwks: true, ..self }
    }

    /// With a check of the upstream's view.
    fn seeing(self, check: SeenCheck) -> Expect {
        Expect {
            seen: Some(check),
            ..self
        }
    }
}

struct Case {
    name: String,
    send: Send,
    expect: Expect,
}

fn case(name: impl Into<String>, token: impl Into<String>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        send: Send::Bearer(token.into()),
        expect,
    }
}

fn raw_case(name: impl Into<String>, headers: &[(&str, &str)], expect: Expect) -> Case {
    Case {
        name: name.into(),
        send: Send::Raw(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ),
        expect,
    }
}

/// [`signed_text`] with a JSON header and JSON claims.
fn signed(key: &SigningKey, header: Value, claims: &Value) -> String {
    signed_text(key, &header.to_string(), claims.to_string().as_bytes())
}

/// The usual header of `key` (`alg`, `kid`, `typ` at+jwt) with `patch` applied.
fn header_of(key: &SigningKey, patch: Value) -> Value {
    with(
        json!({"alg": key.alg().name(), "kid": key.kid(), "typ": "at+jwt"}),
        patch,
    )
}

/// `token` with its signature segment replaced by `sig`.
fn resigned(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three segments");
    format!("{input}.{}", b64(sig))
}

/// The raw signature of `token`.
fn signature_bytes(token: &str) -> Vec<u8> {
    use base64::Engine as _;
    let (_, sig) = token.rsplit_once('.').expect("three segments");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .expect("base64url signature")
}

/// An ECDSA `R||S` signature re-encoded as the DER `SEQUENCE { r INTEGER, s INTEGER }`.
fn der(sig: &[u8]) -> Vec<u8> {
    let int = |half: &[u8]| {
        let start = half.iter().position(|b| *b != 0).unwrap_or(half.len() - 1);
        let mut v = half[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, u8::try_from(v.len()).expect("short integer")];
        out.extend(v);
        out
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).expect("short sequence")];
    out.extend(body);
    out
}

/// The order of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// Claims with `patch` applied, as JSON text with `extra` spliced in before the closing
/// brace (for duplicate members, which a `Value` cannot hold).
fn claims_text(patch: Value, extra: &[u8]) -> Vec<u8> {
    let text = with(claims(), patch).to_string();
    [&text.as_bytes()[..text.len() - 1], extra, b"}"].concat()
}

/// A JSON value nested `depth` levels deep (`depth` arrays around a 1; `depth` < 128).
fn nested(depth: usize) -> Value {
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    serde_json::from_str(&text).expect("nested JSON")
}

/// The fixture: a gateway with issuer `main` (ES256, RS256, EdDSA and ES384 keys, every
/// algorithm allowed, refetch cooldown 1 h) and issuer `other` (one ES256 key whose `kid`
/// equals main's), Redis, an injecting route `/`, and a trap for outbound fetches.
struct Table {
    jwks: JwksServer,
    _other_jwks: JwksServer,
    upstream: Upstream,
    redis: Redis,
    trap: Trap,
    gw: Gateway,
    twin: SigningKey,
}

impl Table {
    async fn start() -> Table {
        let keys = [
            key(Algorithm::ES256),
            key(Algorithm::RS256),
            key(Algorithm::EdDSA),
            key(Algorithm::ES384),
        ];
        let jwks = JwksServer::start(&keys).await;
        let twin = fresh(Algorithm::ES256, key(Algorithm::ES256).kid());
        let other_jwks = JwksServer::start(&[&twin]).await;
        let upstream = Upstream::start().await;
        let redis = Redis::start().await;
        let trap = Trap::start().await;
        let all: Vec<String> = Algorithm::ALL
            .iter()
            .map(|a| format!("\"{}\"", a.name()))
            .collect();
        let config = format!(
            "{}\n[[issuer]]\nid = \"other\"\nissuer = \"{OTHER_ISS}\"\njwks_uri = \"{}\"\naudiences = [\"{AUD}\"]\n{}{}",
            issuer_toml(
                "main",
                &jwks.uri(),
                &format!(
                    "algorithms = [{}]\nrefresh = \"1h\"\nmax_stale = \"2h\"\nrefetch_cooldown = \"1h\"",
                    all.join(", ")
                )
            ),
            other_jwks.uri(),
            redis_section(&redis),
            INJECTING_ROUTE.replace("{up}", &upstream.addr().to_string()),
        );
        let gw = Gateway::start(&config, Options::default()).await;
        gw.wait_ready().await;
        Table {
            jwks,
            _other_jwks: other_jwks,
            upstream,
            redis,
            trap,
            gw,
            twin,
        }
    }

    async fn run(&self, cases: &[Case]) {
        for (i, c) in cases.iter().enumerate() {
            let what = format!("case {i} \"{}\"", c.name);
            let (upstream, jwks, mget, trap) = (
                self.upstream.count(),
                self.jwks.requests(),
                self.redis.calls("mget").await,
                self.trap.connections(),
            );
            let r = match &c.send {
                Send::Bearer(t) => get_bearer(&self.gw.url("/hostile"), t).await,
                Send::Raw(headers) => {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    raw(self.gw.listen, "GET /hostile HTTP/1.1", &h).await
                }
            };
            let e = c.expect;
            if e.status == 200 {
                assert_eq!(r.status, 200, "{what}: body {}", r.body);
                assert_eq!(r.body, "upstream ok", "{what}");
            } else {
                assert_denied(&r, e.status, e.error, &what);
            }
            let id = r.header("x-request-id").expect("x-request-id").to_string();
            assert_eq!(self.gw.access_reason(&id).await, e.reason, "{what}: reason");
            assert_eq!(
                self.upstream.count() - upstream,
                usize::from(e.upstream),
                "{what}: upstream calls"
            );
            let mget = self.redis.calls("mget").await - mget;
            assert_eq!(mget > 0, e.redis, "{what}: {mget} revocation checks");
            assert_eq!(
                self.jwks.requests() - jwks,
                usize::from(e.jwks),
                "{what}: JWKS fetches"
            );
            assert_eq!(
                self.trap.connections(),
                trap,
                "{what}: the gateway connected to a URL from the token"
            );
            if let Some(check) = e.seen {
                let seen = self.upstream.last();
                if let Err(why) = check(&seen) {
                    panic!("{what}: {why}; upstream saw {seen:?}");
                }
            }
        }
    }
}

/// `alg`: `none` in every spelling, HMAC (also keyed with the issuer's public key), missing
/// or non-string.
fn algorithm_cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let rs = key(Algorithm::RS256);
    let mut cases = Vec::new();
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "none ",
        " none",
        "none\u{0}",
        "",
    ] {
        let h = json!({"alg": alg, "typ": "at+jwt"});
        cases.push(case(
            format!("alg {alg:?}, empty signature"),
            forge(&h, &claims(), b""),
            deny("malformed"),
        ));
        cases.push(case(
            format!("alg {alg:?}, some signature"),
            forge(&h, &claims(), b"sig"),
            deny("unsupported_alg"),
        ));
    }
    for h in [
        json!({"typ": "at+jwt"}),
        json!({"alg": null}),
        json!({"alg": ["ES256"]}),
        json!({"alg": "es256"}),
        json!({"alg": "ES512"}),
    ] {
        cases.push(case(
            format!("header {h}"),
            forge(&h, &claims(), &[1; 64]),
            deny("unsupported_alg"),
        ));
    }
    // HMAC keyed with what the issuer publishes: its JWK text, and the RSA modulus.
    let jwk_text = es.public_jwk().to_string();
    let modulus = {
        use base64::Engine as _;
        let n = rs.public_jwk()["n"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(n)
            .expect("modulus")
    };
    for (alg, hmac_alg, kid, secret) in [
        ("HS256", hmac::HMAC_SHA256, es.kid(), jwk_text.as_bytes()),
        ("HS256", hmac::HMAC_SHA256, rs.kid(), &modulus[..]),
        ("HS384", hmac::HMAC_SHA384, rs.kid(), &modulus[..]),
        ("HS512", hmac::HMAC_SHA512, rs.kid(), &modulus[..]),
    ] {
        let h = json!({"alg": alg, "kid": kid, "typ": "at+jwt"});
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
        cases.push(case(
            format!("{alg} keyed with the public key of {kid}"),
            format!("{input}.{}", b64(tag.as_ref())),
            deny("unsupported_alg"),
        ));
    }
    cases
}

/// Algorithm/key mismatches, embedded keys and key URLs, hostile `kid`s, `crit`.
fn key_cases(trap: &Trap, twin: &SigningKey) -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let rs = key(Algorithm::RS256);
    let ed = key(Algorithm::EdDSA);
    let es384 = key(Algorithm::ES384);
    let pem = rs.to_pkcs8_pem().expect("export the RSA key");
    let rs_as_ps = SigningKey::from_pkcs8_pem(&pem, Algorithm::PS256, rs.kid()).expect("PS256");
    let attacker = fresh(Algorithm::ES256, "attacker");
    let mut cases = vec![
        // The positive control of the JWKS column: the first unknown kid refetches once.
        case(
            "unknown kid: the one refetch per cooldown",
            signed(&attacker, header_of(&attacker, json!({})), &claims()),
            deny("unknown_kid").refetching(),
        ),
        case(
            "PS256 by the RS256-pinned key",
            signed(&rs_as_ps, header_of(&rs_as_ps, json!({})), &claims()),
            deny("unknown_kid"),
        ),
        case(
            "RS256 header over a PSS signature",
            signed(&rs_as_ps, header_of(rs, json!({})), &claims()),
            deny("bad_signature"),
        ),
        case(
            "ES256 header naming the RSA key",
            signed(es, header_of(es, json!({"kid": rs.kid()})), &claims()),
            deny("unknown_kid"),
        ),
        case(
            "RS256 header naming the EC key",
            signed(rs, header_of(rs, json!({"kid": es.kid()})), &claims()),
            deny("unknown_kid"),
        ),
        case(
            "EdDSA header naming the EC key",
            signed(ed, header_of(ed, json!({"kid": es.kid()})), &claims()),
            deny("unknown_kid"),
        ),
        case(
            "ES384 (wrong curve) naming the P-256 key",
            signed(es384, header_of(es384, json!({"kid": es.kid()})), &claims()),
            deny("unknown_kid"),
        ),
        case(
            "ES256 header over a P-384 signature",
            signed(es384, header_of(es, json!({})), &claims()),
            deny("bad_signature"),
        ),
        case(
            "ES256 header over an Ed25519 signature",
            signed(ed, header_of(es, json!({})), &claims()),
            deny("bad_signature"),
        ),
        case(
            "embedded jwk, attacker kid",
            signed(
                &attacker,
                header_of(&attacker, json!({"jwk": attacker.public_jwk()})),
                &claims(),
            ),
            deny("unknown_kid"),
        ),
        case(
            "embedded jwk, issuer's kid",
            signed(
                &attacker,
                header_of(es, json!({"jwk": attacker.public_jwk()})),
                &claims(),
            ),
            deny("bad_signature"),
        ),
        case(
            "embedded jwk, no kid",
            signed(
                &attacker,
                json!({"alg": "ES256", "jwk": attacker.public_jwk()}),
                &claims(),
            ),
            deny("bad_signature"),
        ),
        case(
            "jku to a loopback listener",
            signed(
                &attacker,
                header_of(&attacker, json!({"jku": trap.url("/jwks.json")})),
                &claims(),
            ),
            deny("unknown_kid"),
        ),
        case(
            "jku with the issuer's kid",
            signed(
                &attacker,
                header_of(es, json!({"jku": trap.url("/jwks.json")})),
                &claims(),
            ),
            deny("bad_signature"),
        ),
        case(
            "x5u to a loopback listener",
            signed(
                &attacker,
                header_of(&attacker, json!({"x5u": trap.url("/cert.pem")})),
                &claims(),
            ),
            deny("unknown_kid"),
        ),
        case(
            "x5c chain",
            signed(
                &attacker,
                header_of(
                    es,
                    json!({"x5c": ["MIIBszCCAVmgAwIBAgIUQ"], "x5t#S256": "AA"}),
                ),
                &claims(),
            ),
            deny("bad_signature"),
        ),
        case(
            "same kid, other issuer's key, main's iss",
            signed(twin, header_of(twin, json!({})), &claims()),
            deny("bad_signature"),
        ),
        case(
            "same kid, main's key, other's iss",
            signed(
                es,
                header_of(es, json!({})),
                &with(claims(), json!({"iss": OTHER_ISS})),
            ),
            deny("bad_signature"),
        ),
        case(
            "same kid, other issuer's key and iss",
            signed(
                twin,
                header_of(twin, json!({})),
                &with(claims(), json!({"iss": OTHER_ISS})),
            ),
            pass(),
        ),
    ];
    // Hostile kids, each signed by the real key: a kid names a key, nothing else.
    let long = "k".repeat(5 * 1024);
    let huge = "k".repeat(8 * 1024);
    for kid in [
        "../../../../etc/passwd",
        "/dev/zero",
        "file:///etc/passwd",
        "' OR '1'='1",
        "k-es256' --",
        "k-es256\r\nX-Injected: 1",
        "k-es256\n",
        "k-es256\u{0}",
        "k-es256 ",
        "K-ES256",
        "",
        "${jndi:ldap://127.0.0.1/a}",
        long.as_str(),
    ] {
        let shown: String = kid.chars().take(40).collect();
        cases.push(case(
            format!("kid {shown:?}"),
            signed(es, header_of(es, json!({"kid": kid})), &claims()),
            deny("unknown_kid"),
        ));
    }
    cases.push(case(
        "kid of 8 KiB",
        signed(es, header_of(es, json!({"kid": huge})), &claims()),
        deny("token_too_large"),
    ));
    for kid in [json!(1), json!(null), json!(["k-es256"]), json!({"k": 1})] {
        cases.push(case(
            format!("kid {kid}"),
            // Built whole: `header_of` would drop a null member.
            signed(es, json!({"alg": "ES256", "kid": kid}), &claims()),
            deny("malformed"),
        ));
    }
    for extra in [
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": []}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"b64": false}),
    ] {
        cases.push(case(
            format!("header {extra}"),
            signed(es, header_of(es, extra.clone()), &claims()),
            deny("unsupported_crit"),
        ));
    }
    cases
}

/// Signature encodings and base64url spellings.
fn encoding_cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let ed = key(Algorithm::EdDSA);
    let good = sign(es, &claims());
    let sig = signature_bytes(&good);
    let mut zero_r = sig.clone();
    zero_r[..32].fill(0);
    let order = [P256_ORDER, P256_ORDER].concat();
    let order_s = [&sig[..32], &P256_ORDER[..]].concat();
    let mut longer = sig.clone();
    longer.push(0);
    let mut cases = vec![
        case(
            "ECDSA all zero",
            resigned(&good, &[0; 64]),
            deny("bad_signature"),
        ),
        case(
            "ECDSA r = 0",
            resigned(&good, &zero_r),
            deny("bad_signature"),
        ),
        case(
            "ECDSA r = s = n",
            resigned(&good, &order),
            deny("bad_signature"),
        ),
        case(
            "ECDSA s = n",
            resigned(&good, &order_s),
            deny("bad_signature"),
        ),
        case(
            "ECDSA all ones",
            resigned(&good, &[0xff; 64]),
            deny("bad_signature"),
        ),
        case(
            "ECDSA as DER",
            resigned(&good, &der(&sig)),
            deny("bad_signature"),
        ),
        case(
            "ECDSA 63 bytes",
            resigned(&good, &sig[..63]),
            deny("bad_signature"),
        ),
        case(
            "ECDSA 65 bytes",
            resigned(&good, &longer),
            deny("bad_signature"),
        ),
        case(
            "Ed25519 all zero",
            resigned(&sign(ed, &claims()), &[0; 64]),
            deny("bad_signature"),
        ),
        case("padded signature", format!("{good}=="), deny("malformed")),
        case("trailing dot", format!("{good}."), deny("malformed")),
        case("four segments", format!("{good}.e30"), deny("malformed")),
        case(
            "JWE (five segments)",
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn",
            deny("encrypted_token"),
        ),
    ];
    // Unused low bits of the last character set: the same bytes, a different string.
    let mut flipped = good.clone();
    let last = flipped.pop().expect("non-empty");
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = ALPHABET.find(last).expect("base64url character");
    flipped.push(ALPHABET.as_bytes()[idx ^ 1] as char);
    cases.push(case("non-zero trailing bits", flipped, deny("malformed")));
    // The standard alphabet: a token that has a `-` or `_` somewhere.
    let std_alphabet = (0..64)
        .map(|_| sign(es, &claims()))
        .find(|t| t.contains(['-', '_']))
        .expect("a signature with - or _ in 64 tries")
        .replace('-', "+")
        .replace('_', "/");
    cases.push(case(
        "standard base64 alphabet",
        std_alphabet,
        deny("malformed"),
    ));
    // What token68 itself refuses is a malformed Authorization header.
    let (h, rest) = good.split_once('.').expect("segments");
    for (what, t) in [
        ("padding inside", format!("{h}=.{rest}")),
        ("space inside", format!("{h}. {rest}")),
        ("tab inside", format!("{h}.\t{rest}")),
        ("percent-encoded dot", format!("{h}%2E{rest}")),
    ] {
        cases.push(raw_case(
            what,
            &[("Authorization", &format!("Bearer {t}"))],
            bad_request(),
        ));
    }
    cases
}

/// Strict JSON: duplicates, non-objects, nesting, size, nested tokens.
fn json_cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let h = header_of(es, json!({})).to_string();
    let payload = |p: &[u8]| signed_text(es, &h, p);
    let deep_payload = |depth| {
        serde_json::to_vec(&with(claims(), json!({ "deep": nested(depth) }))).expect("json")
    };
    let mut cases = vec![
        case(
            "duplicate alg in header",
            signed_text(
                es,
                &format!(r#"{{"alg":"none","alg":"ES256","kid":"{}"}}"#, es.kid()),
                &claims_text(json!({}), b""),
            ),
            deny("malformed"),
        ),
        case(
            "duplicate kid in header",
            signed_text(
                es,
                &format!(r#"{{"alg":"ES256","kid":"nobody","kid":"{}"}}"#, es.kid()),
                &claims_text(json!({}), b""),
            ),
            deny("malformed"),
        ),
        case(
            "duplicate sub in signed payload",
            payload(&claims_text(json!({}), br#","sub":"admin""#)),
            deny("malformed"),
        ),
        case(
            "duplicate exp in signed payload",
            payload(&claims_text(
                json!({"exp": now() - 3600}),
                format!(r#","exp":{}"#, now() + 300).as_bytes(),
            )),
            deny("malformed"),
        ),
        case(
            "escaped duplicate iss",
            payload(&claims_text(
                json!({}),
                br#","\u0069ss":"https://evil.test""#,
            )),
            deny("malformed"),
        ),
        case(
            "duplicate member deep in a claim",
            payload(&claims_text(json!({}), br#","x":{"a":1,"a":2}"#)),
            deny("malformed"),
        ),
        case(
            "payload with trailing data",
            payload(&[claims_text(json!({}), b""), b" {}".to_vec()].concat()),
            deny("malformed"),
        ),
        case(
            "payload with a BOM",
            payload(&[b"\xEF\xBB\xBF".to_vec(), claims_text(json!({}), b"")].concat()),
            deny("malformed"),
        ),
        case(
            "payload not UTF-8",
            payload(&claims_text(json!({}), b",\"x\":\"\xff\"")),
            deny("malformed"),
        ),
        case(
            "number out of range",
            payload(&claims_text(json!({}), br#","x":1e400"#)),
            deny("malformed"),
        ),
        case(
            "header nested 9 deep",
            signed(es, header_of(es, json!({"x": nested(8)})), &claims()),
            deny("malformed"),
        ),
        case(
            "header nested 8 deep (the limit)",
            signed(es, header_of(es, json!({"x": nested(7)})), &claims()),
            pass(),
        ),
        case(
            "payload nested 17 deep",
            payload(&deep_payload(16)),
            deny("malformed"),
        ),
        case(
            "payload nested 16 deep (the limit)",
            payload(&deep_payload(15)),
            pass(),
        ),
        case(
            "payload nested 2 000 deep",
            payload(format!("{{\"a\":{}1{}}}", "[".repeat(2000), "]".repeat(2000)).as_bytes()),
            deny("malformed"),
        ),
        case(
            "nested JWT as payload (cty JWT)",
            signed_text(
                es,
                &header_of(es, json!({"cty": "JWT"})).to_string(),
                sign(es, &claims()).as_bytes(),
            ),
            deny("malformed"),
        ),
        case(
            "payload of 7 KiB",
            signed(
                es,
                header_of(es, json!({})),
                &with(claims(), json!({"pad": "p".repeat(5000)})),
            ),
            pass(),
        ),
        case(
            "payload over 8 KiB",
            signed(
                es,
                header_of(es, json!({})),
                &with(claims(), json!({"pad": "p".repeat(6500)})),
            ),
            deny("token_too_large"),
        ),
    ];
    for p in [&b"[]"[..], b"\"claims\"", b"null", b"1", b"true", b"", b" "] {
        cases.push(case(
            format!("payload {:?}", String::from_utf8_lossy(p)),
            payload(p),
            deny("malformed"),
        ));
    }
    cases
}

/// Time, issuer, audience and type claims; tokens meant for something else.
fn claim_cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let now = now();
    // `with` removes members patched to null; `null` sets one to JSON null.
    let null = |name: &str| {
        let mut c = claims();
        c[name] = Value::Null;
        sign(es, &c)
    };
    let mut cases = vec![
        case("exp null", null("exp"), deny("invalid_claim")),
        case("nbf null", null("nbf"), deny("invalid_claim")),
        case("iat null", null("iat"), deny("invalid_claim")),
        case("iss null", null("iss"), deny("invalid_claim")),
        case("aud null", null("aud"), deny("invalid_claim")),
    ];
    for (what, patch, expect) in [
        (
            "exp as string",
            json!({"exp": (now + 300).to_string()}),
            deny("invalid_claim"),
        ),
        ("exp missing", json!({"exp": null}), deny("invalid_claim")),
        ("exp true", json!({"exp": true}), deny("invalid_claim")),
        (
            "exp array",
            json!({"exp": [now + 300]}),
            deny("invalid_claim"),
        ),
        ("exp negative", json!({"exp": -1}), deny("expired")),
        ("exp zero", json!({"exp": 0}), deny("expired")),
        ("exp float", json!({"exp": now as f64 + 300.5}), pass()),
        (
            "nbf as string",
            json!({"nbf": (now - 5).to_string()}),
            deny("invalid_claim"),
        ),
        ("nbf negative", json!({"nbf": -1}), pass()),
        (
            "nbf float in the future",
            json!({"nbf": now as f64 + 3600.5}),
            deny("not_yet_valid"),
        ),
        (
            "iat as string",
            json!({"iat": now.to_string()}),
            deny("invalid_claim"),
        ),
        (
            "iat in the future",
            json!({"iat": now + 3600}),
            deny("issued_in_future"),
        ),
        // Leeway 30 s: 5 s of margin either side, so a clock tick cannot flip a case.
        (
            "exp 25 s ago (within leeway)",
            json!({"exp": now - 25, "iat": now - 100, "nbf": null}),
            pass(),
        ),
        (
            "exp 35 s ago (beyond leeway)",
            json!({"exp": now - 35, "iat": now - 100, "nbf": null}),
            deny("expired"),
        ),
        (
            "nbf in 25 s (within leeway)",
            json!({"nbf": now + 25}),
            pass(),
        ),
        (
            "nbf in 35 s (beyond leeway)",
            json!({"nbf": now + 35}),
            deny("not_yet_valid"),
        ),
        (
            "iat in 25 s (within leeway)",
            json!({"iat": now + 25}),
            pass(),
        ),
        (
            "iat in 35 s (beyond leeway)",
            json!({"iat": now + 35}),
            deny("issued_in_future"),
        ),
        (
            "iss with a trailing slash",
            json!({"iss": format!("{ISS}/")}),
            deny("unknown_issuer"),
        ),
        (
            "iss upper case",
            json!({"iss": ISS.to_ascii_uppercase()}),
            deny("unknown_issuer"),
        ),
        (
            "iss with a space",
            json!({"iss": format!("{ISS} ")}),
            deny("unknown_issuer"),
        ),
        (
            "iss as a prefix",
            json!({"iss": format!("{ISS}.evil.test")}),
            deny("unknown_issuer"),
        ),
        (
            "iss as an array",
            json!({"iss": [ISS]}),
            deny("invalid_claim"),
        ),
        ("iss missing", json!({"iss": null}), deny("invalid_claim")),
        ("aud missing", json!({"aud": null}), deny("wrong_audience")),
        ("aud empty", json!({"aud": ""}), deny("wrong_audience")),
        (
            "aud empty array",
            json!({"aud": []}),
            deny("wrong_audience"),
        ),
        (
            "aud foreign",
            json!({"aud": "https://other.api"}),
            deny("wrong_audience"),
        ),
        (
            "aud foreign array",
            json!({"aud": ["a", "b"]}),
            deny("wrong_audience"),
        ),
        (
            "aud with a trailing space",
            json!({"aud": format!("{AUD} ")}),
            deny("wrong_audience"),
        ),
        (
            "aud upper case",
            json!({"aud": AUD.to_ascii_uppercase()}),
            deny("wrong_audience"),
        ),
        (
            "aud array with a number",
            json!({"aud": [AUD, 1]}),
            deny("invalid_claim"),
        ),
        (
            "aud object",
            json!({"aud": {"aud": AUD}}),
            deny("invalid_claim"),
        ),
        (
            "aud array naming it",
            json!({"aud": ["other", AUD]}),
            pass(),
        ),
        ("sub as a number", json!({"sub": 1}), deny("invalid_claim")),
        (
            "scope as a number",
            json!({"scope": 1}),
            deny("invalid_claim"),
        ),
        // An ID token of the same issuer: its audience is the client.
        (
            "ID token",
            json!({"aud": "web-app", "nonce": "n-1", "auth_time": now, "at_hash": "x"}),
            deny("wrong_audience"),
        ),
    ] {
        cases.push(case(what, sign(es, &with(claims(), patch)), expect));
    }
    for typ in ["JWT", "at+jwt", "application/at+JWT"] {
        cases.push(case(
            format!("typ {typ}"),
            signed(es, header_of(es, json!({"typ": typ})), &claims()),
            pass(),
        ));
    }
    for typ in [
        "id_token+jwt",
        "logout+jwt",
        "dpop+jwt",
        "secevent+jwt",
        "at+jwt ",
    ] {
        cases.push(case(
            format!("typ {typ}"),
            signed(es, header_of(es, json!({"typ": typ})), &claims()),
            deny("wrong_type"),
        ));
    }
    cases
}

fn subject_is_user_1(seen: &Seen) -> Result<(), String> {
    if seen.header("x-auth-subject") != Some("user-1") {
        return Err("x-auth-subject is not the token's".into());
    }
    if seen.mentions("spoof") {
        return Err("a spoofed value reached the upstream".into());
    }
    if seen.header("x-auth-tenant") != Some("acme") {
        return Err("x-auth-tenant is not the token's".into());
    }
    Ok(())
}

fn no_raw_control_bytes(seen: &Seen) -> Result<(), String> {
    if !seen.all("x-injected").is_empty() {
        return Err("a claim value split a header".into());
    }
    if seen
        .headers
        .iter()
        .any(|(_, v)| v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f))
    {
        return Err("a control byte reached a header value".into());
    }
    Ok(())
}

/// Identity-header spoofing in every spelling, `Connection` tricks, CR/LF/NUL in claims.
fn header_cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let bearer = format!("Bearer {}", sign(es, &claims()));
    let auth = ("Authorization", bearer.as_str());
    let mut cases = Vec::new();
    for name in [
        "X-Auth-Subject",
        "x-auth-subject",
        "X-AUTH-SUBJECT",
        "x_auth_subject",
        "X_Auth-Subject",
        "x-auth_subject",
        "X-Auth-Tenant",
        "x_auth_tenant",
        "X-Auth-Anything-Else",
    ] {
        cases.push(raw_case(
            format!("spoofed {name}"),
            &[(name, "spoof-1"), auth],
            pass().seeing(subject_is_user_1),
        ));
        cases.push(raw_case(
            format!("spoofed {name}, no token"),
            &[(name, "spoof-1")],
            Expect {
                error: None,
                ..deny("missing_token")
            },
        ));
    }
    for (what, headers) in [
        (
            "spoofed twice, before and after the token",
            vec![
                ("X-Auth-Subject", "spoof-1"),
                auth,
                ("x-auth-subject", "spoof-2"),
            ],
        ),
        (
            "Connection nominates the identity headers",
            vec![
                auth,
                ("Connection", "close, X-Auth-Subject, x-auth-tenant"),
                ("X-Auth-Subject", "spoof-1"),
            ],
        ),
        (
            "Connection nominates Authorization",
            vec![auth, ("Connection", "close, authorization")],
        ),
        (
            "Connection nominates the underscore spelling",
            vec![
                auth,
                ("Connection", "close, x_auth_subject"),
                ("x_auth_subject", "spoof-1"),
            ],
        ),
        (
            "Keep-Alive and TE with a spoofed header",
            vec![
                auth,
                ("Connection", "keep-alive, te, x-auth-subject"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("X-Auth-Subject", "spoof-1"),
            ],
        ),
        (
            "Forwarded-style identity headers are not identity",
            vec![
                auth,
                ("X-Forwarded-User", "spoof-user"),
                ("X-Auth-User", "spoof-1"),
            ],
        ),
    ] {
        let check: SeenCheck = if what.starts_with("Forwarded") {
            |seen| {
                if !seen.all("x-auth-user").is_empty() {
                    return Err("x-auth-user kept".into());
                }
                if seen.header("x-auth-subject") != Some("user-1") {
                    return Err("x-auth-subject is not the token's".into());
                }
                Ok(())
            }
        } else {
            subject_is_user_1
        };
        cases.push(raw_case(what, &headers, pass().seeing(check)));
    }
    cases.push(raw_case(
        "two Authorization headers",
        &[auth, auth],
        bad_request(),
    ));
    // Claim values headed for injected headers.
    for (what, patch) in [
        ("CR/LF in sub", json!({"sub": "user\r\nX-Injected: 1"})),
        (
            "CR/LF in tenant",
            json!({"tenant": "acme\r\nX-Injected: 1"}),
        ),
        ("NUL in tenant", json!({"tenant": "acme\u{0}X-Injected: 1"})),
        ("DEL and U+2028 in sub", json!({"sub": "a\u{7f}b\u{2028}c"})),
        (
            "object tenant with CR/LF",
            json!({"tenant": {"t": "\r\nX-Injected: 1"}}),
        ),
        (
            "array tenant with CR/LF",
            json!({"tenant": ["a\r\n", "X-Injected: 1"]}),
        ),
        ("scope with CR/LF", json!({"scope": "a\r\nX-Injected:1 b"})),
    ] {
        cases.push(case(
            what,
            sign(es, &with(claims(), patch)),
            pass().seeing(no_raw_control_bytes),
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_for_their_own_reason_and_contact_nothing() {
    let table = Table::start().await;
    // Positive control of every column: a valid token passes, checks revocation once, and
    // its identity reaches the upstream.
    let mut cases = vec![case(
        "valid token",
        sign(key(Algorithm::ES256), &claims()),
        pass().seeing(subject_is_user_1),
    )];
    cases.extend(key_cases(&table.trap, &table.twin));
    cases.extend(algorithm_cases());
    cases.extend(encoding_cases());
    cases.extend(json_cases());
    cases.extend(claim_cases());
    cases.extend(header_cases());
    table.run(&cases).await;
    // Nothing in the table made the gateway stop answering.
    let r = get(&table.gw.admin_url("/healthz"), &[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_token_minted_by_the_gateway_is_not_an_access_token() {
    // The gateway's own issuer is trusted too (as for service-to-service calls through its
    // STS), with the public audience: a backend token, minted for another audience, must
    // still not pass as an access token.
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = signer_section(dir.path(), &["k1"], "k1");
    let pem = std::fs::read_to_string(dir.path().join("k1.pem")).expect("k1.pem");
    let own = SigningKey::from_pkcs8_pem(&pem, Algorithm::ES256, "k1").expect("signer key");
    let jwks_file = dir.path().join("self-jwks.json");
    std::fs::write(&jwks_file, filters::sign::jwks_document([&own]).to_string())
        .expect("write the JWKS");
    let routes = format!(
        "{signer}\n[[issuer]]\nid = \"self\"\nissuer = \"{SIGNER_ISS}\"\njwks_file = \"{}\"\naudiences = [\"{AUD}\"]\n{}{}",
        jwks_file.display(),
        exchange_route("orders", "/orders", "https://orders.internal"),
        crate::support::root_route(""),
    );
    let k = key(Algorithm::ES256);
    let env = crate::support::Env::start(&[k], "", &routes).await;
    let r = get_bearer(&env.gw.url("/orders/1"), &sign(k, &claims())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let backend = bearer_of(&env.upstream.last());
    let before = env.upstream.count();
    for path in ["/orders/1", "/other"] {
        let r = get_bearer(&env.gw.url(path), &backend).await;
        assert_denied(&r, 401, Some("invalid_token"), path);
        let id = r.header("x-request-id").expect("x-request-id");
        assert_eq!(env.gw.access_reason(id).await, "wrong_audience", "{path}");
    }
    assert_eq!(
        env.upstream.count(),
        before,
        "the backend token was forwarded"
    );
    // Positive control: a token of the gateway's issuer for the public audience passes.
    let r = get_bearer(
        &env.gw.url("/other"),
        &sign(&own, &with(claims(), json!({"iss": SIGNER_ISS}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
