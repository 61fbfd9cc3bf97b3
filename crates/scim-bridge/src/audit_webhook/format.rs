//! What a delivery carries: JSON lines of audit records, or RFC 8417 Security Event Tokens with
//! RFC 9967 SCIM events; and the signature over the exact body.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use store::AuditRecord;

/// The header carrying the body's signature: `t=UNIX_SECONDS,v1=HEX`.
pub const SIGNATURE_HEADER: &str = "X-Scim-Bridge-Signature";

/// RFC 8935 §2: a SET is POSTed with this content type.
pub const SET_CONTENT_TYPE: &str = "application/secevent+jwt";

/// JSON lines.
pub const JSON_LINES_CONTENT_TYPE: &str = "application/x-ndjson";

/// The event the bridge adds to every SET: the audit record itself, so a SET stream carries
/// what the JSON stream does (records that are not SCIM writes, such as the worker's Coder
/// calls, have no RFC 9967 event).
pub const AUDIT_RECORD_EVENT: &str = "urn:scim-bridge:event:audit-record";

/// RFC 9967 §2.4 provisioning event URIs.
const PROV: &str = "urn:ietf:params:scim:event:prov";

/// An audit record as delivered: `audit export`'s JSON with its event id first.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// The record's id in every delivery: its chain hash, unique and unchanged by a retry, a
    /// restart or `migrate --copy-from`, so a receiver drops a duplicate by it.
    pub event_id: &'a str,
    #[serde(flatten)]
    pub record: &'a AuditRecord,
}

impl<'a> AuditEvent<'a> {
    pub fn of(record: &'a AuditRecord) -> AuditEvent<'a> {
        AuditEvent {
            event_id: &record.hash,
            record,
        }
    }
}

/// The records as JSON lines, one per record, each ending in a newline.
pub fn json_lines(records: &[AuditRecord]) -> Vec<u8> {
    let mut body = Vec::new();
    for record in records {
        // Serialising a record (strings, numbers and JSON values) cannot fail.
        if serde_json::to_writer(&mut body, &AuditEvent::of(record)).is_ok() {
            body.push(b'\n');
        }
    }
    body
}

/// The SCIM endpoint of a resource type the bridge serves.
fn endpoint(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "User" => Some("/Users"),
        "Group" => Some("/Groups"),
        "Agent" => Some("/Agents"),
        "AgenticApplication" => Some("/AgenticApplications"),
        _ => None,
    }
}

/// The RFC 9967 event of a SCIM write, from the operation the audit record names (`POST
/// /Users`, `PATCH /Groups/{id}`, `bulk PUT /Users/…`, or the store's own `create User`,
/// `replace User`, `patch Group`, `delete User`); `None` for any other record.
fn scim_event(record: &AuditRecord) -> Option<(String, Value)> {
    let verb = record
        .operation
        .trim_start_matches("bulk ")
        .split_whitespace()
        .next()?
        .to_ascii_lowercase();
    let action = match verb.as_str() {
        "post" | "create" => "create",
        "put" | "replace" => "put",
        "patch" => "patch",
        "delete" => "delete",
        _ => return None,
    };
    if action == "delete" {
        // §2.4.4: a delete has no payload and no notice/full qualifier.
        return Some((format!("{PROV}:delete"), json!({})));
    }
    // Notice events (§2.4): the names of the attributes, not their values, so a receiver
    // that needs the data asks the bridge (and personal data is not copied into a SET).
    // The record keeps the resource's attributes after the write, not the previous ones, so
    // for a PUT or PATCH these are the attributes the resource holds, a superset of those
    // changed.
    let mut attributes: Vec<String> = record
        .change
        .get("attrs")
        .and_then(Value::as_object)
        .map(|attrs| attrs.keys().filter(|k| *k != "schemas").cloned().collect())
        .unwrap_or_default();
    if record.change.get("members").is_some() {
        attributes.push("members".into());
    }
    if record.change.get("password").is_some() {
        attributes.push("password".into());
    }
    attributes.sort();
    attributes.dedup();
    Some((
        format!("{PROV}:{action}:notice"),
        json!({ "attributes": attributes }),
    ))
}

