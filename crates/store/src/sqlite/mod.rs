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

// The same engine source is compiled for each backend on purpose (see engine/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "../engine/mod.rs"]
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
    owner_only(options.get_filename())?;
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

/// The database file a `sqlite:` URL names (None for other URLs).
pub(crate) fn database_file(url: &str) -> StoreResult<Option<std::path::PathBuf>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::engine::write_tx::{Stmt, WriteTx, WriterLot};
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::sqlite::SqlitePoolOptions;

    /// A one-connection write pool, as `connect` makes, and its lot.
    struct Writer {
        pool: sqlx::SqlitePool,
        lot: WriterLot,
    }

    async fn one_writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        Writer {
            pool,
            lot: WriterLot::default(),
        }
    }

    impl Writer {
        async fn begin(&self) -> WriteTx {
            WriteTx::begin(&self.pool, &self.lot, None).await.unwrap()
        }

        /// A transaction that inserts `x` and commits.
        async fn commit_insert(&self, x: i64) {
            let mut tx = self.begin().await;
            tx.defer(insert(x)).await.unwrap();
            tx.commit().await.unwrap();
        }

        /// The rows, read through the pool as `Backend::begin_write` does: under a hold.
        async fn rows(&self) -> Vec<i64> {
            let _hold = self.lot.hold().await;
            sqlx::query_scalar("SELECT x FROM t ORDER BY x")
                .fetch_all(&self.pool)
                .await
                .unwrap()
        }
    }

    fn insert(x: i64) -> Stmt {
        Stmt::new("INSERT INTO t (x) VALUES ($1)").int(x)
    }

    #[tokio::test]
    async fn a_transaction_dropped_midway_rolls_back_and_frees_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let w = one_writer(&dir).await;
        // A temporary table lives only as long as its connection.
        let mut writer = w.lot.take(&w.pool).await.unwrap();
        sqlx::query("CREATE TEMP TABLE kept (x)")
            .execute(writer.get().unwrap())
            .await
            .unwrap();
        drop(writer);
        let mut tx = w.begin().await;
        tx.defer(insert(1)).await.unwrap();
        // Sends BEGIN and the insert: the connection is now inside a transaction.
        let seen: Vec<(i64,)> = tx.fetch_all(Stmt::new("SELECT x FROM t")).await.unwrap();
        assert_eq!(seen, vec![(1,)]);
        drop(tx);
        // The next writer gets a connection outside any transaction, and the insert is gone.
        w.commit_insert(2).await;
        assert_eq!(w.rows().await, vec![2]);
        // It was rolled back on its connection, which the lot kept: not closed and reopened.
        let mut writer = w.lot.take(&w.pool).await.unwrap();
        let kept: Vec<(i64,)> = sqlx::query_as("SELECT COUNT(*) FROM temp.kept")
            .fetch_all(writer.get().unwrap())
            .await
            .unwrap();
        assert_eq!(kept, vec![(0,)]);
    }

    #[tokio::test]
    async fn a_failing_statement_rolls_back_its_batch_and_maps_uniqueness() {
        let dir = tempfile::tempdir().unwrap();
        let w = one_writer(&dir).await;
        w.commit_insert(7).await;
        let mut tx = w.begin().await;
        tx.defer(insert(8)).await.unwrap();
        tx.defer(insert(7).unique("seven is taken".into()))
            .await
            .unwrap();
        let err = tx.commit().await.unwrap_err();
        assert!(
            matches!(&err, crate::StoreError::Uniqueness(d) if d == "seven is taken"),
            "{err:?}"
        );
        // Nothing of the failed batch stayed, and the writer is usable.
        assert_eq!(w.rows().await, vec![7]);
        w.commit_insert(9).await;
        assert_eq!(w.rows().await, vec![7, 9]);
    }

    #[tokio::test]
    async fn a_rollback_before_anything_was_sent_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = one_writer(&dir).await;
        let mut tx = w.begin().await;
        tx.defer(insert(1)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(w.rows().await, Vec::<i64>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_passes_from_writer_to_writer_outside_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let w = std::sync::Arc::new(one_writer(&dir).await);
        w.commit_insert(0).await;
        // Kept by the lot, not idle in the pool.
        assert_eq!((w.pool.size(), w.pool.num_idle()), (1, 0));
        let tasks: Vec<_> = (1..=40)
            .map(|x| {
                let w = w.clone();
                tokio::spawn(async move { w.commit_insert(x).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!((w.pool.size(), w.pool.num_idle()), (1, 0));
        // A hold gives it back to the pool, and the lot takes it again after.
        assert_eq!(w.rows().await, (0..=40).collect::<Vec<_>>());
        w.commit_insert(41).await;
        assert_eq!(w.rows().await.len(), 42);
    }
}
