//! The store's SQL and transaction logic, written once and compiled for each backend.
//!
//! `sqlite/mod.rs` and `postgres/mod.rs` each include this directory as a module
//! (`#[path = "../engine/mod.rs"]`) after defining `Db`, `DIALECT` and `MIGRATOR`, so the code
//! below is checked against the concrete sqlx types of each database. That keeps native column
//! types on both sides without sqlx's generic-executor bounds, and one copy of every query and
//! rule (the approach of vaultwarden's `db_run!`). Where the two databases differ, the code
//! reads `DIALECT`.
//!
//! One file per concern: `resources` (SCIM writes and reads of one resource), `list`
//! (listing and filter pushdown), `members` (membership rows), `outbox`, `audit`, `tokens`,
//! `oauth_clients`, `coder_map`, `sync_issues`; `write_tx` is the batched write transaction.

mod audit;
mod audit_delivery;
mod coder_map;
mod list;
mod members;
mod oauth_clients;
mod outbox;
mod resources;
mod sync_issues;
mod tokens;
pub(crate) mod write_tx;

use self::outbox::enqueue_stmt;
use self::write_tx::{Stmt, WriteTx, Writer, WriterLot};
use super::{DIALECT, Db, MIGRATOR};
use crate::Shared;
use crate::audit::{AuditEntry, AuditKey};
use crate::clock::now_micros;
use crate::error::{StoreError, StoreResult};
use crate::outbox::{OUTBOX_CHANNEL, OutboxPriority};
use crate::resource::WriteContext;
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use serde_json::Value;
use sqlx::{Pool, Transaction};
use std::sync::Arc;

type Conn = <Db as sqlx::Database>::Connection;

type DbRow = <Db as sqlx::Database>::Row;

/// A read transaction: one snapshot for several statements.
type ReadTx = Transaction<'static, Db>;

/// Bind parameters per statement when a list of ids is sent in chunks (well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
const CHUNK: usize = 500;

/// One backend's store: a read pool and a write pool (the same pool on PostgreSQL).
#[derive(Debug, Clone)]
pub struct Backend {
    read: Pool<Db>,
    write: Pool<Db>,
    shared: Arc<Shared>,
    /// Read connections kept by the `userName eq` lookup runners between batches, outside
    /// the pool: sqlx 0.8 pings every connection it takes back into a pool, which on SQLite is
    /// a second round trip to the connection's thread per lookup (as costly as the lookup).
    /// At most one per runner.
    lookup_conns: Arc<std::sync::Mutex<Vec<Conn>>>,
    /// Where the SQLite writer waits between writes; every use of `write` goes through it
    /// (see write_tx.rs).
    writer_lot: WriterLot,
}

/// What a committed write queues and records.
struct WriteRecord<'a> {
    kind: ResourceKind,
    id: &'a str,
    priority: OutboxPriority,
    /// The store's name for the write, recorded when the context names no operation.
    verb: &'static str,
    change: Value,
}

fn not_found(kind: ResourceKind, id: &str) -> StoreError {
    StoreError::NotFound(format!("{} {id} not found", kind.name()))
}

/// A unique-index violation as the 409 the client should see (the pre-check inside the
/// transaction catches the common case; this catches a race between PostgreSQL replicas).
fn unique_violation(error: sqlx::Error, detail: impl FnOnce() -> String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Uniqueness(detail()),
        _ => StoreError::Database(error),
    }
}

/// The audit entry of a SCIM write.
fn audit_entry(ctx: &WriteContext, record: WriteRecord<'_>) -> AuditEntry {
    let operation = if ctx.operation.is_empty() {
        format!("{} {}", record.verb, record.kind.name())
    } else {
        ctx.operation.clone()
    };
    AuditEntry {
        request_id: ctx.request_id.clone(),
        actor: ctx.token_name.clone(),
        source_addr: ctx.source_addr.clone(),
        operation,
        resource_type: Some(record.kind.name().to_string()),
        resource_id: Some(record.id.to_string()),
        change: record.change,
        result: "ok".to_string(),
    }
}

/// Whether a statement always runs, or only when the statement before it changed a row
/// (SQLite's `changes()`; see `Backend::add_one_member`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Guard {
    Always,
    AfterChange,
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The resource kind as a SQL literal. Never a bound parameter: the unique name indexes are
/// partial (`WHERE kind = 'User'`), and SQLite re-prepares a statement on every execution when
/// a bound value decides whether such an index applies.
fn kind_literal(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "'User'",
        ResourceKind::Group => "'Group'",
        ResourceKind::Agent => "'Agent'",
        ResourceKind::AgenticApplication => "'AgenticApplication'",
    }
}

