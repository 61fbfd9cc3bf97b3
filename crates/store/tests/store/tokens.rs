//! Bearer tokens: create, verify, revoke, expiry, import.

use crate::backend_tests;
use crate::harness::TestDb;
use chrono::Duration;
use store::{Clock, Scopes, StoreError, TOKEN_PREFIX, TokenImport, TokenSource, VerifiedToken};

async fn tokens_verify_until_revoked(db: &TestDb) {
    let tokens = db.store.tokens();
    let okta = tokens
        .create("okta", None, store::Scopes::ALL)
        .await
        .unwrap();
    let entra = tokens
        .create("entra", None, store::Scopes::ALL)
        .await
        .unwrap();
    assert!(okta.starts_with(TOKEN_PREFIX));
    assert_ne!(okta, entra);
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(verifier.verify(&okta), Some("okta"));
    assert_eq!(verifier.verify(&entra), Some("entra"));
    assert_eq!(verifier.verify(&format!("{okta}x")), None);
    assert_eq!(verifier.verify(""), None);

    let dup = tokens
        .create("okta", None, store::Scopes::ALL)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Uniqueness(_)), "{dup:?}");
    assert!(matches!(
        tokens.create("bad name!", None, store::Scopes::ALL).await,
        Err(StoreError::Invalid { .. })
    ));

    tokens.revoke("okta").await.unwrap();
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(verifier.verify(&okta), None);
    assert_eq!(verifier.verify(&entra), Some("entra"));
    assert!(matches!(
        tokens.revoke("okta").await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again once revoked (rotation).
    let okta2 = tokens
        .create("okta", None, store::Scopes::ALL)
        .await
        .unwrap();
    assert_eq!(
        tokens.verifier().await.unwrap().verify(&okta2),
        Some("okta")
    );

    tokens.mark_used("entra").await.unwrap();
    let listed = tokens.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["okta", "entra", "okta"]
    );
    assert!(listed[0].revoked_at.is_some());
    assert_eq!(listed[1].last_used_at, Some(db.clock.now()));
    let records = db.store.audit().export(None).await.unwrap();
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
    let tokens = db.store.tokens();
    let token = tokens
        .create(
            "short",
            Some(db.clock.now() + Duration::hours(1)),
            store::Scopes::ALL,
        )
        .await
        .unwrap();
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(verifier.verify(&token), Some("short"));
    db.clock.advance(Duration::hours(2));
    assert_eq!(
        verifier.verify(&token),
        None,
        "the cached verifier honours expiry by itself"
    );
    // An expired token's name can be reused without revoking it first.
    let fresh = tokens
        .create("short", None, store::Scopes::ALL)
        .await
        .unwrap();
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(
        (verifier.verify(&fresh), verifier.verify(&token)),
        (Some("short"), None)
    );
}

async fn imported_tokens_are_idempotent(db: &TestDb) {
    let tokens = db.store.tokens();
    let secret = "entra-secret-7c1e94b2f05d3a68e2b7c41f9d0a";
    assert_eq!(
        tokens
            .import("entra", secret, store::Scopes::ALL)
            .await
            .unwrap(),
        TokenImport::Created
    );
    assert_eq!(
        tokens
            .import("entra", secret, store::Scopes::ALL)
            .await
            .unwrap(),
        TokenImport::Unchanged
    );
    let rotated = "entra-secret-rotated-3f9a0d62c8e17b54a9f2";
    assert_eq!(
        tokens
            .import("entra", rotated, store::Scopes::ALL)
            .await
            .unwrap(),
        TokenImport::Rotated
    );
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(
        (verifier.verify(rotated), verifier.verify(secret)),
        (Some("entra"), None)
    );
    // A stale secret file cannot resurrect a revoked token, nor can one token have two names.
    assert!(matches!(
        tokens.import("entra", secret, store::Scopes::ALL).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        tokens.import("other", rotated, store::Scopes::ALL).await,
        Err(StoreError::Uniqueness(_))
    ));
    assert!(matches!(
        tokens.import("weak", "short", store::Scopes::ALL).await,
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
                .tokens()
                .create(&format!("idp-{i}"), None, store::Scopes::ALL)
                .await
                .unwrap(),
        ));
    }
    let verifier = db.store.tokens().verifier().await.unwrap();
    assert_eq!(verifier.len(), 40);
    for (name, token) in &tokens {
        assert_eq!(verifier.verify(token), Some(name.as_str()));
    }
    assert_eq!(
        verifier.verify(&format!("{TOKEN_PREFIX}{}", "0".repeat(64))),
        None
    );
}

