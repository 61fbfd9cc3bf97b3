//! `/Roles` and a User's `roles` (Okta Identity Governance entitlements as Coder roles): the
//! catalog is listed, filtered and paged, discovery advertises it, and a write may only carry
//! offered roles.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use crate::{filter_param, patch_op, user_body};
use scim::roles::{GrantableRole, RoleCatalog};
use serde_json::{Value, json};
use std::sync::Arc;

on_both_backends!(
    roles_are_listed_filtered_and_paged,
    discovery_advertises_the_role_resource_type,
    a_user_may_only_carry_offered_roles,
    without_a_catalog_roles_are_plain_data
);

async fn server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(
        backend,
        |c| {
            c.roles = Arc::new(RoleCatalog::new(vec![
                GrantableRole::site("template-admin"),
                GrantableRole::site("user-admin"),
                GrantableRole::site("auditor"),
                GrantableRole::in_organization("default", "organization-admin"),
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

async fn roles_are_listed_filtered_and_paged(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let all = srv.get("/Roles").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["totalResults"], 4);
    assert_eq!(
        ids(&all.body),
        [
            "template-admin",
            "user-admin",
            "auditor",
            "default:organization-admin"
        ]
    );
    let role = &all.body["Resources"][0];
    assert_eq!(
        role["schemas"],
        json!(["urn:okta:scim:schemas:core:1.0:Role"])
    );
    assert_eq!(role["value"], "template-admin");
    assert_eq!(role["displayName"], "Coder template-admin");
    assert_eq!(role["meta"]["resourceType"], "Role");
    assert_eq!(
        role["meta"]["location"],
        srv.url("/Roles/template-admin").as_str()
    );

    let filtered = srv
        .get(&format!(
            "/Roles?filter={}",
            filter_param("type eq \"site\" and value sw \"TEMPLATE\"")
        ))
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    assert_eq!(ids(&filtered.body), ["template-admin"]);

    let page = srv.get("/Roles?startIndex=2&count=2").await;
    assert_eq!(page.body["totalResults"], 4);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 2);
    assert_eq!(ids(&page.body), ["user-admin", "auditor"]);

    // sortBy/sortOrder and attributes/excludedAttributes as on /Users.
    let sorted = srv.get("/Roles?sortBy=value&sortOrder=descending").await;
    assert_eq!(sorted.status, 200, "{}", sorted.text);
    assert_eq!(
        ids(&sorted.body),
        [
            "user-admin",
            "template-admin",
            "default:organization-admin",
            "auditor"
        ]
    );
    let projected = srv.get("/Roles?attributes=value&count=1").await;
    let mut keys: Vec<&String> = projected.body["Resources"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, ["id", "schemas", "value"], "{}", projected.text);
    let excluded = srv
        .get("/Roles/auditor?excludedAttributes=displayName,display")
        .await;
    assert_eq!(excluded.body["value"], "auditor");
    assert!(
        excluded.body.get("displayName").is_none(),
        "{}",
        excluded.text
    );

    let one = srv.get("/Roles/default:organization-admin").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["value"], "organization-admin");
    assert_eq!(one.body["type"], "organization:default");
    srv.get("/Roles/owner").await.assert_error(404, None);
    srv.get(&format!("/Roles?filter={}", filter_param("value eq")))
        .await
        .assert_error(400, Some("invalidFilter"));
    // The catalog is behind the credential, like the Users it is granted to.
    let anonymous = srv.send(srv.client.get(srv.url("/Roles"))).await;
    assert_eq!(anonymous.status, 401);
    let post = srv.post("/Roles", &json!({"value": "owner"})).await;
    assert_eq!(post.status, 405, "{}", post.text);
}

async fn discovery_advertises_the_role_resource_type(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let types = srv.send(srv.client.get(srv.url("/ResourceTypes"))).await;
    let role = types.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "Role")
        .cloned()
        .expect("a Role resource type");
    // What Okta's guide requires for Identity Governance to read the roles.
    assert_eq!(role["endpoint"], "/Roles");
    assert_eq!(role["schema"], "urn:okta:scim:schemas:core:1.0:Role");
    let one = srv
        .send(srv.client.get(srv.url("/ResourceTypes/Role")))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, role);
    // draft-ietf-scim-roles-entitlements: the provider configuration says /Roles is served.
    let spc = srv
        .send(srv.client.get(srv.url("/ServiceProviderConfig")))
        .await;
    assert_eq!(spc.body["RolesAndEntitlements"]["roles"]["supported"], true);
    assert_eq!(
        spc.body["RolesAndEntitlements"]["entitlements"]["supported"],
        false
    );
    let schema = srv
        .send(
            srv.client
                .get(srv.url("/Schemas/urn:okta:scim:schemas:core:1.0:Role")),
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

/// Okta's documented user shape: `roles: [{value, display}]`, value = the Role's id.
async fn a_user_may_only_carry_offered_roles(backend: Backend) {
    let Some(srv) = server(backend).await else {
        return;
    };
    let mut body = user_body("roles.user@okta.local");
    body["roles"] = json!([{"value": "template-admin", "display": "Coder template-admin"}]);
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["roles"][0]["value"], "template-admin");

    // POST, PUT and PATCH alike refuse a role that is not offered, naming it; nothing changes.
    let mut owner = user_body("owner.user@okta.local");
    owner["roles"] = json!([{"value": "owner"}]);
    let refused = srv.post("/Users", &owner).await;
    refused.assert_error(400, Some("invalidValue"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"owner\"")
    );
    let mut put = body.clone();
    put["roles"] = json!([{"value": "template-admin"}, {"value": "site-admin"}]);
    let refused = srv.put(&format!("/Users/{id}"), &put).await;
    refused.assert_error(400, Some("invalidValue"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"site-admin\"")
    );
    let refused = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add", "path": "roles", "value": [{"value": "owner"}]}])),
        )
        .await;
    refused.assert_error(400, Some("invalidValue"));
    let stored = srv.get(&format!("/Users/{id}")).await;
    assert_eq!(
        stored.body["roles"],
        json!([{"value": "template-admin", "display": "Coder template-admin"}])
    );
    assert_eq!(
        stored.body["meta"]["version"],
        created.body["meta"]["version"]
    );

    // A grant and a revoke by PATCH.
    let granted = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add", "path": "roles", "value": [{"value": "default:organization-admin"}]}])),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(granted.body["roles"].as_array().unwrap().len(), 2);
    let revoked = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "remove", "path": "roles[value eq \"template-admin\"]"}])),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        revoked.body["roles"],
        json!([{"value": "default:organization-admin"}])
    );

    // In a /Bulk operation too.
    let bulk = srv
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1", "data": owner}]
            }),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text);
    assert_eq!(bulk.body["Operations"][0]["status"], "400", "{}", bulk.text);
}

async fn without_a_catalog_roles_are_plain_data(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    // Entra maps its own app roles to `roles`: kept, never refused.
    let mut body = user_body("entra.user@contoso.example");
    body["roles"] =
        json!([{"value": "User", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}]);
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let listed = srv.get("/Roles").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["totalResults"], 0);
    // Nothing offered: discovery does not advertise a Role resource type (User, Group, Agent
    // and AgenticApplication only).
    let types = srv.send(srv.client.get(srv.url("/ResourceTypes"))).await;
    assert_eq!(types.body["totalResults"], 4, "{}", types.text);
    let role = srv
        .send(srv.client.get(srv.url("/ResourceTypes/Role")))
        .await;
    assert_eq!(role.status, 404);
}
