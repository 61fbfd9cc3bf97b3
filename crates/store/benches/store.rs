//! Store speed on SQLite with 100,000 users: the lookups and writes the IdPs drive.
//!
//! `cargo bench -p store`. The fixture (100,000 users, a 50,000-member group) is inserted with
//! raw SQL in one transaction, because 100,000 durable commits would take minutes; everything
//! measured goes through the `Store` API with `synchronous=FULL`, so each write includes its
//! fsync. `durable_commit` isolates that fsync: the same one-row commit with `synchronous=FULL`
//! and `OFF`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clock::{Clock as _, IdSource as _};
use criterion::{Criterion, criterion_group, criterion_main};
use scim::patch::{PatchOptions, parse_request};
use scim::query::{ListQuery, SortOrder};
use scim::resource::normalize;
use scim::{Registry, ResourceKind};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use store::{GetOptions, Store, StoreOptions, WriteContext};
use tokio::runtime::Runtime;

const USERS: usize = 100_000;
const GROUP_MEMBERS: usize = 50_000;

fn user_name(i: usize) -> String {
    format!("user{i:06}@example.com")
}

/// 100,000 users and a group holding the first 50,000 of them, in one transaction.
async fn seed(url: &str) -> (Vec<String>, String, String) {
    let mut conn = SqliteConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    let now = clock::SystemClock.now();
    let mut ids = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let id = clock::SystemIds.uuid_v4().to_string();
        let name = user_name(i);
        let attrs = json!({
            "userName": name, "name": {"givenName": "Given", "familyName": format!("F{i}")},
            "emails": [{"value": name, "type": "work", "primary": true}], "active": true
        });
        sqlx::query(
            "INSERT INTO resources (id, kind, user_name, user_name_key, active, attrs, version, created, last_modified) \
             VALUES ($1, 'User', $2, $2, 1, $3, 1, $4, $4)",
        )
        .bind(&id)
        .bind(&name)
        .bind(attrs.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
        ids.push(id);
    }
    let mut group_ids = Vec::new();
    for (name, size) in [("Large", GROUP_MEMBERS), ("Small", 5)] {
        let group_id = clock::SystemIds.uuid_v4().to_string();
        sqlx::query(
            "INSERT INTO resources (id, kind, display_name, display_name_key, attrs, version, created, last_modified) \
             VALUES ($1, 'Group', $2, lower($2), $3, 1, $4, $4)",
        )
        .bind(&group_id)
        .bind(name)
        .bind(json!({"displayName": name}).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
        for id in &ids[..size] {
            sqlx::query(
                "INSERT INTO group_members (group_id, member_id, member_type, added_at) VALUES ($1, $2, 'User', $3)",
            )
            .bind(&group_id)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        group_ids.push(group_id);
    }
    tx.commit().await.unwrap();
    let small = group_ids.pop().unwrap();
    let large = group_ids.pop().unwrap();
    (ids, large, small)
}

fn ctx() -> WriteContext {
    WriteContext {
        request_id: "bench".into(),
        token_name: Some("bench".into()),
        ..WriteContext::default()
    }
}

fn store_benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt
        .block_on(Store::connect(&url, StoreOptions::default()))
        .unwrap();
    let (ids, large, small) = rt.block_on(seed(&url));

    let mut group = c.benchmark_group("sqlite_100k_users");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));

    let next = AtomicUsize::new(0);
    group.bench_function("get_by_userName_filter", |b| {
        b.iter(|| {
            let i = next.fetch_add(7919, Ordering::Relaxed) % USERS;
            let filter =
                scim::filter::parse(&format!("userName eq \"{}\"", user_name(i).to_uppercase()))
                    .unwrap();
            let query = ListQuery {
                filter: Some(filter),
                sort_by: None,
                sort_order: SortOrder::Ascending,
                start_index: 1,
                count: None,
                projection: Default::default(),
                cursor: None,
                after: None,
            };
            let page = rt
                .block_on(
                    store
                        .resources()
                        .list(ResourceKind::User, &query, GetOptions::default()),
                )
                .unwrap();
            assert_eq!(page.total, 1);
        })
    });

    let created = AtomicUsize::new(0);
    group.bench_function("create_user", |b| {
        b.iter(|| {
            let n = created.fetch_add(1, Ordering::Relaxed);
            let name = format!("new{n}@example.com");
            let body = normalize(
                ResourceKind::User,
                json!({"userName": name, "name": {"givenName": "N", "familyName": "U"},
                       "emails": [{"value": name, "type": "work", "primary": true}], "active": true}),
                Registry::standard(),
            )
            .unwrap();
            rt.block_on(store.resources().create(&ctx(), ResourceKind::User, body)).unwrap();
        })
    });

    // Each iteration adds a user who is not yet a member, so every PATCH inserts a row.
    for (label, group_id, first) in [
        ("add_member_to_50000_member_group", &large, GROUP_MEMBERS),
        ("add_member_to_5_member_group", &small, 5),
    ] {
        let next_member = AtomicUsize::new(first);
        group.bench_function(label, |b| {
            b.iter(|| {
                let member = &ids[next_member.fetch_add(1, Ordering::Relaxed) % USERS];
                let request = parse_request(&json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]})).unwrap();
                rt.block_on(store.resources().patch(&ctx(), ResourceKind::Group, group_id, None, &request, &PatchOptions::default())).unwrap();
            })
        });
    }
    group.finish();

    // The fsync in a durable commit: one-row commits in WAL mode, synchronous FULL vs OFF.
    let mut commits = c.benchmark_group("durable_commit");
    commits
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for (label, synchronous) in [
        ("wal_synchronous_full", SqliteSynchronous::Full),
        ("wal_synchronous_off", SqliteSynchronous::Off),
    ] {
        let path = dir.path().join(format!("{label}.db"));
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous);
        let mut conn = rt.block_on(options.connect()).unwrap();
        rt.block_on(sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut conn))
            .unwrap();
        commits.bench_function(label, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    sqlx::query("INSERT INTO t (x) VALUES (1)")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            })
        });
    }
    commits.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
