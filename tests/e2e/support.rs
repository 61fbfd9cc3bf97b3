//! Boots the real `scim-bridge` binary on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, and drives it over HTTP.

use clock::Clock as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_scim-bridge");

pub use test_support::{Backend as Db, TestDatabase};

/// The databases this machine runs the suite on: SQLite always, PostgreSQL when the test script
/// found it (`SCIM_BRIDGE_TEST_POSTGRES_URL`, which then must be reachable).
pub fn available() -> Vec<Db> {
    let mut dbs = vec![Db::Sqlite];
    if test_support::postgres_configured().is_some() {
        dbs.push(Db::Postgres);
    } else {
        eprintln!("SCIM_BRIDGE_TEST_POSTGRES_URL is not set: PostgreSQL variants are NOT run");
    }
    dbs
}

/// A fresh database on `db`, dropped with the guard.
pub async fn fresh_database(db: &Db) -> TestDatabase {
    TestDatabase::new(*db)
        .await
        .expect("PostgreSQL is only among the available databases when it is configured")
}

/// The settings that point a bridge at the Coder fake `fake` as its owner, unthrottled.
pub fn coder_fake_env(fake: &coder_fake::FakeHandle) -> Vec<(String, String)> {
    vec![
        ("SCIM_BRIDGE_CODER_URL".into(), fake.base_url().to_string()),
        (
            "SCIM_BRIDGE_CODER_TOKEN".into(),
            fake.owner_token().to_string(),
        ),
        ("SCIM_BRIDGE_CODER_RATE_LIMIT".into(), "1000".into()),
    ]
}

/// Runs a CLI subcommand to completion and returns its stdout.
pub fn cli(envs: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run scim-bridge")
}

/// Runs the binary with only `envs`; `None` if it is still running after `limit` (then killed).
pub fn run_bounded(
    envs: &[(String, String)],
    args: &[&str],
    limit: Duration,
) -> Option<(i32, String)> {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = clock::SystemClock.instant() + limit;
    while child.try_wait().unwrap().is_none() {
        if clock::SystemClock.instant() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code().unwrap_or(-1), text))
}

/// A CLI run against a fresh, migrated SQLite file in `dir`: (success, stdout, stderr).
pub fn sqlite_cli(dir: &Path) -> impl Fn(&[&str]) -> (bool, String, String) {
    let envs = vec![(
        "SCIM_BRIDGE_DATABASE_URL".to_string(),
        format!("sqlite://{}", dir.join("bridge.db").display()),
    )];
    let migrated = cli(&envs, &["migrate"]);
    assert!(
        migrated.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    move |args: &[&str]| {
        let out = cli(&envs, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

/// Creates an active SCIM User called `user_name`, with that primary email; its id.
pub async fn create_user(bridge: &Bridge, user_name: &str) -> String {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "emails": [{"primary": true, "value": user_name}],
        "active": true
    });
    create(bridge, "/Users", &user).await
}

/// Creates a SCIM Group called `name` with the Users `members` (ids); its id.
pub async fn create_group(bridge: &Bridge, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members
    });
    create(bridge, "/Groups", &group).await
}

/// POSTs `body` to `path` (`/Users`, `/Groups`, `/Agents`), which must create it; its id.
pub async fn create(bridge: &Bridge, path: &str, body: &Value) -> String {
    let (status, created) = bridge.call("POST", path, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Writes `contents` to the file `name` in `dir`; its path.
pub fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The part of `text` after the first `start` and before the next `end`.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let rest = text
        .split(start)
        .nth(1)
        .unwrap_or_else(|| panic!("no {start:?} in {text}"));
    rest.split(end).next().unwrap_or_default()
}

/// The body of a GET of `url`, whatever its status.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("GET");
    response.text().await.expect("body")
}

