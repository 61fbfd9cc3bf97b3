//! `[users] allowed_email_domains` through the real binary: a user Coder would refuse at OIDC
//! login shows in `status`, `explain user` and `/metrics`, and clears when the IdP fixes the
//! email; a bad value is a configuration error under the name the operator used.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Bridge, available, eventually};

const ISSUE: &str = "email_outside_domains";

/// The open `email_outside_domains` issues `status -o json` lists.
fn outside_issues(bridge: &Bridge) -> Vec<Value> {
    let out = bridge.cli(&["status", "-o", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    status["sync_issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["issue_type"] == ISSUE)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_outside_the_email_domains_shows_in_status_explain_and_metrics() {
    for db in available() {
        let (bridge, fake, _dir) = crate::support::bridge_with_config(
            &db,
            "[users]\nallowed_email_domains = [\"corp.example\"]\n",
        )
        .await;
        let bob_id = crate::support::create_user(&bridge, "bob@gmail.example").await;

        let issues = eventually(Duration::from_secs(30), || async {
            let issues = outside_issues(&bridge);
            (!issues.is_empty()).then_some(issues)
        })
        .await
        .unwrap_or_else(|| panic!("{db:?}: no {ISSUE} issue; logs:\n{}", bridge.log_text()));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0]["resource_id"], bob_id.as_str());
        let detail = issues[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("CODER_OIDC_EMAIL_DOMAIN") && detail.contains("bob@gmail.example"),
            "{detail}"
        );
        assert_eq!(
            bridge.cli(&["status"]).status.code(),
            Some(1),
            "an open sync issue needs a person"
        );
        // `provision` is the default: the account exists all the same.
        assert!(
            fake.state()
                .users
                .iter()
                .any(|u| u.email == "bob@gmail.example")
        );

        let out = bridge.cli(&["explain", "user", "bob@gmail.example", "-o", "json"]);
        assert!(out.status.success(), "{db:?}: {out:?}");
        let explained: Value = serde_json::from_slice(&out.stdout).unwrap();
        let verdict = explained["desired_user"]["email_domain"].as_str().unwrap();
        assert!(verdict.starts_with("outside: "), "{verdict}");
        assert!(
            explained["sync_issues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["issue_type"] == ISSUE)
        );
        let table =
            String::from_utf8_lossy(&bridge.cli(&["explain", "user", "bob@gmail.example"]).stdout)
                .into_owned();
        assert!(table.contains("email domain:"), "{table}");

        let counted = eventually(Duration::from_secs(30), || async {
            bridge
                .metrics()
                .await
                .contains("scim_bridge_users_outside_email_domains 1")
                .then_some(())
        })
        .await;
        assert!(counted.is_some(), "{db:?}: {}", bridge.metrics().await);

        // The IdP fixes the email: the issue clears at the next reconcile.
        let (status, body) = bridge
            .call(
                "PATCH",
                &format!("/Users/{bob_id}"),
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "emails",
                        "value": [{"primary": true, "value": "bob@corp.example"}]}]
                })),
            )
            .await;
        assert_eq!(status, 200, "{db:?}: {body}");
        let cleared = eventually(Duration::from_secs(30), || async {
            outside_issues(&bridge).is_empty().then_some(())
        })
        .await;
        assert!(cleared.is_some(), "{db:?}: the issue stayed open");
    }
}

#[test]
fn bad_email_domain_settings_are_configuration_errors_under_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::write_file(
        dir.path(),
        "bridge.toml",
        "[users]\nallowed_email_domains = [\"*.corp.example\"]\n",
    );
    let database = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let envs: Vec<(String, String)> = vec![
        ("SCIM_BRIDGE_DATABASE_URL".into(), database),
        ("SCIM_BRIDGE_CONFIG".into(), config.display().to_string()),
    ];
    let file_error = format!(
        "error: users.allowed_email_domains[0] ({}:2)",
        config.display()
    );
    // Any command refuses the rules before it starts, naming the key and its line.
    let out = crate::support::cli(&envs, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&file_error), "{stderr}");

    let out = crate::support::cli(
        &[
            envs,
            vec![("SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN".into(), "drop".into())],
        ]
        .concat(),
        &["config", "check"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error: SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN: unknown value \"drop\""),
        "{stderr}"
    );
    assert!(stderr.contains(&file_error), "{stderr}");
}
