//! Entra's unassign and reassign: unassigning a user (or disabling, soft-deleting, scoping it
//! out) sends `active=false`; assigning it again finds the same SCIM user by `userName` and sends
//! `active=true` (Microsoft's `IsSoftDeleted` mapping; the gallery validation's
//! `Restore_User_Test`). The Coder account must come back as it was: the same account, not a
//! new one.

use crate::harness::{Env, TestDb, calls};
use crate::sync_tests;
use coder_fake::UserStatus;
use scim::ResourceKind;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use store::GetOptions;

sync_tests!(unassign_then_reassign_reactivates_the_same_coder_account);

const RULES: &str = r#"
    [[roles.rules]]
    group = "Platform"
    site_roles = ["template-admin"]
"#;

/// The SCIM user as stored, without what every write changes.
async fn scim_state(env: &Env, id: &str) -> (Value, Vec<String>) {
    let stored = env
        .store()
        .resources()
        .get(ResourceKind::User, id, GetOptions::default())
        .await
        .unwrap();
    let groups = stored
        .groups
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.value)
        .collect();
    (Value::Object(stored.attrs), groups)
}

async fn unassign_then_reassign_reactivates_the_same_coder_account(db: TestDb) {
    let env = Env::start(db, true, RULES).await;
    let user = env
        .create_user(
            "restore@contoso.com",
            json!({
                "displayName": "Restore Me",
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "title": "Tour Guide",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "department": "Tour Operations",
                    "manager": "26118915-6090-4610-87e4-49d8ca9f808d"
                }
            }),
        )
        .await;
    let other = env.create_user("stays@contoso.com", json!({})).await;
    let group = env.create_group("Platform", &[&user.id, &other.id]).await;
    env.drain().await;

    let before = env.coder_user(&user.id).await;
    // Dormant until the first login (Coder); activation makes it active.
    assert_ne!(before.status, UserStatus::Suspended);
    assert!(before.roles.contains("template-admin"), "{before:?}");
    let mapping = env.mapping(&user.id).await;
    let group_id = env.coder_group_id(&group.id).await;
    let members = |env: &Env| -> BTreeSet<uuid::Uuid> {
        env.coder()
            .groups
            .iter()
            .find(|g| g.id == group_id)
            .expect("the Coder group")
            .members
            .clone()
    };
    let members_before = members(&env);
    assert!(members_before.contains(&before.id));
    let scim_before = scim_state(&env, &user.id).await;
    let created = calls(&env.coder(), "POST", "/api/v2/users", 201);
    assert_eq!(created, 2);

    // Both of Entra's dialects: without aadOptscim062020 (capitalised op, string booleans),
    // then with it.
    for (disable, enable) in [(json!("False"), json!("True")), (json!(false), json!(true))] {
        env.patch(
            ResourceKind::User,
            &user.id,
            json!([{ "op": "Replace", "path": "active", "value": disable }]),
        )
        .await;
        env.drain().await;
        let suspended = env.coder_user(&user.id).await;
        assert_eq!(
            suspended.id, before.id,
            "the account is suspended, not replaced"
        );
        assert_eq!(suspended.status, UserStatus::Suspended);
        let (attrs, groups) = scim_state(&env, &user.id).await;
        assert_eq!(attrs["active"], false);
        assert_eq!(groups, scim_before.1, "memberships kept while inactive");

        env.replace(ResourceKind::User, &user.id, "active", enable)
            .await;
        env.drain().await;
        let after = env.coder_user(&user.id).await;
        assert_eq!(after.status, UserStatus::Active);
        assert_eq!(
            (
                after.id,
                &after.username,
                &after.email,
                &after.name,
                after.login_type,
                &after.roles,
                &after.organizations,
            ),
            (
                before.id,
                &before.username,
                &before.email,
                &before.name,
                before.login_type,
                &before.roles,
                &before.organizations,
            ),
            "the same Coder account, as it was"
        );
        assert_eq!(
            env.mapping(&user.id).await.coder_user_id,
            mapping.coder_user_id
        );
        assert_eq!(members(&env), members_before, "group membership as it was");
        assert_eq!(
            scim_state(&env, &user.id).await,
            scim_before,
            "the SCIM user as it was"
        );
    }
    let state = env.coder();
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 201),
        created,
        "no new Coder account"
    );
    assert_eq!(state.count_calls("DELETE", "/api/v2/users/{user}"), 0);
    assert_eq!(
        calls(&state, "PUT", "/api/v2/users/{user}/status/activate", 200),
        2
    );
}