/// The words of each line of a table a command printed (the first holds its headings).
pub fn table_words(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// A running bridge process.
pub struct Bridge {
    child: Option<Child>,
    pub base: String,
    /// `http://` and the operations listener's address, when `SCIM_BRIDGE_OPS_LISTEN` gave
    /// `/healthz`, `/readyz` and `/metrics` a listener of their own.
    pub ops_base: Option<String>,
    pub token: String,
    pub envs: Vec<(String, String)>,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    /// Dropped after the process is killed (fields drop after `Drop::drop`), and shared with
    /// the replicas started by [`Bridge::another`].
    database: Arc<TestDatabase>,
}

pub struct BridgeOptions {
    pub database: TestDatabase,
    pub extra_env: Vec<(String, String)>,
}

impl Bridge {
    /// Creates an IdP token with the CLI, then starts `serve` and waits until `/healthz` answers.
    pub async fn start(opts: BridgeOptions) -> Bridge {
        let mut envs = vec![
            (
                "SCIM_BRIDGE_DATABASE_URL".to_string(),
                opts.database.url().to_owned(),
            ),
            ("SCIM_BRIDGE_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            ("SCIM_BRIDGE_LOG_FORMAT".to_string(), "json".to_string()),
            ("SCIM_BRIDGE_RATE_LIMIT".to_string(), "0".to_string()),
        ];
        envs.extend(opts.extra_env);
        let out = cli(&envs, &["migrate"]);
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cli(&envs, &["token", "create", "--name", "e2e"]);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let token = stdout
            .lines()
            .last()
            .expect("token line")
            .trim()
            .to_string();
        let mut bridge = Bridge {
            child: None,
            base: String::new(),
            ops_base: None,
            token,
            envs,
            logs: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::new(),
            database: Arc::new(opts.database),
        };
        bridge.spawn().await;
        bridge
    }

    /// Another replica: the same settings, database and IdP token, its own process and port.
    pub async fn another(&self) -> Bridge {
        let mut bridge = Bridge {
            child: None,
            base: String::new(),
            ops_base: None,
            token: self.token.clone(),
            envs: self.envs.clone(),
            logs: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::new(),
            database: self.database.clone(),
        };
        bridge.spawn().await;
        bridge
    }

    /// Starts (or restarts) the server process on a new port.
    pub async fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let (tx, rx) = std::sync::mpsc::channel::<(String, Option<String>)>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = self.logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addr) = listening_addrs(&line) {
                        let _ = tx.send(addr);
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let (addr, ops_addr) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the bridge did not report its address; logs:\n{}",
                    self.logs.lock().expect("logs").join("\n")
                )
            });
        self.base = format!("http://{addr}");
        self.ops_base = ops_addr.map(|ops| format!("http://{ops}"));
        self.child = Some(child);
        let health = format!("{}/healthz", self.ops_base.as_ref().unwrap_or(&self.base));
        test_support::wait_http(&self.http, &health, Duration::from_secs(30)).await;
    }

    /// Whether the process started last is still running (it never exited or was killed).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the graceful path. A process still running 60 s later (the graceful
    /// stop gives requests 30 s) is killed and fails the test, rather than hanging the suite.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = clock::SystemClock.instant() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if clock::SystemClock.instant() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the bridge did not stop within 60 s of SIGTERM; logs:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn scim(&self, path: &str) -> String {
        format!("{}/scim/v2{}", self.base, path)
    }

    /// A SCIM request with the bridge token; returns status and JSON body (Null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, self.scim(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// What `/metrics` on the SCIM listener answers.
    pub async fn metrics(&self) -> String {
        get_text(&self.http, &format!("{}/metrics", self.base)).await
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.envs, args)
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The SCIM address and, when there is one, the operations listener's address from the
/// `listening` log line (JSON or text).
fn listening_addrs(line: &str) -> Option<(String, Option<String>)> {
    if !line.contains("listening") {
        return None;
    }
    let field = |name: &str| {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            return v
                .pointer(&format!("/fields/{name}"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        let prefix = format!("{name}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .map(str::to_string)
    };
    Some((field("addr")?, field("ops_addr")))
}

/// Polls `f` until it returns Some, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = clock::SystemClock.instant() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if clock::SystemClock.instant() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bridge on a fresh database converging a Premium Coder fake (no rate limit), with `toml` as
/// its configuration file; the directory holding the file lives as long as the caller keeps it.
pub async fn bridge_with_config(
    db: &Db,
    toml: &str,
) -> (Bridge, coder_fake::FakeHandle, tempfile::TempDir) {
    bridge_on_fake(db, toml, premium_fake().await).await
}

/// [`bridge_with_config`] converging `fake` (a Community Edition one, say).
pub async fn bridge_on_fake(
    db: &Db,
    toml: &str,
    fake: coder_fake::FakeHandle,
) -> (Bridge, coder_fake::FakeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "bridge.toml", toml);
    let bridge = Bridge::start(BridgeOptions {
        database: fresh_database(db).await,
        extra_env: [
            coder_fake_env(&fake),
            vec![("SCIM_BRIDGE_CONFIG".into(), config.display().to_string())],
        ]
        .concat(),
    })
    .await;
    (bridge, fake, dir)
}

/// A Coder fake with the fake's default options.
pub async fn default_fake() -> coder_fake::FakeHandle {
    coder_fake::CoderFake::start(coder_fake::FakeOptions::default())
        .await
        .unwrap()
}

/// A Premium Coder fake without a rate limit: the bridge converges it as fast as it can.
pub async fn premium_fake() -> coder_fake::FakeHandle {
    coder_fake::CoderFake::start(coder_fake::FakeOptions {
        premium: true,
        rate_limit_per_minute: None,
        ..Default::default()
    })
    .await
    .unwrap()
}
