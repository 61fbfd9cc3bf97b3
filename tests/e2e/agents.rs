//! Agents through the real binary and the Coder fake: `agent token|tokens|revoke` and
//! `explain agent` on Premium, and on Community Edition a sync issue while people keep syncing.

use std::time::Duration;

use coder_fake::{FakeHandle, UserStatus};
use serde_json::{Value, json};

use crate::support::{Bridge, available, bridge_on_fake, create, eventually, premium_fake};
use crate::user;

const CONFIG: &str = r#"
[agents]
max_token_lifetime = "4h"
token_scopes = ["coder:workspaces.access", "workspace:read"]
"#;

/// (exit code, stdout, stderr) of a CLI run against the bridge's database and Coder.
fn run(bridge: &Bridge, args: &[&str]) -> (i32, String, String) {
    let out = bridge.cli(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `scim-bridge agent SUBCOMMAND --agent AGENT ARGS…`, as `run` reports it.
fn agent_command(
    bridge: &Bridge,
    subcommand: &str,
    agent: &str,
    args: &[&str],
) -> (i32, String, String) {
    let mut command = vec!["agent", subcommand, "--agent", agent];
    command.extend_from_slice(args);
    run(bridge, &command)
}

fn agent(name: &str, owners: &[&str]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
        "agentUserName": name,
        "displayName": name,
        "active": true,
        "owners": owners.iter().map(|id| json!({"value": id, "type": "User"})).collect::<Vec<_>>()
    })
}

/// The service account called `username` once it is in `status`.
async fn service_account_in(
    fake: &FakeHandle,
    username: &str,
    status: UserStatus,
) -> coder_fake::FakeUser {
    let found = eventually(Duration::from_secs(30), || async {
        fake.state()
            .users
            .into_iter()
            .find(|u| u.username == username && !u.deleted && u.status == status)
    })
    .await;
    found.unwrap_or_else(|| panic!("no {status:?} account {username}: {:?}", fake.state().users))
}

