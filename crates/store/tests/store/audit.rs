//! The audit log: chaining, redaction, append-only triggers and tamper detection.

use crate::backend_tests;
use crate::harness::{TestDb, body, create_group, create_user, ctx, patch, user_json};
use chrono::{Duration, SecondsFormat};
use hmac::{Hmac, Mac};
use scim::ResourceKind;
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{
    AuditEntry, AuditHead, AuditKey, AuditKeys, AuditRecord, GENESIS_HASH, MIN_AUDIT_KEY_LEN,
    Store, StoreOptions,
};

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

/// The first record where verifying `store`'s chain (and that it reaches the `expected` heads)
/// fails, and why; panics when the chain verifies.
async fn first_break(store: &Store, expected: &[AuditHead]) -> (i64, String) {
    store
        .audit()
        .verify_expecting(expected)
        .await
        .unwrap()
        .first_broken
        .expect("the chain must not verify")
}

/// Verifying `store`'s chain (and that it reaches the `expected` heads) fails first at record
/// `seq`, for a reason that mentions `why`.
async fn assert_breaks_at(store: &Store, expected: &[AuditHead], seq: i64, why: &str) {
    let (broken, reason) = first_break(store, expected).await;
    assert_eq!(broken, seq, "{reason}");
    assert!(reason.contains(why), "{reason}");
}

