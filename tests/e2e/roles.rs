//! Okta entitlements as Coder roles through the real binary and the Coder fake: a role granted
//! on the SCIM user reaches Coder, joins what a group rule gives, and leaves Coder when revoked;
//! the audit names what granted each role.

use std::collections::BTreeSet;
use std::time::Duration;

use coder_fake::FakeHandle;
use serde_json::{Value, json};

use crate::support::{Bridge, Db, eventually};
use crate::user;

const RULES: &str = r#"
[[roles.rules]]
group = "coder-auditors"
site_roles = ["auditor"]

[roles.grantable]
site_roles = ["template-admin", "auditor"]
org_roles = { default = ["organization-admin"] }
"#;

/// The (site roles, default-organization roles) of the Coder user with this email, once it exists.
fn coder_roles(fake: &FakeHandle, email: &str) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let state = fake.state();
    let user = state
        .users
        .iter()
        .find(|u| !u.deleted && u.email == email)?;
    let org = user
        .organizations
        .get(&fake.default_organization_id())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r != "organization-member")
        .collect();
    Some((user.roles.clone(), org))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

async fn converges_to(
    fake: &FakeHandle,
    email: &str,
    site: &[&str],
    org: &[&str],
) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let want = (set(site), set(org));
    let reached = eventually(Duration::from_secs(20), || async {
        coder_roles(fake, email).filter(|r| *r == want)
    })
    .await;
    reached.or_else(|| coder_roles(fake, email))
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_and_revoked_roles_reach_coder() {
    for db in crate::support::available() {
        let (bridge, fake, _dir) = crate::support::bridge_with_config(&db, RULES).await;
        run(&db, &bridge, &fake).await;
        drop(bridge);
        fake.stop().await;
    }
}

async fn run(db: &Db, bridge: &Bridge, fake: &FakeHandle) {
    let email = "grace@example.com";
    let (status, roles) = bridge.call("GET", "/Roles", None).await;
    assert_eq!(status, 200, "{db:?}: {roles}");
    assert_eq!(roles["totalResults"], 3, "{db:?}: {roles}");

    // Okta's shape: roles[].value is the Role's id, display its displayName.
    let mut body = user(email);
    body["roles"] = json!([
        {"value": "template-admin", "display": "Coder template-admin"},
        {"value": "default:organization-admin", "display": "Coder organization-admin in organization default"}
    ]);
    let (status, created) = bridge.call("POST", "/Users", Some(&body)).await;
    assert_eq!(status, 201, "{db:?}: {created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        converges_to(fake, email, &["template-admin"], &["organization-admin"]).await,
        Some((set(&["template-admin"]), set(&["organization-admin"]))),
        "{db:?}: the granted roles reach Coder"
    );

    // A group rule adds to the SCIM roles (a union).
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "coder-auditors",
        "members": [{"value": id}]
    });
    let (status, answer) = bridge.call("POST", "/Groups", Some(&group)).await;
    assert_eq!(status, 201, "{db:?}: {answer}");
    assert_eq!(
        converges_to(
            fake,
            email,
            &["auditor", "template-admin"],
            &["organization-admin"]
        )
        .await,
        Some((
            set(&["auditor", "template-admin"]),
            set(&["organization-admin"])
        )),
        "{db:?}: group rule and SCIM roles together"
    );

    // Revoked in Okta: Okta PUTs the user without the roles; they leave Coder, the group's stays.
    let mut revoked = user(email);
    revoked["roles"] = json!([]);
    let (status, answer) = bridge
        .call("PUT", &format!("/Users/{id}"), Some(&revoked))
        .await;
    assert_eq!(status, 200, "{db:?}: {answer}");
    assert_eq!(
        converges_to(fake, email, &["auditor"], &[]).await,
        Some((set(&["auditor"]), set(&[]))),
        "{db:?}: revoked roles are removed in Coder"
    );

    // Not offered: refused, and Coder keeps what it has.
    let mut owner = user(email);
    owner["roles"] = json!([{"value": "owner"}]);
    let (status, answer) = bridge
        .call("PUT", &format!("/Users/{id}"), Some(&owner))
        .await;
    assert_eq!(status, 400, "{db:?}: {answer}");
    assert_eq!(answer["scimType"], "invalidValue");

    // The audit says which entitlement granted what.
    let out = bridge.cli(&["audit", "export"]);
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        text.contains(r#"SCIM role \"template-admin\""#),
        "{db:?}: the site-role grant names its entitlement: {text}"
    );
    assert!(
        text.contains(r#"SCIM role \"default:organization-admin\""#),
        "{db:?}: the organization-role grant names its entitlement"
    );
    assert!(
        text.contains(r#"group rule \"coder-auditors\""#),
        "{db:?}: the group rule is named too"
    );
}
