//! `/Entitlements` and a User's `entitlements` (Okta Identity Governance entitlements as Coder
//! organization memberships): the catalog is listed, filtered, sorted, projected and paged,
//! discovery advertises it, and a write may only carry offered entitlements.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use crate::{filter_param, patch_op, user_body};
use scim::entitlements::{EntitlementCatalog, GrantableEntitlement};
use serde_json::{Value, json};
use std::sync::Arc;

on_both_backends!(
    entitlements_are_listed_filtered_sorted_and_paged,
    discovery_advertises_the_entitlement_resource_type,
    a_user_may_only_carry_offered_entitlements,
    without_a_catalog_entitlements_are_plain_data
);

async fn server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(
        backend,
        |c| {
            c.entitlements = Arc::new(EntitlementCatalog::new(vec![
                GrantableEntitlement::organization("Eng"),
                GrantableEntitlement::organization("Research"),
                GrantableEntitlement::organization("Apps"),
            ]))
        },
        None,
    )
    .await
}

fn ids(body: &Value) -> Vec<&str> {
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

async fn entitlements_are_listed_filtered_sorted_and_paged(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let all = srv.get("/Entitlements").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["totalResults"], 3);
    assert_eq!(ids(&all.body), ["Eng", "Research", "Apps"]);
    let eng = &all.body["Resources"][0];
    assert_eq!(
        eng["schemas"],
        json!(["urn:okta:scim:schemas:core:1.0:Entitlement"])
    );
    assert_eq!(eng["value"], "Eng");
    assert_eq!(eng["displayName"], "Member of Coder organization Eng");
    assert_eq!(eng["type"], "OrganizationMembership");
    assert_eq!(eng["meta"]["resourceType"], "Entitlement");
    assert_eq!(
        eng["meta"]["location"],
        srv.url("/Entitlements/Eng").as_str()
    );

    let filtered = srv
        .get(&format!(
            "/Entitlements?filter={}",
            filter_param("displayName co \"research\" or value eq \"APPS\"")
        ))
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    assert_eq!(ids(&filtered.body), ["Research", "Apps"]);

    let sorted = srv.get("/Entitlements?sortBy=value").await;
    assert_eq!(ids(&sorted.body), ["Apps", "Eng", "Research"]);
    let sorted = srv
        .get("/Entitlements?sortBy=displayName&sortOrder=descending&startIndex=2&count=1")
        .await;
    assert_eq!(sorted.body["totalResults"], 3);
    assert_eq!(sorted.body["startIndex"], 2);
    assert_eq!(sorted.body["itemsPerPage"], 1);
    assert_eq!(ids(&sorted.body), ["Eng"]);
    let counted = srv.get("/Entitlements?count=0").await;
    assert_eq!(counted.body["totalResults"], 3);
    assert!(counted.body.get("Resources").is_none(), "{}", counted.text);

    // RFC 7644 §3.4.2.5: `id` is always returned; the rest as asked.
    let projected = srv
        .get("/Entitlements?attributes=displayName&filter=value%20eq%20%22Eng%22")
        .await;
    let mut keys: Vec<&String> = projected.body["Resources"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "id", "schemas"], "{}", projected.text);
    let one = srv
        .get("/Entitlements/Research?excludedAttributes=meta,display")
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["value"], "Research");
    assert!(one.body.get("meta").is_none() && one.body.get("display").is_none());

    srv.get("/Entitlements/Sales").await.assert_error(404, None);
    srv.get("/Entitlements?sortOrder=sideways")
        .await
        .assert_error(400, Some("invalidValue"));
    srv.get(&format!(
        "/Entitlements?filter={}",
        filter_param("value eq")
    ))
    .await
    .assert_error(400, Some("invalidFilter"));
    // Behind the credential, read-only.
    let anonymous = srv.send(srv.client.get(srv.url("/Entitlements"))).await;
    assert_eq!(anonymous.status, 401);
    let post = srv.post("/Entitlements", &json!({"value": "Sales"})).await;
    assert_eq!(post.status, 405, "{}", post.text);
}

