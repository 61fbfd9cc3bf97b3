//! The operator's CLI through the real binary: `-o json` on read commands, the documented exit
//! codes, `--yes` on revocations, `--version`, completions, `healthcheck`, and the build and
//! token-expiry metrics.

use serde_json::Value;

use crate::support::{Bridge, BridgeOptions, Db, cli, fresh_database};

/// (exit code, stdout, stderr) of `scim-bridge ARGS` with `envs`.
fn run(envs: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = cli(envs, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(envs: &[(String, String)], args: &[&str]) -> Value {
    let (code, stdout, stderr) = run(envs, args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Settings for an SQLite file in `dir` (not created yet).
fn sqlite(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![(
        "SCIM_BRIDGE_DATABASE_URL".to_string(),
        format!("sqlite://{}", dir.join("bridge.db").display()),
    )]
}

#[test]
fn exit_codes_tell_usage_configuration_readiness_and_failure_apart() {
    let dir = tempfile::tempdir().unwrap();
    let envs = sqlite(dir.path());

    let (code, _, stderr) = run(&envs, &["token", "list", "--no-such-flag"]);
    assert_eq!(code, 2, "a usage error: {stderr}");
    let (code, _, stderr) = run(&envs, &["--listen", "nowhere", "token", "list"]);
    assert_eq!(code, 3, "a configuration error: {stderr}");
    assert!(
        stderr.contains("error: --listen: 'nowhere'"),
        "named as given: {stderr}"
    );
    let (code, _, stderr) = run(&envs, &["token", "list"]);
    assert_eq!(code, 4, "an unmigrated database: {stderr}");
    assert!(stderr.contains("scim-bridge migrate"), "{stderr}");

    assert_eq!(run(&envs, &["migrate"]).0, 0);
    let (code, _, stderr) = run(&envs, &["token", "revoke", "nobody", "--yes"]);
    assert_eq!(code, 5, "a runtime failure: {stderr}");
    let (code, _, stderr) = run(&envs, &["outbox", "retry"]);
    assert_eq!(code, 2, "neither an ID nor --all-dead: {stderr}");
    let (code, stdout, _) = run(&envs, &["status"]);
    assert_eq!(code, 0, "nothing needs a person: {stdout}");
}

#[test]
fn read_commands_print_json_and_revocations_need_yes() {
    let dir = tempfile::tempdir().unwrap();
    let envs = sqlite(dir.path());
    assert_eq!(run(&envs, &["migrate"]).0, 0);
    assert_eq!(
        run(
            &envs,
            &["token", "create", "--name", "okta", "--expires-in", "7d"]
        )
        .0,
        0
    );
    assert_eq!(
        run(
            &envs,
            &[
                "client",
                "create",
                "--name",
                "entra",
                "--scopes",
                "scim:read"
            ]
        )
        .0,
        0
    );

    let tokens = json(&envs, &["token", "list", "-o", "json"]);
    assert_eq!(tokens[0]["name"], "okta", "{tokens}");
    assert_eq!(tokens[0]["state"], "active", "{tokens}");
    assert_eq!(
        tokens[0]["scopes"],
        serde_json::json!(["scim:read", "scim:write"])
    );
    assert!(tokens[0]["expires_at"].is_string(), "{tokens}");
    let clients = json(&envs, &["client", "list", "--output", "json"]);
    assert_eq!(clients[0]["name"], "entra", "{clients}");
    assert_eq!(clients[0]["scopes"], serde_json::json!(["scim:read"]));
    let outbox = json(&envs, &["outbox", "status", "-o", "json"]);
    assert_eq!(outbox["depth"], 0, "{outbox}");
    assert_eq!(
        json(&envs, &["outbox", "list", "-o", "json"]),
        serde_json::json!([])
    );
    let status = json(&envs, &["status", "-o", "json"]);
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["database"]["migrations_current"], true, "{status}");
    assert!(status["coder"]["url"].is_null(), "{status}");
    assert!(
        status["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("IdP token 'okta' expires at")),
        "a token expiring within 14 days is named: {status}"
    );

    // Without a terminal to ask on, a revocation wants --yes and changes nothing.
    for args in [
        &["token", "revoke", "okta"][..],
        &["client", "revoke", "entra"],
        &["agent", "revoke", "--agent", "build-bot", "--all"],
    ] {
        let (code, _, stderr) = run(&envs, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("--yes"), "{args:?}: {stderr}");
    }
    assert_eq!(
        json(&envs, &["token", "list", "-o", "json"])[0]["state"],
        "active"
    );
    assert!(json(&envs, &["client", "list", "-o", "json"])[0]["revoked_at"].is_null());
    assert_eq!(run(&envs, &["token", "revoke", "okta", "--yes"]).0, 0);
    assert_eq!(run(&envs, &["client", "revoke", "-y", "entra"]).0, 0);
    assert_eq!(
        json(&envs, &["token", "list", "-o", "json"])[0]["state"],
        "revoked"
    );
    assert!(json(&envs, &["client", "list", "-o", "json"])[0]["revoked_at"].is_string());
}

#[test]
fn version_and_completions() {
    let (code, stdout, _) = run(&[], &["--version"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!(
            "scim-bridge {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && stdout.contains(", built 20"),
        "{stdout}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run(&[], &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(
            stdout.contains("scim-bridge") && stdout.contains("healthcheck"),
            "{shell}: {stdout}"
        );
    }
    let (code, _, _) = run(&[], &["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
}

/// `healthcheck` answers for the running server and exits 1 when nothing listens; /metrics
/// carries the build and every expiring token.
#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_and_build_and_token_metrics() {
    let bridge = Bridge::start(BridgeOptions {
        database: fresh_database(&Db::Sqlite).await,
        extra_env: vec![],
    })
    .await;
    assert_eq!(
        run(
            &bridge.envs,
            &["token", "create", "--name", "okta", "--expires-in", "30d"]
        )
        .0,
        0
    );
    let address = bridge.base.trim_start_matches("http://").to_string();
    for args in [
        &["healthcheck", "--address", &address][..],
        &["healthcheck", "--ready", "--address", &address],
    ] {
        let (code, stdout, stderr) = run(&bridge.envs, args);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        assert!(stdout.contains("200"), "{stdout}");
    }
    // A port nobody listens on: bind one, note it, free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (code, stdout, _) = run(
        &bridge.envs,
        &["healthcheck", "--address", &closed, "--timeout", "2s"],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no answer"), "{stdout}");

    let metrics = bridge.metrics().await;
    let (_, version, _) = run(&[], &["--version"]);
    let commit = crate::support::between(&version, "(commit ", ",");
    assert!(
        metrics.contains(&format!(
            "scim_bridge_build_info{{version=\"{}\",commit=\"{commit}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    let expiry = metrics
        .lines()
        .find(|l| {
            l.starts_with("scim_bridge_token_expiry_timestamp_seconds{kind=\"idp\",name=\"okta\"}")
        })
        .unwrap_or_else(|| panic!("no expiry for okta in\n{metrics}"));
    let at: i64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    let in_30_days = clock::Clock::now(&clock::SystemClock).timestamp() + 30 * 86_400;
    assert!((at - in_30_days).abs() < 600, "{expiry}");
    assert!(
        !metrics.contains("name=\"e2e\""),
        "a token without an expiry has no gauge: {metrics}"
    );
}

/// The bridge's own Coder token: its expiry (read from Coder's `GET /users/me/keys/{id}`) is in
/// `status -o json` and on /metrics as the `coder` kind of the token-expiry gauge.
#[tokio::test(flavor = "multi_thread")]
async fn the_coder_token_expiry_is_shown_and_exported() {
    let fake = crate::support::default_fake().await;
    let bridge = Bridge::start(BridgeOptions {
        database: fresh_database(&Db::Sqlite).await,
        extra_env: crate::support::coder_fake_env(&fake),
    })
    .await;
    // The fake's owner token lives 30 days.
    let in_30_days = clock::Clock::now(&clock::SystemClock).timestamp() + 30 * 86_400;
    let status = json(&bridge.envs, &["status", "-o", "json"]);
    let at = status["coder"]["token_expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no Coder token expiry in {status}"));
    assert!((at.timestamp() - in_30_days).abs() < 600, "{status}");

    let gauge = crate::support::eventually(std::time::Duration::from_secs(15), || async {
        let metrics = bridge
            .http
            .get(format!("{}/metrics", bridge.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics
            .lines()
            .find(|l| l.starts_with("scim_bridge_token_expiry_timestamp_seconds{kind=\"coder\","))
            .map(str::to_owned)
    })
    .await
    .expect("the Coder token's expiry on /metrics");
    let exported: i64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(exported, at.timestamp(), "{gauge}");
    fake.stop().await;
}
