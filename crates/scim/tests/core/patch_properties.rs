//! Property tests of the PATCH engine: all-or-none, order, idempotent adds.

use proptest::prelude::*;
use scim::patch::{self, PatchOptions, PatchRequest};
use scim::{Registry, ResourceKind, ScimError};
use serde_json::{Map, Value, json};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn sample_user() -> Map<String, Value> {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "title": "Tour Guide",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
        EXT: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,8}"
}

/// Operations that succeed on `sample_user` whatever came before them.
fn valid_op() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(|s| json!({"op": "Replace", "path": "displayName", "value": s})),
        prop_oneof![Just(json!(true)), Just(json!(false)), Just(json!("True")), Just(json!("False"))]
            .prop_map(|b| json!({"op": "replace", "path": "active", "value": b})),
        (word(), prop_oneof![Just("work"), Just("home"), Just("other")])
            .prop_map(|(s, t)| json!({"op": "add", "path": "emails", "value": [{"value": format!("{s}@x.org"), "type": t}]})),
        word().prop_map(|s| json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": format!("{s}@w.org")})),
        Just(json!({"op": "remove", "path": "emails[type eq \"home\"]"})),
        word().prop_map(|s| json!({"op": "replace", "path": "name.givenName", "value": s})),
        (word(), word()).prop_map(|(a, b)| json!({"op": "replace", "value": {"name.familyName": a, format!("{EXT}:department"): b}})),
        word().prop_map(|s| json!({"op": "Add", "path": "nickName", "value": s})),
        Just(json!({"op": "remove", "path": "title"})),
        word().prop_map(|s| json!({"op": "Replace", "path": format!("{EXT}:manager"), "value": s})),
        Just(json!({"op": "replace", "value": {"id": "2819c223-7f76-453a-919d-413861904646"}})),
        (word(), prop_oneof![Just("work"), Just("mobile"), Just("fax")])
            .prop_map(|(s, t)| json!({"op": "replace", "path": format!("phoneNumbers[type eq \"{t}\"].value"), "value": s})),
        (word(), prop_oneof![Just("streetAddress"), Just("locality"), Just("postalCode")])
            .prop_map(|(s, sub)| json!({"op": "add", "path": format!("addresses[type eq \"work\"].{sub}"), "value": s})),
    ]
}

/// Attributes Entra's default mapping sends, as the paths its null-update validation clears.
fn clearable_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("displayName".to_string()),
        Just("title".to_string()),
        Just("nickName".to_string()),
        Just("name.givenName".to_string()),
        Just("name.familyName".to_string()),
        Just("emails[type eq \"work\"].value".to_string()),
        Just("phoneNumbers[type eq \"work\"].value".to_string()),
        Just("phoneNumbers[type eq \"mobile\"].value".to_string()),
        Just("addresses[type eq \"work\"].streetAddress".to_string()),
        Just("addresses[type eq \"work\"].locality".to_string()),
        Just(format!("{EXT}:department")),
        Just(format!("{EXT}:employeeNumber")),
        Just(format!("{EXT}:manager")),
    ]
}

/// Operations that always fail.
fn failing_op() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"op": "replace", "path": "id", "value": "someone-else"})),
        Just(json!({"op": "replace", "path": "noSuchAttribute", "value": "x"})),
        Just(json!({"op": "remove"})),
        Just(json!({"op": "replace", "path": "active", "value": "maybe"})),
        Just(
            json!({"op": "add", "path": "emails", "value": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]})
        ),
        Just(json!({"op": "replace", "path": "name.noSuchSub", "value": "x"})),
    ]
}

fn request(ops: &[Value]) -> PatchRequest {
    patch::parse_request(
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
    )
    .expect("valid request")
}

