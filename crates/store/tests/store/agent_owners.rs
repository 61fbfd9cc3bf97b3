//! The owner index of Agents: it follows every write of an Agent's `owners`, outlives a deleted
//! owner (whose agents the cascade must still find) and goes with a deleted Agent.

use crate::backend_tests;
use crate::harness::{TestDb, body, create_user, ctx, replace};
use scim::ResourceKind;
use serde_json::{Value, json};
use store::StoredResource;

async fn create_agent(db: &TestDb, name: &str, owners: Value) -> StoredResource {
    let json = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
        "agentUserName": name,
        "owners": owners
    });
    db.store
        .resources()
        .create(&ctx(), ResourceKind::Agent, body(ResourceKind::Agent, json))
        .await
        .unwrap()
}

async fn owned_by(db: &TestDb, owner: &str) -> Vec<String> {
    db.store
        .resources()
        .reader()
        .agents_owned_by(owner)
        .await
        .unwrap()
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

async fn the_owner_index_follows_every_write_of_an_agent(db: &TestDb) {
    let u1 = create_user(&db.store, "u1@example.com").await.id;
    let u2 = create_user(&db.store, "u2@example.com").await.id;
    let a = create_agent(db, "agent-a", json!([{"value": u1}])).await.id;
    let b = create_agent(
        db,
        "agent-b",
        json!([{"value": u1, "type": "User"}, {"value": u2}]),
    )
    .await
    .id;
    // A Group as owner takes no part in the cascade.
    let c = create_agent(db, "agent-c", json!([{"value": u2, "type": "Group"}])).await;
    assert_eq!(owned_by(db, &u1).await, sorted(&[&a, &b]));
    assert_eq!(owned_by(db, &u2).await, sorted(&[&b]));

    // PATCH: a changes owner.
    replace(
        db,
        ResourceKind::Agent,
        &a,
        "owners",
        json!([{"value": u2}]),
    )
    .await;
    assert_eq!(owned_by(db, &u1).await, sorted(&[&b]));
    assert_eq!(owned_by(db, &u2).await, sorted(&[&a, &b]));

    // PUT without owners: b has none any more.
    db.store
        .resources()
        .replace(
            &ctx(),
            ResourceKind::Agent,
            &b,
            None,
            body(
                ResourceKind::Agent,
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
                       "agentUserName": "agent-b", "displayName": "B"}),
            ),
        )
        .await
        .unwrap();
    assert!(owned_by(db, &u1).await.is_empty());
    assert_eq!(owned_by(db, &u2).await, sorted(&[&a]));

    // A write that fails (the name is taken) leaves the index as it was.
    let taken = db
        .store
        .resources()
        .create(
            &ctx(),
            ResourceKind::Agent,
            body(
                ResourceKind::Agent,
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
                       "agentUserName": "AGENT-A", "owners": [{"value": u1}]}),
            ),
        )
        .await;
    assert!(taken.is_err());
    assert!(owned_by(db, &u1).await.is_empty());

    // A deleted owner's agents are still found: the cascade runs after the owner is gone.
    db.store
        .resources()
        .delete(&ctx(), ResourceKind::User, &u2, None)
        .await
        .unwrap();
    assert_eq!(owned_by(db, &u2).await, sorted(&[&a]));

    // A deleted agent leaves the index.
    db.store
        .resources()
        .delete(&ctx(), ResourceKind::Agent, &a, None)
        .await
        .unwrap();
    assert!(owned_by(db, &u2).await.is_empty());
    assert!(owned_by(db, &c.id).await.is_empty());
}

backend_tests!(the_owner_index_follows_every_write_of_an_agent);
