//! The webhook against a real receiver on 127.0.0.1, over SQLite and PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use store::AuditEntry;
use test_support::TestStore;

use super::receiver::{Received, Receiver};
use super::{DeliveryObserver, SINK, Webhook};
use crate::config::Secret;
use crate::config::audit_webhook::{AuditWebhookSettings, WebhookFormat};

const SECRET: &str = "0123456789abcdef0123456789abcdef-webhook";

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryObserver for Counts {
    fn delivered(&self, records: u64) {
        self.delivered.fetch_add(records, Ordering::SeqCst);
    }
    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }
    fn lag(&self, _: f64) {}
}

fn settings(url: &str, format: WebhookFormat, batch_size: u32) -> AuditWebhookSettings {
    AuditWebhookSettings {
        url: url.parse().unwrap(),
        secret: Some(Secret::new(SECRET)),
        format,
        batch_size,
        batch_wait: Duration::ZERO,
        audience: "https://siem.example.com/".into(),
        issuer: Some("https://scim.example.com/scim/v2".into()),
    }
}

async fn append(db: &TestStore, n: usize) {
    for i in 0..n {
        db.store
            .audit()
            .append(&AuditEntry {
                request_id: format!("req-{i}"),
                actor: Some("okta".into()),
                source_addr: None,
                operation: "POST /Users".into(),
                resource_type: Some("User".into()),
                resource_id: Some(format!("u-{i}")),
                change: json!({"attrs": {"userName": format!("u{i}@example.com")}}),
                result: "ok".into(),
            })
            .await
            .unwrap();
    }
}

/// A running webhook task and the means to stop it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
}

fn start(db: &TestStore, settings: AuditWebhookSettings, holder: &str) -> Running {
    let counts = Arc::new(Counts::default());
    let mut webhook = Webhook::new(
        settings,
        db.store.clone(),
        db.clock.clone(),
        Arc::new(clock::SeededIds::new(7)),
        counts.clone(),
        holder.into(),
    )
    .unwrap();
    webhook.backoff = reconcile::Backoff {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(webhook.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, task, counts }
}

/// `start` with JSON lines to the receiver's `/hook`, `batch_size` records a request.
fn start_json(db: &TestStore, receiver: &Receiver, batch_size: u32, holder: &str) -> Running {
    let settings = settings(&receiver.url("/hook"), WebhookFormat::Json, batch_size);
    start(db, settings, holder)
}

/// The webhook's delivery cursor, which it has made by now.
async fn delivery_cursor(db: &TestStore) -> store::DeliveryCursor {
    db.store.audit_stream().cursor(SINK).await.unwrap().unwrap()
}

impl Running {
    async fn stop(self) -> Arc<Counts> {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        self.counts
    }
}

/// Polls `done` every 10 ms for at most 30 s.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not done within 30 s");
}

/// Waits until the receiver's acknowledgement of `seq` is recorded (the receiver sees a request
/// before the bridge moves its cursor).
async fn cursor_reaches(db: &TestStore, seq: i64) {
    for _ in 0..3000 {
        let cursor = db.store.audit_stream().cursor(SINK).await.unwrap();
        if cursor.is_some_and(|c| c.cursor_seq == seq) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the cursor did not reach {seq} within 30 s");
}

/// The seqs a JSON-lines request carries, checking each line's event id is its hash.
fn seqs(request: &Received) -> Vec<i64> {
    String::from_utf8(request.body.clone())
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            assert_eq!(record["event_id"], record["hash"]);
            record["seq"].as_i64().unwrap()
        })
        .collect()
}

fn delivered_seqs(receiver: &Receiver) -> Vec<i64> {
    receiver.accepted().iter().flat_map(seqs).collect()
}

/// What a receiver does with `X-Scim-Bridge-Signature` (docs/siem.md): recompute the HMAC over
/// the timestamp, a dot and the exact body.
fn signature_is_valid(request: &Received, secret: &str) -> bool {
    let Some(header) = request.headers.get("x-scim-bridge-signature") else {
        return false;
    };
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&expected).is_ok()
}

async fn batches_arrive_in_order_signed_and_acknowledged(db: TestStore) {
    let receiver = Receiver::start().await;
    append(&db, 5).await;
    let running = start_json(&db, &receiver, 2, "a");
    until(|| running.counts.delivered.load(Ordering::SeqCst) >= 5).await;
    let counts = running.stop().await;
    let requests = receiver.accepted();
    // Batches of at most two, in seq order, each record once.
    assert_eq!(
        requests.iter().map(seqs).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![3, 4], vec![5]]
    );
    for request in &requests {
        assert_eq!(request.headers["content-type"], "application/x-ndjson");
        assert!(signature_is_valid(request, SECRET), "{:?}", request.headers);
        // An attacker without the secret, or one who changes a byte, does not verify.
        assert!(!signature_is_valid(
            request,
            "another secret of thirty-two bytes"
        ));
        let mut tampered = request.clone();
        tampered.body[2] ^= 1;
        assert!(!signature_is_valid(&tampered, SECRET));
    }
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 5);
    let cursor = delivery_cursor(&db).await;
    assert_eq!((cursor.cursor_seq, cursor.leased_by), (5, None));
    // The lines are `audit export`'s.
    let exported = db.store.audit().export(None).await.unwrap();
    let line: Value = serde_json::from_str(
        String::from_utf8_lossy(&requests[0].body)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let mut expected = serde_json::to_value(&exported[0]).unwrap();
    expected["event_id"] = json!(exported[0].hash);
    assert_eq!(line, expected);
}

