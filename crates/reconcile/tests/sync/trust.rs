//! The accounts the bridge must never take over: its own, and (unless allowed) accounts that
//! existed in Coder before it.

use crate::harness::spawn;
use crate::harness::{Env, TestDb, worker_config};
use crate::sync_tests;
use coder_fake::UserStatus;
use reconcile::ISSUE_BRIDGE_ACCOUNT;
use serde_json::json;

sync_tests!(the_bridge_account_is_never_offboarded_and_the_worker_keeps_running);

/// Every write the fake answered (method and route), whatever its outcome.
fn writes(state: &coder_fake::FakeState) -> Vec<String> {
    state
        .calls
        .iter()
        .filter(|c| c.method != "GET")
        .map(|c| format!("{} {}", c.method, c.route))
        .collect()
}

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
    env.wait_for_empty_outbox().await;
    let issues = env.issues(ISSUE_BRIDGE_ACCOUNT).await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].resource_id, impostor.id);
    assert!(issues[0].detail.contains("admin"), "{}", issues[0].detail);
    assert_eq!(
        writes(&env.coder()),
        Vec::<String>::new(),
        "no write to Coder at all"
    );
    // A later user still goes through: the worker is running.
    let later = env.create_user("later@corp.com", json!({})).await;
    env.wait_for_empty_outbox().await;
    env.wait_for("the later user", |s| s.user("later").is_some())
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
    assert!(
        env.store()
            .coder_user_get(&impostor.id)
            .await
            .unwrap()
            .is_none(),
        "never mapped"
    );
    assert!(
        env.store()
            .coder_user_get(&later.id)
            .await
            .unwrap()
            .is_some()
    );

    // Reactivated, then deleted by the IdP: still nothing happens to the account.
    env.set_active(&impostor.id, true).await;
    env.delete(scim::ResourceKind::User, &impostor.id).await;
    env.wait_for_empty_outbox().await;
    let state = env.coder();
    assert_ne!(
        state.user_by_id(bridge).unwrap().status,
        UserStatus::Suspended
    );
    assert!(!state.user_by_id(bridge).unwrap().deleted);
    assert!(!running.task.is_finished(), "the worker is still running");
    running.stop().await;
}
