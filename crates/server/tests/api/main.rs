//! The SCIM API suite: the real actix server on 127.0.0.1:0 over SQLite (always) and
//! PostgreSQL (whenever reachable), driven over HTTP with reqwest. One test binary.

// A test binary: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod logs;
mod support;

mod agents;
mod auth;
mod bad_input;
mod bulk;
mod catalogs;
mod credentials;
mod cursor;
mod discovery;
mod entra_validation;
mod fixtures;
mod groups;
mod limits;
mod oauth;
mod operations;
mod search;
mod security;
mod users;

use serde_json::{Value, json};

/// A User body as Okta sends it on assignment.
pub fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "active": true,
    })
}

/// A PatchOp body.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

/// A filter in a query string.
pub fn filter_param(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

/// `field` of each item of the JSON array `items`, as strings.
pub fn field_of_each<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[field].as_str().expect("a string"))
        .collect()
}
