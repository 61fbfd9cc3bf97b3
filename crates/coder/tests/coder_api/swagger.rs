//! The client's and the fake's route tables against Coder's swagger.json: no invented route,
//! method, path parameter, body definition or body field, so the two cannot drift together.

use clock::IdSource as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use coder::types::*;
use coder::{Method, ROUTES};
use serde_json::Value;
use uuid::Uuid;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn swagger() -> Value {
    let text = std::fs::read_to_string(crate_dir().join("api/swagger.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn vendored_swagger_is_byte_identical_to_the_shared_copy() {
    // ../shared/coder-api/swagger.json relative to the workspace root (crates/coder/../..).
    let shared = crate_dir().join("../../../shared/coder-api/swagger.json");
    let Ok(shared) = std::fs::read(&shared) else {
        eprintln!("no shared copy at {}; nothing to compare", shared.display());
        return;
    };
    let vendored = std::fs::read(crate_dir().join("api/swagger.json")).unwrap();
    assert!(
        vendored == shared,
        "crates/coder/api/swagger.json differs from shared/coder-api/swagger.json"
    );
}

/// The swagger operation for `method path`, or a failure naming it.
fn operation<'s>(swagger: &'s Value, method: &str, path: &str) -> &'s Value {
    let op = &swagger["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in swagger.json");
    op
}

fn path_parameters(op: &Value) -> BTreeSet<String> {
    parameters(op, "path")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn parameters<'o>(op: &'o Value, location: &'o str) -> impl Iterator<Item = &'o Value> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |p| p["in"] == location)
}

/// The definition name of the operation's JSON body, if it has one.
fn body_definition(op: &Value) -> Option<String> {
    let body = parameters(op, "body").next()?;
    let reference = body["schema"]["$ref"].as_str().unwrap();
    Some(reference.trim_start_matches("#/definitions/").to_owned())
}

fn template_parameters(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Checks route, method, path parameters and body definition of one table entry.
fn check_route(swagger: &Value, method: &str, path: &str, body: Option<&str>) {
    let op = operation(swagger, method, path);
    assert_eq!(
        path_parameters(op),
        template_parameters(path),
        "path parameters of {method} {path}"
    );
    assert_eq!(
        body_definition(op).as_deref(),
        body,
        "body definition of {method} {path}"
    );
}

#[test]
fn every_client_route_exists_in_swagger() {
    let swagger = swagger();
    for route in ROUTES {
        check_route(
            &swagger,
            route.method.as_str(),
            route.path,
            route.request_body,
        );
        for parameter in route.parameters() {
            assert!(template_parameters(route.path).contains(parameter));
        }
    }
}

#[test]
fn every_fake_route_exists_in_swagger_with_the_fields_it_reads() {
    let swagger = swagger();
    for route in coder_fake::ROUTES {
        check_route(&swagger, route.method, route.path, route.request_body);
        if let Some(definition) = route.request_body {
            let properties = properties(&swagger, definition);
            assert!(
                !route.body_fields().is_empty(),
                "{route:?} reads no body field"
            );
            for field in route.body_fields() {
                assert!(
                    properties.contains_key(*field),
                    "{route:?} reads {field}, not in {definition}"
                );
            }
        }
    }
}

#[test]
fn the_fake_serves_every_client_route() {
    for route in ROUTES {
        let served = coder_fake::ROUTES
            .iter()
            .any(|f| f.method == route.method.as_str() && f.path == route.path);
        assert!(served, "the fake does not serve {route}");
    }
    assert_eq!(Method::parse("delete"), Some(Method::Delete));
}

fn properties<'s>(swagger: &'s Value, definition: &str) -> &'s serde_json::Map<String, Value> {
    swagger["definitions"][definition]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("definition {definition} has no properties"))
}

/// The definition a property refers to (`$ref` or `allOf: [{$ref}]`).
fn referenced<'s>(swagger: &'s Value, property: &'s Value) -> Option<&'s Value> {
    let reference = property["$ref"]
        .as_str()
        .or_else(|| property["allOf"][0]["$ref"].as_str())?;
    Some(&swagger["definitions"][reference.trim_start_matches("#/definitions/")])
}

