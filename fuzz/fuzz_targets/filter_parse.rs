//! Any string: parsing never panics; a parsed filter prints to text that parses back to the same
//! filter; evaluating, validating and splitting it for SQL never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scim::filter::{self, Filter};
use scim::{Registry, ResourceKind};
use serde_json::{Map, Value, json};

static USER: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let user = json!({
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Bjensen",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, "loose"],
        "addresses": [{"type": "work", "primary": "True"}],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "manager": {"value": "m1"}
        },
        "custom": [1, 2.5, null, {"value": -3}]
    });
    match user {
        Value::Object(map) => map,
        _ => Map::new(),
    }
});

fn exercise(f: &Filter) {
    let registry = Registry::standard();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let _ = filter::matches(f, &USER, kind, registry);
        let _ = filter::validate(f, kind, registry);
        let _ = filter::indexed(f, kind);
    }
}

fuzz_target!(|input: &str| {
    let Ok(parsed) = filter::parse(input) else { return };
    let printed = parsed.to_string();
    match filter::parse(&printed) {
        Ok(again) => assert_eq!(again, parsed, "{input:?} printed as {printed:?}"),
        Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
    }
    exercise(&parsed);
});
