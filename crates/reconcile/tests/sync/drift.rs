//! Drift repair.

use crate::harness::{ADMINS_ARE_AUDITORS, Env, TestDb};
use crate::sync_tests;
use coder_fake::UserStatus;
use reconcile::{DriftKind, DriftProgress, drift};
use serde_json::json;
use store::OutboxPriority;

sync_tests!(
    a_user_reactivated_by_hand_is_suspended_again,
    the_plan_lists_every_kind_without_changing_anything
);

async fn a_user_reactivated_by_hand_is_suspended_again(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("sam@corp.com", json!({})).await;
    env.drain().await;
    env.set_active(&user.id, false).await;
    env.drain().await;
    let coder_id = env.coder_user(&user.id).await.id;
    env.owner.activate_user(coder_id).await.unwrap();

    let mut progress = Vec::new();
    let plan = drift::plan(&env.reconciler, &mut |p| progress.push(p))
        .await
        .unwrap();
    assert_eq!(plan.items.len(), 1, "{plan}");
    assert_eq!(
        (plan.items[0].kind, plan.items[0].priority),
        (DriftKind::UserStatus, OutboxPriority::Offboarding)
    );
    assert!(progress.iter().any(|p| matches!(
        p,
        DriftProgress::UsersChecked {
            checked: 1,
            total: 1
        }
    )));
    assert!(plan.to_string().contains("user_status"));
    assert_eq!(
        env.observer.recorded().drift.get(&DriftKind::UserStatus),
        Some(&1)
    );

    assert_eq!(env.repair_through_outbox(&plan).await, 1);
    assert_eq!(env.coder_status(&user.id).await, UserStatus::Suspended);
    assert!(env.drift_plan().await.is_empty());
}

async fn the_plan_lists_every_kind_without_changing_anything(db: TestDb) {
    let env = Env::start(db, true, ADMINS_ARE_AUDITORS).await;
    let kept = env
        .create_user("tom@corp.com", json!({ "displayName": "Tom" }))
        .await;
    let missing = env.create_user("uma@corp.com", json!({})).await;
    let group = env.create_group("admins", &[&kept.id]).await;
    env.drain().await;
    // Drift by hand: Uma deleted, Tom renamed and stripped of his role, the group emptied.
    let uma = env.coder_user(&missing.id).await.id;
    env.owner.delete_user(uma).await.unwrap();
    let tom = env.coder_user(&kept.id).await.id;
    env.rename_by_hand(tom, "tommy", "T").await;
    env.owner.set_site_roles(tom, &[]).await.unwrap();
    env.patch_group_by_hand(&group.id, vec![], vec![tom]).await;

    let calls_before = env.coder().calls.len();
    let plan = env.drift_plan().await;
    let kinds: Vec<DriftKind> = plan.counts().into_keys().collect();
    assert_eq!(
        kinds,
        vec![
            DriftKind::UserMissing,
            DriftKind::UserProfile,
            DriftKind::UserRoles,
            DriftKind::GroupMembers
        ],
        "{plan}"
    );
    let state = env.coder();
    assert!(
        state.calls[calls_before..]
            .iter()
            .all(|c| c.method == "GET"),
        "a plan only reads"
    );

    env.repair_through_outbox(&plan).await;
    let after = env.drift_plan().await;
    assert!(after.is_empty(), "{after}");
}