async fn tokens_keep_their_scopes_and_source(db: &TestDb) {
    let tokens = db.store.tokens();
    let reader = tokens.create("reader", None, Scopes::READ).await.unwrap();
    let writer = tokens.create("writer", None, Scopes::ALL).await.unwrap();
    let imported = "okta-file-token-d4e81b7f2c09a3657e1d";
    assert_eq!(
        tokens.import("okta", imported, Scopes::READ).await.unwrap(),
        TokenImport::Created
    );
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(
        verifier.check(&reader),
        Some(VerifiedToken {
            name: "reader",
            scopes: Scopes::READ
        })
    );
    assert_eq!(verifier.check(&writer).map(|t| t.scopes), Some(Scopes::ALL));
    assert_eq!(
        verifier.check(imported).map(|t| t.scopes),
        Some(Scopes::READ)
    );
    assert_eq!(verifier.check("scimb_not-a-token"), None);

    let listed: Vec<_> = tokens
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.scopes, t.source))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("reader".to_string(), Scopes::READ, TokenSource::Cli),
            ("writer".to_string(), Scopes::ALL, TokenSource::Cli),
            ("okta".to_string(), Scopes::READ, TokenSource::File),
        ]
    );

    // The file is the source of truth for an imported token's scopes.
    assert_eq!(
        tokens.import("okta", imported, Scopes::ALL).await.unwrap(),
        TokenImport::Rescoped
    );
    assert_eq!(
        tokens
            .verifier()
            .await
            .unwrap()
            .check(imported)
            .map(|t| t.scopes),
        Some(Scopes::ALL)
    );
    assert_eq!(
        tokens.import("okta", imported, Scopes::ALL).await.unwrap(),
        TokenImport::Unchanged
    );

    // A token that may do nothing is a mistake, whichever way it comes.
    assert!(matches!(
        tokens.create("nothing", None, Scopes::NONE).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        tokens
            .import(
                "nothing",
                "nothing-file-token-8b2f6e0a4d91c37f5e2a",
                Scopes::NONE
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));

    let records = db.store.audit().export(None).await.unwrap();
    let scopes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r.operation.as_str(),
                r.change["scopes"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        scopes,
        vec![
            ("token.create", "scim:read"),
            ("token.create", "scim:read scim:write"),
            ("token.import", "scim:read"),
            ("token.import", "scim:read scim:write"),
        ]
    );
}

async fn tokens_from_before_scopes_keep_full_access(db: &TestDb) {
    // A row written by a version without scopes or source, as the migration finds it.
    let digest = "3f".repeat(32);
    db.raw_execute(&format!(
        "INSERT INTO api_tokens (name, token_sha256, created_at) \
         VALUES ('legacy', '{digest}', '2026-01-01T00:00:00+00:00')"
    ))
    .await
    .unwrap();
    let listed = db.store.tokens().list().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|t| (t.name.as_str(), t.scopes, t.source))
            .collect::<Vec<_>>(),
        vec![("legacy", Scopes::ALL, TokenSource::Cli)]
    );
    // The column admits only the sources the bridge knows.
    assert!(
        db.raw_execute("UPDATE api_tokens SET source = 'env'")
            .await
            .is_err()
    );
}

/// Strong tokens as the tokens file would hold them.
const OKTA_FILE_TOKEN: &str = "9c4f1e7a2b8d05e3c6f9a1d4b7e20c5f";
const ENTRA_FILE_TOKEN: &str = "e2b7d40f9a13c6e85b1f7d2a0c9e4b36";

