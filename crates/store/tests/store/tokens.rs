//! Bearer tokens: create, verify, revoke, expiry, import.

use crate::backend_tests;
use crate::harness::TestDb;
use chrono::Duration;
use store::{Clock, StoreError, TOKEN_PREFIX, TokenImport};

async fn tokens_verify_until_revoked(db: &TestDb) {
    let okta = db.store.token_create("okta", None).await.unwrap();
    let entra = db.store.token_create("entra", None).await.unwrap();
    assert!(okta.starts_with(TOKEN_PREFIX));
    assert_ne!(okta, entra);
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(verifier.verify(&okta), Some("okta"));
    assert_eq!(verifier.verify(&entra), Some("entra"));
    assert_eq!(verifier.verify(&format!("{okta}x")), None);
    assert_eq!(verifier.verify(""), None);

    let dup = db.store.token_create("okta", None).await.unwrap_err();
    assert!(matches!(dup, StoreError::Uniqueness(_)), "{dup:?}");
    assert!(matches!(
        db.store.token_create("bad name!", None).await,
        Err(StoreError::Invalid { .. })
    ));

    db.store.token_revoke("okta").await.unwrap();
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(verifier.verify(&okta), None);
    assert_eq!(verifier.verify(&entra), Some("entra"));
    assert!(matches!(
        db.store.token_revoke("okta").await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again once revoked (rotation).
    let okta2 = db.store.token_create("okta", None).await.unwrap();
    assert_eq!(
        db.store.token_verifier().await.unwrap().verify(&okta2),
        Some("okta")
    );

    db.store.token_mark_used("entra").await.unwrap();
    let listed = db.store.token_list().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["okta", "entra", "okta"]
    );
    assert!(listed[0].revoked_at.is_some());
    assert_eq!(listed[1].last_used_at, Some(db.clock.now()));
    let records = db.store.audit_export(None).await.unwrap();
    let ops: Vec<&str> = records.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        ops,
        vec![
            "token.create",
            "token.create",
            "token.revoke",
            "token.create"
        ]
    );
    assert!(
        !serde_json::to_string(&records).unwrap().contains(&okta),
        "a token reached the audit log"
    );
}

async fn tokens_expire(db: &TestDb) {
    let token = db
        .store
        .token_create("short", Some(db.clock.now() + Duration::hours(1)))
        .await
        .unwrap();
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(verifier.verify(&token), Some("short"));
    db.clock.advance(Duration::hours(2));
    assert_eq!(
        verifier.verify(&token),
        None,
        "the cached verifier honours expiry by itself"
    );
    // An expired token's name can be reused without revoking it first.
    let fresh = db.store.token_create("short", None).await.unwrap();
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(
        (verifier.verify(&fresh), verifier.verify(&token)),
        (Some("short"), None)
    );
}

async fn imported_tokens_are_idempotent(db: &TestDb) {
    let secret = "entra-secret-0123456789abcdefghijklmnop";
    assert_eq!(
        db.store.token_import("entra", secret).await.unwrap(),
        TokenImport::Created
    );
    assert_eq!(
        db.store.token_import("entra", secret).await.unwrap(),
        TokenImport::Unchanged
    );
    let rotated = "entra-secret-rotated-0123456789abcdefghij";
    assert_eq!(
        db.store.token_import("entra", rotated).await.unwrap(),
        TokenImport::Rotated
    );
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(
        (verifier.verify(rotated), verifier.verify(secret)),
        (Some("entra"), None)
    );
    // A stale secret file cannot resurrect a revoked token, nor can one token have two names.
    assert!(matches!(
        db.store.token_import("entra", secret).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        db.store.token_import("other", rotated).await,
        Err(StoreError::Uniqueness(_))
    ));
    assert!(matches!(
        db.store.token_import("weak", "short").await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn every_token_among_many_is_found(db: &TestDb) {
    // The comparison walks every digest without an early exit; check each position resolves to
    // its own name and that a miss scans them all without a false positive.
    let mut tokens = Vec::new();
    for i in 0..40 {
        tokens.push((
            format!("idp-{i}"),
            db.store
                .token_create(&format!("idp-{i}"), None)
                .await
                .unwrap(),
        ));
    }
    let verifier = db.store.token_verifier().await.unwrap();
    assert_eq!(verifier.len(), 40);
    for (name, token) in &tokens {
        assert_eq!(verifier.verify(token), Some(name.as_str()));
    }
    assert_eq!(
        verifier.verify(&format!("{TOKEN_PREFIX}{}", "0".repeat(64))),
        None
    );
}

backend_tests!(
    tokens_verify_until_revoked,
    tokens_expire,
    imported_tokens_are_idempotent,
    every_token_among_many_is_found,
);
