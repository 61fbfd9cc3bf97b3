//! Any bytes as a PatchOp body: parsing and applying it to a sample User and Group never panics,
//! and whatever succeeds keeps the invariants the store relies on: the readOnly `id` is unchanged,
//! no password is stored, each multi-valued attribute has at most one `primary`, and `schemas`
//! leads the resource.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scim::patch::{self, PatchOptions, PatchRequest};
use scim::{Registry, ResourceKind};
use serde_json::{Map, Value, json};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

static USER: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    object(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Bjensen",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara", "formatted": "Ms. Barbara J Jensen III"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "roles": [{"value": "reader", "primary": "True"}],
        "custom": {"kept": [1, 2]},
        EXT: {"employeeNumber": "701984", "manager": {"value": "26118915", "displayName": "John Smith"}},
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"}
    }))
});

static GROUP: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    object(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"}
        ],
        "meta": {"resourceType": "Group"}
    }))
});

fn check(kind: ResourceKind, resource: &Map<String, Value>, request: &PatchRequest) {
    let registry = Registry::standard();
    for opts in [PatchOptions::default(), PatchOptions::strict()] {
        let Ok(next) = patch::apply(kind, resource, request, registry, &opts) else { continue };
        assert_eq!(next.get("id"), resource.get("id"), "readOnly id changed");
        assert_eq!(next.keys().next().map(String::as_str), Some("schemas"), "schemas not first");
        assert!(!next.contains_key("password"), "password stored");
        for value in next.values() {
            if let Value::Array(items) = value {
                let primaries = items.iter().filter(|i| i.get("primary") == Some(&Value::Bool(true))).count();
                assert!(primaries <= 1, "two primary values: {value}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(request) = patch::parse_request(&body) else { return };
    let mut user_request = request.clone();
    if user_request.take_password().is_ok() {
        check(ResourceKind::User, &USER, &user_request);
    }
    check(ResourceKind::User, &USER, &request);
    check(ResourceKind::Group, &GROUP, &request);
    let _ = patch::plan_group_patch(&request);
});
