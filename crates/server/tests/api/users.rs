//! Users: create, read, replace, patch, delete, ETags, uniqueness, the IdPs' probes and list
//! parameters.

use crate::support::{Backend, TestServer};
use crate::{field_of_each, on_both_backends, patch_op, user_body};
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    user_lifecycle_with_etags,
    user_name_is_unique_ignoring_case,
    external_id_is_stored_and_filterable,
    idp_probes_get_empty_list_responses,
    list_paging_sorting_and_projection,
    media_types_and_request_ids,
);

async fn user_lifecycle_with_etags(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let created = srv.post("/Users", &user_body("bjensen@example.com")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.header("content-type"),
        Some(server::SCIM_CONTENT_TYPE)
    );
    let id = created.body["id"].as_str().unwrap().to_string();
    let location = format!("{}/Users/{id}", srv.base);
    assert_eq!(created.header("location"), Some(location.as_str()));
    assert_eq!(created.body["meta"]["location"], location);
    let etag = created.header("etag").unwrap().to_string();
    assert!(etag.starts_with("W/\""), "a weak ETag: {etag}");
    assert_eq!(created.body["meta"]["version"], etag);
    assert!(created.body.get("password").is_none());
    insta::assert_json_snapshot!(
        "user_created",
        srv.redact(&created.body, &[(&id, "user-id")])
    );

    let read = srv.get(&format!("/Users/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("etag"), Some(etag.as_str()));
    assert_eq!(read.body["userName"], "bjensen@example.com");

    // RFC 7644 §3.14: If-None-Match with the current version is 304, another version 200.
    let unchanged = srv.get_if_none_match(&format!("/Users/{id}"), &etag).await;
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.text.is_empty());
    let changed = srv
        .get_if_none_match(&format!("/Users/{id}"), "W/\"999\"")
        .await;
    assert_eq!(changed.status, 200);

    // If-Match naming another version: 412, and nothing changes.
    let mut renamed = user_body("bjensen@example.com");
    renamed["displayName"] = json!("Babs Jensen");
    let stale = srv
        .put_if_match(&format!("/Users/{id}"), "W/\"999\"", &renamed)
        .await;
    stale.assert_error(412, None);
    assert_eq!(
        srv.get(&format!("/Users/{id}")).await.body["displayName"],
        "Test User"
    );
    let put = srv
        .put_if_match(&format!("/Users/{id}"), &etag, &renamed)
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["displayName"], "Babs Jensen");
    let put_etag = put.header("etag").unwrap().to_string();
    assert_ne!(put_etag, etag, "a change makes a new version");

    // Okta's deactivation: PATCH active false → 200 with the User, still readable and listed.
    let patched = srv
        .patch(
            &format!("/Users/{id}?attributes=active,userName"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["active"], false);
    assert_eq!(patched.body["userName"], "bjensen@example.com");
    assert!(
        patched.body.get("displayName").is_none(),
        "attributes= is honoured: {}",
        patched.text
    );
    assert_eq!(srv.get(&format!("/Users/{id}")).await.body["active"], false);
    let inactive = srv.get_filtered("/Users", "active eq false").await;
    assert_eq!(inactive.body["totalResults"], 1, "{}", inactive.text);
    assert_eq!(inactive.body["Resources"][0]["id"], id);

    // DELETE: 412 on a stale If-Match, then 204, then 404 (a second DELETE too).
    let stale_delete = srv.delete_if_match(&format!("/Users/{id}"), &etag).await;
    stale_delete.assert_error(412, None);
    let deleted = srv.delete(&format!("/Users/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty());
    srv.assert_gone(&format!("/Users/{id}")).await;
    let again = srv
        .get_filtered("/Users", "userName eq \"bjensen@example.com\"")
        .await;
    assert_eq!(again.body["totalResults"], 0);
}

async fn user_name_is_unique_ignoring_case(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let first = srv.create_user("Alice@Example.com").await;
    let duplicate = srv.post("/Users", &user_body("alice@example.COM")).await;
    duplicate.assert_error(409, Some("uniqueness"));
    insta::assert_json_snapshot!("error_uniqueness", srv.redact(&duplicate.body, &[]));
    // Renaming another user onto the taken name is a 409 too.
    let other = srv.create_user("bob@example.com").await;
    let rename = srv
        .patch(
            &format!("/Users/{other}"),
            &patch_op(json!([{"op": "replace", "path": "userName", "value": "ALICE@example.com"}])),
        )
        .await;
    rename.assert_error(409, Some("uniqueness"));
    // Filters on userName ignore case (caseExact false).
    let found = srv
        .get_filtered("/Users", "userName eq \"aLiCe@example.com\"")
        .await;
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["id"], first);
}

async fn external_id_is_stored_and_filterable(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let mut body = user_body("ext@example.com");
    body["externalId"] = json!("00ujl29u0le5T6Aj10h7");
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["externalId"], "00ujl29u0le5T6Aj10h7");
    srv.create_user("other@example.com").await;
    let found = srv
        .get_filtered("/Users", "externalId eq \"00ujl29u0le5T6Aj10h7\"")
        .await;
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["userName"], "ext@example.com");
    let found_id = found.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    insta::assert_json_snapshot!(
        "list_one_user",
        srv.redact(&found.body, &[(&found_id, "user-id")])
    );
    // externalId is caseExact (RFC 7643 §3.1).
    let other_case = srv
        .get_filtered("/Users", "externalId eq \"00UJL29U0LE5T6AJ10H7\"")
        .await;
    assert_eq!(other_case.body["totalResults"], 0);
}

