//! OAuth clients through the real binary: `client create` prints exactly the two lines scripts
//! read, `client list` shows the client, `client revoke` ends it; each is audited.

use crate::support;

/// `client create` stdout, parsed as scripts parse it: exactly `client_id=…` then
/// `client_secret=…`.
pub fn client_credentials(stdout: &str) -> (String, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "stdout is exactly two lines: {stdout:?}");
    let id = lines[0]
        .strip_prefix("client_id=")
        .expect("client_id= line");
    let secret = lines[1]
        .strip_prefix("client_secret=")
        .expect("client_secret= line");
    assert!(!id.is_empty() && !secret.is_empty(), "{stdout:?}");
    (id.to_string(), secret.to_string())
}

#[test]
fn client_commands_print_what_scripts_read_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let run = support::sqlite_cli(dir.path());
    let (ok, stdout, stderr) = run(&["client", "create", "--name", "entra"]);
    assert!(ok, "{stderr}");
    let (entra_id, entra_secret) = client_credentials(&stdout);
    assert!(entra_id.starts_with("scimc_"), "{entra_id}");
    assert!(entra_secret.starts_with("scimb_"), "{entra_secret}");
    assert!(
        stderr.contains("entra"),
        "the note goes to stderr: {stderr}"
    );
    let (ok, stdout, stderr) = run(&[
        "client",
        "create",
        "--name",
        "reader",
        "--scopes",
        "scim:read",
    ]);
    assert!(ok, "{stderr}");
    let (reader_id, _) = client_credentials(&stdout);
    let (ok, stdout, _) = run(&["client", "create", "--name", "entra"]);
    assert!(!ok, "an active client's name is taken: {stdout}");
    assert!(
        stdout.is_empty(),
        "nothing a script could mistake for credentials"
    );

    let (ok, stdout, stderr) = run(&["client", "revoke", "reader", "--yes"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("reader"), "{stdout}");
    let (ok, _, _) = run(&["client", "revoke", "reader", "--yes"]);
    assert!(!ok, "a revoked client cannot be revoked again");

    let (ok, stdout, stderr) = run(&["client", "list"]);
    assert!(ok, "{stderr}");
    let rows = support::table_words(&stdout);
    assert_eq!(
        rows[0],
        ["NAME", "CLIENT_ID", "SCOPES", "CREATED", "REVOKED"],
        "{stdout}"
    );
    let entra = rows.iter().find(|r| r[0] == "entra").unwrap();
    assert_eq!(
        entra[1..4],
        [&entra_id, "scim:read", "scim:write"],
        "{stdout}"
    );
    assert_eq!(entra[5], "-", "{stdout}");
    let reader = rows.iter().find(|r| r[0] == "reader").unwrap();
    assert_eq!(reader[1..3], [reader_id.as_str(), "scim:read"], "{stdout}");
    assert_ne!(reader[4], "-", "the revocation time is shown: {stdout}");
    assert!(!stdout.contains(&entra_secret), "a secret was listed");

    let (ok, stdout, stderr) = run(&["audit", "export"]);
    assert!(ok, "{stderr}");
    let ops: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r["operation"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        ops,
        [
            "oauth_client.create",
            "oauth_client.create",
            "oauth_client.revoke"
        ],
        "{stdout}"
    );
    assert!(
        !stdout.contains(&entra_secret),
        "a secret reached the audit"
    );
}

/// The whole flow through the real binary: a signing key from a file, `client create`, a token
/// from `/oauth/token` with the configured lifetime, and that token on the SCIM API.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_from_the_cli_gets_a_token_that_works_on_the_served_api() {
    for db in crate::support::available() {
        let dir = tempfile::tempdir().unwrap();
        let key = "5f0c1e9a7b3d4c2e8f6a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
        let key_file = support::write_file(dir.path(), "oauth-signing-key", format!("{key}\n"));
        let mut bridge = crate::start(
            &db,
            vec![
                (
                    "SCIM_BRIDGE_OAUTH_SIGNING_KEY_FILE".to_string(),
                    key_file.display().to_string(),
                ),
                ("SCIM_BRIDGE_OAUTH_TOKEN_TTL".to_string(), "5m".to_string()),
            ],
        )
        .await;
        let out = bridge.cli(&["client", "create", "--name", "entra"]);
        assert!(
            out.status.success(),
            "{db:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (id, secret) = client_credentials(&String::from_utf8_lossy(&out.stdout));

        let reply = bridge
            .http
            .post(format!("{}/oauth/token", bridge.base))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{db:?}");
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 300, "{db:?}: {body}");
        bridge.token = body["access_token"].as_str().unwrap().to_string();
        let (status, _) = bridge.call("GET", "/Users", None).await;
        assert_eq!(status, 200, "{db:?}");
        let (status, created) = bridge
            .call("POST", "/Users", Some(&crate::user("oauth@example.com")))
            .await;
        assert_eq!(status, 201, "{db:?}: {created}");

        let logs = bridge.log_text();
        for secret in [secret.as_str(), key, bridge.token.as_str()] {
            assert!(!logs.contains(secret), "{db:?}: a secret reached the logs");
        }
        bridge.terminate();
    }
}

/// An access token lifetime outside 5m to 6h stops the binary with a message naming the setting.
#[test]
fn an_out_of_range_token_lifetime_is_a_configuration_error() {
    let out = support::cli(
        &[("SCIM_BRIDGE_OAUTH_TOKEN_TTL".to_string(), "7h".to_string())],
        &["config", "check"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SCIM_BRIDGE_OAUTH_TOKEN_TTL") && stderr.contains("5m to 6h"),
        "{stderr}"
    );
}
