//! The cursors and leases of the live audit stream's sinks (see `audit_delivery.rs`).

use super::Backend;
use crate::audit::{AuditRecord, AuditRow};
use crate::audit_delivery::{DeliveryCursor, DeliveryLag};
use crate::error::StoreResult;
use chrono::{DateTime, Utc};

const CURSOR_COLUMNS: &str = "sink, cursor_seq, delivered_at, leased_by, lease_until, failures, last_error, \
                              last_failure_at";

impl Backend {
    /// Records after `after_seq`, oldest first, at most `limit`.
    pub(crate) async fn audit_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let sql = format!(
            "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            super::audit::AUDIT_COLUMNS
        );
        let rows: Vec<AuditRow> = sqlx::query_as(&sql)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }

    pub(crate) async fn delivery_claim(
        &self,
        sink: &str,
        holder: &str,
        lease: std::time::Duration,
    ) -> StoreResult<Option<i64>> {
        let now = self.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let mut writer = self.writer().await?;
        let conn = writer.get()?;
        sqlx::query("INSERT INTO audit_delivery (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING")
            .bind(sink)
            .execute(&mut *conn)
            .await?;
        // PostgreSQL re-checks the condition on a row another replica has just updated, so of
        // two replicas claiming at once only one gets the row back.
        Ok(sqlx::query_scalar(
            "UPDATE audit_delivery SET leased_by = $2, lease_until = $3 \
             WHERE sink = $1 AND (leased_by IS NULL OR leased_by = $2 OR lease_until <= $4) \
             RETURNING cursor_seq",
        )
        .bind(sink)
        .bind(holder)
        .bind(until)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?)
    }

    pub(crate) async fn delivery_advance(
        &self,
        sink: &str,
        holder: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<bool> {
        let moved = sqlx::query(
            "UPDATE audit_delivery SET cursor_seq = $4, delivered_at = $5, failures = 0, last_error = NULL \
             WHERE sink = $1 AND leased_by = $2 AND cursor_seq = $3",
        )
        .bind(sink)
        .bind(holder)
        .bind(from)
        .bind(to)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    pub(crate) async fn delivery_failed(
        &self,
        sink: &str,
        holder: &str,
        error: &str,
    ) -> StoreResult<bool> {
        let noted = sqlx::query(
            "UPDATE audit_delivery SET failures = failures + 1, last_error = $3, last_failure_at = $4 \
             WHERE sink = $1 AND leased_by = $2",
        )
        .bind(sink)
        .bind(holder)
        .bind(error)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(noted.rows_affected() == 1)
    }

    pub(crate) async fn delivery_release(&self, sink: &str, holder: &str) -> StoreResult<bool> {
        let released = sqlx::query(
            "UPDATE audit_delivery SET leased_by = NULL, lease_until = NULL WHERE sink = $1 AND leased_by = $2",
        )
        .bind(sink)
        .bind(holder)
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(released.rows_affected() == 1)
    }

    pub(crate) async fn delivery_cursor(&self, sink: &str) -> StoreResult<Option<DeliveryCursor>> {
        let sql = format!("SELECT {CURSOR_COLUMNS} FROM audit_delivery WHERE sink = $1");
        Ok(sqlx::query_as(&sql)
            .bind(sink)
            .fetch_optional(&self.read)
            .await?)
    }

    pub(crate) async fn delivery_lag(&self, sink: &str) -> StoreResult<DeliveryLag> {
        let mut tx = self.begin_read().await?;
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT cursor_seq FROM audit_delivery WHERE sink = $1")
                .bind(sink)
                .fetch_optional(&mut *tx)
                .await?;
        let cursor_seq = cursor.unwrap_or(0);
        let head_seq: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let oldest_pending: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT time FROM audit_log WHERE seq = $1")
                .bind(cursor_seq + 1)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(DeliveryLag {
            cursor_seq,
            head_seq,
            oldest_pending,
        })
    }
}
