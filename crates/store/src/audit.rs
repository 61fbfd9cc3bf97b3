//! The audit log: an append-only, hash-chained record of every change and of the Coder calls
//! the worker makes.
//!
//! Each record's `hash` covers the previous record's hash and a canonical serialisation of the
//! record, so editing, deleting or reordering any row breaks the chain at that row. The tip
//! (`audit_head`) is locked by every append, which keeps the chain linear under concurrent
//! writers on both backends.
//!
//! Without a key the hash is plain SHA-256, which anyone with write access to the database can
//! recompute after a rewrite. With an [`AuditKey`] it is HMAC-SHA-256 under that key, which
//! never enters the database: each keyed record stores only the key's *id* (`key_id`, derived
//! from the key), so a verifier knows which of its keys to use, and a chain stays verifiable
//! across a switch from unkeyed to keyed records and across key rotations ([`AuditKeys`] holds
//! the current key and the earlier ones). A rewrite of any record up to the newest keyed one
//! needs the key; what a key cannot show (the newest records cut off, or an unkeyed chain
//! recomputed) an anchor does: the head (`SEQ:HASH`) exported outside the database and
//! compared with [`AuditHead`] at verification.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash the first record chains from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What replaces secrets inside an audit `change`.
const REDACTED: &str = "[redacted]";

/// The shortest audit key accepted, in bytes (256 bits, as the HMAC-SHA-256 block size allows
/// and `openssl rand -hex 32` gives).
pub const MIN_AUDIT_KEY_LEN: usize = 32;

/// What a key's id is the HMAC of: the id names the key without revealing it.
const KEY_ID_MESSAGE: &[u8] = b"scim-bridge audit key id";

/// A secret key for the audit chain's HMAC-SHA-256. Only its [id](AuditKey::id) is ever
/// stored, shown or logged.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl AuditKey {
    /// A key from its secret bytes; `None` when shorter than [`MIN_AUDIT_KEY_LEN`].
    pub fn new(secret: &[u8]) -> Option<AuditKey> {
        if secret.len() < MIN_AUDIT_KEY_LEN {
            return None;
        }
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
        let mut id_mac = mac.clone();
        id_mac.update(KEY_ID_MESSAGE);
        let id = hex::encode(&id_mac.finalize().into_bytes()[..8]);
        Some(AuditKey { id, mac })
    }

    /// The key's id: the first 8 bytes of HMAC-SHA-256(key, "scim-bridge audit key id"), in
    /// hex. Stored with every record the key hashed.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey").field("id", &self.id).finish()
    }
}

/// The audit chain's keys: the one new records are hashed with (the first), and earlier ones
/// that still verify the records written before a rotation. Empty: the chain is plain SHA-256.
#[derive(Clone, Debug, Default)]
pub struct AuditKeys {
    keys: Vec<AuditKey>,
}

impl AuditKeys {
    /// `current` hashes new records; `previous` only verify.
    pub fn new(current: AuditKey, previous: Vec<AuditKey>) -> AuditKeys {
        let mut keys = vec![current];
        keys.extend(previous);
        AuditKeys { keys }
    }

    /// The key new records are hashed with, if any.
    pub fn current(&self) -> Option<&AuditKey> {
        self.keys.first()
    }

    fn by_id(&self, id: &str) -> Option<&AuditKey> {
        self.keys.iter().find(|key| key.id == id)
    }
}

/// A point of the chain, `SEQ:HASH`: the newest record's sequence number and hash. Exported
/// outside the database, it is what a verifier later checks the chain still reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty chain.
    pub fn genesis() -> AuditHead {
        AuditHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

impl fmt::Display for AuditHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl FromStr for AuditHead {
    type Err = String;

    /// `SEQ:HASH`, as `scim-bridge audit head` prints it.
    fn from_str(text: &str) -> Result<AuditHead, String> {
        let text = text.trim();
        let malformed = || format!("'{text}' is not SEQ:HASH (as `scim-bridge audit head` prints)");
        let (seq, hash) = text.split_once(':').ok_or_else(malformed)?;
        let seq: i64 = seq.parse().map_err(|_| malformed())?;
        let hex_digits = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if seq < 0 || !hex_digits {
            return Err(malformed());
        }
        Ok(AuditHead {
            seq,
            hash: hash.to_string(),
        })
    }
}

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
    /// The id of the key the hash is keyed with; `None` for a plain SHA-256 hash.
    pub key_id: Option<String>,
}

