//! The Coder roles an IdP may grant on a User (`roles`), as Okta Identity Governance discovers
//! them: a `Role` resource type at `/Roles` (Okta's guide "Build a SCIM 2.0 server with
//! entitlements"; draft-ietf-scim-roles-entitlements). The check, the holding and the listing
//! are the [`Catalog`]'s.
//!
//! Decisions:
//! - A role's `id` is what a client sends back as `roles[].value`: Okta assigns by the Role
//!   resource's `id`, the draft by its `value`. A site role's `id` and `value` are both Coder's
//!   name (`template-admin`), so either reading grants it; an organization role's `value` is
//!   Coder's name and its `id` is `<organization>:<name>` (the same name exists in every
//!   organization).
//! - The catalog is configured (`[roles.grantable]`). Without it the bridge offers no role,
//!   `roles` stays plain data and is not checked (Entra maps its own app roles there).

use crate::catalog::{Catalog, CatalogType, Offer};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The schema Okta Identity Governance requires of a Role resource type.
pub const ROLE_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Role";

/// The resource type name (`/ResourceTypes/Role`, `meta.resourceType`).
pub const ROLE_RESOURCE_TYPE: &str = "Role";

/// The endpoint below the base URL.
pub const ROLE_ENDPOINT: &str = "/Roles";

/// The `Role` resource type.
pub static ROLE_TYPE: CatalogType = CatalogType {
    name: ROLE_RESOURCE_TYPE,
    endpoint: ROLE_ENDPOINT,
    schema: ROLE_SCHEMA,
    description: "Coder roles an identity provider may grant on a User's roles",
    user_attribute: "roles",
    noun: "role",
};

/// One Coder role an IdP may grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantableRole {
    /// Stable: the Coder name, or `<organization>:<name>`.
    pub id: String,
    /// Coder's role name.
    pub value: String,
    /// `None`: a site role; else the organization key of the configuration (`default`, a name
    /// or an id).
    pub organization: Option<String>,
}

impl GrantableRole {
    /// A site role.
    pub fn site(name: &str) -> GrantableRole {
        GrantableRole {
            id: name.to_owned(),
            value: name.to_owned(),
            organization: None,
        }
    }

    /// A role in an organization.
    pub fn in_organization(organization: &str, name: &str) -> GrantableRole {
        GrantableRole {
            id: format!("{organization}:{name}"),
            value: name.to_owned(),
            organization: Some(organization.to_owned()),
        }
    }

    /// What an admin reads on Okta's Governance tab.
    pub fn display_name(&self) -> String {
        match &self.organization {
            None => format!("Coder {}", self.value),
            Some(org) => format!("Coder {} in organization {org}", self.value),
        }
    }

    /// The role's `type`: `site`, or `organization:<key>`.
    pub fn role_type(&self) -> String {
        match &self.organization {
            None => "site".to_owned(),
            Some(org) => format!("organization:{org}"),
        }
    }
}

impl Offer for GrantableRole {
    const TYPE: &'static CatalogType = &ROLE_TYPE;

    fn id(&self) -> &str {
        &self.id
    }

    /// The Role resource: Okta's `id` and `displayName`, the draft's `value`, `display`,
    /// `type` and `supported`.
    fn to_scim(&self, base_url: &str) -> Value {
        let display = self.display_name();
        json!({
            "schemas": [ROLE_SCHEMA],
            "id": self.id,
            "value": self.value,
            "displayName": display,
            "display": display,
            "type": self.role_type(),
            "supported": true,
            "meta": ROLE_TYPE.meta(base_url, &self.id),
        })
    }
}

/// The roles on offer, in a stable order (site roles, then each organization's).
pub type RoleCatalog = Catalog<GrantableRole>;

impl RoleCatalog {
    /// Every offered role.
    pub fn roles(&self) -> &[GrantableRole] {
        self.offers()
    }

