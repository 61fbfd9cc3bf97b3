//! Users and Groups: CRUD, uniqueness, ETags, filters, paging, membership rows, concurrency and
//! atomicity.

use crate::backend_tests;
use crate::harness::{
    TestDb, body, create_group, create_user, create_users, ctx, list_query, member_ids, patch,
    replace, rows, user_json,
};
use chrono::Duration;
use scim::patch::{PatchOptions, parse_request};
use scim::query::SortOrder;
use scim::{ResourceKind, ScimType};
use serde_json::json;
use store::{GetOptions, OutboxFilter, OutboxPriority, StoreError, StoreOptions};

async fn create_then_get_round_trips(db: &TestDb) {
    let resources = db.store.resources();
    let mut json = user_json("alice@example.com");
    json["password"] = json!("hunter2");
    json["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
        json!({"employeeNumber": "701984"});
    let created = resources
        .create(&ctx(), ResourceKind::User, body(ResourceKind::User, json))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.etag(), "W/\"1\"");
    assert!(uuid::Uuid::parse_str(&created.id).is_ok());

    let got = resources
        .get(ResourceKind::User, &created.id, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(got.attrs, created.attrs);
    assert_eq!(got.created, crate::harness::start_time());
    assert_eq!(got.groups, Some(vec![]));
    let scim = got.to_scim("https://bridge.example/scim/v2");
    assert_eq!(scim["userName"], "alice@example.com");
    assert_eq!(
        scim["meta"]["location"],
        format!("https://bridge.example/scim/v2/Users/{}", created.id)
    );
    assert_eq!(scim["meta"]["version"], "W/\"1\"");
    assert_eq!(scim["schemas"].as_array().unwrap().len(), 2);
    assert!(
        !scim.to_string().contains("hunter2"),
        "the password must never be returned"
    );
    assert!(got.attrs.get("password").is_none());
}

async fn user_name_and_group_name_are_unique_ignoring_case(db: &TestDb) {
    let resources = db.store.resources();
    create_user(&db.store, "Bob@Example.com").await;
    let err = resources
        .create(
            &ctx(),
            ResourceKind::User,
            body(ResourceKind::User, user_json("bob@EXAMPLE.COM")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Uniqueness(_)), "{err:?}");
    assert_eq!(err.to_scim().status, 409);
    assert_eq!(err.to_scim().scim_type, Some(ScimType::Uniqueness));

    create_group(&db.store, "Engineering", &[]).await;
    let group = json!({"displayName": "ENGINEERING"});
    let err = resources
        .create(
            &ctx(),
            ResourceKind::Group,
            body(ResourceKind::Group, group),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Uniqueness(_)), "{err:?}");

    // A rename onto a taken name is refused too; renaming to a new case of its own name is not.
    let carol = create_user(&db.store, "carol@example.com").await;
    let err = patch(
        &db.store,
        ResourceKind::User,
        &carol.id,
        json!([{"op": "replace", "path": "userName", "value": "BOB@example.com"}]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Uniqueness(_)), "{err:?}");
    let renamed = replace(
        db,
        ResourceKind::User,
        &carol.id,
        "userName",
        json!("Carol@example.com"),
    )
    .await;
    assert_eq!(renamed.attrs["userName"], "Carol@example.com");
}

async fn if_match_guards_replace_patch_and_delete(db: &TestDb) {
    let resources = db.store.resources();
    let user = create_user(&db.store, "dave@example.com").await;
    let mut next = user_json("dave@example.com");
    next["displayName"] = json!("Dave");
    let replaced = resources
        .replace(
            &ctx(),
            ResourceKind::User,
            &user.id,
            Some("W/\"1\""),
            body(ResourceKind::User, next.clone()),
        )
        .await
        .unwrap();
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.attrs["displayName"], "Dave");

    next["displayName"] = json!("David");
    let stale = resources
        .replace(
            &ctx(),
            ResourceKind::User,
            &user.id,
            Some("W/\"1\""),
            body(ResourceKind::User, next.clone()),
        )
        .await;
    match stale {
        Err(StoreError::PreconditionFailed { current }) => assert_eq!(current, "W/\"2\""),
        other => panic!("expected 412, got {other:?}"),
    }
    let request = parse_request(
        &json!({"Operations": [{"op": "replace", "path": "displayName", "value": "D"}]}),
    )
    .unwrap();
    let stale = resources
        .patch(
            &ctx(),
            ResourceKind::User,
            &user.id,
            Some("W/\"7\""),
            &request,
            &PatchOptions::default(),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed { .. })));
    let stale = resources
        .delete(&ctx(), ResourceKind::User, &user.id, Some("W/\"1\""))
        .await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed { .. })));
    assert_eq!(stale.unwrap_err().to_scim().status, 412);

    let any = resources
        .replace(
            &ctx(),
            ResourceKind::User,
            &user.id,
            Some("*"),
            body(ResourceKind::User, next),
        )
        .await
        .unwrap();
    assert_eq!(any.version, 3);
    let got = resources
        .get(ResourceKind::User, &user.id, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!(
        (got.version, got.attrs["displayName"].as_str()),
        (3, Some("David"))
    );
}

