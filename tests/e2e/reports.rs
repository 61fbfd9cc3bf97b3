//! `scim-bridge report access|offboarding` and `[orphans]` through the real binary, on SQLite
//! and PostgreSQL, against the Coder fake.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Bridge, available, create_group, create_user, eventually};

const RULES: &str = r#"
[[roles.rules]]
group = "coder-admins"
site_roles = ["template-admin"]
"#;

fn run(bridge: &Bridge, envs: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut all = bridge.envs.clone();
    all.extend(envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let out = crate::support::cli(&all, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn owner_client(fake: &coder_fake::FakeHandle) -> coder::CoderClient {
    coder::CoderClient::new(coder::CoderConfig::new(
        fake.base_url().parse().unwrap(),
        coder::SessionToken::new(fake.owner_token()),
    ))
    .unwrap()
}

async fn hand_made(client: &coder::CoderClient, username: &str) {
    client
        .create_user(&coder::types::CreateUserRequest {
            email: format!("{username}@corp.example"),
            username: username.into(),
            name: String::new(),
            login_type: coder::types::LoginType::Password,
            organization_ids: vec![coder::types::DEFAULT_ORGANIZATION_ALIAS],
            user_status: None,
            service_account: false,
        })
        .await
        .unwrap();
}

fn rows_of(stdout: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn access_and_offboarding_reports_and_orphans_through_the_binary() {
    for db in available() {
        let (bridge, fake, _dir) = crate::support::bridge_with_config(&db, RULES).await;
        let alice = create_user(&bridge, "alice@corp.example").await;
        let bob = create_user(&bridge, "bob@corp.example").await;
        create_group(&bridge, "coder-admins", &[&alice]).await;
        let synced =
            eventually(Duration::from_secs(30), || async {
                let state = fake.state();
                (state.users.iter().any(|u| {
                    u.username == "alice" && u.roles.iter().any(|r| r == "template-admin")
                }) && state.users.iter().any(|u| u.username == "bob"))
                .then_some(())
            })
            .await;
        assert!(synced.is_some(), "{db:?}: alice and bob reached Coder");
        let owner = owner_client(&fake);
        hand_made(&owner, "breakglass").await;
        hand_made(&owner, "stray").await;

        // Access: JSON rows with the rule behind each role, and the orphans.
        let (code, stdout, stderr) = run(&bridge, &[], &["report", "access", "-o", "json"]);
        assert_eq!(code, 0, "{db:?}: {stderr}");
        let rows = rows_of(&stdout);
        let find = |coder_username: &str, role: &str| {
            rows.iter()
                .find(|r| r["coder_username"] == coder_username && r["role"] == role)
                .cloned()
                .unwrap_or_else(|| panic!("{db:?}: no {coder_username} {role} row in {stdout}"))
        };
        let admin_role = find("alice", "template-admin");
        assert_eq!(admin_role["granted_by"], "group rule \"coder-admins\"");
        assert_eq!(admin_role["in_coder"], true);
        assert_eq!(admin_role["managed_by"], "scim");
        assert_eq!(admin_role["user"], "alice@corp.example");
        // Coder creates users dormant until their first login.
        assert_eq!(find("bob", "member")["status"], "dormant");
        assert_eq!(find("bob", "member")["scim_active"], true);
        let stray = find("stray", "member");
        assert_eq!(stray["managed_by"], "orphan");
        assert!(
            stray["granted_by"]
                .as_str()
                .unwrap()
                .contains("report only")
        );
        // The fake's `admin` is the owner whose token the bridge uses.
        assert!(
            find("admin", "owner")["granted_by"]
                .as_str()
                .unwrap()
                .contains("the bridge's own account")
        );
        // Managed accounts first, by userName; then orphans by username.
        let order: Vec<&str> = rows
            .iter()
            .filter(|r| r["role"] == "member")
            .map(|r| r["coder_username"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            ["alice", "bob", "admin", "breakglass", "stray"],
            "{db:?}"
        );

        let (code, csv, _) = run(&bridge, &[], &["report", "access", "-o", "csv"]);
        assert_eq!(code, 0);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some(
                "user,scim_id,coder_username,managed_by,scope,role,granted_by,in_coder,status,scim_active,login_type,last_idp_change"
            )
        );
        assert!(
            csv.contains(
                ",site,template-admin,\"group rule \"\"coder-admins\"\"\",true,dormant,true,oidc,"
            ),
            "{db:?}: {csv}"
        );
        assert_eq!(lines.count(), rows.len());

        // [orphans] from the environment: suspend, with a break-glass account allowed.
        let suspend = [
            ("SCIM_BRIDGE_ORPHANS_ACTION", "suspend"),
            ("SCIM_BRIDGE_ORPHANS_ALLOW", "breakglass"),
        ];
        let (code, stdout, stderr) = run(&bridge, &suspend, &["reconcile", "-o", "json"]);
        assert_eq!(code, 0, "{db:?}: {stderr}");
        let plan: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(plan["orphans_suspended"], 1, "{db:?}: {plan:#}");
        let state = fake.state();
        assert_eq!(
            state.user("stray").unwrap().status,
            coder_fake::UserStatus::Suspended
        );
        for spared in ["admin", "breakglass", "alice", "bob"] {
            assert_ne!(
                state.user(spared).unwrap().status,
                coder_fake::UserStatus::Suspended,
                "{db:?}: {spared}"
            );
        }

        // Offboarding: bob leaves; the report shows when Coder acknowledged it.
        let (status, body) = bridge
            .call(
                "PATCH",
                &format!("/Users/{bob}"),
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let acknowledged = eventually(Duration::from_secs(30), || async {
            let (code, stdout, _) = run(
                &bridge,
                &[],
                &["report", "offboarding", "--since", "1h", "-o", "json"],
            );
            assert_eq!(code, 0);
            let rows = rows_of(&stdout);
            rows.iter()
                .find(|r| r["user"] == "bob@corp.example" && r["coder_action"] == "suspended")
                .cloned()
        })
        .await
        .unwrap_or_else(|| panic!("{db:?}: bob's suspension is in the offboarding report"));
        assert_eq!(acknowledged["change"], "deactivated");
        assert!(acknowledged["seconds_to_coder"].as_f64().unwrap() >= 0.0);
        assert_eq!(acknowledged["scim_id"], bob.as_str());

        let (code, table, _) = run(&bridge, &[], &["report", "offboarding"]);
        assert_eq!(code, 0);
        assert!(table.contains("bob@corp.example  deactivated"), "{table}");
        assert!(table.contains("note: [offboarding] delete_api_tokens = true"));
        // A --since far in the future leaves nothing; a bad one is a usage error.
        let (code, stdout, _) = run(
            &bridge,
            &[],
            &[
                "report",
                "offboarding",
                "--since",
                "2999-01-01T00:00:00Z",
                "-o",
                "json",
            ],
        );
        assert_eq!((code, stdout.trim()), (0, "[]"));
        let (code, _, stderr) = run(
            &bridge,
            &[],
            &["report", "offboarding", "--since", "yesterday"],
        );
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("RFC 3339"), "{stderr}");
    }
}
