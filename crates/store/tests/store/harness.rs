//! Test databases and helpers shared by the suite.

use scim::patch::{PatchOptions, parse_request};
use scim::query::{ListQuery, SortOrder};
use scim::resource::{ResourceBody, normalize};
use scim::{Registry, ResourceKind};
use serde_json::{Value, json};
use store::{OutboxEvent, OutboxFilter, Store, StoreError, StoredResource, WriteContext};

/// Generate `sqlite::name` and `postgres::name` tests that run `name(&TestDb)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        test_support::backend_tests!(open = test_support::TestStore::open, by_ref; $($name),*);
    };
}

/// A fresh store on its own database, with a manual clock.
pub use test_support::{TestStore as TestDb, start_time};

pub fn ctx() -> WriteContext {
    WriteContext {
        request_id: "req-test".into(),
        token_name: Some("okta".into()),
        source_addr: Some("127.0.0.1".into()),
        operation: String::new(),
    }
}

pub fn body(kind: ResourceKind, json: Value) -> ResourceBody {
    normalize(kind, json, Registry::standard()).unwrap()
}

pub use test_support::user_json;

pub async fn create_user(store: &Store, user_name: &str) -> StoredResource {
    store
        .resources()
        .create(
            &ctx(),
            ResourceKind::User,
            body(ResourceKind::User, user_json(user_name)),
        )
        .await
        .unwrap()
}

/// A User for each of `user_names`, created in order; their ids.
pub async fn create_users(
    store: &Store,
    user_names: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for user_name in user_names {
        ids.push(create_user(store, &user_name).await.id);
    }
    ids
}

pub async fn create_group(
    store: &Store,
    display_name: &str,
    member_ids: &[&str],
) -> StoredResource {
    let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
    let json = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": display_name,
        "members": members
    });
    store
        .resources()
        .create(&ctx(), ResourceKind::Group, body(ResourceKind::Group, json))
        .await
        .unwrap()
}

pub async fn patch(
    store: &Store,
    kind: ResourceKind,
    id: &str,
    operations: Value,
) -> Result<StoredResource, StoreError> {
    let request = parse_request(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations
    }))
    .unwrap();
    store
        .resources()
        .patch(&ctx(), kind, id, None, &request, &PatchOptions::default())
        .await
}

pub fn list_query(filter: Option<&str>, start_index: usize, count: Option<usize>) -> ListQuery {
    ListQuery {
        filter: filter.map(|f| scim::filter::parse(f).unwrap()),
        sort_by: None,
        sort_order: SortOrder::Ascending,
        start_index,
        count,
        projection: Default::default(),
        cursor: None,
        after: None,
    }
}

/// The sorted member ids of a group.
pub async fn member_ids(store: &Store, group_id: &str) -> Vec<String> {
    let group = store
        .resources()
        .get(ResourceKind::Group, group_id, store::GetOptions::default())
        .await
        .unwrap();
    let mut ids: Vec<String> = group
        .members
        .unwrap()
        .into_iter()
        .map(|m| m.value)
        .collect();
    ids.sort();
    ids
}

/// Claims up to `limit` outbox rows for `worker` with a 30 s lease.
pub async fn claim(db: &TestDb, worker: &str, limit: u32) -> Vec<OutboxEvent> {
    db.store
        .outbox()
        .claim(worker, chrono::Duration::seconds(30), limit)
        .await
        .unwrap()
}

/// The first ten outbox rows `filter` selects.
pub async fn rows(db: &TestDb, filter: OutboxFilter) -> Vec<OutboxEvent> {
    db.store.outbox().list(filter, 10).await.unwrap()
}

/// One PATCH `replace` of `path` by `value`, which must succeed.
pub async fn replace(
    db: &TestDb,
    kind: ResourceKind,
    id: &str,
    path: &str,
    value: Value,
) -> StoredResource {
    patch(
        &db.store,
        kind,
        id,
        json!([{"op": "replace", "path": path, "value": value}]),
    )
    .await
    .unwrap()
}
