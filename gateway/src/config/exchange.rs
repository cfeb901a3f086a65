//! Checks of `[signer]`, `[[exchanger]]` and `[sts]`: token exchange and the STS.

use super::*;

impl SignerSettings {
    /// Loads the keys and builds the signer.
    pub fn load(&self) -> Result<filters::exchange::LocalSigner, String> {
        let mut keys = Vec::new();
        for (kid, alg, path) in &self.keys {
            let pem =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = filters::sign::SigningKey::from_pkcs8_pem(&pem, *alg, kid.clone())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            keys.push(key);
        }
        let signer = filters::exchange::LocalSigner::new(self.issuer.clone(), keys, &self.active)
            .map_err(|e| e.to_string())?;
        Ok(match &self.actor {
            Some(a) => signer.with_actor(a.clone()),
            None => signer,
        })
    }
}

impl Checker<'_> {
    pub(super) fn sts(&mut self, s: &file::Sts, has_signer: bool) -> Option<StsSettings> {
        let before = self.errors.len();
        if !has_signer {
            self.err("sts", "the STS mints with the [signer]: configure one");
        }
        if !s.path.starts_with('/') || filters::route::check_path(&s.path).is_err() {
            self.err("sts.path", "must be a path starting with '/'");
        }
        let ttl = self.duration("sts.ttl".into(), &s.ttl).unwrap_or_default();
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
            self.err("sts.ttl", "must be between 1s and 1h");
        }
        let mut clients = Vec::new();
        for (i, c) in s.clients.iter().enumerate() {
            if c.id.is_empty() || c.id.contains(':') {
                self.err(
                    format!("sts.client[{i}].id"),
                    "must be non-empty and without ':'",
                );
            }
            if let Some(secret) = self.secret(format!("sts.client[{i}].secret"), &c.secret) {
                clients.push(StsClientSettings {
                    id: c.id.clone(),
                    secret,
                    audiences: c.audiences.clone(),
                    scopes: c.scopes.clone(),
                });
            }
        }
        self.unique(s.clients.iter().map(|c| c.id.as_str()), "sts.client", "id");
        if s.clients.is_empty() {
            self.err("sts", "at least one [[sts.client]] is required");
        }
        (self.errors.len() == before).then(|| StsSettings {
            path: s.path.clone(),
            ttl,
            clients,
        })
    }

    pub(super) fn signer(&mut self, s: &file::Signer) -> Option<SignerSettings> {
        let before = self.errors.len();
        if !(s.issuer.starts_with("https://") || s.issuer.starts_with("http://")) {
            self.err(
                "signer.issuer",
                "must be a URL: the iss of the tokens tokengate mints",
            );
        }
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut keys = Vec::new();
        for (i, k) in s.keys.iter().enumerate() {
            let Some(alg) = Algorithm::from_name(&k.alg) else {
                self.err(
                    format!("signer.keys[{i}].alg"),
                    format!("{:?} is not a supported algorithm", k.alg),
                );
                continue;
            };
            keys.push((k.kid.clone(), alg, base.join(&k.file)));
        }
        if s.keys.is_empty() {
            self.err(
                "signer.keys",
                "at least one key is required (tokengate keygen writes one)",
            );
        }
        if let Some(p) = &s.public_jwks_path {
            if !p.starts_with('/') || filters::route::check_path(p).is_err() {
                self.err(
                    "signer.public_jwks_path",
                    "must be a path starting with '/'",
                );
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let settings = SignerSettings {
            issuer: s.issuer.clone(),
            keys,
            active: s.active.clone(),
            actor: s.actor.clone(),
            public_jwks_path: s.public_jwks_path.clone(),
        };
        // Load once now, so that a bad key file fails `check`, not the first request.
        if let Err(e) = settings.load() {
            self.err("signer.keys", e);
            return None;
        }
        Some(settings)
    }

    pub(super) fn exchanger(
        &mut self,
        i: usize,
        x: &file::Exchanger,
    ) -> Option<(String, RemoteStsConfig)> {
        let k = |name: &str| format!("exchanger[{i}].{name}");
        let before = self.errors.len();
        if x.id.is_empty() || x.id == "local" {
            self.err(
                k("id"),
                "must be non-empty and not \"local\" (the [signer])",
            );
        }
        let secret = self.secret(k("client_secret"), &x.client_secret);
        let timeout = self.duration(k("timeout"), &x.timeout).unwrap_or_default();
        if self.errors.len() > before {
            return None;
        }
        let file::ExchangerKind::Remote = x.kind;
        let mut cfg =
            RemoteStsConfig::new(x.token_endpoint.clone(), x.client_id.clone(), secret?.0);
        cfg.auth = match x.auth {
            file::ClientAuthFile::ClientSecretBasic => ClientAuth::Basic,
            file::ClientAuthFile::ClientSecretPost => ClientAuth::Post,
        };
        cfg.timeout = timeout;
        cfg.allow_insecure_http = x.allow_insecure_http;
        if !(1..=4096).contains(&x.max_concurrent) {
            self.err(k("max_concurrent"), "must be between 1 and 4096");
            return None;
        }
        cfg.max_concurrent = x.max_concurrent;
        if let Err(e) = cfg.check() {
            self.err(k("token_endpoint"), e.to_string());
            return None;
        }
        Some((x.id.clone(), cfg))
    }
}