/// The SET (RFC 8417) claims of one audit record.
pub fn set_claims(record: &AuditRecord, issuer: &str, audience: &str, issued_at: i64) -> Value {
    let resource = record
        .resource_type
        .as_deref()
        .zip(record.resource_id.as_deref());
    // RFC 9967 §2.1: the subject is `sub_id` (RFC 9493) in the "scim" format, its `uri`
    // relative to the SCIM base URL; never `sub`.
    let sub_id = match resource.and_then(|(kind, id)| Some((endpoint(kind)?, id))) {
        Some((endpoint, id)) => {
            json!({ "format": "scim", "uri": format!("{endpoint}/{id}"), "id": id })
        }
        None => json!({
            "format": "opaque",
            "id": record.resource_id.clone().unwrap_or_else(|| record.request_id.clone()),
        }),
    };
    let mut events = Map::new();
    if resource.is_some_and(|(kind, _)| endpoint(kind).is_some())
        && let Some((uri, payload)) = scim_event(record)
    {
        events.insert(uri, payload);
    }
    events.insert(
        AUDIT_RECORD_EVENT.to_string(),
        serde_json::to_value(AuditEvent::of(record)).unwrap_or(Value::Null),
    );
    json!({
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        // The same record always carries the same jti, so a receiver recognises a retry.
        "jti": record.hash,
        // RFC 9967 §2.2: stable across retransmissions of the same change.
        "txn": record.hash,
        // RFC 8417 §2.2: when the event happened (the record's commit), not when it was sent.
        "toe": record.time.timestamp(),
        "sub_id": sub_id,
        "events": events,
    })
}

