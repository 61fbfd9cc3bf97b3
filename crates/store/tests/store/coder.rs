//! The worker's Coder mapping tables and sync issues.

use crate::backend_tests;
use crate::harness::TestDb;
use clock::IdSource as _;
use scim::ResourceKind;
use serde_json::json;
use store::{Clock, CoderGroup, CoderUser, StoreError};
use uuid::Uuid;

fn mapping(scim_id: &str, username: &str, db: &TestDb) -> CoderUser {
    CoderUser {
        scim_id: scim_id.into(),
        coder_user_id: clock::SystemIds.uuid_v4(),
        coder_username: username.into(),
        login_type: "oidc".into(),
        adopted: false,
        last_applied: json!({"status": "active", "roles": ["member"]}),
        updated_at: db.clock.now(),
    }
}

async fn user_mappings(db: &TestDb) {
    let coder_map = db.store.coder_map();
    let alice = mapping("s1", "alice-smith", db);
    coder_map.user_upsert(&alice).await.unwrap();
    assert_eq!(coder_map.user_get("s1").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        coder_map.user_by_username("Alice-Smith").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(coder_map.user_get("nope").await.unwrap(), None);

    // Coder usernames are unique ignoring case.
    let clash = coder_map
        .user_upsert(&mapping("s2", "ALICE-SMITH", db))
        .await
        .unwrap_err();
    assert!(matches!(clash, StoreError::Uniqueness(_)), "{clash:?}");
    coder_map
        .user_upsert(&mapping("s2", "alice-smith-2", db))
        .await
        .unwrap();

    let adopted = CoderUser {
        adopted: true,
        login_type: "github".into(),
        ..alice
    };
    coder_map.user_upsert(&adopted).await.unwrap();
    let listed = coder_map.user_list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], adopted);
    assert!(coder_map.user_delete("s1").await.unwrap());
    assert!(!coder_map.user_delete("s1").await.unwrap());
}

async fn group_mappings(db: &TestDb) {
    let coder_map = db.store.coder_map();
    let group = CoderGroup {
        scim_id: "g1".into(),
        coder_group_id: clock::SystemIds.uuid_v4(),
        organization_id: Uuid::nil(),
        coder_name: "engineering".into(),
        updated_at: db.clock.now(),
    };
    coder_map.group_upsert(&group).await.unwrap();
    assert_eq!(
        coder_map.group_get("g1").await.unwrap(),
        Some(group.clone())
    );
    let renamed = CoderGroup {
        coder_name: "eng".into(),
        ..group
    };
    coder_map.group_upsert(&renamed).await.unwrap();
    assert_eq!(coder_map.group_list().await.unwrap(), vec![renamed]);
    assert!(coder_map.group_delete("g1").await.unwrap());
    assert_eq!(coder_map.group_get("g1").await.unwrap(), None);
}

async fn sync_issues(db: &TestDb) {
    let issues = db.store.sync_issues();
    let id = issues
        .record(ResourceKind::User, "s1", "username_conflict", "taken")
        .await
        .unwrap();
    let again = issues
        .record(ResourceKind::User, "s1", "username_conflict", "still taken")
        .await
        .unwrap();
    assert_eq!(id, again, "one open issue per resource and type");
    issues
        .record(ResourceKind::Group, "g1", "idp_sync_overlap", "org sync on")
        .await
        .unwrap();
    let open = issues.list(false).await.unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].detail, "still taken");

    assert!(
        issues
            .resolve(ResourceKind::User, "s1", "username_conflict")
            .await
            .unwrap()
    );
    assert!(
        !issues
            .resolve(ResourceKind::User, "s1", "username_conflict")
            .await
            .unwrap()
    );
    assert_eq!(issues.list(false).await.unwrap().len(), 1);
    // A new occurrence after resolution is a new issue.
    let reopened = issues
        .record(ResourceKind::User, "s1", "username_conflict", "again")
        .await
        .unwrap();
    assert_ne!(reopened, id);
    let all = issues.list(true).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].resolved_at.is_some());
    assert!(issues.delete(id).await.unwrap());
    assert_eq!(issues.list(true).await.unwrap().len(), 2);
}

/// A mapping whose stored text no longer parses is an error naming the column, not a panic
/// or a made-up value.
async fn unparsable_mappings_fail_with_their_column(db: &TestDb) {
    let coder_map = db.store.coder_map();
    for (column, text) in [("coder_user_id", "not-a-uuid"), ("last_applied", "{")] {
        coder_map
            .user_upsert(&mapping("s1", "alice", db))
            .await
            .unwrap();
        db.raw_execute(&format!("UPDATE coder_users SET {column} = '{text}'"))
            .await
            .unwrap();
        let error = coder_map.user_get("s1").await.unwrap_err().to_string();
        assert!(error.contains(column), "{error}");
    }
}

backend_tests!(
    user_mappings,
    group_mappings,
    sync_issues,
    unparsable_mappings_fail_with_their_column
);
