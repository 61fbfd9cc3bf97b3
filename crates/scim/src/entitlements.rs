//! The Coder entitlements an IdP may grant on a User (`entitlements`), as Okta Identity
//! Governance discovers them: an `Entitlement` resource type at `/Entitlements` (Okta's guide
//! "Build a SCIM 2.0 server with entitlements"; draft-ietf-scim-roles-entitlements). The check,
//! the holding and the listing are the [`Catalog`]'s.
//!
//! Decisions:
//! - What `/Entitlements` adds to `/Roles` is membership of a Coder organization: Coder has no
//!   role for it (`organization-member` is implied and cannot be granted), so no Role can say
//!   "member of Eng, nothing more". Organization roles stay Roles.
//! - An entitlement's `id` and `value` are both the organization key of the configuration
//!   (`Eng`, or an organization id), so Okta (by `id`) and the draft (by `value`) grant it alike.
//! - The catalog is configured (`[entitlements.grantable]`). Without it `entitlements` stays
//!   plain data and is not checked.

use crate::catalog::{Catalog, CatalogType, Offer};
use serde_json::{Value, json};

/// The schema Okta Identity Governance requires of an Entitlement resource type.
pub const ENTITLEMENT_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Entitlement";

/// The resource type name (`/ResourceTypes/Entitlement`, `meta.resourceType`).
pub const ENTITLEMENT_RESOURCE_TYPE: &str = "Entitlement";

/// The endpoint below the base URL.
pub const ENTITLEMENT_ENDPOINT: &str = "/Entitlements";

/// The `type` of an organization membership.
pub const ORGANIZATION_MEMBERSHIP: &str = "OrganizationMembership";

/// The `Entitlement` resource type.
pub static ENTITLEMENT_TYPE: CatalogType = CatalogType {
    name: ENTITLEMENT_RESOURCE_TYPE,
    endpoint: ENTITLEMENT_ENDPOINT,
    schema: ENTITLEMENT_SCHEMA,
    description: "Coder organization memberships an identity provider may grant on a User's entitlements",
    user_attribute: "entitlements",
    noun: "entitlement",
};

/// One Coder entitlement an IdP may grant: membership of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantableEntitlement {
    /// Stable: the organization key of the configuration (a name or an id).
    pub id: String,
}

impl GrantableEntitlement {
    /// Membership of the organization the configuration calls `key`.
    pub fn organization(key: &str) -> GrantableEntitlement {
        GrantableEntitlement { id: key.to_owned() }
    }

    /// The organization key (`[entitlements.grantable] organizations`).
    pub fn organization_key(&self) -> &str {
        &self.id
    }

    /// What an admin reads on Okta's Governance tab.
    pub fn display_name(&self) -> String {
        format!("Member of Coder organization {}", self.id)
    }
}

impl Offer for GrantableEntitlement {
    const TYPE: &'static CatalogType = &ENTITLEMENT_TYPE;

    fn id(&self) -> &str {
        &self.id
    }

    /// The Entitlement resource: Okta's `id`, `displayName` and `type`, the draft's `value`,
    /// `display` and `supported`.
    fn to_scim(&self, base_url: &str) -> Value {
        let display = self.display_name();
        json!({
            "schemas": [ENTITLEMENT_SCHEMA],
            "id": self.id,
            "value": self.id,
            "displayName": display,
            "display": display,
            "type": ORGANIZATION_MEMBERSHIP,
            "supported": true,
            "meta": ENTITLEMENT_TYPE.meta(base_url, &self.id),
        })
    }
}

/// The entitlements on offer, in configuration order.
pub type EntitlementCatalog = Catalog<GrantableEntitlement>;

impl EntitlementCatalog {
    /// Every offered entitlement.
    pub fn entitlements(&self) -> &[GrantableEntitlement] {
        self.offers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::query::ListQuery;
    use serde_json::Map;

    fn catalog() -> EntitlementCatalog {
        EntitlementCatalog::new(vec![
            GrantableEntitlement::organization("Eng"),
            GrantableEntitlement::organization("Research"),
        ])
    }

    fn user(entitlements: Value) -> Map<String, Value> {
        json!({"userName": "a@b.c", "entitlements": entitlements})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_user_may_carry_offered_entitlements_only() {
        let c = catalog();
        // Okta's documented shape: value, display and type (the resource type's name).
        c.check_user(&user(
            json!([{"value": "Eng", "display": "Member of Coder organization Eng", "type": "Entitlement"}]),
        ))
        .unwrap();
        let error = c
            .check_user(&user(json!([{"value": "eng"}, {"value": "Sales"}])))
            .unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.scim_type, Some(crate::ScimType::InvalidValue));
        assert!(
            error.detail.contains("entitlement \"Sales\""),
            "{}",
            error.detail
        );
        assert!(error.detail.contains("/Entitlements"), "{}", error.detail);
        // The roles are another catalog's business.
        c.check_user(
            &json!({"roles": [{"value": "owner"}]})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .unwrap();
        let off = EntitlementCatalog::default();
        off.check_user(&user(json!([{"value": "Sales"}]))).unwrap();
        assert!(off.held(&user(json!([{"value": "Eng"}]))).is_empty());
    }

    #[test]
    fn held_entitlements_are_found_by_id_once() {
        let c = catalog();
        let held = c.held(&user(json!([
            {"value": "research"},
            {"value": "Research", "primary": true},
            {"value": "Eng"}
        ])));
        let ids: Vec<&str> = held.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["Research", "Eng"]);
    }

    #[test]
    fn the_entitlement_resource_has_okta_and_draft_attributes() {
        let doc = GrantableEntitlement::organization("Eng").to_scim("https://b.example/scim/v2");
        assert_eq!(doc["schemas"], json!([ENTITLEMENT_SCHEMA]));
        assert_eq!(doc["id"], "Eng");
        assert_eq!(doc["value"], "Eng");
        assert_eq!(doc["displayName"], "Member of Coder organization Eng");
        assert_eq!(doc["display"], doc["displayName"]);
        assert_eq!(doc["type"], ORGANIZATION_MEMBERSHIP);
        assert_eq!(doc["supported"], true);
        assert_eq!(doc["meta"]["resourceType"], "Entitlement");
        assert_eq!(
            doc["meta"]["location"],
            "https://b.example/scim/v2/Entitlements/Eng"
        );
        let schema = Registry::standard()
            .schema(ENTITLEMENT_SCHEMA)
            .expect("served by /Schemas");
        for name in ["value", "displayName", "display", "type", "supported"] {
            assert!(schema.attribute(name).is_some(), "{name}");
        }
    }

    #[test]
    fn listing_filters_sorts_and_pages() {
        let c = catalog();
        let list = |params: &[(&str, &str)]| -> Vec<String> {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let query = ListQuery::from_params(&params).unwrap();
            c.list(&query, "", Registry::standard())
                .1
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(list(&[]), ["Eng", "Research"]);
        assert_eq!(list(&[("filter", "value eq \"research\"")]), ["Research"]);
        assert_eq!(
            list(&[("sortBy", "id"), ("sortOrder", "descending")]),
            ["Research", "Eng"]
        );
        assert_eq!(list(&[("startIndex", "2"), ("count", "5")]), ["Research"]);
    }
}
