//! Group → role sync.

use crate::harness::{Env, TestDb};
use crate::sync_tests;
use coder_fake::IdpSyncOptions;
use scim::ResourceKind;
use serde_json::json;
use std::collections::BTreeSet;

sync_tests!(
    roles_are_the_union_over_groups_and_leave_with_the_group,
    roles_apply_without_premium_too,
    a_group_named_like_another_groups_external_id_does_not_borrow_its_rule,
);

const RULES: &str = r#"
    [roles]
    baseline_site_roles = ["auditor"]
    [[roles.rules]]
    group = "coder-admins"
    site_roles = ["owner"]
    [[roles.rules]]
    group_external_id = "tmpl-ext-id"
    site_roles = ["template-admin"]
    [[roles.rules]]
    group = "platform-agents"
    org_roles = { default = ["agents-access"] }
"#;

fn set(roles: &[&str]) -> BTreeSet<String> {
    roles.iter().map(|r| (*r).to_owned()).collect()
}

async fn roles_are_the_union_over_groups_and_leave_with_the_group(db: TestDb) {
    let env = Env::start(db, true, RULES).await;
    let user = env.create_user("pia@corp.com", json!({})).await;
    let other = env.create_user("quinn@corp.com", json!({})).await;
    let admins = env.create_group("Coder-Admins", &[&user.id]).await;
    let templates = env.create_group("Template people", &[&user.id]).await;
    env.replace(
        ResourceKind::Group,
        &templates.id,
        "externalId",
        "tmpl-ext-id",
    )
    .await;
    env.create_group("platform-agents", &[&user.id]).await;
    env.drain().await;

    let org = env.fake.default_organization_id();
    let coder_user = env.coder_user(&user.id).await;
    assert_eq!(
        coder_user.roles,
        set(&["auditor", "owner", "template-admin"])
    );
    assert_eq!(
        coder_user.organizations[&org],
        set(&["agents-access"]),
        "agents-access is an organization role"
    );
    assert_eq!(
        env.coder_user(&other.id).await.roles,
        set(&["auditor"]),
        "baseline only"
    );

    // Leaving a group takes its roles away; the group's change re-queues the member.
    env.remove(ResourceKind::Group, &admins.id, "members").await;
    env.drain().await;
    assert_eq!(
        env.coder_user(&user.id).await.roles,
        set(&["auditor", "template-admin"])
    );

    // Joining does the opposite.
    env.patch(
        ResourceKind::Group,
        &admins.id,
        json!([{ "op": "add", "path": "members", "value": [{ "value": other.id }] }]),
    )
    .await;
    env.drain().await;
    assert_eq!(
        env.coder_user(&other.id).await.roles,
        set(&["auditor", "owner"])
    );

    // A deleted rule group takes its roles away too.
    env.delete(ResourceKind::Group, &admins.id).await;
    env.drain().await;
    assert_eq!(env.coder_user(&other.id).await.roles, set(&["auditor"]));
}

async fn roles_apply_without_premium_too(db: TestDb) {
    let env = Env::start(db, false, RULES).await;
    env.fake.set_idp_sync(IdpSyncOptions::default());
    let user = env.create_user("rex@corp.com", json!({})).await;
    env.create_group("coder-admins", &[&user.id]).await;
    env.drain().await;
    assert_eq!(
        env.coder_user(&user.id).await.roles,
        set(&["auditor", "owner"])
    );
    assert!(
        env.coder().groups.is_empty(),
        "groups are not mirrored without Premium"
    );
}

/// A rule names one attribute: an IdP admin who can name a group cannot take the role of a
/// group they cannot touch by giving theirs that group's externalId as a displayName (or the
/// other way round).
async fn a_group_named_like_another_groups_external_id_does_not_borrow_its_rule(db: TestDb) {
    let env = Env::start(db, false, RULES).await;
    let honest = env.create_user("honest@corp.com", json!({})).await;
    let borrower = env.create_user("borrower@corp.com", json!({})).await;
    let real = env.create_group("Template people", &[&honest.id]).await;
    env.replace(ResourceKind::Group, &real.id, "externalId", "tmpl-ext-id")
        .await;
    // Named after the real group's externalId, and given the admins rule's name as externalId.
    let fake = env.create_group("tmpl-ext-id", &[&borrower.id]).await;
    env.replace(ResourceKind::Group, &fake.id, "externalId", "coder-admins")
        .await;
    env.drain().await;

    assert_eq!(
        env.coder_user(&honest.id).await.roles,
        set(&["auditor", "template-admin"])
    );
    assert_eq!(
        env.coder_user(&borrower.id).await.roles,
        set(&["auditor"]),
        "neither the displayName nor the externalId borrows a rule"
    );
}
