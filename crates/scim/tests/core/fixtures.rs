//! Every file in `fixtures/okta/`, `fixtures/entra/` and `fixtures/agents/` (the agent drafts'
//! request shapes) is a real-shaped IdP request with the outcome the bridge must produce; this
//! runs them all.
//!
//! A fixture holds `kind` (`User`, `Group`, `Agent`, `AgenticApplication`), `action` (`create` = POST normalisation, `replace` =
//! PUT, `patch`; `list`, a GET of `/Roles` or `/Entitlements`, is the API suite's), the `request`, for `replace`/`patch` the `current` resource, and either
//! `expected` (the resulting resource), optionally `expected_password`, or `expected_error`
//! (`status`, `scimType`). Group PATCH fixtures may carry `expected_plan`: the member-row plan
//! the store follows, which is also checked to produce the same membership as `apply`.

use std::path::{Path, PathBuf};

use scim::entitlements::{EntitlementCatalog, GrantableEntitlement};
use scim::patch::{self, GroupPatchStep, MemberChange, PatchOptions};
use scim::resource;
use scim::roles::{GrantableRole, RoleCatalog};
use scim::{Registry, ResourceKind, ScimResult};
use serde_json::{Map, Value, json};

fn fixtures_dir(idp: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(idp)
}

fn load(idp: &str) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures_dir(idp))
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read fixture");
            let name = format!("{idp}/{}", p.file_name().unwrap().to_string_lossy());
            (
                name,
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
        })
        .collect()
}

fn kind_of(fixture: &Value) -> ResourceKind {
    let name = fixture["kind"].as_str();
    name.and_then(ResourceKind::from_name)
        .unwrap_or_else(|| panic!("unknown kind {name:?}"))
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a JSON object")
}

/// The roles and entitlements the bridge offers while the fixture runs
/// (`options.grantable_roles`: site role names and `<organization>:<name>`;
/// `options.grantable_entitlements`: organizations); none configured without them.
fn grants(fixture: &Value) -> PatchOptions {
    let roles = fixture["options"]["grantable_roles"].as_array().map(|ids| {
        RoleCatalog::new(
            ids.iter()
                .map(|id| {
                    let id = id.as_str().expect("a role id");
                    match id.split_once(':') {
                        Some((org, name)) => GrantableRole::in_organization(org, name),
                        None => GrantableRole::site(id),
                    }
                })
                .collect(),
        )
    });
    let entitlements = fixture["options"]["grantable_entitlements"]
        .as_array()
        .map(|orgs| {
            EntitlementCatalog::new(
                orgs.iter()
                    .map(|o| {
                        GrantableEntitlement::organization(o.as_str().expect("an organization"))
                    })
                    .collect(),
            )
        });
    PatchOptions {
        roles: roles.unwrap_or_default().into(),
        entitlements: entitlements.unwrap_or_default().into(),
        ..PatchOptions::default()
    }
}

/// What running a fixture produced: the resource and the password taken out of the request.
fn run(fixture: &Value) -> ScimResult<(Map<String, Value>, Option<String>)> {
    let registry = Registry::standard();
    let kind = kind_of(fixture);
    let request = fixture["request"].clone();
    match fixture["action"].as_str() {
        Some("create") => {
            let body = resource::normalize(kind, request, registry)?;
            grants(fixture).check_grants(kind, &body.attrs)?;
            Ok((body.attrs, body.password))
        }
        Some("replace") => {
            let body = resource::normalize(kind, request, registry)?;
            let password = body.password.clone();
            let next = resource::replace(kind, &object(&fixture["current"]), body, registry)?;
            grants(fixture).check_grants(kind, &next)?;
            Ok((next, password))
        }
        Some("patch") => {
            let mut request = patch::parse_request(&request)?;
            let password = if kind == ResourceKind::User {
                request.take_password()?
            } else {
                None
            };
            let mut options = grants(fixture);
            if let Some(adds) = fixture["options"]["replace_missing_filter_adds"].as_bool() {
                options.replace_missing_filter_adds = adds;
            }
            let current = object(&fixture["current"]);
            let next = patch::apply(kind, &current, &request, registry, &options)?;
            Ok((next, password))
        }
        other => panic!("unknown action {other:?}"),
    }
}

