//! The Coder roles an IdP may grant on a User (`roles`), as Okta Identity Governance discovers
//! them: a `Role` resource type at `/Roles` (Okta's guide "Build a SCIM 2.0 server with
//! entitlements"; draft-ietf-scim-roles-entitlements), the check every User write passes, and
//! which offered roles a stored User holds.
//!
//! Decisions:
//! - A role's `id` is what a client sends back as `roles[].value`: Okta assigns by the Role
//!   resource's `id`, the draft by its `value`. A site role's `id` and `value` are both Coder's
//!   name (`template-admin`), so either reading grants it; an organization role's `value` is
//!   Coder's name and its `id` is `<organization>:<name>` (the same name exists in every
//!   organization).
//! - The catalog is configured (`[roles.grantable]`). Without it the bridge offers no role,
//!   `roles` stays plain data and is not checked (Entra maps its own app roles there).

use crate::error::{ScimError, ScimResult};
use crate::filter::{self, Filter};
use crate::query::ListQuery;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// The schema Okta Identity Governance requires of a Role resource type.
pub const ROLE_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Role";

/// The resource type name (`/ResourceTypes/Role`, `meta.resourceType`).
pub const ROLE_RESOURCE_TYPE: &str = "Role";

/// The endpoint below the base URL.
pub const ROLE_ENDPOINT: &str = "/Roles";

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

    /// The Role resource: Okta's `id` and `displayName`, the draft's `value`, `display`,
    /// `type` and `supported`.
    pub fn to_scim(&self, base_url: &str) -> Value {
        let display = self.display_name();
        json!({
            "schemas": [ROLE_SCHEMA],
            "id": self.id,
            "value": self.value,
            "displayName": display,
            "display": display,
            "type": self.role_type(),
            "supported": true,
            "meta": {
                "resourceType": ROLE_RESOURCE_TYPE,
                "location": format!("{}{ROLE_ENDPOINT}/{}", base_url.trim_end_matches('/'), self.id),
            },
        })
    }
}

/// The roles on offer, in a stable order (site roles, then each organization's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleCatalog {
    roles: Vec<GrantableRole>,
    enabled: bool,
}

impl RoleCatalog {
    /// A configured catalog (possibly empty: then every role a User carries is refused).
    pub fn new(roles: Vec<GrantableRole>) -> RoleCatalog {
        RoleCatalog {
            roles,
            enabled: true,
        }
    }

    /// Whether roles are offered at all (`[roles.grantable]` is configured).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Every offered role.
    pub fn roles(&self) -> &[GrantableRole] {
        &self.roles
    }

    /// The organizations some offered role lives in: the bridge manages the roles of these.
    pub fn organizations(&self) -> BTreeSet<&str> {
        self.roles
            .iter()
            .filter_map(|r| r.organization.as_deref())
            .collect()
    }

    /// The offered role a client names (`roles[].value`), by id, ignoring case (Coder's names
    /// are lower case).
    pub fn find(&self, id: &str) -> Option<&GrantableRole> {
        let id = id.trim();
        self.roles.iter().find(|r| r.id.eq_ignore_ascii_case(id))
    }

    /// The offered roles a User's attributes hold, each once, with the value that named it.
    /// Values that name no offered role are skipped (a write never stores one while the catalog
    /// is enabled; see [`RoleCatalog::check_user`]).
    pub fn held<'c>(&'c self, attrs: &Map<String, Value>) -> Vec<&'c GrantableRole> {
        if !self.enabled {
            return Vec::new();
        }
        let mut held: Vec<&GrantableRole> = Vec::new();
        for value in role_values(attrs) {
            if let Some(role) = self.find(value)
                && !held.iter().any(|h| h.id == role.id)
            {
                held.push(role);
            }
        }
        held
    }

    /// A User write may only carry offered roles: otherwise 400 `invalidValue` naming the role.
    pub fn check_user(&self, attrs: &Map<String, Value>) -> ScimResult<()> {
        if !self.enabled {
            return Ok(());
        }
        match role_values(attrs).find(|v| self.find(v).is_none()) {
            None => Ok(()),
            Some(value) => Err(ScimError::invalid_value(format!(
                "role \"{value}\" is not offered: GET /Roles lists the roles this bridge may grant in Coder"
            ))),
        }
    }

    /// One page of `/Roles` (RFC 7644 §3.4.2): the roles matching the filter, in catalog order,
    /// paged by `startIndex` and `count`. Returns `(totalResults, page)`.
    pub fn list(&self, query: &ListQuery) -> (usize, Vec<&GrantableRole>) {
        let matching: Vec<&GrantableRole> = self
            .roles
            .iter()
            .filter(|r| query.filter.as_ref().is_none_or(|f| role_matches(f, r)))
            .collect();
        let total = matching.len();
        let page = matching[query.window(total)].to_vec();
        (total, page)
    }
}

/// Whether `role` matches `filter` (any attribute of the Role resource, strings ignoring case).
pub fn role_matches(filter: &Filter, role: &GrantableRole) -> bool {
    filter::eval::matches_schemaless(filter, &role.to_scim(""))
}

/// The non-empty `value`s of a User's `roles`.
fn role_values(attrs: &Map<String, Value>) -> impl Iterator<Item = &str> {
    crate::dialect::get_ignore_case(attrs, "roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| match entry {
            Value::Object(o) => crate::dialect::get_ignore_case(o, "value").and_then(Value::as_str),
            Value::String(s) => Some(s.as_str()),
            _ => None,
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn listing_filters_and_pages() {
        let c = catalog();
        let query = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            ListQuery::from_params(&params).unwrap()
        };
        let (total, page) = c.list(&query(&[("filter", "type eq \"site\"")]));
        assert_eq!((total, page.len()), (2, 2));
        let (total, page) = c.list(&query(&[("filter", "value eq \"Organization-Admin\"")]));
        assert_eq!(
            (total, page[0].id.as_str()),
            (1, "default:organization-admin")
        );
        let (total, page) = c.list(&query(&[("startIndex", "2"), ("count", "1")]));
        assert_eq!((total, page[0].id.as_str()), (3, "auditor"));
        let (_, page) = c.list(&query(&[("filter", "displayName co \"template\"")]));
        assert_eq!(page.len(), 1);
    }
}
