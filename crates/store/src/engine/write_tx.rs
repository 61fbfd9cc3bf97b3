//! The write transaction of the SCIM resource paths, which sends its statements in as few
//! round trips as it can.
//!
//! On SQLite every statement is a hand-off to the connection's own thread and back, and the
//! single writer holds the database's write lock for the sum of those hand-offs: a POST's seven
//! statements cost the IdP more in thread switches than in SQLite. So statements whose result
//! is not needed yet are queued (`defer`) and sent together with the next statement whose
//! rows are needed (`fetch`) or with the COMMIT, as one multi-statement query: `BEGIN
//! IMMEDIATE`, the resource, the outbox row and the audit head go in one hand-off and the audit
//! row and the COMMIT in a second. On PostgreSQL (`DIALECT.batch` is false) each statement is
//! sent as it comes, as before.
//!
//! sqlx's SQLite driver runs every statement of a query string, binding `$N` by absolute
//! position (0.8; upstream has marked multi-statement queries as deprecated, see
//! launchbadge/sqlx#3108, so an upgrade must keep the store suites green on SQLite).
//!
//! Not a `sqlx::Transaction`: BEGIN is itself deferred. If the transaction is dropped after
//! BEGIN was sent and before it ended (a cancelled request, an error returned midway), its
//! connection is rolled back in a task of its own before the next writer gets it, or closed
//! if that cannot be done (see `Writer::roll_back_later`).
//!
//! On SQLite the writer's connection is kept in the [`WriterLot`] between transactions, not
//! returned to the pool: sqlx 0.8 pings a connection on every return to its pool, one more
//! hand-off that would hold the single writer, and the lot's queue hands the connection
//! straight to the next writer in line. Every other taker of the writer goes through the lot
//! too ([`WriterLot::take`], [`WriterLot::hold`]).

use super::audit::{audit_append_stmts, audit_head_stmt};
use super::{DIALECT, Db, Guard};
use crate::audit::{AuditEntry, AuditKey, AuditRow};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{FromRow, Pool, Row as _};
use std::borrow::Cow;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The audit chain's tip, as `(seq, hash)`.
pub(crate) type AuditTip = Option<(i64, String)>;

type Row = <Db as sqlx::Database>::Row;
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
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// The 409 detail to report if this statement hits a unique index.
    unique: Option<String>,
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

type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;
type QueryAs<'q, T> = sqlx::query::QueryAs<'q, Db, T, <Db as sqlx::Database>::Arguments<'q>>;

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

fn bind<'q>(query: Query<'q>, args: &'q [Arg]) -> Query<'q> {
    bind_args!(query, args)
}

fn bind_as<'q, T>(query: QueryAs<'q, T>, args: &'q [Arg]) -> QueryAs<'q, T> {
    bind_args!(query, args)
}

fn map_error(error: sqlx::Error, unique: Option<String>) -> StoreError {
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

/// `sql` with every `$N` outside quotes renumbered to `$(N + offset)`.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut n = 0usize;
                let mut digits = false;
                while let Some(&(_, d)) = chars.peek() {
                    let Some(v) = d.to_digit(10) else { break };
                    n = n * 10 + v as usize;
                    digits = true;
                    chars.next();
                }
                if digits {
                    out.push_str(&(n + offset).to_string());
                }
            }
            _ => {}
        }
    }
}

/// Several statements as one query string with one argument list.
fn join(stmts: &[Stmt]) -> (String, Vec<Arg>, Option<String>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    let mut unique = None;
    for stmt in stmts {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        renumber(&stmt.sql, args.len(), &mut sql);
        args.extend(stmt.args.iter().cloned());
        if stmt.unique.is_some() {
            unique.clone_from(&stmt.unique);
        }
    }
    (sql, args, unique)
}

/// The first row as `A`; of the rest, one-column rows are `ids` and the others `B`.
fn split_rows<A, B>(rows: &[Row]) -> StoreResult<(A, Vec<B>, Vec<String>)>
where
    A: for<'r> FromRow<'r, Row>,
    B: for<'r> FromRow<'r, Row>,
{
    let (first, rest) = rows
        .split_first()
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    let first = A::from_row(first)?;
    let mut all = Vec::new();
    let mut ids = Vec::new();
    for row in rest {
        if row.len() == 1 {
            ids.push(row.try_get(0)?);
        } else {
            all.push(B::from_row(row)?);
        }
    }
    Ok((first, all, ids))
}