fn check(name: &str, fixture: &Value) {
    let outcome = run(fixture);
    if let Some(expected) = fixture.get("expected_error") {
        let error = outcome
            .err()
            .unwrap_or_else(|| panic!("{name}: expected an error"));
        assert_eq!(
            u64::from(error.status),
            expected["status"].as_u64().unwrap(),
            "{name}: {error}"
        );
        assert_eq!(
            error.scim_type.map(|t| t.as_str()),
            expected["scimType"].as_str(),
            "{name}: {error}"
        );
        return;
    }
    let (resource, password) = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        Value::Object(resource.clone()),
        fixture["expected"],
        "{name}"
    );
    assert!(
        !resource.keys().any(|k| k.eq_ignore_ascii_case("password")),
        "{name}: password stored"
    );
    assert_eq!(
        password.as_deref(),
        fixture.get("expected_password").and_then(Value::as_str),
        "{name}: password"
    );
    if let Some(plan) = fixture.get("expected_plan") {
        check_plan(name, fixture, plan, &resource);
    }
}

/// The plan in the fixtures' compact form.
fn describe(step: &GroupPatchStep) -> Value {
    let ids = |refs: &[patch::MemberRef]| refs.iter().map(|m| m.value.clone()).collect::<Vec<_>>();
    match step {
        GroupPatchStep::Attributes(request) => json!({"attributes": request.operations.len()}),
        GroupPatchStep::Members(MemberChange::Add(refs)) => json!({"add": ids(refs)}),
        GroupPatchStep::Members(MemberChange::Replace(refs)) => json!({"replace": ids(refs)}),
        GroupPatchStep::Members(MemberChange::Remove(ids)) => json!({"remove": ids}),
        GroupPatchStep::Members(MemberChange::Clear) => json!({"clear": true}),
    }
}

/// Follow the plan as the store does (member rows apart, `apply` on the rest without members)
/// and compare with what `apply` on the whole group gave.
fn check_plan(name: &str, fixture: &Value, expected: &Value, applied: &Map<String, Value>) {
    let request = patch::parse_request(&fixture["request"]).unwrap();
    let plan = patch::plan_group_patch(&request).unwrap_or_else(|| panic!("{name}: no plan"));
    let described: Vec<Value> = plan.steps.iter().map(describe).collect();
    assert_eq!(Value::Array(described), *expected, "{name}: plan");

    let mut group = object(&fixture["current"]);
    let mut members: Vec<Value> = group
        .remove("members")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let row = |m: &patch::MemberRef| {
        let mut row = Map::new();
        row.insert("value".into(), m.value.clone().into());
        if let Some(d) = &m.display {
            row.insert("display".into(), d.clone().into());
        }
        Value::Object(row)
    };
    for step in &plan.steps {
        match step {
            GroupPatchStep::Attributes(request) => {
                group = patch::apply(
                    ResourceKind::Group,
                    &group,
                    request,
                    Registry::standard(),
                    &PatchOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            GroupPatchStep::Members(MemberChange::Add(refs)) => {
                for m in refs {
                    if !members.iter().any(|x| x["value"] == m.value.as_str()) {
                        members.push(row(m));
                    }
                }
            }
            GroupPatchStep::Members(MemberChange::Remove(ids)) => {
                members.retain(|x| !ids.iter().any(|id| x["value"] == id.as_str()));
            }
            GroupPatchStep::Members(MemberChange::Clear) => members.clear(),
            GroupPatchStep::Members(MemberChange::Replace(refs)) => {
                members = refs.iter().map(row).collect()
            }
        }
    }
    let ids = |m: &[Value]| {
        m.iter()
            .map(|x| x["value"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let applied_members = applied
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ids(&members),
        ids(&applied_members),
        "{name}: plan and apply disagree on members"
    );
    let mut applied_rest = applied.clone();
    applied_rest.remove("members");
    assert_eq!(
        group, applied_rest,
        "{name}: plan and apply disagree on attributes"
    );
}

fn run_all(idp: &str, minimum: usize) {
    let fixtures = load(idp);
    assert!(
        fixtures.len() >= minimum,
        "expected at least {minimum} {idp} fixtures"
    );
    for (name, fixture) in &fixtures {
        // A GET of a catalog (`/Roles`, `/Entitlements`): replayed over HTTP by the API suite.
        if fixture["action"] == "list" {
            continue;
        }
        check(name, fixture);
    }
}

#[test]
fn okta_fixtures() {
    run_all("okta", 12);
}

#[test]
fn entra_fixtures() {
    run_all("entra", 20);
}

#[test]
fn agent_draft_fixtures() {
    run_all("agents", 10);
}

/// The runner itself must be able to fail: a fixture whose expectation is wrong is caught.
#[test]
fn a_wrong_expectation_is_caught() {
    let (name, mut fixture) = load("okta")
        .into_iter()
        .find(|(n, _)| n.ends_with("deactivate-user.json"))
        .unwrap();
    fixture["expected"]["active"] = json!(true);
    let caught = std::panic::catch_unwind(|| check(&name, &fixture));
    assert!(caught.is_err());
}
