//! `scim-bridge explain`: one resource's whole story through the real binary, on SQLite and
//! PostgreSQL, with the Coder fake and without a reachable Coder.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Bridge, available, create_group, create_user, eventually};

const RULES: &str = r#"
[[users.login_type_overrides]]
group = "github-users"
login_type = "github"

[[roles.rules]]
group = "coder-admins"
site_roles = ["template-admin"]
"#;

fn explain(bridge: &Bridge, envs: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let mut all = bridge.envs.clone();
    all.extend(envs.iter().cloned());
    let out = crate::support::cli(&all, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `explain WHAT… -o json` prints, once it has succeeded.
fn explained_json(bridge: &Bridge, envs: &[(String, String)], what: &[&str]) -> Value {
    let mut args = vec!["explain"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    let (code, stdout, stderr) = explain(bridge, envs, &args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_names_the_rule_behind_every_role_and_survives_an_unreachable_coder() {
    for db in available() {
        let (bridge, fake, _dir) = crate::support::bridge_with_config(&db, RULES).await;
        let alice_id = create_user(&bridge, "alice@corp.example").await;
        for group in ["coder-admins", "github-users"] {
            create_group(&bridge, group, &[&alice_id]).await;
        }
        let synced = eventually(Duration::from_secs(30), || async {
            fake.state()
                .users
                .iter()
                .any(|u| {
                    u.email == "alice@corp.example" && u.roles.iter().any(|r| r == "template-admin")
                })
                .then_some(())
        })
        .await;
        assert!(
            synced.is_some(),
            "{db:?}: alice reached Coder with her role"
        );

        // By userName, ignoring case.
        let v = explained_json(&bridge, &[], &["user", "ALICE@corp.example"]);
        assert_eq!(v["kind"], "User");
        assert_eq!(v["id"], alice_id.as_str());
        assert_eq!(v["scim"]["userName"], "alice@corp.example");
        let desired = &v["desired_user"];
        assert_eq!(desired["login_type"], "github", "{db:?}: {v:#}");
        assert!(
            desired["login_type_source"]
                .as_str()
                .unwrap()
                .contains("group github-users"),
            "{db:?}: {v:#}"
        );
        assert_eq!(
            desired["roles"],
            json!([{"scope": "site", "role": "template-admin",
                    "granted_by": "group rule \"coder-admins\""}]),
            "{db:?}"
        );
        assert_eq!(v["coder"]["state"], "found", "{db:?}: {v:#}");
        assert_eq!(
            v["coder"]["object"]["site_roles"],
            json!(["template-admin"])
        );
        assert!(
            v["audit"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["operation"] == "POST /Users"),
            "{db:?}: the IdP's create is among the audit records: {v:#}"
        );
        // The table tells the same story.
        let (code, table, _) = explain(&bridge, &[], &["explain", "user", &alice_id]);
        assert_eq!(code, 0);
        assert!(
            table.contains("site template-admin <- group rule \"coder-admins\""),
            "{table}"
        );

        // A group: the roles its members get through it.
        let g = explained_json(&bridge, &[], &["group", "coder-admins"]);
        assert_eq!(g["roles_granted_to_members"][0]["role"], "template-admin");
        assert_eq!(g["related"][0]["value"], alice_id.as_str());

        // Coder down: the stored half still answers, and says Coder did not.
        let down = [(
            "SCIM_BRIDGE_CODER_URL".to_string(),
            "http://127.0.0.1:9".to_string(),
        )];
        let v = explained_json(&bridge, &down, &["user", &alice_id]);
        assert_eq!(v["coder"]["state"], "not reachable", "{v:#}");
        assert_eq!(v["desired_user"]["login_type"], "github");

        // Unknown: a runtime failure (5), not a usage error.
        let (code, _, stderr) = explain(&bridge, &[], &["explain", "user", "nobody"]);
        assert_eq!(code, 5, "{stderr}");
        assert!(stderr.contains("no SCIM User"), "{stderr}");
    }
}
