//! Checks of the sender-constraint and step-up settings: `[dpop]`, `[tls]`,
//! `server.public_origin` and the routes' DPoP / step-up keys.

use filters::dpop::{normalize_htu, DpopPolicy};

use super::*;

/// `[dpop]`, checked.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    pub policy: DpopPolicy,
    /// Key of the server nonces; `None`: a random key per process (one replica only).
    pub nonce_secret: Option<Secret>,
    pub nonce_lifetime: Duration,
}

/// `[tls]`, checked: files exist and are readable (their contents are checked when the
/// listener is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_cert: ClientCertMode,
}

impl Checker<'_> {
    pub(super) fn dpop(&mut self, d: &file::Dpop) -> DpopSettings {
        let mut algorithms = Vec::new();
        for (i, name) in d.algorithms.iter().enumerate() {
            match Algorithm::from_name(name) {
                Some(a) => algorithms.push(a),
                None => self.err(
                    format!("dpop.algorithms[{i}]"),
                    format!("{name:?} is not an asymmetric JWS algorithm tokengate verifies"),
                ),
            }
        }
        if d.algorithms.is_empty() {
            self.err("dpop.algorithms", "at least one algorithm is required");
        }
        let max_age = self
            .duration("dpop.max_age".into(), &d.max_age)
            .unwrap_or_default();
        if max_age < Duration::from_secs(1) || max_age > Duration::from_secs(600) {
            self.err("dpop.max_age", "must be between 1s and 10m");
        }
        let leeway = self
            .duration("dpop.leeway".into(), &d.leeway)
            .unwrap_or_default();
        if leeway > Duration::from_secs(60) {
            self.err("dpop.leeway", "must be at most 60s");
        }
        let max_proof_bytes = self.size("dpop.max_proof_size".into(), &d.max_proof_size);
        if !(512..=16 * 1024).contains(&max_proof_bytes) {
            self.err("dpop.max_proof_size", "must be between 512B and 16KiB");
        }
        let nonce_lifetime = self
            .duration("dpop.nonce_lifetime".into(), &d.nonce_lifetime)
            .unwrap_or_default();
        if nonce_lifetime < Duration::from_secs(10) || nonce_lifetime > Duration::from_secs(3600) {
            self.err("dpop.nonce_lifetime", "must be between 10s and 1h");
        }
        let nonce_secret = d
            .nonce_secret
            .as_deref()
            .and_then(|s| self.secret("dpop.nonce_secret".into(), s));
        DpopSettings {
            policy: DpopPolicy {
                algorithms,
                max_age,
                leeway,
                max_proof_bytes,
            },
            nonce_secret,
            nonce_lifetime,
        }
    }

    /// A public origin `scheme://host[:port]`, normalised and without the trailing `/`.
    pub(super) fn origin(&mut self, key: String, v: &str) -> Option<String> {
        match normalize_htu(v) {
            Some(n)
                if n.ends_with('/') && n.matches('/').count() == 3 && !v.contains(['?', '#']) =>
            {
                Some(n.trim_end_matches('/').to_string())
            }
            _ => {
                self.err(
                    key,
                    "must be an origin such as \"https://api.example.com\" (http or https, no path, query or user info)",
                );
                None
            }
        }
    }

    pub(super) fn tls(&mut self, t: &file::Tls) -> Option<TlsSettings> {
        let listen = self.addr("tls.listen".into(), &t.listen);
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut file = |key: &str, name: &str| {
            let p = base.join(name);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => Some(p),
                _ => {
                    self.err(
                        format!("tls.{key}"),
                        format!("{} is not a readable file", p.display()),
                    );
                    None
                }
            }
        };
        let cert = file("cert", &t.cert);
        let key = file("key", &t.key);
        let client_ca = t.client_ca.as_deref().and_then(|c| file("client_ca", c));
        // Parse what the listener will load, so that `check` refuses what `run` would.
        use pingora::tls::pkey::PKey;
        use pingora::tls::x509::X509;
        let pem = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::read(p).ok());
        for (name, path) in [("cert", &cert), ("client_ca", &client_ca)] {
            if let Some(bytes) = pem(path) {
                if !X509::stack_from_pem(&bytes).is_ok_and(|s| !s.is_empty()) {
                    self.err(format!("tls.{name}"), "holds no PEM certificate");
                }
            }
        }
        if let Some(bytes) = pem(&key) {
            if PKey::private_key_from_pem(&bytes).is_err() {
                self.err("tls.key", "holds no PEM private key (unencrypted)");
            }
        }
        match (t.client_cert, &t.client_ca) {
            (ClientCertMode::None, Some(_)) => self.err(
                "tls.client_ca",
                "has no effect with client_cert = \"none\": set \"optional\" or \"required\"",
            ),
            (ClientCertMode::Optional | ClientCertMode::Required, None) => self.err(
                "tls.client_cert",
                "asking for client certificates needs tls.client_ca",
            ),
            _ => {}
        }
        Some(TlsSettings {
            listen: listen?,
            cert: cert?,
            key: key?,
            client_ca,
            client_cert: t.client_cert,
        })
    }

    /// The route's step-up requirement (RFC 9470).
    pub(super) fn step_up(&mut self, i: usize, r: &file::Route) -> Option<StepUp> {
        for (j, a) in r.acr_values.iter().enumerate() {
            if a.is_empty()
                || !a
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                self.err(
                    format!("route[{i}].acr_values[{j}]"),
                    "must be printable ASCII without spaces, quotes or backslashes (it is sent in a challenge)",
                );
            }
        }
        let max_age = r.max_age.as_deref().and_then(|m| {
            let d = self.duration(format!("route[{i}].max_age"), m)?;
            if d.is_zero() {
                self.err(format!("route[{i}].max_age"), "must be more than 0s");
            }
            Some(d)
        });
        let s = StepUp::new(r.acr_values.clone(), max_age);
        (!s.is_empty()).then_some(s)
    }
}
