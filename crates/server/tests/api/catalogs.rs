//! `/Roles` and `/Entitlements` with a User's `roles` and `entitlements` (Okta Identity
//! Governance entitlements as Coder roles and as Coder organization memberships): each catalog
//! is listed, filtered, sorted, projected and paged, discovery advertises exactly what is
//! offered, and a write may only carry offered values. One `scim::catalog::Catalog` serves both,
//! so every check is written once over a [`Catalog`] and run on each.

use crate::on_both_backends;
use crate::support::{Backend, Reply, TestServer};
use crate::{field_of_each, patch_op, user_body};
use scim::entitlements::{EntitlementCatalog, GrantableEntitlement};
use scim::roles::{GrantableRole, RoleCatalog};
use serde_json::{Value, json};
use server::ServerConfig;
use std::sync::Arc;

on_both_backends!(
    catalogs_are_listed_filtered_sorted_and_paged,
    discovery_advertises_only_the_offered_catalog,
    a_user_may_only_carry_offered_values,
    without_a_catalog_the_user_attribute_is_plain_data
);

/// What tells one catalog from the other in the checks both pass.
struct Catalog {
    /// The resource type (`/ResourceTypes/{name}`, `meta.resourceType`).
    name: &'static str,
    endpoint: &'static str,
    /// Okta's URN, by which Identity Governance recognises the resource type.
    schema: &'static str,
    /// The User attribute that grants an offer, also its key in `RolesAndEntitlements`.
    attribute: &'static str,
    /// What an offer is called in error details.
    noun: &'static str,
    /// The `RolesAndEntitlements` flag for several grants per User.
    multiple: &'static str,
    /// The other catalog, not offered here: its resource type and User attribute.
    other: (&'static str, &'static str),
    /// Settings that offer `ids`.
    offer: fn(&mut ServerConfig),
    /// The offered ids, in catalog order.
    ids: &'static [&'static str],
    /// Attributes of the first offer as listed (beyond `id`, `schemas` and `meta`).
    first: &'static [(&'static str, &'static str)],
    /// An offer fetched by id, and attributes it has.
    one: (&'static str, &'static [(&'static str, &'static str)]),
    /// A filter and the ids it selects.
    filter: (&'static str, &'static [&'static str]),
    /// A sorted query and the ids it lists.
    sorted: (&'static str, &'static [&'static str]),
    /// A query from `startIndex=2` and the ids on its page.
    page: (&'static str, &'static [&'static str]),
    /// A query with `attributes` and the keys of the first resource it lists.
    projected: (&'static str, &'static [&'static str]),
    /// An offer fetched with these attributes excluded.
    excluded: (&'static str, &'static [&'static str]),
    /// A User's grant as the IdP sends it: Okta's documented shape, value = the offer's id.
    granted: Value,
    /// A second grant, added by PATCH as a governance client sends it.
    granted_later: Value,
    /// Two ids that are not offered.
    not_offered: [&'static str; 2],
    /// What an IdP sends in the User attribute when nothing is offered: kept, never refused.
    plain_data: Value,
}

fn roles() -> Catalog {
    Catalog {
        name: "Role",
        endpoint: "/Roles",
        schema: "urn:okta:scim:schemas:core:1.0:Role",
        attribute: "roles",
        noun: "role",
        multiple: "multipleRolesSupported",
        other: ("Entitlement", "entitlements"),
        offer: offer_roles,
        ids: &[
            "template-admin",
            "user-admin",
            "auditor",
            "default:organization-admin",
        ],
        first: &[
            ("value", "template-admin"),
            ("displayName", "Coder template-admin"),
        ],
        one: (
            "default:organization-admin",
            &[
                ("value", "organization-admin"),
                ("type", "organization:default"),
            ],
        ),
        filter: (
            "type eq \"site\" and value sw \"TEMPLATE\"",
            &["template-admin"],
        ),
        sorted: (
            "sortBy=value&sortOrder=descending",
            &[
                "user-admin",
                "template-admin",
                "default:organization-admin",
                "auditor",
            ],
        ),
        page: ("startIndex=2&count=2", &["user-admin", "auditor"]),
        projected: ("attributes=value&count=1", &["id", "schemas", "value"]),
        excluded: ("auditor", &["displayName", "display"]),
        granted: json!({"value": "template-admin", "display": "Coder template-admin"}),
        granted_later: json!({"value": "default:organization-admin"}),
        not_offered: ["owner", "site-admin"],
        // Entra maps its own app roles to `roles`.
        plain_data: json!({"value": "User", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}),
    }
}

/// Offer three site roles and one organization role.
pub fn offer_roles(config: &mut ServerConfig) {
    config.roles = Arc::new(RoleCatalog::new(vec![
        GrantableRole::site("template-admin"),
        GrantableRole::site("user-admin"),
        GrantableRole::site("auditor"),
        GrantableRole::in_organization("default", "organization-admin"),
    ]));
}

fn entitlements() -> Catalog {
    Catalog {
        name: "Entitlement",
        endpoint: "/Entitlements",
        schema: "urn:okta:scim:schemas:core:1.0:Entitlement",
        attribute: "entitlements",
        noun: "entitlement",
        multiple: "multipleEntitlementsSupported",
        other: ("Role", "roles"),
        offer: |config| {
            config.entitlements = Arc::new(EntitlementCatalog::new(vec![
                GrantableEntitlement::organization("Eng"),
                GrantableEntitlement::organization("Research"),
                GrantableEntitlement::organization("Apps"),
            ]))
        },
        ids: &["Eng", "Research", "Apps"],
        first: &[
            ("value", "Eng"),
            ("displayName", "Member of Coder organization Eng"),
            ("type", "OrganizationMembership"),
        ],
        one: (
            "Research",
            &[
                ("value", "Research"),
                ("displayName", "Member of Coder organization Research"),
            ],
        ),
        filter: (
            "displayName co \"research\" or value eq \"APPS\"",
            &["Research", "Apps"],
        ),
        sorted: ("sortBy=value", &["Apps", "Eng", "Research"]),
        page: (
            "sortBy=displayName&sortOrder=descending&startIndex=2&count=1",
            &["Eng"],
        ),
        // RFC 7644 §3.4.2.5: `id` is always returned; the rest as asked.
        projected: (
            "attributes=displayName&filter=value%20eq%20%22Eng%22",
            &["displayName", "id", "schemas"],
        ),
        excluded: ("Research", &["meta", "display"]),
        granted: json!({
            "value": "Eng",
            "display": "Member of Coder organization Eng",
            "type": "Entitlement"
        }),
        // Ids are matched ignoring case.
        granted_later: json!({"value": "research", "type": "Entitlement"}),
        not_offered: ["Sales", "Finance"],
        plain_data: json!({"value": "license.full_access_seat", "type": "License"}),
    }
}

/// A server offering each catalog, with it (none when PostgreSQL is asked for and absent).
async fn offering_servers(backend: Backend) -> Vec<(TestServer, Catalog)> {
    let mut servers = Vec::new();
    for catalog in [roles(), entitlements()] {
        let Some(srv) = TestServer::start_with(backend, catalog.offer).await else {
            break;
        };
        servers.push((srv, catalog));
    }
    servers
}

fn ids(body: &Value) -> Vec<&str> {
    field_of_each(&body["Resources"], "id")
}

async fn catalogs_are_listed_filtered_sorted_and_paged(backend: Backend) {
    for (srv, catalog) in offering_servers(backend).await {
        listed_filtered_sorted_and_paged(&srv, &catalog).await;
    }
}

async fn listed_filtered_sorted_and_paged(srv: &TestServer, catalog: &Catalog) {
    let endpoint = catalog.endpoint;
    let list = async |query: &str| srv.get(&format!("{endpoint}?{query}")).await;
    let all = srv.get(endpoint).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["totalResults"], catalog.ids.len());
    assert_eq!(ids(&all.body), catalog.ids);
    let first = &all.body["Resources"][0];
    assert_eq!(first["schemas"], json!([catalog.schema]));
    for (attribute, value) in catalog.first {
        assert_eq!(first[attribute], *value, "{attribute} of {first}");
    }
    assert_eq!(first["meta"]["resourceType"], catalog.name);
    assert_eq!(
        first["meta"]["location"],
        srv.url(&format!("{endpoint}/{}", catalog.ids[0])).as_str()
    );

    let (filter, selected) = catalog.filter;
    let filtered = srv.get_filtered(endpoint, filter).await;
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    assert_eq!(ids(&filtered.body), selected);

    // sortBy/sortOrder, paging and attributes/excludedAttributes as on /Users.
    let (query, sorted_ids) = catalog.sorted;
    let sorted = list(query).await;
    assert_eq!(sorted.status, 200, "{}", sorted.text);
    assert_eq!(ids(&sorted.body), sorted_ids);
    let (query, page_ids) = catalog.page;
    let page = list(query).await;
    assert_eq!(page.body["totalResults"], catalog.ids.len());
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], page_ids.len());
    assert_eq!(ids(&page.body), page_ids);
    let counted = list("count=0").await;
    assert_eq!(counted.body["totalResults"], catalog.ids.len());
    assert!(counted.body.get("Resources").is_none(), "{}", counted.text);

    let (query, expected_keys) = catalog.projected;
    let projected = list(query).await;
    let mut keys: Vec<&String> = projected.body["Resources"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, expected_keys, "{}", projected.text);
    let (id, attributes) = catalog.excluded;
    let excluded = srv
        .get(&format!(
            "{endpoint}/{id}?excludedAttributes={}",
            attributes.join(",")
        ))
        .await;
    assert_eq!(excluded.status, 200, "{}", excluded.text);
    assert_eq!(excluded.body["value"], id);
    for attribute in attributes {
        assert!(excluded.body.get(attribute).is_none(), "{}", excluded.text);
    }

    let (id, attributes) = catalog.one;
    let one = srv.get(&format!("{endpoint}/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    for (attribute, value) in attributes {
        assert_eq!(one.body[attribute], *value, "{}", one.text);
    }
    let not_offered = catalog.not_offered[0];
    srv.get(&format!("{endpoint}/{not_offered}"))
        .await
        .assert_error(404, None);
    list("sortOrder=sideways")
        .await
        .assert_error(400, Some("invalidValue"));
    srv.get_filtered(endpoint, "value eq")
        .await
        .assert_error(400, Some("invalidFilter"));
    // The catalog is behind the credential, like the Users it is granted to, and read-only.
    let anonymous = srv.get_anonymous(endpoint).await;
    assert_eq!(anonymous.status, 401);
    let post = srv.post(endpoint, &json!({"value": not_offered})).await;
    assert_eq!(post.status, 405, "{}", post.text);
}

async fn discovery_advertises_only_the_offered_catalog(backend: Backend) {
    for (srv, catalog) in offering_servers(backend).await {
        discovery_advertises(&srv, &catalog).await;
    }
}

async fn discovery_advertises(srv: &TestServer, catalog: &Catalog) {
    let (other_name, other_attribute) = catalog.other;
    let types = srv.get_anonymous("/ResourceTypes").await;
    let resources = types.body["Resources"].as_array().unwrap();
    // Only what is offered.
    assert!(!resources.iter().any(|t| t["id"] == other_name));
    let advertised = resources
        .iter()
        .find(|t| t["id"] == catalog.name)
        .cloned()
        .expect("the catalog's resource type");
    // What Okta's guide requires for Identity Governance to read the catalog.
    assert_eq!(advertised["name"], catalog.name);
    assert_eq!(advertised["endpoint"], catalog.endpoint);
    assert_eq!(advertised["schema"], catalog.schema);
    let one = srv
        .get_anonymous(&format!("/ResourceTypes/{}", catalog.name))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, advertised);
    let other = srv
        .get_anonymous(&format!("/ResourceTypes/{other_name}"))
        .await;
    assert_eq!(other.status, 404);

    // draft-ietf-scim-roles-entitlements §3.1, truthfully.
    let spc = srv.get_anonymous("/ServiceProviderConfig").await;
    let block = &spc.body["RolesAndEntitlements"];
    assert_eq!(block[catalog.attribute]["supported"], true, "{}", spc.text);
    assert_eq!(block[catalog.attribute][catalog.multiple], true);
    assert_eq!(block[other_attribute], json!({"supported": false}));
    assert_eq!(spc.body["sort"]["supported"], true);

    let schema = srv
        .get_anonymous(&format!("/Schemas/{}", catalog.schema))
        .await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    let names = field_of_each(&schema.body["attributes"], "name");
    for name in ["value", "displayName", "display", "type", "supported"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

async fn a_user_may_only_carry_offered_values(backend: Backend) {
    for (srv, catalog) in offering_servers(backend).await {
        only_offered_values(&srv, &catalog).await;
    }
}

async fn only_offered_values(srv: &TestServer, catalog: &Catalog) {
    let attribute = catalog.attribute;
    let granted = catalog.granted["value"].as_str().unwrap();
    let [not_offered, also_not_offered] = catalog.not_offered;
    let refused_naming = |refused: &Reply, value: &str| {
        refused.assert_error(400, Some("invalidValue"));
        let named = format!("{} \"{value}\"", catalog.noun);
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains(&named), "{}", refused.text);
    };
    let mut body = user_body("granted.user@okta.local");
    body[attribute] = json!([catalog.granted]);
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body[attribute][0]["value"], granted);

    // POST, PUT and PATCH alike refuse a value that is not offered, naming it; nothing changes.
    let mut other = user_body("not.offered@okta.local");
    other[attribute] = json!([{"value": not_offered}]);
    refused_naming(&srv.post("/Users", &other).await, not_offered);
    let mut put = body.clone();
    put[attribute] = json!([{"value": granted}, {"value": also_not_offered}]);
    refused_naming(
        &srv.put(&format!("/Users/{id}"), &put).await,
        also_not_offered,
    );
    let refused = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add", "path": attribute, "value": [{"value": not_offered}]}])),
        )
        .await;
    refused.assert_error(400, Some("invalidValue"));
    let stored = srv.get(&format!("/Users/{id}")).await;
    assert_eq!(stored.body[attribute], json!([catalog.granted]));
    assert_eq!(
        stored.body["meta"]["version"],
        created.body["meta"]["version"]
    );

    // A grant and a revoke by PATCH, as a governance client sends them.
    let added = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add", "path": attribute, "value": [catalog.granted_later]}])),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert_eq!(added.body[attribute].as_array().unwrap().len(), 2);
    let revoked = srv
        .patch(
            &format!("/Users/{id}"),
            &patch_op(
                json!([{"op": "remove", "path": format!("{attribute}[value eq \"{granted}\"]")}]),
            ),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body[attribute], json!([catalog.granted_later]));

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

async fn without_a_catalog_the_user_attribute_is_plain_data(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    for catalog in [roles(), entitlements()] {
        let mut body = user_body(&format!("plain.{}@okta.local", catalog.attribute));
        body[catalog.attribute] = json!([catalog.plain_data]);
        let created = srv.post("/Users", &body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body[catalog.attribute], body[catalog.attribute]);
        let listed = srv.get(catalog.endpoint).await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed.body["totalResults"], 0);
        let advertised = srv
            .get_anonymous(&format!("/ResourceTypes/{}", catalog.name))
            .await;
        assert_eq!(advertised.status, 404);
    }
    // Nothing offered: discovery advertises neither catalog (User, Group, Agent and
    // AgenticApplication only).
    let types = srv.get_anonymous("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 4, "{}", types.text);
    let spc = srv.get_anonymous("/ServiceProviderConfig").await;
    assert!(spc.body.get("RolesAndEntitlements").is_none());
}
