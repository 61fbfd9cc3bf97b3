//! The IdP fixtures (`fixtures/okta/*.json`, `fixtures/entra/*.json`) replayed over HTTP: the
//! `current` resource is created, the `request` is sent as the IdP sends it, and the resource
//! read back must be the `expected` one (or the answer the `expected_error`).
//!
//! Fixture ids are the IdP's; the store makes its own. So every member id the fixture names
//! becomes a real User first, and ids are rewritten in both directions.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use scim::entitlements::{EntitlementCatalog, GrantableEntitlement};
use scim::roles::{GrantableRole, RoleCatalog};
use serde_json::{Map, Value};
use server::ServerConfig;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

on_both_backends!(okta_fixtures, entra_fixtures);

async fn okta_fixtures(backend: Backend) {
    replay_all(backend, "okta").await;
}

async fn entra_fixtures(backend: Backend) {
    replay_all(backend, "entra").await;
}

async fn replay_all(backend: Backend, idp: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(idp);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut replayed = 0;
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        // Fixtures of the strict RFC PATCH mode: the service runs the IdP-compatible mode.
        if fixture["options"]
            .get("replace_missing_filter_adds")
            .is_some()
        {
            continue;
        }
        // A fresh server per fixture, so names and ids never collide between fixtures; with the
        // roles and entitlements the fixture offers.
        let Some(srv) = TestServer::start_with(backend, |c| offer(c, &fixture)).await else {
            return;
        };
        replay(&srv, file.file_name().unwrap().to_str().unwrap(), &fixture).await;
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} {idp} fixtures replayed");
}

/// `options.grantable_roles` (site role names and `<organization>:<name>`) and
/// `options.grantable_entitlements` (organizations), as `[roles.grantable]` and
/// `[entitlements.grantable]` would configure them.
fn offer(config: &mut ServerConfig, fixture: &Value) {
    let strings = |key: &str| -> Option<Vec<String>> {
        fixture["options"][key].as_array().map(|items| {
            items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect()
        })
    };
    if let Some(ids) = strings("grantable_roles") {
        let roles = ids.iter().map(|id| match id.split_once(':') {
            Some((org, name)) => GrantableRole::in_organization(org, name),
            None => GrantableRole::site(id),
        });
        config.roles = Arc::new(RoleCatalog::new(roles.collect()));
    }
    if let Some(orgs) = strings("grantable_entitlements") {
        let offered = orgs.iter().map(|o| GrantableEntitlement::organization(o));
        config.entitlements = Arc::new(EntitlementCatalog::new(offered.collect()));
    }
}

fn members(resource: &Value) -> Vec<String> {
    resource["members"].as_array().map_or_else(Vec::new, |m| {
        m.iter()
            .filter_map(|m| m["value"].as_str().or(m.as_str()).map(str::to_string))
            .collect()
    })
}

/// Replace every occurrence of the `from` ids by the `to` ids inside every string of `value`.
fn rewrite(value: &Value, ids: &[(String, String)]) -> Value {
    match value {
        Value::String(s) => Value::String(
            ids.iter()
                .fold(s.clone(), |s, (from, to)| s.replace(from.as_str(), to)),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| rewrite(v, ids)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), rewrite(v, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn replay(srv: &TestServer, name: &str, fixture: &Value) {
    if fixture["action"] == "list" {
        return replay_list(srv, name, fixture).await;
    }
    let kind = fixture["kind"].as_str().unwrap();
    let endpoint = if kind == "User" { "/Users" } else { "/Groups" };
    let action = fixture["action"].as_str().unwrap();
    let current = &fixture["current"];
    let expected = &fixture["expected"];

    // Members named anywhere must exist as Users.
    let mut ids: Vec<(String, String)> = Vec::new();
    let named: BTreeSet<String> = members(current)
        .into_iter()
        .chain(members(expected))
        .collect();
    for (i, member) in named.iter().enumerate() {
        let id = srv.create_user(&format!("member{i}@fixture.example")).await;
        ids.push((member.clone(), id));
    }

    let target = if action == "create" {
        None
    } else {
        let mut body = rewrite(current, &ids);
        let object = body.as_object_mut().unwrap();
        object.remove("id");
        object.remove("meta");
        let created = srv.post(endpoint, &body).await;
        assert_eq!(
            created.status, 201,
            "{name}: creating the current resource: {}",
            created.text
        );
        let id = created.body["id"].as_str().unwrap().to_string();
        if let Some(fixture_id) = current["id"].as_str() {
            ids.push((fixture_id.to_string(), id.clone()));
        }
        Some(id)
    };

    let request = rewrite(&fixture["request"], &ids);
    let reply = match (action, &target) {
        ("create", _) => srv.post(endpoint, &request).await,
        ("replace", Some(id)) => srv.put(&format!("{endpoint}/{id}"), &request).await,
        ("patch", Some(id)) => srv.patch(&format!("{endpoint}/{id}"), &request).await,
        other => panic!("{name}: unknown action {other:?}"),
    };

    if let Some(error) = fixture.get("expected_error") {
        let scim_type = error["scimType"].as_str();
        reply.assert_error(
            u16::try_from(error["status"].as_u64().unwrap()).unwrap(),
            scim_type,
        );
        return;
    }
    assert!(reply.status < 300, "{name}: {}", reply.text);
    let id = target.unwrap_or_else(|| reply.body["id"].as_str().unwrap().to_string());
    let actual = srv.get(&format!("{endpoint}/{id}")).await.body;
    let expected = rewrite(expected, &ids);
    compare(name, &expected, &actual);
}

/// A GET of a catalog (`/Roles`, `/Entitlements`) answers the expected ListResponse; each
/// resource as [`compare`] reads it (`meta` carries this server's address).
async fn replay_list(srv: &TestServer, name: &str, fixture: &Value) {
    let reply = srv.get(fixture["request"]["path"].as_str().unwrap()).await;
    assert_eq!(reply.status, 200, "{name}: {}", reply.text);
    let expected = &fixture["expected"];
    for key in ["schemas", "totalResults", "startIndex", "itemsPerPage"] {
        assert_eq!(reply.body[key], expected[key], "{name}: {key}");
    }
    let got = reply.body["Resources"].as_array().unwrap();
    let want = expected["Resources"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: {}", reply.text);
    for (got, want) in got.iter().zip(want) {
        compare(name, want, got);
    }
}

/// The resource read back holds exactly the expected attributes (members as a set of ids;
/// `display` may be filled in by the store).
fn compare(name: &str, expected: &Value, actual: &Value) {
    let expected = expected.as_object().unwrap();
    let actual = actual.as_object().unwrap();
    let computed = ["id", "meta", "groups", "members"];
    for (key, want) in expected
        .iter()
        .filter(|(k, _)| !computed.contains(&k.as_str()))
    {
        assert_eq!(
            actual.get(key),
            Some(want),
            "{name}: attribute {key}; got {}",
            Value::Object(actual.clone())
        );
    }
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !computed.contains(&k.as_str()) && !expected.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "{name}: unexpected attributes {extra:?} in {}",
        Value::Object(actual.clone())
    );
    let as_set = |m: &Map<String, Value>| {
        members(&Value::Object(m.clone()))
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(as_set(actual), as_set(expected), "{name}: members");
}
