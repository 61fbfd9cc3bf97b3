//! Groups: membership through POST, PATCH and PUT, projections that skip members, uniqueness,
//! and parallel PATCHes to one group (Entra sends them) that must never lose an update.

use crate::support::{Backend, TestServer};
use crate::{on_both_backends, patch_op};
use serde_json::{Value, json};
use std::collections::BTreeSet;

on_both_backends!(
    group_membership_lifecycle,
    display_name_is_unique_ignoring_case,
    parallel_patches_lose_no_member
);

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"].as_array().map_or_else(BTreeSet::new, |m| {
        m.iter()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect()
    })
}

async fn group_membership_lifecycle(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let alice = srv.create_user("alice@example.com").await;
    let bob = srv.create_user("bob@example.com").await;
    let carol = srv.create_user("carol@example.com").await;
    let created = srv
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
                    "externalId": "8aa1a0c0", "members": [{"value": alice}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(created.header("etag").is_some());
    insta::assert_json_snapshot!(
        "group_created",
        srv.redact(&created.body, &[(&id, "group-id"), (&alice, "alice-id")])
    );

    // Okta's membership delta: remove by filter and add in one request → 204 for a group.
    let delta = patch_op(json!([
        {"op": "remove", "path": format!("members[value eq \"{alice}\"]")},
        {"op": "add", "path": "members", "value": [{"value": bob}, {"value": carol}]},
    ]));
    let patched = srv.patch(&format!("/Groups/{id}"), &delta).await;
    assert_eq!(patched.status, 204, "{}", patched.text);
    assert!(patched.header("etag").is_some());
    let read = srv.get(&format!("/Groups/{id}")).await;
    assert_eq!(
        member_ids(&read.body),
        BTreeSet::from([bob.clone(), carol.clone()])
    );

    // Asking for attributes turns the PATCH answer into 200 with them.
    let with_members = srv
        .patch(
            &format!("/Groups/{id}?attributes=members,displayName"),
            &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": carol}]}])),
        )
        .await;
    assert_eq!(with_members.status, 200, "{}", with_members.text);
    assert_eq!(
        member_ids(&with_members.body),
        BTreeSet::from([bob.clone()])
    );

    // Entra reads groups without members.
    let no_members = srv
        .get(&format!("/Groups/{id}?excludedAttributes=members"))
        .await;
    assert!(
        no_members.body.get("members").is_none(),
        "{}",
        no_members.text
    );
    assert_eq!(no_members.body["displayName"], "Engineering");
    let listed = srv
        .get_filtered(
            "/Groups?excludedAttributes=members",
            "displayName eq \"engineering\"",
        )
        .await;
    assert_eq!(listed.body["totalResults"], 1);
    assert!(listed.body["Resources"][0].get("members").is_none());

    // A User's groups are computed from the membership rows.
    let bob_read = srv.get(&format!("/Users/{bob}")).await;
    assert_eq!(bob_read.body["groups"][0]["value"], id);
    assert_eq!(bob_read.body["groups"][0]["display"], "Engineering");

    // Filter by member.
    let by_member = srv
        .get_filtered("/Groups", &format!("members[value eq \"{bob}\"]"))
        .await;
    assert_eq!(by_member.body["totalResults"], 1, "{}", by_member.text);

    // AIW apps PUT the whole group with its members.
    let put = srv
        .put(
            &format!("/Groups/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
                    "members": [{"value": alice}, {"value": carol}]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        member_ids(&put.body),
        BTreeSet::from([alice.clone(), carol.clone()])
    );

    // Deleting a user takes it out of its groups.
    assert_eq!(srv.delete(&format!("/Users/{alice}")).await.status, 204);
    assert_eq!(
        member_ids(&srv.get(&format!("/Groups/{id}")).await.body),
        BTreeSet::from([carol.clone()])
    );

    assert_eq!(srv.delete(&format!("/Groups/{id}")).await.status, 204);
    srv.assert_gone(&format!("/Groups/{id}")).await;
    assert!(
        srv.get(&format!("/Users/{carol}")).await.body["groups"]
            .as_array()
            .is_none_or(|g| g.is_empty())
    );
}

async fn display_name_is_unique_ignoring_case(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    srv.create_group("Test SCIMv2", &[]).await;
    let duplicate = srv
        .post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "test scimv2"}))
        .await;
    duplicate.assert_error(409, Some("uniqueness"));
}

async fn parallel_patches_lose_no_member(backend: Backend) {
    const CLIENTS: usize = 8;
    const ADDS_PER_CLIENT: usize = 20;
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let group = srv.create_group("Parallel", &[]).await;
    let mut users = Vec::new();
    for i in 0..CLIENTS * ADDS_PER_CLIENT {
        users.push(srv.create_user(&format!("p{i}@example.com")).await);
    }
    let srv = std::sync::Arc::new(srv);
    let mut clients = Vec::new();
    for chunk in users.chunks(ADDS_PER_CLIENT) {
        let srv = srv.clone();
        let group = group.clone();
        let chunk = chunk.to_vec();
        clients.push(tokio::spawn(async move {
            for user in chunk {
                let body =
                    patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": user}]}]));
                let reply = srv.patch(&format!("/Groups/{group}"), &body).await;
                assert_eq!(reply.status, 204, "{}", reply.text);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let read = srv.get(&format!("/Groups/{group}")).await;
    let members = member_ids(&read.body);
    assert_eq!(members.len(), CLIENTS * ADDS_PER_CLIENT);
    assert_eq!(members, users.into_iter().collect::<BTreeSet<_>>());
}
