//! Sync issues the worker records for an operator (one open issue per resource and type).

use super::Backend;
use crate::coder_map::SyncIssue;
use crate::error::StoreResult;
use scim::ResourceKind;

impl Backend {
    pub(crate) async fn sync_issue_record(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        // One open issue per (resource, type): recording it again refreshes the detail.
        Ok(sqlx::query_scalar(
            "INSERT INTO sync_issues (kind, resource_id, issue_type, detail, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, resource_id, issue_type) WHERE resolved_at IS NULL \
             DO UPDATE SET detail = excluded.detail RETURNING id",
        )
        .bind(kind.name())
        .bind(resource_id)
        .bind(issue_type)
        .bind(detail)
        .bind(self.now())
        .fetch_one(self.writer().await?.get()?)
        .await?)
    }

    pub(crate) async fn sync_issue_resolve(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
    ) -> StoreResult<bool> {
        let resolved = sqlx::query(
            "UPDATE sync_issues SET resolved_at = $1 \
             WHERE kind = $2 AND resource_id = $3 AND issue_type = $4 AND resolved_at IS NULL",
        )
        .bind(self.now())
        .bind(kind.name())
        .bind(resource_id)
        .bind(issue_type)
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(resolved.rows_affected() > 0)
    }

    pub(crate) async fn sync_issue_list(
        &self,
        include_resolved: bool,
    ) -> StoreResult<Vec<SyncIssue>> {
        let condition = if include_resolved {
            ""
        } else {
            " WHERE resolved_at IS NULL"
        };
        let sql = format!(
            "SELECT id, kind, resource_id, issue_type, detail, created_at, resolved_at FROM sync_issues{condition} \
             ORDER BY created_at, id"
        );
        Ok(sqlx::query_as(&sql).fetch_all(&self.read).await?)
    }

    pub(crate) async fn sync_issue_delete(&self, id: i64) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM sync_issues WHERE id = $1")
            .bind(id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}
