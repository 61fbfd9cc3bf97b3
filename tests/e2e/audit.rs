//! The audit chain through the real binary: `audit head`, `audit verify --expect-head`, and a
//! keyed chain, against the tampering someone with database access can do.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::support::{Bridge, Db, cli};
use crate::{start, user};

const KEY: &str = "0123456789abcdef0123456789abcdef-e2e-audit-key";
const WRONG_KEY: &str = "fedcba9876543210fedcba9876543210-another-key";

/// `envs` with the audit key replaced by `key` (or removed).
fn with_key(envs: &[(String, String)], key: Option<&str>) -> Vec<(String, String)> {
    let mut envs: Vec<_> = envs
        .iter()
        .filter(|(k, _)| k != "SCIM_BRIDGE_AUDIT_KEY")
        .cloned()
        .collect();
    if let Some(key) = key {
        envs.push(("SCIM_BRIDGE_AUDIT_KEY".into(), key.into()));
    }
    envs
}

/// Runs `audit ARGS` with `key`; returns (exit code, stdout and stderr).
fn audit(bridge: &Bridge, key: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let out = cli(&with_key(&bridge.envs, key), &all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Raw SQL on the bridge's database, as someone with database access.
async fn raw_sql(bridge: &Bridge, sql: &str) {
    let url = bridge
        .envs
        .iter()
        .find(|(k, _)| k == "SCIM_BRIDGE_DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// The documented unkeyed hash of an exported record, with `prev_hash` as given.
fn plain_hash(record: &Value, prev_hash: &str) -> String {
    let fields = json!([
        record["seq"],
        record["time"],
        record["request_id"],
        record["actor"],
        record["source_addr"],
        record["operation"],
        record["resource_type"],
        record["resource_id"],
        record["change"].to_string(),
        record["result"],
    ]);
    hex::encode(Sha256::digest(format!("{prev_hash}\n{fields}").as_bytes()))
}

/// A keyed chain verifies only with its key; `audit head` anchors it; a cut tail and a chain
/// recomputed without the key are both caught, and the anchor catches what the key cannot.
#[tokio::test(flavor = "multi_thread")]
async fn audit_head_and_key_catch_a_rewritten_chain() {
    for db in crate::support::available() {
        let mut bridge = start(&db, vec![("SCIM_BRIDGE_AUDIT_KEY".into(), KEY.into())]).await;
        for n in 0..4 {
            let (status, body) = bridge
                .call("POST", "/Users", Some(&user(&format!("u{n}@example.com"))))
                .await;
            assert_eq!(status, 201, "{db:?}: {body}");
        }
        // Nothing else writes while the database is tampered with.
        bridge.kill();

        let (code, text) = audit(&bridge, Some(KEY), &["verify"]);
        assert_eq!(code, 0, "{db:?}: {text}");
        assert!(text.contains("5 record(s) verified, 5 keyed"), "{text}");
        for key in [Some(WRONG_KEY), None] {
            let (code, text) = audit(&bridge, key, &["verify"]);
            assert_eq!(code, 1, "{db:?} {key:?}: {text}");
            assert!(text.contains("BROKEN at record 1"), "{text}");
        }
        let (_, text) = audit(&bridge, None, &["verify"]);
        assert!(text.contains("SCIM_BRIDGE_AUDIT_KEY"), "{text}");

        let (code, head) = audit(&bridge, None, &["head"]);
        assert_eq!(code, 0, "{head}");
        let head = head.trim().to_string();
        let (seq, hash) = head.split_once(':').unwrap();
        assert_eq!(seq, "5", "{head}");
        assert_eq!(hash.len(), 64, "exactly SEQ:HASH on one line: {head}");
        let (code, text) = audit(&bridge, Some(KEY), &["verify", "--expect-head", &head]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains(&format!("reaches {head}")), "{text}");
        let (code, text) = audit(&bridge, Some(KEY), &["verify", "--expect-head", "5:nothex"]);
        assert_eq!(code, 2, "a malformed head is a usage error: {text}");

        let records: Vec<Value> = audit(&bridge, None, &["export"])
            .1
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let drop_triggers = match db {
            Db::Postgres => "DROP TRIGGER audit_log_no_change ON audit_log;",
            Db::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        };

        // Cut the last two records and move the head row back: the rest verifies, keyed to
        // its end; only the exported head shows the cut.
        raw_sql(
            &bridge,
            &format!(
                "{drop_triggers} DELETE FROM audit_log WHERE seq > 3; \
                 UPDATE audit_head SET seq = 3, hash = '{}' WHERE id = 1;",
                records[2]["hash"].as_str().unwrap()
            ),
        )
        .await;
        let (code, text) = audit(&bridge, Some(KEY), &["verify"]);
        assert_eq!(code, 0, "{db:?}: {text}");
        let (code, text) = audit(&bridge, Some(KEY), &["verify", "--expect-head", &head]);
        assert_eq!(code, 1, "{db:?}: {text}");
        assert!(text.contains("removed"), "{text}");

        // Rewrite what is left with plain SHA-256, dropping the key ids, record 2 edited.
        let mut prev = "0".repeat(64);
        let mut sql = String::new();
        for record in &records[..3] {
            let mut record = record.clone();
            if record["seq"] == 2 {
                record["result"] = json!("edited");
            }
            let hash = plain_hash(&record, &prev);
            sql.push_str(&format!(
                "UPDATE audit_log SET result = '{}', prev_hash = '{prev}', hash = '{hash}', \
                 key_id = NULL WHERE seq = {};",
                record["result"].as_str().unwrap(),
                record["seq"]
            ));
            prev = hash;
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = '{prev}' WHERE id = 1;"
        ));
        raw_sql(&bridge, &sql).await;
        // Self-consistent for a verifier without the key...
        let (code, text) = audit(&bridge, None, &["verify"]);
        assert_eq!(code, 0, "{db:?}: {text}");
        // ...but not for one with it, nor against the anchor.
        let (code, text) = audit(&bridge, Some(KEY), &["verify"]);
        assert_eq!(code, 1, "{db:?}: {text}");
        assert!(text.contains("not keyed"), "{text}");
        let (code, text) = audit(&bridge, None, &["verify", "--expect-head", &head]);
        assert_eq!(code, 1, "{db:?}: {text}");
    }
}

/// A bridge that ran without a key is restarted with one: `serve` records the key, so the chain
/// verifies with it at once, its earlier plain records covered by the keyed one after them.
#[tokio::test(flavor = "multi_thread")]
async fn serve_records_a_new_audit_key() {
    let mut bridge = start(&Db::Sqlite, vec![]).await;
    let (status, _) = bridge
        .call("POST", "/Users", Some(&user("plain@example.com")))
        .await;
    assert_eq!(status, 201);
    bridge.terminate();
    let (code, text) = audit(&bridge, Some(KEY), &["verify"]);
    assert_eq!(code, 1, "unkeyed to the end: {text}");

    bridge.envs = with_key(&bridge.envs, Some(KEY));
    bridge.spawn().await;
    bridge.kill();
    let (code, text) = audit(&bridge, Some(KEY), &["verify"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 record(s) verified, 1 keyed"), "{text}");
    let last: Value = audit(&bridge, None, &["export"])
        .1
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(last["operation"], "audit.key");
    assert_eq!(last["change"]["previous_key_id"], Value::Null);
    assert_eq!(last["key_id"], last["change"]["key_id"]);
}
