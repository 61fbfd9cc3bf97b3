//! The embedded SQLite backend: one replica, one file.
//!
//! Writes go through a dedicated single-connection pool whose transactions begin with
//! `BEGIN IMMEDIATE`, so a write transaction holds the database's write lock from its first
//! statement (no "database is locked" upgrade failures, and read-modify-write PATCHes are
//! serialised). Reads use a separate pool; WAL lets them run while a write is in progress.
//! `synchronous=FULL` makes every commit durable across power loss.

use crate::Shared;
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Db = sqlx::Sqlite;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(crate) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN IMMEDIATE",
    begin_read: "BEGIN",
    // The single writer connection already serialises writers.
    lock_row: "",
    skip_locked: "",
    notify: None,
    batch: true,
};

// The same engine source is compiled for each backend on purpose (see engine.rs).
#[allow(clippy::duplicate_mod)]
#[path = "engine.rs"]
mod engine;

/// The store on SQLite.
pub type SqliteStore = engine::Backend;

/// Open (creating if missing) the database at `url` (`sqlite://path` or `sqlite:path`).
pub(crate) async fn connect(
    url: &str,
    max_connections: u32,
    busy_timeout: Duration,
    shared: Arc<Shared>,
) -> StoreResult<SqliteStore> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        // The reader and writer pools would each see their own empty database.
        return Err(StoreError::invalid_value(
            "an in-memory SQLite database is not supported; use a file path",
        ));
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy_timeout)
        .foreign_keys(true);
    // The writer does not fsync per commit: writes wait for a shared WAL fsync before they
    // are acknowledged (group commit, see durability.rs), which is as durable as FULL.
    // A local file's connections do not go stale: skip the ping sqlx sends on every acquire.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options.clone().synchronous(SqliteSynchronous::Normal))
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .test_before_acquire(false)
        .connect_with(options.read_only(true))
        .await?;
    Ok(engine::Backend::new(read, write, shared))
}

/// The database file a `sqlite:` URL names (None for other URLs).
pub(crate) fn database_file(url: &str) -> StoreResult<Option<std::path::PathBuf>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_path_buf()))
}
