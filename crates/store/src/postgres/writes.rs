//! What PostgreSQL does its own way in a write, for the shared engine (`engine/`): statements
//! go to the server one by one as they come, the audit head is read (and locked) by every
//! append, and commits that queue work `NOTIFY` the other replicas' workers. There are no
//! one-round-trip paths: several replicas write at once, so nothing is known between writes,
//! and the row locks, not a single writer, order them.

use super::DIALECT;
use super::engine::Backend;
use super::engine::members::EarlyAdd;
use super::engine::resources::select_stmt;
use super::engine::write_tx::{AuditTip, Row, Stmt, WriteTx, Writer};
use crate::error::StoreResult;
use crate::outbox::OUTBOX_CHANNEL;
use crate::resource::{ResourceRow, StoredResource, WriteContext};
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use scim::patch::GroupPatchPlan;
use sqlx::{FromRow, Pool, Postgres};

/// How PostgreSQL writes: a connection from the pool per transaction, nothing kept between
/// writes.
#[derive(Debug, Clone)]
pub(crate) struct WritePath;

impl WritePath {
    pub(crate) async fn begin(&self, pool: &Pool<Postgres>) -> StoreResult<WriteTx> {
        Ok(WriteTx::new(self.writer(pool).await?, HeldTip))
    }

    /// A connection for a single statement.
    pub(crate) async fn writer(&self, pool: &Pool<Postgres>) -> StoreResult<Writer> {
        Ok(Writer::new(pool.acquire().await?, None))
    }

    /// Nothing to hold: the pool has many connections and no one keeps any.
    pub(crate) async fn hold(&self) -> Hold {
        Hold
    }

    /// Commit a transaction that queued outbox work, and wake the other replicas' workers
    /// (the notification is delivered at the commit).
    pub(crate) async fn commit_queued(&self, mut tx: WriteTx) -> StoreResult<()> {
        tx.defer(Stmt::new("SELECT pg_notify($1, '')").text(OUTBOX_CHANNEL))
            .await?;
        tx.commit().await
    }

    /// A commit is durable when it returns.
    pub(crate) async fn durable(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// What `WritePath::hold` keeps out: nothing.
pub(crate) struct Hold;

/// No audit tip is cached: another replica may have appended since this one's last write.
pub(crate) struct HeldTip;

impl HeldTip {
    pub(crate) fn cached(&self) -> AuditTip {
        None
    }

    pub(crate) fn set(&mut self, _tip: (i64, String)) {}

    pub(crate) fn forget(&mut self) {}
}

impl WriteTx {
    /// Run `stmt` now (after anything queued).
    pub(crate) async fn defer(&mut self, stmt: Stmt) -> StoreResult<()> {
        self.pending.push(stmt);
        self.flush().await
    }

    /// Run the queued statements and `stmt`; return `stmt`'s rows.
    pub(crate) async fn fetch_all<T>(&mut self, stmt: Stmt) -> StoreResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        self.flush().await?;
        self.begun = true;
        match stmt.fetch_all(self.conn.get()?).await {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// Run what is queued, one statement after the other.
    pub(crate) async fn flush(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.begun = true;
        for stmt in std::mem::take(&mut self.pending) {
            if let Err(e) = stmt.execute(self.conn.get()?).await {
                return Err(self.abort(e).await);
            }
        }
        Ok(())
    }

    /// Read the resource a write changes, locking its row until the commit.
    pub(crate) async fn select_for_write(
        &mut self,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<ResourceRow>> {
        self.fetch_optional(select_stmt(kind, id, DIALECT.lock_row))
            .await
    }
}

impl Backend {
    /// Begin a PATCH: the write transaction and the resource's row, locked. Its member adds
    /// run after the read.
    pub(crate) async fn begin_patch(
        &self,
        kind: ResourceKind,
        id: &str,
        _plan: Option<&GroupPatchPlan>,
        _now: DateTime<Utc>,
    ) -> StoreResult<(WriteTx, Option<ResourceRow>, Option<EarlyAdd>)> {
        let mut tx = self.begin_write().await?;
        let row = tx.select_for_write(kind, id).await?;
        Ok((tx, row, None))
    }

    /// No one-round-trip member add: the general PATCH path adds the member.
    pub(crate) async fn add_one_member(
        &self,
        _ctx: &WriteContext,
        _id: &str,
        _plan: &GroupPatchPlan,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResource>> {
        Ok(None)
    }
}
