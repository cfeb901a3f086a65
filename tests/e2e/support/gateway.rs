//! The real `tokengate` binary, run with a generated configuration in a temp dir. Its
//! stdout and stderr go to files there, so tests can search the logs. Dropping a
//! [`Gateway`] kills the process.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::{http, wait_until};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tokengate")
}

/// Runs `tokengate check --config path`.
pub fn check(path: &Path) -> Output {
    check_with_env(path, &[])
}

/// Runs `tokengate check --config path` with extra environment variables.
pub fn check_with_env(path: &Path, env: &[(String, String)]) -> Output {
    Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("run tokengate check")
}

/// How to run the gateway besides its issuers and routes.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[log] level` (default `info`).
    pub level: String,
    /// Extra lines for `[server]`.
    pub server: String,
    /// `[server] grace_period` (default `"0s"`).
    pub grace_period: String,
    /// `[server] shutdown_timeout` (default `"1s"`).
    pub shutdown_timeout: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: "info".into(),
            server: String::new(),
            grace_period: "0s".into(),
            shutdown_timeout: "1s".into(),
        }
    }
}

/// Name of the stderr file of a gateway started by [`Gateway::start`].
const STDERR: &str = "stderr.log";

/// Name of the stderr file of a process started by [`Gateway::spawn_upgrade`].
const UPGRADE_STDERR: &str = "stderr-upgrade.log";

