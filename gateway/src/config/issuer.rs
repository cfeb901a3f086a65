//! Checks of `[[issuer]]`.

use super::*;

impl Checker<'_> {
    pub(super) fn issuer(&mut self, i: usize, x: &file::Issuer) -> Option<IssuerSettings> {
        let k = |name: &str| format!("issuer[{i}].{name}");
        let before = self.errors.len();
        if x.id.is_empty() {
            self.err(k("id"), "must not be empty");
        }
        let sources = [x.discovery, x.jwks_uri.is_some(), x.jwks_file.is_some()];
        let source = match (x.discovery, &x.jwks_uri, &x.jwks_file) {
            _ if sources.iter().filter(|s| **s).count() != 1 => {
                self.err(
                    k("id"),
                    "exactly one of discovery = true, jwks_uri or jwks_file is required",
                );
                None
            }
            (true, _, _) => Some(JwksSource::Discovery),
            (_, Some(u), _) => Some(JwksSource::Uri(u.clone())),
            (_, _, Some(p)) => {
                let base = self.path.parent().unwrap_or(Path::new("."));
                let p = base.join(p);
                if !p.is_file() {
                    self.err(
                        k("jwks_file"),
                        format!("{} is not a readable file", p.display()),
                    );
                }
                Some(JwksSource::File(p))
            }
            _ => None,
        };
        if x.audiences.is_empty() || x.audiences.iter().any(String::is_empty) {
            self.err(
                k("audiences"),
                "at least one non-empty audience is required (aud is always checked)",
            );
        }
        let mut algorithms = Vec::new();
        for (j, a) in x.algorithms.iter().enumerate() {
            match Algorithm::from_name(a) {
                Some(alg) => algorithms.push(alg),
                None => self.err(
                    format!("issuer[{i}].algorithms[{j}]"),
                    format!(
                        "{a:?} is not allowed: only asymmetric algorithms ({}) are accepted; HMAC and none never are",
                        Algorithm::ALL.map(Algorithm::name).join(", ")
                    ),
                ),
            }
        }
        if x.algorithms.is_empty() {
            self.err(k("algorithms"), "at least one algorithm is required");
        }
        let leeway = self.duration(k("leeway"), &x.leeway).unwrap_or_default();
        if leeway > Duration::from_secs(300) {
            self.err(k("leeway"), "must be at most 5m");
        }
        let refresh = self.duration(k("refresh"), &x.refresh);
        let refetch_cooldown = self
            .duration(k("refetch_cooldown"), &x.refetch_cooldown)
            .unwrap_or_default();
        let max_stale = self.duration(k("max_stale"), &x.max_stale);
        let fetch_timeout = self.duration(k("fetch_timeout"), &x.fetch_timeout);
        if refresh.is_some_and(|r| r < Duration::from_secs(1)) {
            self.err(k("refresh"), "must be at least 1s");
        }
        if let (Some(r), Some(m)) = (refresh, max_stale) {
            if m < r {
                self.err(
                    k("max_stale"),
                    "must be at least as long as refresh, or keys would lapse between refreshes",
                );
            }
        }
        if fetch_timeout.is_some_and(|t| t.is_zero()) {
            self.err(k("fetch_timeout"), "must be more than 0s");
        }
        let (refresh, max_stale, fetch_timeout) = (
            refresh.unwrap_or_default(),
            max_stale.unwrap_or_default(),
            fetch_timeout.unwrap_or_default(),
        );
        let max_bytes = self.size(k("max_jwks_size"), &x.max_jwks_size);
        if x.max_keys == 0 || x.max_keys > 1024 {
            self.err(k("max_keys"), "must be between 1 and 1024");
        }
        if !(x.issuer.starts_with("https://") || x.issuer.starts_with("http://")) {
            self.err(
                k("issuer"),
                "must be the issuer's URL exactly as in the tokens' iss claim",
            );
        }
        if self.errors.len() > before {
            return None;
        }
        let jwks = JwksConfig {
            issuer: x.issuer.clone(),
            source: source?,
            algorithms: algorithms.clone(),
            refresh,
            refetch_cooldown,
            max_stale,
            fetch_timeout,
            limits: JwksLimits {
                max_bytes,
                max_keys: x.max_keys,
            },
            allow_insecure_http: x.allow_insecure_http,
        };
        if let Err(e) = jwks.check() {
            let key = if x.jwks_uri.is_some() {
                k("jwks_uri")
            } else {
                k("issuer")
            };
            self.err(key, e.to_string());
            return None;
        }
        Some(IssuerSettings {
            policy: IssuerPolicy {
                id: x.id.as_str().into(),
                issuer: x.issuer.clone(),
                audiences: x.audiences.clone(),
                algorithms,
                leeway,
                accepted_types: x.token_types.clone(),
                allow_missing_typ: x.allow_missing_typ,
            },
            jwks,
            family_claim: x.family_claim.clone(),
            require_jti: x.require_jti,
        })
    }
}
