//! SCIM entitlements (`[entitlements.grantable]`) as Coder organization memberships: held, the
//! user joins; revoked, the user leaves, unless a role there or `users.organization` keeps them.

use crate::harness::{Env, TestDb, fake_options};
use crate::sync_tests;
use coder_fake::FakeOptions;
use scim::ResourceKind;
use serde_json::json;

sync_tests!(
    an_entitlement_joins_and_its_revocation_leaves,
    a_role_in_the_organization_keeps_the_member_after_the_entitlement_goes,
);

const RULES: &str = r#"
    [roles.grantable]
    site_roles = ["auditor"]
    org_roles = { eng = ["organization-auditor"] }
    [entitlements.grantable]
    organizations = ["eng", "research"]
"#;

async fn env(db: TestDb) -> Env {
    let options = FakeOptions {
        extra_organizations: vec!["eng".into(), "research".into()],
        ..fake_options(true)
    };
    Env::start_with(db, options, RULES).await
}

async fn an_entitlement_joins_and_its_revocation_leaves(db: TestDb) {
    let env = env(db).await;
    let eng = env.fake.organization_id("eng").unwrap();
    let research = env.fake.organization_id("research").unwrap();
    let home = env.fake.default_organization_id();
    let user = env
        .create_user(
            "ena@corp.com",
            json!({"entitlements": [{"value": "eng", "display": "Member of Coder organization eng", "type": "Entitlement"}]}),
        )
        .await;
    env.drain().await;
    let coder = env.coder_user(&user.id).await;
    assert!(coder.organizations.contains_key(&home));
    assert!(coder.organizations.contains_key(&eng), "{coder:?}");
    assert!(!coder.organizations.contains_key(&research));
    // The audit says which entitlement granted the membership.
    let changes: Vec<String> = env
        .worker_audit(&user.id)
        .await
        .iter()
        .map(|r| r.change.to_string())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.contains("add_organization_member")
                && c.contains(r#"SCIM entitlement \"eng\""#)),
        "no granted_by in {changes:#?}"
    );

    // Okta swaps the entitlement: Governance removes eng and adds research.
    env.patch(
        ResourceKind::User,
        &user.id,
        json!([
            {"op": "remove", "path": "entitlements[value eq \"eng\"]"},
            {"op": "add", "path": "entitlements", "value": [{"value": "research"}]}
        ]),
    )
    .await;
    env.drain().await;
    let coder = env.coder_user(&user.id).await;
    assert!(!coder.organizations.contains_key(&eng), "{coder:?}");
    assert!(coder.organizations.contains_key(&research));
    assert!(coder.organizations.contains_key(&home), "never leaves home");

    // Level-triggered: a membership added by hand in an offered organization is taken back.
    env.owner
        .add_organization_member(eng, coder.id)
        .await
        .unwrap();
    env.remove(ResourceKind::User, &user.id, "entitlements")
        .await;
    env.drain().await;
    let coder = env.coder_user(&user.id).await;
    assert!(!coder.organizations.contains_key(&eng), "{coder:?}");
    assert!(!coder.organizations.contains_key(&research), "{coder:?}");
    assert!(coder.organizations.contains_key(&home));
}

async fn a_role_in_the_organization_keeps_the_member_after_the_entitlement_goes(db: TestDb) {
    let env = env(db).await;
    let eng = env.fake.organization_id("eng").unwrap();
    let user = env
        .create_user(
            "rolf@corp.com",
            json!({
                "entitlements": [{"value": "eng"}],
                "roles": [{"value": "eng:organization-auditor"}]
            }),
        )
        .await;
    env.drain().await;
    let coder = env.coder_user(&user.id).await;
    assert_eq!(
        coder.organizations[&eng].iter().collect::<Vec<_>>(),
        ["organization-auditor"]
    );
    env.remove(ResourceKind::User, &user.id, "entitlements")
        .await;
    env.drain().await;
    let coder = env.coder_user(&user.id).await;
    assert!(
        coder.organizations.contains_key(&eng),
        "the role keeps the membership: {coder:?}"
    );
    // The role goes too: nothing keeps the user there any more.
    env.remove(ResourceKind::User, &user.id, "roles").await;
    env.drain().await;
    assert!(
        !env.coder_user(&user.id)
            .await
            .organizations
            .contains_key(&eng)
    );
}
