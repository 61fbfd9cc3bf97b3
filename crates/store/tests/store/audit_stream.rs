//! The live audit stream: records after a cursor, and a sink's cursor and lease shared by
//! replicas.

use crate::backend_tests;
use crate::harness::{TestDb, create_user};
use chrono::Duration;
use std::time::Duration as StdDuration;
use store::{Store, StoreOptions};

const LEASE: StdDuration = StdDuration::from_secs(30);

async fn records_after_a_cursor_come_in_commit_order(db: &TestDb) {
    for n in 0..5 {
        create_user(&db.store, &format!("u{n}@example.com")).await;
    }
    let stream = db.store.audit_stream();
    let seqs = |records: Vec<store::AuditRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(stream.after(0, 3).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(stream.after(3, 100).await.unwrap()), vec![4, 5]);
    assert!(stream.after(5, 100).await.unwrap().is_empty());
    // They are the records `audit export` prints.
    assert_eq!(
        stream.after(0, 100).await.unwrap(),
        db.store.audit().export(None).await.unwrap()
    );
}

async fn the_cursor_moves_only_forward_and_only_for_the_lease_holder(db: &TestDb) {
    let stream = db.store.audit_stream();
    assert_eq!(stream.cursor("webhook").await.unwrap(), None);
    assert_eq!(stream.claim("webhook", "a", LEASE).await.unwrap(), Some(0));
    // Another replica is refused while the lease runs, and cannot move the cursor.
    assert_eq!(stream.claim("webhook", "b", LEASE).await.unwrap(), None);
    assert!(!stream.advance("webhook", "b", 0, 3).await.unwrap());
    assert!(!stream.failed("webhook", "b", "x").await.unwrap());
    // The holder moves it from where it read it, not from elsewhere.
    assert!(stream.advance("webhook", "a", 0, 3).await.unwrap());
    assert!(!stream.advance("webhook", "a", 0, 5).await.unwrap());
    assert!(
        stream
            .failed("webhook", "a", "receiver answered 500")
            .await
            .unwrap()
    );
    let row = stream.cursor("webhook").await.unwrap().unwrap();
    assert_eq!((row.cursor_seq, row.failures), (3, 1));
    assert_eq!(row.last_error.as_deref(), Some("receiver answered 500"));
    // A renewal keeps the cursor; an advance clears the failures.
    assert_eq!(stream.claim("webhook", "a", LEASE).await.unwrap(), Some(3));
    assert!(stream.advance("webhook", "a", 3, 4).await.unwrap());
    let row = stream.cursor("webhook").await.unwrap().unwrap();
    assert_eq!((row.cursor_seq, row.failures, row.last_error), (4, 0, None));

    // A crashed holder's lease runs out and another replica resumes at its cursor...
    db.clock.advance(Duration::seconds(31));
    assert_eq!(stream.claim("webhook", "b", LEASE).await.unwrap(), Some(4));
    // ...and the old holder, back, can neither move the cursor nor take the lease back.
    assert!(!stream.advance("webhook", "a", 4, 9).await.unwrap());
    assert_eq!(stream.claim("webhook", "a", LEASE).await.unwrap(), None);
    // A clean shutdown hands over at once.
    assert!(stream.release("webhook", "b").await.unwrap());
    assert_eq!(stream.claim("webhook", "a", LEASE).await.unwrap(), Some(4));
    // Sinks are independent.
    assert_eq!(stream.claim("other", "b", LEASE).await.unwrap(), Some(0));
}

async fn replicas_claiming_together_get_one_lease(db: &TestDb) {
    // Two stores on one database stand for two replicas.
    let other = Store::connect(&db.url, StoreOptions::with_clock(db.clock.clone()))
        .await
        .unwrap();
    let mut winners = 0;
    for round in 0..10 {
        let sink = format!("sink-{round}");
        let (mine, theirs) = (db.store.audit_stream(), other.audit_stream());
        let (a, b) = tokio::join!(
            mine.claim(&sink, "a", LEASE),
            theirs.claim(&sink, "b", LEASE),
        );
        let won = usize::from(a.unwrap().is_some()) + usize::from(b.unwrap().is_some());
        assert_eq!(won, 1, "round {round}");
        winners += won;
    }
    assert_eq!(winners, 10);
}

async fn lag_is_the_age_of_the_oldest_unacknowledged_record(db: &TestDb) {
    let stream = db.store.audit_stream();
    let lag = stream.lag("webhook").await.unwrap();
    assert_eq!(
        (lag.cursor_seq, lag.head_seq, lag.oldest_pending),
        (0, 0, None)
    );
    create_user(&db.store, "first@example.com").await;
    let written = store::Clock::now(db.clock.as_ref());
    db.clock.advance(Duration::seconds(5));
    create_user(&db.store, "second@example.com").await;
    let lag = stream.lag("webhook").await.unwrap();
    assert_eq!((lag.pending(), lag.oldest_pending), (2, Some(written)));
    stream.claim("webhook", "a", LEASE).await.unwrap();
    stream.advance("webhook", "a", 0, 2).await.unwrap();
    let lag = stream.lag("webhook").await.unwrap();
    assert_eq!((lag.pending(), lag.oldest_pending), (0, None));
}

backend_tests!(
    records_after_a_cursor_come_in_commit_order,
    the_cursor_moves_only_forward_and_only_for_the_lease_holder,
    replicas_claiming_together_get_one_lease,
    lag_is_the_age_of_the_oldest_unacknowledged_record,
);
