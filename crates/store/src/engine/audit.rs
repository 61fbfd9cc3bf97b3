//! The hash-chained audit log: appending, exporting and verifying it, and its head.

use super::write_tx::Stmt;
use super::{Backend, DIALECT, Db};
use crate::audit::{AuditEntry, AuditHead, AuditRecord, AuditRow, GENESIS_HASH, VerifyReport};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::QueryBuilder;
use std::borrow::Cow;

/// Audit rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

pub(super) const AUDIT_COLUMNS: &str = "seq, time, request_id, actor, source_addr, operation, resource_type, resource_id, \
                             change, result, prev_hash, hash, key_id";

/// Why the chain fails to reach `expected` at the record (`seq`, `hash`), if it is that record's.
fn head_missed(expected: &AuditHead, seq: i64, hash: &str) -> Option<String> {
    (expected.seq == seq && expected.hash != hash).then(|| {
        format!(
            "record {seq} has hash {hash}, not the expected head {expected}: the chain was \
             rewritten at or before it"
        )
    })
}

/// The audit chain's head, locked until the commit (PostgreSQL; SQLite's single writer
/// already excludes other appends).
pub(crate) fn audit_head_stmt() -> Stmt {
    Stmt::new(format!(
        "SELECT seq, hash FROM audit_head WHERE id = 1{}",
        DIALECT.lock_row
    ))
}

/// The audit record's row and the head moved to it. With `condition` (SQL), each statement
/// runs only if it holds.
pub(crate) fn audit_append_stmts(row: &AuditRow, condition: Option<&str>) -> [Stmt; 2] {
    let (source, and): (Cow<str>, Cow<str>) = match condition {
        None => (
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)".into(),
            "".into(),
        ),
        Some(condition) => (
            format!(
                "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE {condition}"
            )
            .into(),
            format!(" AND {condition}").into(),
        ),
    };
    [
        Stmt::new(format!(
            "INSERT INTO audit_log (seq, time, request_id, actor, source_addr, operation, resource_type, resource_id, \
                                    change, result, prev_hash, hash, key_id) {source}"
        ))
        .int(row.seq)
        .time(row.time)
        .text(row.request_id.clone())
        .opt_text(row.actor.clone())
        .opt_text(row.source_addr.clone())
        .text(row.operation.clone())
        .opt_text(row.resource_type.clone())
        .opt_text(row.resource_id.clone())
        .text(row.change.clone())
        .text(row.result.clone())
        .text(row.prev_hash.clone())
        .text(row.hash.clone())
        .opt_text(row.key_id.clone()),
        Stmt::new(format!(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1{and}"
        ))
        .int(row.seq)
        .text(row.hash.clone()),
    ]
}

impl Backend {
    pub(crate) async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = self.begin_write().await?;
        let row = tx.append_audit(entry, self.now(), self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(row.into_record())
    }

    pub(crate) async fn audit_export(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut query = QueryBuilder::<Db>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log"));
        if let Some(since) = since {
            query.push(" WHERE time >= ").push_bind(since);
        }
        query.push(" ORDER BY seq");
        let rows: Vec<AuditRow> = query.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }

    pub(crate) async fn audit_verify(&self, expected: &[AuditHead]) -> StoreResult<VerifyReport> {
        let keys = &self.shared.audit_keys;
        let mut tx = self.begin_read().await?;
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let (mut prev_seq, mut prev_hash) = (0i64, GENESIS_HASH.to_string());
        let (mut checked, mut keyed, mut newest_keyed) = (0u64, 0u64, false);
        let broken = |seq: i64, reason: String, checked: u64, keyed: u64| VerifyReport {
            checked,
            keyed,
            first_broken: Some((seq, reason)),
        };
        if let Some(reason) = expected
            .iter()
            .find_map(|head| head_missed(head, 0, GENESIS_HASH))
        {
            return Ok(broken(0, reason, checked, keyed));
        }
        loop {
            let page: Vec<AuditRow> = sqlx::query_as(&sql)
                .bind(prev_seq)
                .bind(VERIFY_PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = page.last().map(|row| row.seq) else {
                break;
            };
            for row in page {
                checked += 1;
                newest_keyed = row.key_id.is_some();
                keyed += u64::from(newest_keyed);
                let reason = row.chain_break(prev_seq, &prev_hash, keys).or_else(|| {
                    expected
                        .iter()
                        .find_map(|head| head_missed(head, row.seq, &row.hash))
                });
                if let Some(reason) = reason {
                    return Ok(broken(row.seq, reason, checked, keyed));
                }
                prev_seq = row.seq;
                prev_hash = row.hash;
            }
            debug_assert_eq!(prev_seq, last);
        }
        // The head is written with every append: a log that ends before it lost its tail.
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let beyond = expected
            .iter()
            .filter(|head| head.seq > prev_seq)
            .max_by_key(|head| head.seq);
        let first_broken = if head_seq != prev_seq || head_hash != prev_hash {
            Some((
                prev_seq + 1,
                format!("the log ends at seq {prev_seq} but its head records seq {head_seq}"),
            ))
        } else if let Some(head) = beyond {
            Some((
                prev_seq + 1,
                format!(
                    "the log ends at seq {prev_seq}, before the expected head {head}: \
                     records were removed"
                ),
            ))
        } else if keys.current().is_some() && checked > 0 && !newest_keyed {
            // Every record up to the newest keyed one is covered by the key; an unkeyed newest
            // record is what a chain recomputed without the key ends in.
            Some((
                prev_seq,
                "the newest record is not keyed although an audit key is configured: the chain \
                 was recomputed without the key, or nothing was appended since the key was set"
                    .to_string(),
            ))
        } else {
            None
        };
        Ok(VerifyReport {
            checked,
            keyed,
            first_broken,
        })
    }

    pub(crate) async fn audit_head(&self) -> StoreResult<AuditHead> {
        let mut tx = self.begin_read().await?;
        let newest: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let newest = newest.map_or_else(AuditHead::genesis, |(seq, hash)| AuditHead { seq, hash });
        let recorded = AuditHead { seq, hash };
        if newest != recorded {
            return Err(StoreError::invalid_value(format!(
                "the audit log ends at {newest} but its head row records {recorded}: the log was \
                 changed outside the bridge"
            )));
        }
        Ok(newest)
    }

    pub(crate) async fn audit_record_key(&self) -> StoreResult<Option<AuditRecord>> {
        let Some(key) = self.audit_key() else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        // Lock the tip first (PostgreSQL), so replicas starting together record the key once.
        let conn = tx.conn().await?;
        audit_head_stmt().execute(conn).await?;
        let newest: Option<(Option<String>,)> =
            sqlx::query_as("SELECT key_id FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
        let previous = newest.and_then(|(id,)| id);
        if previous.as_deref() == Some(key.id()) {
            tx.rollback().await?;
            return Ok(None);
        }
        let entry = AuditEntry {
            request_id: self.shared.ids.uuid_v4().to_string(),
            actor: None,
            source_addr: None,
            operation: "audit.key".to_string(),
            resource_type: None,
            resource_id: None,
            change: json!({ "key_id": key.id(), "previous_key_id": previous }),
            result: "ok".to_string(),
        };
        let row = tx.append_audit(&entry, self.now(), Some(key)).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(Some(row.into_record()))
    }
}