/// A running gateway.
pub struct Gateway {
    child: Child,
    /// Shared with a process started by [`Gateway::spawn_upgrade`] (same file, same socket).
    dir: Arc<TempDir>,
    /// Its stderr file in `dir`.
    stderr: &'static str,
    /// What the configuration was written with, for [`Gateway::write_config`].
    options: Options,
    /// The proxy listener.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

/// The configuration file: `[server]` and `[log]` for this temp dir and ports, then `body`.
pub fn config_text(
    dir: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
    options: &Options,
    body: &str,
) -> String {
    format!(
        r#"[server]
listen = "{listen}"
admin_listen = "{admin}"
threads = 1
grace_period = "{grace_period}"
shutdown_timeout = "{shutdown_timeout}"
upgrade_sock = "{dir}/upgrade.sock"
pid_file = "{dir}/tokengate.pid"
{server}

[log]
level = "{level}"
format = "json"
access_log = true
{body}"#,
        dir = dir.display(),
        server = options.server,
        grace_period = options.grace_period,
        shutdown_timeout = options.shutdown_timeout,
        level = options.level,
    )
}

impl Gateway {
    /// Writes the configuration, starts the gateway and waits until both listeners accept
    /// (not until its keys are loaded: see [`Gateway::wait_ready`]). Retries with other
    /// ports if one was taken meanwhile.
    pub async fn start(body: &str, options: Options) -> Gateway {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("tokengate-e2e-")
                .tempdir()
                .expect("temp dir");
            let (listen, admin) = (free_port(), free_port());
            let config = dir.path().join("tokengate.toml");
            std::fs::write(
                &config,
                config_text(dir.path(), listen, admin, &options, body),
            )
            .expect("write config");
            let stdout = File::create(dir.path().join("stdout.log")).expect("create stdout.log");
            let stderr = File::create(dir.path().join(STDERR)).expect("create stderr.log");
            let child = Command::new(bin())
                .arg("run")
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .expect("spawn tokengate");
            let mut gw = Gateway {
                child,
                dir: Arc::new(dir),
                stderr: STDERR,
                options: options.clone(),
                listen,
                admin,
            };
            match gw.wait_listening().await {
                Ok(()) => return gw,
                // Another process took a port between `free_port` and the bind: Pingora
                // retries forever, so start over on new ports (dropping `gw` kills it).
                Err(None) if attempt < ATTEMPTS => continue,
                Err(status) => panic!(
                    "tokengate did not start listening ({}); config:\n{}\nstderr:\n{}",
                    status.map_or("a port was taken".to_string(), |s| format!("exited: {s}")),
                    gw.config_text(),
                    gw.logs()
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Waits until the admin `/healthz` answers and the proxy port accepts. `Err(Some)`:
    /// the process exited first; `Err(None)`: a port is in use by someone else.
    async fn wait_listening(&mut self) -> Result<(), Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll tokengate") {
                return Err(Some(status));
            }
            // The body tells our admin listener from anything else that got the port.
            let healthy = match http::client().get(self.admin_url("/healthz")).send().await {
                Ok(r) => {
                    r.status().is_success()
                        && r.text().await.is_ok_and(|b| b.contains("\"status\""))
                }
                Err(_) => false,
            };
            if healthy && tokio::net::TcpStream::connect(self.listen).await.is_ok() {
                return Ok(());
            }
            if self.logs().contains("is in use") {
                return Err(None);
            }
            assert!(
                start.elapsed() < super::DEADLINE,
                "tokengate did not start listening in {:?}; stderr:\n{}",
                super::DEADLINE,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `/readyz` answers 200 (every issuer has keys).
    pub async fn wait_ready(&self) {
        let url = self.admin_url("/readyz");
        wait_until("/readyz to answer 200", || async {
            let r = http::client().get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    /// URL of `path` on the proxy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.stderr)).unwrap_or_default()
    }

    /// The access-log lines (JSON, target `tokengate::access`) written so far.
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "tokengate::access")
            .collect()
    }

    /// The `reason` of the access-log line of request `id`, once it is written.
    pub async fn access_reason(&self, id: &str) -> String {
        wait_until(&format!("the access log line of {id}"), || async move {
            self.access_lines()
                .into_iter()
                .find(|l| l["request_id"] == id)
                .map(|l| l["reason"].as_str().unwrap_or_default().to_string())
        })
        .await
    }

    /// Replaces the configuration file with the same `[server]` and `[log]` (ports, temp
    /// dir, options) and a new `body`. The file is written aside and renamed over the old
    /// one, so a reload never reads half of it. Send `SIGHUP` to apply it.
    pub fn write_config(&self, body: &str) {
        let text = config_text(
            self.dir.path(),
            self.listen,
            self.admin,
            &self.options,
            body,
        );
        let aside = self.dir.path().join("tokengate.toml.new");
        std::fs::write(&aside, text).expect("write the new config");
        std::fs::rename(&aside, self.config_path()).expect("replace the config");
    }

    /// Path of the `upgrade_sock` in the configuration.
    pub fn upgrade_sock(&self) -> PathBuf {
        self.dir.path().join("upgrade.sock")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `tokengate run --config <the same file> --upgrade`: a second process that
    /// waits (Pingora: about 5 s) on [`Gateway::upgrade_sock`] for this one's listening
    /// sockets, which this one sends on `SIGQUIT`. Its logs go to their own file; it waits
    /// for nothing (the ports already accept, served by this process).
    pub fn spawn_upgrade(&self) -> Gateway {
        let stdout =
            File::create(self.dir.path().join("stdout-upgrade.log")).expect("create stdout");
        let stderr = File::create(self.dir.path().join(UPGRADE_STDERR)).expect("create stderr");
        let child = Command::new(bin())
            .arg("run")
            .arg("--config")
            .arg(self.config_path())
            .arg("--upgrade")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn tokengate --upgrade");
        Gateway {
            child,
            dir: self.dir.clone(),
            stderr: UPGRADE_STDERR,
            options: self.options.clone(),
            listen: self.listen,
            admin: self.admin,
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The configuration file it runs with.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_path()).unwrap_or_default()
    }

    /// Path of the configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tokengate.toml")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http::get(&self.admin_url("/metrics"), &[]).await.body
    }

    /// The `/metrics` text once `ready` holds for it (polled, at most [`super::DEADLINE`]);
    /// the last text seen if it never does, for the caller's assertion to show.
    pub async fn metrics_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.metrics().await;
            if ready(&text) || start.elapsed() > super::DEADLINE {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The value of the sample of `name` whose labels include every `labels` pair; `None`
    /// when there is no such sample.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample(&self.metrics().await, name, labels)
    }

    /// The value of a sample once it equals `want` (polled, at most [`super::DEADLINE`]):
    /// counters updated in the logging phase lag the response by a moment.
    pub async fn metric_reaching(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: f64,
    ) -> Option<f64> {
        let text = self
            .metrics_when(|t| sample(t, name, labels) == Some(want))
            .await;
        sample(&text, name, labels)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), signal).expect("signal tokengate");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll tokengate") {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Finds a sample in Prometheus text: `name{…labels…} value`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            if matches {
                value.parse().ok()
            } else {
                None
            }
        })
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
