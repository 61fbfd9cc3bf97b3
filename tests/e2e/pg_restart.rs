//! A PostgreSQL restart in the middle of a load. The test runs a PostgreSQL server of its own
//! (a temporary data directory, a free port on 127.0.0.1, started and stopped by its PID; the
//! shared server is never touched), stops it with a fast shutdown while IdP writes flow, and
//! starts it again a few seconds later. While it is away every answer is a 2xx or a 503 with
//! `Retry-After` and a SCIM error, never a 500 and never a hang, and `/readyz` says not ready;
//! the same bridge process then serves again by itself, every acknowledged write is in the
//! store, and the outbox drains into Coder without dead-lettering anything.

use clock::Clock as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::crash_loop::differences;
use crate::support::{Bridge, BridgeOptions, TestDatabase, coder_fake_env, eventually};

/// IdP clients writing at once.
const WRITERS: usize = 4;
/// The slowest answer accepted: the store waits 5 s for a connection before it answers 503,
/// and one request may wait that long a couple of times (authentication, the write).
const ANSWER_BOUND: Duration = Duration::from_secs(15);
/// How long the database stays away at least.
const OUTAGE: Duration = Duration::from_secs(4);

const BEFORE: u8 = 0;
const AWAY: u8 = 1;
const BACK: u8 = 2;

/// A PostgreSQL server of this test's own.
struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnPostgres {
    /// The server binaries of the newest PostgreSQL installed, if any.
    fn binaries() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
            .collect();
        found.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
        });
        found.pop()
    }

    /// PostgreSQL refuses to run as root: then its binaries run as the `postgres` user, through
    /// `setpriv`, which execs them (so the PID is the server's own).
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if running_as_root() {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// initdb in a temporary directory; the server is not started yet.
    fn init(bin: PathBuf) -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the data directory failed");
        }
        let pg = OwnPostgres {
            bin,
            port: test_support::free_port(),
            dir,
            child: None,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start the server and wait until it accepts connections.
    async fn start(&mut self) {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            // A fast shutdown writes everything to disk anyway; the test need not wait on
            // fsync on a shared machine.
            .args(["-c", "fsync=off", "-c", "max_connections=40"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = self.url();
        let up = eventually(Duration::from_secs(30), || async {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&url).await.ok().map(drop)
        })
        .await;
        assert!(up.is_some(), "the test's PostgreSQL did not start");
    }

    /// Fast shutdown (SIGINT to the server's PID): sessions are ended, in-flight transactions
    /// rolled back, and the server exits.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let deadline = clock::SystemClock.instant() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if clock::SystemClock.instant() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the test's PostgreSQL did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = clock::SystemClock.instant() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none()
                && clock::SystemClock.instant() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// One request as the IdP saw it.
#[derive(Debug)]
struct Answer {
    phase: u8,
    what: String,
    /// 0 when no answer came within the client's timeout.
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn send(bridge: &Bridge, phase: &AtomicU8, method: &str, path: &str, body: &Value) -> Answer {
    let phase = phase.load(Ordering::SeqCst);
    let started = clock::SystemClock.instant();
    let sent = bridge
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            bridge.scim(path),
        )
        .bearer_auth(&bridge.token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .timeout(ANSWER_BOUND * 2)
        .send()
        .await;
    let (status, retry_after, body) = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, retry_after, body)
        }
        Err(e) => (0, None, Value::String(e.to_string())),
    };
    Answer {
        phase,
        what: format!("{method} {path}"),
        status,
        retry_after,
        body,
        took: clock::SystemClock.elapsed(started),
    }
}

/// What one writer had acknowledged: its users with the last acknowledged version of their
/// name, and its group's acknowledged members.
#[derive(Debug, Default)]
struct Acknowledged {
    users: BTreeMap<String, u32>,
    group: Option<String>,
    members: Vec<String>,
}

fn patch_op(operations: Value) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations })
}

