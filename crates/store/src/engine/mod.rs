//! The store's SQL and transaction logic, written once and compiled for each backend.
//!
//! `sqlite/mod.rs` and `postgres/mod.rs` each include this directory as a module
//! (`#[path = "../engine/mod.rs"]`), so the code below is checked against the concrete sqlx
//! types of each database. That keeps native column types on both sides without sqlx's
//! generic-executor bounds, and one copy of every query and rule (the approach of
//! vaultwarden's `db_run!`).
//!
//! Where the two databases differ, the backend module (`super`) decides, at compile time:
//! - `Db`, `MIGRATOR`, and `DIALECT` (the SQL text that differs);
//! - `WritePath`: begins write transactions and takes the writer (`begin`, `writer`, `hold`),
//!   commits queued work (`commit_queued`: PostgreSQL notifies other replicas) and waits for
//!   durability (`durable`: SQLite's group commit);
//! - `HeldTip`: the audit tip cached between writes (SQLite) or none (PostgreSQL);
//! - on [`WriteTx`], how statements are sent (`defer`, `fetch_all`, `flush`) and how a write
//!   reads its resource (`select_for_write`);
//! - on [`Backend`], `begin_patch` and `add_one_member`: SQLite's one-round-trip paths, plain
//!   statements on PostgreSQL.
//!
//! One file per concern: `resources` (SCIM writes and reads of one resource), `list`
//! (listing and filter pushdown), `members` (membership rows), `agent_owners` (the owner
//! index of Agents), `outbox`, `audit`
//! (`audit_trail`: reads by resource), `tokens`, `oauth_clients`, `coder_map`,
//! `sync_issues`; `write_tx` is the write transaction.

mod agent_owners;
pub(crate) mod audit;
mod audit_delivery;
mod audit_trail;
mod coder_map;
mod list;
pub(crate) mod members;
mod oauth_clients;
pub(crate) mod outbox;
pub(crate) mod resources;
mod service_secrets;
mod sync_issues;
mod tokens;
pub(crate) mod write_tx;

use self::outbox::enqueue_stmt;
use self::write_tx::{WriteTx, Writer};
use super::{DIALECT, Db, HeldTip, MIGRATOR, WritePath};
use crate::Shared;
use crate::audit::{AuditEntry, AuditKey};
use crate::clock::now_micros;
use crate::error::{StoreError, StoreResult};
use crate::outbox::OutboxPriority;
use crate::resource::WriteContext;
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use serde_json::Value;
use sqlx::{Pool, Transaction};
use std::sync::Arc;

type Conn = <Db as sqlx::Database>::Connection;

/// A read transaction: one snapshot for several statements.
type ReadTx = Transaction<'static, Db>;

/// Bind parameters per statement when a list of ids is sent in chunks (well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
pub(crate) const CHUNK: usize = 500;

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
    /// How this backend writes; every use of `write` goes through it.
    writes: WritePath,
}

/// What a committed write queues and records.
pub(crate) struct WriteRecord<'a> {
    pub(crate) kind: ResourceKind,
    pub(crate) id: &'a str,
    pub(crate) priority: OutboxPriority,
    /// The store's name for the write, recorded when the context names no operation.
    pub(crate) verb: &'static str,
    pub(crate) change: Value,
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
pub(crate) fn audit_entry(ctx: &WriteContext, record: WriteRecord<'_>) -> AuditEntry {
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
    pub(crate) fn new(
        read: Pool<Db>,
        write: Pool<Db>,
        writes: WritePath,
        shared: Arc<Shared>,
    ) -> Self {
        Backend {
            read,
            write,
            shared,
            lookup_conns: Arc::default(),
            writes,
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
    pub(crate) fn audit_key(&self) -> Option<&AuditKey> {
        self.shared.audit_keys.current()
    }

    /// A write transaction (see `write_tx.rs`): every write of more than one statement.
    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx> {
        self.writes.begin(&self.write).await
    }

    /// The writer connection, for a single statement.
    async fn writer(&self) -> StoreResult<Writer> {
        self.writes.writer(&self.write).await
    }

    async fn begin_read(&self) -> StoreResult<ReadTx> {
        Ok(self.read.begin_with(DIALECT.begin_read).await?)
    }

    /// Commit a transaction that queued outbox work, then wake the worker(s).
    async fn commit_queued(&self, tx: WriteTx) -> StoreResult<()> {
        self.writes.commit_queued(tx).await?;
        self.queued_committed().await
    }

    /// After a commit that queued outbox work: answer only once it is durable, then wake the
    /// worker(s).
    pub(crate) async fn queued_committed(&self) -> StoreResult<()> {
        self.durable().await?;
        self.shared.outbox_notify.notify_one();
        Ok(())
    }

    /// Wait until the commits made so far are on disk (SQLite group commit; PostgreSQL's
    /// commit is already durable).
    async fn durable(&self) -> StoreResult<()> {
        self.writes.durable().await
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
            None,
        ))
        .await?;
        let entry = audit_entry(ctx, record);
        // Unless the head was read with the resource, extend the tip this process's last
        // write left, where the backend caches one (a stale one fails the commit; `create`
        // then retries).
        tx.use_cached_tip();
        tx.append_audit(&entry, now, self.audit_key()).await?;
        self.commit_queued(tx).await
    }

    /// Append `entry`, commit, and answer once it is durable: the end of an audited write that
    /// queues no outbox work (tokens, OAuth clients).
    async fn commit_audited(
        &self,
        mut tx: WriteTx,
        entry: &AuditEntry,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        tx.append_audit(entry, now, self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        let _hold = self.writes.hold().await;
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
