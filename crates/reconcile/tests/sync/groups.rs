//! Groups.

use crate::harness::{Env, TestDb, calls};
use crate::sync_tests;
use coder::types::LoginType;
use coder_fake::FakeState;
use reconcile::ISSUE_GROUP_NAME_CONFLICT;
use scim::ResourceKind;
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

sync_tests!(
    a_group_is_mirrored_with_its_members,
    membership_changes_are_minimal_and_spare_unmanaged_users,
    a_member_created_after_its_group_joins_it,
    renames_and_delete_policies,
    a_member_outside_the_organization_joins_it_first,
    without_premium_groups_are_kept_but_not_mirrored,
    a_member_whose_mapping_trails_a_rename_is_still_removed,
);

fn members(state: &FakeState, group: &str) -> BTreeSet<Uuid> {
    let org = state.default_organization().unwrap().id;
    state
        .group(org, group)
        .unwrap_or_else(|| panic!("no Coder group {group}"))
        .members
        .clone()
}

async fn a_group_is_mirrored_with_its_members(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let a = env.create_user("a@corp.com", json!({})).await;
    let b = env.create_user("b@corp.com", json!({})).await;
    let long = format!("  Platform Team {}  ", "x".repeat(70));
    let group = env.create_group(&long, &[&a.id, &b.id]).await;
    env.drain().await;

    let state = env.coder();
    let name = format!("platform-team-{}", "x".repeat(70));
    let coder_group = state
        .group(env.fake.default_organization_id(), &name)
        .unwrap();
    assert_eq!(coder_group.display_name.chars().count(), 64);
    assert_eq!(coder_group.display_name, long.trim()[..64].trim_end());
    let want = BTreeSet::from([
        env.coder_user(&a.id).await.id,
        env.coder_user(&b.id).await.id,
    ]);
    assert_eq!(coder_group.members, want);
    let mapping = env
        .store()
        .coder_map()
        .group_get(&group.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (mapping.coder_group_id, mapping.coder_name.as_str()),
        (coder_group.id, name.as_str())
    );
    assert_eq!(
        calls(&state, "PATCH", "/api/v2/groups/{group}", 400),
        0,
        "never a rejected PATCH"
    );
}

async fn membership_changes_are_minimal_and_spare_unmanaged_users(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ids = env.create_users("m", 4).await;
    let group = env.create_group("devs", &[&ids[0], &ids[1], &ids[2]]).await;
    env.drain().await;
    // Someone adds an unmanaged Coder user to the group by hand.
    let outsider = env
        .hand_made_user("outsider", "outsider@corp.com", LoginType::Password)
        .await;
    env.patch_group_by_hand(&group.id, vec![outsider.id], vec![])
        .await;

    env.patch(
        ResourceKind::Group,
        &group.id,
        json!([
            { "op": "remove", "path": format!("members[value eq \"{}\"]", ids[0]) },
            { "op": "add", "path": "members", "value": [{ "value": ids[3] }] }
        ]),
    )
    .await;
    let before = env.coder().calls.len();
    let report = env.reconciler.reconcile_group(&group.id).await.unwrap();
    env.drain().await;

    let u0 = env.coder_user(&ids[0]).await.id;
    let u3 = env.coder_user(&ids[3]).await.id;
    assert_eq!(report.calls.len(), 1, "{:?}", report.calls);
    assert_eq!(report.calls[0]["target"]["add_users"], json!([u3]));
    assert_eq!(report.calls[0]["target"]["remove_users"], json!([u0]));
    let state = env.coder();
    let after = members(&state, "devs");
    assert!(
        after.contains(&outsider.id),
        "an unmanaged member is never removed"
    );
    assert!(!after.contains(&u0) && after.contains(&u3));
    assert_eq!(after.len(), 4);
    let patches = state.calls[before..]
        .iter()
        .filter(|c| c.method == "PATCH")
        .count();
    assert_eq!(patches, 1, "one PATCH for the whole change");
}

async fn a_member_created_after_its_group_joins_it(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let user = env.create_user("late@corp.com", json!({})).await;
    let group = env.create_group("ops", &[&user.id]).await;
    // The group's row runs first: its member has no Coder user yet.
    env.reconciler.reconcile_group(&group.id).await.unwrap();
    assert!(members(&env.coder(), "ops").is_empty());
    // The user's reconcile never writes the group (one writer per Coder group): it queues the
    // group with the mapping it saves, and the group's own reconcile adds it.
    let report = env.reconciler.reconcile_user(&user.id).await.unwrap();
    assert!(
        !report.calls.iter().any(|c| c["call"] == "patch_group"),
        "{:?}",
        report.calls
    );
    assert!(members(&env.coder(), "ops").is_empty());
    let queued = env.outbox_rows(store::OutboxFilter::Pending).await;
    assert!(
        queued
            .iter()
            .any(|e| e.kind == ResourceKind::Group && e.resource_id == group.id),
        "{queued:?}"
    );
    env.drain().await;
    assert_eq!(
        members(&env.coder(), "ops"),
        BTreeSet::from([env.coder_user(&user.id).await.id])
    );
    // And the group's own reconcile then finds nothing to do.
    let report = env.reconciler.reconcile_group(&group.id).await.unwrap();
    assert!(report.calls.is_empty(), "{:?}", report.calls);
}

