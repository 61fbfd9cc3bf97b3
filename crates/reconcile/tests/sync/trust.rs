//! The accounts the bridge must never take over: its own, and (unless allowed) accounts that
//! existed in Coder before it.

use crate::harness::spawn;
use crate::harness::{Env, TestDb, worker_config};
use crate::sync_tests;
use coder::types::LoginType;
use coder_fake::UserStatus;
use reconcile::{ISSUE_ADOPTION_REFUSED, ISSUE_BRIDGE_ACCOUNT};
use serde_json::json;

sync_tests!(
    paused;
    the_bridge_account_is_never_offboarded_and_the_worker_keeps_running,
    an_existing_account_is_not_adopted_by_default,
    adopt_existing_adopts_a_member_but_never_an_unlisted_owner,
    an_adopted_owner_keeps_its_tokens_and_workspaces_when_offboarded,
);

async fn the_bridge_account_is_never_offboarded_and_the_worker_keeps_running(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let bridge = env.fake.owner_id();
    let keys_before: Vec<_> = env
        .coder()
        .keys
        .into_iter()
        .filter(|k| k.user_id == bridge)
        .collect();
    assert!(
        !keys_before.is_empty(),
        "the bridge's token is a key of admin"
    );
    env.fake.create_workspace("admin", "ops", true).unwrap();

    let running = spawn(env.worker(worker_config("w1")));
    // The IdP sends the bridge's own account, deactivated.
    let impostor = env
        .create_user("admin@coder.test", json!({ "active": false }))
        .await;
    env.run_until_outbox_empty().await;
    let issues = env.issues(ISSUE_BRIDGE_ACCOUNT).await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].resource_id, impostor.id);
    assert!(issues[0].detail.contains("admin"), "{}", issues[0].detail);
    assert_eq!(
        writes_since(&env.coder(), 0),
        Vec::<String>::new(),
        "no write to Coder at all"
    );
    // A later user still goes through: the worker is running.
    let later = env.create_user("later@corp.com", json!({})).await;
    env.run_until_outbox_empty().await;
    env.run_until_coder("the later user", |s| s.user("later").is_some())
        .await;

    let state = env.coder();
    let admin = state.user_by_id(bridge).unwrap();
    assert_ne!(admin.status, UserStatus::Suspended);
    assert!(admin.roles.contains("owner"), "{:?}", admin.roles);
    let keys_after: Vec<_> = state
        .keys
        .iter()
        .filter(|k| k.user_id == bridge)
        .cloned()
        .collect();
    assert_eq!(keys_after, keys_before, "the bridge's key is untouched");
    assert!(
        state
            .workspaces
            .iter()
            .filter(|w| w.owner_id == bridge)
            .all(|w| w.status == coder_fake::WorkspaceStatus::Running),
        "the bridge's workspace keeps running"
    );
    assert!(!env.is_mapped(&impostor.id).await, "never mapped");
    assert!(env.is_mapped(&later.id).await);

    // Reactivated, then deleted by the IdP: still nothing happens to the account.
    env.set_active(&impostor.id, true).await;
    env.delete(scim::ResourceKind::User, &impostor.id).await;
    env.run_until_outbox_empty().await;
    let state = env.coder();
    assert_ne!(
        state.user_by_id(bridge).unwrap().status,
        UserStatus::Suspended
    );
    assert!(!state.user_by_id(bridge).unwrap().deleted);
    assert!(!running.task.is_finished(), "the worker is still running");
    running.stop().await;
}

/// Calls the fake answered since `from` that change something, whatever their outcome.
fn writes_since(state: &coder_fake::FakeState, from: usize) -> Vec<String> {
    state.calls[from..]
        .iter()
        .filter(|c| c.method != "GET")
        .map(|c| format!("{} {}", c.method, c.route))
        .collect()
}

/// A Coder owner made by hand (not by the bridge).
async fn hand_made_owner(env: &Env, username: &str, email: &str) -> coder::types::User {
    let owner = env.hand_made_user(username, email, LoginType::Oidc).await;
    env.owner
        .set_site_roles(owner.id, &["owner".to_owned()])
        .await
        .unwrap();
    owner
}

