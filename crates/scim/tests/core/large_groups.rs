//! PATCHes on groups of tens of thousands of members, applied by the core to the whole member
//! list (as the store does when an operation needs it). Finding "the same value" used to scan
//! the list once per added or removed value, and folding duplicates compared every pair; these
//! check the result at a size where that took minutes, not the time.

use scim::patch::{self, PatchOptions};
use scim::{Registry, ResourceKind};
use serde_json::{Map, Value, json};

fn member(i: usize) -> Value {
    json!({"value": format!("u-{i:05}")})
}

fn apply(group: &Map<String, Value>, ops: Value) -> Map<String, Value> {
    let request = patch::parse_request(
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
    )
    .unwrap();
    patch::apply(
        ResourceKind::Group,
        group,
        &request,
        Registry::standard(),
        &PatchOptions::default(),
    )
    .unwrap()
}

#[test]
fn a_50000_member_group_takes_large_adds_removes_and_a_filtered_add() {
    let group: Map<String, Value> = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Everyone",
        "members": (0..50_000).map(member).collect::<Vec<_>>(),
    })
    .as_object()
    .cloned()
    .unwrap();
    let added: Vec<Value> = (40_000..60_000)
        .map(|i| json!({"value": format!("u-{i:05}"), "display": format!("User {i}")}))
        .collect();
    let removed: Vec<Value> = (0..15_000).map(member).collect();
    let next = apply(
        &group,
        json!([
            // 10,000 present (they take the display), 10,000 new.
            {"op": "add", "path": "members", "value": added},
            {"op": "remove", "path": "members", "value": removed},
            // A filtered add merges into one member, then folds duplicates across the list.
            {"op": "add", "path": "members[value eq \"u-20000\"]", "value": {"display": "Renamed"}},
        ]),
    );
    let members = next["members"].as_array().unwrap();
    let values: Vec<&str> = members
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (15_000..60_000).map(|i| format!("u-{i:05}")).collect();
    assert_eq!(values, expected, "each member once, in order");
    let display = |i: usize| members[i - 15_000].get("display").and_then(Value::as_str);
    assert_eq!(display(20_000), Some("Renamed"));
    assert_eq!(display(39_999), None);
    assert_eq!(display(40_000), Some("User 40000"));
    assert_eq!(display(59_999), Some("User 59999"));
}

#[test]
fn duplicates_a_replace_makes_fold_into_the_first_keeping_primary() {
    // emails are not caseExact: a replace that makes two values equal ignoring case folds them.
    let user: Map<String, Value> = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u1",
        "userName": "u1",
        "emails": [
            {"value": "a@x.org", "type": "work"},
            {"value": "b@x.org", "type": "home", "primary": true},
            {"value": "A@X.org"},
            {"value": "c@x.org", "type": "other"},
        ],
    })
    .as_object()
    .cloned()
    .unwrap();
    let request = patch::parse_request(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "a@X.org"}],
    }))
    .unwrap();
    let next = patch::apply(
        ResourceKind::User,
        &user,
        &request,
        Registry::standard(),
        &PatchOptions::default(),
    )
    .unwrap();
    // The home value became `a@X.org`: the untyped `A@X.org` matches the work value and folds
    // into it; the home one differs in type and stays, still primary.
    assert_eq!(
        next["emails"],
        json!([
            {"value": "a@x.org", "type": "work"},
            {"value": "a@X.org", "type": "home", "primary": true},
            {"value": "c@x.org", "type": "other"},
        ])
    );
}
