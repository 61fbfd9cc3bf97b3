//! Connecting, migrations and readiness.

use crate::backend_tests;
use crate::harness::{TestDb, create_user};
use store::{GetOptions, Store, StoreError, StoreOptions};

async fn migrations_are_current_and_idempotent(db: &TestDb) {
    db.store.ping().await.unwrap();
    assert!(db.store.migrations_current().await.unwrap());
    let user = create_user(&db.store, "persist@example.com").await;
    // Reconnecting (a restart) migrates again without effect and sees the data.
    let again = Store::connect(&db.url, StoreOptions::with_clock(db.clock.clone()))
        .await
        .unwrap();
    assert!(again.migrations_current().await.unwrap());
    let read = again
        .resources()
        .get(scim::ResourceKind::User, &user.id, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(read.attrs, user.attrs);
    assert_eq!(again.backend_name(), db.store.backend_name());
}

async fn bad_urls_are_refused(_db: &TestDb) {
    for url in ["mysql://localhost/x", "sqlite::memory:"] {
        let err = Store::connect(url, StoreOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{url}: {err:?}");
    }
}

backend_tests!(migrations_are_current_and_idempotent, bad_urls_are_refused);
