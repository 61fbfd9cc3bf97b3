//! Where a consumer of the live audit stream (the SIEM webhook) stands.
//!
//! Records are delivered in `seq` order, which is commit order: every append locks the chain's
//! tip (`audit_head`) until it commits, so record N+1 never becomes visible before record N.
//! A sink's cursor is the last `seq` its receiver acknowledged; it only moves forward, and only
//! for the replica holding the sink's lease, so a restart resumes after the last acknowledged
//! record (no record skipped) and at most the unacknowledged batch is sent again.

use chrono::{DateTime, Utc};

/// One sink's row: its cursor, its lease and its last failure.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryCursor {
    /// The sink's name (`webhook`).
    pub sink: String,
    /// The last record the receiver acknowledged (0: none yet).
    pub cursor_seq: i64,
    /// When the cursor last moved.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The replica that delivers now, while `lease_until` lies ahead.
    pub leased_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Failed attempts since the cursor last moved.
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// How far a sink is behind the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLag {
    /// The sink's cursor (0 when the sink has no row yet).
    pub cursor_seq: i64,
    /// The newest record's seq.
    pub head_seq: i64,
    /// When the oldest record not yet acknowledged was written; `None` when caught up.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl DeliveryLag {
    /// Records written but not acknowledged.
    pub fn pending(&self) -> i64 {
        (self.head_seq - self.cursor_seq).max(0)
    }
}
