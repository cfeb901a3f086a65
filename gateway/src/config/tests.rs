use std::path::Path;
use std::time::Duration;

use super::*;

const ISSUER: &str = r#"
[[issuer]]
id = "corp"
issuer = "https://idp.example.com"
jwks_uri = "https://idp.example.com/jwks.json"
audiences = ["api"]
"#;

const ROUTE: &str = r#"
[[route]]
id = "r"
path_prefix = "/"
upstream = ["127.0.0.1:9"]
"#;

fn check(src: &str) -> Result<Settings, Vec<ConfigError>> {
    from_str(Path::new("t.toml"), src).map_err(|e| e.0)
}

/// Asserts exactly one error at `key` whose reason contains `needle`, and returns it.
fn one_error(src: &str, key: &str, needle: &str) -> ConfigError {
    let errors = check(src).expect_err("config must be refused");
    let e = errors
        .iter()
        .find(|e| e.key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("no error for {key}: {errors:?}"));
    assert!(e.reason.contains(needle), "{e}");
    assert!(e.line.is_some(), "{e}");
    e.clone()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let s = check(&format!("{ISSUER}{ROUTE}")).unwrap();
    assert_eq!(s.server.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.server.max_token_bytes, 8192);
    assert_eq!(s.strip_prefix, "x-auth-");
    let i = &s.issuers[0];
    assert_eq!(i.policy.leeway, Duration::from_secs(30));
    assert_eq!(i.jwks.refresh, Duration::from_secs(300));
    assert_eq!(i.jwks.max_stale, Duration::from_secs(3600));
    assert_eq!(i.policy.algorithms.len(), 4);
    assert_eq!(s.routes[0].auth, AuthMode::Required);
    assert_eq!(s.routes[0].forward_token, ForwardToken::Strip);
}

#[test]
fn unknown_key_is_refused_with_its_line() {
    let e = one_error(
        &format!("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n{ISSUER}{ROUTE}"),
        "server.listen_port",
        "unknown field",
    );
    assert_eq!(e.line, Some(3));
    assert_eq!(
        e.to_string().split(':').take(2).collect::<Vec<_>>(),
        ["t.toml", "3"]
    );
}

#[test]
fn dangling_issuer_reference_is_refused() {
    let src = format!("{ISSUER}{ROUTE}issuers = [\"corp\", \"nope\"]\n");
    let e = one_error(&src, "route[0].issuers[1]", "no [[issuer]] has id \"nope\"");
    assert_eq!(e.line, Some(src.lines().count()));
}

#[test]
fn hmac_and_none_are_refused_as_algorithms() {
    for alg in ["HS256", "none", "es256"] {
        let src = format!(
            "{}\nalgorithms = [\"ES256\", \"{alg}\"]\n{ROUTE}",
            ISSUER.trim_end()
        );
        one_error(&src, "issuer[0].algorithms[1]", "is not allowed");
    }
}

#[test]
fn duplicate_ids_are_refused() {
    one_error(
        &format!("{ISSUER}{ROUTE}{ROUTE}"),
        "route[1].id",
        "duplicate id",
    );
    let second = ISSUER.replace("https://idp.example.com\"", "https://other.example.com\"");
    one_error(
        &format!("{ISSUER}{second}{ROUTE}"),
        "issuer[1].id",
        "duplicate id",
    );
    let same_iss = ISSUER.replace("id = \"corp\"", "id = \"corp2\"");
    one_error(
        &format!("{ISSUER}{same_iss}{ROUTE}"),
        "issuer[1].issuer",
        "duplicate issuer",
    );
}

#[test]
fn unparsable_durations_sizes_and_addresses_are_refused() {
    one_error(
        &format!("{}\nleeway = \"thirty\"\n{ROUTE}", ISSUER.trim_end()),
        "issuer[0].leeway",
        "not a duration",
    );
    one_error(
        &format!("[server]\nmax_token_size = \"8k\"\n{ISSUER}{ROUTE}"),
        "server.max_token_size",
        "not a size",
    );
    one_error(
        &format!("[server]\nlisten = \"localhost\"\n{ISSUER}{ROUTE}"),
        "server.listen",
        "host:port",
    );
    one_error(
        &format!("{ISSUER}{}\n", ROUTE.replace("127.0.0.1:9", "127.0.0.1")),
        "route[0].upstream[0]",
        "host:port",
    );
}

