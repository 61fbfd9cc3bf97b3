//! Keyset paging for RFC 9865 cursors: pages after a (created, id) position cover every
//! resource once, through SQL and through the in-memory filter, while resources come and go;
//! and the shared secret that seals the cursors.

use crate::backend_tests;
use crate::harness::{TestDb, create_user, create_users, ctx, list_query};
use chrono::Duration;
use scim::ResourceKind;
use scim::query::{Keyset, ListQuery};
use std::collections::HashMap;
use store::{GetOptions, ListPage, Store, StoreOptions, StoredResource};

/// A cursor-paged query (the store only asks whether a cursor was sent; the service opens it).
fn by_cursor(filter: Option<&str>, count: usize, after: Option<&StoredResource>) -> ListQuery {
    let mut query = list_query(filter, 1, Some(count));
    query.cursor = Some(String::new());
    query.after = after.map(|r| Keyset {
        created: r.created,
        id: r.id.clone(),
    });
    query
}

async fn page(store: &Store, query: &ListQuery) -> ListPage {
    store
        .resources()
        .list(ResourceKind::User, query, GetOptions::BARE)
        .await
        .unwrap()
}

/// Every page of a cursor listing, from the first: the ids in order, and `totalResults` as
/// each page reported it.
async fn walk(store: &Store, filter: Option<&str>, count: usize) -> (Vec<String>, Vec<u64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    let mut last: Option<StoredResource> = None;
    for _ in 0..1000 {
        let page = page(store, &by_cursor(filter, count, last.as_ref())).await;
        assert!(page.items.len() <= count);
        totals.push(page.total);
        ids.extend(page.items.iter().map(|r| r.id.clone()));
        if !page.more {
            return (ids, totals);
        }
        last = page.items.last().cloned();
    }
    panic!("the listing never ended");
}

async fn index_order(store: &Store, filter: Option<&str>) -> Vec<String> {
    page(store, &list_query(filter, 1, None))
        .await
        .items
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn keyset_pages_are_the_listing_order(db: &TestDb) {
    // Some users share an instant (the order falls back to id), others do not.
    for i in 0..23 {
        if i % 5 == 0 {
            db.clock.advance(Duration::milliseconds(3));
        }
        create_user(&db.store, &format!("user{i:02}@example.com")).await;
    }
    let all = index_order(&db.store, None).await;
    for count in [1, 5, 7, 23, 100] {
        let (ids, totals) = walk(&db.store, None, count).await;
        assert_eq!(ids, all, "count={count}");
        assert!(totals.iter().all(|t| *t == 23));
    }
    // In SQL (an indexed filter) and in memory (one evaluated over the candidates): the
    // matches before the cursor still count in totalResults.
    for filter in [
        "meta.lastModified ge \"2000-01-01T00:00:00Z\"",
        "userName sw \"user1\"",
    ] {
        let expected = index_order(&db.store, Some(filter)).await;
        let (ids, totals) = walk(&db.store, Some(filter), 3).await;
        assert_eq!(ids, expected, "{filter}");
        assert!(totals.iter().all(|t| *t == expected.len() as u64));
    }
    // count=0: the total alone, and nothing to resume after.
    let zero = page(&db.store, &by_cursor(None, 0, None)).await;
    assert_eq!((zero.total, zero.items.len(), zero.more), (23, 0, false));
    // A unique-key filter past its one match is empty, not the match again.
    let first = page(
        &db.store,
        &by_cursor(Some("userName eq \"user03@example.com\""), 5, None),
    )
    .await;
    assert_eq!((first.items.len(), first.more), (1, false));
    let again = page(
        &db.store,
        &by_cursor(
            Some("userName eq \"user03@example.com\""),
            5,
            first.items.last(),
        ),
    )
    .await;
    assert_eq!((again.total, again.items.len()), (1, 0));
}

async fn keyset_pages_survive_inserts_and_deletes(db: &TestDb) {
    let before = create_users(
        &db.store,
        (0..30).map(|i| format!("before{i:02}@example.com")),
    )
    .await;
    let first = page(&db.store, &by_cursor(None, 10, None)).await;
    let mut seen: Vec<String> = first.items.iter().map(|r| r.id.clone()).collect();
    // Between pages: users added after the cursor and, with the clock set back, before it;
    // one user already listed and one not yet listed are deleted.
    db.clock.advance(Duration::seconds(1));
    create_user(&db.store, "later@example.com").await;
    db.clock
        .set(crate::harness::start_time() - Duration::seconds(1));
    create_user(&db.store, "earlier@example.com").await;
    let listed = seen[3].clone();
    let unlisted = before.iter().find(|id| !seen.contains(id)).unwrap().clone();
    for gone in [&listed, &unlisted] {
        db.store
            .resources()
            .delete(&ctx(), ResourceKind::User, gone, None)
            .await
            .unwrap();
    }
    let mut last = first.items.last().cloned();
    loop {
        let next = page(&db.store, &by_cursor(None, 10, last.as_ref())).await;
        seen.extend(next.items.iter().map(|r| r.id.clone()));
        if !next.more {
            break;
        }
        last = next.items.last().cloned();
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "a user was listed twice");
    for id in &before {
        // Every user there from the first page to the last is listed; the one deleted before
        // its page came is not.
        assert_eq!(counts.contains_key(id.as_str()), *id != unlisted, "{id}");
    }
    // Added after the cursor: listed; added before it: not (it sorts before the position).
    assert_eq!(seen.len(), 30 - 1 + 1);
}

/// RFC 9865 §5.3: every replica seals cursors with one key, made once and kept in the database.
async fn the_cursor_key_is_made_once_and_shared(db: &TestDb) {
    let secrets = db.store.service_secrets();
    let key = secrets.get("pagination-cursor-v1", 32).await.unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(key, vec![0u8; 32]);
    assert_eq!(secrets.get("pagination-cursor-v1", 32).await.unwrap(), key);
    let replica = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        replica
            .service_secrets()
            .get("pagination-cursor-v1", 32)
            .await
            .unwrap(),
        key
    );
    // Another name, another secret; two replicas racing to make one agree on it.
    let (ours, theirs) = (db.store.service_secrets(), replica.service_secrets());
    let (a, b) = tokio::join!(ours.get("other", 32), theirs.get("other", 32));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_ne!(secrets.get("other", 32).await.unwrap(), key);
}

backend_tests!(
    keyset_pages_are_the_listing_order,
    keyset_pages_survive_inserts_and_deletes,
    the_cursor_key_is_made_once_and_shared,
);