async fn a_failing_receiver_gets_the_same_records_until_it_recovers(db: TestStore) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    append(&db, 3).await;
    let running = start_json(&db, &receiver, 10, "a");
    until(|| receiver.requests().len() >= 3).await;
    // Nothing acknowledged, nothing skipped: the cursor stays and the failure is on record.
    let cursor = delivery_cursor(&db).await;
    assert_eq!(cursor.cursor_seq, 0);
    assert!(cursor.failures >= 1, "{cursor:?}");
    assert!(
        cursor.last_error.as_deref().unwrap_or("").contains("500"),
        "{cursor:?}"
    );
    receiver.answer(200);
    until(|| !receiver.accepted().is_empty()).await;
    append(&db, 2).await;
    until(|| delivered_seqs(&receiver).len() >= 5).await;
    cursor_reaches(&db, 5).await;
    let counts = running.stop().await;
    // Every refused request carried the same records as the one finally accepted.
    let requests = receiver.requests();
    let first_accepted = requests.iter().position(|r| r.status == 200).unwrap();
    for refused in &requests[..first_accepted] {
        assert_eq!(refused.status, 500);
        assert_eq!(seqs(refused), vec![1, 2, 3]);
    }
    assert_eq!(delivered_seqs(&receiver), vec![1, 2, 3, 4, 5]);
    assert!(counts.failed.load(Ordering::SeqCst) >= first_accepted as u64);
    let cursor = delivery_cursor(&db).await;
    assert_eq!(
        (cursor.cursor_seq, cursor.failures, cursor.last_error),
        (5, 0, None)
    );
}

async fn redirects_are_not_followed(db: TestStore) {
    let elsewhere = super::sink::Sink::start().await;
    let receiver = Receiver::start().await;
    receiver.redirect(307, &elsewhere.url("/stolen"));
    append(&db, 1).await;
    let running = start_json(&db, &receiver, 10, "a");
    until(|| receiver.requests().len() >= 2).await;
    let counts = running.stop().await;
    // Neither the records nor the signature went to the other host, and nothing counts as
    // delivered.
    assert_eq!(elsewhere.accepted(), 0);
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 0);
    let cursor = delivery_cursor(&db).await;
    assert_eq!(cursor.cursor_seq, 0);
}

async fn another_holder_waits_while_the_lease_runs(db: TestStore) {
    let receiver = Receiver::start().await;
    // Replica "a" holds the stream (it crashed, say, and its lease has not run out).
    db.store
        .audit_stream()
        .claim(SINK, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    append(&db, 2).await;
    let running = start_json(&db, &receiver, 10, "b");
    // Once it runs out, "b" takes over from the cursor.
    db.clock.advance(chrono::Duration::seconds(31));
    until(|| delivered_seqs(&receiver).len() >= 2).await;
    cursor_reaches(&db, 2).await;
    running.stop().await;
    assert_eq!(delivered_seqs(&receiver), vec![1, 2]);
}

async fn set_deliveries_are_one_security_event_token_each(db: TestStore) {
    use base64::Engine as _;
    let receiver = Receiver::start().await;
    append(&db, 2).await;
    let running = start(
        &db,
        settings(&receiver.url("/events"), WebhookFormat::Set, 10),
        "a",
    );
    until(|| receiver.accepted().len() >= 2).await;
    running.stop().await;
    let exported = db.store.audit().export(None).await.unwrap();
    for (request, record) in receiver.accepted().iter().zip(&exported) {
        // RFC 8935 §2.
        assert_eq!(request.headers["content-type"], "application/secevent+jwt");
        assert!(signature_is_valid(request, SECRET));
        let jwt = String::from_utf8(request.body.clone()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            decode(parts[0]),
            json!({"typ": "secevent+jwt", "alg": "HS256"})
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        assert!(
            mac.verify_slice(&signature).is_ok(),
            "HS256 under the webhook secret"
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["jti"], record.hash);
        assert_eq!(claims["iss"], "https://scim.example.com/scim/v2");
        assert_eq!(claims["aud"], "https://siem.example.com/");
        assert_eq!(
            claims["sub_id"]["uri"],
            format!("/Users/{}", record.resource_id.as_deref().unwrap())
        );
        assert_eq!(
            claims["events"]["urn:ietf:params:scim:event:prov:create:notice"],
            json!({"attributes": ["userName"]})
        );
    }
}

test_support::backend_tests!(
    open = test_support::TestStore::open;
    batches_arrive_in_order_signed_and_acknowledged,
    a_failing_receiver_gets_the_same_records_until_it_recovers,
    redirects_are_not_followed,
    another_holder_waits_while_the_lease_runs,
    set_deliveries_are_one_security_event_token_each,
);
