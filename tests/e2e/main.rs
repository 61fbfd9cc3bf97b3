//! The end-to-end suite: boots the real `scim-bridge` binary on 127.0.0.1:0 against SQLite and
//! PostgreSQL (and the Coder fake) and drives it over HTTP and its CLI.

// A test binary: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod audit;
mod cli;
mod crash_loop;
mod email_domains;
mod explain;
mod oauth;
mod ops_listener;
mod pg_restart;
#[path = "../shared/receiver.rs"]
mod receiver;
mod reports;
mod roles;
mod schema;
mod siem;
#[path = "../shared/sink.rs"]
mod sink;
mod support;
#[path = "../shared/tls_front.rs"]
mod tls_front;
mod transport;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Bridge, BridgeOptions, Db, eventually, fresh_database};

async fn start(db: &Db, extra_env: Vec<(String, String)>) -> Bridge {
    Bridge::start(BridgeOptions {
        database: fresh_database(db).await,
        extra_env,
    })
    .await
}

fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": name, "type": "work"}],
        "active": true
    })
}

/// Create, find, deactivate, delete: the IdP's everyday traffic, and the audit chain it leaves.
#[tokio::test(flavor = "multi_thread")]
async fn user_lifecycle_through_the_real_binary() {
    for db in support::available() {
        let bridge = start(&db, vec![]).await;

        let (status, created) = bridge
            .call("POST", "/Users", Some(&user("alice@example.com")))
            .await;
        assert_eq!(status, 201, "{db:?}: {created}");
        let id = created["id"].as_str().unwrap().to_string();

        let (status, list) = bridge
            .call(
                "GET",
                "/Users?filter=userName%20eq%20%22ALICE%40example.com%22",
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            list["totalResults"], 1,
            "{db:?}: userName matches ignoring case"
        );

        let (status, dup) = bridge
            .call("POST", "/Users", Some(&user("Alice@Example.com")))
            .await;
        assert_eq!(status, 409, "{db:?}");
        assert_eq!(dup["scimType"], "uniqueness");

        let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        let (status, patched) = bridge
            .call("PATCH", &format!("/Users/{id}"), Some(&deactivate))
            .await;
        assert!(status == 200 || status == 204, "{db:?}: {status} {patched}");
        let (status, got) = bridge.call("GET", &format!("/Users/{id}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(got["active"], false, "a deactivated user stays readable");

        assert_eq!(
            bridge.call("DELETE", &format!("/Users/{id}"), None).await.0,
            204
        );
        assert_eq!(
            bridge.call("GET", &format!("/Users/{id}"), None).await.0,
            404
        );
        assert_eq!(
            bridge.call("DELETE", &format!("/Users/{id}"), None).await.0,
            404
        );

        let out = bridge.cli(&["audit", "verify"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{db:?}: {text}");
        assert!(text.contains("intact"), "{text}");
        let out = bridge.cli(&["audit", "export"]);
        let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ops: Vec<&str> = records
            .iter()
            .filter_map(|r| r["resource_id"].as_str())
            .filter(|r| *r == id)
            .collect();
        assert!(
            ops.len() >= 3,
            "{db:?}: create, patch and delete of the user are audited: {records:?}"
        );
        assert!(
            records.iter().all(|r| r["actor"] == "e2e"
                || r["resource_type"] == "Token"
                || r["actor"].is_null())
        );

        let out = bridge.cli(&["outbox", "status"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("depth:"),
            "outbox status prints the depth"
        );

        // JSON logs name the request and the token for every change, at the default level.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs = bridge.log_text();
        let served: Vec<Value> = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.pointer("/fields/message") == Some(&json!("request served")))
            .collect();
        assert!(
            served
                .iter()
                .any(|v| v.pointer("/span/token") == Some(&json!("e2e"))
                    && v.pointer("/span/request_id")
                        .and_then(Value::as_str)
                        .is_some_and(|r| !r.is_empty())),
            "{db:?}: a request log line with request_id and token name:\n{logs}"
        );
    }
}

/// A revoked token stops working within seconds, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_token_is_refused() {
    let bridge = start(&Db::Sqlite, vec![]).await;
    assert_eq!(
        bridge
            .call("GET", "/Users?startIndex=1&count=2", None)
            .await
            .0,
        200
    );
    let out = bridge.cli(&["token", "revoke", "e2e", "--yes"]);
    assert!(out.status.success());
    let refused = eventually(Duration::from_secs(15), || async {
        let (status, body) = bridge.call("GET", "/Users", None).await;
        (status == 401).then_some(body)
    })
    .await
    .expect("revoked token refused within 15 s");
    assert_eq!(refused["status"], "401");
}

/// `token create --scopes` stores what the token may do; `token list` shows it and the source;
/// an unknown scope is refused with a message naming it.
#[test]
fn token_scopes_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = support::sqlite_cli(dir.path());
    let create =
        |name: &str, scopes: &str| run(&["token", "create", "--name", name, "--scopes", scopes]);
    let (ok, stdout, stderr) = create("reader", "scim:read");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("with scopes scim:read;"), "{stdout}");
    let (ok, _, stderr) = run(&["token", "create", "--name", "both"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = create("spaced", "scim:write scim:read");
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = create("admin", "scim:admin");
    assert!(!ok, "an unknown scope must be refused: {stdout}");
    assert!(
        stderr.contains("unknown scope \"scim:admin\"") && stderr.contains("scim:read"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(&["token", "list"]);
    assert!(ok, "{stderr}");
    let rows = support::table_words(&stdout);
    assert_eq!(rows[0][..3], ["NAME", "SCOPES", "SOURCE"], "{stdout}");
    let row = |name: &str| rows.iter().find(|r| r[0] == name).cloned();
    assert_eq!(
        row("reader").unwrap()[1..3],
        ["scim:read", "cli"],
        "{stdout}"
    );
    assert_eq!(
        row("both").unwrap()[1..4],
        ["scim:read", "scim:write", "cli"],
        "{stdout}"
    );
    assert_eq!(
        row("spaced").unwrap()[1..4],
        ["scim:read", "scim:write", "cli"],
        "{stdout}"
    );
    assert!(row("admin").is_none(), "{stdout}");
}

/// The tokens file is the source of truth for the tokens it brought: a line removed from it is
/// refused after the next start, the revocation is audited, and a `token create` token is left
/// alone. A weak token in the file stops the start with an error naming its line, not the token.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_file_lines_removed_are_revoked_and_weak_ones_refused() {
    for db in support::available() {
        let dir = tempfile::tempdir().unwrap();
        let okta = "4be1f07c9d2a85e3b6c1f940a7d2e58c";
        let entra = "Zq7vN2xK9pLm4RtW8yBc3HfJ6sDg1QaE";
        let tokens = support::write_file(
            dir.path(),
            "tokens",
            format!("okta={okta}\nentra={entra} scim:read\n"),
        );
        let mut bridge = start(
            &db,
            vec![(
                "SCIM_BRIDGE_IDP_TOKENS_FILE".into(),
                tokens.display().to_string(),
            )],
        )
        .await;
        let status_with = |bridge: &support::Bridge, token: &str| {
            let request = bridge.http.get(bridge.scim("/Users")).bearer_auth(token);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(status_with(&bridge, okta).await, 200, "{db:?}");
        assert_eq!(status_with(&bridge, entra).await, 200, "{db:?}");
        let listed = bridge.cli(&["token", "list"]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.lines().any(|l| l
                .split_whitespace()
                .take(3)
                .eq(["entra", "scim:read", "file"])),
            "{db:?}: {listed}"
        );

        // "entra" leaves the file.
        std::fs::write(&tokens, format!("okta={okta}\n")).unwrap();
        assert!(bridge.terminate().success());
        bridge.spawn().await;
        assert_eq!(status_with(&bridge, entra).await, 401, "{db:?}");
        assert_eq!(status_with(&bridge, okta).await, 200, "{db:?}");
        assert_eq!(
            status_with(&bridge, &bridge.token.clone()).await,
            200,
            "{db:?}: the token made with `token create` is not the file's to revoke"
        );
        let export = bridge.cli(&["audit", "export"]);
        let revocations: Vec<Value> = String::from_utf8_lossy(&export.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["operation"] == "token.revoke")
            .collect();
        assert_eq!(revocations.len(), 1, "{db:?}: {revocations:?}");
        assert_eq!(revocations[0]["actor"], "tokens-file");
        assert_eq!(revocations[0]["resource_id"], "entra");

        // A weak line stops the next start and changes nothing.
        let weak = "Password1Password1Password1Password1";
        std::fs::write(
            &tokens,
            format!("okta={okta}\n# a comment\nlegacy={weak}\n"),
        )
        .unwrap();
        assert!(bridge.terminate().success());
        let out = bridge.cli(&["serve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{db:?}: serve started with a weak token"
        );
        assert!(
            stderr.contains("SCIM_BRIDGE_IDP_TOKENS_FILE: line 3 (legacy)")
                && stderr.contains("too weak")
                && stderr.contains("openssl rand -hex 32"),
            "{db:?}: {stderr}"
        );
        assert!(!stderr.contains(weak), "{db:?}: the error shows the token");
        let listed = bridge.cli(&["token", "list"]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(!listed.contains("legacy"), "{db:?}: {listed}");
    }
}

/// SIGTERM finishes in-flight work and exits cleanly; the data survives a restart.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_stop_and_restart_keep_data() {
    for db in support::available() {
        let mut bridge = start(&db, vec![]).await;
        let (status, created) = bridge
            .call("POST", "/Users", Some(&user("bob@example.com")))
            .await;
        assert_eq!(status, 201);
        let status = bridge.terminate();
        assert!(status.success(), "{db:?}: exit status {status:?}");
        bridge.spawn().await;
        let (status, got) = bridge
            .call(
                "GET",
                &format!("/Users/{}", created["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{db:?}");
        assert_eq!(got["userName"], "bob@example.com");
    }
}

/// Secrets given by environment or file never reach the logs, even at debug level.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let idp_token = "scimb_file_supplied_token_5f0c9e2a7d41b863f2e9a0c4";
    let tokens = support::write_file(dir.path(), "tokens", format!("entra={idp_token}\n"));
    let jwt_secret = "jwt-shared-secret-that-must-not-leak";
    // A full run: the worker talks to Coder with its owner token, read from a file.
    let coder_token = "coder-owner-session-token-that-must-not-leak";
    let fake = coder_fake::CoderFake::start(coder_fake::FakeOptions {
        premium: true,
        owner_token: Some(coder_token.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let coder_token_file =
        support::write_file(dir.path(), "coder-token", format!("{coder_token}\n"));
    let bridge = start(
        &Db::Sqlite,
        vec![
            (
                "SCIM_BRIDGE_IDP_TOKENS_FILE".into(),
                tokens.display().to_string(),
            ),
            (
                "SCIM_BRIDGE_JWT_ISSUER".into(),
                "https://sts.windows.net/tenant/".into(),
            ),
            (
                "SCIM_BRIDGE_JWT_AUDIENCE".into(),
                "8adf8e6e-67b2-4cf2-a259-e3dc5476c621".into(),
            ),
            ("SCIM_BRIDGE_JWT_HS256_SECRET".into(), jwt_secret.into()),
            ("SCIM_BRIDGE_LOG_LEVEL".into(), "debug".into()),
            ("SCIM_BRIDGE_CODER_URL".into(), fake.base_url().to_string()),
            (
                "SCIM_BRIDGE_CODER_TOKEN_FILE".into(),
                coder_token_file.display().to_string(),
            ),
        ],
    )
    .await;
    // The file-supplied token works, and requests of every kind are logged.
    let resp = bridge
        .http
        .post(bridge.scim("/Users"))
        .bearer_auth(idp_token)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "carol@example.com", "password": "hunter2-password"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let _ = bridge
        .http
        .get(bridge.scim("/Users"))
        .bearer_auth("wrong-token-value-xyz")
        .send()
        .await;
    let _ = bridge
        .call(
            "GET",
            "/Users?filter=userName%20eq%20%22carol%40example.com%22",
            None,
        )
        .await;
    // The worker has used the Coder token by the time carol exists in Coder, and has logged
    // all it will about her once her outbox row is gone.
    let synced = eventually(Duration::from_secs(30), || async {
        fake.state().user("carol").map(|_| ())
    })
    .await;
    assert!(synced.is_some(), "the worker synced carol to Coder");
    let drained = eventually(Duration::from_secs(30), || async {
        let out = bridge.cli(&["outbox", "status", "-o", "json"]);
        let status: Value = serde_json::from_slice(&out.stdout).ok()?;
        (status["depth"] == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "the worker finished with carol");
    // The bridge writes its log lines in order, so once the line of a request sent after all
    // of the above has been read, every line they caused has been read too.
    let last_request = "secrets-never-reach-the-logs-last-request";
    let _ = bridge
        .http
        .get(bridge.scim("/ServiceProviderConfig"))
        .header("x-request-id", last_request)
        .send()
        .await;
    let logged = eventually(Duration::from_secs(10), || async {
        bridge.log_text().contains(last_request).then_some(())
    })
    .await;
    assert!(logged.is_some(), "the last request was logged");
    let logs = bridge.log_text();
    assert!(logs.contains("listening"), "logs were captured");
    for secret in [
        idp_token,
        jwt_secret,
        bridge.token.as_str(),
        "hunter2-password",
        "wrong-token-value-xyz",
        coder_token,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    let out = bridge.cli(&["config", "check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        !printed.contains(jwt_secret) && !printed.contains(coder_token),
        "config check redacts secrets"
    );
    let audit = String::from_utf8_lossy(&bridge.cli(&["audit", "export"]).stdout).to_string();
    assert!(
        !audit.contains("hunter2-password"),
        "passwords never reach the audit trail"
    );
}

/// `scim-bridge demo` replays the Okta-style push and shows Coder converged: the group's members
/// hold `template-admin`, bob is renamed, carol is suspended, and the audit chain is intact.
/// `scim-bridge demo --once` in a fresh directory, with no log setting: (stdout, stderr).
fn demo_once() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["demo", "--once"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCIM_BRIDGE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}\n{stderr}");
    (text, stderr)
}

#[test]
fn demo_converges_coder() {
    let (text, stderr) = demo_once();
    assert!(
        !text.contains("ERR "),
        "every replayed request succeeded:\n{text}"
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
    };
    assert!(line("alice ").contains("template-admin"), "{text}");
    assert!(
        line("robert-jones ").contains("template-admin"),
        "the rename reached Coder:\n{text}"
    );
    assert!(
        line("carol ").contains("suspended"),
        "the deactivation reached Coder:\n{text}"
    );
    assert!(!line("carol ").contains("template-admin"));
    assert!(
        line("group coder-template-admins").contains("alice")
            && line("group coder-template-admins").contains("robert-jones")
    );
    assert!(text.contains("intact"), "{text}");

    // A newcomer reads only the demo's own lines: no log line on either stream by default.
    for (stream, printed) in [("stdout", &text), ("stderr", &stderr)] {
        assert!(
            !printed.contains("\"level\"") && !printed.contains(" INFO "),
            "a log line on {stdout}:\n{printed}",
            stdout = stream
        );
    }
    // The audit view names people and groups, never a SCIM id; `dormant` and `admin` are
    // explained; the next steps name both ends.
    let audit = support::between(&text, "Audit trail", "Next steps");
    assert!(
        audit.contains("User alice@example.com") && audit.contains("Group coder-template-admins"),
        "{audit}"
    );
    assert!(
        !audit
            .split_whitespace()
            .any(|w| uuid::Uuid::parse_str(w).is_ok()),
        "a UUID in the audit view:\n{audit}"
    );
    for sentence in [
        "dormant: ",
        "admin: ",
        "scim-bridge token create",
        "SCIM_BRIDGE_CODER_URL",
    ] {
        assert!(text.contains(sentence), "{sentence:?} missing:\n{text}");
    }

    // The same order on every run: only times, ports and paths differ.
    let stable = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.contains("127.0.0.1") && !l.contains("sqlite://"))
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| !(w.len() == 12 && w.as_bytes().get(2) == Some(&b':')))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let (again, _) = demo_once();
    assert_eq!(stable(&text), stable(&again), "{text}\n---\n{again}");
}

/// The real binary killed with SIGKILL while the worker drains, then restarted: every SCIM user
/// ends up in Coder exactly once, and the outbox empties. Coder (the fake) is slowed so the kill
/// lands mid-drain.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_drain_loses_nothing_and_duplicates_nothing() {
    use coder_fake::{Fault, FaultKind};
    const USERS: usize = 40;
    for db in support::available() {
        let fake = crate::support::premium_fake().await;
        let mut bridge = start(
            &db,
            [
                support::coder_fake_env(&fake),
                vec![
                    ("SCIM_BRIDGE_WORKER_CONCURRENCY".into(), "2".into()),
                    // PostgreSQL replicas take over a dead worker's rows when its lease runs out.
                    ("SCIM_BRIDGE_OUTBOX_LEASE".into(), "4s".into()),
                ],
            ]
            .concat(),
        )
        .await;
        // Every Coder call now takes 40 ms: draining USERS users takes seconds.
        fake.inject(Fault::next(1000, FaultKind::Latency { millis: 40 }))
            .unwrap();
        // SCIM answers (201) while Coder is slow.
        for i in 0..USERS {
            support::create(&bridge, "/Users", &user(&format!("kill{i}@example.com"))).await;
        }
        let managed = |fake: &coder_fake::FakeHandle| {
            fake.state()
                .users
                .iter()
                .filter(|u| !u.deleted && u.email.starts_with("kill"))
                .count()
        };
        let some = eventually(Duration::from_secs(60), || async {
            (managed(&fake) >= 3).then_some(())
        })
        .await;
        assert!(some.is_some(), "{db:?}: the worker started draining");
        bridge.kill();
        let at_kill = managed(&fake);
        assert!(
            at_kill < USERS,
            "{db:?}: killed mid-drain ({at_kill} of {USERS} in Coder)"
        );

        fake.clear_faults();
        bridge.spawn().await;
        let done = eventually(Duration::from_secs(90), || async {
            (managed(&fake) == USERS).then_some(())
        })
        .await;
        assert!(
            done.is_some(),
            "{db:?}: only {} of {USERS} users reached Coder after the restart",
            managed(&fake)
        );
        let state = fake.state();
        for i in 0..USERS {
            let email = format!("kill{i}@example.com");
            let copies = state
                .users
                .iter()
                .filter(|u| !u.deleted && u.email == email)
                .count();
            assert_eq!(copies, 1, "{db:?}: {email} exists exactly once in Coder");
        }
        let drained = eventually(Duration::from_secs(30), || async {
            let out = bridge.cli(&["outbox", "status"]);
            String::from_utf8_lossy(&out.stdout)
                .contains("depth:      0")
                .then_some(())
        })
        .await;
        assert!(drained.is_some(), "{db:?}: the outbox empties");
        drop(bridge);
        fake.stop().await;
    }
}

/// Moving from SQLite to PostgreSQL: `migrate --copy-from` carries users, tokens and the audit
/// chain over, and the bridge serves them from PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn copy_from_sqlite_to_postgres() {
    if !support::available()
        .iter()
        .any(|d| matches!(d, Db::Postgres))
    {
        return;
    }
    let mut bridge = start(&Db::Sqlite, vec![]).await;
    let (status, created) = bridge
        .call("POST", "/Users", Some(&user("moving@example.com")))
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(bridge.terminate().success());
    let sqlite_url = bridge
        .envs
        .iter()
        .find(|(k, _)| k == "SCIM_BRIDGE_DATABASE_URL")
        .unwrap()
        .1
        .clone();

    let pg = fresh_database(&Db::Postgres).await;
    let pg_url = pg.url().to_owned();
    for (k, v) in bridge.envs.iter_mut() {
        if k == "SCIM_BRIDGE_DATABASE_URL" {
            *v = pg_url.clone();
        }
    }
    let out = bridge.cli(&["migrate", "--copy-from", &sqlite_url]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let again = bridge.cli(&["migrate", "--copy-from", &sqlite_url]);
    assert!(
        !again.status.success(),
        "a second copy into a filled database is refused"
    );

    bridge.spawn().await;
    let (status, got) = bridge.call("GET", &format!("/Users/{id}"), None).await;
    assert_eq!(status, 200, "the user and the IdP's token moved: {got}");
    assert_eq!(got["userName"], "moving@example.com");
    let verify = bridge.cli(&["audit", "verify"]);
    assert!(verify.status.success() && String::from_utf8_lossy(&verify.stdout).contains("intact"));
}