#[test]
fn exactly_one_key_source_is_required() {
    let none = ISSUER.replace("jwks_uri = \"https://idp.example.com/jwks.json\"\n", "");
    one_error(&format!("{none}{ROUTE}"), "issuer[0].id", "exactly one of");
    let two = format!("{}\ndiscovery = true\n", ISSUER.trim_end());
    one_error(&format!("{two}{ROUTE}"), "issuer[0].id", "exactly one of");
}

#[test]
fn plain_http_keys_from_a_remote_host_are_refused() {
    let src = ISSUER.replace(
        "https://idp.example.com/jwks.json",
        "http://idp.example.com/jwks.json",
    );
    one_error(&format!("{src}{ROUTE}"), "issuer[0].jwks_uri", "plain http");
    let loopback = ISSUER.replace(
        "https://idp.example.com/jwks.json",
        "http://127.0.0.1:8000/jwks.json",
    );
    assert!(check(&format!("{loopback}{ROUTE}")).is_ok());
}

#[test]
fn audiences_are_required() {
    one_error(
        &format!("{ISSUER}{ROUTE}").replace("audiences = [\"api\"]", "audiences = []"),
        "issuer[0].audiences",
        "audience",
    );
}

#[test]
fn max_stale_shorter_than_refresh_is_refused() {
    let src = format!(
        "{}\nrefresh = \"10m\"\nmax_stale = \"5m\"\n{ROUTE}",
        ISSUER.trim_end()
    );
    one_error(&src, "issuer[0].max_stale", "at least as long as refresh");
}

#[test]
fn identity_headers_cannot_be_injected() {
    let src = format!("{ISSUER}{ROUTE}[route.inject]\n\"X-Auth-Subject\" = \"email\"\n");
    one_error(&src, "route[0].inject.X-Auth-Subject", "set by the gateway");
}

#[test]
fn injected_names_are_stripped_on_every_route() {
    let src = format!("{ISSUER}{ROUTE}[route.inject]\n\"x-tenant\" = \"tenant\"\n");
    let s = check(&src).unwrap();
    assert_eq!(
        s.routes[0].inject,
        vec![("x-tenant".to_string(), "tenant".to_string())]
    );
}

#[test]
fn auth_none_cannot_carry_token_rules() {
    let src = format!("{ISSUER}{ROUTE}auth = \"none\"\nrequire_scopes = [\"a\"]\n");
    one_error(&src, "route[0].auth", "cannot have");
}

#[test]
fn route_paths_and_ids_are_checked() {
    one_error(
        &format!(
            "{ISSUER}{}",
            ROUTE.replace("path_prefix = \"/\"", "path_prefix = \"/a/../b\"")
        ),
        "route[0].path_prefix",
        "dot segments",
    );
    one_error(
        &format!("{ISSUER}{}", ROUTE.replace("id = \"r\"", "id = \"a b\"")),
        "route[0].id",
        "metric label",
    );
}

#[test]
fn a_route_table_is_required() {
    let errors = check(ISSUER).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.key.as_deref() == Some("route")
                && e.reason.contains("at least one [[route]]")),
        "{errors:?}"
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let src = format!(
        "{}\nleeway = \"x\"\nrefresh = \"y\"\n{ROUTE}issuers = [\"nope\"]\n",
        ISSUER.trim_end()
    );
    assert_eq!(check(&src).unwrap_err().len(), 3);
}