async fn renames_and_delete_policies(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let keep_env_rules = "[groups]\ndelete_policy = \"keep\"";
    let group = env.create_group("Team A", &[]).await;
    let taken = env.create_group("Team B", &[]).await;
    env.drain().await;
    let id = env.coder_group_id(&group.id).await;

    env.replace(ResourceKind::Group, &group.id, "displayName", "Team Alpha")
        .await;
    env.drain().await;
    let state = env.coder();
    let renamed = state.groups.iter().find(|g| g.id == id).unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.display_name.as_str()),
        ("team-alpha", "Team Alpha")
    );

    // A rename onto a taken name is reported, the rest still applied.
    env.replace(ResourceKind::Group, &taken.id, "displayName", "team alpha!")
        .await;
    env.drain().await;
    assert_eq!(env.issues(ISSUE_GROUP_NAME_CONFLICT).await.len(), 1);
    let state = env.coder();
    let b = state.groups.iter().find(|g| g.name == "team-b").unwrap();
    assert_eq!(b.display_name, "team alpha!");

    env.delete(ResourceKind::Group, &group.id).await;
    env.drain().await;
    assert!(
        env.coder().groups.iter().all(|g| g.id != id),
        "delete_policy = delete"
    );
    assert!(!env.is_group_mapped(&group.id).await);

    // delete_policy = keep leaves the Coder group alone.
    let keep = Env::start(TestDb::sqlite().await, true, keep_env_rules).await;
    let kept = keep.create_group("Kept", &[]).await;
    keep.drain().await;
    keep.delete(ResourceKind::Group, &kept.id).await;
    keep.drain().await;
    assert!(keep.coder().groups.iter().any(|g| g.name == "kept"));
    assert!(!keep.is_group_mapped(&kept.id).await);
}

async fn a_member_outside_the_organization_joins_it_first(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let user = env.create_user("nora@corp.com", json!({})).await;
    env.drain().await;
    let coder_id = env.coder_user(&user.id).await.id;
    env.owner
        .remove_organization_member(env.fake.default_organization_id(), coder_id)
        .await
        .unwrap();
    env.create_group("research", &[&user.id]).await;
    env.drain().await;
    let state = env.coder();
    assert_eq!(members(&state, "research"), BTreeSet::from([coder_id]));
    assert!(
        state
            .user_by_id(coder_id)
            .unwrap()
            .organizations
            .contains_key(&env.fake.default_organization_id())
    );
}

async fn without_premium_groups_are_kept_but_not_mirrored(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("olga@corp.com", json!({})).await;
    env.create_group("everyone-here", &[&user.id]).await;
    env.drain().await;
    let report = env.reconciler.check_capabilities().await.unwrap();
    assert!(!report.groups_mirrored);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("groups are not mirrored"))
    );
    let state = env.coder();
    assert!(state.groups.is_empty());
    assert_eq!(
        calls(
            &state,
            "POST",
            "/api/v2/organizations/{organization}/groups",
            403
        ),
        0,
        "no group call is tried"
    );
}

/// A member's mapping still holds its old username (Coder was renamed, the record was not yet
/// updated): the group still knows it as a managed user and removes it when it leaves.
async fn a_member_whose_mapping_trails_a_rename_is_still_removed(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let user = env.create_user("trail@corp.com", json!({})).await;
    let group = env.create_group("trailing", &[&user.id]).await;
    env.drain().await;
    let coder_id = env.coder_user(&user.id).await.id;
    assert_eq!(
        members(&env.coder(), "trailing"),
        BTreeSet::from([coder_id])
    );
    env.rename_by_hand(coder_id, "trail-renamed", "").await;
    env.patch(
        ResourceKind::Group,
        &group.id,
        json!([{ "op": "remove", "path": format!("members[value eq \"{}\"]", user.id) }]),
    )
    .await;
    env.reconciler.reconcile_group(&group.id).await.unwrap();
    assert!(members(&env.coder(), "trailing").is_empty());
}
