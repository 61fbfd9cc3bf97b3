//! RFC 9865 cursor paging over HTTP: `cursor` and `count`, `nextCursor`, the errors of §2.1,
//! the ServiceProviderConfig's `pagination`, and a listing that stays exact while users are
//! added concurrently. The cursor is attacked: garbled, edited, replayed on another listing.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use crate::{filter_param, user_body};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scim::ResourceKind;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

on_both_backends!(
    cursor_pages_list_every_user_once,
    cursor_pages_work_on_every_listing,
    bad_cursors_are_400_with_the_rfc_9865_types,
    service_provider_config_advertises_both_paging_methods,
    a_cursor_listing_is_stable_under_concurrent_inserts,
);

fn ids(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Follow `nextCursor` from an empty cursor: every page's body, in order.
async fn walk(srv: &TestServer, path_and_query: &str) -> Vec<Value> {
    let join = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut pages = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10_000 {
        let reply = srv
            .get(&format!("{path_and_query}{join}cursor={cursor}"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let next = reply.body["nextCursor"].as_str().map(str::to_string);
        pages.push(reply.body);
        match next {
            Some(next) => cursor = next,
            None => return pages,
        }
    }
    panic!("the listing never ended");
}

async fn cursor_pages_list_every_user_once(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let mut created = Vec::new();
    for i in 0..12 {
        created.push(srv.create_user(&format!("user{i:02}@example.com")).await);
    }
    let group = srv.create_group("Engineering", &[&created[0]]).await;
    // RFC 9865 §2: the first page by an empty cursor, the next by nextCursor, the last without.
    let pages = walk(&srv, "/Users?count=5").await;
    assert_eq!(pages.len(), 3);
    for page in &pages {
        assert_eq!(page["totalResults"], 12);
        assert!(page.get("startIndex").is_none(), "{page}");
        assert_eq!(
            page["itemsPerPage"],
            page["Resources"].as_array().unwrap().len()
        );
        // Every character of a cursor is RFC 3986 unreserved.
        if let Some(next) = page["nextCursor"].as_str() {
            assert!(
                next.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
                "{next}"
            );
        }
    }
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let by_index = srv.get("/Users").await;
    assert_eq!(listed, ids(&by_index.body));
    // `GET /Users?cursor&count=…` (a bare `cursor`, RFC 9865's own example) is the first page.
    let bare = srv.get("/Users?count=5&cursor").await;
    assert_eq!(ids(&bare.body), ids(&pages[0]));
    // With a filter evaluated in memory, and with attributes: the projection may change
    // between pages, the listing may not.
    let filter = filter_param("userName sw \"user0\"");
    let filtered = walk(
        &srv,
        &format!("/Users?count=4&filter={filter}&attributes=userName"),
    )
    .await;
    let names: Vec<&str> = filtered
        .iter()
        .flat_map(|p| p["Resources"].as_array().unwrap())
        .map(|r| {
            assert!(r.get("emails").is_none());
            r["userName"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names.len(), 10);
    assert!(filtered.iter().all(|p| p["totalResults"] == 10));
    let second = srv
        .get(&format!(
            "/Users?count=4&filter={filter}&excludedAttributes=name&cursor={}",
            filtered[0]["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&second.body), ids(&filtered[1]));
    // count=0: totalResults only, and no cursor that would ask for the same empty page again.
    let zero = srv.get("/Users?count=0&cursor=").await;
    assert_eq!(zero.status, 200, "{}", zero.text);
    assert_eq!(zero.body["totalResults"], 12);
    assert!(zero.body.get("nextCursor").is_none());
    assert!(zero.body.get("Resources").is_none());
    // A sorted listing by cursor comes sorted (RFC 9865 §2.2).
    let sorted = walk(&srv, "/Users?count=5&sortBy=userName&sortOrder=descending").await;
    let names: Vec<String> = sorted
        .iter()
        .flat_map(|p| p["Resources"].as_array().unwrap().clone())
        .map(|r| r["userName"].as_str().unwrap().to_string())
        .collect();
    let mut expected = names.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!((names.len(), names), (12, expected));
    // The SearchRequest body takes the same parameters (RFC 9865 §3).
    let search = |cursor: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "cursor": cursor,
            "count": 7,
        })
    };
    let first = srv.post("/Users/.search", &search("")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let next = first.body["nextCursor"].as_str().unwrap();
    let rest = srv.post("/Users/.search", &search(next)).await;
    assert!(rest.body.get("nextCursor").is_none());
    let mut both = ids(&first.body);
    both.extend(ids(&rest.body));
    assert_eq!(both, ids(&by_index.body));
    // Groups page the same way.
    let groups = walk(&srv, "/Groups?count=1").await;
    assert_eq!(groups.iter().flat_map(ids).collect::<Vec<_>>(), [group]);
}

async fn cursor_pages_work_on_every_listing(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, crate::catalogs::offer_roles).await else {
        return;
    };
    let roles = walk(&srv, "/Roles?count=3").await;
    assert_eq!(roles.len(), 2);
    assert_eq!(
        roles.iter().flat_map(ids).collect::<Vec<_>>(),
        ids(&srv.get("/Roles").await.body)
    );
    for page in &roles {
        assert_eq!(page["totalResults"], 4);
    }
    for i in 0..3 {
        srv.create_user(&format!("u{i}@example.com")).await;
        srv.create_group(&format!("g{i}"), &[]).await;
    }
    let agent = json!({
        "schemas": [ResourceKind::Agent.core_schema()],
        "name": "build-bot",
        "agentUserName": "build-bot",
        "active": true,
    });
    let reply = srv.post("/Agents", &agent).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let agents = walk(&srv, "/Agents?count=1").await;
    assert_eq!(agents.iter().flat_map(ids).count(), 1);
    // The root search pages over every resource type as one sequence.
    let search = |cursor: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "cursor": cursor,
            "count": 4,
        })
    };
    let mut listed = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = srv.post("/.search", &search(&cursor)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["totalResults"], 7);
        listed.extend(ids(&page.body));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let everything = srv
        .post(
            "/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}),
        )
        .await;
    assert_eq!(listed, ids(&everything.body));
}

async fn bad_cursors_are_400_with_the_rfc_9865_types(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    for i in 0..5 {
        srv.create_user(&format!("user{i}@example.com")).await;
    }
    srv.create_group("g1", &[]).await;
    srv.create_group("g2", &[]).await;
    let first = srv.get("/Users?count=2&cursor=").await;
    let cursor = first.body["nextCursor"].as_str().unwrap().to_string();
    let invalid = Some("invalidCursor");
    // Garbled: not base64, too short, a character outside the unreserved set.
    for garbled in ["x", "AAAA", "not-a-cursor-at-all", "%2F%2F", "a%20b"] {
        srv.get(&format!("/Users?count=2&cursor={garbled}"))
            .await
            .assert_error(400, invalid);
    }
    // Edited: every single byte flipped in turn fails the seal.
    let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    for at in (0..bytes.len()).step_by(7) {
        let mut edited = bytes.clone();
        edited[at] ^= 0x01;
        let edited = URL_SAFE_NO_PAD.encode(edited);
        srv.get(&format!("/Users?count=2&cursor={edited}"))
            .await
            .assert_error(400, invalid);
    }
    let filter = filter_param("userName sw \"user\"");
    for (path, scim_type) in [
        // Truncated or extended.
        (
            format!("/Users?count=2&cursor={}", &cursor[..cursor.len() - 4]),
            "invalidCursor",
        ),
        (format!("/Users?count=2&cursor={cursor}AA"), "invalidCursor"),
        // Replayed on another listing, another filter or another order: what it reads is the
        // listing it was issued for, so it is refused.
        (format!("/Groups?count=2&cursor={cursor}"), "invalidCursor"),
        (
            format!("/Users?count=2&filter={filter}&cursor={cursor}"),
            "invalidCursor",
        ),
        (
            format!("/Users?count=2&sortBy=userName&cursor={cursor}"),
            "invalidCursor",
        ),
        // RFC 9865 §2.1 invalidCount: another count than the first page's, or above
        // maxPageSize.
        (format!("/Users?count=3&cursor={cursor}"), "invalidCount"),
        (format!("/Users?cursor={cursor}"), "invalidCount"),
        ("/Users?count=1001&cursor=".into(), "invalidCount"),
        // Two paging methods at once; a count that is no integer.
        ("/Users?startIndex=1&cursor=".into(), "invalidValue"),
        ("/Users?count=two&cursor=".into(), "invalidValue"),
    ] {
        srv.get(&path).await.assert_error(400, Some(scim_type));
    }
    // The same cursor still works where it belongs.
    let second = srv.get(&format!("/Users?count=2&cursor={cursor}")).await;
    assert_eq!(second.status, 200, "{}", second.text);
    // Another server on the same database (another replica) opens it: the key is shared.
    let reply = srv
        .post(
            "/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "cursor": cursor, "count": 2}),
        )
        .await;
    reply.assert_error(400, invalid);
    let replica = srv.replica().await;
    let again = srv
        .get(&format!("{}/Users?count=2&cursor={cursor}", replica.base))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(ids(&again.body), ids(&second.body));
}

async fn service_provider_config_advertises_both_paging_methods(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let spc = srv.get("/ServiceProviderConfig").await;
    assert_eq!(
        spc.body["pagination"],
        json!({
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": scim::query::MAX_RESULTS,
            "maxPageSize": scim::query::MAX_RESULTS,
            "cursorTimeout": server::CURSOR_TIMEOUT_SECS,
        })
    );
    // Truthful: without a cursor a request is index-paged (RFC 9865 §2.4), and maxPageSize
    // caps a page.
    for i in 0..3 {
        srv.create_user(&format!("user{i}@example.com")).await;
    }
    let page = srv.get("/Users?count=2").await;
    assert_eq!(page.body["startIndex"], 1);
    assert!(page.body.get("nextCursor").is_none());
}

/// Thousands of users listed by cursor while another client keeps adding users: every user
/// there before the listing began appears exactly once.
async fn a_cursor_listing_is_stable_under_concurrent_inserts(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    const EXISTING: usize = 3000;
    let existing = seed_users(&srv, EXISTING).await;
    let stop = Arc::new(AtomicBool::new(false));
    let inserter = {
        let store = srv.store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut added = 0usize;
            // Bounded: a listing of 30 pages never needs more.
            while !stop.load(Ordering::Relaxed) && added < 100_000 {
                create_through_store(&store, &format!("new{added}@example.com")).await;
                added += 1;
            }
            added
        })
    };
    let pages = walk(&srv, "/Users?count=100&attributes=userName").await;
    stop.store(true, Ordering::Relaxed);
    let added = inserter.await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in pages.iter().flat_map(ids) {
        *seen.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "listed twice: {repeated:?}");
    let missing: Vec<_> = existing
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} existing users skipped",
        missing.len()
    );
    // Users added during the listing may or may not be on it; nothing else is.
    assert!(seen.len() >= EXISTING && seen.len() <= EXISTING + added);
    assert!(added > 0, "the inserter ran alongside the listing");
}

/// `n` users made through the store (quicker than over HTTP), several at once.
async fn seed_users(srv: &TestServer, n: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = srv.store.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (worker..n).step_by(8) {
                ids.push(create_through_store(&store, &format!("user{i:05}@example.com")).await);
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.unwrap());
    }
    ids
}

async fn create_through_store(store: &store::Store, user_name: &str) -> String {
    let body = scim::resource::normalize(
        ResourceKind::User,
        user_body(user_name),
        scim::Registry::standard(),
    )
    .unwrap();
    let context = store::WriteContext {
        request_id: "seed".into(),
        token_name: Some("test".into()),
        source_addr: None,
        operation: String::new(),
    };
    store
        .resources()
        .create(&context, ResourceKind::User, body)
        .await
        .unwrap()
        .id
}
