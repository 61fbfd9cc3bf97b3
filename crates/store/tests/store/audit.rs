//! The audit log: chaining, redaction, append-only triggers and tamper detection.

use crate::backend_tests;
use crate::harness::{TestDb, body, create_user, ctx, patch, user_json};
use chrono::Duration;
use scim::ResourceKind;
use serde_json::json;
use store::{AuditEntry, GENESIS_HASH, StoreOptions};

fn worker_entry(n: usize) -> AuditEntry {
    AuditEntry {
        request_id: format!("run-{n}"),
        actor: Some("worker".into()),
        source_addr: None,
        operation: "coder.suspend_user".into(),
        resource_type: Some("User".into()),
        resource_id: Some(format!("u{n}")),
        change: json!({"status": "suspended", "session_token": "scimb_abcdef"}),
        result: "ok".into(),
    }
}

async fn writes_form_a_verified_chain(db: &TestDb) {
    let mut json = user_json("audited@example.com");
    json["password"] = json!("s3cret-pass");
    let user = db
        .store
        .create(&ctx(), ResourceKind::User, body(ResourceKind::User, json))
        .await
        .unwrap();
    db.clock.advance(Duration::seconds(1));
    patch(
        &db.store,
        ResourceKind::User,
        &user.id,
        json!([{"op": "replace", "value": {"password": "n3w-pass", "title": "x"}}]),
    )
    .await
    .unwrap();
    let appended = db.store.append_audit(&worker_entry(1)).await.unwrap();
    assert_eq!(appended.seq, 3);

    let records = db.store.audit_export(None).await.unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    assert_eq!(records[0].operation, "create User");
    assert_eq!(records[0].actor.as_deref(), Some("okta"));
    assert_eq!(records[0].resource_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(
        records[0].change["attrs"]["userName"],
        "audited@example.com"
    );
    let text = serde_json::to_string(&records).unwrap();
    for secret in ["s3cret-pass", "n3w-pass", "scimb_abcdef"] {
        assert!(!text.contains(secret), "{secret} reached the audit log");
    }
    assert_eq!(records[0].change["password"], "[redacted]");

    let report = db.store.audit_verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (3, None));
    let since = db
        .store
        .audit_export(Some(crate::harness::start_time() + Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
}

async fn concurrent_appends_keep_one_chain(db: &TestDb) {
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                store.append_audit(&worker_entry(n * 10 + i)).await.unwrap();
            }
        }));
    }
    for n in 0..4 {
        create_user(&db.store, &format!("c{n}@example.com")).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = db.store.audit_verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (84, None));
}

async fn the_log_is_append_only_and_tampering_is_detected(db: &TestDb) {
    for n in 0..4 {
        db.store.append_audit(&worker_entry(n)).await.unwrap();
    }
    // The triggers refuse changes made through SQL.
    assert!(
        db.raw_execute("UPDATE audit_log SET result = 'denied' WHERE seq = 2")
            .await
            .is_err()
    );
    assert!(
        db.raw_execute("DELETE FROM audit_log WHERE seq = 2")
            .await
            .is_err()
    );
    assert_eq!(db.store.audit_verify().await.unwrap().first_broken, None);

    // Someone with DDL rights drops the triggers and edits a record: the chain shows where.
    let drop_triggers = if db.is_postgres() {
        "DROP TRIGGER audit_log_no_change ON audit_log"
    } else {
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete"
    };
    db.raw_execute(drop_triggers).await.unwrap();
    assert_eq!(
        db.raw_execute("UPDATE audit_log SET result = 'denied' WHERE seq = 2")
            .await
            .unwrap(),
        1
    );
    let report = db.store.audit_verify().await.unwrap();
    let (seq, reason) = report
        .first_broken
        .expect("an edited record must break the chain");
    assert_eq!(seq, 2);
    assert!(reason.contains("hash"), "{reason}");

    // Deleting a record (even re-chaining is impossible without the hashes) is found too.
    db.raw_execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    let (seq, reason) = db.store.audit_verify().await.unwrap().first_broken.unwrap();
    assert_eq!(seq, 3);
    assert!(reason.contains("missing"), "{reason}");

    // And so is cutting off the tail.
    db.raw_execute("DELETE FROM audit_log WHERE seq >= 2")
        .await
        .unwrap();
    let (seq, reason) = db.store.audit_verify().await.unwrap().first_broken.unwrap();
    assert_eq!(seq, 2);
    assert!(reason.contains("head"), "{reason}");
}

/// Another process (a CLI `token create`, a second replica) extends the chain between two
/// writes of this one: the second write still lands, and the chain stays one line.
async fn appends_from_another_store_keep_one_chain(db: &TestDb) {
    let other = db.second_store(StoreOptions::default()).await;
    for n in 0..3 {
        create_user(&db.store, &format!("before{n}@example.com")).await;
        other.append_audit(&worker_entry(n)).await.unwrap();
        create_user(&db.store, &format!("after{n}@example.com")).await;
        other
            .token_create("t".repeat(n + 1).as_str(), None, store::Scopes::ALL)
            .await
            .unwrap();
    }
    create_user(&db.store, "last@example.com").await;
    let report = db.store.audit_verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (13, None));
}

backend_tests!(
    appends_from_another_store_keep_one_chain,
    writes_form_a_verified_chain,
    concurrent_appends_keep_one_chain,
    the_log_is_append_only_and_tampering_is_detected,
);
