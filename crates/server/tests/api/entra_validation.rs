//! What Microsoft Entra ID's gallery validation (August 2026: 25 tests run from a Logic App,
//! AzureAD/SCIMReferenceCode `Microsoft.SCIM.LogicAppValidationTemplate`) checks directly on the
//! endpoint, replayed against the real server with the request shapes of Microsoft's
//! documentation and of that suite. Request bodies come from `fixtures/entra/`.

use crate::on_both_backends;
use crate::patch_op;
use crate::support::{Backend, TestServer};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

on_both_backends!(
    default_mapping_is_discoverable_and_round_trips,
    count_5_paging_echoes_start_index_and_items_per_page,
    manager_set_change_and_remove,
    unassign_then_reassign_restores_the_same_user,
    null_update_clears_in_two_phases,
    a_blank_required_attribute_is_refused,
);

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The manager ids the manager fixtures use, replaced by real ones.
const FIXTURE_MANAGER: &str = "26118915-6090-4610-87e4-49d8ca9f808d";
const FIXTURE_NEW_MANAGER: &str = "9c1e4b3a-52d7-4e8f-a0b6-7d3f2e1c5a94";

fn fixture(relative: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/entra")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names Entra's `Schema_Discoverability_Test` reads out of a core schema of `/Schemas`, as
/// its Logic App builds them (`Flatten_User_Attrs_Loop`): `manager`/`members` by name; a
/// multi-valued complex attribute as `name[type eq "<canonical>"].<sub>` for each canonical
/// `type` value and each sub-attribute but `type`/`primary`, or `name[primary eq "True"].<sub>`
/// when `type` has no canonical values; a single-valued complex one as `name.<sub>` for its
/// sub-attributes that are neither complex nor references; any other attribute by name unless
/// it is a reference. Extension attributes count as `<urn>:<name>`. Lower-cased: the test
/// compares ignoring case.
fn flatten_core(schema: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for attr in schema["attributes"].as_array().into_iter().flatten() {
        let name = attr["name"].as_str().unwrap_or_default();
        let ty = attr["type"].as_str().unwrap_or_default();
        let subs: Vec<&Value> = attr["subAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let sub_name = |s: &&Value| s["name"].as_str().unwrap_or_default().to_string();
        if name == "manager" || name == "members" {
            names.insert(name.to_string());
        } else if ty == "complex" && attr["multiValued"] == true {
            let canonical: Vec<&str> = subs
                .iter()
                .find(|s| s["name"] == "type")
                .and_then(|t| t["canonicalValues"].as_array())
                .map(|values| values.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if canonical.is_empty() {
                for sub in subs.iter().filter(|s| s["name"] != "primary") {
                    names.insert(format!("{name}[primary eq \"True\"].{}", sub_name(sub)));
                }
            } else {
                for value in canonical {
                    for sub in subs
                        .iter()
                        .filter(|s| s["name"] != "type" && s["name"] != "primary")
                    {
                        names.insert(format!("{name}[type eq \"{value}\"].{}", sub_name(sub)));
                    }
                }
            }
        } else if ty == "complex" {
            for sub in subs
                .iter()
                .filter(|s| s["type"] != "complex" && s["type"] != "reference")
            {
                names.insert(format!("{name}.{}", sub_name(sub)));
            }
        } else if ty != "reference" {
            names.insert(name.to_string());
        }
    }
    names.into_iter().map(|n| n.to_lowercase()).collect()
}

/// `(user names, group names)` as the validation reads them from `GET /Schemas`.
fn discoverable(schemas: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let resources = schemas["Resources"].as_array().expect("Resources");
    let by_id = |id: &str| resources.iter().find(|s| s["id"] == id);
    let user_core = by_id("urn:ietf:params:scim:schemas:core:2.0:User").expect("User schema");
    let group_core = by_id("urn:ietf:params:scim:schemas:core:2.0:Group").expect("Group schema");
    let mut user = flatten_core(user_core);
    for extension in resources
        .iter()
        .filter(|s| s != &user_core && s != &group_core)
    {
        let urn = extension["id"].as_str().unwrap_or_default();
        for attr in extension["attributes"].as_array().into_iter().flatten() {
            let name = attr["name"].as_str().unwrap_or_default();
            user.insert(format!("{urn}:{name}").to_lowercase());
        }
    }
    (user, flatten_core(group_core))
}

/// The value a target path names in a resource as served: `a`, `a.b`, `a[k eq "v"].b` (keys,
/// sub-attribute names and `"True"` compared as Entra writes them, ignoring case) or
/// `<urn>:a` (a reference attribute reads as its `value`).
fn read_path(resource: &Value, target: &str) -> Option<Value> {
    let get = |object: &Value, key: &str| -> Option<Value> {
        object
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if let Some((urn, attr)) = target.rsplit_once(':') {
        let value = get(&get(resource, urn)?, attr)?;
        return match value {
            Value::Object(_) => get(&value, "value"),
            other => Some(other),
        };
    }
    if let Some((attr, rest)) = target.split_once('[') {
        let (filter, sub) = rest.split_once("].")?;
        let (key, wanted) = filter.split_once(" eq ")?;
        let wanted = wanted.trim_matches('"');
        let element = get(resource, attr)?
            .as_array()?
            .iter()
            .find(|e| {
                get(e, key).is_some_and(|v| match v {
                    Value::String(s) => s.eq_ignore_ascii_case(wanted),
                    other => other.to_string().eq_ignore_ascii_case(wanted),
                })
            })?
            .clone();
        return get(&element, sub);
    }
    match target.split_once('.') {
        Some((attr, sub)) => get(&get(resource, attr)?, sub),
        None => get(resource, target),
    }
}

/// Every attribute Entra's default mappings send appears in `/Schemas` as its validation reads
/// it, and each one can be written as Entra writes it (one `replace` per attribute, the shape of
/// Microsoft's "Requests to replace multiple attributes") and read back where it was written.
async fn default_mapping_is_discoverable_and_round_trips(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let mappings = fixture("mappings/default-attribute-mappings.json");
    let targets = |kind: &str| -> Vec<String> {
        mappings[kind]
            .as_array()
            .expect("a list of mappings")
            .iter()
            .map(|m| m["target"].as_str().expect("target").to_string())
            .collect()
    };
    let (user_targets, group_targets) = (targets("user"), targets("group"));
    assert!(user_targets.len() >= 25 && group_targets.len() == 3);

    let schemas = srv.get("/Schemas").await;
    assert_eq!(schemas.status, 200, "{}", schemas.text);
    let (user_names, group_names) = discoverable(&schemas.body);
    let missing: Vec<&String> = user_targets
        .iter()
        .filter(|t| !user_names.contains(&t.to_lowercase()))
        .chain(
            group_targets
                .iter()
                .filter(|t| !group_names.contains(&t.to_lowercase())),
        )
        .collect();
    assert!(
        missing.is_empty(),
        "not discoverable in /Schemas: {missing:?}"
    );

    // Each user target written by PATCH and read back.
    let manager = srv.create_user("manager@contoso.com").await;
    let id = srv.create_user("mapped@contoso.com").await;
    let mut written = Map::new();
    let operations: Vec<Value> = user_targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let value = match target.as_str() {
                "userName" => json!("renamed@contoso.com"),
                "active" => json!(false),
                t if t.ends_with(":manager") => json!(manager),
                t if t.starts_with("emails") => json!(format!("mail{i}@contoso.com")),
                _ => json!(format!("value-{i}")),
            };
            written.insert(target.clone(), value.clone());
            json!({"op": "Replace", "path": target, "value": value})
        })
        .collect();
    let patched = srv
        .patch(&format!("/Users/{id}"), &patch_op(Value::Array(operations)))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let read = srv.get(&format!("/Users/{id}")).await.body;
    for (target, value) in &written {
        assert_eq!(
            read_path(&read, target).as_ref(),
            Some(value),
            "{target} in {read}"
        );
    }

    // The group's attributes too (members have tests of their own).
    let group = srv.create_group("Mapped Group", &[]).await;
    let renamed = srv
        .patch(
            &format!("/Groups/{group}"),
            &patch_op(json!([
                {"op": "Replace", "path": "displayName", "value": "Renamed Group"},
                {"op": "Replace", "path": "externalId", "value": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}
            ])),
        )
        .await;
    assert!(renamed.status < 300, "{}", renamed.text);
    let read = srv.get(&format!("/Groups/{group}")).await.body;
    assert_eq!(read["displayName"], "Renamed Group");
    assert_eq!(read["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
}

/// `GET /Users` and `GET /Groups` with `count=5` over 13 resources: every request of
/// `fixtures/entra/validation/pagination.json` answers as listed, and the validation's own walk
/// (next `startIndex` = this one + the number returned, while within `totalResults`) visits three
/// pages at 1, 6 and 11 and sees every resource exactly once.
async fn count_5_paging_echoes_start_index_and_items_per_page(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let spec = fixture("validation/pagination.json");
    let total = spec["resources"].as_u64().unwrap();
    let page_size = spec["page_size"].as_u64().unwrap();
    for endpoint in ["/Users", "/Groups"] {
        let mut ids = BTreeSet::new();
        for n in 0..total {
            let id = if endpoint == "/Users" {
                srv.create_user(&format!("paguser{n:02}@contoso.com")).await
            } else {
                srv.create_group(&format!("PagGroup {n:02}"), &[]).await
            };
            ids.insert(id);
        }
        for request in spec["requests"].as_array().unwrap() {
            let query = request["query"].as_str().unwrap();
            let reply = srv.get(&format!("{endpoint}?{query}")).await;
            assert_eq!(reply.status, 200, "{endpoint}?{query}: {}", reply.text);
            for (key, want) in request["expected"].as_object().unwrap() {
                assert_eq!(
                    &reply.body[key], want,
                    "{endpoint}?{query}: {key} in {}",
                    reply.text
                );
            }
            match request["resources"].as_u64() {
                None => assert!(
                    reply.body.get("Resources").is_none(),
                    "{endpoint}?{query}: {}",
                    reply.text
                ),
                Some(n) => {
                    let resources = reply.body["Resources"].as_array().unwrap_or_else(|| {
                        panic!("{endpoint}?{query}: no Resources in {}", reply.text)
                    });
                    assert_eq!(resources.len() as u64, n, "{endpoint}?{query}");
                }
            }
        }

        let mut start = 1;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let reply = srv
                .get(&format!("{endpoint}?startIndex={start}&count={page_size}"))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(
                reply.body["startIndex"],
                pages * page_size + 1,
                "{}",
                reply.text
            );
            let resources = reply.body["Resources"].as_array().unwrap();
            assert_eq!(reply.body["itemsPerPage"], resources.len());
            seen.extend(
                resources
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_string()),
            );
            pages += 1;
            let next = start + resources.len() as u64;
            if resources.is_empty() || next > reply.body["totalResults"].as_u64().unwrap() {
                break;
            }
            start = next;
            assert!(pages < 10, "the walk does not end");
        }
        assert_eq!(pages, 3, "{endpoint}");
        assert_eq!(seen.len() as u64, total, "{endpoint}: each once: {seen:?}");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), ids, "{endpoint}");
    }
}

