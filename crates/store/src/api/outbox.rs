use crate::on_backend;
use crate::{
    Completion, OutboxEvent, OutboxFilter, OutboxPriority, OutboxStats, OutboxWakeups, RetryTarget,
    Store, StoreResult,
};
use chrono::{DateTime, Duration, Utc};
use scim::ResourceKind;
use std::sync::Arc;
use tokio::sync::Notify;

/// The outbox: which resources the Coder worker must reconcile, with their leases, retries
/// and dead letters. The worker and the operator's commands use it.
#[derive(Debug, Clone)]
pub struct Outbox {
    reader: OutboxReader,
}

/// What the outbox holds, without changing it: what `/metrics` and `/readyz` read.
#[derive(Debug, Clone)]
pub struct OutboxReader {
    store: Store,
}

impl Outbox {
    pub(crate) fn new(store: Store) -> Outbox {
        Outbox {
            reader: OutboxReader { store },
        }
    }

    fn store(&self) -> &Store {
        &self.reader.store
    }

    /// The read-only view of the same outbox.
    pub fn reader(&self) -> OutboxReader {
        self.reader.clone()
    }

    /// [`OutboxReader::stats`].
    pub async fn stats(&self) -> StoreResult<OutboxStats> {
        self.reader.stats().await
    }

    /// [`OutboxReader::list`].
    pub async fn list(&self, filter: OutboxFilter, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        self.reader.list(filter, limit).await
    }

    /// Queue a resource for reconciliation outside a SCIM write (drift repair, operator).
    pub async fn enqueue(
        &self,
        kind: ResourceKind,
        id: &str,
        priority: OutboxPriority,
    ) -> StoreResult<()> {
        on_backend!(self.store(), b => b.enqueue(kind, id, priority).await)
    }

    /// Lease up to `limit` due rows to `worker_id` for `lease`: highest priority first, then
    /// oldest. Rows whose lease ran out are taken over. On PostgreSQL, rows another replica is
    /// claiming are skipped (`FOR UPDATE SKIP LOCKED`).
    pub async fn claim(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(self.store(), b => b.outbox_claim(worker_id, lease, limit, None).await)
    }

    /// As [`Outbox::claim`], but every row claimed has one priority: the highest that has a
    /// due row (offboarding rows are claimed, alone, before any other), and nothing when that
    /// is below `at_least` (the worker claims only offboarding rows while one is in flight).
    pub async fn claim_priority(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        at_least: OutboxPriority,
    ) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(self.store(), b => b.outbox_claim(worker_id, lease, limit, Some(at_least)).await)
    }

    /// Make every waiting row due now, keeping its attempt count: Coder is back after an
    /// outage, so what waited for it should not wait out a backoff. Returns how many.
    pub async fn due_now(&self) -> StoreResult<u64> {
        on_backend!(self.store(), b => b.outbox_due_now().await)
    }

    /// The worker applied the state it read: remove the row, unless a write came in after the
    /// claim, in which case the row is released to run again.
    pub async fn complete(&self, event: &OutboxEvent) -> StoreResult<Completion> {
        on_backend!(self.store(), b => b.outbox_complete(event).await)
    }

    /// The attempt failed: count it, record `error`, release the lease, and retry at
    /// `next_attempt_at` (the worker computes the backoff). A row a newer write touched since
    /// the claim is due at once instead. Nothing changes when this worker no longer held the
    /// lease (it expired and another worker took the row over).
    pub async fn fail(
        &self,
        event: &OutboxEvent,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let released = on_backend!(self.store(), b => b.outbox_retry_later(event, error, next_attempt_at, true).await);
        released.map(drop)
    }

    /// Put a claimed row back until `until` without counting a failed attempt: Coder asked the
    /// bridge to slow down (429 with `Retry-After`) or refused its credentials, which says
    /// nothing about this resource and must not bring it closer to the dead-letter queue.
    /// Otherwise as [`Outbox::fail`]; returns false when the lease was no longer held.
    pub async fn defer(
        &self,
        event: &OutboxEvent,
        reason: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        on_backend!(self.store(), b => b.outbox_retry_later(event, reason, until, false).await)
    }

    /// Give up on the row (it stays, dead, for an operator). Returns false, and releases the
    /// row instead, when a newer write arrived since the claim.
    pub async fn dead_letter(&self, event: &OutboxEvent, reason: &str) -> StoreResult<bool> {
        on_backend!(self.store(), b => b.outbox_dead_letter(event, reason).await)
    }

    /// Release every lease `worker_id` holds (graceful shutdown). Returns how many.
    pub async fn release_leases(&self, worker_id: &str) -> StoreResult<u64> {
        on_backend!(self.store(), b => b.outbox_release_leases(Some(worker_id)).await)
    }

    /// Release every lease, whoever holds it. Only for a store one process serves (SQLite: a
    /// lease found at start-up was left by this replica's previous, crashed run), so its rows
    /// are retried at once instead of after the lease runs out.
    pub async fn release_all_leases(&self) -> StoreResult<u64> {
        on_backend!(self.store(), b => b.outbox_release_leases(None).await)
    }

    /// Make rows due now with a fresh attempt count (reviving dead ones). Returns how many.
    pub async fn retry(&self, target: RetryTarget) -> StoreResult<u64> {
        on_backend!(self.store(), b => b.outbox_retry(target).await)
    }

    /// The in-process notification fired after every commit that queued outbox work.
    pub fn notified(&self) -> Arc<Notify> {
        on_backend!(self.store(), b => b.shared().outbox_notify.clone())
    }

    /// Wake-ups for the worker: local commits, plus (PostgreSQL) other replicas' commits via
    /// `LISTEN scim_bridge_outbox`.
    pub async fn wakeups(&self) -> StoreResult<OutboxWakeups> {
        let local = self.notified();
        let remote = match self.store() {
            Store::Sqlite(_) => None,
            Store::Postgres(pg) => Some(pg.listen().await?),
        };
        Ok(OutboxWakeups { local, remote })
    }
}

impl OutboxReader {
    /// Depth, oldest age, retrying and dead counts.
    pub async fn stats(&self) -> StoreResult<OutboxStats> {
        on_backend!(&self.store, b => b.outbox_stats().await)
    }

    /// Rows matching `filter`, in claim order.
    pub async fn list(&self, filter: OutboxFilter, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(&self.store, b => b.outbox_list(filter, limit).await)
    }
}
