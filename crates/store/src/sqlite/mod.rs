//! The embedded SQLite backend: one replica, one file.
//!
//! Writes go through a dedicated single-connection pool whose transactions begin with
//! `BEGIN IMMEDIATE`, so a write transaction holds the database's write lock from its first
//! statement (no "database is locked" upgrade failures, and read-modify-write PATCHes are
//! serialised). Reads use a separate pool; WAL lets them run while a write is in progress.
//! `synchronous=FULL` makes every commit durable across power loss.
//!
//! The file holds token digests, the audit trail and every identity the IdPs sent, so only the
//! bridge's own user may read it: see [`owner_only`].
//!
//! What SQLite does its own way, for the shared engine (`engine/`) to call: the writer and its
//! lot, the cached audit tip (`writer.rs`), group commit (`durability.rs`), statements sent in
//! batches (`batch.rs`) and the one-round-trip write paths (`fast_paths.rs`).

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
};

// The same engine source is compiled for each backend on purpose (see engine/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "../engine/mod.rs"]
mod engine;

mod batch;
mod durability;
mod fast_paths;
mod writer;

use self::writer::{HeldTip, WritePath};

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
    owner_only(options.get_filename())?;
    let wal = durability::WalSync::new(options.get_filename().to_path_buf());
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
    Ok(engine::Backend::new(
        read,
        write,
        WritePath::new(wal),
        shared,
    ))
}

/// Makes the database readable by its owner only (mode 0600), before SQLite opens it.
///
/// A missing file is created empty with 0600 (SQLite takes an empty file as a new database);
/// SQLite itself would create it 0644 minus the umask. SQLite creates `-wal` and `-shm` later,
/// lazily, with the main file's permission bits whatever the umask (os_unix.c `robust_open`
/// sets them with `fchmod`), so they follow. An existing database, `-wal` or `-shm` that other
/// users may read or write is tightened to the owner's bits with a warning; if that is not
/// allowed (another user owns it) the warning says so and the bridge carries on.
#[cfg(unix)]
fn owner_only(path: &std::path::Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // Another process may have created it in between; it is checked below.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot create the database file {}: {e}", path.display()),
                ))
                .into());
            }
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        let tightened = std::fs::Permissions::from_mode(mode & 0o700);
        match std::fs::set_permissions(&file, tightened) {
            Ok(()) => tracing::warn!(
                file = %file.display(),
                was = format!("{mode:04o}"),
                now = format!("{:04o}", mode & 0o700),
                "other users could read or write the database file; it is now owner-only"
            ),
            Err(e) => tracing::warn!(
                file = %file.display(),
                mode = format!("{mode:04o}"),
                error = %e,
                "other users can read or write the database file and its mode cannot be changed; \
                 make it owner-only (chmod 600)"
            ),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_path: &std::path::Path) -> StoreResult<()> {
    Ok(())
}
