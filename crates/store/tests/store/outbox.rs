//! The outbox: coalescing, generations, leases, priority, backoff, dead letters and wake-ups.

use crate::backend_tests;
use crate::harness::{TestDb, claim, create_group, create_user, replace, rows};
use chrono::Duration;
use scim::ResourceKind;
use serde_json::json;
use std::collections::HashSet;
use store::Clock;
use store::{Completion, OutboxFilter, OutboxPriority, RetryTarget, StoreOptions};

const LEASE: i64 = 30;

fn lease() -> Duration {
    Duration::seconds(LEASE)
}

async fn writes_to_one_resource_coalesce(db: &TestDb) {
    let user = create_user(&db.store, "q@example.com").await;
    let first = rows(db, OutboxFilter::All).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].resource_id.as_str(), first[0].generation),
        (user.id.as_str(), 1)
    );

    db.clock.advance(Duration::seconds(5));
    replace(db, ResourceKind::User, &user.id, "displayName", json!("Q")).await;
    replace(db, ResourceKind::User, &user.id, "nickName", json!("q")).await;
    let rows = rows(db, OutboxFilter::All).await;
    assert_eq!(rows.len(), 1, "one row per resource");
    assert_eq!(rows[0].id, first[0].id);
    assert_eq!(rows[0].generation, 3);
    assert_eq!(
        rows[0].enqueued_at, first[0].enqueued_at,
        "coalescing keeps the enqueue time"
    );
    let stats = db.store.outbox().stats().await.unwrap();
    assert_eq!((stats.depth, stats.retrying, stats.dead), (1, 0, 0));
    assert_eq!(stats.oldest_age, Some(Duration::seconds(5)));
}

async fn complete_removes_only_the_claimed_generation(db: &TestDb) {
    let outbox = db.store.outbox();
    let user = create_user(&db.store, "gen@example.com").await;
    let claimed = claim(db, "w1", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].leased_by.as_deref(), Some("w1"));
    // A write lands while the worker reconciles.
    replace(db, ResourceKind::User, &user.id, "title", json!("CTO")).await;
    assert_eq!(
        outbox.complete(&claimed[0]).await.unwrap(),
        Completion::NewerChangePending
    );
    // Released at once, so the newer state is applied without waiting for the lease.
    let again = claim(db, "w1", 10).await;
    assert_eq!((again.len(), again[0].generation), (1, 2));
    assert_eq!(
        outbox.complete(&again[0]).await.unwrap(),
        Completion::Removed
    );
    assert_eq!(outbox.stats().await.unwrap().depth, 0);
    assert!(claim(db, "w1", 10).await.is_empty());
}

async fn an_expired_lease_is_taken_over(db: &TestDb) {
    let outbox = db.store.outbox();
    create_user(&db.store, "crash@example.com").await;
    let by_w1 = claim(db, "w1", 10).await;
    assert_eq!(by_w1.len(), 1);
    assert!(
        claim(db, "w2", 10).await.is_empty(),
        "leased rows are not claimable"
    );
    db.clock.advance(lease() + Duration::seconds(1));
    let by_w2 = claim(db, "w2", 10).await;
    assert_eq!(by_w2.len(), 1, "w1 crashed: its claim is taken over");
    assert_eq!(by_w2[0].id, by_w1[0].id);
    // w1 comes back late: its failure report must not disturb w2's lease.
    outbox
        .fail(&by_w1[0], "late", db.clock.now() + Duration::hours(1))
        .await
        .unwrap();
    let row = &rows(db, OutboxFilter::All).await[0];
    assert_eq!((row.leased_by.as_deref(), row.attempts), (Some("w2"), 0));
    assert_eq!(outbox.release_leases("w2").await.unwrap(), 1);
    assert_eq!(claim(db, "w3", 10).await.len(), 1);
}

async fn offboarding_jumps_the_queue(db: &TestDb) {
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(create_user(&db.store, &format!("bulk{i}@example.com")).await);
        db.clock.advance(Duration::seconds(1));
    }
    create_group(&db.store, "Bulk", &[]).await;
    // Leases that expire put rows back in their original order.
    assert_eq!(claim(db, "w", 10).await.len(), 4);
    db.clock.advance(lease() + Duration::seconds(1));
    // users[1] is deactivated (Okta/Entra deprovisioning) after everything else was queued.
    replace(db, ResourceKind::User, &users[1].id, "active", json!(false)).await;
    let first = claim(db, "w", 1).await;
    assert_eq!(first[0].resource_id, users[1].id);
    assert_eq!(first[0].priority, OutboxPriority::Offboarding);
    // The rest in FIFO order.
    let rest = claim(db, "w", 10).await;
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].resource_id, users[0].id);
    assert_eq!(rest[1].resource_id, users[2].id);
    // Reactivation later does not lower a pending offboarding.
    replace(db, ResourceKind::User, &users[1].id, "active", json!(true)).await;
    let row = rows(db, OutboxFilter::All)
        .await
        .into_iter()
        .find(|e| e.resource_id == users[1].id)
        .unwrap();
    assert_eq!(row.priority, OutboxPriority::Offboarding);
}

