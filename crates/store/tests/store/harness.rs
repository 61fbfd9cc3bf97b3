//! Test databases and helpers shared by the suite.

use chrono::{DateTime, Utc};
use scim::patch::{PatchOptions, parse_request};
use scim::query::{ListQuery, SortOrder};
use scim::resource::{ResourceBody, normalize};
use scim::{Registry, ResourceKind};
use serde_json::{Value, json};
use sqlx::Connection;
use std::sync::Arc;
use store::{ManualClock, Store, StoreError, StoreOptions, StoredResource, WriteContext};

/// Where the PostgreSQL variants create their databases (the CI script sets it).
const POSTGRES_URL_VAR: &str = "SCIM_BRIDGE_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Generate `sqlite::name` and `postgres::name` tests that run `name(&TestDb)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::harness::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::harness::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// A fresh store on its own database, with a manual clock.
pub struct TestDb {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    /// The database URL, to open a second store (another "replica") or a raw connection.
    pub url: String,
    _cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Cleanup::Postgres {
            admin_url,
            database,
        } = self
        else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), database.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with
        // its own runtime. FORCE ends the test's pooled connections.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {database}");
        }
    }
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
        .unwrap()
        .to_utc()
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Store::connect(&url, StoreOptions::with_clock(clock.clone()))
            .await
            .unwrap();
        TestDb {
            store,
            clock,
            url,
            _cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// `None` (after saying so loudly) when PostgreSQL is unreachable and not required. When
    /// `SCIM_BRIDGE_TEST_POSTGRES_URL` is set (CI), PostgreSQL is required and this panics.
    pub async fn postgres() -> Option<TestDb> {
        let required = std::env::var(POSTGRES_URL_VAR).ok();
        let admin_url = required
            .clone()
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string());
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) if required.is_none() => {
                eprintln!(
                    "\n!!!!! PostgreSQL is NOT reachable at {admin_url} ({e}): the PostgreSQL variant of this \
                     test was SKIPPED. Start it or set {POSTGRES_URL_VAR}. !!!!!\n"
                );
                return None;
            }
            Err(e) => panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"),
        };
        let database = format!("scimb_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let cleanup = Cleanup::Postgres {
            admin_url: admin_url.clone(),
            database: database.clone(),
        };
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let url = format!(
            "{}/{database}",
            base.rsplit_once('/').map_or(base, |(head, _)| head)
        );
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Store::connect(&url, StoreOptions::with_clock(clock.clone()))
            .await
            .unwrap();
        Some(TestDb {
            store,
            clock,
            url,
            _cleanup: cleanup,
        })
    }

    /// Another store on the same database (a second replica), with `options`' limits.
    pub async fn second_store(&self, options: StoreOptions) -> Store {
        Store::connect(
            &self.url,
            StoreOptions {
                clock: self.clock.clone(),
                run_migrations: false,
                ..options
            },
        )
        .await
        .unwrap()
    }

    /// Run raw SQL on the database, outside the store (for tampering tests).
    pub async fn raw_execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut conn).await?.rows_affected())
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut conn).await?.rows_affected())
        }
    }

    pub fn is_postgres(&self) -> bool {
        !self.url.starts_with("sqlite:")
    }
}

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

pub fn user_json(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true
    })
}

pub async fn create_user(store: &Store, user_name: &str) -> StoredResource {
    store
        .create(
            &ctx(),
            ResourceKind::User,
            body(ResourceKind::User, user_json(user_name)),
        )
        .await
        .unwrap()
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
    }
}

/// The sorted member ids of a group.
pub async fn member_ids(store: &Store, group_id: &str) -> Vec<String> {
    let group = store
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
