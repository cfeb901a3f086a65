//! Real `redis-server` processes for the tests: ephemeral loopback ports, a temporary
//! directory, no persistence, killed on drop. Never the instance on 6379.
//!
//! A missing `redis-server` fails the tests (it does not skip them): CI installs Redis.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a server may take to answer PING after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Spawn attempts on fresh ports (another process may take a port between pick and bind).
const START_ATTEMPTS: usize = 5;

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A free loopback port (bound then released), never 6379.
pub fn free_port() -> u16 {
    for _ in 0..32 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
    panic!("no free ephemeral port other than 6379");
}

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// A standalone server on a fresh port.
    pub async fn start() -> RedisServer {
        Self::start_with(|_| Vec::new()).await
    }

    /// A server with extra arguments, computed from its port and directory.
    pub async fn start_with(extra: impl Fn(&ServerSpot) -> Vec<String>) -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let spot = ServerSpot::new();
            let mut server = RedisServer {
                child: None,
                port: spot.port,
                extra: extra(&spot),
                dir: spot.dir,
            };
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// A standalone server on the given port (one attempt).
    pub async fn start_on(port: u16) -> RedisServer {
        let mut spot = ServerSpot::new();
        spot.port = port;
        let mut server = RedisServer {
            child: None,
            port,
            extra: Vec::new(),
            dir: spot.dir,
        };
        if let Err(e) = server.spawn_and_wait().await {
            panic!("redis-server did not start on port {port}: {e}");
        }
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (to stop or continue it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server (SIGKILL, as in a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                // The old socket may linger briefly; retry on the same port within the deadline.
                Err(e) if Instant::now() > deadline => panic!("redis-server restart failed: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends a signal with `kill(1)` (`STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{signal} failed");
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(self.dir.display().to_string());
        args.push("--logfile".into());
        args.push(self.log_path().display().to_string());
        args.extend(self.extra.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not on PATH). These tests need a real Redis and \
                 do not skip: install it (e.g. `apt-get install redis-server`)."
            ),
            Err(e) => panic!("cannot spawn redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited ({status}); log: {}",
                        self.port,
                        self.log_tail()
                    ));
                }
            }
            if ping(self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {START_DEADLINE:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a server will run: its port and its own temporary directory.
pub struct ServerSpot {
    pub port: u16,
    pub dir: PathBuf,
}

impl ServerSpot {
    fn new() -> ServerSpot {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "tokengate-redis-{}-{}-{port}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        ServerSpot { port, dir }
    }
}

/// Whether a server answers `PING` on `port` (raw RESP, bounded by a short timeout).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

/// A plain connection for assertions (not the store under test).
pub async fn admin(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// A 3-master Redis Cluster (no replicas).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                RedisServer::start_with(|spot| {
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        spot.dir
                            .join(format!("nodes-{}.conf", spot.port))
                            .display()
                            .to_string(),
                        // The bus port defaults to port + 10000, which may be taken or > 65535.
                        "--cluster-port".into(),
                        free_port().to_string(),
                        "--cluster-node-timeout".into(),
                        "5000".into(),
                    ]
                })
                .await,
            );
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output =
            tokio::task::spawn_blocking(move || run_bounded(create, Duration::from_secs(60)))
                .await
                .expect("join redis-cli");
        if let Err(e) = output {
            panic!("redis-cli --cluster create failed: {e}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            let mut conn = admin(node.port).await;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER INFO");
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster did not reach cluster_state:ok: {info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The port of the master serving `key`, from `CLUSTER KEYSLOT` and `CLUSTER SLOTS`.
    pub async fn master_of(&self, key: &str) -> u16 {
        let mut conn = admin(self.nodes[0].port).await;
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .expect("CLUSTER SLOTS")
            .into_iter()
            .map(|range| {
                let redis::Value::Array(items) = range else {
                    panic!("CLUSTER SLOTS entry is not an array")
                };
                let start: i64 = redis::from_redis_value(items[0].clone()).expect("start");
                let end: i64 = redis::from_redis_value(items[1].clone()).expect("end");
                let redis::Value::Array(master) = &items[2] else {
                    panic!("CLUSTER SLOTS master is not an array")
                };
                let host: String = redis::from_redis_value(master[0].clone()).expect("host");
                let port: i64 = redis::from_redis_value(master[1].clone()).expect("port");
                (start, end, (host, port))
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("slot is covered");
        u16::try_from(port).expect("port")
    }
}

/// Runs `cmd` to completion within `limit`, killing it otherwise.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<(), String> {
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "redis-cli is not installed (not on PATH); install Redis".to_string()
        } else {
            e.to_string()
        }
    })?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let output = child.wait_with_output().map_err(|e| e.to_string())?;
            return if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{status}: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