/// The SQLite writer between write transactions (see the module documentation). On
/// PostgreSQL, whose write pool has many connections, it only passes the pool through.
#[derive(Debug, Default, Clone)]
pub(crate) struct WriterLot {
    /// The writer's connection, kept here once a taker has had it. Takers queue on the lock
    /// in order, so a finished writer hands the connection straight to the next one.
    slot: Arc<Mutex<Option<PoolConnection<Db>>>>,
}

/// Keeps the writer's other takers out while a caller uses the write pool directly.
pub(crate) struct Hold {
    _slot: Option<OwnedMutexGuard<Option<PoolConnection<Db>>>>,
}

impl WriterLot {
    /// For a caller that uses the pool directly (`Pool::begin_with`, migrations): the kept
    /// connection goes back to the pool, and no taker gets the writer until the `Hold` is
    /// dropped. A taker after that waits on the pool until the caller has returned it.
    pub(crate) async fn hold(&self) -> Hold {
        if !DIALECT.batch {
            return Hold { _slot: None };
        }
        let mut slot = self.slot.clone().lock_owned().await;
        drop(slot.take());
        Hold { _slot: Some(slot) }
    }

    /// The writer: next in line for the kept connection, or the pool's.
    pub(crate) async fn take(&self, pool: &Pool<Db>) -> StoreResult<Writer> {
        if !DIALECT.batch {
            return Ok(Writer::new(pool.acquire().await?, None));
        }
        let mut slot = self.slot.clone().lock_owned().await;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        Ok(Writer::new(conn, Some(slot)))
    }
}

/// The writer's connection, held: dropped, it goes back to the lot for the next taker.
#[derive(Default)]
pub(crate) struct Writer {
    conn: Option<PoolConnection<Db>>,
    slot: Option<OwnedMutexGuard<Option<PoolConnection<Db>>>>,
    /// Inside a transaction that did not end: closed on drop, never kept or pooled.
    open: bool,
}

