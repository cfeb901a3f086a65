//! A `redis-server` per test, on an ephemeral loopback port (never a shared instance).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wait_until;

/// A `redis-server` of this test only, on an ephemeral loopback port, killed on drop.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = Redis {
            child: None,
            port,
            dir,
        };
        r.spawn().await;
        r
    }

    pub async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let addr = self.addr();
        wait_until("redis PING", || async move {
            (cmd(addr, "PING").await.as_deref() == Some("+PONG\r\n")).then_some(())
        })
        .await;
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Calls of a command since start (`INFO commandstats`).
    pub async fn calls(&self, command: &str) -> u64 {
        let info = cmd(self.addr(), "INFO commandstats")
            .await
            .unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every key (the tests' Redis is their own).
    pub async fn keys(&self) -> String {
        cmd(self.addr(), "KEYS *").await.unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one inline command and returns what arrives within a short read.
pub async fn cmd(addr: SocketAddr, line: &str) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("{line}\r\n").as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `[redis]` section pointing at `r`, with short timeouts.
pub fn redis_section(r: &Redis) -> String {
    format!(
        "\n[redis]\nurls = [\"{}\"]\ntimeout = \"200ms\"\nconnect_timeout = \"500ms\"\n",
        r.url()
    )
}
