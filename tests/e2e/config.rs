//! `tokengate check` and `--version`: the command-line contract.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::gateway::{bin, check, check_with_env};

/// A minimal valid configuration (nothing is fetched or bound by `check`).
const VALID: &str = r#"[server]
listen = "127.0.0.1:8080"
grace_period = "5s"

[[issuer]]
id = "main"
issuer = "https://idp.example.test"
jwks_uri = "https://idp.example.test/jwks.json"
audiences = ["api"]
algorithms = ["ES256", "RS256"]
leeway = "30s"

[[route]]
id = "orders"
path_prefix = "/orders"
upstream = ["127.0.0.1:9000"]
issuers = ["main"]
require_scopes = ["orders:read"]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A placeholder for every secret `${NAME}` the file refers to (secrets live in the
/// environment, never in the file; `check` requires them to be set).
fn placeholder_secrets(text: &str) -> Vec<(String, String)> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| {
            (
                name.to_string(),
                format!("e2e-placeholder-secret-for-{name}"),
            )
        })
        .collect()
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
        + 1
}

#[test]
fn valid_config_passes_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "valid.toml", VALID);
    let out = check(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok"), "stdout: {stdout}");
}

#[test]
fn every_example_config_in_conf_passes_check() {
    let conf = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../conf"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(conf)
        .unwrap_or_else(|e| panic!("read {}: {e}", conf.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    // The configuration docker/compose.yml runs the gateway with.
    files.push(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docker/tokengate.compose.toml"
        ))
        .to_path_buf(),
    );
    files.sort();
    assert!(
        !files.is_empty(),
        "{} has no example configuration (*.toml)",
        conf.display()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read the example");
        let out = check_with_env(&path, &placeholder_secrets(&text));
        assert!(
            out.status.success(),
            "{} fails check:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ok"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn broken_configs_fail_check_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    // (what, the broken text, the line to blame, the key named)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "unknown key",
            VALID.replace(
                "grace_period = \"5s\"",
                "grace_period = \"5s\"\nlisten_backlog = 10",
            ),
            "listen_backlog",
            "listen_backlog",
        ),
        (
            "route names a missing issuer",
            VALID.replace("issuers = [\"main\"]", "issuers = [\"mian\"]"),
            "issuers = [\"mian\"]",
            "route[0].issuers[0]",
        ),
        (
            "HMAC algorithm",
            VALID.replace(
                "algorithms = [\"ES256\", \"RS256\"]",
                "algorithms = [\"HS256\"]",
            ),
            "algorithms = [\"HS256\"]",
            "issuer[0].algorithms[0]",
        ),
        (
            "bad duration",
            VALID.replace("leeway = \"30s\"", "leeway = \"30 parsecs\""),
            "leeway = ",
            "issuer[0].leeway",
        ),
        (
            "duration without unit",
            VALID.replace("grace_period = \"5s\"", "grace_period = \"5\""),
            "grace_period",
            "server.grace_period",
        ),
    ];
    for (i, (what, text, blamed, key)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("broken-{i}.toml"), text);
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: exit status; stderr: {stderr}"
        );
        let line = line_of(text, blamed);
        let location = format!("{}:{line}:", path.display());
        assert!(
            stderr.contains(&location),
            "{what}: expected {location:?} in stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(key),
            "{what}: expected key {key:?} in stderr:\n{stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("ok"),
            "{what}: check said ok"
        );
    }
}

#[test]
fn missing_config_file_fails_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.toml"));
}

#[test]
fn version_flag_prints_the_package_version() {
    let out = Command::new(bin())
        .arg("--version")
        .output()
        .expect("run tokengate --version");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("tokengate {}", env!("CARGO_PKG_VERSION"))
    );
}

/// docker/ cannot be run here (no container engine): its own checker validates compose,
/// Prometheus and Grafana files, and that every dashboard query uses documented metrics.
#[test]
fn docker_files_pass_their_checker() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 must be installed (with PyYAML: pip install pyyaml)");
    assert!(
        out.status.success(),
        "docker/check.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
