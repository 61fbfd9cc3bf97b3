//! The audit log: an append-only, hash-chained record of every change and of the Coder calls
//! the worker makes.
//!
//! Each record's `hash` is SHA-256 over the previous record's hash and a canonical
//! serialisation of the record, so editing, deleting or reordering any row breaks the chain at
//! that row. The tip (`audit_head`) is locked by every append, which keeps the chain linear under
//! concurrent writers on both backends. Anchoring the tip outside the database (e.g. exporting
//! it periodically) is what detects a rewrite of the whole chain.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash the first record chains from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What replaces secrets inside an audit `change`.
const REDACTED: &str = "[redacted]";

/// A record to append, as the caller describes it; the store adds seq, time and the hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The request (or worker run) this record belongs to.
    pub request_id: String,
    /// Who acted: the token name for SCIM requests, `worker` for the outbox worker.
    pub actor: Option<String>,
    /// The client's address, when the action came over HTTP.
    pub source_addr: Option<String>,
    /// What was done, e.g. `PATCH /Groups/{id}`, `coder.suspend_user`, `token.revoke`.
    pub operation: String,
    /// `User`, `Group`, `Token`, …
    pub resource_type: Option<String>,
    /// The id of what was acted on.
    pub resource_id: Option<String>,
    /// The change. Passwords and tokens are redacted before it is stored.
    pub change: Value,
    /// The outcome, e.g. `ok`, `409 conflict`.
    pub result: String,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub request_id: String,
    pub actor: Option<String>,
    pub source_addr: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub change: Value,
    pub result: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The outcome of [`crate::Store::audit_verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// The first record that does not verify, and why.
    pub first_broken: Option<(i64, String)>,
}

/// An audit row as stored; `change` is kept as the exact text the hash covers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub request_id: String,
    pub actor: Option<String>,
    pub source_addr: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub change: String,
    pub result: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// Build the next row of the chain from `entry`.
    pub fn chained(
        entry: &AuditEntry,
        seq: i64,
        time: DateTime<Utc>,
        prev_hash: String,
    ) -> AuditRow {
        let mut change = entry.change.clone();
        redact(&mut change);
        let mut row = AuditRow {
            seq,
            time,
            request_id: entry.request_id.clone(),
            actor: entry.actor.clone(),
            source_addr: entry.source_addr.clone(),
            operation: entry.operation.clone(),
            resource_type: entry.resource_type.clone(),
            resource_id: entry.resource_id.clone(),
            change: change.to_string(),
            result: entry.result.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.computed_hash();
        row
    }

    /// SHA-256 over `prev_hash`, a newline, and the record's fields as one JSON array in a fixed
    /// order. A JSON array of strings and numbers has exactly one serialisation, so the
    /// hash does not depend on map ordering or whitespace.
    pub fn computed_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.request_id,
            self.actor,
            self.source_addr,
            self.operation,
            self.resource_type,
            self.resource_id,
            self.change,
            self.result,
        ]);
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.to_string().as_bytes());
        hex::encode(hasher.finalize())
    }

    /// Why this row does not continue a chain whose previous record is (`prev_seq`,
    /// `prev_hash`), or `None` when it does.
    pub fn chain_break(&self, prev_seq: i64, prev_hash: &str) -> Option<String> {
        if self.seq != prev_seq + 1 {
            return Some(format!(
                "expected seq {} after {prev_seq}; records are missing",
                prev_seq + 1
            ));
        }
        if self.prev_hash != prev_hash {
            return Some("prev_hash does not match the previous record's hash".to_string());
        }
        if self.hash != self.computed_hash() {
            return Some("hash does not match the record's contents".to_string());
        }
        None
    }

    pub fn into_record(self) -> AuditRecord {
        // The text was produced by serde_json; a row edited by hand to invalid JSON is still
        // exported, as a string, so the export shows what is there.
        let change = serde_json::from_str(&self.change).unwrap_or(Value::String(self.change));
        AuditRecord {
            seq: self.seq,
            time: self.time,
            request_id: self.request_id,
            actor: self.actor,
            source_addr: self.source_addr,
            operation: self.operation,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            change,
            result: self.result,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Replace secrets anywhere in `value`: any `password` member (any case; Okta sends it on create
/// and in password-sync PATCHes), the `value` of a PATCH operation whose `path` names the password,
/// and any string that looks like one of our bearer tokens.
pub(crate) fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let op_on_password = map
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.to_ascii_lowercase().ends_with("password"));
            for (key, v) in map.iter_mut() {
                if key.eq_ignore_ascii_case("password")
                    || (op_on_password && key.eq_ignore_ascii_case("value"))
                {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) if s.starts_with(crate::token::TOKEN_PREFIX) => *s = REDACTED.to_string(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(change: Value) -> AuditEntry {
        AuditEntry {
            request_id: "req-1".into(),
            actor: Some("okta".into()),
            source_addr: Some("127.0.0.1".into()),
            operation: "POST /Users".into(),
            resource_type: Some("User".into()),
            resource_id: Some("u1".into()),
            change,
            result: "ok".into(),
        }
    }

    #[test]
    fn passwords_and_tokens_are_redacted_everywhere() {
        let mut v = json!({
            "attrs": {"userName": "a", "Password": "hunter2"},
            "operations": [
                {"op": "replace", "value": {"password": "p2", "active": false}},
                {"op": "replace", "path": "password", "value": "p3"},
                {"op": "add", "path": "nickName", "value": "kept"}
            ],
            "issued": "scimb_0123"
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in ["hunter2", "p2", "p3", "scimb_0123"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert_eq!(v["operations"][2]["value"], "kept");
        assert_eq!(v["attrs"]["userName"], "a");
    }

    #[test]
    fn chain_detects_edits_and_gaps() {
        let time = DateTime::parse_from_rfc3339("2026-03-01T10:00:00.5Z")
            .unwrap()
            .to_utc();
        let first = AuditRow::chained(&entry(json!({"a": 1})), 1, time, GENESIS_HASH.into());
        assert_eq!(first.chain_break(0, GENESIS_HASH), None);
        let second = AuditRow::chained(&entry(json!({"a": 2})), 2, time, first.hash.clone());
        assert_eq!(second.chain_break(1, &first.hash), None);

        let mut edited = second.clone();
        edited.result = "denied".into();
        assert!(
            edited
                .chain_break(1, &first.hash)
                .unwrap()
                .contains("contents")
        );
        assert!(
            second
                .chain_break(0, GENESIS_HASH)
                .unwrap()
                .contains("missing")
        );
        let third = AuditRow::chained(&entry(json!({})), 3, time, "f".repeat(64));
        assert!(
            third
                .chain_break(2, &second.hash)
                .unwrap()
                .contains("prev_hash")
        );
    }
}
