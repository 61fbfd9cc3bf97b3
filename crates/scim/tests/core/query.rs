//! Projection, list queries, sorting and the ListResponse.

use scim::filter::ast::AttrPath;
use scim::projection::Projection;
use scim::query::{self, ListQuery, MAX_RESULTS, SortOrder};
use scim::{Registry, ResourceKind, ScimType};
use serde_json::{Map, Value, json};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user() -> Map<String, Value> {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
        "id": "u1",
        "externalId": "e1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "b@work", "type": "work", "primary": true}, {"value": "b@home", "type": "home"}],
        "active": true,
        "custom": "kept",
        EXT: {"employeeNumber": "7", "department": "Tours"},
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z"}
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let p = Projection::parse(attributes, excluded).unwrap();
    Value::Object(p.apply(ResourceKind::User, &user(), Registry::standard()))
}

#[test]
fn default_projection_returns_all_but_never() {
    let mut with_password = user();
    with_password.insert("password".into(), json!("secret"));
    let p = Projection::default().apply(ResourceKind::User, &with_password, Registry::standard());
    assert!(p.get("password").is_none());
    assert_eq!(Value::Object(p), Value::Object(user()));
}

#[test]
fn attributes_keep_always_returned_and_named_ones() {
    insta::assert_json_snapshot!(
        "attributes_userName_emails",
        project(Some("userName,emails"), None)
    );
    let v = project(
        Some(
            "name.givenName, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        ),
        None,
    );
    assert_eq!(v["name"], json!({"givenName": "Barbara"}));
    assert_eq!(v[EXT], json!({"department": "Tours"}));
    assert_eq!(v["id"], "u1");
    assert!(v.get("userName").is_none() && v.get("meta").is_none() && v.get("custom").is_none());
}

#[test]
fn a_value_path_in_attributes_selects_its_attribute() {
    // The MS Postman collection sends attributes=emails[type eq "work"].
    let v = project(Some("emails[type eq \"work\"]"), None);
    assert_eq!(v["emails"].as_array().unwrap().len(), 2);
    assert!(v.get("userName").is_none());
}

#[test]
fn excluded_attributes_drop_what_is_named_but_not_id() {
    let v = project(
        None,
        Some(
            "emails,name.familyName,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ),
    );
    assert!(v.get("emails").is_none());
    assert_eq!(v["name"], json!({"givenName": "Barbara"}));
    assert_eq!(v["id"], "u1", "id is returned always");
    assert!(v.get(EXT).is_none());
    assert_eq!(v["custom"], "kept");
}

#[test]
fn whole_extension_in_attributes() {
    let v = project(Some(EXT), None);
    assert_eq!(
        v[EXT],
        json!({"employeeNumber": "7", "department": "Tours"})
    );
}

#[test]
fn wants_answers_for_members() {
    let members = AttrPath::simple("members");
    assert!(
        !Projection::parse(None, Some("members"))
            .unwrap()
            .wants(ResourceKind::Group, &members)
    );
    assert!(Projection::default().wants(ResourceKind::Group, &members));
    assert!(
        !Projection::parse(Some("displayName"), None)
            .unwrap()
            .wants(ResourceKind::Group, &members)
    );
    assert!(
        Projection::parse(Some("members.value"), None)
            .unwrap()
            .wants(ResourceKind::Group, &members)
    );
}

#[test]
fn an_unparsable_attribute_list_is_invalid_value() {
    let e = Projection::parse(Some("emails[type eq"), None).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn paging_parameters_are_read_leniently() {
    let q = ListQuery::from_params(&params(&[("startIndex", "0"), ("count", "-5")])).unwrap();
    assert_eq!((q.start_index, q.count), (1, Some(0)));
    let q = ListQuery::from_params(&params(&[("STARTINDEX", "101"), ("count", "100000")])).unwrap();
    assert_eq!((q.start_index, q.count), (101, Some(MAX_RESULTS)));
    let q = ListQuery::from_params(&params(&[
        ("sortBy", "name.familyName"),
        ("sortOrder", "DESCENDING"),
    ]))
    .unwrap();
    assert_eq!(q.sort_order, SortOrder::Descending);
    assert_eq!(q.sort_by, Some(AttrPath::with_sub("name", "familyName")));
    let e = ListQuery::from_params(&params(&[("count", "ten")])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    let e = ListQuery::from_params(&params(&[("sortOrder", "up")])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    let e = ListQuery::from_params(&params(&[("filter", "userName eq")])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
    let q = ListQuery::from_params(&params(&[
        ("filter", "userName eq \"a\""),
        ("excludedAttributes", "members"),
    ]))
    .unwrap();
    assert!(q.filter.is_some());
    assert_eq!(q.count, None);
}

#[test]
fn search_request_body() {
    let q = ListQuery::from_search_request(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["displayName", "userName"],
        "filter": "displayName sw \"smith\"",
        "startIndex": 1, "count": "10", "sortOrder": "ascending"
    }))
    .unwrap();
    assert_eq!((q.start_index, q.count), (1, Some(10)));
    assert!(q.filter.is_some());
    let p = q
        .projection
        .apply(ResourceKind::User, &user(), Registry::standard());
    assert!(p.contains_key("userName") && !p.contains_key("emails"));
    let e = ListQuery::from_search_request(
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    assert!(ListQuery::from_search_request(&json!({"count": 1.5})).is_err());
}

#[test]
fn window_pages_through_the_results() {
    let q = ListQuery::from_params(&params(&[("startIndex", "3"), ("count", "2")])).unwrap();
    assert_eq!(q.window(10), 2..4);
    assert_eq!(q.window(3), 2..3);
    assert_eq!(q.window(1), 1..1);
    let all = ListQuery::from_params(&[]).unwrap();
    assert_eq!(all.window(5), 0..5);
}

fn named(name: Option<&str>, email: Option<(&str, bool)>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(n) = name {
        m.insert("userName".into(), json!(n));
    }
    if let Some((e, primary)) = email {
        m.insert(
            "emails".into(),
            json!([{"value": "zzz-first"}, {"value": e, "primary": primary}]),
        );
    }
    m
}

fn sort(items: &mut [Map<String, Value>], path: &AttrPath, order: SortOrder) {
    query::sort_resources(ResourceKind::User, items, path, order, Registry::standard());
}

fn user_names(items: &[Map<String, Value>]) -> Vec<Option<&str>> {
    items
        .iter()
        .map(|m| m.get("userName").and_then(Value::as_str))
        .collect()
}

#[test]
fn sorting_ignores_case_puts_missing_last_and_is_stable() {
    let path = AttrPath::simple("userName");
    let mut items = vec![
        named(Some("bob"), None),
        named(None, None),
        named(Some("Alice"), None),
        named(Some("carol"), None),
    ];
    sort(&mut items, &path, SortOrder::Ascending);
    assert_eq!(
        user_names(&items),
        vec![Some("Alice"), Some("bob"), Some("carol"), None]
    );
    sort(&mut items, &path, SortOrder::Descending);
    assert_eq!(
        user_names(&items),
        vec![Some("carol"), Some("bob"), Some("Alice"), None]
    );

    // Equal keys keep their order.
    let mut items: Vec<_> = (0..5)
        .map(|i| {
            let mut m = named(Some("same"), None);
            m.insert("n".into(), json!(i));
            m
        })
        .collect();
    sort(&mut items, &path, SortOrder::Descending);
    assert_eq!(
        items
            .iter()
            .map(|m| m["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
}

#[test]
fn multi_valued_attributes_sort_by_their_primary_value() {
    let mut items = vec![
        named(Some("1"), Some(("b@x", true))),
        named(Some("2"), Some(("a@x", true))),
        named(Some("3"), None),
    ];
    sort(
        &mut items,
        &AttrPath::simple("emails"),
        SortOrder::Ascending,
    );
    assert_eq!(user_names(&items), vec![Some("2"), Some("1"), Some("3")]);
    // Without a primary, the first value ("zzz-first") decides.
    let mut items = vec![
        named(Some("1"), Some(("a@x", false))),
        named(Some("2"), Some(("b@x", true))),
    ];
    sort(
        &mut items,
        &AttrPath::with_sub("emails", "value"),
        SortOrder::Ascending,
    );
    assert_eq!(user_names(&items), vec![Some("2"), Some("1")]);
}

#[test]
fn list_response_shapes() {
    insta::assert_json_snapshot!("list_response_empty", query::list_response(0, 1, vec![]));
    insta::assert_json_snapshot!(
        "list_response_page",
        query::list_response(3, 2, vec![json!({"id": "u2"})])
    );
    let page = |params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        query::ListQuery::from_params(&params).unwrap()
    };
    let count_zero = query::page_response(&page(&[("count", "0")]), 42, vec![], None);
    assert_eq!(count_zero["totalResults"], 42);
    assert_eq!(count_zero["itemsPerPage"], 0);
    assert!(count_zero.get("Resources").is_none());
    // RFC 7644 §3.4.2: Resources is REQUIRED when totalResults is non-zero, also past the end.
    let past_end = query::page_response(
        &page(&[("startIndex", "50"), ("count", "5")]),
        42,
        vec![],
        None,
    );
    assert_eq!(past_end["startIndex"], 50);
    assert_eq!(past_end["itemsPerPage"], 0);
    assert_eq!(past_end["Resources"], json!([]));
    let below_one = query::page_response(
        &page(&[("startIndex", "-3")]),
        42,
        vec![json!({"id": "u1"})],
        None,
    );
    assert_eq!(below_one["startIndex"], 1);
    assert_eq!(below_one["itemsPerPage"], 1);
    // RFC 9865 §2: a cursor page has no startIndex, and nextCursor unless it is the last.
    let cursor_page = query::page_response(
        &page(&[("cursor", ""), ("count", "1")]),
        42,
        vec![json!({"id": "u1"})],
        Some("next".into()),
    );
    assert!(cursor_page.get("startIndex").is_none());
    assert_eq!(cursor_page["nextCursor"], "next");
    let last = query::page_response(&page(&[("cursor", "abc")]), 1, vec![], None);
    assert!(last.get("nextCursor").is_none());
}

#[test]
fn cursor_parameters_follow_rfc_9865() {
    let parse = |pairs: &[(&str, &str)]| ListQuery::from_params(&params(pairs));
    assert_eq!(parse(&[]).unwrap().cursor, None);
    assert_eq!(
        parse(&[("cursor", "")]).unwrap().cursor.as_deref(),
        Some("")
    );
    let q = parse(&[("Cursor", "aZ09-._~"), ("count", "-4")]).unwrap();
    assert_eq!((q.cursor.as_deref(), q.count), (Some("aZ09-._~"), Some(0)));
    assert_eq!(q.after, None);
    let scim_type = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().scim_type;
    for garbled in ["a b", "a/b", "a+b", "a%b", "ü", "a=b"] {
        assert_eq!(
            scim_type(&[("cursor", garbled)]),
            Some(ScimType::InvalidCursor),
            "{garbled}"
        );
    }
    assert_eq!(
        scim_type(&[("cursor", ""), ("count", &(MAX_RESULTS + 1).to_string())]),
        Some(ScimType::InvalidCount)
    );
    assert_eq!(
        scim_type(&[("cursor", ""), ("startIndex", "1")]),
        Some(ScimType::InvalidValue)
    );
    assert_eq!(
        scim_type(&[("cursor", ""), ("count", "many")]),
        Some(ScimType::InvalidValue)
    );
    // Index paging keeps capping a large count, as before.
    let capped = parse(&[("count", &(MAX_RESULTS + 1).to_string())]).unwrap();
    assert_eq!(capped.count, Some(MAX_RESULTS));
    // The same in a SearchRequest body (RFC 9865 §3).
    let body = json!({"schemas": [query::SEARCH_REQUEST_SCHEMA], "cursor": "", "count": 10});
    let q = ListQuery::from_search_request(&body).unwrap();
    assert_eq!((q.cursor.as_deref(), q.count), (Some(""), Some(10)));
    let bad = json!({"cursor": 5});
    assert_eq!(
        ListQuery::from_search_request(&bad).unwrap_err().scim_type,
        Some(ScimType::InvalidValue)
    );
}

#[test]
fn date_times_sort_as_instants() {
    let at = |name: &str, created: &str| {
        let mut m = named(Some(name), None);
        m.insert("meta".into(), json!({"created": created}));
        m
    };
    // 10:00+02:00 is 08:00Z, before 09:00Z, though it sorts after it as text.
    let mut items = vec![
        at("late", "2026-01-01T09:00:00Z"),
        at("early", "2026-01-01T10:00:00+02:00"),
    ];
    sort(
        &mut items,
        &AttrPath::with_sub("meta", "created"),
        SortOrder::Ascending,
    );
    assert_eq!(user_names(&items), vec![Some("early"), Some("late")]);
}

/// A user whose sort attributes are drawn from few values (many ties), any of them unassigned,
/// the `title` sometimes a number or a boolean (mixed types), tagged with its position.
fn arbitrary_user() -> impl proptest::strategy::Strategy<Value = Map<String, Value>> {
    use proptest::prelude::*;
    let name = proptest::option::of(prop_oneof![
        Just("ann"),
        Just("Ann"),
        Just("bob"),
        Just("cy")
    ]);
    let title = proptest::option::of(prop_oneof![
        Just(json!("Engineer")),
        Just(json!("manager")),
        Just(json!(3)),
        Just(json!(-0.5)),
        Just(json!(true)),
    ]);
    let when = proptest::option::of(prop_oneof![
        Just("2026-01-01T00:00:00Z"),
        Just("2026-01-01T01:00:00+02:00"),
        Just("2025-12-31T23:30:00Z"),
    ]);
    (name, title, when).prop_map(|(name, title, when)| {
        let mut m = named(name, None);
        if let Some(t) = title {
            m.insert("title".into(), t);
        }
        if let Some(w) = when {
            m.insert("meta".into(), json!({"lastModified": w}));
        }
        m
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// The bounded heap a store pages a sorted listing with gives exactly the page a full sort
    /// gives, for any window.
    #[test]
    fn top_k_gives_the_page_a_full_sort_gives(
        users in proptest::collection::vec(arbitrary_user(), 0..60),
        path in proptest::sample::select(vec!["userName", "title", "meta.lastModified"]),
        descending in proptest::bool::ANY,
        start in 0usize..70,
        count in 0usize..20,
    ) {
        let path = scim::path::PatchPath::parse(path).unwrap().attr;
        let order = if descending { SortOrder::Descending } else { SortOrder::Ascending };
        let mut tagged = users.clone();
        for (i, u) in tagged.iter_mut().enumerate() {
            u.insert("n".into(), json!(i));
        }
        let mut full = tagged.clone();
        sort(&mut full, &path, order);
        let expected: Vec<&Value> = full.iter().skip(start).take(count).map(|m| &m["n"]).collect();

        let mut top = query::TopK::new(start + count, order);
        for u in &tagged {
            let key = query::SortKey::of(ResourceKind::User, u, &path, Registry::standard());
            top.offer(key, u.clone());
        }
        let kept = top.into_sorted();
        proptest::prop_assert!(kept.len() <= start + count);
        let page: Vec<&Value> = kept.iter().skip(start).map(|m| &m["n"]).collect();
        proptest::prop_assert_eq!(page, expected);
    }
}