/// Whether Coder takes `token` (a `Coder-Session-Token`) for a request of its own.
async fn coder_accepts(bridge: &Bridge, fake: &FakeHandle, token: &str) -> bool {
    bridge
        .http
        .get(format!("{}/api/v2/users/me", fake.base_url()))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

fn audit_export(bridge: &Bridge) -> String {
    let (code, stdout, stderr) = run(bridge, &["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    stdout
}

fn audit_records(export: &str, operation: &str) -> Vec<Value> {
    export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["operation"] == operation)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_tokens_are_minted_within_bounds_listed_revoked_and_explained() {
    for db in available() {
        let (bridge, fake, _dir) = bridge_on_fake(&db, CONFIG, premium_fake().await).await;
        let ann = create(&bridge, "/Users", &user("ann@corp.example")).await;
        let agent_id = create(&bridge, "/Agents", &agent("review-bot", &[&ann])).await;
        let account = service_account_in(&fake, "review-bot", UserStatus::Active).await;
        assert!(account.is_service_account && account.email.is_empty());

        // Minted: the token is printed once, as the last line, and works in Coder.
        let (code, stdout, stderr) = agent_command(
            &bridge,
            "token",
            "review-bot",
            &[
                "--lifetime",
                "2h",
                "--scopes",
                "coder:workspaces.access,workspace:read",
                "--name",
                "run-1",
            ],
        );
        assert_eq!(code, 0, "{db:?}: {stderr}");
        let token = stdout.lines().last().unwrap().trim().to_owned();
        assert_eq!(stdout.matches(&token).count(), 1, "{stdout}");
        let key = fake
            .state()
            .keys
            .into_iter()
            .find(|k| k.user_id == account.id && k.token_name == "run-1")
            .expect("the key is in Coder");
        assert_eq!(key.token, token, "{db:?}");
        assert_eq!(key.scopes, ["coder:workspaces.access", "workspace:read"]);
        assert_eq!((key.expires_at - key.created_at).num_hours(), 2);
        assert!(stdout.contains(&format!("(id {})", key.id)), "{stdout}");
        assert!(coder_accepts(&bridge, &fake, &token).await);

        // Refused, with the usage exit code, and nothing reaches Coder.
        let keys_before = fake.state().keys.len();
        let (code, stdout, stderr) =
            agent_command(&bridge, "token", "review-bot", &["--lifetime", "5h"]);
        assert_eq!(code, 2, "{db:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("agent tokens live at most 4h")
                && stderr.contains("[agents] max_token_lifetime"),
            "{stderr}"
        );
        for scopes in ["all", "coder:workspaces.access,template:write"] {
            let (code, stdout, stderr) =
                agent_command(&bridge, "token", "review-bot", &["--scopes", scopes]);
            assert_eq!(code, 2, "{db:?} {scopes}: {stdout}{stderr}");
            assert!(
                stderr.contains("is not allowed for agent tokens")
                    && stderr.contains("coder:workspaces.access, workspace:read"),
                "{stderr}"
            );
        }
        assert_eq!(fake.state().keys.len(), keys_before, "{db:?}");

        // Listed, never with the value.
        let (code, stdout, stderr) = agent_command(&bridge, "tokens", "review-bot", &[]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&key.id) && l.contains("run-1")),
            "{stdout}"
        );
        assert!(!stdout.contains(&token), "{db:?}: the list shows a token");

        // The mint is audited with the key id; no record holds the token, refusals none.
        let export = audit_export(&bridge);
        let mints = audit_records(&export, "agent.token.mint");
        assert_eq!(mints.len(), 1, "{db:?}: {mints:?}");
        assert_eq!(mints[0]["actor"], "cli");
        assert_eq!(mints[0]["resource_id"], agent_id.as_str());
        assert_eq!(mints[0]["change"]["key_id"], key.id.as_str());
        assert_eq!(mints[0]["change"]["lifetime_seconds"], 7200);
        let secret = token.split_once('-').map_or(token.as_str(), |(_, s)| s);
        assert!(
            !export.contains(secret),
            "{db:?}: the audit log holds the token"
        );

        // Revoked: asked first (refused without --yes in a script), then gone from Coder.
        let (code, _, stderr) =
            agent_command(&bridge, "revoke", "review-bot", &["--token", "run-1"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(coder_accepts(&bridge, &fake, &token).await);
        let (code, stdout, stderr) = agent_command(
            &bridge,
            "revoke",
            "review-bot",
            &["--token", "run-1", "--yes"],
        );
        assert_eq!(code, 0, "{db:?}: {stderr}");
        assert!(stdout.contains("revoked 1 token(s)"), "{stdout}");
        assert!(!coder_accepts(&bridge, &fake, &token).await, "{db:?}");
        for name in ["run-2", "run-3"] {
            let (code, _, stderr) =
                agent_command(&bridge, "token", "review-bot", &["--name", name]);
            assert_eq!(code, 0, "{stderr}");
        }
        let (code, stdout, stderr) =
            agent_command(&bridge, "revoke", "review-bot", &["--all", "--yes"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("revoked 2 token(s)"), "{stdout}");
        assert!(!fake.state().keys.iter().any(|k| k.user_id == account.id));
        assert_eq!(
            audit_records(&audit_export(&bridge), "agent.token.revoke").len(),
            3,
            "{db:?}"
        );

        // Explained: the owner, and why the account is active.
        let (code, stdout, stderr) = run(&bridge, &["explain", "agent", "review-bot"]);
        assert_eq!(code, 0, "{db:?}: {stderr}");
        assert!(stdout.contains(&format!("- {ann} active")), "{stdout}");
        assert!(
            stdout.contains("active: the IdP says active and an owner is active"),
            "{stdout}"
        );

        // The last owner leaves: the agent is suspended, explained as such (exit 1), and no
        // token is minted for it (a run-time refusal, 5).
        let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                "Operations": [{"op": "replace", "path": "active", "value": false}]});
        let (status, body) = bridge
            .call("PATCH", &format!("/Users/{ann}"), Some(&deactivate))
            .await;
        assert_eq!(status, 200, "{body}");
        service_account_in(&fake, "review-bot", UserStatus::Suspended).await;
        let (code, stdout, stderr) = run(&bridge, &["explain", "agent", "review-bot"]);
        assert_eq!(code, 1, "{db:?}: {stderr}");
        assert!(stdout.contains("SUSPENDED"), "{stdout}");
        assert!(stdout.contains(&format!("- {ann} inactive")), "{stdout}");
        assert!(
            stdout.contains("no owner of the agent is active"),
            "{db:?}: {stdout}"
        );
        let (code, _, stderr) = agent_command(&bridge, "token", "review-bot", &[]);
        assert_eq!(code, 5, "{stderr}");
        assert!(stderr.contains("is suspended"), "{stderr}");

        // A person's account is never an agent's.
        let (code, _, stderr) = agent_command(&bridge, "tokens", "nobody-bot", &[]);
        assert_eq!(code, 5, "{stderr}");
        assert!(stderr.contains("no agent is called"), "{stderr}");
        drop(bridge);
        fake.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_community_edition_agents_wait_with_a_sync_issue_and_people_still_sync() {
    let db = crate::support::Db::Sqlite;
    let community = coder_fake::CoderFake::start(coder_fake::FakeOptions {
        premium: false,
        rate_limit_per_minute: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let (bridge, fake, _dir) = bridge_on_fake(&db, CONFIG, community).await;
    let agent_id = create(&bridge, "/Agents", &agent("deploy-bot", &[])).await;
    create(&bridge, "/Users", &user("alice@corp.example")).await;
    let alice = eventually(Duration::from_secs(30), || async {
        fake.state()
            .users
            .into_iter()
            .find(|u| u.email == "alice@corp.example")
    })
    .await;
    assert!(alice.is_some(), "people still reach Coder");
    let issue = eventually(Duration::from_secs(30), || async {
        let (_, stdout, _) = run(&bridge, &["status", "-o", "json"]);
        let status: Value = serde_json::from_str(&stdout).ok()?;
        status["sync_issues"]
            .as_array()?
            .iter()
            .find(|i| i["resource_id"] == agent_id.as_str())
            .cloned()
    })
    .await
    .expect("a sync issue on the agent");
    assert_eq!(
        issue["issue_type"], "service_accounts_unlicensed",
        "{issue}"
    );
    assert!(
        issue["detail"]
            .as_str()
            .unwrap()
            .contains("service accounts need Coder Premium"),
        "{issue}"
    );
    assert!(!fake.state().users.iter().any(|u| u.is_service_account));

    // No account, so nothing to explain or mint for yet: a run-time answer, 5.
    for args in [
        &["explain", "agent", "deploy-bot"][..],
        &["agent", "token", "--agent", "deploy-bot"][..],
    ] {
        let (code, _, stderr) = run(&bridge, args);
        assert_eq!(code, 5, "{args:?}: {stderr}");
        assert!(
            stderr.contains("has no Coder service account yet"),
            "{stderr}"
        );
    }
    // The SCIM side is whole: the agent reads back as sent.
    let (status, got) = bridge
        .call("GET", &format!("/Agents/{agent_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["agentUserName"], "deploy-bot");
    drop(bridge);
    fake.stop().await;
}