/// A fixture's PatchOp body with the fixture's manager ids replaced by `managers`.
fn request_of(name: &str, managers: [&str; 2]) -> Value {
    let text = fixture(name)["request"]
        .to_string()
        .replace(FIXTURE_MANAGER, managers[0])
        .replace(FIXTURE_NEW_MANAGER, managers[1]);
    serde_json::from_str(&text).unwrap()
}

/// Entra's `SCIM_Update_Manager_Test`: set (Add, a bare id), change (Replace, a bare id), remove
/// (Replace with `""`), each answered 200 and confirmed by a GET; then the other ways to set and
/// to remove a manager. The bridge stores the manager's `value` (and a `$ref` a client sends);
/// it computes neither `$ref` nor `displayName`, so a GET shows exactly `{"value": <id>}`.
async fn manager_set_change_and_remove(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let first = srv.create_user("scmgr-mgr@contoso.com").await;
    let second = srv.create_user("scmgr-mgr2@contoso.com").await;
    let mut body = crate::user_body("scmgr-user@contoso.com");
    body[ENTERPRISE] = json!({"department": "Tour Operations"});
    let created = srv.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let user = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let managers = [first.as_str(), second.as_str()];

    let value = |id: &str| Some(json!({"value": id}));
    let steps = [
        ("manager-set-add.json", value(managers[0])),
        ("manager-change-replace.json", value(managers[1])),
        ("manager-remove-blank.json", None),
        ("manager-set-object.json", value(managers[0])),
        ("manager-remove-null.json", None),
        ("manager-bare-string.json", value(managers[0])),
        ("manager-cleared.json", None),
        // The legacy one-element array carries a $ref: kept as sent.
        (
            "manager-legacy-add-array.json",
            Some(json!({"$ref": format!("../Users/{}", managers[0]), "value": managers[0]})),
        ),
        ("manager-remove-op.json", None),
        // Removing an absent manager is no error.
        ("manager-remove-op.json", None),
    ];
    for (name, want) in steps {
        let reply = srv.patch(&user, &request_of(name, managers)).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let read = srv.get(&user).await.body;
        for (what, body) in [("PATCH answer", &reply.body), ("GET", &read)] {
            assert_eq!(
                body[ENTERPRISE].get("manager"),
                want.as_ref(),
                "{name}: {what} {body}"
            );
            assert_eq!(
                body[ENTERPRISE]["department"], "Tour Operations",
                "{name}: the rest of the extension stays: {body}"
            );
        }
    }
}