async fn unchanged_writes_keep_the_version(db: &TestDb) {
    let user = create_user(&db.store, "erin@example.com").await;
    let before = rows(db, OutboxFilter::All).await;
    // Entra re-sends active:true each cycle; Okta re-PUTs the object it read.
    let same = patch(
        &db.store,
        ResourceKind::User,
        &user.id,
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .await
    .unwrap();
    assert_eq!(same.version, 1);
    let same = db
        .store
        .resources()
        .replace(
            &ctx(),
            ResourceKind::User,
            &user.id,
            None,
            body(ResourceKind::User, user_json("erin@example.com")),
        )
        .await
        .unwrap();
    assert_eq!(same.version, 1);
    assert_eq!(rows(db, OutboxFilter::All).await, before);
    assert_eq!(db.store.audit().export(None).await.unwrap().len(), 1);
}

async fn delete_then_404_twice(db: &TestDb) {
    let resources = db.store.resources();
    let user = create_user(&db.store, "frank@example.com").await;
    resources
        .delete(&ctx(), ResourceKind::User, &user.id, None)
        .await
        .unwrap();
    let get = resources
        .get(ResourceKind::User, &user.id, GetOptions::default())
        .await;
    assert!(matches!(get, Err(StoreError::NotFound(_))), "{get:?}");
    let again = resources
        .delete(&ctx(), ResourceKind::User, &user.id, None)
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    assert_eq!(again.unwrap_err().to_scim().status, 404);
    // The id of a User is not a Group.
    let user = create_user(&db.store, "gina@example.com").await;
    let wrong_kind = resources
        .get(ResourceKind::Group, &user.id, GetOptions::default())
        .await;
    assert!(matches!(wrong_kind, Err(StoreError::NotFound(_))));
}

async fn deleting_a_user_removes_its_memberships(db: &TestDb) {
    let resources = db.store.resources();
    let a = create_user(&db.store, "a@example.com").await;
    let b = create_user(&db.store, "b@example.com").await;
    let group = create_group(&db.store, "Ops", &[&a.id, &b.id]).await;
    let user = resources
        .get(ResourceKind::User, &a.id, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(user.groups.unwrap()[0].value, group.id);

    resources
        .delete(&ctx(), ResourceKind::User, &a.id, None)
        .await
        .unwrap();
    assert_eq!(member_ids(&db.store, &group.id).await, vec![b.id.clone()]);
    let group_now = resources
        .get(ResourceKind::Group, &group.id, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!(
        group_now.version, 2,
        "losing a member is a change of the group"
    );
    // The group is queued too: a suspended (not deleted) Coder user must leave its groups.
    let queued = rows(db, OutboxFilter::All).await;
    assert!(
        queued.iter().any(|e| e.kind == ResourceKind::Group
            && e.resource_id == group.id
            && e.generation == 2)
    );
    let deleted_user = queued.iter().find(|e| e.resource_id == a.id).unwrap();
    assert_eq!(deleted_user.priority, OutboxPriority::Offboarding);
}

async fn filters_run_in_sql_and_in_memory(db: &TestDb) {
    let resources = db.store.resources();
    let mut ids = Vec::new();
    for (i, name) in ["ann", "ben", "cat", "dan"].iter().enumerate() {
        let mut json = user_json(&format!("{name}@example.com"));
        json["externalId"] = json!(format!("ext-{i}"));
        json["title"] = json!(if i % 2 == 0 { "Engineer" } else { "Manager" });
        ids.push(
            resources
                .create(&ctx(), ResourceKind::User, body(ResourceKind::User, json))
                .await
                .unwrap()
                .id,
        );
        db.clock.advance(Duration::seconds(10));
    }
    let total = |filter: &str| {
        let store = db.store.clone();
        let query = list_query(Some(filter), 1, None);
        async move {
            store
                .resources()
                .list(ResourceKind::User, &query, GetOptions::default())
                .await
                .unwrap()
        }
    };
    // Pushed down: userName ignoring case, externalId exactly, id, meta.lastModified.
    let page = total("userName eq \"BEN@example.com\"").await;
    assert_eq!(
        (page.total, page.items[0].id.as_str()),
        (1, ids[1].as_str())
    );
    assert_eq!(total("externalId eq \"ext-2\"").await.total, 1);
    assert_eq!(
        total("externalId eq \"EXT-2\"").await.total,
        0,
        "externalId is caseExact"
    );
    assert_eq!(total(&format!("id eq \"{}\"", ids[3])).await.total, 1);
    assert_eq!(
        total("meta.lastModified gt \"2026-03-01T09:00:15Z\"")
            .await
            .total,
        2
    );
    assert_eq!(total("userName eq \"nobody@example.com\"").await.total, 0);
    // In memory: unindexed attributes, value paths, and an `or` with an unindexed side.
    assert_eq!(total("title eq \"engineer\"").await.total, 2);
    assert_eq!(
        total("emails[type eq \"work\"].value eq \"cat@example.com\"")
            .await
            .total,
        1
    );
    assert_eq!(
        total("userName eq \"ann@example.com\" or title eq \"Manager\"")
            .await
            .total,
        3
    );
    assert_eq!(
        total("userName sw \"a\" and title eq \"Engineer\"")
            .await
            .total,
        1
    );
    assert_eq!(
        total("externalId eq \"ext-1\" and title eq \"Engineer\"")
            .await
            .total,
        0
    );
    assert_eq!(total("not (title eq \"Engineer\")").await.total, 2);

    let group = create_group(&db.store, "Team", &[&ids[0]]).await;
    let query = list_query(Some(&format!("members[value eq \"{}\"]", ids[0])), 1, None);
    let groups = resources
        .list(ResourceKind::Group, &query, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!(groups.total, 1);
    assert_eq!(groups.items[0].id, group.id);
    assert_eq!(
        groups.items[0].members, None,
        "members were loaded for the filter only"
    );

    // A second store with a low limit refuses what it would have to scan.
    let small = db
        .second_store(StoreOptions {
            max_filter_candidates: 3,
            ..StoreOptions::default()
        })
        .await;
    let broad = list_query(Some("title eq \"Engineer\""), 1, None);
    let err = small
        .resources()
        .list(ResourceKind::User, &broad, GetOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_scim().scim_type, Some(ScimType::TooMany));
    let narrow = list_query(
        Some("userName eq \"ann@example.com\" and title eq \"Engineer\""),
        1,
        None,
    );
    assert_eq!(
        small
            .resources()
            .list(ResourceKind::User, &narrow, GetOptions::default())
            .await
            .unwrap()
            .total,
        1
    );
}

async fn paging_is_stable_and_sorting_uses_the_core(db: &TestDb) {
    let resources = db.store.resources();
    // All created at the same instant: the order falls back to id, and must not change.
    for i in 0..25 {
        create_user(&db.store, &format!("user{i:02}@example.com")).await;
    }
    let all = users_bare(db, &list_query(None, 1, None)).await;
    assert_eq!(all.total, 25);
    let mut paged = Vec::new();
    for start in [1, 11, 21] {
        let page = resources
            .list(
                ResourceKind::User,
                &list_query(None, start, Some(10)),
                GetOptions::BARE,
            )
            .await
            .unwrap();
        assert_eq!(page.total, 25);
        paged.extend(page.items.into_iter().map(|r| r.id));
    }
    assert_eq!(
        paged,
        all.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    let empty = resources
        .list(
            ResourceKind::User,
            &list_query(None, 1, Some(0)),
            GetOptions::BARE,
        )
        .await
        .unwrap();
    assert_eq!((empty.total, empty.items.len()), (25, 0));
    // The same paging through the in-memory path.
    let filtered = list_query(Some("userName sw \"user1\""), 3, Some(5));
    let page = resources
        .list(ResourceKind::User, &filtered, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (10, 5));

    let mut sorted = list_query(None, 1, Some(3));
    sorted.sort_by = Some(scim::filter::AttrPath::simple("userName"));
    sorted.sort_order = SortOrder::Descending;
    let page = resources
        .list(ResourceKind::User, &sorted, GetOptions::BARE)
        .await
        .unwrap();
    let names: Vec<&str> = page
        .items
        .iter()
        .map(|r| r.attrs["userName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "user24@example.com",
            "user23@example.com",
            "user22@example.com"
        ]
    );
    assert_eq!(page.total, 25);
}

/// A page of Users, without members or groups.
async fn users_bare(db: &TestDb, query: &scim::query::ListQuery) -> store::ListPage {
    db.store
        .resources()
        .list(ResourceKind::User, query, GetOptions::BARE)
        .await
        .unwrap()
}

/// Pages of a sorted or in-memory-filtered listing (kept in a bounded heap, or streamed) are
/// the pages a full sort of every match gives, for many windows, orders and filters.
async fn bounded_pages_equal_a_full_sort(db: &TestDb) {
    let titles = [Some("Engineer"), Some("engineer"), Some("Manager"), None];
    for i in 0..45usize {
        let mut json = user_json(&format!("u{:02}@example.com", (i * 17) % 45));
        if let Some(title) = titles[(i * 7) % 4] {
            json["title"] = json!(title);
        }
        json["displayName"] = json!(["Kim", "kim", "Lee"][i % 3]);
        db.store
            .resources()
            .create(&ctx(), ResourceKind::User, body(ResourceKind::User, json))
            .await
            .unwrap();
        if i % 3 == 0 {
            // Several share a creation instant: ties fall back to the id.
            db.clock.advance(Duration::seconds(1));
        }
    }
    let registry = scim::Registry::standard();
    let all: Vec<(String, serde_json::Map<String, serde_json::Value>)> =
        users_bare(db, &list_query(None, 1, None))
            .await
            .items
            .into_iter()
            .map(|r| match r.to_scim("") {
                serde_json::Value::Object(json) => (r.id, json),
                _ => unreachable!(),
            })
            .collect();
    assert_eq!(all.len(), 45);
    let mut checked = 0;
    for filter in [None, Some("title pr"), Some("displayName eq \"kim\"")] {
        for sort_by in [None, Some("userName"), Some("title"), Some("displayName")] {
            for order in [SortOrder::Ascending, SortOrder::Descending] {
                // The reference: every match, fully sorted by the core.
                let filter_ast = filter.map(|f| scim::filter::parse(f).unwrap());
                let mut matched: Vec<_> = all
                    .iter()
                    .filter(|(_, json)| {
                        filter_ast.as_ref().is_none_or(|f| {
                            scim::filter::matches(f, json, ResourceKind::User, registry)
                        })
                    })
                    .map(|(id, json)| {
                        let mut json = json.clone();
                        json.insert("$id".into(), json!(id));
                        json
                    })
                    .collect();
                if let Some(path) = sort_by {
                    let path = scim::PatchPath::parse(path).unwrap().attr;
                    scim::query::sort_resources(
                        ResourceKind::User,
                        &mut matched,
                        &path,
                        order,
                        registry,
                    );
                }
                for start in [1, 2, 7, 30, 44, 46] {
                    for count in [Some(0), Some(1), Some(4), Some(20), None] {
                        let mut query = list_query(filter, start, count);
                        query.sort_by = sort_by.map(|p| scim::PatchPath::parse(p).unwrap().attr);
                        query.sort_order = order;
                        let page = users_bare(db, &query).await;
                        let expected: Vec<&str> = matched
                            .iter()
                            .skip(start - 1)
                            .take(count.unwrap_or(usize::MAX))
                            .map(|json| json["$id"].as_str().unwrap())
                            .collect();
                        let got: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
                        assert_eq!(
                            (page.total, got),
                            (matched.len() as u64, expected),
                            "filter {filter:?}, sortBy {sort_by:?} {order:?}, startIndex {start}, count {count:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 2 * 6 * 5);
}

/// `m-000001` … as ids, created outside the store in one statement: the large membership test
/// needs tens of thousands of existing users, not tens of thousands of audited creates.
async fn seed_raw_users(db: &TestDb, count: usize) {
    let sql = if db.is_postgres() {
        format!(
            "INSERT INTO resources (id, kind, user_name, user_name_key, active, attrs, version, created, last_modified) \
             SELECT 'm-' || lpad(i::text, 6, '0'), 'User', 'm' || lpad(i::text, 6, '0') || '@example.com', \
                    'm' || lpad(i::text, 6, '0') || '@example.com', true, \
                    json_build_object('userName', 'm' || lpad(i::text, 6, '0') || '@example.com')::text, 1, \
                    '2026-03-01T09:00:00+00:00', '2026-03-01T09:00:00+00:00' \
             FROM generate_series(1, {count}) AS i"
        )
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO resources (id, kind, user_name, user_name_key, active, attrs, version, created, last_modified) \
             SELECT printf('m-%06d', i), 'User', printf('m%06d@example.com', i), printf('m%06d@example.com', i), 1, \
                    json_object('userName', printf('m%06d@example.com', i)), 1, \
                    '2026-03-01T09:00:00+00:00', '2026-03-01T09:00:00+00:00' \
             FROM n"
        )
    };
    assert_eq!(db.raw_execute(&sql).await.unwrap(), count as u64);
}

fn raw_ids(range: std::ops::RangeInclusive<usize>) -> Vec<serde_json::Value> {
    range
        .map(|i| json!({"value": format!("m-{i:06}")}))
        .collect()
}

/// Membership changes of tens of thousands of members in one PATCH, on a 50,000-member group:
/// the member-row path (a removal and re-add that net out) and the path that applies the PATCH
/// to the loaded member list (an operation the planner cannot turn into rows). Either was
/// O(added × removed) or O(members × added) before; this checks the result, not the time.
async fn large_membership_changes_net_out(db: &TestDb) {
    let audit = db.store.audit();
    seed_raw_users(db, 70_000).await;
    let group = create_group(&db.store, "Everyone", &[]).await;
    let inserted = db
        .raw_execute(&format!(
            "INSERT INTO group_members (group_id, member_id, member_type, added_at) \
             SELECT '{}', id, 'User', '2026-03-01T09:00:00+00:00' FROM resources \
             WHERE kind = 'User' AND id LIKE 'm-%' AND id <= 'm-050000'",
            group.id
        ))
        .await
        .unwrap();
    assert_eq!(inserted, 50_000);

    // Rows: 20,000 removed, then re-added with 10,000 newcomers.
    let mut back = raw_ids(1..=20_000);
    back.extend(raw_ids(50_001..=60_000));
    patch(
        &db.store,
        ResourceKind::Group,
        &group.id,
        json!([
            {"op": "remove", "path": "members", "value": raw_ids(1..=20_000)},
            {"op": "add", "path": "members", "value": back},
        ]),
    )
    .await
    .unwrap();
    let members = member_ids(&db.store, &group.id).await;
    assert_eq!(members.len(), 60_000);
    let records = audit.export(None).await.unwrap();
    let change = &records.last().unwrap().change["members"];
    let added = change["added"].as_array().unwrap();
    assert_eq!(
        (added.len(), change["removed"].as_array().unwrap().len()),
        (10_000, 0),
        "a removal and a re-add in one request net out"
    );
    assert_eq!(added[0], "m-050001");

    // In memory: a filter on `display` needs the member list, so the whole request is applied
    // to it (adding 10,000, 5,000 of them present already, and removing 15,000 by value).
    patch(
        &db.store,
        ResourceKind::Group,
        &group.id,
        json!([
            {"op": "remove", "path": "members[display eq \"nobody\"]"},
            {"op": "add", "path": "members", "value": raw_ids(55_001..=65_000)},
            {"op": "remove", "path": "members", "value": raw_ids(20_001..=35_000)},
        ]),
    )
    .await
    .unwrap();
    let members = member_ids(&db.store, &group.id).await;
    let expected: Vec<String> = (1..=20_000)
        .chain(35_001..=65_000)
        .map(|i| format!("m-{i:06}"))
        .collect();
    assert_eq!(members, expected);
    let records = audit.export(None).await.unwrap();
    let change = &records.last().unwrap().change["members"];
    assert_eq!(
        (
            change["added"].as_array().unwrap().len(),
            change["removed"].as_array().unwrap().len()
        ),
        (5_000, 15_000)
    );
}

async fn membership_is_rows(db: &TestDb) {
    let resources = db.store.resources();
    let users = create_users(
        &db.store,
        ["m1", "m2", "m3", "m4"].map(|name| format!("{name}@example.com")),
    )
    .await;
    let mut expected = vec![users[0].clone(), users[1].clone()];
    let group = create_group(&db.store, "Members", &[&users[0], &users[1]]).await;
    let patch_group = |operations| patch(&db.store, ResourceKind::Group, &group.id, operations);
    assert_eq!(member_ids(&db.store, &group.id).await, sorted(&expected));

    // Adding an existing member is a no-op, not a 409 (SimpleIdServer#245).
    let same =
        patch_group(json!([{"op": "add", "path": "members", "value": [{"value": users[0]}]}]))
            .await
            .unwrap();
    assert_eq!(same.version, 1);
    let added = patch_group(json!([{"op": "add", "path": "members", "value": [{"value": users[0]}, {"value": users[2], "display": "Third"}]}]))
    .await
    .unwrap();
    assert_eq!(added.version, 2);
    expected.push(users[2].clone());
    assert_eq!(member_ids(&db.store, &group.id).await, sorted(&expected));
    let group_now = resources
        .get(ResourceKind::Group, &group.id, GetOptions::default())
        .await
        .unwrap();
    let third = group_now
        .members
        .unwrap()
        .into_iter()
        .find(|m| m.value == users[2])
        .unwrap();
    assert_eq!(third.display.as_deref(), Some("Third"));

    // Okta: remove by filter; Entra legacy: remove with a value list.
    patch_group(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])}]))
        .await
        .unwrap();
    patch_group(json!([{"op": "Remove", "path": "members", "value": [{"value": users[1]}]}]))
        .await
        .unwrap();
    assert_eq!(
        member_ids(&db.store, &group.id).await,
        vec![users[2].clone()]
    );

    // Replace the whole membership (Okta's push), then clear it.
    patch_group(json!([{"op": "replace", "path": "members", "value": [{"value": users[3]}, {"value": users[0]}]}]))
        .await
        .unwrap();
    assert_eq!(
        member_ids(&db.store, &group.id).await,
        sorted(&[users[3].clone(), users[0].clone()])
    );
    // A filter other than `value eq` needs the member list: the fallback path.
    patch_group(json!([{"op": "remove", "path": "members[display eq \"m4@example.com\"]"}]))
        .await
        .unwrap();
    assert_eq!(
        member_ids(&db.store, &group.id).await,
        vec![users[0].clone()]
    );
    let cleared = patch_group(json!([{"op": "remove", "path": "members"}]))
        .await
        .unwrap();
    assert!(member_ids(&db.store, &group.id).await.is_empty());

    // A User's groups are computed from the rows; a nested group is a member like a user.
    let inner = create_group(&db.store, "Inner", &[&users[1]]).await;
    patch_group(json!([{"op": "add", "path": "members", "value": [{"value": inner.id}, {"value": users[1]}]}]))
        .await
        .unwrap();
    let user = resources
        .get(ResourceKind::User, &users[1], GetOptions::default())
        .await
        .unwrap();
    let mut groups: Vec<String> = user.groups.unwrap().into_iter().map(|g| g.value).collect();
    groups.sort();
    assert_eq!(groups, sorted(&[group.id.clone(), inner.id.clone()]));
    let bare = resources
        .get(ResourceKind::Group, &group.id, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!(
        bare.members, None,
        "excludedAttributes=members reads no member row"
    );
    assert!(bare.version > cleared.version);

    // Members must exist; a group cannot contain itself.
    let unknown =
        patch_group(json!([{"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}]))
            .await
            .unwrap_err();
    assert_eq!(unknown.to_scim().scim_type, Some(ScimType::InvalidValue));
    let itself =
        patch_group(json!([{"op": "add", "path": "members", "value": [{"value": group.id}]}]))
            .await
            .unwrap_err();
    assert_eq!(itself.to_scim().status, 400);
}

async fn parallel_patches_to_one_group_lose_nothing(db: &TestDb) {
    let users = create_users(&db.store, (0..200).map(|i| format!("p{i:03}@example.com"))).await;
    let group = create_group(&db.store, "Parallel", &[]).await;
    let mut tasks = Vec::new();
    for chunk in users.chunks(25) {
        let store = db.store.clone();
        let group_id = group.id.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for user in chunk {
                let request = parse_request(&json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}]})).unwrap();
                store.resources().patch(&crate::harness::ctx(), ResourceKind::Group, &group_id, None, &request, &PatchOptions::default()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(member_ids(&db.store, &group.id).await.len(), 200);
    let group = db
        .store
        .resources()
        .get(ResourceKind::Group, &group.id, GetOptions::BARE)
        .await
        .unwrap();
    assert_eq!(
        group.version, 201,
        "every PATCH made exactly one new version"
    );
    assert_eq!(db.store.audit().verify().await.unwrap().first_broken, None);
}

async fn a_failed_write_leaves_no_trace(db: &TestDb) {
    let outbox = db.store.outbox();
    let resources = db.store.resources();
    let audit = db.store.audit();
    let user = create_user(&db.store, "atomic@example.com").await;
    let audit_before = audit.export(None).await.unwrap().len();
    let outbox_before = outbox.list(OutboxFilter::All, 100).await.unwrap();

    // A group whose second member does not exist: the group row, the first member row, the
    // outbox row and the audit row must all be rolled back.
    let json =
        json!({"displayName": "Broken", "members": [{"value": user.id}, {"value": "missing"}]});
    let err = resources
        .create(&ctx(), ResourceKind::Group, body(ResourceKind::Group, json))
        .await
        .unwrap_err();
    assert_eq!(err.to_scim().scim_type, Some(ScimType::InvalidValue));
    let dup = resources
        .create(
            &ctx(),
            ResourceKind::User,
            body(ResourceKind::User, user_json("ATOMIC@example.com")),
        )
        .await;
    assert!(dup.is_err());
    let bad_patch = patch(
        &db.store,
        ResourceKind::User,
        &user.id,
        json!([{"op": "replace", "path": "userName", "value": ""}]),
    )
    .await;
    assert!(bad_patch.is_err());

    let groups = resources
        .list(
            ResourceKind::Group,
            &list_query(None, 1, None),
            GetOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(groups.total, 0);
    assert_eq!(audit.export(None).await.unwrap().len(), audit_before);
    assert_eq!(
        outbox.list(OutboxFilter::All, 100).await.unwrap(),
        outbox_before
    );
    let user_now = resources
        .get(ResourceKind::User, &user.id, GetOptions::default())
        .await
        .unwrap();
    assert_eq!((user_now.version, user_now.groups), (1, Some(vec![])));
}

/// A member add is sent with the read of the group (SQLite): every way the read can turn the
/// PATCH down must leave the membership, the version and the audit chain as they were.
async fn a_member_add_turned_down_adds_nothing(db: &TestDb) {
    let resources = db.store.resources();
    let audit = db.store.audit();
    let first = create_user(&db.store, "early1@example.com").await.id;
    let second = create_user(&db.store, "early2@example.com").await.id;
    let group = create_group(&db.store, "Early", &[&first]).await;
    let audit_before = audit.export(None).await.unwrap().len();
    let add = |id: &str| json!([{"op": "add", "path": "members", "value": [{"value": id}]}]);

    let request = parse_request(&json!({"Operations": add(&second)})).unwrap();
    let stale = resources
        .patch(
            &ctx(),
            ResourceKind::Group,
            &group.id,
            Some("W/\"9\""),
            &request,
            &PatchOptions::default(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed { .. })),
        "{stale:?}"
    );

    let missing = patch(
        &db.store,
        ResourceKind::Group,
        "no-such-group",
        add(&second),
    )
    .await;
    assert_eq!(missing.unwrap_err().to_scim().status, 404);
    // A User's id is not a group: nothing may be added under it.
    let user_as_group = patch(&db.store, ResourceKind::Group, &first, add(&second)).await;
    assert_eq!(user_as_group.unwrap_err().to_scim().status, 404);
    let second_now = resources
        .get(ResourceKind::User, &second, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(
        second_now.groups,
        Some(vec![]),
        "no membership row under the user"
    );

    // One known and one unknown member: the known one is not added either.
    let partly = patch(
        &db.store,
        ResourceKind::Group,
        &group.id,
        json!([{"op": "add", "path": "members", "value": [{"value": second}, {"value": "no-such-user"}]}]),
    )
    .await;
    assert_eq!(
        partly.unwrap_err().to_scim().scim_type,
        Some(ScimType::InvalidValue)
    );

    assert_eq!(member_ids(&db.store, &group.id).await, vec![first.clone()]);
    assert_eq!(audit.export(None).await.unwrap().len(), audit_before);
    // The writer is clean afterwards: the same add now goes through, as one new version.
    let added = patch(&db.store, ResourceKind::Group, &group.id, add(&second))
        .await
        .unwrap();
    assert_eq!(added.version, group.version + 1);
    assert_eq!(
        member_ids(&db.store, &group.id).await,
        sorted(&[first, second])
    );
    assert_eq!(audit.verify().await.unwrap().first_broken, None);
}

/// Adding one member (on SQLite a single round trip of its own, see `add_one_member`) leaves
/// what any other PATCH leaves: one new version, the group queued once more, one audit record
/// of the change; adding it again leaves nothing.
async fn a_single_member_add_is_versioned_queued_and_audited(db: &TestDb) {
    let outbox = db.store.outbox();
    let first = create_user(&db.store, "single1@example.com").await.id;
    let second = create_user(&db.store, "single2@example.com").await.id;
    let third = create_user(&db.store, "single3@example.com").await.id;
    let group = create_group(&db.store, "Single", &[&first]).await;
    let generation = |events: Vec<store::OutboxEvent>| {
        events
            .into_iter()
            .find(|e| e.resource_id == group.id)
            .map(|e| e.generation)
    };
    let outbox_before = generation(outbox.list(OutboxFilter::All, 100).await.unwrap());
    let audit_before = db.store.audit().export(None).await.unwrap();
    let add = |ids: &[&String]| {
        let values: Vec<_> = ids.iter().map(|id| json!({"value": id})).collect();
        json!([{"op": "add", "path": "members", "value": values}])
    };

    let added = patch(&db.store, ResourceKind::Group, &group.id, add(&[&second]))
        .await
        .unwrap();
    assert_eq!(added.version, group.version + 1);
    assert_eq!(added.attrs["displayName"], "Single");
    let again = patch(&db.store, ResourceKind::Group, &group.id, add(&[&second]))
        .await
        .unwrap();
    assert_eq!(
        again.version, added.version,
        "re-adding a member is no change"
    );
    // Two members at once take the general path; the records must match in shape.
    let both = patch(
        &db.store,
        ResourceKind::Group,
        &group.id,
        add(&[&first, &third]),
    )
    .await
    .unwrap();
    assert_eq!(both.version, added.version + 1);

    let audit = db.store.audit().export(None).await.unwrap();
    let new: Vec<_> = audit[audit_before.len()..].iter().collect();
    assert_eq!(new.len(), 2, "{new:?}");
    for (record, added) in new.iter().zip([&second, &third]) {
        assert_eq!(record.operation, "patch Group");
        assert_eq!(record.resource_id.as_deref(), Some(group.id.as_str()));
        assert_eq!(
            record.change,
            json!({"members": {"added": [added], "removed": []}})
        );
        assert_eq!(record.result, "ok");
    }
    assert_eq!(
        generation(outbox.list(OutboxFilter::All, 100).await.unwrap()),
        outbox_before.map(|g| g + 2)
    );
    assert_eq!(
        member_ids(&db.store, &group.id).await,
        sorted(&[first, second, third])
    );
    assert_eq!(db.store.audit().verify().await.unwrap().first_broken, None);
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

/// The unique-key fast path (`userName eq`, `id eq`, Group `displayName eq`) answers like the
/// general path: case-insensitive userName, `count=0` and `startIndex` past the match give the
/// total without items, and a user's groups come along.
async fn unique_key_filters_page_like_any_other(db: &TestDb) {
    let user = create_user(&db.store, "Erin@Example.com").await;
    let group = create_group(&db.store, "Erins", &[&user.id]).await;
    let list = |filter: String, start: usize, count: Option<usize>| {
        let store = db.store.clone();
        async move {
            store
                .resources()
                .list(
                    ResourceKind::User,
                    &list_query(Some(&filter), start, count),
                    GetOptions::default(),
                )
                .await
                .unwrap()
        }
    };
    let page = list("userName eq \"erin@example.COM\"".into(), 1, None).await;
    assert_eq!((page.total, page.items.len()), (1, 1));
    assert_eq!(page.items[0].id, user.id);
    let groups = page.items[0]
        .groups
        .as_ref()
        .expect("groups loaded by default");
    assert_eq!(groups.len(), 1);
    let page = list("userName eq \"erin@example.com\"".into(), 1, Some(0)).await;
    assert_eq!(
        (page.total, page.items.len()),
        (1, 0),
        "count=0 gives only the total"
    );
    let page = list("userName eq \"erin@example.com\"".into(), 2, None).await;
    assert_eq!(
        (page.total, page.items.len()),
        (1, 0),
        "startIndex past the only match"
    );
    let page = list(format!("id eq \"{}\"", user.id), 1, None).await;
    assert_eq!(page.total, 1);
    let page = list("userName eq \"nobody@example.com\"".into(), 1, None).await;
    assert_eq!((page.total, page.items.len()), (0, 0));
    let groups_page = db
        .store
        .resources()
        .list(
            ResourceKind::Group,
            &list_query(Some("displayName eq \"ERINS\""), 1, None),
            GetOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(groups_page.total, 1);
    assert_eq!(groups_page.items[0].id, group.id);
}

/// The unique-key lookup reads a User and its groups in one statement: the groups (values,
/// displays, order) are those a GET by id shows, for a User in several groups and in none.
async fn unique_key_lookup_shows_the_groups_a_get_shows(db: &TestDb) {
    let resources = db.store.resources();
    let user = create_user(&db.store, "fay@example.com").await;
    let loner = create_user(&db.store, "gus@example.com").await;
    for name in ["Zeta", "alpha", "Mid"] {
        create_group(&db.store, name, &[&user.id]).await;
    }
    for (who, groups_expected) in [(&user, 3), (&loner, 0)] {
        let filter = format!(
            "userName eq \"{}\"",
            who.attrs["userName"].as_str().unwrap()
        );
        let page = resources
            .list(
                ResourceKind::User,
                &list_query(Some(&filter), 1, None),
                GetOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!((page.total, page.items.len()), (1, 1));
        let got = resources
            .get(ResourceKind::User, &who.id, GetOptions::default())
            .await
            .unwrap();
        let listed = page.items[0].groups.clone().expect("groups loaded");
        assert_eq!(listed.len(), groups_expected);
        assert_eq!(Some(listed), got.groups);
        assert_eq!(page.items[0].attrs, got.attrs);
        assert_eq!(page.items[0].version, got.version);
    }
}

/// Concurrent `userName eq` lookups share statements (coalesce.rs): each still gets exactly
/// its own user with its own groups, or nothing, whatever else is in the same batch, and a
/// user created while lookups are running is found by the next lookup for it.
async fn concurrent_user_name_lookups_each_get_their_own_answer(db: &TestDb) {
    let mut users = Vec::new();
    for i in 0..24 {
        users.push(create_user(&db.store, &format!("Lookup{i}@example.com")).await);
    }
    for g in 0..3 {
        let members: Vec<&str> = users
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == g)
            .map(|(_, u)| u.id.as_str())
            .collect();
        create_group(&db.store, &format!("lookup-group-{g}"), &members).await;
    }
    let lookup = |name: String| {
        let store = db.store.clone();
        async move {
            let filter = format!("userName eq \"{name}\"");
            store
                .resources()
                .list(
                    ResourceKind::User,
                    &list_query(Some(&filter), 1, None),
                    GetOptions::default(),
                )
                .await
                .unwrap()
        }
    };
    let mut asked = Vec::new();
    let mut tasks = Vec::new();
    for round in 0..8 {
        for i in 0..30 {
            // Mixed case, repeats, and names nobody has.
            let name = if round % 2 == 0 {
                format!("lookup{i}@EXAMPLE.com")
            } else {
                format!("LOOKUP{i}@example.com")
            };
            asked.push(i);
            tasks.push(tokio::spawn(lookup(name)));
        }
    }
    for (i, task) in asked.into_iter().zip(tasks) {
        let page = task.await.unwrap();
        let Some(user) = users.get(i) else {
            assert_eq!((page.total, page.items.len()), (0, 0), "lookup{i} exists");
            continue;
        };
        assert_eq!((page.total, page.items.len()), (1, 1), "lookup{i}");
        assert_eq!(page.items[0].id, user.id, "lookup{i} got another user");
        let groups = page.items[0].groups.clone().expect("groups loaded");
        let expected = format!("lookup-group-{}", i % 3);
        assert_eq!(
            groups.iter().map(|g| g.display.clone()).collect::<Vec<_>>(),
            [Some(expected)],
            "lookup{i}"
        );
    }

    // Read-your-writes under load: a created user is found right away while other lookups
    // keep the batches busy.
    let busy: Vec<_> = (0..64)
        .map(|i| tokio::spawn(lookup(format!("lookup{}@example.com", i % 24))))
        .collect();
    for i in 0..10 {
        let name = format!("fresh{i}@example.com");
        let created = create_user(&db.store, &name).await;
        let page = lookup(name).await;
        assert_eq!(page.items.first().map(|u| &u.id), Some(&created.id));
    }
    for task in busy {
        assert_eq!(task.await.unwrap().total, 1);
    }
}

backend_tests!(
    unique_key_filters_page_like_any_other,
    concurrent_user_name_lookups_each_get_their_own_answer,
    unique_key_lookup_shows_the_groups_a_get_shows,
    create_then_get_round_trips,
    user_name_and_group_name_are_unique_ignoring_case,
    if_match_guards_replace_patch_and_delete,
    unchanged_writes_keep_the_version,
    delete_then_404_twice,
    deleting_a_user_removes_its_memberships,
    filters_run_in_sql_and_in_memory,
    paging_is_stable_and_sorting_uses_the_core,
    bounded_pages_equal_a_full_sort,
    large_membership_changes_net_out,
    membership_is_rows,
    parallel_patches_to_one_group_lose_nothing,
    a_failed_write_leaves_no_trace,
    a_member_add_turned_down_adds_nothing,
    a_single_member_add_is_versioned_queued_and_audited,
);
