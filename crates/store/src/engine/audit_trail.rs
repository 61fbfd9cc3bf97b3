//! Reading the audit log by what it is about: every record of one kind of resource, or of one
//! resource, in chain order (the offboarding report, `explain`).

use super::audit::AUDIT_COLUMNS;
use super::{Backend, Db};
use crate::audit::{AuditRecord, AuditRow};
use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

impl Backend {
    pub(crate) async fn audit_of_type(
        &self,
        resource_type: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut query = QueryBuilder::<Db>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE resource_type = "
        ));
        query.push_bind(resource_type.to_owned());
        if let Some(since) = since {
            query.push(" AND time >= ").push_bind(since);
        }
        query.push(" ORDER BY seq");
        let rows: Vec<AuditRow> = query.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }

    pub(crate) async fn audit_of_resource(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut query = QueryBuilder::<Db>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE resource_type = "
        ));
        query
            .push_bind(resource_type.to_owned())
            .push(" AND resource_id = ")
            .push_bind(resource_id.to_owned())
            .push(" ORDER BY seq");
        let rows: Vec<AuditRow> = query.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }
}
