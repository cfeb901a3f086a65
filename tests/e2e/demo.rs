//! `tokengate demo`, as a newcomer runs it: start it, paste the printed curl lines, see
//! 200 / 401 / 401 / 401.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::get;

/// One printed `curl` line: the bearer token (if any) and the URL.
fn parse_curl(line: &str) -> (Option<String>, String) {
    let token = line
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .map(str::to_owned);
    let url = line
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    (token, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_curl_lines_that_answer_200_then_401() {
    let mut child = Command::new(crate::support::gateway::bin())
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tokengate demo");
    let stdout = child.stdout.take().expect("demo stdout");
    // Read what the demo prints until its last line, on a thread (blocking reads).
    let lines = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("Press Ctrl-C");
            lines.push(line);
            if done || Instant::now() > deadline || lines.len() > 200 {
                break;
            }
        }
        lines
    })
    .await
    .expect("read the demo's output");
    let curls: Vec<&String> = lines.iter().filter(|l| l.starts_with("curl -si")).collect();
    assert_eq!(
        curls.len(),
        4,
        "the demo prints four request lines:\n{}",
        lines.join("\n")
    );
    let mut statuses = Vec::new();
    for line in &curls {
        let (token, url) = parse_curl(line);
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        // The gateway may still be starting when the lines are printed: poll briefly.
        let r = crate::support::wait_until("the demo gateway to answer", || {
            let (url, headers) = (url.clone(), headers.clone());
            async move {
                let r = crate::support::http::client()
                    .get(&url)
                    .headers(
                        headers
                            .iter()
                            .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
                            .collect(),
                    )
                    .send()
                    .await
                    .ok()?;
                Some(r.status().as_u16())
            }
        })
        .await;
        statuses.push(r);
    }
    assert_eq!(
        statuses,
        [200, 401, 401, 401],
        "valid, expired, tampered, none"
    );
    // The valid one shows the identity the upstream received.
    let (token, url) = parse_curl(curls[0]);
    let body = get(
        &url,
        &[(
            "authorization",
            &format!("Bearer {}", token.unwrap_or_default()),
        )],
    )
    .await
    .body;
    assert!(body.contains("\"x-auth-subject\":\"alice\""), "{body}");
    assert!(
        !body.contains("authorization"),
        "the token reached the echo upstream: {body}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
