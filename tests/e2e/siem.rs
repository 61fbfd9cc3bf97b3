//! The SIEM stream end to end: the real binary pushing its audit trail to a receiver on
//! 127.0.0.1 across a `kill -9`, and `audit export --follow`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::receiver::{Received, Receiver};
use crate::support::{BIN, available, eventually};
use crate::{start, user};

const SECRET: &str = "e2e-webhook-secret-of-at-least-32-bytes";

/// The (seq, event_id) of an audit record as a JSON line.
fn seq_and_event_id(line: &str) -> (i64, String) {
    let record: Value = serde_json::from_str(line).unwrap();
    (
        record["seq"].as_i64().unwrap(),
        record["event_id"].as_str().unwrap().to_string(),
    )
}

/// `seq → event_id` of the trail as `audit export` prints it.
fn exported(bridge: &crate::support::Bridge) -> BTreeMap<i64, String> {
    let out = bridge.cli(&["audit", "export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(seq_and_event_id)
        .collect()
}

/// The (seq, event_id) pairs one request carries, after checking its signature as a receiver
/// would (docs/siem.md).
fn verified_lines(request: &Received) -> Vec<(i64, String)> {
    let header = &request.headers["x-scim-bridge-signature"];
    let (t, v1) = header.split_once(',').unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.strip_prefix("t=").unwrap().as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let v1 = hex::decode(v1.strip_prefix("v1=").unwrap()).unwrap();
    assert!(
        mac.verify_slice(&v1).is_ok(),
        "a request with a bad signature"
    );
    String::from_utf8_lossy(&request.body)
        .lines()
        .map(seq_and_event_id)
        .collect()
}

async fn create_users(bridge: &crate::support::Bridge, from: usize, to: usize) {
    for n in from..to {
        crate::support::create(bridge, "/Users", &user(&format!("siem{n}@example.com"))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_the_receiver_across_a_kill() {
    for db in available() {
        let receiver = Receiver::start().await;
        let mut bridge = start(
            &db,
            vec![
                (
                    "SCIM_BRIDGE_AUDIT_WEBHOOK_URL".into(),
                    receiver.url("/ingest"),
                ),
                ("SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET".into(), SECRET.into()),
                ("SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_SIZE".into(), "3".into()),
                ("SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_WAIT".into(), "0".into()),
            ],
        )
        .await;
        create_users(&bridge, 0, 8).await;
        eventually(Duration::from_secs(60), || async {
            (!receiver.accepted().is_empty()).then_some(())
        })
        .await
        .expect("the stream started");
        // The receiver stops acknowledging, records pile up, and the bridge dies without any
        // shutdown hook: what it sent but never saw acknowledged must come again.
        receiver.answer(503);
        create_users(&bridge, 8, 14).await;
        eventually(Duration::from_secs(60), || async {
            receiver
                .requests()
                .iter()
                .any(|r| r.status == 503)
                .then_some(())
        })
        .await
        .expect("a refused request");
        bridge.kill();
        receiver.answer(200);
        bridge.spawn().await;
        create_users(&bridge, 14, 20).await;

        let trail = exported(&bridge);
        let head = *trail.keys().last().unwrap();
        // PostgreSQL: the killed replica's lease runs out (30 s) before the new one delivers.
        let delivered = eventually(Duration::from_secs(120), || async {
            let seen: Vec<(i64, String)> = receiver
                .accepted()
                .iter()
                .flat_map(verified_lines)
                .collect();
            seen.iter().any(|(seq, _)| *seq == head).then_some(seen)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{db:?}: not every record arrived; logs:\n{}",
                bridge.log_text()
            )
        });

        // Every record arrived, each with the event id the trail gives it, so a duplicate is
        // recognisable by its id; and in order: no record before every one before it.
        let mut highest = 0;
        for (seq, event_id) in &delivered {
            assert_eq!(Some(event_id), trail.get(seq), "{db:?}: seq {seq}");
            assert!(
                *seq <= highest + 1,
                "{db:?}: seq {seq} arrived before {}",
                highest + 1
            );
            highest = highest.max(*seq);
        }
        let distinct: std::collections::BTreeSet<i64> =
            delivered.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            distinct.into_iter().collect::<Vec<_>>(),
            trail.keys().copied().collect::<Vec<_>>(),
            "{db:?}: a record was skipped"
        );
        // Only what was in flight at the kill may come twice.
        assert!(
            delivered.len() - trail.len() <= 3,
            "{db:?}: flooded: {delivered:?}"
        );
        // `status` shows the stream caught up.
        let status = bridge.cli(&["status", "-o", "json"]);
        let report: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(report["audit_webhook"]["cursor_seq"], head, "{report}");
        assert_eq!(report["audit_webhook"]["pending"], 0, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_follows_new_records_and_stops_cleanly_on_sigterm() {
    let db = available()[0];
    let bridge = start(&db, vec![]).await;
    create_users(&bridge, 0, 2).await;
    let mut follow = Command::new(BIN)
        .args(["audit", "export", "--follow", "--after", "1"])
        .env_clear()
        .envs(bridge.envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, read) = std::sync::mpsc::channel::<String>();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let next_seq = |read: &std::sync::mpsc::Receiver<String>| -> i64 {
        let line = read
            .recv_timeout(Duration::from_secs(30))
            .expect("a record within 30 s");
        let record: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["event_id"], record["hash"]);
        record["seq"].as_i64().unwrap()
    };
    // Resumed after record 1: the records after it, then each new one as it commits.
    let before: Vec<i64> = exported(&bridge)
        .into_keys()
        .filter(|seq| *seq > 1)
        .collect();
    let mut seen: Vec<i64> = before.iter().map(|_| next_seq(&read)).collect();
    assert_eq!(seen, before);
    create_users(&bridge, 2, 4).await;
    let trail: Vec<i64> = exported(&bridge)
        .into_keys()
        .filter(|seq| *seq > 1)
        .collect();
    while seen.len() < trail.len() {
        seen.push(next_seq(&read));
    }
    assert_eq!(seen, trail);
    let _ = Command::new("kill")
        .args(["-TERM", &follow.id().to_string()])
        .status();
    let status = (0..3000)
        .find_map(|_| {
            let done = follow.try_wait().unwrap();
            if done.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            done
        })
        .expect("exited within 30 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    // A plain export resumes the same way.
    let last = *trail.last().unwrap();
    let out = bridge.cli(&["audit", "export", "--after", &(last - 1).to_string()]);
    let seqs: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![last]);
}
