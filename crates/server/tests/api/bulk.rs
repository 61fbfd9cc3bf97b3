//! `/Bulk` (RFC 7644 §3.7): bulkId references (forward, in members, in paths), cycles,
//! failOnErrors, and the 413 limits.

use crate::support::{Backend, TestServer};
use crate::{on_both_backends, user_body};
use serde_json::{Value, json};

on_both_backends!(
    bulk_resolves_references_in_processing_order,
    bulk_cycles_and_unknown_references_are_409,
    bulk_fail_on_errors_and_limits
);

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn bulk(operations: Value) -> Value {
    json!({"schemas": [BULK], "Operations": operations})
}

fn statuses(reply: &Value) -> Vec<String> {
    reply["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect()
}

async fn bulk_resolves_references_in_processing_order(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                       "members": [{"type": "User", "value": "bulkId:qwerty"}]});
    // The group refers forward to a user POSTed after it; the PATCH refers by path.
    let reply = srv
        .post(
            "/Bulk",
            &bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "ytrewq", "data": group},
                {"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": user_body("guide@example.com")},
                {"method": "PATCH", "path": "/Users/bulkId:qwerty", "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "displayName", "value": "Guide"}]}},
            ])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    assert_eq!(
        statuses(&reply.body),
        ["201", "201", "200"],
        "{}",
        reply.text
    );
    let ops = reply.body["Operations"].as_array().unwrap();
    let group_location = ops[0]["location"].as_str().unwrap();
    let user_location = ops[1]["location"].as_str().unwrap();
    assert!(group_location.starts_with(&format!("{}/Groups/", srv.base)));
    assert!(ops[0]["version"].as_str().unwrap().starts_with("W/"));
    assert_eq!(ops[0]["bulkId"], "ytrewq");
    let user_id = user_location.rsplit('/').next().unwrap();
    let group_read = srv.get(group_location).await;
    assert_eq!(
        group_read.body["members"][0]["value"], user_id,
        "{}",
        group_read.text
    );
    assert_eq!(srv.get(user_location).await.body["displayName"], "Guide");

    // PUT and DELETE by id.
    let group_id = group_location.rsplit('/').next().unwrap();
    let reply = srv
        .post(
            "/Bulk",
            &bulk(json!([
                {"method": "PUT", "path": format!("/Groups/{group_id}"), "data": {"displayName": "Tour Guides", "members": []}},
                {"method": "DELETE", "path": format!("/Users/{user_id}")},
            ])),
        )
        .await;
    assert_eq!(statuses(&reply.body), ["200", "204"], "{}", reply.text);
    srv.get(user_location).await.assert_error(404, None);
}

async fn bulk_cycles_and_unknown_references_are_409(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let group = |name: &str, member: &str| json!({"displayName": name, "members": [{"type": "Group", "value": format!("bulkId:{member}")}]});
    let reply = srv
        .post(
            "/Bulk",
            &bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "a", "data": group("A", "b")},
                {"method": "POST", "path": "/Groups", "bulkId": "b", "data": group("B", "a")},
                {"method": "POST", "path": "/Groups", "bulkId": "c", "data": group("C", "nowhere")},
                {"method": "POST", "path": "/Groups", "bulkId": "d", "data": group("D", "d")},
                {"method": "POST", "path": "/Users", "bulkId": "u", "data": user_body("ok@example.com")},
            ])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        statuses(&reply.body),
        ["409", "409", "409", "409", "201"],
        "{}",
        reply.text
    );
    let first = &reply.body["Operations"][0];
    assert_eq!(first["bulkId"], "a");
    assert_eq!(first["response"]["status"], "409");
    let groups = srv.get("/Groups").await;
    assert_eq!(
        groups.body["totalResults"], 0,
        "nothing of the failed operations was written"
    );
}

async fn bulk_fail_on_errors_and_limits(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| {
        c.bulk_max_operations = 3;
        c.bulk_max_payload_bytes = 4096;
    })
    .await
    else {
        return;
    };
    srv.create_user("taken@example.com").await;
    let reply = srv
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "1", "data": user_body("taken@example.com")},
                {"method": "POST", "path": "/Users", "bulkId": "2", "data": user_body("never@example.com")},
            ]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        statuses(&reply.body),
        ["409"],
        "processing stops at the first error: {}",
        reply.text
    );
    assert_eq!(
        reply.body["Operations"][0]["response"]["scimType"],
        "uniqueness"
    );
    assert_eq!(srv.get("/Users").await.body["totalResults"], 1);

    let op = json!({"method": "DELETE", "path": "/Users/x"});
    let too_many = srv.post("/Bulk", &bulk(json!([op, op, op, op]))).await;
    too_many.assert_error(413, None);
    let big = user_body(&format!("{}@example.com", "x".repeat(5000)));
    let too_large = srv
        .post(
            "/Bulk",
            &bulk(json!([{"method": "POST", "path": "/Users", "bulkId": "b", "data": big}])),
        )
        .await;
    too_large.assert_error(413, None);
    assert!(
        too_large.body["detail"]
            .as_str()
            .unwrap()
            .contains("maxPayloadSize")
    );
    assert_eq!(srv.get("/Users").await.body["totalResults"], 1);
}
