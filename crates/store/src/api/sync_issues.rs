use crate::on_backend;
use crate::{Store, StoreResult, SyncIssue};
use scim::ResourceKind;

/// Problems the worker found that need an operator (a Coder username taken by an account the
/// bridge does not own, say): at most one open issue per resource and type.
#[derive(Debug, Clone)]
pub struct SyncIssues {
    store: Store,
}

impl SyncIssues {
    pub(crate) fn new(store: Store) -> SyncIssues {
        SyncIssues { store }
    }

    /// Open (or refresh the detail of) the issue `issue_type` for a resource; returns its id.
    pub async fn record(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        on_backend!(&self.store, b => b.sync_issue_record(kind, resource_id, issue_type, detail).await)
    }

    /// Mark the open issue resolved; false if none was open.
    pub async fn resolve(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
    ) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.sync_issue_resolve(kind, resource_id, issue_type).await)
    }

    /// Open issues (and resolved ones when asked), oldest first.
    pub async fn list(&self, include_resolved: bool) -> StoreResult<Vec<SyncIssue>> {
        on_backend!(&self.store, b => b.sync_issue_list(include_resolved).await)
    }

    /// Delete an issue; false if there was none.
    pub async fn delete(&self, id: i64) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.sync_issue_delete(id).await)
    }
}