fn apply(resource: &Map<String, Value>, ops: &[Value]) -> Result<Map<String, Value>, ScimError> {
    patch::apply(
        ResourceKind::User,
        resource,
        &request(ops),
        Registry::standard(),
        &PatchOptions::default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// All or none: whatever succeeded before, a failing operation fails the whole request and
    /// the caller's resource is as it was.
    #[test]
    fn a_failing_operation_fails_the_whole_request(
        before in prop::collection::vec(valid_op(), 0..8),
        bad in failing_op(),
        after in prop::collection::vec(valid_op(), 0..3),
    ) {
        let user = sample_user();
        let snapshot = user.clone();
        if !before.is_empty() {
            prop_assert!(apply(&user, &before).is_ok());
        }
        let mut ops = before.clone();
        ops.push(bad);
        ops.extend(after);
        let result = apply(&user, &ops);
        prop_assert!(result.is_err(), "{:?}", result);
        prop_assert_eq!(user, snapshot);
    }

    /// Operations apply in order: one request equals its halves applied one after the other.
    #[test]
    fn a_request_equals_its_halves_in_sequence(ops in prop::collection::vec(valid_op(), 1..12), cut in 0usize..12) {
        let cut = cut.min(ops.len());
        let user = sample_user();
        let whole = apply(&user, &ops).unwrap();
        let first = if cut == 0 { user.clone() } else { apply(&user, &ops[..cut]).unwrap() };
        let both = if cut == ops.len() { first } else { apply(&first, &ops[cut..]).unwrap() };
        prop_assert_eq!(whole, both);
    }

    /// The result of any valid request keeps one primary email at most, and never duplicates.
    #[test]
    fn results_keep_one_primary_and_no_duplicates(ops in prop::collection::vec(valid_op(), 1..12)) {
        let next = apply(&sample_user(), &ops).unwrap();
        let emails = next.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
        prop_assert!(emails.iter().filter(|e| e["primary"] == json!(true)).count() <= 1);
        for (i, a) in emails.iter().enumerate() {
            for b in &emails[i + 1..] {
                prop_assert!(!(a["value"] == b["value"] && a["type"] == b["type"]), "{:?}", emails);
            }
        }
        prop_assert!(next.get("id") == sample_user().get("id"));
    }

    /// `""` and `null` clear: an `add` or `replace` of a blank is exactly a `remove` of the
    /// path, whatever came before, and doing it twice changes nothing more.
    #[test]
    fn a_blank_add_or_replace_is_a_remove(
        before in prop::collection::vec(valid_op(), 0..8),
        path in clearable_path(),
        op in prop_oneof![Just("replace"), Just("Replace"), Just("add"), Just("Add")],
        blank in prop_oneof![Just(json!("")), Just(Value::Null)],
    ) {
        let user = if before.is_empty() { sample_user() } else { apply(&sample_user(), &before).unwrap() };
        let clear = json!({"op": op, "path": path, "value": blank});
        let cleared = apply(&user, std::slice::from_ref(&clear)).unwrap();
        let removed = apply(&user, &[json!({"op": "remove", "path": path})]).unwrap();
        prop_assert_eq!(&cleared, &removed);
        prop_assert_eq!(apply(&cleared, &[clear]).unwrap(), cleared);
    }

    /// Adding members is idempotent, and add-then-remove of the same member leaves the group as
    /// it was (the validator's preview test sends exactly that).
    #[test]
    fn member_add_is_idempotent_and_remove_undoes_it(ids in prop::collection::vec("[a-f0-9]{4}", 1..6), extra in "[g-z]{4}") {
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "G",
            "members": ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()});
        let group = group.as_object().cloned().unwrap();
        let add = json!({"op": "add", "path": "members", "value": [{"value": extra}]});
        let remove = json!({"op": "remove", "path": format!("members[value eq \"{extra}\"]")});
        let registry = Registry::standard();
        let run = |ops: &[Value]| patch::apply(ResourceKind::Group, &group, &request(ops), registry, &PatchOptions::default()).unwrap();
        prop_assert_eq!(run(std::slice::from_ref(&add)), run(&[add.clone(), add.clone()]));
        let readd: Vec<Value> = ids.iter().map(|id| json!({"op": "add", "path": "members", "value": [{"value": id}]})).collect();
        prop_assert_eq!(run(&readd), group.clone());
        let mut round_trip = run(&[add, remove]);
        round_trip.remove("members");
        let mut without = group.clone();
        without.remove("members");
        prop_assert_eq!(round_trip, without);
    }
}

/// Found by the patch_apply fuzz target: a password sent to a Group was kept as an unknown
/// attribute, in clear.
#[test]
fn a_group_patch_stores_no_password() {
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "G"});
    let request = request(&[
        json!({"op": "replace", "value": {"password": "t1meMa$heen", "displayName": "H"}}),
    ]);
    let next = patch::apply(
        ResourceKind::Group,
        group.as_object().unwrap(),
        &request,
        Registry::standard(),
        &PatchOptions::default(),
    )
    .unwrap();
    assert_eq!(next["displayName"], "H");
    assert!(!next.contains_key("password"));
}

/// A body as IdPs write them: keys in any case, Entra's string booleans, nulls, single values
/// where arrays belong, extension attributes under the URN or loose.
fn idp_body() -> impl Strategy<Value = Value> {
    let case = |name: &'static str| {
        prop_oneof![
            Just(name.to_string()),
            Just(name.to_uppercase()),
            Just(name.to_lowercase())
        ]
    };
    let boolean = prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!("True")),
        Just(json!("false"))
    ];
    let email = (
        word(),
        prop_oneof![Just("work"), Just("home")],
        boolean.clone(),
    )
        .prop_map(|(v, t, p)| json!({"Value": format!("{v}@x.org"), "type": t, "Primary": p}))
        .boxed();
    (
        case("userName"),
        word(),
        case("active"),
        boolean,
        case("emails"),
        prop_oneof![
            email.clone().prop_map(|e| json!([e])),
            email.clone(),
            Just(Value::Null)
        ],
        prop_oneof![
            Just(json!({"title": null})),
            word().prop_map(|d| json!({"department": d})),
            word().prop_map(|m| json!({EXT: {"manager": m, "employeeNumber": "1"}})),
            Just(json!({"groups": [], "id": "x", "meta": {"resourceType": "User"}})),
            word().prop_map(|n| json!({"name": {"GivenName": n, "familyName": null}}))
        ],
    )
        .prop_map(|(un, u, ak, a, ek, e, extra)| {
            let mut body = Map::new();
            body.insert(un, json!(u));
            body.insert(ak, a);
            body.insert(ek, e);
            if let Value::Object(extra) = extra {
                body.extend(extra);
            }
            Value::Object(body)
        })
}

proptest! {
    /// Canonical form is a fixed point: normalising a normalised body changes nothing, so what
    /// the store keeps reads back the same through PUT.
    #[test]
    fn normalising_is_idempotent(body in idp_body()) {
        let registry = Registry::standard();
        let once = scim::resource::normalize(ResourceKind::User, body, registry).unwrap();
        let twice = scim::resource::normalize(ResourceKind::User, Value::Object(once.attrs.clone()), registry).unwrap();
        prop_assert_eq!(&once.attrs, &twice.attrs);
        prop_assert!(once.attrs.get("active").is_some_and(Value::is_boolean));
        prop_assert!(!once.attrs.contains_key("id") && !once.attrs.contains_key("groups"));
    }
}
