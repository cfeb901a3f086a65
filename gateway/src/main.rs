//! `tokengate`: an edge gateway that enforces tokens in front of microservices.
#![forbid(unsafe_code)]

mod admin;
mod config;
mod demo;
mod metrics;
mod proxy;
mod reload;
mod respond;
mod runtime;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        Command::Demo { port } => match demo::run(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tokengate demo: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
