//! The floor under tokengate's pass-through: a Pingora 0.9 reverse proxy with no hooks but
//! `upstream_peer`, built the way tokengate builds its server (one thread, no work stealing,
//! mimalloc, the same peer timeouts). The load harness measures it beside nginx and tokengate
//! so that the framework's own per-request cost is in the same table.
//!
//!   bare_proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N]
//!
//! Stops at once on SIGINT, and on SIGTERM after Pingora's (zero) grace period.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        peer.options.read_timeout = Some(Duration::from_secs(30));
        peer.options.write_timeout = Some(Duration::from_secs(30));
        Ok(Box::new(peer))
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy --listen ADDR --upstream ADDR [--threads N]";
    let (Some(listen), Some(upstream)) = (arg(&args, "--listen"), arg(&args, "--upstream")) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("bare_proxy: --upstream must be IP:PORT\n{usage}");
        std::process::exit(2);
    };
    let threads = match arg(&args, "--threads").map(|t| t.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("bare_proxy: --threads must be a positive integer\n{usage}");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads,
        work_stealing: threads > 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