/// One IdP client: creates users, renames them (a version number in the name, so the store
/// must hold at least the last acknowledged one), and adds them to its group, until `stop`.
async fn writer(
    bridge: Arc<Bridge>,
    w: usize,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> (Acknowledged, Vec<Answer>) {
    let mut acked = Acknowledged::default();
    let mut answers = Vec::new();
    let mut serial = 0u32;
    let mut version = 0u32;
    while !stop.load(Ordering::SeqCst) {
        serial += 1;
        let users: Vec<String> = acked.users.keys().cloned().collect();
        let answer = match (serial % 3, users.is_empty(), &acked.group) {
            (_, _, None) => {
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("Restart Team {w}-{serial}"),
                });
                let a = send(&bridge, &phase, "POST", "/Groups", &body).await;
                if a.status == 201 {
                    acked.group = a.body["id"].as_str().map(str::to_string);
                }
                a
            }
            (0, _, _) | (_, true, _) => {
                let name = format!("pgr{w}-{serial}@idp.example.com");
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                    "name": { "formatted": "Restart 0", "givenName": "Restart", "familyName": "Load" },
                    "emails": [{ "value": name, "type": "work", "primary": true }],
                    "active": true,
                });
                let a = send(&bridge, &phase, "POST", "/Users", &body).await;
                if a.status == 201
                    && let Some(id) = a.body["id"].as_str()
                {
                    acked.users.insert(id.to_string(), 0);
                }
                a
            }
            (1, false, _) => {
                let id = &users[serial as usize % users.len()];
                version += 1;
                let ops = patch_op(json!([
                    { "op": "replace", "path": "name.formatted", "value": format!("Restart {version}") }
                ]));
                let a = send(&bridge, &phase, "PATCH", &format!("/Users/{id}"), &ops).await;
                if (200..300).contains(&a.status) {
                    acked.users.insert(id.clone(), version);
                }
                a
            }
            (_, false, Some(group)) => {
                let id = users[serial as usize % users.len()].clone();
                let ops = patch_op(
                    json!([{ "op": "add", "path": "members", "value": [{ "value": id }] }]),
                );
                let a = send(&bridge, &phase, "PATCH", &format!("/Groups/{group}"), &ops).await;
                if (200..300).contains(&a.status) {
                    acked.members.push(id);
                }
                a
            }
        };
        answers.push(answer);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (acked, answers)
}

