//! Checks of `[[route]]`.

use super::*;

impl Checker<'_> {
    pub(super) fn route(
        &mut self,
        i: usize,
        r: &file::Route,
        known: &HashSet<&str>,
        server_origin: Option<&str>,
    ) -> Option<RouteSettings> {
        let k = |name: &str| format!("route[{i}].{name}");
        let before = self.errors.len();
        if r.id.is_empty()
            || !r
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            self.err(k("id"), "must be non-empty and use only letters, digits, '-', '_' and '.' (it is a metric label)");
        }
        if !r.path_prefix.starts_with('/') || filters::route::check_path(&r.path_prefix).is_err() {
            self.err(
                k("path_prefix"),
                "must start with '/' and contain no dot segments or encoded separators",
            );
        }
        let methods: Vec<String> = r.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        for (j, m) in methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                self.err(
                    format!("route[{i}].methods[{j}]"),
                    format!("{m:?} is not an HTTP method"),
                );
            }
        }
        let hosts: Vec<String> = r.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        for (j, h) in hosts.iter().enumerate() {
            let name = h.strip_prefix("*.").unwrap_or(h);
            if name.is_empty()
                || name.contains(':')
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                self.err(
                    format!("route[{i}].hosts[{j}]"),
                    format!("{h:?} is not a host name (no port; \"*.\" wildcard allowed)"),
                );
            }
        }
        let mut upstreams = Vec::new();
        for (j, u) in r.upstream.iter().enumerate() {
            if let Some(a) = self.addr(format!("route[{i}].upstream[{j}]"), u) {
                upstreams.push(a);
            }
        }
        let mut methods = methods;
        match r.kind {
            RouteKind::Proxy if r.upstream.is_empty() => {
                self.err(k("upstream"), "at least one upstream host:port is required");
            }
            RouteKind::Proxy => {}
            RouteKind::Logout => {
                if !r.upstream.is_empty() {
                    self.err(
                        k("upstream"),
                        "a logout route answers itself and has no upstream",
                    );
                }
                if r.auth != AuthMode::Required || !r.revocation {
                    self.err(
                        k("kind"),
                        "a logout route needs auth = \"required\" and revocation = true",
                    );
                }
                if methods.iter().any(|m| m != "POST") {
                    self.err(k("methods"), "a logout route only accepts POST");
                }
                methods = vec!["POST".to_string()];
            }
        }
        let exchange = match (&r.exchange, r.forward_token) {
            (Some(x), ForwardToken::Exchange) => {
                if x.audience.is_empty() {
                    self.err(k("exchange.audience"), "the backend audience is required");
                }
                let ttl = self.duration(k("exchange.ttl"), &x.ttl).unwrap_or_default();
                if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
                    self.err(k("exchange.ttl"), "must be between 1s and 1h");
                }
                Some(RouteExchangeSettings {
                    exchanger: x.exchanger.clone(),
                    audience: x.audience.clone(),
                    scopes: x.scopes.clone(),
                    ttl,
                    claims: x.claims.clone(),
                })
            }
            (None, ForwardToken::Exchange) => {
                self.err(
                    k("forward_token"),
                    "forward_token = \"exchange\" needs a [route.exchange] table",
                );
                None
            }
            (Some(_), _) => {
                self.err(
                    k("exchange"),
                    "[route.exchange] needs forward_token = \"exchange\"",
                );
                None
            }
            (None, _) => None,
        };
        if r.forward_token == ForwardToken::Exchange && r.auth != AuthMode::Required {
            self.err(
                k("forward_token"),
                "exchange needs auth = \"required\" (there must be a subject token)",
            );
        }
        if r.logout_family && r.kind != RouteKind::Logout {
            self.err(k("logout_family"), "only applies to kind = \"logout\"");
        }
        for (j, iss) in r.issuers.iter().enumerate() {
            if !known.contains(iss.as_str()) {
                self.err(
                    format!("route[{i}].issuers[{j}]"),
                    format!("no [[issuer]] has id {iss:?}"),
                );
            }
        }
        match r.auth {
            AuthMode::None => {
                if !r.issuers.is_empty()
                    || !r.require_scopes.is_empty()
                    || !r.require_claims.is_empty()
                    || !r.inject.is_empty()
                {
                    self.err(k("auth"), "auth = \"none\" cannot have issuers, require_scopes, require_claims or inject");
                }
            }
            AuthMode::Required | AuthMode::Optional => {
                if known.is_empty() {
                    self.err(k("auth"), "a route with auth needs at least one [[issuer]]");
                }
            }
        }
        let mut require_claims = Vec::new();
        for (name, v) in &r.require_claims {
            match toml_to_json(v) {
                Some(j) => require_claims.push((name.clone(), j)),
                None => self.err(
                    format!("route[{i}].require_claims.{name}"),
                    "must be a string, number, boolean or array of them",
                ),
            }
        }
        let mut inject = Vec::new();
        for (header, claim) in &r.inject {
            let h = header.to_ascii_lowercase();
            let canon = filters::headers::canonical_name(&h);
            let valid = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "is not a valid header name (letters, digits, '-')",
                );
            } else if IDENTITY_HEADERS.contains(&canon.as_str())
                || filters::headers::CREDENTIAL_HEADERS.contains(&canon.as_str())
                || [
                    "authorization",
                    "host",
                    "x-request-id",
                    "connection",
                    "content-length",
                    "transfer-encoding",
                ]
                .contains(&canon.as_str())
            {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "this header is set by the gateway and cannot be injected",
                );
            }
            if claim.is_empty() {
                self.err(
                    format!("route[{i}].inject.{header}"),
                    "claim name must not be empty",
                );
            }
            inject.push((h, claim.clone()));
        }
        let public_origin = match r.public_origin.as_deref() {
            Some(o) => self.origin(k("public_origin"), o),
            None => server_origin.map(str::to_owned),
        };
        if r.require_dpop && public_origin.is_none() && r.public_origin.is_none() {
            self.err(
                k("require_dpop"),
                "DPoP needs the public origin clients use: set public_origin here or in [server]",
            );
        }
        if r.use_dpop_nonce && !r.require_dpop {
            self.err(k("use_dpop_nonce"), "only applies with require_dpop = true");
        }
        if (r.require_dpop || !r.acr_values.is_empty() || r.max_age.is_some())
            && r.auth != AuthMode::Required
        {
            self.err(
                k("auth"),
                "require_dpop, acr_values and max_age need auth = \"required\" (otherwise a request without a token passes anonymously)",
            );
        }
        if let Some(origin) = public_origin.as_deref().filter(|_| !hosts.is_empty()) {
            let host = origin_host(origin);
            let matches = hosts.iter().any(|h| match h.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
                None => h == host,
            });
            if !matches {
                let key = if r.public_origin.is_some() {
                    k("public_origin")
                } else {
                    k("hosts")
                };
                self.err(
                    key,
                    format!("the DPoP origin's host {host:?} is not one of the route's hosts (a proof made for another host would be accepted)"),
                );
            }
        }
        let step_up = self.step_up(i, r);
        let connect_timeout = self
            .duration(k("connect_timeout"), &r.connect_timeout)
            .unwrap_or_default();
        let read_timeout = self
            .duration(k("read_timeout"), &r.read_timeout)
            .unwrap_or_default();
        if self.errors.len() > before {
            return None;
        }
        Some(RouteSettings {
            id: r.id.as_str().into(),
            kind: r.kind,
            revocation: r.revocation,
            on_store_error: r.on_store_error,
            logout_family: r.logout_family,
            exchange,
            matcher: RouteMatch {
                hosts,
                path_prefix: r.path_prefix.clone(),
                methods,
            },
            upstreams,
            auth: r.auth,
            policy: RoutePolicy::new(
                r.issuers
                    .iter()
                    .map(|s| Arc::<str>::from(s.as_str()))
                    .collect(),
                r.require_scopes.clone(),
                require_claims,
            ),
            forward_token: r.forward_token,
            inject,
            connect_timeout,
            read_timeout,
            public_origin,
            require_dpop: r.require_dpop,
            use_dpop_nonce: r.use_dpop_nonce,
            step_up,
        })
    }
}

/// The host of a normalised origin `scheme://host[:port]` (an IPv6 literal keeps its brackets).
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    match rest.find(']') {
        Some(end) if rest.starts_with('[') => &rest[..=end],
        _ => rest.split(':').next().unwrap_or(rest),
    }
}

fn toml_to_json(v: &toml::Value) -> Option<serde_json::Value> {
    Some(match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}
