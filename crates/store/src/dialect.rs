//! The few places where the SQL of the two backends differs. Everything else in
//! `engine/` is the same text for both (SQLite accepts `$1` placeholders too).

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
    /// Run inside a transaction that queued outbox work; `$1` is the channel.
    pub notify: Option<&'static str>,
    /// Write transactions send queued statements as one multi-statement query
    /// (`write_tx.rs`): SQLite, where each statement is a hand-off to another thread.
    pub batch: bool,
}
