//! How a write transaction's statements reach SQLite: batched.
//!
//! Every statement is a hand-off to the connection's own thread and back, and the single
//! writer holds the database's write lock for the sum of those hand-offs: a POST's seven
//! statements cost the IdP more in thread switches than in SQLite. So the statements a
//! [`WriteTx`] queues go together with the next statement whose rows are needed or with the
//! COMMIT, as one multi-statement query: `BEGIN IMMEDIATE`, the resource, the outbox row and
//! the audit head go in one hand-off and the audit row and the COMMIT in a second.
//!
//! sqlx's SQLite driver runs every statement of a query string, binding `$N` by absolute
//! position (0.8; upstream has marked multi-statement queries as deprecated, see
//! launchbadge/sqlx#3108, so an upgrade must keep the store suites green on SQLite).

use super::engine::audit::audit_append_stmts;
use super::engine::write_tx::{Arg, Row, Stmt, WriteTx, bind, bind_as, map_error};
use crate::audit::{AuditEntry, AuditKey, AuditRow};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row as _};

/// Guards a statement so that it runs only if the statement before it changed a row.
pub(super) const AFTER_CHANGE: &str = "changes() = 1";

impl WriteTx {
    /// Queue a statement whose result is not needed yet.
    pub(crate) async fn defer(&mut self, stmt: Stmt) -> StoreResult<()> {
        self.pending.push(stmt);
        Ok(())
    }

    /// Run the queued statements and `stmt` in one round trip; return `stmt`'s rows.
    pub(crate) async fn fetch_all<T>(&mut self, stmt: Stmt) -> StoreResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        // Queued statements are writes without RETURNING: every row is `stmt`'s.
        self.pending.push(stmt);
        let (sql, args, unique) = self.take_batch();
        let result = bind_as(sqlx::query_as::<_, T>(&sql), &args)
            .fetch_all(self.conn.get()?)
            .await
            .map_err(|e| map_error(e, unique));
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// Run the queued statements, `first` (which must return exactly one row), `second` and
    /// `ids` in one round trip; return `first`'s row, `second`'s rows and `ids`' rows. `ids`
    /// returns one text column, which is how its rows are told from `second`'s: `second` must
    /// return more than one column.
    pub(super) async fn fetch_one_then_all<A, B>(
        &mut self,
        first: Stmt,
        second: Stmt,
        ids: Option<Stmt>,
    ) -> StoreResult<(A, Vec<B>, Vec<String>)>
    where
        A: for<'r> FromRow<'r, Row> + Send + Unpin,
        B: for<'r> FromRow<'r, Row> + Send + Unpin,
    {
        self.pending.push(first);
        self.pending.push(second);
        self.pending.extend(ids);
        let (sql, args, unique) = self.take_batch();
        let result = match bind(sqlx::query(&sql), &args)
            .fetch_all(self.conn.get()?)
            .await
        {
            Ok(rows) => split_rows(&rows),
            Err(e) => Err(map_error(e, unique)),
        };
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// Run what is queued, in one round trip.
    pub(crate) async fn flush(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (sql, args, unique) = self.take_batch();
        let result = bind(sqlx::query(&sql), &args)
            .execute(self.conn.get()?)
            .await
            .map(|_| ())
            .map_err(|e| map_error(e, unique));
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// The queued statements as one query. From here on the connection may be inside a
    /// transaction.
    fn take_batch(&mut self) -> (String, Vec<Arg>, Option<String>) {
        self.begun = true;
        join(&std::mem::take(&mut self.pending))
    }

    /// [`WriteTx::append_audit`] on the cached tip, appended only if the statement before it
    /// changed a row (see `Backend::add_one_member`). `None` when no tip is cached. The tip
    /// becomes this record only if [`WriteTx::commit_returning`] finds that it was appended.
    pub(super) async fn append_audit_after_change(
        &mut self,
        entry: &AuditEntry,
        now: DateTime<Utc>,
        key: Option<&AuditKey>,
    ) -> StoreResult<Option<AuditRow>> {
        let Some((seq, prev_hash)) = self.tip.cached() else {
            return Ok(None);
        };
        let row = AuditRow::chained(entry, seq + 1, now, prev_hash, key);
        for stmt in audit_append_stmts(&row, Some(AFTER_CHANGE)) {
            self.defer(stmt).await?;
        }
        self.next_tip = Some((row.seq, row.hash.clone()));
        Ok(Some(row))
    }

    /// Run what is queued and COMMIT in one round trip, returning the rows the statements
    /// returned. The cached audit tip becomes this transaction's only if `extended` finds in
    /// the rows that the statements appended the audit row (they may be written to change
    /// nothing, see `Backend::add_one_member`).
    pub(super) async fn commit_returning(
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
        let appended = extended(&rows);
        self.committed(appended);
        Ok(rows)
    }
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