async fn writes_form_a_verified_chain(db: &TestDb) {
    let audit = db.store.audit();
    let mut json = user_json("audited@example.com");
    json["password"] = json!("s3cret-pass");
    let user = db
        .store
        .resources()
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
    let appended = audit.append(&worker_entry(1)).await.unwrap();
    assert_eq!(appended.seq, 3);

    let records = audit.export(None).await.unwrap();
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

    let report = audit.verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (3, None));
    let since = audit
        .export(Some(crate::harness::start_time() + Duration::seconds(1)))
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
                store
                    .audit()
                    .append(&worker_entry(n * 10 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for n in 0..4 {
        create_user(&db.store, &format!("c{n}@example.com")).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = db.store.audit().verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (84, None));
}

async fn the_log_is_append_only_and_tampering_is_detected(db: &TestDb) {
    let audit = db.store.audit();
    for n in 0..4 {
        audit.append(&worker_entry(n)).await.unwrap();
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
    assert_eq!(audit.verify().await.unwrap().first_broken, None);

    // Someone with DDL rights drops the triggers and edits a record: the chain shows where.
    drop_append_only_triggers(db).await;
    assert_eq!(
        db.raw_execute("UPDATE audit_log SET result = 'denied' WHERE seq = 2")
            .await
            .unwrap(),
        1
    );
    assert_breaks_at(&db.store, &[], 2, "hash").await;

    // Deleting a record (even re-chaining is impossible without the hashes) is found too.
    db.raw_execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    assert_breaks_at(&db.store, &[], 3, "missing").await;

    // And so is cutting off the tail.
    db.raw_execute("DELETE FROM audit_log WHERE seq >= 2")
        .await
        .unwrap();
    assert_breaks_at(&db.store, &[], 2, "head").await;
}

/// Another process (a CLI `token create`, a second replica) extends the chain between two
/// writes of this one: the second write still lands, and the chain stays one line.
async fn appends_from_another_store_keep_one_chain(db: &TestDb) {
    let other = db.second_store(StoreOptions::default()).await;
    for n in 0..3 {
        create_user(&db.store, &format!("before{n}@example.com")).await;
        other.audit().append(&worker_entry(n)).await.unwrap();
        create_user(&db.store, &format!("after{n}@example.com")).await;
        other
            .tokens()
            .create("t".repeat(n + 1).as_str(), None, store::Scopes::ALL)
            .await
            .unwrap();
    }
    create_user(&db.store, "last@example.com").await;
    let report = db.store.audit().verify().await.unwrap();
    assert_eq!((report.checked, report.first_broken), (13, None));
}

async fn drop_append_only_triggers(db: &TestDb) {
    let drop_triggers = if db.is_postgres() {
        "DROP TRIGGER audit_log_no_change ON audit_log"
    } else {
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete"
    };
    db.raw_execute(drop_triggers).await.unwrap();
}

fn key_secret(byte: u8) -> Vec<u8> {
    vec![byte; MIN_AUDIT_KEY_LEN]
}

fn key(byte: u8) -> AuditKey {
    AuditKey::new(&key_secret(byte)).unwrap()
}

/// A store on `db`'s database whose audit keys are `current` then `previous`.
async fn keyed_store(db: &TestDb, current: u8, previous: &[u8]) -> Store {
    let keys = AuditKeys::new(key(current), previous.iter().map(|b| key(*b)).collect());
    db.second_store(StoreOptions {
        audit_keys: keys,
        ..StoreOptions::default()
    })
    .await
}

/// Every kind of write that appends a record: create (batched), a PATCH adding one member (the
/// SQLite one-hand-off path, which computes the hash from the cached tip), a general PATCH, a
/// worker record and a token.
async fn write_every_kind(store: &Store, tag: &str) {
    let user = create_user(store, &format!("{tag}-a@example.com")).await;
    let other = create_user(store, &format!("{tag}-b@example.com")).await;
    let group = create_group(store, &format!("{tag}-group"), &[&user.id]).await;
    patch(
        store,
        ResourceKind::Group,
        &group.id,
        json!([{"op": "add", "path": "members", "value": [{"value": other.id}]}]),
    )
    .await
    .unwrap();
    patch(
        store,
        ResourceKind::User,
        &user.id,
        json!([{"op": "replace", "value": {"title": tag}}]),
    )
    .await
    .unwrap();
    store.audit().append(&worker_entry(7)).await.unwrap();
    store
        .tokens()
        .create(&format!("{tag}-token"), None, store::Scopes::ALL)
        .await
        .unwrap();
}

/// What someone with write access to the database, but not the key, can do: change record
/// `seq`'s result and recompute every hash from it on (plain SHA-256, or HMAC under a key of
/// their own), labelled with `key_id`; then move the head row along. Triggers must be gone.
async fn forge_from(db: &TestDb, seq: i64, key: Option<&[u8]>, key_id: Option<&str>) {
    forge_range(db, seq, i64::MAX, key, key_id).await;
}

/// [`forge_from`], stopping after record `last` (the head row is left alone then).
async fn forge_range(db: &TestDb, seq: i64, last: i64, key: Option<&[u8]>, key_id: Option<&str>) {
    let records = db.store.audit().export(None).await.unwrap();
    let mut prev_hash = records
        .iter()
        .find(|r| r.seq == seq - 1)
        .map_or(GENESIS_HASH.to_string(), |r| r.hash.clone());
    let mut sql = String::new();
    for record in records.iter().filter(|r| (seq..=last).contains(&r.seq)) {
        let mut forged = record.clone();
        if forged.seq == seq {
            forged.result = "forged".into();
        }
        forged.prev_hash = prev_hash.clone();
        forged.key_id = key_id.map(str::to_string);
        forged.hash = attacker_hash(&forged, key);
        let key_id = key_id.map_or("NULL".to_string(), |id| format!("'{id}'"));
        sql.push_str(&format!(
            "UPDATE audit_log SET result = '{}', prev_hash = '{}', hash = '{}', key_id = {key_id} \
             WHERE seq = {};",
            forged.result, forged.prev_hash, forged.hash, forged.seq
        ));
        prev_hash = forged.hash;
    }
    if last == i64::MAX {
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = '{prev_hash}' WHERE id = 1;"
        ));
    }
    db.raw_execute(&sql).await.unwrap();
}