/// The SET as a JWT (RFC 8417 §2.3: explicitly typed `secevent+jwt`): signed with HS256 under
/// `secret`, else unsecured (`alg: none`, RFC 7519 §6).
pub fn encode_set(claims: &Value, secret: Option<&str>) -> String {
    let alg = if secret.is_some() { "HS256" } else { "none" };
    let header = json!({ "typ": "secevent+jwt", "alg": alg });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match secret {
        Some(secret) => URL_SAFE_NO_PAD.encode(hmac(secret, &[signing_input.as_bytes()])),
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `t=TIMESTAMP,v1=HEX(HMAC-SHA256(secret, "TIMESTAMP." + body))`: the timestamp is signed
/// with the exact body, so a receiver that refuses old timestamps refuses a replay.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac(secret, &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(operation: &str, kind: Option<&str>, change: Value) -> AuditRecord {
        AuditRecord {
            seq: 7,
            time: chrono::Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap(),
            request_id: "req-1".into(),
            actor: Some("okta".into()),
            source_addr: Some("10.0.0.9".into()),
            operation: operation.into(),
            resource_type: kind.map(str::to_string),
            resource_id: Some("u-1".into()),
            change,
            result: "ok".into(),
            prev_hash: "a".repeat(64),
            hash: "b".repeat(64),
            key_id: None,
        }
    }

    #[test]
    fn json_lines_are_the_export_with_an_event_id() {
        let r = record(
            "POST /Users",
            Some("User"),
            json!({"attrs": {"userName": "a"}}),
        );
        let body = json_lines(&[r.clone(), r.clone()]);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let mut line: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["event_id"], r.hash);
        line.as_object_mut().unwrap().remove("event_id");
        assert_eq!(line, serde_json::to_value(&r).unwrap());
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn scim_writes_become_rfc_9967_events() {
        let attrs = json!({"attrs": {"schemas": ["x"], "userName": "a", "active": false}});
        for (operation, uri) in [
            (
                "POST /Users",
                "urn:ietf:params:scim:event:prov:create:notice",
            ),
            (
                "create User",
                "urn:ietf:params:scim:event:prov:create:notice",
            ),
            (
                "PUT /Users/{id}",
                "urn:ietf:params:scim:event:prov:put:notice",
            ),
            (
                "PATCH /Users/{id}",
                "urn:ietf:params:scim:event:prov:patch:notice",
            ),
            (
                "bulk PATCH /Users/u-1",
                "urn:ietf:params:scim:event:prov:patch:notice",
            ),
        ] {
            let claims = set_claims(
                &record(operation, Some("User"), attrs.clone()),
                "https://i",
                "https://a",
                1,
            );
            assert_eq!(
                claims["events"][uri],
                json!({"attributes": ["active", "userName"]}),
                "{operation}: {claims}"
            );
            assert_eq!(
                claims["sub_id"],
                json!({"format": "scim", "uri": "/Users/u-1", "id": "u-1"})
            );
        }
        let deleted = set_claims(
            &record("DELETE /Groups/{id}", Some("Group"), json!({})),
            "i",
            "a",
            1,
        );
        assert_eq!(
            deleted["events"]["urn:ietf:params:scim:event:prov:delete"],
            json!({})
        );
        assert_eq!(deleted["sub_id"]["uri"], "/Groups/u-1");
        let members = set_claims(
            &record(
                "PATCH /Groups/{id}",
                Some("Group"),
                json!({"members": {"added": ["x"]}}),
            ),
            "i",
            "a",
            1,
        );
        assert_eq!(
            members["events"]["urn:ietf:params:scim:event:prov:patch:notice"],
            json!({"attributes": ["members"]})
        );
    }

    #[test]
    fn every_set_carries_its_record_and_stable_ids() {
        let r = record("reconcile User", Some("User"), json!({"coder_calls": []}));
        let claims = set_claims(&r, "https://scim.example.com/scim/v2", "https://siem", 99);
        let events = claims["events"].as_object().unwrap();
        assert_eq!(
            events.len(),
            1,
            "no SCIM event for a worker record: {claims}"
        );
        assert_eq!(events[AUDIT_RECORD_EVENT]["event_id"], r.hash);
        assert_eq!(events[AUDIT_RECORD_EVENT]["operation"], "reconcile User");
        assert_eq!(claims["jti"], r.hash);
        assert_eq!(claims["iss"], "https://scim.example.com/scim/v2");
        assert_eq!(claims["aud"], "https://siem");
        assert_eq!(claims["toe"], r.time.timestamp());
        assert!(claims.get("sub").is_none());
        let token = set_claims(
            &record("token.revoke", Some("Token"), json!({})),
            "i",
            "a",
            1,
        );
        assert_eq!(token["sub_id"], json!({"format": "opaque", "id": "u-1"}));
    }

    #[test]
    fn sets_are_typed_jwts_signed_when_there_is_a_secret() {
        let claims = json!({"jti": "x"});
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let unsigned = encode_set(&claims, None);
        let parts: Vec<&str> = unsigned.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode(parts[0]),
            json!({"typ": "secevent+jwt", "alg": "none"})
        );
        assert_eq!(decode(parts[1]), claims);
        assert_eq!(parts[2], "");
        let secret = "k".repeat(32);
        let signed = encode_set(&claims, Some(&secret));
        let parts: Vec<&str> = signed.split('.').collect();
        assert_eq!(decode(parts[0])["alg"], "HS256");
        let key = hs256(&secret, &format!("{}.{}", parts[0], parts[1]));
        assert_eq!(parts[2], key);
    }

    /// HS256 as RFC 7515 §A.1 computes it, without this module's helper.
    fn hs256(secret: &str, input: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_exact_body() {
        let secret = "k".repeat(32);
        let sig = signature(&secret, 1_700_000_000, b"{\"a\":1}\n");
        let (t, v1) = sig.split_once(',').unwrap();
        assert_eq!(t, "t=1700000000");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(b"1700000000.{\"a\":1}\n");
        assert_eq!(
            v1,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(sig, signature(&secret, 1_700_000_001, b"{\"a\":1}\n"));
        assert_ne!(sig, signature(&secret, 1_700_000_000, b"{\"a\":1}"));
    }
}
