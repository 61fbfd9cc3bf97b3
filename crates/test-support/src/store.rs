//! A store on a fresh database with a clock the test moves: what the storage and sync suites run
//! on.

use crate::{Backend, TestDatabase};
use chrono::{DateTime, Utc};
use sqlx::Connection;
use std::sync::Arc;
use store::{ManualClock, Store, StoreOptions};

/// The instant every test store's clock starts at.
pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
        .expect("a valid RFC 3339 time")
        .to_utc()
}

/// A migrated store on its own fresh database, with a manual clock stopped at [`start_time`].
pub struct TestStore {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    /// The database URL, to open a second store (another "replica") or a raw connection.
    pub url: String,
    database: TestDatabase,
}

impl TestStore {
    /// A store on a fresh database on `backend`; `None` when PostgreSQL is skipped (see
    /// [`TestDatabase::postgres`]).
    pub async fn open(backend: Backend) -> Option<TestStore> {
        let database = TestDatabase::new(backend).await?;
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Store::connect(database.url(), StoreOptions::with_clock(clock.clone()))
            .await
            .expect("a store on the fresh database");
        Some(TestStore {
            store,
            clock,
            url: database.url().to_owned(),
            database,
        })
    }

    pub async fn sqlite() -> TestStore {
        TestStore::open(Backend::Sqlite)
            .await
            .expect("SQLite is always there")
    }

    pub async fn postgres() -> Option<TestStore> {
        TestStore::open(Backend::Postgres).await
    }

    /// Another store on the same database (a second replica) with `options`' limits, this
    /// store's clock and no migrations.
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
        .expect("a second store on the database")
    }

    /// Run raw SQL on the database, outside the store (for tampering tests).
    pub async fn raw_execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        if self.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut conn).await?.rows_affected())
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut conn).await?.rows_affected())
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database.is_postgres()
    }
}