/// A request body with every optional field set, as the client serialises it.
fn client_samples() -> BTreeMap<&'static str, Value> {
    let org = clock::SystemIds.uuid_v4();
    let json = |v: Result<Value, serde_json::Error>| v.unwrap();
    BTreeMap::from([
        (
            "codersdk.CreateUserRequestWithOrgs",
            json(serde_json::to_value(CreateUserRequest {
                email: "alice@example.com".into(),
                username: "alice".into(),
                name: "Alice".into(),
                login_type: LoginType::Oidc,
                organization_ids: vec![org],
                user_status: Some(UserStatus::Active),
                service_account: true,
            })),
        ),
        (
            "codersdk.UpdateUserProfileRequest",
            json(serde_json::to_value(UpdateUserProfileRequest {
                username: "alice".into(),
                name: "A".into(),
            })),
        ),
        (
            "codersdk.UpdateRoles",
            json(serde_json::to_value(UpdateRoles {
                roles: vec!["auditor".into()],
            })),
        ),
        (
            "codersdk.CreateGroupRequest",
            json(serde_json::to_value(CreateGroupRequest {
                name: "devs".into(),
                display_name: "Devs".into(),
            })),
        ),
        (
            "codersdk.PatchGroupRequest",
            json(serde_json::to_value(PatchGroupRequest {
                add_users: vec![clock::SystemIds.uuid_v4()],
                remove_users: vec![clock::SystemIds.uuid_v4()],
                name: Some("devs".into()),
                display_name: Some("Devs".into()),
            })),
        ),
        (
            "codersdk.CreateTokenRequest",
            json(serde_json::to_value(CreateTokenRequest {
                allow_list: vec![AllowListTarget {
                    kind: "workspace".into(),
                    id: "*".into(),
                }],
                ..CreateTokenRequest::new(
                    "ci",
                    std::time::Duration::from_secs(3600),
                    vec!["workspace:read".into()],
                )
            })),
        ),
        (
            "codersdk.CreateWorkspaceBuildRequest",
            json(serde_json::to_value(CreateWorkspaceBuildRequest {
                transition: WorkspaceTransition::Stop,
            })),
        ),
    ])
}

#[test]
fn every_field_the_client_sends_exists_in_swagger_with_a_valid_value() {
    let swagger = swagger();
    let samples = client_samples();
    for route in ROUTES {
        let Some(definition) = route.request_body else {
            continue;
        };
        let sample = samples
            .get(definition)
            .unwrap_or_else(|| panic!("no sample body for {definition}"));
        let properties = properties(&swagger, definition);
        let sent = sample.as_object().unwrap();
        for (field, value) in sent {
            let property = properties
                .get(field)
                .unwrap_or_else(|| panic!("{definition} has no field {field}"));
            check_value(&swagger, definition, field, property, value);
        }
        for required in swagger["definitions"][definition]["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                sent.contains_key(required.as_str().unwrap()),
                "{definition} needs {required}"
            );
        }
    }
}

fn check_value(swagger: &Value, definition: &str, field: &str, property: &Value, value: &Value) {
    let expected = property["type"]
        .as_str()
        .or_else(|| referenced(swagger, property).and_then(|d| d["type"].as_str()));
    let actual = match value {
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "integer",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    if let Some(expected) = expected {
        assert_eq!(actual, expected, "{definition}.{field}");
    }
    let allowed = property["enum"]
        .as_array()
        .or_else(|| referenced(swagger, property).and_then(|d| d["enum"].as_array()));
    if let Some(allowed) = allowed {
        assert!(
            allowed.contains(value),
            "{definition}.{field} = {value} is not one of {allowed:?}"
        );
    }
    if let (Value::Array(items), Some(format)) = (value, property["items"]["format"].as_str()) {
        assert_eq!(format, "uuid", "{definition}.{field} items");
        assert!(
            items
                .iter()
                .all(|i| Uuid::parse_str(i.as_str().unwrap()).is_ok())
        );
    }
}

#[test]
fn swagger_checks_catch_an_invented_field() {
    // The checker itself must be able to fail.
    let swagger = swagger();
    let properties = properties(&swagger, "codersdk.UpdateRoles");
    assert!(!properties.contains_key("site_roles"));
    let result = std::panic::catch_unwind(|| {
        check_route(&swagger, "PUT", "/api/v2/users/{user}/roles", None)
    });
    assert!(
        result.is_err(),
        "a wrong body definition must fail the check"
    );
    let result = std::panic::catch_unwind(|| {
        check_route(
            &swagger,
            "POST",
            "/api/v2/users/{user}/status/suspend",
            None,
        )
    });
    assert!(result.is_err(), "a wrong method must fail the check");
}
