use crate::on_backend;
use crate::{AuditRecord, DeliveryCursor, DeliveryLag, Store, StoreResult};

/// The live audit stream: records after a cursor, and each sink's cursor and lease. The cursor
/// only moves for the lease holder, and only forward from where the holder read it, so a
/// replica that lost its lease cannot move it back or skip records.
#[derive(Debug, Clone)]
pub struct AuditStream {
    store: Store,
}

impl AuditStream {
    pub(crate) fn new(store: Store) -> AuditStream {
        AuditStream { store }
    }

    /// Records after `after_seq` in chain (commit) order, at most `limit`.
    pub async fn after(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        on_backend!(&self.store, b => b.audit_after(after_seq, limit).await)
    }

    /// Take or renew `sink`'s lease for `holder` (creating the sink at cursor 0); the cursor
    /// when it is `holder`'s now, `None` while another holder's lease runs.
    pub async fn claim(
        &self,
        sink: &str,
        holder: &str,
        lease: std::time::Duration,
    ) -> StoreResult<Option<i64>> {
        on_backend!(&self.store, b => b.delivery_claim(sink, holder, lease).await)
    }

    /// Move `sink`'s cursor from `from` to `to` after the receiver acknowledged the records
    /// up to `to`; false (nothing changed) when `holder` no longer holds the lease or the
    /// cursor is no longer at `from`.
    pub async fn advance(&self, sink: &str, holder: &str, from: i64, to: i64) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.delivery_advance(sink, holder, from, to).await)
    }

    /// Note a failed attempt (the cursor stays); false when `holder` no longer holds the lease.
    pub async fn failed(&self, sink: &str, holder: &str, error: &str) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.delivery_failed(sink, holder, error).await)
    }

    /// Give the lease up (a clean shutdown), so another replica takes over at once.
    pub async fn release(&self, sink: &str, holder: &str) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.delivery_release(sink, holder).await)
    }

    /// `sink`'s row, if it was ever claimed.
    pub async fn cursor(&self, sink: &str) -> StoreResult<Option<DeliveryCursor>> {
        on_backend!(&self.store, b => b.delivery_cursor(sink).await)
    }

    /// How far `sink` is behind the log.
    pub async fn lag(&self, sink: &str) -> StoreResult<DeliveryLag> {
        on_backend!(&self.store, b => b.delivery_lag(sink).await)
    }
}