/// The outcome of [`crate::Audit::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// How many of them are keyed (HMAC).
    pub keyed: u64,
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
    pub key_id: Option<String>,
}

impl AuditRow {
    /// Build the next row of the chain from `entry`, keyed with `key` when there is one.
    pub fn chained(
        entry: &AuditEntry,
        seq: i64,
        time: DateTime<Utc>,
        prev_hash: String,
        key: Option<&AuditKey>,
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
            key_id: key.map(|key| key.id.clone()),
        };
        row.hash = row.computed_hash(key);
        row
    }

    /// SHA-256, or HMAC-SHA-256 under `key`, over `prev_hash`, a newline, and the record's
    /// fields as one JSON array in a fixed order (a keyed record's `key_id` last, so the key
    /// id is covered too). A JSON array of strings and numbers has exactly one serialisation,
    /// so the hash does not depend on map ordering or whitespace.
    pub fn computed_hash(&self, key: Option<&AuditKey>) -> String {
        let mut canonical = serde_json::json!([
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
        if let (Some(id), Value::Array(fields)) = (&self.key_id, &mut canonical) {
            fields.push(Value::String(id.clone()));
        }
        let canonical = canonical.to_string();
        let message: [&[u8]; 3] = [self.prev_hash.as_bytes(), b"\n", canonical.as_bytes()];
        match key {
            None => {
                let mut hasher = Sha256::new();
                message.iter().for_each(|part| hasher.update(part));
                hex::encode(hasher.finalize())
            }
            Some(key) => {
                let mut mac = key.mac.clone();
                message.iter().for_each(|part| mac.update(part));
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Why this row does not continue a chain whose previous record is (`prev_seq`,
    /// `prev_hash`), or `None` when it does. A keyed row is checked with the key of its
    /// `key_id` among `keys`.
    pub fn chain_break(&self, prev_seq: i64, prev_hash: &str, keys: &AuditKeys) -> Option<String> {
        if self.seq != prev_seq + 1 {
            return Some(format!(
                "expected seq {} after {prev_seq}; records are missing",
                prev_seq + 1
            ));
        }
        if self.prev_hash != prev_hash {
            return Some("prev_hash does not match the previous record's hash".to_string());
        }
        let key = match &self.key_id {
            None => None,
            Some(id) => match keys.by_id(id) {
                Some(key) => Some(key),
                None => {
                    return Some(format!(
                        "the record is keyed with audit key id {id}, which is not among the keys \
                         given to verify"
                    ));
                }
            },
        };
        if self.hash != self.computed_hash(key) {
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
            key_id: self.key_id,
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

    fn time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00.5Z")
            .unwrap()
            .to_utc()
    }

    fn key(byte: u8) -> AuditKey {
        AuditKey::new(&[byte; MIN_AUDIT_KEY_LEN]).unwrap()
    }

    #[test]
    fn chain_detects_edits_and_gaps() {
        let none = AuditKeys::default();
        let time = time();
        let first = AuditRow::chained(&entry(json!({"a": 1})), 1, time, GENESIS_HASH.into(), None);
        assert_eq!(first.chain_break(0, GENESIS_HASH, &none), None);
        let second = AuditRow::chained(&entry(json!({"a": 2})), 2, time, first.hash.clone(), None);
        assert_eq!(second.chain_break(1, &first.hash, &none), None);

        let mut edited = second.clone();
        edited.result = "denied".into();
        assert!(
            edited
                .chain_break(1, &first.hash, &none)
                .unwrap()
                .contains("contents")
        );
        assert!(
            second
                .chain_break(0, GENESIS_HASH, &none)
                .unwrap()
                .contains("missing")
        );
        let third = AuditRow::chained(&entry(json!({})), 3, time, "f".repeat(64), None);
        assert!(
            third
                .chain_break(2, &second.hash, &none)
                .unwrap()
                .contains("prev_hash")
        );
    }

    /// An unkeyed record hashes as it always has, so chains written before keys existed still
    /// verify.
    #[test]
    fn unkeyed_hash_is_unchanged() {
        let row = AuditRow::chained(
            &entry(json!({"a": 1})),
            1,
            time(),
            GENESIS_HASH.into(),
            None,
        );
        assert_eq!(row.key_id, None);
        assert_eq!(
            row.hash,
            "5be2c8f8ff625a1e400e3f4b6be4879a09f0abf74f12d8d10f9e65d49deddc57"
        );
    }

    #[test]
    fn a_keyed_record_verifies_only_with_its_key() {
        let (right, wrong) = (key(7), key(8));
        let row = AuditRow::chained(
            &entry(json!({"a": 1})),
            1,
            time(),
            GENESIS_HASH.into(),
            Some(&right),
        );
        assert_eq!(row.key_id.as_deref(), Some(right.id()));
        let unkeyed = AuditRow::chained(
            &entry(json!({"a": 1})),
            1,
            time(),
            GENESIS_HASH.into(),
            None,
        );
        assert_ne!(row.hash, unkeyed.hash);

        let ring = AuditKeys::new(right.clone(), vec![]);
        assert_eq!(row.chain_break(0, GENESIS_HASH, &ring), None);
        // A rotated ring still verifies records of the previous key.
        let rotated = AuditKeys::new(wrong.clone(), vec![right.clone()]);
        assert_eq!(row.chain_break(0, GENESIS_HASH, &rotated), None);
        for keys in [AuditKeys::default(), AuditKeys::new(wrong.clone(), vec![])] {
            let reason = row.chain_break(0, GENESIS_HASH, &keys).unwrap();
            assert!(reason.contains(right.id()), "{reason}");
        }

        // The right key id with a hash made another way (plain SHA-256, a wrong key).
        for forged_with in [None, Some(&wrong)] {
            let mut forged = row.clone();
            forged.result = "denied".into();
            forged.hash = forged.computed_hash(forged_with);
            let reason = forged.chain_break(0, GENESIS_HASH, &ring).unwrap();
            assert!(reason.contains("contents"), "{reason}");
        }
        // The key id is covered by the hash: relabelling a record breaks it.
        let mut relabelled = row.clone();
        relabelled.key_id = Some(wrong.id().to_string());
        let both = AuditKeys::new(right, vec![wrong]);
        assert!(relabelled.chain_break(0, GENESIS_HASH, &both).is_some());
    }

    #[test]
    fn key_ids_name_keys_without_revealing_them() {
        let secret = [b'k'; MIN_AUDIT_KEY_LEN];
        let key = AuditKey::new(&secret).unwrap();
        assert_eq!(key.id().len(), 16);
        assert_eq!(key.id(), AuditKey::new(&secret).unwrap().id());
        assert_ne!(key.id(), self::key(b'j').id());
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.id()) && !shown.contains("kkkk"),
            "{shown}"
        );
        assert!(AuditKey::new(&secret[1..]).is_none());
    }

    #[test]
    fn heads_parse_as_printed() {
        let head = AuditHead {
            seq: 42,
            hash: "ab".repeat(32),
        };
        assert_eq!(head.to_string().parse::<AuditHead>(), Ok(head.clone()));
        assert_eq!(format!(" {head}\n").parse::<AuditHead>(), Ok(head));
        assert_eq!(
            AuditHead::genesis().to_string().parse(),
            Ok(AuditHead::genesis())
        );
        for bad in [
            "",
            "42",
            ":abc",
            "x:ab",
            "-1:00",
            "42:xyz",
            &format!("42:{}", "AB".repeat(32)),
        ] {
            assert!(bad.parse::<AuditHead>().is_err(), "{bad}");
        }
    }
}
