//! Reading the audit log by resource type and by resource.

use crate::backend_tests;
use crate::harness::{TestDb, create_group, create_user, ctx, start_time};
use chrono::Duration;
use scim::ResourceKind;
use serde_json::json;
use store::AuditEntry;

async fn records_of_a_type_or_of_one_resource_come_in_chain_order(db: &TestDb) {
    let alice = create_user(&db.store, "alice@example.com").await;
    db.clock.advance(Duration::seconds(10));
    let bob = create_user(&db.store, "bob@example.com").await;
    create_group(&db.store, "admins", &[&alice.id]).await;
    db.store
        .audit()
        .append(&AuditEntry {
            request_id: "run-1".into(),
            actor: Some("worker".into()),
            source_addr: None,
            operation: "reconcile User".into(),
            resource_type: Some("User".into()),
            resource_id: Some(alice.id.clone()),
            change: json!({ "coder_calls": [] }),
            result: "ok".into(),
        })
        .await
        .unwrap();
    db.store
        .resources()
        .delete(&ctx(), ResourceKind::User, &bob.id, None)
        .await
        .unwrap();

    let users = db.store.audit().of_type("User", None).await.unwrap();
    let seen: Vec<(&str, &str)> = users
        .iter()
        .map(|r| (r.resource_id.as_deref().unwrap(), r.operation.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (alice.id.as_str(), "create User"),
            (bob.id.as_str(), "create User"),
            (alice.id.as_str(), "reconcile User"),
            (bob.id.as_str(), "delete User"),
        ]
    );
    assert!(users.windows(2).all(|w| w[0].seq < w[1].seq));

    let later = db
        .store
        .audit()
        .of_type("User", Some(start_time() + Duration::seconds(5)))
        .await
        .unwrap();
    assert_eq!(later.len(), 3, "alice's create is older than `since`");

    // A deleted resource keeps its trail.
    let trail = db.store.audit().of_resource("User", &bob.id).await.unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].change["attrs"]["userName"], "bob@example.com");
    assert!(
        db.store
            .audit()
            .of_resource("Group", &bob.id)
            .await
            .unwrap()
            .is_empty()
    );
}

backend_tests!(records_of_a_type_or_of_one_resource_come_in_chain_order);
