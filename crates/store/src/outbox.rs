//! The outbox: the worker's queue of resources to reconcile with Coder.
//!
//! A row says *which* resource to reconcile, not what changed; the worker reads the desired
//! state from the store and the actual state from Coder and applies the difference. There is
//! at most one row per resource: a new write to a resource already queued bumps the row's
//! `generation` instead of adding a row, so a burst of PATCHes costs one reconcile.

use chrono::{DateTime, Utc};
use scim::ResourceKind;
use std::sync::Arc;
use tokio::sync::Notify;

/// The PostgreSQL channel other replicas `LISTEN` on for new outbox work.
pub const OUTBOX_CHANNEL: &str = "scim_bridge_outbox";

/// How urgently a resource must be reconciled. Claims take higher priorities first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutboxPriority {
    /// Bulk work: creates, profile updates, membership changes, drift repair.
    Normal,
    /// Offboarding (a user's `active` going true→false, or a user DELETE): access must end
    /// before anything else is synced.
    Offboarding,
}

impl OutboxPriority {
    pub(crate) fn as_i32(self) -> i32 {
        match self {
            OutboxPriority::Normal => 0,
            OutboxPriority::Offboarding => 100,
        }
    }
}

impl From<i32> for OutboxPriority {
    /// The stored priority column; values between the known ones round down.
    fn from(value: i32) -> Self {
        if value >= OutboxPriority::Offboarding.as_i32() {
            OutboxPriority::Offboarding
        } else {
            OutboxPriority::Normal
        }
    }
}

/// One queued resource, as claimed or listed: an `outbox` row, decoded straight from its
/// columns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub id: i64,
    #[sqlx(try_from = "crate::resource::KindName")]
    pub kind: ResourceKind,
    pub resource_id: String,
    #[sqlx(try_from = "i32")]
    pub priority: OutboxPriority,
    /// Bumped by every write that coalesced into this row. [`crate::Outbox::complete`]
    /// only removes the row if no write came in after the claim.
    pub generation: i64,
    /// When the resource was first queued (coalescing keeps it, for FIFO fairness).
    pub enqueued_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    /// Failed attempts so far; the worker derives its backoff from it.
    pub attempts: i32,
    pub last_error: Option<String>,
    pub leased_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    pub dead_reason: Option<String>,
}

/// What [`crate::Outbox::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The row was removed: Coder now matches the state the worker read.
    Removed,
    /// A write came in after the claim; the row stays, released, so the newer state is applied.
    NewerChangePending,
}

/// Queue health for `/metrics` and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows waiting or in progress (not dead).
    pub depth: i64,
    /// Age of the oldest waiting row.
    pub oldest_age: Option<chrono::Duration>,
    /// Waiting rows that have failed at least once.
    pub retrying: i64,
    /// Dead-lettered rows.
    pub dead: i64,
}

/// Which rows [`crate::OutboxReader::list`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    All,
    /// Not dead.
    Pending,
    /// Not dead and failed at least once.
    Retrying,
    Dead,
}

/// Which rows [`crate::Outbox::retry`] makes due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryTarget {
    One(i64),
    AllDead,
}

/// Wake-ups for the worker: the in-process notification fired after every commit that queued
/// work, plus (on PostgreSQL) notifications from other replicas.
pub struct OutboxWakeups {
    pub(crate) local: Arc<Notify>,
    pub(crate) remote: Option<sqlx::postgres::PgListener>,
}

impl OutboxWakeups {
    /// Wait until new outbox work may be available. Spurious wake-ups are possible; the worker
    /// claims and finds nothing. A lost PostgreSQL connection is re-established by the listener
    /// on the next call, and a wake-up is reported so nothing queued meanwhile waits for a poll.
    pub async fn wait(&mut self) {
        match &mut self.remote {
            None => self.local.notified().await,
            Some(listener) => {
                tokio::select! {
                    () = self.local.notified() => {}
                    received = listener.try_recv() => {
                        if let Err(error) = received {
                            tracing::warn!(%error, "outbox LISTEN connection failed; reconnecting");
                        }
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for OutboxWakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxWakeups")
            .field("remote", &self.remote.is_some())
            .finish()
    }
}