async fn an_existing_account_is_not_adopted_by_default(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let existing = env
        .hand_made_user("bobby", "bob@corp.com", LoginType::Oidc)
        .await;
    env.fake.create_api_token("bobby", "laptop").unwrap();
    let bob = env
        .create_user(
            "bob@corp.com",
            json!({ "displayName": "Robert", "active": false }),
        )
        .await;
    let before = env.coder().calls.len();
    env.drain().await;

    let state = env.coder();
    assert_eq!(
        writes_since(&state, before),
        Vec::<String>::new(),
        "no write at all"
    );
    let account = state.user_by_id(existing.id).unwrap();
    assert_ne!(account.status, UserStatus::Suspended);
    assert_eq!(account.username, "bobby");
    assert!(state.keys.iter().any(|k| k.user_id == existing.id));
    assert!(!env.is_mapped(&bob.id).await);
    let issues = env.issues(ISSUE_ADOPTION_REFUSED).await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].resource_id, bob.id);
    assert!(
        issues[0].detail.contains("bobby") && issues[0].detail.contains("adopt_existing"),
        "{}",
        issues[0].detail
    );
}

async fn adopt_existing_adopts_a_member_but_never_an_unlisted_owner(db: TestDb) {
    let env = Env::start(db, false, "[users]\nadopt_existing = true").await;
    let member = env
        .hand_made_user("carla", "carla@corp.com", LoginType::Oidc)
        .await;
    let owner = hand_made_owner(&env, "root", "root@corp.com").await;
    let carla = env.create_user("carla@corp.com", json!({})).await;
    let root = env
        .create_user("root@corp.com", json!({ "active": false }))
        .await;
    let before = env.coder().calls.len();
    env.drain().await;

    let mapping = env.mapping(&carla.id).await;
    assert!(mapping.adopted);
    assert_eq!(mapping.coder_user_id, member.id);
    assert!(!env.is_mapped(&root.id).await);
    let state = env.coder();
    let account = state.user_by_id(owner.id).unwrap();
    assert_ne!(account.status, UserStatus::Suspended);
    assert!(account.roles.contains("owner"));
    let issues = env.issues(ISSUE_ADOPTION_REFUSED).await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].resource_id, root.id);
    assert!(
        issues[0].detail.contains("adopt_owners"),
        "{}",
        issues[0].detail
    );
    // Every write went to the adopted member (its organization, profile, roles), none to root.
    let writes = writes_since(&state, before);
    assert!(
        !writes.iter().any(|w| w.contains("/status/")),
        "nothing suspended: {writes:?}"
    );
}

async fn an_adopted_owner_keeps_its_tokens_and_workspaces_when_offboarded(db: TestDb) {
    let rules = r#"
        [users]
        adopt_existing = true
        adopt_owners = ["Root@Corp.com"]
        [[roles.rules]]
        group = "admins"
        site_roles = ["owner"]
    "#;
    let env = Env::start(db, false, rules).await;
    let owner = hand_made_owner(&env, "root", "root@corp.com").await;
    env.fake.create_api_token("root", "automation").unwrap();
    env.fake.create_workspace("root", "ops", true).unwrap();
    let root = env.create_user("root@corp.com", json!({})).await;
    env.create_group("admins", &[&root.id]).await;
    env.drain().await;
    assert!(env.mapping(&root.id).await.adopted, "listed, so adopted");

    env.set_active(&root.id, false).await;
    env.drain().await;
    let state = env.coder();
    assert!(
        state
            .keys
            .iter()
            .any(|k| k.user_id == owner.id && k.token_name == "automation"),
        "the adopted owner's token is kept"
    );
    assert!(
        state
            .workspaces
            .iter()
            .filter(|w| w.owner_id == owner.id)
            .all(|w| w.status == coder_fake::WorkspaceStatus::Running),
        "its workspace keeps running"
    );
    assert_eq!(
        state.count_calls("DELETE", "/api/v2/users/{user}/keys/{keyid}"),
        0
    );
}
