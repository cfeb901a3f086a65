//! `tokengate`: an edge gateway that enforces tokens in front of microservices.
#![forbid(unsafe_code)]

mod admin;
mod bind;
mod config;
mod demo;
mod metrics;
mod proxy;
mod reload;
mod request_id;
mod respond;
mod revoke;
mod runtime;
mod serve;
mod sts;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the proxy path allocates per request (headers,
/// buffers), and glibc's malloc/free took about 12 % of CPU in a passthrough profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tokengate",
    version,
    about = "Edge gateway that enforces tokens in front of microservices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Take the listening sockets over from a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Check a configuration file and exit: 0 when valid, 1 with file:line: key: reason.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Write a revocation to the configured Redis store (every replica sees it at once).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["jti", "family", "subject"])))]
    Revoke {
        /// Configuration file (TOML); its `[redis]` and `[revocation]` are used.
        #[arg(short, long)]
        config: PathBuf,
        /// Revoke one token by its `jti` (needs --exp).
        #[arg(long, requires = "exp")]
        jti: Option<String>,
        /// The token's `exp` (Unix seconds): the revocation lives until then.
        #[arg(long)]
        exp: Option<i64>,
        /// Revoke a refresh-token family.
        #[arg(long)]
        family: Option<String>,
        /// Revoke every token of ISSUER SUBJECT issued before now.
        #[arg(long, num_args = 2, value_names = ["ISSUER", "SUBJECT"])]
        subject: Option<Vec<String>>,
        /// TTL of a family or subject revocation (default: [revocation] default_ttl).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Write a new signing key (PKCS#8 PEM, mode 0600) for the [signer].
    Keygen {
        /// Algorithm: ES256 (default), ES384, EdDSA, RS256, PS256, ….
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Key id to use in the [signer] keys list.
        #[arg(long)]
        kid: String,
        /// Output file; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Start an echo upstream, a dev issuer and the gateway in one process, and print
    /// ready-to-paste curl commands. Needs nothing else.
    Demo {
        /// Port of the gateway (0: any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(s) => {
                println!(
                    "{}: ok ({} issuers, {} routes)",
                    config.display(),
                    s.issuers.len(),
                    s.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, upgrade } => {
            let settings = match config::load(&config) {
                Ok(s) => s,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            serve::init_logging(&settings.log);
            match serve::run(settings, upgrade) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tokengate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Revoke {
            config,
            jti,
            exp,
            family,
            subject,
            ttl,
        } => {
            match revoke::run(
                &config,
                revoke::What::from_args(jti, exp, family, subject),
                ttl.as_deref(),
            ) {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tokengate revoke: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keygen { alg, kid, out } => match keygen(&alg, &kid, &out) {
            Ok(()) => {
                println!(
                    "wrote {} ({alg}, kid {kid:?}); add it to [signer] keys",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tokengate keygen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo { port } => match demo::run(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tokengate demo: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Generates a key and writes it as PKCS#8 PEM, readable by the owner only.
fn keygen(alg: &str, kid: &str, out: &std::path::Path) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let alg = filters::Algorithm::from_name(alg)
        .ok_or_else(|| format!("unsupported algorithm {alg:?}"))?;
    let key = filters::sign::SigningKey::generate(alg, kid).map_err(|e| e.to_string())?;
    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| format!("{}: {e}", out.display()))
}
