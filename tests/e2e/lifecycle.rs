//! Process lifecycle: start-up refusals and signal-driven shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use filters::Algorithm;
use nix::sys::signal::Signal;

use crate::support::gateway::bin;
use crate::support::http::get_bearer;
use crate::support::keys::fresh;
use crate::support::{root_route, token, Env, DEADLINE};

/// The harness configures `grace_period = "0s"` and `shutdown_timeout = "1s"`; allow that
/// plus start-up slack of a loaded 2-core machine.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_gateway_within_the_grace_period() {
    let k = fresh(Algorithm::ES256, "sigterm");
    let mut env = Env::start(&[&k], "", &root_route("")).await;
    assert_eq!(get_bearer(&env.gw.url("/"), &token(&k)).await.status, 200);
    let listen = env.gw.listen;
    let start = Instant::now();
    env.gw.signal(Signal::SIGTERM);
    let status = env.gw.wait_exit(SHUTDOWN_LIMIT).await;
    let took = start.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {SHUTDOWN_LIMIT:?} after SIGTERM; stderr:\n{}",
            env.gw.logs()
        )
    });
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; stderr:\n{}",
        env.gw.logs()
    );
    assert!(took < SHUTDOWN_LIMIT, "shutdown took {took:?}");
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "the listener outlived the process"
    );
}

#[test]
fn run_with_a_broken_config_exits_1_before_listening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:0\"\nbogus = true\n")
        .expect("write config");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run tokengate");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll tokengate") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tokengate run kept running with a broken config");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        stderr.contains(&format!("{}:3:", path.display())) && stderr.contains("bogus"),
        "{stderr}"
    );
}