async fn names_removed_from_the_file_are_revoked_and_audited(db: &TestDb) {
    let audit = db.store.audit();
    let tokens = db.store.tokens();
    tokens
        .import("okta", OKTA_FILE_TOKEN, Scopes::ALL)
        .await
        .unwrap();
    tokens
        .import("entra", ENTRA_FILE_TOKEN, Scopes::ALL)
        .await
        .unwrap();
    let operator = tokens.create("operator", None, Scopes::ALL).await.unwrap();
    // Nothing to do while every file token is still named.
    assert!(
        tokens
            .revoke_removed_from_file(&["okta", "entra"])
            .await
            .unwrap()
            .is_empty()
    );
    // "entra" leaves the file; "operator" was never in it and stays.
    assert_eq!(
        tokens.revoke_removed_from_file(&["okta"]).await.unwrap(),
        vec!["entra".to_string()]
    );
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(verifier.verify(ENTRA_FILE_TOKEN), None);
    assert_eq!(verifier.verify(OKTA_FILE_TOKEN), Some("okta"));
    assert_eq!(verifier.verify(&operator), Some("operator"));
    // An empty file revokes every file token and still no `token create` token.
    assert_eq!(
        tokens.revoke_removed_from_file(&[]).await.unwrap(),
        vec!["okta".to_string()]
    );
    let verifier = tokens.verifier().await.unwrap();
    assert_eq!(verifier.verify(OKTA_FILE_TOKEN), None);
    assert_eq!(verifier.verify(&operator), Some("operator"));
    // A revoked line put back cannot revive its token.
    assert!(matches!(
        tokens.import("entra", ENTRA_FILE_TOKEN, Scopes::ALL).await,
        Err(StoreError::Invalid { .. })
    ));

    let records = audit.export(None).await.unwrap();
    let revocations: Vec<(Option<&str>, Option<&str>, &str)> = records
        .iter()
        .filter(|r| r.operation == "token.revoke")
        .map(|r| {
            (
                r.actor.as_deref(),
                r.resource_id.as_deref(),
                r.change["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        revocations,
        vec![
            (
                Some("tokens-file"),
                Some("entra"),
                "removed from the tokens file"
            ),
            (
                Some("tokens-file"),
                Some("okta"),
                "removed from the tokens file"
            ),
        ]
    );
    assert_eq!(audit.verify().await.unwrap().first_broken, None);
}

async fn the_file_never_replaces_a_token_made_with_the_cli(db: &TestDb) {
    let tokens = db.store.tokens();
    let cli = tokens.create("okta", None, Scopes::ALL).await.unwrap();
    let refused = tokens
        .import("okta", OKTA_FILE_TOKEN, Scopes::ALL)
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Uniqueness(_)), "{refused:?}");
    assert!(refused.to_string().contains("token create"), "{refused}");
    assert_eq!(tokens.verifier().await.unwrap().verify(&cli), Some("okta"));
    // A token the file names exactly becomes the file's (tokens imported before sources were
    // recorded show `cli`): removing its line then revokes it.
    tokens.import("okta", &cli, Scopes::ALL).await.unwrap();
    let listed = tokens.list().await.unwrap();
    assert_eq!(listed[0].source, TokenSource::File);
    assert_eq!(
        tokens.revoke_removed_from_file(&[]).await.unwrap(),
        vec!["okta".to_string()]
    );
}

async fn weak_imported_tokens_are_refused(db: &TestDb) {
    let tokens = db.store.tokens();
    for weak in [
        "0123456789abcdef0123456789abcdef",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "passwordpasswordpasswordpassword",
        "deadbeef",
    ] {
        let e = tokens.import("weak", weak, Scopes::ALL).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid { .. }), "{weak}: {e:?}");
        assert!(!e.to_string().contains(weak), "{e}");
    }
    assert!(tokens.list().await.unwrap().is_empty());
}

backend_tests!(
    names_removed_from_the_file_are_revoked_and_audited,
    the_file_never_replaces_a_token_made_with_the_cli,
    weak_imported_tokens_are_refused,
    tokens_keep_their_scopes_and_source,
    tokens_from_before_scopes_keep_full_access,
    tokens_verify_until_revoked,
    tokens_expire,
    imported_tokens_are_idempotent,
    every_token_among_many_is_found,
);