#[test]
fn secrets_come_from_the_environment_only() {
    one_error(
        &format!("[admin]\ntoken = \"hunter2hunter2hunter2\"\n{ISSUER}{ROUTE}"),
        "admin.token",
        "${ENV_NAME}",
    );
    one_error(
        &format!("[admin]\ntoken = \"${{TOKENGATE_TEST_UNSET_VAR}}\"\n{ISSUER}{ROUTE}"),
        "admin.token",
        "is not set",
    );
    std::env::set_var("TOKENGATE_TEST_SHORT_SECRET", "short");
    one_error(
        &format!("[admin]\ntoken = \"${{TOKENGATE_TEST_SHORT_SECRET}}\"\n{ISSUER}{ROUTE}"),
        "admin.token",
        "at least 16 bytes",
    );
    std::env::set_var("TOKENGATE_TEST_GOOD_SECRET", "0123456789abcdef0123");
    let s = check(&format!(
        "[admin]\ntoken = \"${{TOKENGATE_TEST_GOOD_SECRET}}\"\n{ISSUER}{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        s.admin_token.as_ref().map(Secret::expose),
        Some("0123456789abcdef0123")
    );
    assert_eq!(format!("{:?}", s.admin_token), "Some(Secret(<redacted>))");
}

#[test]
fn redis_settings_are_checked() {
    let s = check(&format!(
        "[redis]\nurls = [\"redis://127.0.0.1:6379\"]\n{ISSUER}{ROUTE}"
    ))
    .unwrap();
    let r = s.revocation.redis.unwrap();
    assert_eq!(r.timeout, Duration::from_millis(50));
    assert!(!r.cluster);
    one_error(
        &format!("[redis]\nurls = [\"http://x:1\"]\n{ISSUER}{ROUTE}"),
        "redis.urls[0]",
        "redis://",
    );
    one_error(
        &format!("[redis]\nurls = [\"redis://a:1\", \"redis://b:1\"]\n{ISSUER}{ROUTE}"),
        "redis.urls",
        "cluster = true",
    );
    one_error(
        &format!("[redis]\nurls = [\"redis://a:1\"]\ntimeout = \"10s\"\n{ISSUER}{ROUTE}"),
        "redis.timeout",
        "at most 5s",
    );
    assert!(check(&format!("{ISSUER}{ROUTE}"))
        .unwrap()
        .revocation
        .redis
        .is_none());
}

#[test]
fn revocation_defaults_interoperate_with_issuers() {
    let s = check(&format!("{ISSUER}{ROUTE}")).unwrap();
    assert_eq!(s.revocation.keys.token_prefix, "revoked:");
    assert_eq!(s.revocation.keys.family_prefix, "family:");
    assert_eq!(s.issuers[0].family_claim, "fid");
    assert!(s.issuers[0].require_jti);
    assert!(s.routes[0].revocation);
    assert_eq!(s.routes[0].on_store_error, OnStoreError::Deny);
}

#[test]
fn logout_routes_have_no_upstream_and_only_post() {
    let logout = "\n[[route]]\nid = \"logout\"\nkind = \"logout\"\npath_prefix = \"/logout\"\n";
    let s = check(&format!("{ISSUER}{ROUTE}{logout}")).unwrap();
    assert_eq!(s.routes[1].matcher.methods, vec!["POST"]);
    one_error(
        &format!("{ISSUER}{ROUTE}{logout}upstream = [\"127.0.0.1:1\"]\n"),
        "route[1].upstream",
        "no upstream",
    );
    one_error(
        &format!("{ISSUER}{ROUTE}{logout}methods = [\"GET\"]\n"),
        "route[1].methods",
        "only accepts POST",
    );
    one_error(
        &format!("{ISSUER}{ROUTE}{logout}auth = \"optional\"\n"),
        "route[1].kind",
        "auth = \"required\"",
    );
    one_error(
        &format!("{ISSUER}{ROUTE}logout_family = true\n"),
        "route[0].logout_family",
        "only applies",
    );
}

#[test]
fn dpop_and_step_up_settings_get_documented_defaults() {
    let s = check(&format!(
        "[server]\npublic_origin = \"HTTPS://API.Example.com:443\"\n{ISSUER}{ROUTE}require_dpop = true\nacr_values = [\"urn:mfa\"]\nmax_age = \"5m\"\n"
    ))
    .unwrap();
    assert_eq!(s.dpop.policy, filters::dpop::DpopPolicy::default());
    assert_eq!(s.dpop.nonce_lifetime, Duration::from_secs(300));
    assert!(s.dpop.nonce_secret.is_none());
    let r = &s.routes[0];
    assert_eq!(r.public_origin.as_deref(), Some("https://api.example.com"));
    assert!(r.require_dpop && !r.use_dpop_nonce);
    assert_eq!(
        r.step_up,
        Some(StepUp::new(
            vec!["urn:mfa".into()],
            Some(Duration::from_secs(300))
        ))
    );
    assert!(s.tls.is_none());
}

#[test]
fn a_route_origin_matching_its_hosts_is_accepted() {
    let s = check(&format!(
        "{ISSUER}{ROUTE}hosts = [\"*.example.com\"]\npublic_origin = \"https://api.example.com:8443\"\n"
    ))
    .unwrap();
    assert_eq!(
        s.routes[0].public_origin.as_deref(),
        Some("https://api.example.com:8443")
    );
}

#[test]
fn bad_dpop_and_step_up_settings_are_refused_with_their_keys() {
    let cases = [
        (
            "[dpop]\nalgorithms = [\"HS256\"]\n",
            "",
            "dpop.algorithms[0]",
            "asymmetric",
        ),
        ("[dpop]\nmax_age = \"1h\"\n", "", "dpop.max_age", "between"),
        (
            "[dpop]\nnonce_secret = \"literal\"\n",
            "",
            "dpop.nonce_secret",
            "${ENV_NAME}",
        ),
        (
            "[server]\npublic_origin = \"https://a.example/path\"\n",
            "",
            "server.public_origin",
            "origin",
        ),
        (
            "",
            "public_origin = \"ftp://a.example\"\n",
            "route[0].public_origin",
            "origin",
        ),
        (
            "",
            "require_dpop = true\n",
            "route[0].require_dpop",
            "public origin",
        ),
        (
            "",
            "use_dpop_nonce = true\n",
            "route[0].use_dpop_nonce",
            "require_dpop",
        ),
        (
            "",
            "acr_values = [\"a \\\"b\"]\n",
            "route[0].acr_values[0]",
            "quotes",
        ),
        ("", "max_age = \"0s\"\n", "route[0].max_age", "more than 0s"),
        (
            "",
            "auth = \"optional\"\nacr_values = [\"urn:mfa\"]\n",
            "route[0].auth",
            "required",
        ),
        (
            "",
            "hosts = [\"api.example.com\"]\npublic_origin = \"https://admin.example.com\"\n",
            "route[0].public_origin",
            "hosts",
        ),
        (
            "[server]\npublic_origin = \"https://x.example.com:8443\"\n",
            "hosts = [\"*.example.org\"]\n",
            "route[0].hosts",
            "hosts",
        ),
        (
            "[redis]\nurls = [\"redis://127.0.0.1:6379\"]\n",
            "require_dpop = true\nuse_dpop_nonce = true\npublic_origin = \"https://a.example\"\n",
            "route[0].use_dpop_nonce",
            "nonce_secret",
        ),
    ];
    for (top, route, key, needle) in cases {
        one_error(&format!("{top}{ISSUER}{ROUTE}{route}"), key, needle);
    }
}

#[test]
fn request_and_claim_limits_are_checked() {
    let cases = [
        ("max_claims = 0", "server.max_claims", "between"),
        ("max_claims_depth = 1", "server.max_claims_depth", "between"),
        (
            "max_header_count = 300",
            "server.max_header_count",
            "between",
        ),
        (
            "max_header_size = \"4KiB\"",
            "server.max_header_size",
            "larger than",
        ),
        (
            "max_header_size = \"1MiB\"",
            "server.max_header_size",
            "between",
        ),
    ];
    for (line, key, needle) in cases {
        one_error(&format!("[server]\n{line}\n{ISSUER}{ROUTE}"), key, needle);
    }
    let s = check(&format!("{ISSUER}{ROUTE}")).unwrap();
    assert_eq!(
        (s.server.max_header_bytes, s.server.max_header_count),
        (32 * 1024, 100)
    );
    assert_eq!((s.server.max_claims, s.server.max_claims_depth), (256, 16));
}

#[test]
fn exchanger_concurrency_cap_is_configurable_and_bounded() {
    std::env::set_var("TOKENGATE_TEST_STS_SECRET", "0123456789abcdef0123");
    let x = |extra: &str| {
        format!(
            "{ISSUER}{ROUTE}\n[[exchanger]]\nid = \"sts\"\nkind = \"remote\"\ntoken_endpoint = \"https://sts.example.com/token\"\nclient_id = \"gw\"\nclient_secret = \"${{TOKENGATE_TEST_STS_SECRET}}\"\n{extra}"
        )
    };
    let s = check(&x("")).unwrap();
    assert_eq!(s.exchangers[0].1.max_concurrent, 64);
    let s = check(&x("max_concurrent = 8\n")).unwrap();
    assert_eq!(s.exchangers[0].1.max_concurrent, 8);
    one_error(
        &x("max_concurrent = 0\n"),
        "exchanger[0].max_concurrent",
        "between",
    );
}

#[test]
fn work_stealing_defaults_to_off_for_one_thread_only() {
    let with = |server: &str| check(&format!("[server]\n{server}\n{ISSUER}{ROUTE}")).unwrap();
    assert!(!with("threads = 1").server.work_stealing);
    assert!(with("threads = 2").server.work_stealing);
    assert!(
        with("threads = 1\nwork_stealing = true")
            .server
            .work_stealing
    );
    assert!(
        !with("threads = 4\nwork_stealing = false")
            .server
            .work_stealing
    );
    one_error(
        &format!("[server]\nwork_stealing = \"yes\"\n{ISSUER}{ROUTE}"),
        "server.work_stealing",
        "invalid type",
    );
}
