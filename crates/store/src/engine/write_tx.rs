//! The write transaction: every write of more than one statement.
//!
//! Statements whose result is not needed yet are queued (`defer`) and sent with the next
//! statement whose rows are needed (`fetch_all`) or with the COMMIT. How the queue reaches the
//! database is the backend's, chosen at compile time: SQLite sends it as one multi-statement
//! query, one hand-off to the connection's thread (`sqlite/batch.rs`); PostgreSQL sends each
//! statement as it comes (`postgres/writes.rs`). The backend's `WritePath` begins the
//! transaction and takes the writer (on SQLite, from its lot: `sqlite/writer.rs`).
//!
//! The transaction owns the audit chain's head as it knows it, and the backend's cached tip
//! ([`HeldTip`]: SQLite keeps the tip between writes, PostgreSQL keeps none), so no caller
//! forgets or updates the cache by hand: a commit that appended sets it, a failure forgets it.
//!
//! Not a `sqlx::Transaction`: BEGIN is itself deferred. If the transaction is dropped after
//! BEGIN was sent and before it ended (a cancelled request, an error returned midway), its
//! connection is rolled back in a task of its own before the next writer gets it, or closed
//! if that cannot be done (see `Writer::roll_back_later`).

use super::audit::{audit_append_stmts, audit_head_stmt};
use super::{DIALECT, Db, HeldTip};
use crate::audit::{AuditEntry, AuditKey, AuditRow};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::pool::PoolConnection;
use std::borrow::Cow;
use tokio::sync::OwnedMutexGuard;

/// The audit chain's tip, as `(seq, hash)`.
pub(crate) type AuditTip = Option<(i64, String)>;

pub(crate) type Row = <Db as sqlx::Database>::Row;
type Conn = <Db as sqlx::Database>::Connection;

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(i64),
    Bool(Option<bool>),
    Time(DateTime<Utc>),
}

/// One statement with its arguments (written with `$1`, `$2`, … of its own).
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
    /// The 409 detail to report if this statement hits a unique index.
    pub(crate) unique: Option<String>,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Stmt {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
            unique: None,
        }
    }

    pub(crate) fn text(mut self, value: impl Into<String>) -> Stmt {
        self.args.push(Arg::Text(Some(value.into())));
        self
    }

    pub(crate) fn opt_text(mut self, value: Option<impl Into<String>>) -> Stmt {
        self.args.push(Arg::Text(value.map(Into::into)));
        self
    }

    pub(crate) fn int(mut self, value: i64) -> Stmt {
        self.args.push(Arg::Int(value));
        self
    }

    pub(crate) fn opt_bool(mut self, value: Option<bool>) -> Stmt {
        self.args.push(Arg::Bool(value));
        self
    }

    pub(crate) fn time(mut self, value: DateTime<Utc>) -> Stmt {
        self.args.push(Arg::Time(value));
        self
    }

    /// A unique-index violation of this statement is a 409 with `detail`.
    pub(crate) fn unique(mut self, detail: String) -> Stmt {
        self.unique = Some(detail);
        self
    }

    /// Run alone on `conn`.
    pub(crate) async fn execute(self, conn: &mut Conn) -> StoreResult<u64> {
        let unique = self.unique.clone();
        let query = bind(sqlx::query(&self.sql), &self.args);
        match query.execute(&mut *conn).await {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => Err(map_error(e, unique)),
        }
    }

    /// Run alone on `conn` and read its rows.
    pub(crate) async fn fetch_all<T>(self, conn: &mut Conn) -> StoreResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        let unique = self.unique.clone();
        let query = bind_as(sqlx::query_as::<_, T>(&self.sql), &self.args);
        query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| map_error(e, unique))
    }
}

pub(crate) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;
pub(crate) type QueryAs<'q, T> =
    sqlx::query::QueryAs<'q, Db, T, <Db as sqlx::Database>::Arguments<'q>>;

