//! Discovery documents (RFC 7644 §4, RFC 7643 §5–§7): what the bridge supports, told truthfully.

use crate::config::ServerConfig;
use scim::catalog::CatalogType;
use scim::entitlements::ENTITLEMENT_TYPE;
use scim::query::{MAX_RESULTS, list_response};
use scim::roles::ROLE_TYPE;
use scim::schema::SchemaDef;
use scim::{Registry, ResourceKind};
use serde_json::{Value, json};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// RFC 7643 §5. Every flag matches what the endpoints do: PATCH, Bulk (with its limits),
/// filters (capped at `MAX_RESULTS` a page), sorting and ETags are supported; password changes
/// are not (the bridge stores no passwords). Paging (RFC 9865 §4): by index and by cursor, index
/// when a request names neither (RFC 9865 §2.4), `MAX_RESULTS` a page by default and at most.
pub fn service_provider_config(config: &ServerConfig, base_url: &str) -> Value {
    let mut document = json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": config.bulk_max_operations,
            "maxPayloadSize": config.bulk_max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": MAX_RESULTS,
            "maxPageSize": MAX_RESULTS,
            "cursorTimeout": crate::cursor::CURSOR_TIMEOUT_SECS,
        },
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bridge token made with `scim-bridge token create`, an access token from the bridge's /oauth/token (client credentials), or a JWT from the configured issuer, sent as Authorization: Bearer",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    });
    // draft-ietf-scim-roles-entitlements: a provider serving /Roles or /Entitlements says so
    // here. A user may hold several of each; `primary` and `type` on them mean nothing to the
    // bridge.
    let (roles, entitlements) = (config.roles.is_enabled(), config.entitlements.is_enabled());
    if (roles || entitlements)
        && let Some(object) = document.as_object_mut()
    {
        let block = |supported: bool, multiple: &str| {
            if supported {
                json!({
                    "supported": true,
                    multiple: true,
                    "primarySupported": false,
                    "typeSupported": false,
                })
            } else {
                json!({"supported": false})
            }
        };
        object.insert(
            "RolesAndEntitlements".into(),
            json!({
                "roles": block(roles, "multipleRolesSupported"),
                "entitlements": block(entitlements, "multipleEntitlementsSupported"),
            }),
        );
    }
    document
}

/// The ResourceType kinds the bridge serves.
pub const KINDS: [ResourceKind; 4] = ResourceKind::ALL;

/// RFC 7643 §6.
pub fn resource_type(kind: ResourceKind, registry: &Registry, base_url: &str) -> Value {
    let description = registry
        .schema(kind.core_schema())
        .map_or(kind.name(), |s| s.description.as_str());
    let extensions: Vec<Value> = kind
        .extensions()
        .iter()
        .map(|urn| json!({"schema": urn, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": kind.endpoint(),
        "description": description,
        "schema": kind.core_schema(),
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base_url}/ResourceTypes/{}", kind.name()),
        },
    })
}

/// `/ResourceTypes` as a ListResponse; `Role` and `Entitlement` only while offered
/// (`[roles.grantable]`, `[entitlements.grantable]`).
pub fn resource_types(registry: &Registry, base_url: &str, config: &ServerConfig) -> Value {
    let mut items: Vec<Value> = KINDS
        .iter()
        .map(|k| resource_type(*k, registry, base_url))
        .collect();
    items.extend(
        catalog_types(config)
            .into_iter()
            .map(|t| t.resource_type(base_url)),
    );
    list_response(items.len(), 1, items)
}

/// The catalog resource types the configuration offers: `Role`, `Entitlement`.
pub fn catalog_types(config: &ServerConfig) -> Vec<&'static CatalogType> {
    let mut types = Vec::new();
    if config.roles.is_enabled() {
        types.push(&ROLE_TYPE);
    }
    if config.entitlements.is_enabled() {
        types.push(&ENTITLEMENT_TYPE);
    }
    types
}

/// A ResourceType by id (`User`, `Group`; case-insensitive).
pub fn find_resource_type(id: &str) -> Option<ResourceKind> {
    KINDS
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(id))
}

/// RFC 7643 §7: a schema document as written in `schemas/`, with its `meta.location` made
/// absolute for this deployment.
pub fn schema(def: &SchemaDef, base_url: &str) -> Value {
    let mut document = def.document.clone();
    if let Some(object) = document.as_object_mut() {
        object.insert(
            "meta".into(),
            json!({"resourceType": "Schema", "location": format!("{base_url}/Schemas/{}", def.id)}),
        );
    }
    document
}

/// `/Schemas` as a ListResponse.
pub fn schemas(registry: &Registry, base_url: &str) -> Value {
    let items: Vec<Value> = registry
        .schemas()
        .iter()
        .map(|s| schema(s, base_url))
        .collect();
    list_response(items.len(), 1, items)
}