async fn readyz(bridge: &Bridge) -> Option<u16> {
    let resp = bridge
        .http
        .get(format!("{}/readyz", bridge.base))
        .timeout(ANSWER_BOUND * 2)
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

fn count(answers: &[Answer], phase: u8, f: impl Fn(&Answer) -> bool) -> usize {
    answers.iter().filter(|a| a.phase == phase && f(a)).count()
}

/// The IdP gets 503 with `Retry-After` (never 500, never a hang) while PostgreSQL restarts,
/// the bridge reconnects by itself, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_mid_load_answers_503_and_loses_nothing_acknowledged() {
    let Some(bin) = OwnPostgres::binaries() else {
        eprintln!(
            "SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; \
             the PostgreSQL restart test needs initdb and postgres"
        );
        return;
    };
    let mut pg = OwnPostgres::init(bin);
    pg.start().await;
    let fake = crate::support::premium_fake().await;
    let bridge = Bridge::start(BridgeOptions {
        // A fresh database on the test's own server (dropped with the bridge, before the
        // server stops).
        database: TestDatabase::postgres_at(&pg.url()).await.unwrap(),
        extra_env: [
            coder_fake_env(&fake),
            vec![("SCIM_BRIDGE_DRIFT_INTERVAL".into(), "0".into())],
        ]
        .concat(),
    })
    .await;
    let bridge = Arc::new(bridge);

    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(bridge.clone(), w, phase.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    phase.store(AWAY, Ordering::SeqCst);
    let stopped_at = clock::SystemClock.instant();
    pg.stop();
    eprintln!("PostgreSQL stopped (fast shutdown)");
    let not_ready = eventually(Duration::from_secs(30), || async {
        (readyz(&bridge).await == Some(503)).then_some(())
    })
    .await;
    let noticed_after = clock::SystemClock.elapsed(stopped_at);
    if let Some(left) = OUTAGE.checked_sub(clock::SystemClock.elapsed(stopped_at)) {
        tokio::time::sleep(left).await;
    }
    pg.start().await;
    eprintln!(
        "PostgreSQL back after {:?}; /readyz said not ready after {noticed_after:?}",
        clock::SystemClock.elapsed(stopped_at)
    );
    phase.store(BACK, Ordering::SeqCst);
    let back_at = clock::SystemClock.instant();
    let ready_again = eventually(Duration::from_secs(30), || async {
        (readyz(&bridge).await == Some(200)).then_some(())
    })
    .await;
    let ready_after = clock::SystemClock.elapsed(back_at);
    // Keep pushing for a while after the return.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut answers = Vec::new();
    for w in writers {
        let (a, mut seen) = w.await.unwrap();
        acked.push(a);
        answers.append(&mut seen);
    }
    for p in [BEFORE, AWAY, BACK] {
        let statuses: BTreeMap<u16, usize> =
            answers
                .iter()
                .filter(|a| a.phase == p)
                .fold(BTreeMap::new(), |mut m, a| {
                    *m.entry(a.status).or_default() += 1;
                    m
                });
        let slowest = answers
            .iter()
            .filter(|a| a.phase == p)
            .map(|a| a.took)
            .max();
        eprintln!("phase {p}: statuses {statuses:?}, slowest {slowest:?}");
    }

    // Every answer is a success or a 503 that tells the IdP to come back, in bounded time.
    for a in &answers {
        let ok = (200..300).contains(&a.status)
            || (a.status == 503
                && a.retry_after
                    .as_deref()
                    .is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1))
                && a.body["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error"
                && a.body["status"] == "503");
        assert!(
            ok,
            "phase {}: {} answered {}: {:?} {}",
            a.phase, a.what, a.status, a.retry_after, a.body
        );
        assert!(
            a.took <= ANSWER_BOUND,
            "{} took {:?} (phase {})",
            a.what,
            a.took,
            a.phase
        );
    }
    assert!(
        count(&answers, AWAY, |a| a.status == 503) > 0,
        "no request met the outage"
    );
    assert!(
        count(&answers, BEFORE, |a| (200..300).contains(&a.status)) > 0,
        "nothing succeeded before the outage"
    );
    assert!(
        not_ready.is_some(),
        "/readyz never said not ready while PostgreSQL was away"
    );
    assert!(
        ready_again.is_some(),
        "/readyz never said ready after PostgreSQL came back"
    );
    eprintln!("/readyz ready again {ready_after:?} after PostgreSQL's return");
    // The same process serves again: the writes sent after the return succeed.
    assert!(
        count(&answers, BACK, |a| (200..300).contains(&a.status)) >= WRITERS,
        "the bridge did not recover by itself"
    );
    let mut bridge = Arc::into_inner(bridge).expect("writers are done");
    assert!(bridge.running(), "the bridge process exited");

    // Every acknowledged write is in the store.
    for a in &acked {
        for (id, version) in &a.users {
            let (status, user) = bridge.call("GET", &format!("/Users/{id}"), None).await;
            assert_eq!(status, 200, "an acknowledged user is missing: {id}");
            let stored: u32 = user["name"]["formatted"]
                .as_str()
                .and_then(|n| n.strip_prefix("Restart "))
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
            assert!(
                stored >= *version,
                "{id}: acknowledged name version {version}, stored {stored}"
            );
        }
        if let Some(group) = &a.group {
            let (status, stored) = bridge.call("GET", &format!("/Groups/{group}"), None).await;
            assert_eq!(status, 200, "an acknowledged group is missing: {group}");
            let members: Vec<&str> = stored["members"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
                .unwrap_or_default();
            for id in &a.members {
                assert!(
                    members.contains(&id.as_str()),
                    "group {group}: acknowledged member {id} is missing"
                );
            }
        }
    }

    // And it all reaches Coder: the outbox drains, nothing dead-lettered.
    let back = clock::SystemClock.instant();
    let converged = eventually(Duration::from_secs(90), || async {
        let out = bridge.cli(&["outbox", "status"]);
        let drained = String::from_utf8_lossy(&out.stdout).contains("depth:      0");
        (drained && differences(&bridge, &fake).await.is_empty()).then_some(())
    })
    .await;
    if converged.is_none() {
        panic!(
            "Coder never matched the SCIM store:\n{}\noutbox:\n{}",
            differences(&bridge, &fake).await.join("\n"),
            String::from_utf8_lossy(&bridge.cli(&["outbox", "list"]).stdout)
        );
    }
    let logs = bridge.log_text();
    eprintln!(
        "Coder converged {:?} after the load; the worker put back {} row(s) it could not settle \
         while the database was away",
        clock::SystemClock.elapsed(back),
        logs.matches("could not settle an outbox row").count()
    );
    let status = String::from_utf8_lossy(&bridge.cli(&["outbox", "status"]).stdout).to_string();
    assert!(
        status.contains("dead:       0"),
        "rows were dead-lettered:\n{status}"
    );
    assert!(bridge.running(), "the bridge process exited");
    bridge.kill();
    drop(bridge);
    fake.stop().await;
    pg.stop();
}