/// The published hash format, recomputed outside the store.
fn attacker_hash(record: &AuditRecord, key: Option<&[u8]>) -> String {
    let mut fields = json!([
        record.seq,
        record.time.to_rfc3339_opts(SecondsFormat::Micros, true),
        record.request_id,
        record.actor,
        record.source_addr,
        record.operation,
        record.resource_type,
        record.resource_id,
        record.change.to_string(),
        record.result,
    ]);
    if let Some(id) = &record.key_id {
        fields.as_array_mut().unwrap().push(json!(id));
    }
    let message = format!("{}\n{fields}", record.prev_hash);
    match key {
        None => hex::encode(Sha256::digest(message.as_bytes())),
        Some(key) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

/// Every path that appends computes a keyed hash; the chain verifies with its key (also after
/// a rotation, with the old key kept), and not without it or with another one.
async fn a_keyed_chain_verifies_only_with_its_key(db: &TestDb) {
    let keyed = keyed_store(db, 1, &[]).await;
    write_every_kind(&keyed, "k").await;
    let records = keyed.audit().export(None).await.unwrap();
    assert_eq!(records.len(), 7);
    for record in &records {
        assert_eq!(record.key_id.as_deref(), Some(key(1).id()), "{record:?}");
        let text = serde_json::to_string(record).unwrap();
        assert!(!text.contains(&hex::encode(key_secret(1))));
    }
    // The attacker's recomputation of an untouched record with the real key agrees with the
    // store: the format is the one documented.
    assert_eq!(
        attacker_hash(&records[0], Some(&key_secret(1))),
        records[0].hash
    );

    let report = keyed.audit().verify().await.unwrap();
    assert_eq!(
        (report.checked, report.keyed, report.first_broken),
        (7, 7, None)
    );

    for verifier in [&db.store, &keyed_store(db, 2, &[]).await] {
        assert_breaks_at(verifier, &[], 1, key(1).id()).await;
    }

    // Rotation: the new key hashes from now on; with the old key kept, all of it verifies.
    let rotated = keyed_store(db, 2, &[1]).await;
    let marker = rotated.audit().record_key().await.unwrap().unwrap();
    assert_eq!(marker.operation, "audit.key");
    assert_eq!(marker.change["key_id"], key(2).id());
    assert_eq!(marker.change["previous_key_id"], key(1).id());
    assert_eq!(
        rotated.audit().record_key().await.unwrap(),
        None,
        "recorded once"
    );
    write_every_kind(&rotated, "r").await;
    let report = rotated.audit().verify().await.unwrap();
    assert_eq!(
        (report.checked, report.keyed, report.first_broken),
        (15, 15, None)
    );
    let old_key_dropped = keyed_store(db, 2, &[]).await;
    assert_eq!(
        first_break(&old_key_dropped, &[]).await.0,
        1,
        "the old key's records need the old key"
    );
}

/// Records written before the key was set stay plain SHA-256; the key's start-up record makes
/// the newest record keyed, which then covers all of them.
async fn an_unkeyed_chain_continues_keyed(db: &TestDb) {
    let audit = db.store.audit();
    write_every_kind(&db.store, "u").await;
    let keyed = keyed_store(db, 1, &[]).await;
    assert_breaks_at(&keyed, &[], 7, "not keyed").await;

    let marker = keyed.audit().record_key().await.unwrap().unwrap();
    assert_eq!(marker.seq, 8);
    assert_eq!(marker.change["previous_key_id"], json!(null));
    let report = keyed.audit().verify().await.unwrap();
    assert_eq!(
        (report.checked, report.keyed, report.first_broken),
        (8, 1, None)
    );
    write_every_kind(&keyed, "k").await;
    let report = keyed.audit().verify().await.unwrap();
    assert_eq!(
        (report.checked, report.keyed, report.first_broken),
        (15, 8, None)
    );
    // A store without the key cannot vouch for the keyed records.
    assert_eq!(first_break(&db.store, &[]).await.0, 8);
    // Without a key there is nothing to record.
    assert_eq!(audit.record_key().await.unwrap(), None);

    // Rewriting an unkeyed record, with every later unkeyed hash recomputed, breaks the first
    // keyed record that follows; recomputing that one too leaves the chain ending unkeyed.
    drop_append_only_triggers(db).await;
    forge_range(db, 3, 7, None, None).await;
    assert_breaks_at(&keyed, &[], 8, "prev_hash").await;
    forge_from(db, 3, None, None).await;
    assert_breaks_at(&keyed, &[], 15, "not keyed").await;
}

/// Someone with database access recomputes a keyed chain after an edit: with plain SHA-256
/// (keeping or dropping the key ids) or with a key of their own. Keyed verification and the
/// exported head each catch every variant.
async fn a_chain_recomputed_without_the_key_is_detected(db: &TestDb) {
    let audit = db.store.audit();
    let keyed = keyed_store(db, 1, &[]).await;
    write_every_kind(&keyed, "k").await;
    let anchor = keyed.audit().head().await.unwrap();
    assert_eq!(anchor.seq, 7);
    drop_append_only_triggers(db).await;
    let (real, attacker, attacker_secret) = (key(1), key(9), key_secret(9));
    let forgeries: [(Option<&[u8]>, Option<&str>); 4] = [
        (None, None),
        (None, Some(real.id())),
        (Some(&attacker_secret), Some(attacker.id())),
        (Some(&attacker_secret), Some(real.id())),
    ];
    for (forge_key, key_id) in forgeries {
        forge_from(db, 4, forge_key, key_id).await;
        let what = format!("forged with key {forge_key:?} labelled {key_id:?}");
        // The forgery is self-consistent: a verifier without the key finds nothing wrong with
        // an all-plain chain.
        if forge_key.is_none() && key_id.is_none() {
            let report = audit.verify().await.unwrap();
            assert_eq!(
                report.first_broken.map(|b| b.0),
                Some(1),
                "{what}: records 1-3 keyed"
            );
        }
        let report = keyed.audit().verify().await.unwrap();
        let (seq, reason) = report.first_broken.expect(&what);
        assert!(seq == 4 || seq == 7, "{what}: {seq} {reason}");
        let report = keyed
            .audit()
            .verify_expecting(std::slice::from_ref(&anchor))
            .await
            .unwrap();
        assert!(report.first_broken.is_some(), "{what}");
        // The head now differs from the anchor.
        assert_ne!(keyed.audit().head().await.unwrap(), anchor, "{what}");
    }

    // A plain chain recomputed from the first record verifies on its own terms; only the
    // anchor shows it.
    forge_from(db, 1, None, None).await;
    assert_eq!(audit.verify().await.unwrap().first_broken, None);
    assert_breaks_at(&db.store, &[anchor], 7, "expected head").await;
    assert_breaks_at(&keyed, &[], 7, "not keyed").await;
}

/// The newest records cut off (head row moved back to match) and the head record rewritten:
/// a chain that verifies on its own, found by the head exported before.
async fn a_cut_tail_and_a_rewritten_head_miss_the_exported_head(db: &TestDb) {
    let audit = db.store.audit();
    for (store, keyed) in [
        (db.store.clone(), false),
        (keyed_store(db, 1, &[]).await, true),
    ] {
        write_every_kind(&store, if keyed { "k" } else { "u" }).await;
    }
    let keyed = keyed_store(db, 1, &[]).await;
    let anchor = keyed.audit().head().await.unwrap();
    assert_eq!(anchor.seq, 14);
    let early = AuditHead {
        seq: 5,
        hash: keyed.audit().export(None).await.unwrap()[4].hash.clone(),
    };
    let both = [early.clone(), anchor.clone()];
    let report = keyed.audit().verify_expecting(&both).await.unwrap();
    assert_eq!((report.checked, report.first_broken), (14, None));
    let wrong = AuditHead {
        seq: 5,
        hash: "0".repeat(63) + "1",
    };
    assert_eq!(first_break(&keyed, &[wrong]).await.0, 5);

    // Cut the last three records.
    drop_append_only_triggers(db).await;
    db.raw_execute("DELETE FROM audit_log WHERE seq > 11")
        .await
        .unwrap();
    let refused = keyed.audit().head().await.unwrap_err().to_string();
    assert!(refused.contains("head row"), "{refused}");
    let new_tip = keyed.audit().export(None).await.unwrap()[10].hash.clone();
    db.raw_execute(&format!(
        "UPDATE audit_head SET seq = 11, hash = '{new_tip}' WHERE id = 1"
    ))
    .await
    .unwrap();
    // Consistent again, and keyed to the end: only the anchor knows better.
    assert_eq!(keyed.audit().verify().await.unwrap().first_broken, None);
    assert_breaks_at(&keyed, &both, 12, "removed").await;
    assert_eq!(
        keyed
            .audit()
            .verify_expecting(&[early])
            .await
            .unwrap()
            .first_broken,
        None,
        "the part before the cut still reaches the earlier head"
    );

    // Rewrite the head record of the (now unkeyed-to-the-end) prefix: cut back to the unkeyed
    // part, then edit its newest record and recompute its hash.
    db.raw_execute("DELETE FROM audit_log WHERE seq > 7")
        .await
        .unwrap();
    let records = audit.export(None).await.unwrap();
    db.raw_execute(&format!(
        "UPDATE audit_head SET seq = 7, hash = '{}' WHERE id = 1",
        records[6].hash
    ))
    .await
    .unwrap();
    let plain_anchor = audit.head().await.unwrap();
    forge_from(db, 7, None, None).await;
    assert_eq!(audit.verify().await.unwrap().first_broken, None);
    assert_breaks_at(&db.store, &[plain_anchor], 7, "rewritten").await;
}

backend_tests!(
    appends_from_another_store_keep_one_chain,
    writes_form_a_verified_chain,
    concurrent_appends_keep_one_chain,
    the_log_is_append_only_and_tampering_is_detected,
    a_keyed_chain_verifies_only_with_its_key,
    an_unkeyed_chain_continues_keyed,
    a_chain_recomputed_without_the_key_is_detected,
    a_cut_tail_and_a_rewritten_head_miss_the_exported_head,
);