// `Query` and `QueryAs` share `bind` by name only, not by trait.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Time(v) => query.bind(*v),
            };
        }
        query
    }};
}

pub(crate) fn bind<'q>(query: Query<'q>, args: &'q [Arg]) -> Query<'q> {
    bind_args!(query, args)
}

pub(crate) fn bind_as<'q, T>(query: QueryAs<'q, T>, args: &'q [Arg]) -> QueryAs<'q, T> {
    bind_args!(query, args)
}

pub(crate) fn map_error(error: sqlx::Error, unique: Option<String>) -> StoreError {
    match (&error, unique) {
        (sqlx::Error::Database(db), Some(detail))
            if db.is_unique_violation() && !is_audit_conflict(db.as_ref()) =>
        {
            StoreError::Uniqueness(detail)
        }
        _ => StoreError::Database(error),
    }
}

/// An audit record whose `seq` is taken: the cached tip was stale (another process appended).
fn is_audit_conflict(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.is_unique_violation() && db.message().contains("audit_log")
}

/// Whether `error` is [`is_audit_conflict`].
pub(crate) fn audit_tip_was_stale(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(db)) if is_audit_conflict(db.as_ref()))
}

/// Where a writer's connection goes back to when it is dropped: SQLite's writer lot
/// (`sqlite/writer.rs`), or nowhere but its pool.
pub(crate) type Slot = OwnedMutexGuard<Option<PoolConnection<Db>>>;

/// The writer's connection, held: dropped, it goes back to its slot (if any) for the next
/// taker, else to the pool.
#[derive(Default)]
pub(crate) struct Writer {
    conn: Option<PoolConnection<Db>>,
    slot: Option<Slot>,
    /// Inside a transaction that did not end: closed on drop, never kept or pooled.
    open: bool,
}

impl Writer {
    pub(crate) fn new(conn: PoolConnection<Db>, slot: Option<Slot>) -> Writer {
        Writer {
            conn: Some(conn),
            slot,
            open: false,
        }
    }

    pub(crate) fn get(&mut self) -> StoreResult<&mut Conn> {
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(StoreError::Database(sqlx::Error::PoolClosed)),
        }
    }

    fn ended(&mut self, ended: bool) {
        self.open = !ended;
    }

    /// Roll back the transaction the connection was left in (a request cancelled, or an
    /// error returned, midway), in a task of its own, and keep the connection after; the next
    /// writer waits for that in the lot's queue. Without a runtime to run it on, or if the
    /// ROLLBACK fails, the connection is closed instead, which rolls the transaction back too.
    fn roll_back_later(mut self) {
        self.open = true;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let ended = match self.get() {
                    Ok(conn) => sqlx::query("ROLLBACK").execute(conn).await.is_ok(),
                    Err(_) => false,
                };
                self.ended(ended);
            });
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.open
            && let Some(mut conn) = self.conn.take()
        {
            conn.close_on_drop();
        }
        if let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.as_mut()) {
            **slot = Some(conn);
        }
    }
}

/// A write transaction on the write pool; see the module documentation. The sending methods
/// (`defer`, `fetch_all`, `flush`) are the backend's.
pub(crate) struct WriteTx {
    pub(crate) conn: Writer,
    pub(crate) pending: Vec<Stmt>,
    /// BEGIN has been sent (or may have been): the connection is inside a transaction until
    /// COMMIT or ROLLBACK succeeds.
    pub(crate) begun: bool,
    pub(crate) finished: bool,
    /// The audit chain's head as this transaction knows it: read with its first statement
    /// (SQLite's `select_for_write`), taken from the cached tip (`WriteTx::use_cached_tip`),
    /// or the record it appended last.
    pub(crate) audit_head: AuditTip,
    /// The backend's cached tip, held from after the connection is taken to the end. Only
    /// this type reads or changes it.
    pub(crate) tip: HeldTip,
    /// The tip this transaction's COMMIT makes.
    pub(crate) next_tip: AuditTip,
}

