use crate::on_backend;
use crate::{AuditEntry, AuditHead, AuditRecord, Store, StoreResult, VerifyReport};
use chrono::{DateTime, Utc};

/// The hash-chained audit log. SCIM writes append their records themselves, in their own
/// transaction; this handle appends the others and reads and checks the chain.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Store,
}

impl Audit {
    pub(crate) fn new(store: Store) -> Audit {
        Audit { store }
    }

    /// Append a record that is not part of a SCIM write (the worker's Coder calls, operator
    /// actions). Secrets in `change` are redacted.
    pub async fn append(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        on_backend!(&self.store, b => b.append_audit(entry).await)
    }

    /// Every record, or those at or after `since`, in chain order.
    pub async fn export(&self, since: Option<DateTime<Utc>>) -> StoreResult<Vec<AuditRecord>> {
        on_backend!(&self.store, b => b.audit_export(since).await)
    }

    /// The records about resources of `resource_type` (`User`, `Group`, …), in chain order;
    /// those at or after `since` when given.
    pub async fn of_type(
        &self,
        resource_type: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<AuditRecord>> {
        on_backend!(&self.store, b => b.audit_of_type(resource_type, since).await)
    }

    /// Every record about one resource, in chain order (including those of a resource deleted
    /// since).
    pub async fn of_resource(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> StoreResult<Vec<AuditRecord>> {
        on_backend!(&self.store, b => b.audit_of_resource(resource_type, resource_id).await)
    }

    /// Recompute the chain (with the store's audit keys) and report the first record that does
    /// not verify. With keys, the newest record must be keyed: a chain recomputed without the
    /// key ends in an unkeyed record.
    pub async fn verify(&self) -> StoreResult<VerifyReport> {
        self.verify_expecting(&[]).await
    }

    /// [`Audit::verify`], and the chain must still reach each of `expected` (heads exported
    /// earlier): a record cut off or rewritten at or before one of them is reported.
    pub async fn verify_expecting(&self, expected: &[AuditHead]) -> StoreResult<VerifyReport> {
        on_backend!(&self.store, b => b.audit_verify(expected).await)
    }

    /// The newest record's seq and hash ([`AuditHead::genesis`] for an empty chain), to export
    /// as an anchor. Fails when the log and its head row disagree (the log was cut or the head
    /// row changed outside the bridge); the chain itself is not verified.
    pub async fn head(&self) -> StoreResult<AuditHead> {
        on_backend!(&self.store, b => b.audit_head().await)
    }

    /// Append an `audit.key` record when the newest record is not keyed with the current
    /// audit key (the key was just set or rotated), so that the chain ends in a keyed record
    /// from start-up on and the trail shows when the key changed. Returns it, or `None` when
    /// there is no key or the newest record already uses it.
    pub async fn record_key(&self) -> StoreResult<Option<AuditRecord>> {
        on_backend!(&self.store, b => b.audit_record_key().await)
    }
}
