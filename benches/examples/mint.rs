//! Token minting for the load harness (`benches/load/run.sh`).
//!
//! cargo run --release -p tokengate-benches --example mint -- \
//!     --out DIR [--count N] [--issuer URL] [--audience AUD] [--lifetime-secs S]
//!
//! Generates a fresh ES256 key (`kid` "es1") and RS256 key (`kid` "rs1") and writes into DIR:
//!
//! | file | content |
//! | --- | --- |
//! | `es256.key.pem`, `rs256.key.pem` | private keys, unencrypted PKCS#8 PEM (mode 0600) |
//! | `signer.key.pem` | a third ES256 key for tokengate's own `[signer]` (token exchange) |
//! | `jwks.json` | both public keys, for tokengate's `jwks_file` |
//! | `es256.token`, `rs256.token` | one long-lived token each (warm scenarios) |
//! | `es256-bad.token`, `rs256-bad.token` | the same tokens with one signature byte changed |
//! | `es256-tokens.txt` | N distinct ES256 tokens, one a line (cold scenario) |
//!
//! The public key PEM (SubjectPublicKeyInfo) HAProxy's `jwt_verify` wants is derived by the
//! driver with `openssl pkey -pubout`. Claims: `iss`, `aud`, `sub`, `jti` (distinct per token),
//! `iat`, `exp` (now + lifetime, default 4 h), `scope`; header `typ` = `at+jwt`.
//! Benchmark material only: the keys are throw-away and never leave DIR.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use filters::sign::{jwks_document, SigningKey};
use filters::Algorithm;
use serde_json::json;

struct Args {
    out: PathBuf,
    count: usize,
    issuer: String,
    audience: String,
    lifetime_secs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::new(),
        count: 100_000,
        issuer: "https://idp.bench.local".into(),
        audience: "bench-api".into(),
        lifetime_secs: 4 * 3600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--count" => args.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--issuer" => args.issuer = value()?,
            "--audience" => args.audience = value()?,
            "--lifetime-secs" => {
                args.lifetime_secs = value()?
                    .parse()
                    .map_err(|e| format!("--lifetime-secs: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(args)
}

/// Changes one character in the middle of the signature to another base64url character, so
/// the token stays well-formed (canonical base64url, right length) and only the signature
/// check fails.
fn tamper(token: &str) -> String {
    let sig_start = token.rfind('.').map_or(0, |i| i + 1);
    let pos = sig_start + (token.len() - sig_start) / 2;
    let mut bytes = token.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    fs::write(path, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    fs::create_dir_all(&args.out)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = |n: usize| {
        json!({
            "iss": args.issuer,
            "aud": args.audience,
            "sub": format!("user-{n}"),
            "jti": format!("bench-{now}-{n}"),
            "iat": now,
            "exp": now + args.lifetime_secs,
            "scope": "read write",
        })
    };

    let es = SigningKey::generate(Algorithm::ES256, "es1")?;
    let rs = SigningKey::generate(Algorithm::RS256, "rs1")?;
    write_secret(&args.out.join("es256.key.pem"), &es.to_pkcs8_pem()?)?;
    write_secret(&args.out.join("rs256.key.pem"), &rs.to_pkcs8_pem()?)?;
    let signer = SigningKey::generate(Algorithm::ES256, "gw1")?;
    write_secret(&args.out.join("signer.key.pem"), &signer.to_pkcs8_pem()?)?;
    fs::write(
        args.out.join("jwks.json"),
        serde_json::to_string_pretty(&jwks_document([&es, &rs]))?,
    )?;

    for (key, name) in [(&es, "es256"), (&rs, "rs256")] {
        let token = key.sign_jwt(Some("at+jwt"), &claims(0))?;
        fs::write(args.out.join(format!("{name}.token")), format!("{token}\n"))?;
        fs::write(
            args.out.join(format!("{name}-bad.token")),
            format!("{}\n", tamper(&token)),
        )?;
    }

    let mut list = BufWriter::new(fs::File::create(args.out.join("es256-tokens.txt"))?);
    for n in 1..=args.count {
        writeln!(list, "{}", es.sign_jwt(Some("at+jwt"), &claims(n))?)?;
    }
    list.flush()?;
    println!(
        "mint: wrote keys, jwks.json, 2 long-lived tokens and {} distinct ES256 tokens to {}",
        args.count,
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("mint: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint: {e}");
            ExitCode::FAILURE
        }
    }
}