impl WriteTx {
    /// A transaction on the writer `conn`, with the cached tip held (taken after the
    /// connection, so writers take both in the same order).
    pub(crate) fn new(conn: Writer, tip: HeldTip) -> WriteTx {
        WriteTx {
            conn,
            pending: vec![Stmt::new(DIALECT.begin_write)],
            begun: false,
            finished: false,
            audit_head: None,
            tip,
            next_tip: None,
        }
    }

    pub(crate) async fn fetch_optional<T>(&mut self, stmt: Stmt) -> StoreResult<Option<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Let the next append extend the tip this process's last write left instead of reading
    /// the head (nothing when the backend caches no tip, or none is known). The commit itself
    /// checks it: a stale tip (another process appended) makes the record's seq collide, and
    /// the commit fails with an error [`audit_tip_was_stale`] recognises, after which the tip
    /// is forgotten.
    pub(crate) fn use_cached_tip(&mut self) {
        if self.audit_head.is_none() {
            self.audit_head = self.tip.cached();
        }
    }

    /// Append `entry` to the audit chain in this transaction, chained on the head this
    /// transaction knows or else on the head read now: with a row lock on PostgreSQL, under
    /// the single writer on SQLite, so concurrent appends form one linear chain. Appended last
    /// in a transaction, so the lock is held only until the commit that follows. The record is
    /// written with the next statement sent or with the COMMIT; the cached tip becomes this
    /// record if the transaction commits.
    pub(crate) async fn append_audit(
        &mut self,
        entry: &AuditEntry,
        now: DateTime<Utc>,
        key: Option<&AuditKey>,
    ) -> StoreResult<AuditRow> {
        let (seq, prev_hash) = match self.audit_head.take() {
            Some(head) => head,
            None => self
                .fetch_optional(audit_head_stmt())
                .await?
                .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?,
        };
        let row = AuditRow::chained(entry, seq + 1, now, prev_hash, key);
        for stmt in audit_append_stmts(&row, None) {
            self.defer(stmt).await?;
        }
        self.audit_head = Some((row.seq, row.hash.clone()));
        self.next_tip.clone_from(&self.audit_head);
        Ok(row)
    }

    /// The connection, with everything queued run first, for statements written directly
    /// against sqlx.
    pub(crate) async fn conn(&mut self) -> StoreResult<&mut Conn> {
        self.flush().await?;
        self.conn.get()
    }

    /// After a failed statement: roll back now, so the connection goes back to the lot (or
    /// the pool) clean, and return the error.
    pub(crate) async fn abort(&mut self, error: StoreError) -> StoreError {
        self.pending.clear();
        self.tip.forget();
        if let Ok(conn) = self.conn.get()
            && sqlx::query("ROLLBACK").execute(conn).await.is_ok()
        {
            self.finished = true;
        }
        error
    }

    /// Run what is queued, then COMMIT.
    pub(crate) async fn commit(mut self) -> StoreResult<()> {
        self.pending.push(Stmt::new("COMMIT"));
        self.flush().await?;
        self.committed(true);
        Ok(())
    }

    /// The COMMIT succeeded: the cached tip becomes the record this transaction appended,
    /// if it did and `appended` confirms it.
    pub(crate) fn committed(&mut self, appended: bool) {
        self.finished = true;
        if let Some(next) = self.next_tip.take()
            && appended
        {
            self.tip.set(next);
        }
    }

    /// Drop what is queued and roll back (nothing is sent if BEGIN never was).
    pub(crate) async fn rollback(mut self) -> StoreResult<()> {
        self.pending.clear();
        if self.begun {
            sqlx::query("ROLLBACK").execute(self.conn.get()?).await?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.begun && !self.finished {
            self.tip.forget();
            // Returning the connection as it is would hand the next writer a transaction (and
            // on SQLite the write lock).
            std::mem::take(&mut self.conn).roll_back_later();
        }
    }
}
