//! The supervisor: keeps every issuer's keys fresh and reloads the configuration on
//! `SIGHUP` — parse, check, build the new runtime off the request path, fetch keys of new
//! issuers, then swap. A file that does not check is refused and the running runtime
//! keeps serving. Runs as a Pingora background service, on its own runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use filters::jwks::JwksCache;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use tokio::task::JoinHandle;

use crate::config::{self, Settings};
use crate::proxy::Shared;
use crate::runtime::{Fresh, Runtime, StoreSlot};

/// Background refresh task of one key cache.
struct Refresher {
    cache: Arc<JwksCache>,
    task: JoinHandle<()>,
}

/// Owns the refresh tasks and performs reloads.
pub struct Supervisor {
    shared: Arc<Shared>,
    path: PathBuf,
    /// The settings the running runtime was built from (for what cannot change live).
    settings: Mutex<Settings>,
    /// What the start-time runtime needs started, taken when the service starts.
    initial: Mutex<Fresh>,
}

/// Creates the Redis store of a slot. It is created here, on the supervisor's runtime
/// (which lives as long as the process), so its connection tasks run there; it connects
/// lazily and reconnects by itself, so Redis may be down at start or later: checks then
/// fail and routes apply `on_store_error` until it answers again.
fn connect_store(slot: &StoreSlot, keys: filters::revocation::KeyScheme) {
    let Some(r) = slot.redis.clone() else { return };
    let cfg = filters::revocation::RedisConfig {
        urls: r.urls,
        cluster: r.cluster,
        timeout: r.timeout,
        connect_timeout: r.connect_timeout,
        keys,
    };
    match filters::revocation::RedisStore::connect_lazy(cfg) {
        Ok(store) => {
            slot.set(Box::new(store));
            tracing::info!(cluster = r.cluster, "revocation store configured (Redis)");
        }
        // Only a configuration the checker let through but the client refuses gets here.
        Err(e) => {
            tracing::error!(error = %e, "cannot create the Redis revocation store; checks will fail")
        }
    }
}

impl Supervisor {
    pub fn new(shared: Arc<Shared>, settings: Settings, initial: Fresh) -> Self {
        Supervisor {
            shared,
            path: settings.path.clone(),
            settings: Mutex::new(settings),
            initial: Mutex::new(initial),
        }
    }

    /// Starts what a new runtime needs: store connection (in the background) and keys.
    async fn start_fresh(&self, fresh: Fresh, refreshers: &mut Vec<Refresher>) {
        if let Some(slot) = fresh.store {
            connect_store(&slot, self.shared.runtime.load().revocation.keys.clone());
        }
        Self::start_caches(fresh.caches, refreshers).await;
    }

    /// Fetches the keys of new caches once (concurrently, each bounded by its fetch
    /// timeout), then starts their background refreshers.
    async fn start_caches(caches: Vec<Arc<JwksCache>>, refreshers: &mut Vec<Refresher>) {
        let mut fetches = tokio::task::JoinSet::new();
        for c in &caches {
            let c = c.clone();
            fetches.spawn(async move {
                if let Err(e) = c.refresh().await {
                    tracing::warn!(issuer = %c.config().issuer, error = %e, "key fetch failed; retrying in the background");
                }
            });
        }
        while fetches.join_next().await.is_some() {}
        for cache in caches {
            let c = cache.clone();
            let task = tokio::spawn(async move { c.run_refresher().await });
            refreshers.push(Refresher { cache, task });
        }
    }

    /// Reloads the configuration file. On any error the running runtime stays.
    async fn reload(&self, refreshers: &mut Vec<Refresher>) -> Result<(), String> {
        let path = self.path.clone();
        // Reading the file and resolving upstream names block: off the async threads.
        let settings = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?
            .map_err(|errors| errors.to_string())?;
        let restart_needed = self
            .settings
            .lock()
            .map(|old| restart_only_changes(&old, &settings))
            .unwrap_or_default();
        for what in restart_needed {
            tracing::warn!(
                setting = what,
                "changed in the file but only takes effect after a restart"
            );
        }
        let old = self.shared.runtime.load_full();
        let (runtime, fresh) = Runtime::build(&settings, Some(&old)).map_err(|e| e.to_string())?;
        if let Some(slot) = &fresh.store {
            connect_store(slot, settings.revocation.keys.clone());
        }
        Self::start_caches(fresh.caches, refreshers).await;
        self.shared.runtime.store(Arc::new(runtime));
        // Stop refreshing caches the new runtime no longer uses.
        let live = self.shared.runtime.load();
        refreshers.retain(|r| {
            let used = live.issuers.iter().any(|i| Arc::ptr_eq(&i.jwks, &r.cache));
            if !used {
                r.task.abort();
            }
            used
        });
        if let Ok(mut s) = self.settings.lock() {
            // Keep the start-time server settings: they describe what is really running.
            let server = s.server.clone();
            *s = settings;
            s.server = server;
        }
        Ok(())
    }
}

/// Settings that a reload cannot apply (listeners, threads, logging).
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    let mut v = Vec::new();
    if o.listen != n.listen {
        v.push("server.listen");
    }
    if o.admin_listen != n.admin_listen {
        v.push("server.admin_listen");
    }
    if o.threads != n.threads {
        v.push("server.threads");
    }
    if o.work_stealing != n.work_stealing {
        v.push("server.work_stealing");
    }
    if old.tls != new.tls {
        v.push("tls");
    }
    if old.log.level != new.log.level
        || old.log.json != new.log.json
        || old.log.access_log != new.log.access_log
    {
        v.push("log");
    }
    v
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[async_trait]
impl BackgroundService for Supervisor {
    /// Installs the SIGHUP handler first (SIGHUP's default action would end the process),
    /// then fetches every issuer's keys once — each attempt bounded by the issuer's
    /// `fetch_timeout`, success or not — and only then reports ready: the proxy service
    /// depends on it, so a new process (start or zero-downtime upgrade) accepts requests
    /// with keys in hand rather than answering 503 while they load.
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; configuration reload disabled");
                None
            }
        };
        let mut refreshers = Vec::new();
        let initial = self
            .initial
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        self.start_fresh(initial, &mut refreshers).await;
        self.shared.metrics.config_loaded(unix_now_f64());
        ready.notify_ready();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    match self.reload(&mut refreshers).await {
                        Ok(()) => {
                            self.shared.metrics.reload_result(true, unix_now_f64());
                            tracing::info!(config = %self.path.display(), "configuration reloaded");
                        }
                        Err(e) => {
                            self.shared.metrics.reload_result(false, unix_now_f64());
                            for line in e.lines() {
                                tracing::error!(error = line, "configuration reload refused; the running configuration stays");
                            }
                        }
                    }
                }
            }
        }
        for r in refreshers {
            r.task.abort();
        }
    }

    async fn start(&self, _shutdown: ShutdownWatch) {
        // Pingora calls `start_with_ready_notifier`; this is never reached.
    }
}
