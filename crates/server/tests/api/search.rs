//! POST `.search` (RFC 7644 §3.4.3) on each resource type and at the root.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use serde_json::json;

on_both_backends!(search_requests);

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

async fn search_requests(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let alice = srv.create_user("alice@example.com").await;
    srv.create_user("bob@example.com").await;
    let group = srv.create_group("Admins", &[&alice]).await;

    let users = srv
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH], "filter": "userName eq \"alice@example.com\"", "attributes": ["userName"]}),
        )
        .await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert_eq!(users.body["totalResults"], 1);
    assert_eq!(users.body["Resources"][0]["id"], alice);
    assert!(users.body["Resources"][0].get("emails").is_none());

    let groups = srv
        .post(
            "/Groups/.search",
            &json!({"schemas": [SEARCH], "excludedAttributes": "members"}),
        )
        .await;
    assert_eq!(groups.body["totalResults"], 1);
    assert!(groups.body["Resources"][0].get("members").is_none());

    // The root spans both types; each resource names its schema.
    let all = srv
        .post("/.search", &json!({"schemas": [SEARCH], "count": 10}))
        .await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["totalResults"], 3);
    let schemas: Vec<&str> = all.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["schemas"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        schemas,
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group"
        ]
    );
    // Paging runs across both types as one sequence.
    let second_page = srv
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "startIndex": 2, "count": 2}),
        )
        .await;
    assert_eq!(second_page.body["totalResults"], 3);
    assert_eq!(second_page.body["itemsPerPage"], 2);
    assert_eq!(second_page.body["Resources"][1]["id"], group);
    let by_name = srv
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "filter": "displayName eq \"Admins\""}),
        )
        .await;
    assert_eq!(by_name.body["totalResults"], 1, "{}", by_name.text);
    assert_eq!(by_name.body["Resources"][0]["id"], group);
}
