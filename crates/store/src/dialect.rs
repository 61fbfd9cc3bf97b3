//! The SQL text that differs between SQLite and PostgreSQL: one constant per backend
//! (`sqlite::DIALECT`, `postgres::DIALECT`). Everything else in `engine/` is the same text for
//! both (SQLite accepts `$1` placeholders too); what the backends *do* differently lives in
//! their own modules (`sqlite/`, `postgres/`), not behind flags here.

/// SQL fragments that differ between SQLite and PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Starts a write transaction.
    pub begin_write: &'static str,
    /// Starts a read transaction (one snapshot for several statements).
    pub begin_read: &'static str,
    /// Appended to a `SELECT` of one row that the transaction will update.
    pub lock_row: &'static str,
    /// Appended to the outbox claim's inner `SELECT`.
    pub skip_locked: &'static str,
}