async fn discovery_advertises_the_entitlement_resource_type(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let types = srv.send(srv.client.get(srv.url("/ResourceTypes"))).await;
    let resources = types.body["Resources"].as_array().unwrap();
    // Only what is offered: entitlements here, no roles.
    assert!(!resources.iter().any(|t| t["id"] == "Role"));
    let entitlement = resources
        .iter()
        .find(|t| t["id"] == "Entitlement")
        .cloned()
        .expect("an Entitlement resource type");
    // What Okta's guide requires for Identity Governance to read the entitlements.
    assert_eq!(entitlement["name"], "Entitlement");
    assert_eq!(entitlement["endpoint"], "/Entitlements");
    assert_eq!(
        entitlement["schema"],
        "urn:okta:scim:schemas:core:1.0:Entitlement"
    );
    let one = srv
        .send(srv.client.get(srv.url("/ResourceTypes/Entitlement")))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, entitlement);
    let role = srv
        .send(srv.client.get(srv.url("/ResourceTypes/Role")))
        .await;
    assert_eq!(role.status, 404);

    // draft-ietf-scim-roles-entitlements §3.1, truthfully.
    let spc = srv
        .send(srv.client.get(srv.url("/ServiceProviderConfig")))
        .await;
    let block = &spc.body["RolesAndEntitlements"];
    assert_eq!(block["entitlements"]["supported"], true, "{}", spc.text);
    assert_eq!(block["entitlements"]["multipleEntitlementsSupported"], true);
    assert_eq!(block["roles"], json!({"supported": false}));
    assert_eq!(spc.body["sort"]["supported"], true);

    let schema = srv
        .send(
            srv.client
                .get(srv.url("/Schemas/urn:okta:scim:schemas:core:1.0:Entitlement")),
        )
        .await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    let names: Vec<&str> = schema.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in ["value", "displayName", "display", "type", "supported"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

/// Okta's documented user shape: `entitlements: [{value, display, type}]`, value = the
/// Entitlement's id.
async fn a_user_may_only_carry_offered_entitlements(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let mut body = user_body("entitled.user@okta.local");
    body["entitlements"] = json!([{
        "value": "Eng",
        "display": "Member of Coder organization Eng",
        "type": "Entitlement"
    }]);
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["entitlements"][0]["value"], "Eng");

    // POST, PUT and PATCH alike refuse an entitlement that is not offered, naming it.
    let mut other = user_body("sales.user@okta.local");
    other["entitlements"] = json!([{"value": "Sales"}]);
    let refused = srv.post("/Users", &other).await;
    refused.assert_error(400, Some("invalidValue"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("entitlement \"Sales\""),
        "{}",
        refused.text
    );
    let mut put = body.clone();
    put["entitlements"] = json!([{"value": "Eng"}, {"value": "Finance"}]);
    let refused = srv.put(&format!("/Users/{id}"), &put).await;
    refused.assert_error(400, Some("invalidValue"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"Finance\"")
    );
    let refused = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(
                json!([{"op": "add", "path": "entitlements", "value": [{"value": "Sales"}]}]),
            ),
        )
        .await;
    refused.assert_error(400, Some("invalidValue"));
    let stored = srv.get(&format!("/Users/{id}")).await;
    assert_eq!(
        stored.body["meta"]["version"],
        created.body["meta"]["version"]
    );

    // A grant and a revoke by PATCH, as a governance client sends them.
    let granted = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add", "path": "entitlements", "value": [{"value": "research", "type": "Entitlement"}]}])),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(granted.body["entitlements"].as_array().unwrap().len(), 2);
    let revoked = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "remove", "path": "entitlements[value eq \"Eng\"]"}])),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        revoked.body["entitlements"],
        json!([{"value": "research", "type": "Entitlement"}])
    );

    // In a /Bulk operation too.
    let bulk = srv
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1", "data": other}]
            }),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text);
    assert_eq!(bulk.body["Operations"][0]["status"], "400", "{}", bulk.text);
}

async fn without_a_catalog_entitlements_are_plain_data(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let mut body = user_body("plain.user@okta.local");
    body["entitlements"] = json!([{"value": "license.full_access_seat", "type": "License"}]);
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let listed = srv.get("/Entitlements").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["totalResults"], 0);
    let entitlement = srv
        .send(srv.client.get(srv.url("/ResourceTypes/Entitlement")))
        .await;
    assert_eq!(entitlement.status, 404);
    let spc = srv
        .send(srv.client.get(srv.url("/ServiceProviderConfig")))
        .await;
    assert!(spc.body.get("RolesAndEntitlements").is_none());
}