/// A resource as served, without `meta` (every write changes its version and time).
fn without_meta(resource: &Value) -> Value {
    let mut resource = resource.clone();
    if let Some(object) = resource.as_object_mut() {
        object.remove("meta");
    }
    resource
}

/// Unassigning a user in Entra sends `active=false` (soft delete); assigning it again finds it
/// by `userName` and sends `active=true`. In both of Entra's dialects the user comes back as it
/// was: the same `id`, every attribute, its group membership. While inactive it is still read
/// and found by the matching filter (Microsoft: "The user object should be returned in a request
/// whether or not the user is active").
async fn unassign_then_reassign_restores_the_same_user(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let created = srv
        .post("/Users", &fixture("create-user-enterprise.json")["request"])
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let user_name = created.body["userName"].as_str().unwrap().to_string();
    let group = srv
        .post("/Groups", &fixture("group-create.json")["request"])
        .await;
    assert_eq!(group.status, 201, "{}", group.text);
    let group_id = group.body["id"].as_str().unwrap().to_string();
    let add_member = fixture("group-add-member.json")["request"]
        .to_string()
        .replace("f648f8d5ea4e4cd38e9c", &id);
    let added = srv
        .patch(
            &format!("/Groups/{group_id}"),
            &serde_json::from_str(&add_member).unwrap(),
        )
        .await;
    assert!(added.status < 300, "{}", added.text);
    let before = without_meta(&srv.get(&format!("/Users/{id}")).await.body);
    assert_eq!(before["active"], true);
    assert_eq!(before["groups"][0]["value"], group_id.as_str(), "{before}");

    let member_ids = |group: &Value| -> Vec<String> {
        group["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["value"].as_str().map(str::to_string))
            .collect()
    };
    for (disable, enable) in [
        (
            "disable-user-string-boolean.json",
            "reactivate-user-string-boolean.json",
        ),
        ("disable-user.json", "reactivate-user.json"),
    ] {
        let reply = srv
            .patch(&format!("/Users/{id}"), &fixture(disable)["request"])
            .await;
        assert_eq!(reply.status, 200, "{disable}: {}", reply.text);
        let inactive = without_meta(&srv.get(&format!("/Users/{id}")).await.body);
        let mut expected = before.clone();
        expected["active"] = json!(false);
        assert_eq!(inactive, expected, "{disable}: only active changes");
        let found = srv
            .get_filtered("/Users", &format!("userName eq \"{user_name}\""))
            .await;
        assert_eq!(found.body["totalResults"], 1, "{}", found.text);
        assert_eq!(found.body["Resources"][0]["id"], id.as_str());
        let group = srv.get(&format!("/Groups/{group_id}")).await.body;
        assert_eq!(
            member_ids(&group),
            std::slice::from_ref(&id),
            "{disable}: still a member"
        );

        let reply = srv
            .patch(&format!("/Users/{id}"), &fixture(enable)["request"])
            .await;
        assert_eq!(reply.status, 200, "{enable}: {}", reply.text);
        let restored = without_meta(&srv.get(&format!("/Users/{id}")).await.body);
        assert_eq!(restored, before, "{enable}: the same user, nothing lost");
        let group = srv.get(&format!("/Groups/{group_id}")).await.body;
        assert_eq!(member_ids(&group), std::slice::from_ref(&id));
    }
}

/// Entra's `SCIM_Null_Update_Test` as it runs: create a user with every mapped attribute, PATCH
/// them all to `""` (phase 1), read each back as null or empty, PATCH them all to `null`
/// (phase 2), read again; both with one operation per attribute and batched.
async fn null_update_clears_in_two_phases(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let runs = [
        ("null-update-blank.json", "null-update-null.json"),
        (
            "null-update-blank-batched.json",
            "null-update-null-batched.json",
        ),
    ];
    for (run, (phase_one, phase_two)) in runs.into_iter().enumerate() {
        let mut body = fixture(phase_one)["current"].clone();
        body.as_object_mut().unwrap().remove("id");
        body["userName"] = json!(format!("scnull{run}@contoso.com"));
        let created = srv.post("/Users", &body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let user = format!("/Users/{}", created.body["id"].as_str().unwrap());
        let targets: Vec<String> = fixture("null-update-blank.json")["request"]["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap().to_string())
            .collect();
        for target in &targets {
            assert!(
                read_path(&created.body, target).is_some(),
                "{target} is set first"
            );
        }
        for phase in [phase_one, phase_two] {
            let reply = srv.patch(&user, &fixture(phase)["request"]).await;
            assert!(
                reply.status == 200 || reply.status == 204,
                "{phase}: {}",
                reply.text
            );
            let read = srv.get(&user).await.body;
            for target in &targets {
                let value = read_path(&read, target);
                assert!(
                    value.is_none() || value == Some(json!("")) || value == Some(Value::Null),
                    "{phase}: {target} is {value:?} in {read}"
                );
            }
            assert_eq!(read["userName"], body["userName"], "{phase}");
            assert_eq!(read["active"], true, "{phase}");
        }
    }
}

/// The validation leaves required attributes out of its null update (it reads `required` from
/// `/Schemas`), and Microsoft lists a refused removal of a required attribute as expected. A
/// blank `userName` or Group `displayName` is a 400 `invalidValue`, and nothing changes.
async fn a_blank_required_attribute_is_refused(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let id = srv.create_user("required@contoso.com").await;
    let group = srv.create_group("Required Group", &[&id]).await;
    for (path, target, name) in [
        (format!("/Users/{id}"), "userName", "required@contoso.com"),
        (format!("/Groups/{group}"), "displayName", "Required Group"),
    ] {
        for value in [json!(""), Value::Null] {
            let reply = srv
                .patch(
                    &path,
                    &patch_op(json!([{"op": "replace", "path": target, "value": value}])),
                )
                .await;
            reply.assert_error(400, Some("invalidValue"));
            assert_eq!(srv.get(&path).await.body[target], name);
        }
    }
}
