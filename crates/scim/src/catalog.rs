//! What an IdP may grant on a User, as read-only resource types served from the configuration
//! rather than the store: the roles at `/Roles` and the entitlements at `/Entitlements` (Okta's
//! guide "Build a SCIM 2.0 server with entitlements"; draft-ietf-scim-roles-entitlements).
//!
//! One [`Catalog`] serves both: the check every User write passes (a value not offered is 400
//! `invalidValue` naming it), which offers a stored User holds, and the listing with filter,
//! `sortBy`/`sortOrder`, index paging and `attributes`/`excludedAttributes` as on `/Users`.
//!
//! Decisions:
//! - A User names an offer by its `id` in `roles[].value` or `entitlements[].value` (Okta assigns
//!   by the resource's `id`), ignoring case; `type`, `display` and `primary` are the client's.
//! - A catalog is enabled by its configuration table. Without it nothing is offered and the
//!   User attribute stays plain data, never checked (Entra maps its own app roles to `roles`).

use crate::error::{ScimError, ScimResult};
use crate::filter;
use crate::query::{ListQuery, SortKey, compare_keys};
use crate::schema::Registry;
use serde_json::{Map, Value, json};

/// A resource type whose resources are offers of a [`Catalog`].
#[derive(Debug)]
pub struct CatalogType {
    /// The resource type name (`/ResourceTypes/{name}`, `meta.resourceType`).
    pub name: &'static str,
    /// The endpoint below the base URL.
    pub endpoint: &'static str,
    /// The schema URN Okta Identity Governance recognises the resource type by.
    pub schema: &'static str,
    /// The ResourceType's description.
    pub description: &'static str,
    /// The multi-valued User attribute that grants an offer (`roles`, `entitlements`).
    pub user_attribute: &'static str,
    /// What one offer is called in error details (`role`, `entitlement`).
    pub noun: &'static str,
}

impl CatalogType {
    /// The ResourceType document (RFC 7643 §6) as Okta reads it: `schema` must be Okta's URN
    /// for the offers to appear on the app's Governance tab.
    pub fn resource_type(&self, base_url: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "schemaExtensions": [],
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            },
        })
    }

    /// `meta` of the offer `id`.
    pub fn meta(&self, base_url: &str, id: &str) -> Value {
        json!({
            "resourceType": self.name,
            "location": format!("{}{}/{id}", base_url.trim_end_matches('/'), self.endpoint),
        })
    }
}

/// One thing a catalog offers.
pub trait Offer {
    /// The resource type the offers are resources of.
    const TYPE: &'static CatalogType;
    /// Stable: what a client sends back as the User attribute's `value`.
    fn id(&self) -> &str;
    /// The resource as served.
    fn to_scim(&self, base_url: &str) -> Value;
}

/// The offers of one resource type, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog<T> {
    offers: Vec<T>,
    enabled: bool,
}

impl<T> Default for Catalog<T> {
    /// Not configured: nothing offered, nothing checked.
    fn default() -> Self {
        Catalog {
            offers: Vec::new(),
            enabled: false,
        }
    }
}

impl<T: Offer> Catalog<T> {
    /// A configured catalog (possibly empty: then every value the User attribute carries is
    /// refused).
    pub fn new(offers: Vec<T>) -> Self {
        Catalog {
            offers,
            enabled: true,
        }
    }

    /// Whether the catalog is configured (its resource type is served and advertised).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Every offer.
    pub fn offers(&self) -> &[T] {
        &self.offers
    }

    /// The offer a client names, by id, ignoring case (Coder's names are lower case).
    pub fn find(&self, id: &str) -> Option<&T> {
        let id = id.trim();
        self.offers.iter().find(|o| o.id().eq_ignore_ascii_case(id))
    }

    /// The offers a User's attributes hold, each once. Values that name no offer are skipped (a
    /// write never stores one while the catalog is enabled; see [`Catalog::check_user`]).
    pub fn held(&self, attrs: &Map<String, Value>) -> Vec<&T> {
        if !self.enabled {
            return Vec::new();
        }
        let mut held: Vec<&T> = Vec::new();
        for value in granted_values(attrs, T::TYPE.user_attribute) {
            if let Some(offer) = self.find(value)
                && !held.iter().any(|h| h.id() == offer.id())
            {
                held.push(offer);
            }
        }
        held
    }

    /// A User write may only carry offered values: otherwise 400 `invalidValue` naming the
    /// first other one.
    pub fn check_user(&self, attrs: &Map<String, Value>) -> ScimResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let ty = T::TYPE;
        match granted_values(attrs, ty.user_attribute).find(|v| self.find(v).is_none()) {
            None => Ok(()),
            Some(value) => Err(ScimError::invalid_value(format!(
                "{} \"{value}\" is not offered: GET {} lists the {}s this bridge may grant in Coder",
                ty.noun, ty.endpoint, ty.noun
            ))),
        }
    }

    /// One page of the listing (RFC 7644 §3.4.2): the offers matching the filter (any attribute,
    /// strings ignoring case), in catalog order or `sortBy` order (stable), paged by `startIndex`
    /// and `count`, each projected by `attributes`/`excludedAttributes`. Returns
    /// `(totalResults, page)`.
    pub fn list(
        &self,
        query: &ListQuery,
        base_url: &str,
        registry: &Registry,
    ) -> (usize, Vec<Value>) {
        let urn = T::TYPE.schema;
        let mut matching: Vec<Map<String, Value>> =
            self.offers
                .iter()
                .filter_map(|o| match o.to_scim(base_url) {
                    Value::Object(resource) => Some(resource),
                    _ => None,
                })
                .filter(|r| {
                    query.filter.as_ref().is_none_or(|f| {
                        filter::eval::matches_schemaless(f, &Value::Object(r.clone()))
                    })
                })
                .collect();
        if let Some(sort_by) = &query.sort_by {
            let sort_by = registry.resolve_in_schema(urn, sort_by);
            let mut keyed: Vec<(SortKey, Map<String, Value>)> = matching
                .into_iter()
                .map(|r| (SortKey::of_attribute(&r, sort_by.as_ref()), r))
                .collect();
            // `sort_by` is stable: equal keys keep catalog order, so pages neither overlap nor skip.
            keyed.sort_by(|a, b| compare_keys(&a.0, &b.0, query.sort_order));
            matching = keyed.into_iter().map(|(_, r)| r).collect();
        }
        let total = matching.len();
        let page = matching[query.window(total)]
            .iter()
            .map(|r| Value::Object(query.projection.apply_in_schema(urn, r, registry)))
            .collect();
        (total, page)
    }

    /// One offer by its exact id, projected by `attributes`/`excludedAttributes`; `None` for
    /// an id not offered.
    pub fn get(
        &self,
        id: &str,
        query: &ListQuery,
        base_url: &str,
        registry: &Registry,
    ) -> Option<Value> {
        let offer = self.offers.iter().find(|o| o.id() == id)?;
        let resource = match offer.to_scim(base_url) {
            Value::Object(resource) => resource,
            _ => return None,
        };
        Some(Value::Object(query.projection.apply_in_schema(
            T::TYPE.schema,
            &resource,
            registry,
        )))
    }
}

/// The non-empty `value`s of a User's multi-valued attribute `name` (`roles`, `entitlements`).
fn granted_values<'a>(
    attrs: &'a Map<String, Value>,
    name: &str,
) -> impl Iterator<Item = &'a str> + use<'a> {
    crate::dialect::get_ignore_case(attrs, name)
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
