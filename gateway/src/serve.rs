//! `tokengate run`: builds the Pingora server from the checked settings and runs it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::config::{ClientCertMode, LogSettings, Settings, TlsSettings};
use crate::metrics::Metrics;
use crate::proxy::{Gateway, Shared};
use crate::reload::Supervisor;
use crate::runtime::Runtime;

/// Whether an event may be logged whatever its level. Other crates' debug and trace output
/// is never emitted: Pingora, h2 and hyper print request headers there, `Authorization`
/// included, so only tokengate's own events may go below `info`.
fn verbose_allowed(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::INFO
        || meta.target().starts_with("tokengate")
        || meta.target().starts_with("filters")
}

/// Starts logging as configured. Safe to call once per process.
pub fn init_logging(log: &LogSettings) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let only_ours = tracing_subscriber::filter::filter_fn(verbose_allowed);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = if log.json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(only_ours)
            .boxed()
    } else {
        fmt.with_filter(only_ours).boxed()
    };
    if let Err(e) = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
    {
        eprintln!("tokengate: logging already initialised: {e}");
    }
}

fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Runs the gateway until a signal stops it.
///
/// `SIGTERM`: the listeners stop accepting at once; requests in flight get
/// `grace_period` to finish; then the runtimes are stopped, waiting at most
/// `shutdown_timeout` for their tasks.
/// The TLS listener's settings: Mozilla "intermediate" ciphers, HTTP/2 by ALPN, and client
/// certificates asked for (and verified against `client_ca`) when configured. A client
/// certificate that does not verify fails the handshake; with `client_cert = "optional"` a
/// connection without one is accepted, and certificate-bound tokens are then refused.
fn tls_settings(tls: &TlsSettings) -> Result<pingora::listeners::tls::TlsSettings, String> {
    use pingora::tls::ssl::SslVerifyMode;
    use pingora::tls::x509::X509Name;
    let path = |p: &std::path::Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: not a UTF-8 path", p.display()))
    };
    let mut t =
        pingora::listeners::tls::TlsSettings::intermediate(&path(&tls.cert)?, &path(&tls.key)?)
            .map_err(|e| format!("tls: {e}"))?;
    t.enable_h2();
    // Without a session id context OpenSSL refuses to resume sessions once peer
    // verification is on (TLS 1.2 reconnects would fail with an internal error).
    t.set_session_id_context(b"tokengate")
        .map_err(|e| format!("tls: {e}"))?;
    if let Some(ca) = &tls.client_ca {
        let mode = match tls.client_cert {
            ClientCertMode::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            ClientCertMode::Optional => SslVerifyMode::PEER,
            ClientCertMode::None => SslVerifyMode::NONE,
        };
        t.set_ca_file(ca)
            .map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
        let names = X509Name::load_client_ca_file(ca)
            .map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
        t.set_client_ca_list(names);
        t.set_verify(mode);
    }
    Ok(t)
}

pub fn run(settings: Settings, upgrade: bool) -> Result<(), String> {
    let (runtime, fresh) = Runtime::build(&settings, None).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        metrics: Metrics::new(),
        access_log: settings.log.access_log,
    });
    let s = &settings.server;
    let conf = ServerConf {
        threads: s.threads,
        work_stealing: s.work_stealing,
        // Pingora counts whole seconds: round up so "500ms" is not zero.
        grace_period_seconds: Some(whole_seconds(s.grace_period)),
        graceful_shutdown_timeout_seconds: Some(whole_seconds(s.shutdown_timeout)),
        upgrade_sock: s.upgrade_sock.clone(),
        pid_file: s.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway {
            shared: shared.clone(),
        },
        "tokengate proxy",
    );
    proxy.add_tcp(&s.listen.to_string());
    if let Some(tls) = &settings.tls {
        proxy.add_tls_with_settings(&tls.listen.to_string(), None, tls_settings(tls)?);
    }
    let supervisor = server.add_service(background_service(
        "supervisor",
        Supervisor::new(shared.clone(), settings.clone(), fresh),
    ));
    // The proxy accepts once the supervisor has made its first key fetches.
    server.add_service(proxy).add_dependency(&supervisor);

    if let Some(addr) = s.admin_listen {
        let mut admin = Service::new(
            "tokengate admin".to_string(),
            Admin {
                shared: shared.clone(),
            },
        );
        admin.add_tcp(&addr.to_string());
        server.add_service(admin);
    }
    tracing::info!(
        listen = %s.listen,
        admin = %s.admin_listen.map(|a| a.to_string()).unwrap_or_default(),
        routes = settings.routes.len(),
        issuers = settings.issuers.len(),
        config = %settings.path.display(),
        "tokengate starting"
    );
    server.run_forever()
}