    /// The organizations some offered role lives in: the bridge manages the roles of these.
    pub fn organizations(&self) -> BTreeSet<&str> {
        self.offers()
            .iter()
            .filter_map(|r| r.organization.as_deref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::query::ListQuery;
    use serde_json::Map;

    fn catalog() -> RoleCatalog {
        RoleCatalog::new(vec![
            GrantableRole::site("template-admin"),
            GrantableRole::site("auditor"),
            GrantableRole::in_organization("default", "organization-admin"),
        ])
    }

    fn user(roles: Value) -> Map<String, Value> {
        json!({"userName": "a@b.c", "roles": roles})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_user_may_carry_offered_roles_only() {
        let c = catalog();
        c.check_user(&user(
            json!([{"value": "template-admin", "display": "Coder template-admin"}]),
        ))
        .unwrap();
        c.check_user(&user(
            json!([{"value": "default:organization-admin"}, {"value": ""}]),
        ))
        .unwrap();
        let error = c
            .check_user(&user(json!([{"value": "auditor"}, {"value": "owner"}])))
            .unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.scim_type, Some(crate::ScimType::InvalidValue));
        assert!(error.detail.contains("\"owner\""), "{}", error.detail);
        // Not configured: roles are data, never refused, never held.
        let off = RoleCatalog::default();
        off.check_user(&user(json!([{"value": "User"}]))).unwrap();
        assert!(off.held(&user(json!([{"value": "auditor"}]))).is_empty());
    }

    #[test]
    fn held_roles_are_found_by_id_once() {
        let c = catalog();
        let held = c.held(&user(json!([
            {"value": "Template-Admin"},
            {"value": "template-admin", "primary": true},
            {"value": "default:organization-admin"}
        ])));
        let ids: Vec<&str> = held.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["template-admin", "default:organization-admin"]);
        assert_eq!(c.organizations(), BTreeSet::from(["default"]));
    }

    #[test]
    fn the_role_resource_has_okta_and_draft_attributes() {
        let role = GrantableRole::in_organization("default", "organization-admin");
        let doc = role.to_scim("https://b.example/scim/v2/");
        assert_eq!(doc["schemas"], json!([ROLE_SCHEMA]));
        assert_eq!(doc["id"], "default:organization-admin");
        assert_eq!(doc["value"], "organization-admin");
        assert_eq!(doc["displayName"], doc["display"]);
        assert_eq!(doc["type"], "organization:default");
        assert_eq!(doc["supported"], true);
        assert_eq!(
            doc["meta"]["location"],
            "https://b.example/scim/v2/Roles/default:organization-admin"
        );
    }

    #[test]
    fn listing_filters_sorts_projects_and_pages() {
        let c = catalog();
        let query = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            ListQuery::from_params(&params).unwrap()
        };
        let list = |params: &[(&str, &str)]| -> (usize, Vec<Value>) {
            c.list(
                &query(params),
                "https://b.example/scim/v2",
                Registry::standard(),
            )
        };
        let ids = |page: &[Value]| -> Vec<String> {
            page.iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let (total, page) = list(&[("filter", "type eq \"site\"")]);
        assert_eq!((total, page.len()), (2, 2));
        let (total, page) = list(&[("filter", "value eq \"Organization-Admin\"")]);
        assert_eq!(
            (total, ids(&page)),
            (1, vec!["default:organization-admin".into()])
        );
        let (total, page) = list(&[("startIndex", "2"), ("count", "1")]);
        assert_eq!((total, ids(&page)), (3, vec!["auditor".into()]));
        let (_, page) = list(&[("filter", "displayName co \"template\"")]);
        assert_eq!(page.len(), 1);
        // RFC 7644 §3.4.2.3: sortBy any attribute, strings ignoring case (caseExact false).
        let (_, page) = list(&[("sortBy", "value")]);
        assert_eq!(
            ids(&page),
            ["auditor", "default:organization-admin", "template-admin"]
        );
        // "Coder template-admin", "Coder organization-admin in …", "Coder auditor".
        let (_, page) = list(&[("sortBy", "displayName"), ("sortOrder", "descending")]);
        assert_eq!(
            ids(&page),
            ["template-admin", "default:organization-admin", "auditor"]
        );
        // RFC 7644 §3.4.2.5: `id` is returned always, `schemas` too.
        let (_, page) = list(&[("attributes", "displayName")]);
        let mut keys: Vec<&str> = page[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["displayName", "id", "schemas"]);
        let (_, page) = list(&[("excludedAttributes", "display,meta,id")]);
        let first: &Map<String, Value> = page[0].as_object().unwrap();
        assert!(!first.contains_key("display") && !first.contains_key("meta"));
        assert!(first.contains_key("id") && first.contains_key("value"));
    }
}
