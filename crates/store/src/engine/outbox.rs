//! The outbox: queueing a resource for the worker, claims and their leases, completion,
//! retries and the dead-letter queue.

use super::write_tx::Stmt;
use super::{Backend, Conn, DIALECT, Db};
use crate::error::{StoreError, StoreResult};
use crate::outbox::{
    Completion, OutboxEvent, OutboxFilter, OutboxPriority, OutboxStats, RetryTarget,
};
use chrono::{DateTime, Duration, Utc};
use scim::ResourceKind;
use sqlx::{FromRow, Row};
use std::borrow::Cow;

const OUTBOX_COLUMNS: &str = "id, kind, resource_id, priority, generation, enqueued_at, next_attempt_at, attempts, \
                              last_error, leased_by, lease_until, dead_at, dead_reason";

/// The events of `rows`, skipping (with a warning) a row whose kind this build does not know:
/// one such row must not stop the worker.
fn outbox_events(rows: Vec<<Db as sqlx::Database>::Row>) -> StoreResult<Vec<OutboxEvent>> {
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        match OutboxEvent::from_row(row) {
            Ok(event) => events.push(event),
            // A `kind` column holds text any build could have written: its decoding fails only
            // on a kind this build does not know.
            Err(sqlx::Error::ColumnDecode { index, .. }) if index == "kind" => {
                tracing::warn!(
                    outbox_id = row.try_get::<i64, _>("id")?,
                    "outbox row names an unknown resource kind; skipped"
                );
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(events)
}

/// Queue `kind`/`id` for reconciliation, coalescing into its existing row: the generation is
/// bumped (so an in-flight claim does not remove it), the higher priority kept, the original
/// enqueue time kept (FIFO fairness), the row made due now (a row backing off after failures
/// retries with the new state; its attempt count stays, so a persistent failure keeps backing
/// off) and a dead-lettered row revived. With `condition` (SQL), only if it holds.
pub(crate) fn enqueue_stmt(
    kind: ResourceKind,
    id: &str,
    priority: OutboxPriority,
    now: DateTime<Utc>,
    condition: Option<&str>,
) -> Stmt {
    let source: Cow<str> = match condition {
        None => "VALUES ($1, $2, $3, 1, $4, $4, 0)".into(),
        // `WHERE` also keeps SQLite from reading the upsert's ON CONFLICT as part of the SELECT.
        Some(condition) => format!("SELECT $1, $2, $3, 1, $4, $4, 0 WHERE {condition}").into(),
    };
    Stmt::new(format!(
        "INSERT INTO outbox (kind, resource_id, priority, generation, enqueued_at, next_attempt_at, attempts) \
         {source} \
         ON CONFLICT (kind, resource_id) DO UPDATE SET \
           generation = outbox.generation + 1, \
           priority = CASE WHEN excluded.priority > outbox.priority THEN excluded.priority ELSE outbox.priority END, \
           next_attempt_at = CASE WHEN outbox.next_attempt_at < excluded.next_attempt_at \
                                  THEN outbox.next_attempt_at ELSE excluded.next_attempt_at END, \
           attempts = CASE WHEN outbox.dead_at IS NULL THEN outbox.attempts ELSE 0 END, \
           dead_at = NULL, dead_reason = NULL",
    ))
    .text(kind.name())
    .text(id)
    .int(i64::from(priority.as_i32()))
    .time(now)
}

pub(super) async fn enqueue_in(
    conn: &mut Conn,
    kind: ResourceKind,
    id: &str,
    priority: OutboxPriority,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    enqueue_stmt(kind, id, priority, now, None)
        .execute(conn)
        .await?;
    Ok(())
}

async fn outbox_row_exists(conn: &mut Conn, id: i64) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

impl Backend {
    pub(crate) async fn enqueue(
        &self,
        kind: ResourceKind,
        id: &str,
        priority: OutboxPriority,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        enqueue_in(tx.conn().await?, kind, id, priority, self.now()).await?;
        self.commit_queued(tx).await
    }

    pub(crate) async fn outbox_claim(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        one_priority_from: Option<OutboxPriority>,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let now = self.now();
        // Due, not dead, and not leased or leased by a worker whose lease ran out (it crashed or
        // stalled: its claim is taken over). On PostgreSQL, rows another replica is claiming
        // right now are skipped instead of waited for.
        let due = "dead_at IS NULL AND next_attempt_at <= $3 \
                   AND (lease_until IS NULL OR lease_until <= $3)";
        // Only the highest priority that has a due row, and not below the floor, so a batch
        // never mixes offboarding with bulk work.
        let one_priority = if one_priority_from.is_some() {
            format!(
                "AND priority >= $5 AND priority = (SELECT priority FROM outbox WHERE {due} \
                                                    ORDER BY priority DESC LIMIT 1)"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "UPDATE outbox SET leased_by = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE {due} {one_priority} \
                          ORDER BY priority DESC, enqueued_at, id LIMIT $4{}) \
             RETURNING {OUTBOX_COLUMNS}",
            DIALECT.skip_locked
        );
        let mut tx = self.begin_write().await?;
        let mut query = sqlx::query(&sql)
            .bind(worker_id)
            .bind(now + lease)
            .bind(now)
            .bind(i64::from(limit));
        if let Some(floor) = one_priority_from {
            query = query.bind(floor.as_i32());
        }
        let mut events = outbox_events(query.fetch_all(tx.conn().await?).await?)?;
        tx.commit().await?;
        // RETURNING does not keep the subquery's order.
        events.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.enqueued_at.cmp(&b.enqueued_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(events)
    }

    pub(crate) async fn outbox_complete(&self, event: &OutboxEvent) -> StoreResult<Completion> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM outbox WHERE id = $1 AND generation = $2")
            .bind(event.id)
            .bind(event.generation)
            .execute(tx.conn().await?)
            .await?
            .rows_affected();
        if removed > 0 {
            tx.commit().await?;
            return Ok(Completion::Removed);
        }
        // A newer write bumped the generation: release the row so it runs again at once. The
        // attempt that just succeeded resets the failure count.
        let released = sqlx::query(
            "UPDATE outbox SET leased_by = NULL, lease_until = NULL, attempts = 0, last_error = NULL \
             WHERE id = $1 AND leased_by = $2",
        )
        .bind(event.id)
        .bind(event.leased_by.as_deref())
        .execute(tx.conn().await?)
        .await?
        .rows_affected();
        let still_queued = released > 0 || outbox_row_exists(tx.conn().await?, event.id).await?;
        self.commit_queued(tx).await?;
        Ok(if still_queued {
            Completion::NewerChangePending
        } else {
            Completion::Removed
        })
    }

    /// `Outbox::fail` and `Outbox::defer`: `count_attempt` tells them apart.
    pub(crate) async fn outbox_retry_later(
        &self,
        event: &OutboxEvent,
        reason: &str,
        at: DateTime<Utc>,
        count_attempt: bool,
    ) -> StoreResult<bool> {
        // If a newer write arrived meanwhile, the failure may not apply to the new state: retry
        // it now rather than after the backoff.
        let released = sqlx::query(
            "UPDATE outbox SET attempts = attempts + $1, last_error = $2, \
               next_attempt_at = CASE WHEN generation = $3 THEN $4 ELSE $5 END, \
               leased_by = NULL, lease_until = NULL \
             WHERE id = $6 AND leased_by = $7",
        )
        .bind(i32::from(count_attempt))
        .bind(reason)
        .bind(event.generation)
        .bind(at)
        .bind(self.now())
        .bind(event.id)
        .bind(event.leased_by.as_deref())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(released.rows_affected() > 0)
    }

    pub(crate) async fn outbox_due_now(&self) -> StoreResult<u64> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let count = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 \
             WHERE dead_at IS NULL AND next_attempt_at > $1 \
               AND (lease_until IS NULL OR lease_until <= $1)",
        )
        .bind(now)
        .execute(tx.conn().await?)
        .await?
        .rows_affected();
        self.commit_queued(tx).await?;
        Ok(count)
    }

    pub(crate) async fn outbox_dead_letter(
        &self,
        event: &OutboxEvent,
        reason: &str,
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let dead = sqlx::query(
            "UPDATE outbox SET dead_at = $1, dead_reason = $2, last_error = $2, leased_by = NULL, lease_until = NULL \
             WHERE id = $3 AND generation = $4 AND leased_by = $5",
        )
        .bind(now)
        .bind(reason)
        .bind(event.id)
        .bind(event.generation)
        .bind(event.leased_by.as_deref())
        .execute(tx.conn().await?)
        .await?
        .rows_affected()
            > 0;
        if !dead {
            // A newer write may succeed where this one could not: give it its chance.
            sqlx::query(
                "UPDATE outbox SET leased_by = NULL, lease_until = NULL, last_error = $1, next_attempt_at = $2 \
                 WHERE id = $3 AND leased_by = $4",
            )
            .bind(reason)
            .bind(now)
            .bind(event.id)
            .bind(event.leased_by.as_deref())
            .execute(tx.conn().await?)
            .await?;
        }
        tx.commit().await?;
        Ok(dead)
    }

    /// The leases of `worker_id`, or of every worker when `None`.
    pub(crate) async fn outbox_release_leases(&self, worker_id: Option<&str>) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let query = match worker_id {
            Some(worker_id) => sqlx::query(
                "UPDATE outbox SET leased_by = NULL, lease_until = NULL WHERE leased_by = $1",
            )
            .bind(worker_id),
            None => sqlx::query(
                "UPDATE outbox SET leased_by = NULL, lease_until = NULL WHERE leased_by IS NOT NULL",
            ),
        };
        let released = query.execute(tx.conn().await?).await?.rows_affected();
        self.commit_queued(tx).await?;
        Ok(released)
    }

    pub(crate) async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        let (depth, retrying, dead, oldest): (i64, i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN dead_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
                    MIN(CASE WHEN dead_at IS NULL THEN enqueued_at END) \
             FROM outbox",
        )
        .fetch_one(&self.read)
        .await?;
        let oldest_age = oldest.map(|at| (self.now() - at).max(Duration::zero()));
        Ok(OutboxStats {
            depth,
            oldest_age,
            retrying,
            dead,
        })
    }

    pub(crate) async fn outbox_list(
        &self,
        filter: OutboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let condition = match filter {
            OutboxFilter::All => "1 = 1",
            OutboxFilter::Pending => "dead_at IS NULL",
            OutboxFilter::Retrying => "dead_at IS NULL AND attempts > 0",
            OutboxFilter::Dead => "dead_at IS NOT NULL",
        };
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {condition} ORDER BY priority DESC, enqueued_at, id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        outbox_events(rows)
    }

    pub(crate) async fn outbox_retry(&self, target: RetryTarget) -> StoreResult<u64> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let reset = "UPDATE outbox SET dead_at = NULL, dead_reason = NULL, attempts = 0, next_attempt_at = $1, \
                     leased_by = NULL, lease_until = NULL";
        let (sql, id) = match target {
            RetryTarget::One(id) => (format!("{reset} WHERE id = $2"), Some(id)),
            RetryTarget::AllDead => (format!("{reset} WHERE dead_at IS NOT NULL"), None),
        };
        let mut query = sqlx::query(&sql).bind(now);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let count = query.execute(tx.conn().await?).await?.rows_affected();
        if count == 0
            && let RetryTarget::One(id) = target
        {
            return Err(StoreError::NotFound(format!("outbox row {id}")));
        }
        self.commit_queued(tx).await?;
        Ok(count)
    }
}