impl Backend {
    pub(crate) fn new(read: Pool<Db>, write: Pool<Db>, shared: Arc<Shared>) -> Self {
        Backend {
            read,
            write,
            shared,
            lookup_conns: Arc::default(),
            writer_lot: WriterLot::default(),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn write_pool(&self) -> &Pool<Db> {
        &self.write
    }

    /// The read pool (on SQLite, separate from the one writer): `copy.rs` reads a live source
    /// through it.
    #[allow(dead_code, reason = "PostgreSQL is only ever a copy's target")]
    pub(crate) fn read_pool(&self) -> &Pool<Db> {
        &self.read
    }

    fn now(&self) -> DateTime<Utc> {
        now_micros(self.shared.clock.as_ref())
    }

    /// The key every audit record this store appends is hashed with (none: plain SHA-256).
    fn audit_key(&self) -> Option<&AuditKey> {
        self.shared.audit_keys.current()
    }

    /// A write transaction (see `write_tx.rs`): every write of more than one statement.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let tip = DIALECT.batch.then_some(&self.shared.audit_tip);
        WriteTx::begin(&self.write, &self.writer_lot, tip).await
    }

    /// The writer connection, for a single statement.
    async fn writer(&self) -> StoreResult<Writer> {
        self.writer_lot.take(&self.write).await
    }

    async fn begin_read(&self) -> StoreResult<ReadTx> {
        Ok(self.read.begin_with(DIALECT.begin_read).await?)
    }

    /// Commit a transaction that queued outbox work, then wake the worker(s).
    async fn commit_queued(&self, mut tx: WriteTx) -> StoreResult<()> {
        if let Some(sql) = DIALECT.notify {
            tx.defer(Stmt::new(sql).text(OUTBOX_CHANNEL)).await?;
        }
        tx.commit().await?;
        self.queued_committed().await
    }

    /// After a commit that queued outbox work: answer only once it is durable, then wake the
    /// worker(s).
    async fn queued_committed(&self) -> StoreResult<()> {
        self.durable().await?;
        self.shared.outbox_notify.notify_one();
        Ok(())
    }

    /// Wait until the commits made so far are on disk (SQLite group commit; PostgreSQL's
    /// commit is already durable).
    async fn durable(&self) -> StoreResult<()> {
        match &self.shared.wal_sync {
            Some(sync) => sync.wait_durable().await,
            None => Ok(()),
        }
    }

    /// Queue the resource, append the audit record and commit: every SCIM write ends here, so
    /// the change, its outbox row and its audit row commit together or not at all.
    async fn commit_write(
        &self,
        mut tx: WriteTx,
        ctx: &WriteContext,
        record: WriteRecord<'_>,
    ) -> StoreResult<()> {
        let now = self.now();
        tx.defer(enqueue_stmt(
            record.kind,
            record.id,
            record.priority,
            now,
            Guard::Always,
        ))
        .await?;
        let entry = audit_entry(ctx, record);
        // SQLite: unless the head was read with the resource, extend the tip this process's
        // last write left (a stale one fails the commit; `create` then retries).
        tx.use_cached_tip();
        tx.append_audit(&entry, now, self.audit_key()).await?;
        self.commit_queued(tx).await
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        let _hold = self.writer_lot.hold().await;
        MIGRATOR.run(self.write_pool()).await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub(crate) async fn schema_status(&self) -> StoreResult<crate::SchemaStatus> {
        use sqlx::migrate::Migrate;
        let mut conn = self.read.acquire().await?;
        let applied = match conn.list_applied_migrations().await {
            Ok(applied) => applied,
            // No migrations table yet: nothing was ever applied. (A lost connection is an I/O
            // error, not a database one, and stays an error.)
            Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(_))) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let known: Vec<(i64, &[u8])> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| (m.version, m.checksum.as_ref()))
            .collect();
        let applied: Vec<(i64, Vec<u8>)> = applied
            .into_iter()
            .map(|a| (a.version, a.checksum.into_owned()))
            .collect();
        Ok(crate::SchemaStatus::compare(&known, &applied))
    }
}