async fn idp_probes_get_empty_list_responses(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    // Okta's "Test Connector Configuration".
    let okta = srv.get("/Users?startIndex=1&count=2").await;
    assert_eq!(okta.status, 200, "{}", okta.text);
    assert_eq!(okta.body["totalResults"], 0);
    assert_eq!(okta.body["Resources"], json!([]));
    insta::assert_json_snapshot!("list_empty", okta.body);
    // Entra's random-GUID probe, with the aadOptscim062020 flag its tenant URL carries.
    let guid = "5c4d1a0e-3f0b-4e5a-9c6f-0c7f0f8e2b11";
    let entra = srv
        .get_filtered(
            "/Users?aadOptscim062020",
            &format!("userName eq \"{guid}\""),
        )
        .await;
    assert_eq!(entra.status, 200, "{}", entra.text);
    assert_eq!(entra.body["totalResults"], 0);
    let groups = srv
        .get_filtered(
            "/Groups?excludedAttributes=members",
            &format!("displayName eq \"{guid}\""),
        )
        .await;
    assert_eq!(groups.status, 200);
    assert_eq!(groups.body["totalResults"], 0);
    // The MS Postman collection's trailing slash.
    srv.create_user("slash@example.com").await;
    let slash = srv
        .get_filtered("/Users/", "userName eq \"slash@example.com\"")
        .await;
    assert_eq!(slash.status, 200, "{}", slash.text);
    assert_eq!(slash.body["totalResults"], 1);
    let base_slash = srv.get("/Users/?aadOptscim062020").await;
    assert_eq!(base_slash.status, 200);
}

async fn list_paging_sorting_and_projection(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    for name in ["carol", "alice", "erin", "bob", "dave"] {
        srv.create_user(&format!("{name}@example.com")).await;
    }
    // Stable creation order when unsorted: pages neither overlap nor skip.
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let page = srv.get(&format!("/Users?startIndex={start}&count=2")).await;
        assert_eq!(page.body["totalResults"], 5);
        assert_eq!(page.body["startIndex"], start);
        for user in page.body["Resources"].as_array().unwrap() {
            seen.push(user["userName"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        seen,
        ["carol", "alice", "erin", "bob", "dave"].map(|n| format!("{n}@example.com"))
    );

    let sorted = srv
        .get("/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2&attributes=userName")
        .await;
    assert_eq!(sorted.status, 200, "{}", sorted.text);
    assert_eq!(sorted.body["itemsPerPage"], 2);
    let names = field_of_each(&sorted.body["Resources"], "userName");
    assert_eq!(names, ["dave@example.com", "carol@example.com"]);
    let first = &sorted.body["Resources"][0];
    assert!(first.get("id").is_some(), "id is returned always");
    assert!(
        first.get("emails").is_none() && first.get("name").is_none(),
        "only the asked attributes: {first}"
    );

    let excluded = srv
        .get("/Users?excludedAttributes=emails,name&count=1")
        .await;
    let user = &excluded.body["Resources"][0];
    assert!(user.get("emails").is_none() && user.get("name").is_none());
    assert!(user.get("userName").is_some());
    // count=0 gives only the total.
    let totals = srv.get("/Users?count=0").await;
    assert_eq!(totals.body["totalResults"], 5);
    assert_eq!(totals.body["itemsPerPage"], 0);
    // A filter the store cannot push down runs in memory.
    let co = srv
        .get_filtered("/Users", "userName co \"ar\" or userName sw \"e\"")
        .await;
    assert_eq!(co.body["totalResults"], 2, "{}", co.text);
}

async fn media_types_and_request_ids(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    // application/json is accepted (Okta's spec tests send it).
    let json_body = srv
        .send(
            srv.request(Method::POST, "/Users")
                .header("content-type", "application/json; charset=utf-8")
                .header("x-request-id", "req-okta-0001")
                .body(user_body("json@example.com").to_string()),
        )
        .await;
    assert_eq!(json_body.status, 201, "{}", json_body.text);
    assert_eq!(json_body.header("x-request-id"), Some("req-okta-0001"));
    assert_eq!(
        json_body.header("content-type"),
        Some(server::SCIM_CONTENT_TYPE)
    );
    let plain = srv
        .send(
            srv.request(Method::POST, "/Users")
                .header("content-type", "text/plain")
                .body(user_body("plain@example.com").to_string()),
        )
        .await;
    plain.assert_error(415, None);
    // A generated request id when none is sent.
    let generated = srv.get("/Users").await;
    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| id.len() >= 16)
    );

    // The audit record carries the request id, the token name and the peer address.
    let audit = srv.store.audit().export(None).await.unwrap();
    let record = audit
        .iter()
        .find(|r| r.request_id == "req-okta-0001")
        .expect("the POST is audited");
    assert_eq!(record.actor.as_deref(), Some("okta"));
    assert_eq!(record.source_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.operation, "POST /Users");
    assert_eq!(record.resource_type.as_deref(), Some("User"));
    assert_eq!(record.resource_id.as_deref(), json_body.body["id"].as_str());
}