impl Writer {
    fn new(
        conn: PoolConnection<Db>,
        slot: Option<OwnedMutexGuard<Option<PoolConnection<Db>>>>,
    ) -> Writer {
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

/// A write transaction on the write pool; see the module documentation.
pub(crate) struct WriteTx {
    conn: Writer,
    pending: Vec<Stmt>,
    /// BEGIN has been sent (or may have been): the connection is inside a transaction until
    /// COMMIT or ROLLBACK succeeds.
    begun: bool,
    finished: bool,
    /// The audit chain's head as this transaction knows it: read with its first statement
    /// (see `WriteTx::head_was_read`), taken from the cache (`WriteTx::use_cached_tip`), or
    /// the record it appended last.
    audit_head: AuditTip,
    /// On SQLite, the cached tip, held from after the connection is acquired to the end. Only
    /// this type reads or changes it: a commit that appended sets it, a failure forgets it.
    tip: Option<OwnedMutexGuard<AuditTip>>,
    /// The tip this transaction's COMMIT makes.
    next_tip: AuditTip,
}

impl WriteTx {
    /// `tip` is the cache of the audit chain's tip (SQLite only): locked after the connection,
    /// so writers take both in the same order.
    pub(crate) async fn begin(
        pool: &Pool<Db>,
        lot: &WriterLot,
        tip: Option<&Arc<Mutex<AuditTip>>>,
    ) -> StoreResult<WriteTx> {
        let conn = lot.take(pool).await?;
        let tip = match tip {
            Some(tip) => Some(tip.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteTx {
            conn,
            pending: vec![Stmt::new(DIALECT.begin_write)],
            begun: false,
            finished: false,
            audit_head: None,
            tip,
            next_tip: None,
        })
    }

    /// Queue a statement whose result is not needed (run now on PostgreSQL).
    pub(crate) async fn defer(&mut self, stmt: Stmt) -> StoreResult<()> {
        self.pending.push(stmt);
        if !DIALECT.batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// Run the queued statements and `stmt`; return `stmt`'s rows.
    pub(crate) async fn fetch_all<T>(&mut self, stmt: Stmt) -> StoreResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        let result = if DIALECT.batch {
            // Queued statements are writes without RETURNING: every row is `stmt`'s.
            self.pending.push(stmt);
            let (sql, args, unique) = self.take_batch();
            bind_as(sqlx::query_as::<_, T>(&sql), &args)
                .fetch_all(self.conn.get()?)
                .await
                .map_err(|e| map_error(e, unique))
        } else {
            self.flush().await?;
            self.begun = true;
            stmt.fetch_all(self.conn.get()?).await
        };
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// Run the queued statements, `first` (which must return exactly one row), `second` and
    /// `ids` in one round trip where the backend allows; return `first`'s row, `second`'s rows
    /// and `ids`' rows. `ids` returns one text column, which is how its rows are told from
    /// `second`'s: `second` must return more than one column.
    pub(crate) async fn fetch_one_then_all<A, B>(
        &mut self,
        first: Stmt,
        second: Stmt,
        ids: Option<Stmt>,
    ) -> StoreResult<(A, Vec<B>, Vec<String>)>
    where
        A: for<'r> FromRow<'r, Row> + Send + Unpin,
        B: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        let result = if DIALECT.batch {
            self.pending.push(first);
            self.pending.push(second);
            self.pending.extend(ids);
            let (sql, args, unique) = self.take_batch();
            match bind(sqlx::query(&sql), &args)
                .fetch_all(self.conn.get()?)
                .await
            {
                Ok(rows) => split_rows(&rows),
                Err(e) => Err(map_error(e, unique)),
            }
        } else {
            self.flush().await?;
            self.begun = true;
            let conn = self.conn.get()?;
            async {
                let mut one = first.fetch_all::<A>(&mut *conn).await?;
                if one.len() != 1 {
                    return Err(StoreError::Database(sqlx::Error::RowNotFound));
                }
                let all = second.fetch_all::<B>(&mut *conn).await?;
                let ids: Vec<(String,)> = match ids {
                    Some(stmt) => stmt.fetch_all(conn).await?,
                    None => Vec::new(),
                };
                Ok((
                    one.remove(0),
                    all,
                    ids.into_iter().map(|(id,)| id).collect(),
                ))
            }
            .await
        };
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.abort(e).await),
        }
    }

    pub(crate) async fn fetch_optional<T>(&mut self, stmt: Stmt) -> StoreResult<Option<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// The cached audit tip, if there is one.
    fn cached_tip(&self) -> AuditTip {
        self.tip.as_ref().and_then(|tip| (**tip).clone())
    }

    /// The audit chain's head, read by this transaction (with its first statement).
    pub(crate) fn head_was_read(&mut self, head: (i64, String)) {
        self.audit_head = Some(head);
    }

    /// Let the next append extend the tip this process's last write left instead of reading
    /// the head (SQLite; nothing when no tip is cached). The commit itself checks it: a stale
    /// tip (another process appended) makes the record's seq collide, and the commit fails
    /// with an error [`audit_tip_was_stale`] recognises, after which the tip is forgotten.
    pub(crate) fn use_cached_tip(&mut self) {
        if self.audit_head.is_none() {
            self.audit_head = self.cached_tip();
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
        for stmt in audit_append_stmts(&row, Guard::Always) {
            self.defer(stmt).await?;
        }
        self.audit_head = Some((row.seq, row.hash.clone()));
        self.next_tip.clone_from(&self.audit_head);
        Ok(row)
    }

    /// [`WriteTx::append_audit`] on the cached tip, appended only if the statement before it
    /// changed a row (SQLite's `changes()`; see `Backend::add_one_member`). `None` when no
    /// tip is cached. The tip becomes this record only if [`WriteTx::commit_returning`] finds
    /// that it was appended.
    pub(crate) async fn append_audit_after_change(
        &mut self,
        entry: &AuditEntry,
        now: DateTime<Utc>,
        key: Option<&AuditKey>,
    ) -> StoreResult<Option<AuditRow>> {
        let Some((seq, prev_hash)) = self.cached_tip() else {
            return Ok(None);
        };
        let row = AuditRow::chained(entry, seq + 1, now, prev_hash, key);
        for stmt in audit_append_stmts(&row, Guard::AfterChange) {
            self.defer(stmt).await?;
        }
        self.next_tip = Some((row.seq, row.hash.clone()));
        Ok(Some(row))
    }

    /// The connection, with everything queued run first, for statements written directly
    /// against sqlx.
    pub(crate) async fn conn(&mut self) -> StoreResult<&mut Conn> {
        self.flush().await?;
        self.conn.get()
    }

    /// The queued statements as one query. From here on the connection may be inside a
    /// transaction.
    fn take_batch(&mut self) -> (String, Vec<Arg>, Option<String>) {
        self.begun = true;
        join(&std::mem::take(&mut self.pending))
    }

    /// Run what is queued.
    async fn flush(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = if DIALECT.batch {
            let (sql, args, unique) = self.take_batch();
            bind(sqlx::query(&sql), &args)
                .execute(self.conn.get()?)
                .await
                .map(|_| ())
                .map_err(|e| map_error(e, unique))
        } else {
            self.begun = true;
            let mut result = Ok(());
            for stmt in std::mem::take(&mut self.pending) {
                if let Err(e) = stmt.execute(self.conn.get()?).await {
                    result = Err(e);
                    break;
                }
            }
            result
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// After a failed statement: roll back now, so the connection goes back to the lot (or
    /// the pool) clean, and return the error.
    async fn abort(&mut self, error: StoreError) -> StoreError {
        self.pending.clear();
        self.forget_tip();
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
        self.finished = true;
        if let (Some(tip), Some(next)) = (self.tip.as_mut(), self.next_tip.take()) {
            **tip = Some(next);
        }
        Ok(())
    }

    /// Run what is queued and COMMIT in one round trip (SQLite), returning the rows the
    /// statements returned. The cached audit tip becomes this transaction's only if
    /// `extended` finds in the rows that the statements appended the audit row (they may be
    /// written to change nothing, see `Backend::add_one_member`).
    pub(crate) async fn commit_returning(
        mut self,
        extended: impl FnOnce(&[Row]) -> bool,
    ) -> StoreResult<Vec<Row>> {
        self.pending.push(Stmt::new("COMMIT"));
        let (sql, args, unique) = self.take_batch();
        let result = bind(sqlx::query(&sql), &args)
            .fetch_all(self.conn.get()?)
            .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => return Err(self.abort(map_error(e, unique)).await),
        };
        self.finished = true;
        if let (Some(tip), Some(next)) = (self.tip.as_mut(), self.next_tip.take())
            && extended(&rows)
        {
            **tip = Some(next);
        }
        Ok(rows)
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

impl WriteTx {
    fn forget_tip(&mut self) {
        if let Some(tip) = self.tip.as_mut() {
            **tip = None;
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.begun && !self.finished {
            self.forget_tip();
            // Returning the connection as it is would hand the next writer a transaction (and
            // on SQLite the write lock).
            std::mem::take(&mut self.conn).roll_back_later();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        let mut out = String::new();
        renumber(
            "UPDATE t SET a = $1, b = '$2' WHERE c = $2 AND d = $10",
            3,
            &mut out,
        );
        assert_eq!(
            out,
            "UPDATE t SET a = $4, b = '$2' WHERE c = $5 AND d = $13"
        );
    }

    #[test]
    fn joined_statements_number_their_arguments_in_sequence() {
        let stmts = [
            Stmt::new("BEGIN IMMEDIATE"),
            Stmt::new("INSERT INTO a VALUES ($1, $2)").text("x").int(1),
            Stmt::new("UPDATE b SET c = $1")
                .unique("taken".into())
                .int(2),
        ];
        let (sql, args, unique) = join(&stmts);
        assert_eq!(
            sql,
            "BEGIN IMMEDIATE;\nINSERT INTO a VALUES ($1, $2);\nUPDATE b SET c = $3"
        );
        assert_eq!(args.len(), 3);
        assert_eq!(unique.as_deref(), Some("taken"));
    }
}
