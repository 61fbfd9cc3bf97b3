//! The SQLite writer: one connection, kept between write transactions in its [`WriterLot`],
//! the audit chain's tip cached between writes, and group commit.
//!
//! The writer's connection is kept in the lot, not returned to the pool: sqlx 0.8 pings a
//! connection on every return to its pool, one more hand-off that would hold the single
//! writer, and the lot's queue hands the connection straight to the next writer in line.
//! Every other taker of the writer goes through the lot too ([`WriterLot::take`],
//! [`WriterLot::hold`]).
//!
//! The single writer means no other write runs between a transaction's statements, so a
//! write can extend the tip this process's last write left instead of reading the head
//! first ([`HeldTip`]); another process writing to the same file makes that tip stale, which
//! the audit log's unique `seq` catches at the commit.

use super::Db;
use super::durability::WalSync;
use super::engine::write_tx::{AuditTip, Slot, WriteTx, Writer};
use crate::error::StoreResult;
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How SQLite writes: see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct WritePath {
    lot: WriterLot,
    /// The audit chain's tip after this process's last write, taken with the writer. `None`
    /// when unknown.
    audit_tip: Arc<Mutex<AuditTip>>,
    wal: Arc<WalSync>,
}

impl WritePath {
    pub(super) fn new(wal: WalSync) -> WritePath {
        WritePath {
            lot: WriterLot::default(),
            audit_tip: Arc::default(),
            wal: Arc::new(wal),
        }
    }

    /// A write transaction: the writer, then the cached tip.
    pub(crate) async fn begin(&self, pool: &Pool<Db>) -> StoreResult<WriteTx> {
        let conn = self.lot.take(pool).await?;
        Ok(WriteTx::new(conn, HeldTip::lock(&self.audit_tip).await))
    }

    /// The writer connection, for a single statement.
    pub(crate) async fn writer(&self, pool: &Pool<Db>) -> StoreResult<Writer> {
        self.lot.take(pool).await
    }

    /// See [`WriterLot::hold`].
    pub(crate) async fn hold(&self) -> Hold {
        self.lot.hold().await
    }

    /// Commit a transaction that queued outbox work (this process's worker is woken by the
    /// caller; no other replica shares the file).
    pub(crate) async fn commit_queued(&self, tx: WriteTx) -> StoreResult<()> {
        tx.commit().await
    }

    /// Wait until the commits made so far are on disk (group commit, see durability.rs).
    pub(crate) async fn durable(&self) -> StoreResult<()> {
        self.wal.wait_durable().await
    }
}

/// The cached audit tip, held by a write transaction: only it reads or changes the tip while
/// it runs.
pub(crate) struct HeldTip(OwnedMutexGuard<AuditTip>);

impl HeldTip {
    pub(super) async fn lock(tip: &Arc<Mutex<AuditTip>>) -> HeldTip {
        HeldTip(tip.clone().lock_owned().await)
    }

    pub(crate) fn cached(&self) -> AuditTip {
        (*self.0).clone()
    }

    pub(crate) fn set(&mut self, tip: (i64, String)) {
        *self.0 = Some(tip);
    }

    pub(crate) fn forget(&mut self) {
        *self.0 = None;
    }
}

/// The writer between write transactions (see the module documentation).
#[derive(Debug, Default, Clone)]
pub(crate) struct WriterLot {
    /// The writer's connection, kept here once a taker has had it. Takers queue on the lock
    /// in order, so a finished writer hands the connection straight to the next one.
    slot: Arc<Mutex<Option<PoolConnection<Db>>>>,
}

/// Keeps the writer's other takers out while a caller uses the write pool directly.
pub(crate) struct Hold {
    _slot: Slot,
}

impl WriterLot {
    /// For a caller that uses the pool directly (migrations): the kept connection goes back to
    /// the pool, and no taker gets the writer until the `Hold` is dropped. A taker after that
    /// waits on the pool until the caller has returned it.
    pub(crate) async fn hold(&self) -> Hold {
        let mut slot = self.slot.clone().lock_owned().await;
        drop(slot.take());
        Hold { _slot: slot }
    }

    /// The writer: next in line for the kept connection, or the pool's.
    pub(crate) async fn take(&self, pool: &Pool<Db>) -> StoreResult<Writer> {
        let mut slot = self.slot.clone().lock_owned().await;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        Ok(Writer::new(conn, Some(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::engine::write_tx::Stmt;
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
            let conn = self.lot.take(&self.pool).await.unwrap();
            WriteTx::new(conn, HeldTip::lock(&Arc::default()).await)
        }

        /// A transaction that inserts `x` and commits.
        async fn commit_insert(&self, x: i64) {
            let mut tx = self.begin().await;
            tx.defer(insert(x)).await.unwrap();
            tx.commit().await.unwrap();
        }

        /// The rows, read through the pool as `Backend::migrate` does: under a hold.
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