async fn failures_back_off_and_dead_letter(db: &TestDb) {
    let outbox = db.store.outbox();
    let user = create_user(&db.store, "flaky@example.com").await;
    let claimed = claim(db, "w", 10).await;
    outbox
        .fail(
            &claimed[0],
            "coder: 503",
            db.clock.now() + Duration::seconds(60),
        )
        .await
        .unwrap();
    assert!(claim(db, "w", 10).await.is_empty(), "backing off");
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.depth, stats.retrying), (1, 1));
    db.clock.advance(Duration::seconds(61));
    let retry = claim(db, "w", 10).await;
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("coder: 503"))
    );

    assert!(
        outbox
            .dead_letter(&retry[0], "coder: 400 invalid username")
            .await
            .unwrap()
    );
    assert!(claim(db, "w", 10).await.is_empty());
    let dead = rows(db, OutboxFilter::Dead).await;
    assert_eq!(
        dead[0].dead_reason.as_deref(),
        Some("coder: 400 invalid username")
    );
    assert_eq!(outbox.stats().await.unwrap().dead, 1);
    assert!(rows(db, OutboxFilter::Pending).await.is_empty());

    // An operator retry revives it with a fresh count.
    assert_eq!(outbox.retry(RetryTarget::AllDead).await.unwrap(), 1);
    let revived = claim(db, "w", 10).await;
    assert_eq!(revived[0].attempts, 0);
    assert!(outbox.dead_letter(&revived[0], "again").await.unwrap());
    // So does a new write to the resource.
    replace(db, ResourceKind::User, &user.id, "nickName", json!("f")).await;
    assert_eq!(claim(db, "w", 10).await.len(), 1);
    assert!(matches!(
        outbox.retry(RetryTarget::One(999_999)).await,
        Err(store::StoreError::NotFound(_))
    ));
}

async fn two_claimers_share_without_overlap(db: &TestDb) {
    enqueue_users(db, "u", 40, OutboxPriority::Normal).await;
    // Two replicas (separate pools) claim at the same moment.
    let other = db.second_store(StoreOptions::default()).await;
    let (outbox_a, outbox_b) = (db.store.outbox(), other.outbox());
    let (a, b) = tokio::join!(
        outbox_a.claim("a", lease(), 25),
        outbox_b.claim("b", lease(), 25)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids_a: HashSet<i64> = a.iter().map(|e| e.id).collect();
    let ids_b: HashSet<i64> = b.iter().map(|e| e.id).collect();
    assert!(ids_a.is_disjoint(&ids_b), "a row was claimed twice");
    assert_eq!(ids_a.len() + ids_b.len(), 40);
    assert!(a.iter().all(|e| e.leased_by.as_deref() == Some("a")));
}

async fn commits_wake_the_worker(db: &TestDb) {
    let outbox = db.store.outbox();
    let notify = outbox.notified();
    let woken = notify.notified();
    create_user(&db.store, "wake@example.com").await;
    tokio::time::timeout(std::time::Duration::from_secs(10), woken)
        .await
        .expect("no local wake-up after a commit");

    // Another replica's commit wakes this one (PostgreSQL NOTIFY); on SQLite the wake-ups are
    // local, which a single embedded replica is all it needs.
    let mut wakeups = outbox.wakeups().await.unwrap();
    let other = db.second_store(StoreOptions::default()).await;
    if db.is_postgres() {
        other
            .outbox()
            .enqueue(ResourceKind::User, "from-elsewhere", OutboxPriority::Normal)
            .await
            .unwrap();
    } else {
        outbox
            .enqueue(ResourceKind::User, "local", OutboxPriority::Normal)
            .await
            .unwrap();
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), wakeups.wait())
        .await
        .expect("no wake-up");
}

