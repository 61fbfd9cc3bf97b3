//! The `coder-fake` binary and its `/__fake` control API, over plain HTTP/1.1 on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clock::Clock as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the fake when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends one request and returns (status, body).
fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Coder-Session-Token: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Starts the binary with `args` and returns it with the URL it printed.
fn start(args: &[&str]) -> (Running, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_coder-fake"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut fake = Running(child);
    let mut line = String::new();
    BufReader::new(fake.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (fake, line.trim().to_owned())
}

#[test]
fn binary_prints_its_url_and_serves_coder_and_control_routes() {
    let (_fake, base) = start(&[
        "--listen",
        "127.0.0.1:0",
        "--token",
        "abc123-secret",
        "--premium",
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let (status, body) = request(&base, "GET", "/api/v2/entitlements", None, None);
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""template_rbac":{"enabled":true,"entitlement":"entitled"}"#),
        "{body}"
    );
    assert_eq!(request(&base, "GET", "/api/v2/users/me", None, None).0, 401);
    let (status, body) = request(
        &base,
        "GET",
        "/api/v2/users/me",
        Some("abc123-secret"),
        None,
    );
    assert_eq!(
        (status, body.contains(r#""username":"admin""#)),
        (200, true),
        "{body}"
    );

    // A bounded fault through the control API: one 502, then normal answers.
    let fault = r#"{"kind":"status","status":502,"count":1,"path_prefix":"/api/v2/organizations"}"#;
    assert_eq!(
        request(&base, "POST", "/__fake/faults", None, Some(fault)).0,
        200
    );
    let organizations = |token| request(&base, "GET", "/api/v2/organizations", Some(token), None).0;
    assert_eq!(organizations("abc123-secret"), 502);
    assert_eq!(organizations("abc123-secret"), 200);
    let unbounded = r#"{"kind":"drop","count":0}"#;
    assert_eq!(
        request(&base, "POST", "/__fake/faults", None, Some(unbounded)).0,
        400
    );

    // Control: a token and a workspace for the owner, then the state shows them and the calls.
    let (status, key) = request(
        &base,
        "POST",
        "/__fake/tokens",
        None,
        Some(r#"{"user":"admin","name":"ci"}"#),
    );
    assert_eq!(status, 200, "{key}");
    let token: serde_json::Value = serde_json::from_str(&key).unwrap();
    assert_eq!(organizations(token["token"].as_str().unwrap()), 200);
    let workspace = r#"{"user":"admin","name":"dev","running":true}"#;
    assert_eq!(
        request(&base, "POST", "/__fake/workspaces", None, Some(workspace)).0,
        200
    );
    let (status, state) = request(&base, "GET", "/__fake/state", None, None);
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["workspaces"][0]["status"], "running");
    assert_eq!(state["keys"].as_array().unwrap().len(), 2);
    let calls = state["calls"].as_array().unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c["route"] == "/api/v2/organizations" && c["status"] == 502)
    );
    assert!(
        calls
            .iter()
            .all(|c| !c["route"].as_str().unwrap().starts_with("/__fake"))
    );
}

/// Run `test` against an in-process fake with the default options, on a runtime of its own
/// (the blocking `request` runs on its blocking pool), then stop the fake.
fn with_in_process_fake(test: impl AsyncFnOnce(&coder_fake::FakeHandle)) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let fake = coder_fake::CoderFake::start(coder_fake::FakeOptions::default())
            .await
            .unwrap();
        test(&fake).await;
        fake.stop().await;
    });
}

#[test]
fn oversized_bodies_answer_413_through_the_front() {
    with_in_process_fake(async |fake| {
        let base = fake.base_url().to_owned();
        let token = fake.owner_token().to_owned();
        let big = format!(r#"{{"username":"{}"}}"#, "x".repeat(5 << 20));
        let (status, body) = tokio::task::spawn_blocking(move || {
            request(
                &base,
                "PUT",
                "/api/v2/users/me/profile",
                Some(&token),
                Some(&big),
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("too large"), "{body}");
    });
}

#[test]
fn latency_ms_delays_every_coder_request() {
    let (_fake, base) = start(&["--listen", "127.0.0.1:0", "--latency-ms", "150"]);
    for path in ["/api/v2/buildinfo", "/api/v2/users/me"] {
        let started = clock::SystemClock.instant();
        let (status, _) = request(&base, "GET", path, None, None);
        assert!(status == 200 || status == 401, "{path}: {status}");
        // A lower bound only: the added latency is a floor, never a speed target.
        assert!(
            clock::SystemClock.elapsed(started) >= Duration::from_millis(150),
            "{path} answered after {:?}",
            clock::SystemClock.elapsed(started)
        );
    }
}

#[test]
fn held_requests_wait_until_released() {
    with_in_process_fake(async |fake| {
        fake.inject(
            coder_fake::Fault::next(2, coder_fake::FaultKind::Hold).on_paths("/api/v2/buildinfo"),
        )
        .unwrap();
        let base = fake.base_url().to_owned();
        let buildinfo = |base: String| {
            tokio::task::spawn_blocking(move || {
                request(&base, "GET", "/api/v2/buildinfo", None, None).0
            })
        };
        // Released through the control API.
        let first = buildinfo(base.clone());
        fake.until_held(1).await;
        assert!(!first.is_finished());
        let release = r#"{"count":1}"#;
        let (status, _) = tokio::task::spawn_blocking({
            let base = base.clone();
            move || request(&base, "POST", "/__fake/held/release", None, Some(release))
        })
        .await
        .unwrap();
        assert_eq!(status, 204);
        assert_eq!(first.await.unwrap(), 200);
        // Released through the handle.
        let second = buildinfo(base.clone());
        fake.until_held(1).await;
        assert_eq!(fake.held(), 1);
        fake.release_held(1);
        assert_eq!(second.await.unwrap(), 200);
        assert_eq!(fake.held(), 0);
        // The fault is spent: no more holds.
        assert_eq!(buildinfo(base).await.unwrap(), 200);
    });
}
