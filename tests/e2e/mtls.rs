//! Certificate-bound tokens (RFC 8705) end to end, over the gateway's TLS listener with a
//! real TLS client (reqwest + rustls) and certificates made for the test (rcgen).

use std::net::SocketAddr;
use std::path::Path;

use aws_lc_rs::digest;
use filters::Algorithm;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

use crate::support::keys::b64;
use crate::support::{
    claims, issuer_toml, key, root_route, sign, with, Gateway, JwksServer, Options, Upstream,
};

/// A CA and what it signs.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate: (certificate PEM, key PEM, SHA-256 of its DER).
    fn leaf(&self, name: &str, sans: &[&str]) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let thumb = digest::digest(&digest::SHA256, cert.der())
            .as_ref()
            .to_vec();
        (cert.pem(), key.serialize_pem(), thumb)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a test file");
    p.display().to_string()
}

/// A TLS client trusting `ca`, presenting `identity` (certificate + key PEM) when given.
fn tls_client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")]);
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}\n{key}");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("TLS client")
}

struct Fixture {
    _jwks: JwksServer,
    upstream: Upstream,
    gw: Gateway,
    tls: SocketAddr,
    _dir: tempfile::TempDir,
    ca: Ca,
    client: (String, String, Vec<u8>),
}

async fn start(mode: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("tokengate test CA");
    let (server_cert, server_key, _) = ca.leaf("gateway", &["127.0.0.1", "localhost"]);
    let client = ca.leaf("client-a", &[]);
    let cert = write(dir.path(), "server.pem", &server_cert);
    let key_file = write(dir.path(), "server.key", &server_key);
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem);
    let issuer = key(Algorithm::ES256);
    let jwks = JwksServer::start(&[issuer]).await;
    let upstream = Upstream::start().await;
    let probe = tls_client(&ca.cert_pem, Some((&client.0, &client.1)));
    // The TLS port is picked free and released, so another process may take it before the
    // gateway binds it: retry until our gateway answers on it (its refusal of an empty token).
    for attempt in 1..=3 {
        let tls = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let body = format!(
            "\n[tls]\nlisten = \"{tls}\"\ncert = \"{cert}\"\nkey = \"{key_file}\"\nclient_ca = \"{ca_file}\"\nclient_cert = \"{mode}\"\n{}{}",
            issuer_toml("main", &jwks.uri(), ""),
            root_route("").replace("{up}", &upstream.addr().to_string()),
        );
        let mut gw = Gateway::start(&body, Options::default()).await;
        gw.wait_ready().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = String::new();
        while std::time::Instant::now() < deadline && gw.running() {
            match get_tls(&probe, tls, "").await {
                Ok((400 | 401, body)) if body.contains("error_description") => {
                    return Fixture {
                        _jwks: jwks,
                        upstream,
                        gw,
                        tls,
                        _dir: dir,
                        ca,
                        client,
                    }
                }
                other => last = format!("{other:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        eprintln!(
            "TLS listener attempt {attempt} on {tls} did not answer: {last}\n{}",
            gw.logs()
        );
    }
    panic!("the TLS listener never answered");
}

/// `GET /orders` over TLS with `token`; `Err` (the client's error) when the TLS handshake or
/// the request failed.
async fn get_tls(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
) -> Result<(u16, String), String> {
    let r = client
        .get(format!("https://127.0.0.1:{}/orders", addr.port()))
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-client-cert", "Hash=spoofed")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_token_needs_the_same_certificate_on_the_connection() {
    let f = start("optional").await;
    let (cert, key_pem, thumb) = &f.client;
    let token = sign(
        key(Algorithm::ES256),
        &with(claims(), json!({"cnf": {"x5t#S256": b64(thumb)}})),
    );
    let right = tls_client(&f.ca.cert_pem, Some((cert, key_pem)));
    let (status, body) = get_tls(&right, f.tls, &token).await.expect("TLS request");
    assert_eq!(status, 200, "{body}");
    let seen = f.upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
    assert_eq!(
        seen.header("x-forwarded-client-cert"),
        None,
        "client-sent certificate headers are stripped"
    );

    // Another certificate of the same CA: the handshake succeeds, the binding does not.
    let (other_cert, other_key, _) = f.ca.leaf("client-b", &[]);
    let other = tls_client(&f.ca.cert_pem, Some((&other_cert, &other_key)));
    let (status, body) = get_tls(&other, f.tls, &token).await.expect("TLS request");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_token"), "{body}");

    // No certificate at all (optional mode lets the connection in).
    let none = tls_client(&f.ca.cert_pem, None);
    let (status, _) = get_tls(&none, f.tls, &token).await.expect("TLS request");
    assert_eq!(status, 401);

    // The plain listener, with a spoofed certificate header naming the right thumbprint.
    let r = crate::support::http::get(
        &f.gw.url("/orders"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-forwarded-client-cert", &format!("Hash={}", b64(thumb))),
            ("client-cert", &format!(":{}:", b64(cert.as_bytes()))),
        ],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(
        f.gw.metric_reaching(
            "tokengate_denials_total",
            &[("route", "api"), ("reason", "certificate_mismatch")],
            3.0
        )
        .await,
        Some(3.0)
    );

    // Unbound tokens work on both listeners, with or without a certificate.
    let plain = sign(key(Algorithm::ES256), &claims());
    let (status, _) = get_tls(&none, f.tls, &plain).await.expect("TLS request");
    assert_eq!(status, 200);
    assert_eq!(f.upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_clients_resume_their_sessions_with_a_client_certificate() {
    let f = start("optional").await;
    let (cert, key_pem, _) = &f.client;
    let pem = format!("{cert}\n{key_pem}");
    // A new connection per request, TLS 1.2: the second handshake resumes the session.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .tls_certs_only([reqwest::Certificate::from_pem(f.ca.cert_pem.as_bytes()).expect("CA")])
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
        .build()
        .expect("TLS client");
    let token = sign(key(Algorithm::ES256), &claims());
    for i in 0..3 {
        let r = get_tls(&client, f.tls, &token).await;
        assert_eq!(r.map(|(s, _)| s), Ok(200), "request {i}:\n{}", f.gw.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_an_unknown_ca_fail_the_handshake_and_required_mode_needs_one() {
    let f = start("required").await;
    let (cert, key_pem, _) = &f.client;
    let token = sign(key(Algorithm::ES256), &claims());
    let good = tls_client(&f.ca.cert_pem, Some((cert, key_pem)));
    let (status, body) = get_tls(&good, f.tls, &token).await.expect("TLS request");
    assert_eq!(status, 200, "{body}");

    let none = tls_client(&f.ca.cert_pem, None);
    assert!(
        get_tls(&none, f.tls, &token).await.is_err(),
        "required mode accepts no connection without a certificate"
    );
    let rogue_ca = Ca::new("rogue CA");
    let (rogue_cert, rogue_key, _) = rogue_ca.leaf("client-a", &[]);
    let rogue = tls_client(&f.ca.cert_pem, Some((&rogue_cert, &rogue_key)));
    assert!(get_tls(&rogue, f.tls, &token).await.is_err());
    assert_eq!(f.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_tls_settings_that_cannot_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokengate.toml");
    std::fs::write(
        &path,
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"missing.pem\"\nkey = \"missing.key\"\nclient_cert = \"required\"\n{}{}",
            issuer_toml("main", "http://127.0.0.1:1/jwks", ""),
            root_route("require_dpop = true").replace("{up}", "127.0.0.1:1"),
        ),
    )
    .expect("write config");
    let out = crate::support::gateway::check(&path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "tls.cert",
        "tls.key",
        "tls.client_cert",
        "route[0].require_dpop",
    ] {
        assert!(err.contains(key), "{key} not named in:\n{err}");
    }
    // Files that exist but hold no certificate or key.
    write(dir.path(), "missing.pem", "not a certificate");
    write(
        dir.path(),
        "missing.key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let out = crate::support::gateway::check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.cert: holds no PEM certificate"), "{err}");
    assert!(err.contains("tls.key: holds no PEM private key"), "{err}");
}