async fn deferring_does_not_count_an_attempt(db: &TestDb) {
    let outbox = db.store.outbox();
    outbox
        .enqueue(ResourceKind::User, "u1", OutboxPriority::Normal)
        .await
        .unwrap();
    let event = claim(db, "w1", 10).await.remove(0);
    // Coder answered 429: come back later, without moving towards the dead-letter queue.
    let until = db.clock.now() + Duration::seconds(20);
    assert!(outbox.defer(&event, "429", until).await.unwrap());
    assert!(
        !outbox.defer(&event, "429", until).await.unwrap(),
        "the lease is gone"
    );
    assert!(claim(db, "w1", 10).await.is_empty(), "not due yet");
    db.clock.advance(Duration::seconds(21));
    let again = claim(db, "w1", 10).await;
    assert_eq!(
        (
            again.len(),
            again[0].attempts,
            again[0].last_error.as_deref()
        ),
        (1, 0, Some("429"))
    );
    outbox.fail(&again[0], "500", db.clock.now()).await.unwrap();
    assert_eq!(claim(db, "w1", 10).await[0].attempts, 1);
}

async fn a_claim_takes_one_priority_at_a_time(db: &TestDb) {
    let outbox = db.store.outbox();
    enqueue_users(db, "bulk", 3, OutboxPriority::Normal).await;
    enqueue_users(db, "leaver", 2, OutboxPriority::Offboarding).await;
    // Room for everything, yet the batch holds the offboarding rows alone.
    let first = outbox
        .claim_priority("w", lease(), 10, OutboxPriority::Normal)
        .await
        .unwrap();
    let ids: Vec<&str> = first.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["leaver0", "leaver1"]);
    // While they are in flight the worker asks for offboarding only: there is none left.
    assert!(
        outbox
            .claim_priority("w", lease(), 10, OutboxPriority::Offboarding)
            .await
            .unwrap()
            .is_empty()
    );
    let rest = outbox
        .claim_priority("w", lease(), 10, OutboxPriority::Normal)
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|e| e.priority == OutboxPriority::Normal));
}

async fn due_now_ends_every_wait_but_keeps_attempts(db: &TestDb) {
    let outbox = db.store.outbox();
    enqueue_users(db, "u", 3, OutboxPriority::Normal).await;
    let claimed = claim(db, "w", 2).await;
    let later = db.clock.now() + Duration::minutes(5);
    outbox.fail(&claimed[0], "500", later).await.unwrap();
    outbox.defer(&claimed[1], "waiting", later).await.unwrap();
    let dead = claim(db, "w", 1).await;
    outbox.dead_letter(&dead[0], "400").await.unwrap();
    assert!(claim(db, "w", 10).await.is_empty());
    assert_eq!(outbox.due_now().await.unwrap(), 2);
    let due = claim(db, "w", 10).await;
    let mut attempts: Vec<(String, i32)> = due
        .iter()
        .map(|e| (e.resource_id.clone(), e.attempts))
        .collect();
    attempts.sort();
    assert_eq!(attempts, [("u0".to_owned(), 1), ("u1".to_owned(), 0)]);
    assert_eq!(outbox.stats().await.unwrap().dead, 1, "dead rows stay dead");
    assert_eq!(
        outbox.due_now().await.unwrap(),
        0,
        "leased rows are left alone"
    );
}

/// Queue users `{prefix}0` … `{prefix}{count-1}` as a drift repair would.
async fn enqueue_users(db: &TestDb, prefix: &str, count: usize, priority: OutboxPriority) {
    for i in 0..count {
        db.store
            .outbox()
            .enqueue(ResourceKind::User, &format!("{prefix}{i}"), priority)
            .await
            .unwrap();
    }
}

/// A row a newer build queued, of a kind this one does not know, is skipped: it must not stop
/// the worker or the listing.
async fn rows_of_an_unknown_kind_are_skipped(db: &TestDb) {
    let user = create_user(&db.store, "kind@example.com").await;
    db.raw_execute(
        "INSERT INTO outbox (kind, resource_id, priority, generation, enqueued_at, next_attempt_at, attempts) \
         SELECT 'Widget', resource_id, priority, generation, enqueued_at, next_attempt_at, attempts FROM outbox",
    )
    .await
    .unwrap();
    let listed = rows(db, OutboxFilter::All).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].kind, listed[0].resource_id.as_str()),
        (ResourceKind::User, user.id.as_str())
    );
    let claimed = claim(db, "w1", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, listed[0].id);
}

backend_tests!(
    rows_of_an_unknown_kind_are_skipped,
    writes_to_one_resource_coalesce,
    complete_removes_only_the_claimed_generation,
    an_expired_lease_is_taken_over,
    offboarding_jumps_the_queue,
    failures_back_off_and_dead_letter,
    two_claimers_share_without_overlap,
    commits_wake_the_worker,
    deferring_does_not_count_an_attempt,
    a_claim_takes_one_priority_at_a_time,
    due_now_ends_every_wait_but_keeps_attempts,
);
